"""Re-key (换密钥): the holder's new key, proven by the old one.

The holder generates a new key on the USB-Key, signs a CSR with it, and signs
``rekey_digest(csr_der)`` (``eseal.pki.rekey_proof``) with the *old* key as proof that the
holder of the current certificate asks for this key (``rekey``). The new certificate is
issued at once but the old one stays valid until the client reports that it installed the
new one on the token (``confirm_rekey``); only then is every certificate of the old key
revoked with reason ``superseded`` (and marked ``replaced_by``), so the old key stops
working for login everywhere, at once: its sessions end in the same transaction.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from eseal import clock
from eseal.ca.authority import Authority
from eseal.ca.issuance import Draft, IssuanceRequest, Issued, spki_sha256
from eseal.ca.status import publish_crls
from eseal.errors import Conflict, InvalidInput
from eseal.pki import identity
from eseal.pki.csr import load_csr
from eseal.pki.key_policy import check_key_policy
from eseal.pki.rekey_proof import verify_rekey_proof
from eseal.pki.serials import normalize_serial
from eseal.ra.cert_checks import (
    check_cert_enterprise,
    check_enterprise_cert,
    check_live,
    enterprise_of,
    load_certificate,
    read_certificate,
    status_now,
)
from eseal.ra.renewal import RenewalTerms, renewal_terms
from eseal.ra.revocation import revoke_row
from eseal.store.models import Certificate


def rekey(auth: Authority, old_serial: str, csr_pem: bytes, proof: bytes,
          actor: str) -> Issued:
    """Certify the holder's new key; the old certificate stays valid until
    ``confirm_rekey``. Refusals as ``renew_one`` (no key-age limit: the key is new) plus
    ``CSR_*``, ``KEY_*``, ``REKEY_PROOF_INVALID``, ``REKEY_SAME_KEY``, ``CERT_SUPERSEDED``.
    """
    details: dict[str, Any] = {"serial": old_serial}

    def vet() -> tuple[Any, Any, Any, RenewalTerms]:
        canonical = normalize_serial(old_serial)
        details["serial"] = canonical
        csr = load_csr(csr_pem)
        new_public = csr.public_key()
        check_key_policy(new_public)
        new_spki = spki_sha256(new_public)
        details["new_key"] = new_spki
        with auth.db.read() as s:
            row = read_certificate(s, canonical)
            check_enterprise_cert(row)
            check_live(row, "re-keyed", "更换密钥")
            if row.replaced_by:
                raise Conflict("CERT_SUPERSEDED",
                               f"certificate {canonical} was renewed as {row.replaced_by}; "
                               "re-key the current certificate",
                               f"证书 {canonical} 已续期为 {row.replaced_by}，请对当前证书更换密钥",
                               field="serial", details={"replaced_by": row.replaced_by})
            ent = check_cert_enterprise(enterprise_of(s, row), row)
            verify_rekey_proof(x509.load_der_x509_certificate(row.der),
                               csr.public_bytes(serialization.Encoding.DER), proof)
            if new_spki == row.spki_sha256:
                raise InvalidInput("REKEY_SAME_KEY",
                                   "the CSR asks for the key already certified; a re-key "
                                   "needs a new key (an officer renews the same key)",
                                   "证书请求使用的仍是原密钥，更换密钥须使用新密钥", field="csr")
            identity.check_subject_matches(csr.subject, uscc=ent.uscc, name=ent.name)
            auth.check_key_free(s, new_spki, row.profile, renewing=False)
            terms = renewal_terms(not_after=row.not_after, now=clock.now(),
                                  settings=auth.settings,
                                  issuer_not_after=auth.certificate("issuing").not_valid_after_utc,
                                  serial=canonical)
        return row, ent, new_public, terms

    row, ent, new_public, terms = auth.refusing(vet, actor=actor, action="cert.rekey",
                                                target=old_serial, details=details)
    request = IssuanceRequest(
        profile=row.profile, public_key=new_public, holder=row.holder, actor=actor,
        action="cert.rekey", target=row.serial, enterprise=ent, token_label=row.token_label,
        not_after=terms.not_after, renewed_from=row.serial)
    details.update({"not_after": terms.not_after.isoformat(), "capped": terms.capped})

    def still_current(s: Session, draft: Draft) -> None:
        current = read_certificate(s, row.serial)
        check_live(current, "re-keyed", "更换密钥")
        if current.replaced_by:
            raise Conflict("CERT_SUPERSEDED",
                           f"certificate {row.serial} was renewed as {current.replaced_by}",
                           f"证书 {row.serial} 已续期为 {current.replaced_by}", field="serial")
        check_cert_enterprise(enterprise_of(s, current), current)

    return auth.certify(request, details=details, serial_field="new_serial",
                        then=still_current)


def _old_key_rows(s: Session, new: Certificate) -> tuple[Certificate, list[Certificate]]:
    """The certificate a re-key started from and every certificate of its key still to be
    superseded (not yet revoked, or not yet pointing at a successor)."""
    old = s.get(Certificate, new.renewed_from) if new.renewed_from else None
    if old is None or old.spki_sha256 == new.spki_sha256:
        raise InvalidInput("NOT_A_REKEY", f"certificate {new.serial} is not the result of a "
                           "re-key", f"证书 {new.serial} 不是换密钥签发的证书", field="serial")
    c = Certificate
    rows = list(s.execute(select(c).where(
        c.spki_sha256 == old.spki_sha256,
        or_(c.status != "revoked", c.replaced_by.is_(None))).order_by(c.serial)).scalars())
    return old, rows


def rekey_pending(auth: Authority, new_serial: str) -> bool:
    """True while ``new_serial`` came from a re-key whose old key is not superseded yet."""
    with auth.db.read() as s:
        new = s.get(Certificate, normalize_serial(new_serial))
        if new is None:
            return False
        try:
            _, rows = _old_key_rows(s, new)
        except InvalidInput:
            return False
        return any(r.status != "revoked" for r in rows)


def confirm_rekey(auth: Authority, new_serial: str, actor: str) -> list[str]:
    """The new certificate is on the token: supersede every certificate of the old key
    (revoked, reason ``superseded``; ``replaced_by`` the new one). Idempotent: returns the
    serials it changed (none on a repeat, which writes nothing)."""
    canonical = auth.refusing(lambda: normalize_serial(new_serial), actor=actor,
                              action="cert.rekey.confirm", target=new_serial)
    details: dict[str, Any] = {"new_serial": canonical}
    with auth.db.read() as s:
        new = s.get(Certificate, canonical)
        if new is not None and new.renewed_from:
            try:
                if not _old_key_rows(s, new)[1]:
                    return []
            except InvalidInput:
                pass  # refused (and audited) below
    now = status_now()
    changed: list[str] = []
    with auth.change(actor=actor, action="cert.rekey.confirm", target=canonical,
                     details=details) as s:
        new = load_certificate(s, canonical)
        old, rows = _old_key_rows(s, new)
        check_live(new, "confirmed", "确认")
        details["old_serial"] = old.serial
        for row in rows:
            if row.status != "revoked":
                revoke_row(s, row, "superseded", None, now)
            if row.replaced_by is None:
                row.replaced_by = canonical
            changed.append(row.serial)
        details["superseded"] = changed
    if changed:
        publish_crls(auth)
    return changed
