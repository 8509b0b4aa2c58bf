"""Object identifiers eseal defines or relies on, in one place.

eseal's own arc sits under IANA private enterprise number 32473, which RFC 5612 reserves for
documentation and examples. A UUID arc (``2.25.<uuid>``, ITU-T X.667) was tried first, but its
128-bit arc breaks common decoders (pkilint refuses arcs over 32 bits), so relying parties
could not parse our policies. A production deployment registers its own enterprise number and
replaces ``ESEAL_ARC``; the README lists this under known limitations.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import ObjectIdentifier

ESEAL_ARC = "1.3.6.1.4.1.32473.1"

# Certificate policies, one per profile, so a relying party can tell a seal from a login.
POLICY_ROOT = ObjectIdentifier(f"{ESEAL_ARC}.1.1")
POLICY_ISSUING = ObjectIdentifier(f"{ESEAL_ARC}.1.2")
POLICY_ENTERPRISE_LOGIN = ObjectIdentifier(f"{ESEAL_ARC}.1.10")
POLICY_ENTERPRISE_SEAL = ObjectIdentifier(f"{ESEAL_ARC}.1.11")
POLICY_OFFICER_LOGIN = ObjectIdentifier(f"{ESEAL_ARC}.1.12")
POLICY_OCSP = ObjectIdentifier(f"{ESEAL_ARC}.1.20")
POLICY_TSA = ObjectIdentifier(f"{ESEAL_ARC}.1.21")

# The policy under which the TSA issues timestamps (RFC 3161 TSTInfo.policy).
TSA_POLICY = ObjectIdentifier(f"{ESEAL_ARC}.2.1")

# Profile name by policy OID: how verifiers learn what a certificate was issued for.
PROFILE_BY_POLICY = {
    POLICY_ENTERPRISE_LOGIN.dotted_string: "login",
    POLICY_ENTERPRISE_SEAL.dotted_string: "seal",
    POLICY_OFFICER_LOGIN.dotted_string: "officer",
    POLICY_OCSP.dotted_string: "ocsp",
    POLICY_TSA.dotted_string: "tsa",
    POLICY_ROOT.dotted_string: "root",
    POLICY_ISSUING.dotted_string: "issuing",
}

# Standard OIDs cryptography does not name.
DOCUMENT_SIGNING = ObjectIdentifier("1.3.6.1.5.5.7.3.36")  # RFC 9336
ORGANIZATION_IDENTIFIER = ObjectIdentifier("2.5.4.97")  # ETSI EN 319 412-1
OCSP_NOCHECK = ObjectIdentifier("1.3.6.1.5.5.7.48.1.5")


def profile_of(cert: x509.Certificate) -> str | None:
    """The eseal profile a certificate was issued under, read from its policy OID."""
    try:
        policies = cert.extensions.get_extension_for_class(x509.CertificatePolicies).value
    except x509.ExtensionNotFound:
        return None
    for info in policies:
        found = PROFILE_BY_POLICY.get(info.policy_identifier.dotted_string)
        if found is not None:
            return found
    return None
