"""Enterprises: registering and deregistering the legal persons the CA serves.

Registration is the officer's vetting decision (USCC check character per GB 32100, the
registered name exactly as registered, the legal representative), so it is the RA's; the CA
only reads the record when it issues (``Authority.enterprise_row``).
"""

from __future__ import annotations

from sqlalchemy import select

from eseal import clock
from eseal.ca.authority import Authority
from eseal.errors import Conflict
from eseal.pki import identity
from eseal.store.models import Enterprise
from eseal.store.models_enterprise import EnterpriseName, LegalRepTerm


def register_enterprise(auth: Authority, *, uscc: str, name: str, legal_rep: str, actor: str,
                        contact_email: str | None = None) -> Enterprise:
    details = {"uscc": uscc, "name": name}

    def validate() -> tuple[str, str, str]:
        return (identity.validate_uscc(uscc), identity.validate_chinese_enterprise_name(name),
                identity.validate_person_name(legal_rep, "legal_rep"))

    code, reg_name, rep = auth.refusing(validate, actor=actor, action="enterprise.register",
                                        target=uscc, details=details)
    now = clock.now()
    with auth.change(actor=actor, action="enterprise.register", target=code,
                     details=details) as s:
        if s.execute(select(Enterprise.id).where(Enterprise.uscc == code)).first():
            raise Conflict("ENTERPRISE_EXISTS", f"enterprise {code} is already registered",
                           f"企业 {code} 已登记", field="uscc")
        ent = Enterprise(uscc=code, name=reg_name, legal_rep=rep, contact_email=contact_email,
                         status="active", created_at=now, updated_at=now)
        s.add(ent)
        s.flush()
        s.add(EnterpriseName(enterprise_id=ent.id, name=reg_name, valid_from=now,
                             changed_by=actor))
        s.add(LegalRepTerm(enterprise_id=ent.id, name=rep, valid_from=now, changed_by=actor))
    return ent

def deregister_enterprise(auth: Authority, uscc: str, *, actor: str) -> None:
    """Deregister an enterprise: nothing new is issued to it; its certificates stay as they
    are until an officer revokes them (``eseal.ra.revocation.revoke_all``)."""
    with auth.change(actor=actor, action="enterprise.deregister", target=uscc) as s:
        ent = s.get_one(Enterprise, auth.enterprise_row(s, uscc).id)
        ent.status = "deregistered"
        ent.updated_at = clock.now()
