"""A new legal representative (法定代表人变更): the old one stops speaking for the enterprise.

In one transaction: the enterprise row and the term history name the new representative; the
old representative's account is disabled and their sessions end; every certificate they hold
as legal representative (login and seal) is revoked ``affiliationChanged``; drafts still
waiting for a seal are flagged ``legal_rep_changed`` (the old one can no longer seal them);
the emergency contacts are told. Then an enrollment code for the new representative is
issued (shown once), so they enroll their own USB-Key and seal from then on. The intake
refuses the old one's seal on any new filing because their seal certificate is revoked and
no longer current.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from eseal import clock
from eseal.auth.accounts import account_identity
from eseal.ca.authority import Authority
from eseal.ca.status import publish_crls
from eseal.errors import Conflict
from eseal.pki import identity
from eseal.ra.contacts import notify_contacts
from eseal.ra.departures import end_account, open_sessions, revoke_person
from eseal.ra.enrollment_codes import create_enrollment_code
from eseal.store.models import Enterprise
from eseal.store.models_enterprise import LegalRepTerm
from eseal.store.models_filings import Filing
from eseal.store.models_login import accounts

FLAG_LEGAL_REP_CHANGED = "legal_rep_changed"


def change_legal_rep(auth: Authority, uscc: str, new_rep: str, *,
                     actor: str) -> dict[str, Any]:
    """Replace the legal representative; returns what changed and the new one's code.

    Raises (audited, nothing changed): ``USCC_*``, ``NAME_EMPTY`` and the other ``NAME_*``
    (field ``legal_rep``), ``ENTERPRISE_NOT_REGISTERED``, ``ENTERPRISE_NOT_ACTIVE``,
    ``LEGAL_REP_UNCHANGED``.
    """
    details: dict[str, Any] = {"uscc": uscc, "new_legal_rep": new_rep}

    def validate() -> tuple[str, str, Any]:
        code = identity.validate_uscc(uscc)
        name = identity.validate_person_name(new_rep, "legal_rep")
        ent = auth.enterprise(code)
        auth.check_enterprise_active(ent)
        if ent.legal_rep == name:
            raise Conflict("LEGAL_REP_UNCHANGED", f"{name} is already the legal representative",
                           f"{name} 已是法定代表人", field="legal_rep")
        return code, name, ent

    code, name, ent = auth.refusing(validate, actor=actor, action="enterprise.legal_rep.change",
                                    target=uscc, details=details)
    old = ent.legal_rep
    details["old_legal_rep"] = old
    now = clock.now()
    with auth.change(actor=actor, action="enterprise.legal_rep.change", target=code,
                     details=details) as s:
        row = s.get_one(Enterprise, ent.id)
        if row.legal_rep != old:
            raise Conflict("ENTERPRISE_CHANGED", f"enterprise {code} changed meanwhile; try again",
                           f"企业 {code} 信息已变化，请重试", field="uscc")
        row.legal_rep, row.updated_at = name, now
        s.execute(update(LegalRepTerm).where(LegalRepTerm.enterprise_id == ent.id,
                                             LegalRepTerm.valid_to.is_(None))
                  .values(valid_to=now))
        s.add(LegalRepTerm(enterprise_id=ent.id, name=name, valid_from=now, changed_by=actor))
        account_id = s.execute(select(accounts.c.id).where(
            accounts.c.identity == account_identity("legal_rep", ent.id, old))).scalar()
        details["old_account"] = account_id
        details["sessions_ended"] = open_sessions(s, account_id) if account_id else 0
        details["revoked"] = revoke_person(auth, s, enterprise_id=ent.id, role="legal_rep",
                                           name=old, actor=actor,
                                           via="enterprise.legal_rep.change")
        if account_id:
            end_account(s, account_id)
        flagged = s.execute(update(Filing).where(Filing.enterprise_id == ent.id,
                                                 Filing.status == "draft")
                            .values(flag=FLAG_LEGAL_REP_CHANGED)
                            .returning(Filing.id)).scalars().all()
        details["flagged_filings"] = sorted(flagged)
        details["contacts_notified"] = notify_contacts(
            s, enterprise_id=ent.id, uscc=code, event="legal_rep_changed",
            detail=f"{old} -> {name}", dedupe=f"{code}:{now.isoformat()}")
    if details["revoked"]:
        publish_crls(auth)
    enrolment = create_enrollment_code(auth, role="legal_rep", holder=name, uscc=code,
                                       actor=actor)
    return {"uscc": code, "old_legal_rep": old, "legal_rep": name,
            "revoked": details["revoked"], "sessions_ended": details["sessions_ended"],
            "flagged_filings": details["flagged_filings"],
            "enrollment_code": enrolment.to_dict()}


def legal_rep_history(auth: Authority, uscc: str) -> list[dict[str, Any]]:
    code = identity.validate_uscc(uscc)
    with auth.db.read() as s:
        ent = auth.enterprise_row(s, code)
        rows = s.execute(select(LegalRepTerm).where(LegalRepTerm.enterprise_id == ent.id)
                         .order_by(LegalRepTerm.id)).scalars().all()
        return [{"name": r.name, "valid_from": r.valid_from.isoformat(),
                 "valid_to": r.valid_to.isoformat() if r.valid_to else None} for r in rows]
