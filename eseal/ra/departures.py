"""People who leave (经办人离职, a legal representative replaced): their keys stop working.

Disabling an account revokes every certificate of that person in that role
(``affiliationChanged``: the key is not compromised, its holder no longer speaks for the
enterprise), ends their login sessions in the same transaction, and keeps the account row
(``status = disabled``) so the audit log and the ledger still name who did what. Nothing is
deleted. The legal-representative change (``eseal.ra.legal_rep``) uses the same steps.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from eseal import clock
from eseal.auth.accounts import PROFILES_BY_ROLE, get_account
from eseal.ca.authority import Authority
from eseal.ca.status import publish_crls
from eseal.errors import Conflict
from eseal.ra.cert_checks import status_now
from eseal.ra.revocation import revoke_row
from eseal.store.models import Certificate
from eseal.store.models_login import accounts, login_sessions

AFFILIATION_CHANGED = "affiliationChanged"


def revoke_person(auth: Authority, s: Session, *, enterprise_id: int | None, role: str,
                  name: str, actor: str, via: str) -> list[str]:
    """Revoke (affiliationChanged) every not-yet-revoked certificate this person holds in
    this role, inside the caller's transaction; one audit event each. Returns the serials."""
    profiles = sorted(set(PROFILES_BY_ROLE.get(role, {}).values()))
    where = [Certificate.holder == name, Certificate.profile.in_(profiles),
             Certificate.status != "revoked", Certificate.issuer_role == "issuing"]
    where.append(Certificate.enterprise_id == enterprise_id if enterprise_id is not None
                 else Certificate.enterprise_id.is_(None))
    rows = s.execute(select(Certificate).where(*where).order_by(Certificate.serial)
                     .with_for_update()).scalars().all()
    now = status_now()
    for row in rows:
        revoke_row(s, row, AFFILIATION_CHANGED, None, now)
        auth.audit.append(s, actor=actor, action="cert.revoke", target=row.serial,
                          details={"reason": AFFILIATION_CHANGED, "via": via, "holder": name})
    return [row.serial for row in rows]


def open_sessions(s: Session, account_id: int) -> int:
    return int(s.execute(select(func.count()).select_from(login_sessions).where(
        login_sessions.c.account_id == account_id,
        login_sessions.c.ended_at.is_(None))).scalar_one())


def end_account(s: Session, account_id: int) -> int:
    """Disable an account and end its open sessions (caller's transaction)."""
    now = clock.now()
    s.execute(update(accounts).where(accounts.c.id == account_id).values(status="disabled"))
    ended = s.execute(update(login_sessions).where(
        login_sessions.c.account_id == account_id, login_sessions.c.ended_at.is_(None))
        .values(ended_at=now, end_reason="account_disabled"))
    return int(ended.rowcount or 0)


def disable_account(auth: Authority, account_id: int, *, actor: str,
                    by_role: str = "officer", by_enterprise_id: int | None = None,
                    by_account_id: int | None = None) -> dict[str, Any]:
    """Someone left: revoke their certificates, end their sessions, keep the account.

    A legal representative may disable the agents of their own enterprise; officers any
    account but their own. Raises (audited): ``ACCOUNT_NOT_FOUND``,
    ``ACCOUNT_ALREADY_DISABLED``, ``ACCOUNT_IS_YOURS``.
    """
    details: dict[str, Any] = {"account_id": account_id}
    target = f"account:{account_id}"

    def validate() -> Any:
        account = get_account(auth, account_id)
        if by_account_id is not None and account.id == by_account_id:
            raise Conflict("ACCOUNT_IS_YOURS", "you cannot disable your own account",
                           "不能停用自己的账户", field="account_id")
        if by_role != "officer" and (account.enterprise_id != by_enterprise_id
                                     or account.role != "agent"):
            from eseal.errors import NotFound

            raise NotFound("ACCOUNT_NOT_FOUND", f"no account {account_id} you may disable",
                           f"找不到可停用的账户 {account_id}", field="account_id")
        if account.status == "disabled":
            raise Conflict("ACCOUNT_ALREADY_DISABLED", f"account {account_id} is disabled",
                           f"账户 {account_id} 已停用", field="account_id")
        return account

    account = auth.refusing(validate, actor=actor, action="account.disable", target=target,
                            details=details)
    details.update({"role": account.role, "name": account.name,
                    "enterprise": account.enterprise_uscc})
    with auth.change(actor=actor, action="account.disable", target=target,
                     details=details) as s:
        details["sessions_ended"] = open_sessions(s, account_id)
        serials = revoke_person(auth, s, enterprise_id=account.enterprise_id,
                                role=account.role, name=account.name, actor=actor,
                                via="account.disable")
        details["revoked"] = serials
        end_account(s, account_id)
    if serials:
        publish_crls(auth)
    return {"account_id": account_id, "status": "disabled", "revoked": serials,
            "sessions_ended": details["sessions_ended"]}
