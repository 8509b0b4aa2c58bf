"""Accounts and roles: who a login certificate belongs to, and what that person may do.

An account is a person in a role: an enterprise's agent (经办人) or legal representative
(法定代表人), or a CA officer (管理员) or auditor (审计员) of the authority itself. An account
is found from the certificate that logs in: the certificate names the USB-Key it was issued
onto (``certificates.token_label``), the CA's record of that key (``tokens``) names the
enterprise, the role and the holder, and (enterprise, role, holder) is the account. Keys come
and go (renewal keeps the key, a lost key is replaced by a new token) and the account stays.

Also here: the login history (every attempt, with address, user agent, result and exact
code), the "first login from a new network" notice and the outbox queue both use. Lockout is
in ``eseal.auth.lockout``; enrollment codes and staff tokens are decisions of the RA
(``eseal.ra.enrollment_codes``, ``eseal.ra.staff``). The per-login statements are in
``eseal.auth.login`` (plain SQL on the login transaction's connection).
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    Connection,
    bindparam,
    select,
)

from eseal import clock
from eseal.auth.context import AuthContext
from eseal.errors import InvalidInput, NotFound
from eseal.store.db import insert_if_new
from eseal.store.models import Enterprise, Outbox
from eseal.store.models_login import account_networks, accounts, login_attempts

Role = Literal["agent", "legal_rep", "officer", "auditor"]
ROLES: tuple[Role, ...] = ("agent", "legal_rep", "officer", "auditor")
ENTERPRISE_ROLES: tuple[Role, ...] = ("agent", "legal_rep")
STAFF_ROLES: tuple[Role, ...] = ("officer", "auditor")
ROLE_NAMES_ZH = {"agent": "经办人", "legal_rep": "法定代表人", "officer": "管理员",
                 "auditor": "审计员"}
#: which keys (and certificate profiles) a holder in each role gets on their USB-Key
PROFILES_BY_ROLE: dict[str, dict[str, str]] = {
    "agent": {"login": "login"},
    "legal_rep": {"login": "login", "seal": "seal"},
    "officer": {"login": "officer"},
    "auditor": {"login": "officer"},
}
ENROLLMENT_CODE_HOURS = 72

_ENTERPRISES = Enterprise.__table__
_OUTBOX = Outbox.__table__

# --- prepared statements ------------------------------------------------------------------
_ACCOUNT_BY_IDENTITY = select(accounts).where(accounts.c.identity == bindparam("identity"))
ACCOUNT_BY_ID = select(accounts).where(accounts.c.id == bindparam("account_id"))
_NEW_NETWORK = select(account_networks.c.network).where(
    account_networks.c.account_id == bindparam("account_id"),
    account_networks.c.network == bindparam("network"))
_OUTBOX_BY_DEDUPE = select(_OUTBOX.c.id).where(_OUTBOX.c.dedupe_key == bindparam("dedupe"))


# --- accounts -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Account:
    id: int
    role: str
    name: str
    enterprise_id: int | None
    enterprise_uscc: str | None
    status: str
    failures: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def to_dict(self, now: datetime | None = None) -> dict[str, Any]:
        now = now or clock.now()
        return {"id": self.id, "role": self.role, "name": self.name,
                "enterprise": self.enterprise_uscc, "status": self.status,
                "locked": self.locked(now),
                "locked_until": self.locked_until.isoformat() if self.locked(now)
                and self.locked_until else None,
                "failures": self.failures,
                "last_login_at": self.last_login_at.isoformat() if self.last_login_at else None}


def account_identity(role: str, enterprise_id: int | None, name: str) -> str:
    """The one string that names an account: enterprise (or staff), role and holder."""
    where = f"ent:{enterprise_id}" if enterprise_id is not None else "staff"
    return f"{where}:{role}:{name}"


def check_role(role: str, *, allowed: tuple[str, ...] = ROLES) -> Role:
    if role not in allowed:
        raise InvalidInput("ROLE_UNKNOWN", f"unknown role {role!r} ({', '.join(allowed)})",
                           f"未知角色 {role!r}（{'、'.join(allowed)}）", field="role")
    return role  # type: ignore[return-value]


def ensure_account(conn: Connection, *, role: str, name: str, enterprise_id: int | None,
                   now: datetime) -> int:
    """The id of the account (role, name, enterprise), created on first use. Call inside a
    write transaction: the read and the insert must not interleave with another writer."""
    ident = account_identity(role, enterprise_id, name)
    row = conn.execute(_ACCOUNT_BY_IDENTITY, {"identity": ident}).first()
    if row is not None:
        return int(row.id)
    # ON CONFLICT: should another writer have created it meanwhile, keep theirs, no error
    insert_if_new(conn, accounts, ("identity",), {
        "identity": ident, "role": role, "name": name, "enterprise_id": enterprise_id,
        "status": "active", "failures": 0, "locked_until": None, "created_at": now,
        "last_login_at": None})
    return int(conn.execute(_ACCOUNT_BY_IDENTITY, {"identity": ident}).one().id)




def _account(row: Any, uscc: str | None) -> Account:
    return Account(id=row.id, role=row.role, name=row.name, enterprise_id=row.enterprise_id,
                   enterprise_uscc=uscc, status=row.status, failures=row.failures,
                   locked_until=row.locked_until, created_at=row.created_at,
                   last_login_at=row.last_login_at)


def get_account(auth: AuthContext, account_id: int) -> Account:
    with auth.db.engine.connect() as conn:
        row = conn.execute(
            select(accounts, _ENTERPRISES.c.uscc)
            .select_from(accounts.outerjoin(_ENTERPRISES,
                                            _ENTERPRISES.c.id == accounts.c.enterprise_id))
            .where(accounts.c.id == account_id)).first()
    if row is None:
        raise NotFound("ACCOUNT_NOT_FOUND", f"no account {account_id}", f"找不到账户 {account_id}",
                       field="account_id")
    return _account(row, row.uscc)


def list_accounts(auth: AuthContext, *, enterprise_id: int | None = None,
                  all_accounts: bool = False) -> list[Account]:
    """The accounts of one enterprise, or (``all_accounts``) every account."""
    q = (select(accounts, _ENTERPRISES.c.uscc)
         .select_from(accounts.outerjoin(_ENTERPRISES,
                                         _ENTERPRISES.c.id == accounts.c.enterprise_id))
         .order_by(accounts.c.id))
    if not all_accounts:
        q = q.where(accounts.c.enterprise_id == enterprise_id)
    with auth.db.engine.connect() as conn:
        return [_account(row, row.uscc) for row in conn.execute(q)]


@dataclass(frozen=True)
class CertOwner:
    """A certificate as the login path sees it, and the account it belongs to (if any)."""

    serial: str
    profile: str
    status: str
    not_before: datetime
    not_after: datetime
    enterprise_id: int | None
    enterprise_uscc: str | None
    enterprise_status: str | None
    contact_email: str | None
    role: str | None
    holder: str | None

    @property
    def has_account(self) -> bool:
        return self.role is not None and self.holder is not None




# --- notices ----------------------------------------------------------------------------------
def notice_recipient(auth: AuthContext, owner: CertOwner) -> str:
    """Enterprise accounts: the enterprise's contact; staff accounts: the CA's own mailbox."""
    if owner.enterprise_id is None:
        return auth.settings.smtp_sender
    return owner.contact_email or ""


def queue_notice(conn: Connection, *, recipient: str, subject: str, body: str, kind: str,
                 dedupe_key: str, now: datetime) -> bool:
    """Queue one mail in the outbox (at most once per ``dedupe_key``); False if there is no
    address to send it to or it was queued before."""
    if not recipient:
        return False
    if conn.execute(_OUTBOX_BY_DEDUPE, {"dedupe": dedupe_key}).first() is not None:
        return False
    return insert_if_new(conn, _OUTBOX, ("dedupe_key",), {
        "message_id": f"<{secrets.token_hex(16)}@eseal>", "recipient": recipient,
        "subject": subject, "body": body, "kind": kind, "created_at": now, "sent_at": None,
        "attempts": 0, "last_error": None, "dedupe_key": dedupe_key, "sent": False})


def network_of(address: str | None) -> str | None:
    """The network an address belongs to, as notices speak of it: IPv4 /24, IPv6 /48."""
    if not address:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def note_network(auth: AuthContext, conn: Connection, account: Any, owner: CertOwner,
                 network: str | None, now: datetime) -> bool:
    """Remember the network of a successful login; True (and a notice queued) the first time
    this account logs in from it."""
    if network is None:
        return False
    if conn.execute(_NEW_NETWORK, {"account_id": account.id, "network": network}).first():
        return False
    if not insert_if_new(conn, account_networks, ("account_id", "network"),
                         {"account_id": account.id, "network": network, "first_seen": now}):
        return False  # another writer noted it first (and queued the notice)
    subject = f"eseal: new login network for {account.name} / 新网络登录提醒"
    body = (f"{account.name} ({account.role}) logged in to eseal from a network not seen "
            f"before: {network}, at {now.isoformat()}. If this was not them, ask an officer "
            "to freeze the USB-Key's certificate.\n"
            f"{account.name}（{ROLE_NAMES_ZH.get(account.role, account.role)}）于 "
            f"{now.isoformat()} 首次从网络 {network} 登录 eseal。如非本人操作，请联系管理员冻结"
            "该 USB-Key 的证书。\n")
    queue_notice(conn, recipient=notice_recipient(auth, owner), subject=subject, body=body,
                 kind="login_new_network", dedupe_key=f"net:{account.id}:{network}", now=now)
    return True


def login_history(auth: AuthContext, *, enterprise_id: int | None = None,
                  all_enterprises: bool = False, account_id: int | None = None,
                  limit: int = 100, before_id: int | None = None) -> list[dict[str, Any]]:
    """Login attempts, newest first: one enterprise's, or (officers) everyone's."""
    q = (select(login_attempts, accounts.c.name, accounts.c.role, _ENTERPRISES.c.uscc)
         .select_from(login_attempts
                      .outerjoin(accounts, accounts.c.id == login_attempts.c.account_id)
                      .outerjoin(_ENTERPRISES,
                                 _ENTERPRISES.c.id == login_attempts.c.enterprise_id))
         .order_by(login_attempts.c.id.desc()).limit(max(1, min(limit, 1000))))
    if not all_enterprises:
        q = q.where(login_attempts.c.enterprise_id == enterprise_id)
    if account_id is not None:
        q = q.where(login_attempts.c.account_id == account_id)
    if before_id is not None:
        q = q.where(login_attempts.c.id < before_id)
    with auth.db.engine.connect() as conn:
        rows = conn.execute(q).all()
    return [{"id": r.id, "at": r.at.isoformat(), "account_id": r.account_id,
             "account": r.name, "role": r.role, "enterprise": r.uscc,
             "certificate_serial": r.certificate_serial, "address": r.address,
             "network": r.network, "user_agent": r.user_agent, "result": r.result,
             "code": r.code, "possession": bool(r.possession),
             "new_network": bool(r.new_network)} for r in rows]
