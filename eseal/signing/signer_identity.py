"""Who sealed, as far as the certificate says: the enterprise, its credit code, the profile.

The verifier reports the sealing enterprise from the signer's certificate (organizationName,
the ``NTRCN-<USCC>`` organizationIdentifier of ETSI EN 319 412-1) and decides from the
certificate policy whether the certificate may seal at all: only one issued under the *seal*
policy makes a seal; a login certificate's signature is not one, however valid. These are
pure reads of a certificate, kept apart from the verifier's orchestration so the rule "which
certificate may seal" has one home. pyHanko hands us asn1crypto certificates and our own code
speaks ``cryptography``; the two conversions live here too.
"""

from __future__ import annotations

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from eseal.pki.identity import uscc_of_name
from eseal.pki.oids import POLICY_ENTERPRISE_SEAL, PROFILE_BY_POLICY
from eseal.signing.report import SignerIdentity

__all__ = ["describe", "has_non_repudiation", "identity", "profile", "to_asn1", "to_crypto"]


def to_crypto(cert: asn1_x509.Certificate) -> x509.Certificate:
    return x509.load_der_x509_certificate(cert.dump())


def to_asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _attr(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def profile(cert: x509.Certificate) -> str:
    """The eseal profile the certificate was issued under, from its certificate policies."""
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return "unknown"
    oids = [p.policy_identifier.dotted_string for p in policies]
    if POLICY_ENTERPRISE_SEAL.dotted_string in oids:
        return "seal"
    for oid in oids:
        if oid in PROFILE_BY_POLICY:
            return PROFILE_BY_POLICY[oid]
    return "unknown"


def identity(cert: x509.Certificate) -> SignerIdentity:
    credit = uscc_of_name(cert.subject)
    return SignerIdentity(
        enterprise=_attr(cert.subject, NameOID.ORGANIZATION_NAME),
        credit_code=credit,
        holder=_attr(cert.subject, NameOID.COMMON_NAME),
        profile=profile(cert),
        certificate_serial=format(cert.serial_number, "x"),
        issuer=cert.issuer.rfc4514_string(),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def describe(cert: asn1_x509.Certificate | x509.Certificate) -> str:
    c = to_crypto(cert) if isinstance(cert, asn1_x509.Certificate) else cert
    return c.subject.rfc4514_string()


def has_non_repudiation(cert: x509.Certificate) -> bool:
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return False
    return bool(ku.content_commitment)
