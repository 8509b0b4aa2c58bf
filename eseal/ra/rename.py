"""Renaming an enterprise (企业名称变更): new certificates first, the old ones superseded after.

The registered name is in the subject of every enterprise certificate (the seal's CN and O,
a login certificate's O), so a rename re-certifies the *same keys* under the new name. The
order is the point: (1) in one transaction the name changes, the history records it, and a
new certificate for each current login and seal certificate is recorded (``good`` the moment
it commits) and the old one is marked ``replaced_by`` it; (2) only then, in a second
transaction, each old certificate is revoked ``superseded``. There is never a moment without
a valid seal certificate, and an OCSP responder says ``revoked (superseded)`` for the old one
only once the new one already answers ``good``. Filings sealed before keep verifying: their
seal was timestamped before the revocation, and the revocation reason is not a compromise.

The new certificates keep the old ones' notAfter and key age (a rename is no renewal). A
frozen certificate is left as it is (re-certifying it would unfreeze it): the officer
unfreezes and renews it later; the result lists it. The holders pick the new certificates up
with ``eseal token refresh`` (certificates are public; no PIN); the seal image, drawn from
the certificate's O, follows the new name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from cryptography import x509
from sqlalchemy import select, update

from eseal import clock
from eseal.ca.authority import Authority
from eseal.ca.issuance import ENTERPRISE_PROFILES, Draft, IssuanceRequest
from eseal.ca.status import publish_crls
from eseal.errors import Conflict
from eseal.pki import identity
from eseal.ra.cert_checks import load_certificate, status_now
from eseal.ra.revocation import revoke_row
from eseal.store.models import Certificate, Enterprise
from eseal.store.models_enterprise import EnterpriseName

SUPERSEDED = "superseded"


@dataclass
class Rename:
    uscc: str
    old_name: str
    new_name: str
    replaced: dict[str, str] = field(default_factory=dict)  # old serial -> new serial
    left_frozen: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"uscc": self.uscc, "old_name": self.old_name, "new_name": self.new_name,
                "replaced": [{"old_serial": o, "new_serial": n}
                             for o, n in self.replaced.items()],
                "left_frozen": self.left_frozen}


def _current_certificates(auth: Authority, enterprise_id: int) -> list[Certificate]:
    now = clock.now()
    with auth.db.read() as s:
        return list(s.execute(select(Certificate).where(
            Certificate.enterprise_id == enterprise_id,
            Certificate.profile.in_(ENTERPRISE_PROFILES), Certificate.status != "revoked",
            Certificate.replaced_by.is_(None), Certificate.not_after > now)
            .order_by(Certificate.serial)).scalars())


def rename_enterprise(auth: Authority, uscc: str, new_name: str, *, actor: str,
                      between: Callable[[Rename], None] | None = None) -> Rename:
    """Rename, re-certify the same keys under the new name, then supersede the old ones.

    ``between`` runs after the new certificates are on record and before the old ones are
    revoked (tests look at OCSP there). Raises (audited, nothing changed): ``USCC_*``,
    ``NAME_*`` (field ``name``), ``ENTERPRISE_NOT_REGISTERED``, ``ENTERPRISE_NOT_ACTIVE``,
    ``NAME_UNCHANGED``.
    """
    details: dict[str, Any] = {"uscc": uscc, "new_name": new_name}

    def validate() -> tuple[str, str, Any]:
        code = identity.validate_uscc(uscc)
        name = identity.validate_chinese_enterprise_name(new_name, "name")
        ent = auth.enterprise(code)
        auth.check_enterprise_active(ent)
        if ent.name == name:
            raise Conflict("NAME_UNCHANGED", f"{code} is already registered as {name}",
                           f"{code} 的登记名称已是 {name}", field="name")
        return code, name, ent

    code, name, ent = auth.refusing(validate, actor=actor, action="enterprise.rename",
                                    target=uscc, details=details)
    result = Rename(uscc=code, old_name=ent.name, new_name=name)
    renamed = SimpleNamespace(id=ent.id, uscc=code, name=name)
    olds = _current_certificates(auth, ent.id)
    drafts: dict[str, Draft] = {}
    for old in olds:
        if old.status == "hold":
            result.left_frozen.append(old.serial)
            continue
        drafts[old.serial] = auth.prepare(IssuanceRequest(
            profile=old.profile, public_key=x509.load_der_x509_certificate(old.der).public_key(),
            holder=old.holder, actor=actor, target=code, action="enterprise.rename",
            enterprise=renamed, token_label=old.token_label, not_after=old.not_after,
            renewed_from=old.serial, key_certified_at=old.key_certified_at, renewing=True),
            dict(details))
    details.update({"old_name": ent.name,
                    "replaced": {o: d.serial for o, d in drafts.items()},
                    "left_frozen": result.left_frozen})
    now = clock.now()
    # (1) the new name and the new certificates, in one transaction
    with auth.change(actor=actor, action="enterprise.rename", target=code, details=details) as s:
        row = s.get_one(Enterprise, ent.id)
        if row.name != ent.name or row.status != "active":
            raise Conflict("ENTERPRISE_CHANGED", f"enterprise {code} changed meanwhile; try again",
                           f"企业 {code} 信息已变化，请重试", field="uscc")
        row.name, row.updated_at = name, now
        s.execute(update(EnterpriseName).where(EnterpriseName.enterprise_id == ent.id,
                                               EnterpriseName.valid_to.is_(None))
                  .values(valid_to=now))
        s.add(EnterpriseName(enterprise_id=ent.id, name=name, valid_from=now, changed_by=actor))
        for old_serial, draft in drafts.items():
            current = load_certificate(s, old_serial)
            if current.replaced_by or current.status != "good":
                raise Conflict("CERT_CHANGED", f"certificate {old_serial} changed meanwhile; "
                               "try again", f"证书 {old_serial} 状态已变化，请重试",
                               field="uscc")
            auth.record(s, draft)
            current.replaced_by = draft.serial
            auth.audit.append(s, actor=actor, action="cert.issue", target=code, details={
                "serial": draft.serial, "profile": draft.row["profile"],
                "holder": draft.row["holder"], "via": "enterprise.rename",
                "replaces": old_serial})
    result.replaced = {o: d.serial for o, d in drafts.items()}
    if between is not None:
        between(result)
    # (2) only now: the old certificates are superseded
    if drafts:
        when = status_now()
        with auth.change(actor=actor, action="enterprise.rename.supersede", target=code,
                         details={"serials": list(drafts)}) as s:
            for old_serial in drafts:
                revoke_row(s, load_certificate(s, old_serial), SUPERSEDED, None, when)
                auth.audit.append(s, actor=actor, action="cert.revoke", target=old_serial,
                                  details={"reason": SUPERSEDED, "via": "enterprise.rename",
                                           "replaced_by": drafts[old_serial].serial})
        publish_crls(auth)
    return result


def name_history(auth: Authority, uscc: str) -> list[dict[str, Any]]:
    """Every name the enterprise was registered under, oldest first."""
    code = identity.validate_uscc(uscc)
    with auth.db.read() as s:
        ent = auth.enterprise_row(s, code)
        rows = s.execute(select(EnterpriseName).where(EnterpriseName.enterprise_id == ent.id)
                         .order_by(EnterpriseName.id)).scalars().all()
        return [{"name": r.name, "valid_from": r.valid_from.isoformat(),
                 "valid_to": r.valid_to.isoformat() if r.valid_to else None,
                 "changed_by": r.changed_by} for r in rows]
