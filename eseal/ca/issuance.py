"""One issuance request: what every certificate eseal makes is made from.

An officer's CSR (``Authority.issue``), an enrolment on a token or by code, a staff token, a
renewal and a re-key all end in one :class:`IssuanceRequest`, built once its input is
vetted, and one path (``Authority.certify``): prepare -> lint -> sign on the token
(``eseal.ca.issuer``) -> record the row and its audit event in one transaction. The request
is immutable: what was vetted is what is signed. Vetting a CSR (proof of possession, key
policy, holder name, the subject naming the enterprise) is done here once
(:func:`check_csr`, :func:`enterprise_request`); the state checks that can change under
our feet (the key still free, the enterprise still the same) are repeated under the write
lock by the authority, which is a race guard, not a second vetting.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eseal.errors import Conflict, InvalidInput
from eseal.pki import identity
from eseal.pki.csr import load_csr
from eseal.pki.key_policy import check_key_policy

ENTERPRISE_PROFILES = ("login", "seal")


def spki_sha256(public_key: Any) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


@dataclass(frozen=True)
class IssuanceRequest:
    """One certificate to make, decided and vetted; ``Authority.certify`` makes it.

    ``enterprise`` is the enterprise row (None: a CA officer's certificate); ``action`` and
    ``target`` name the audit event the issuance is recorded as; ``renewing`` lets a key
    that already holds a valid certificate of the profile be certified again (same-key
    renewal); ``not_after`` None means the profile's year, cut at the issuing CA's notAfter.
    """

    profile: str
    public_key: Any
    holder: str
    actor: str
    target: str
    action: str = "cert.issue"
    enterprise: Any = None
    token_label: str | None = None
    not_after: datetime | None = None
    renewed_from: str | None = None
    key_certified_at: datetime | None = None
    renewing: bool = False

    @property
    def spki_sha256(self) -> str:
        return spki_sha256(self.public_key)


@dataclass(frozen=True)
class Issued:
    serial: str
    certificate: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.certificate.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class Draft:
    """A signed certificate not yet recorded: never leaves the authority unless stored."""

    issued: Issued
    row: dict[str, Any]
    request: IssuanceRequest

    @property
    def serial(self) -> str:
        return self.issued.serial


# --- vetting, once ------------------------------------------------------------------------
def check_csr(csr_pem: bytes, *, profile: str, holder: str,
              uscc: str | None = None) -> tuple[x509.CertificateSigningRequest, str]:
    """An enterprise CSR's own checks, in this order: a known profile, the credit code's
    form (if given), a parseable request whose signature proves possession of the key, the
    key policy, a valid holder name. Returns the CSR and the holder's name as certified."""
    if profile not in ENTERPRISE_PROFILES:
        raise InvalidInput("PROFILE_UNKNOWN", f"unknown profile {profile!r} (login or seal)",
                           f"未知证书模板 {profile!r}（login 或 seal）", field="profile")
    if uscc is not None:
        identity.validate_uscc(uscc)
    csr = load_csr(csr_pem)
    check_key_policy(csr.public_key())
    return csr, identity.validate_person_name(holder, "holder")


def check_enterprise_active(ent: Any) -> None:
    if ent.status != "active":
        raise Conflict("ENTERPRISE_NOT_ACTIVE",
                       f"enterprise {ent.uscc} is deregistered: nothing new is issued",
                       f"企业 {ent.uscc} 已注销，不再签发证书", field="uscc")


def enterprise_request(csr: x509.CertificateSigningRequest, *, enterprise: Any, profile: str,
                       holder: str, actor: str, token_label: str | None = None,
                       target: str | None = None) -> IssuanceRequest:
    """The request for a checked CSR (``check_csr``) of an active enterprise whose subject
    names that enterprise exactly (``SUBJECT_MISMATCH`` names the field that differs)."""
    check_enterprise_active(enterprise)
    identity.check_subject_matches(csr.subject, uscc=enterprise.uscc, name=enterprise.name)
    return IssuanceRequest(profile=profile, public_key=csr.public_key(), holder=holder,
                           actor=actor, target=target or enterprise.uscc, enterprise=enterprise,
                           token_label=token_label)
