"""Accounts and roles: who a login certificate belongs to, and what that person may do.

An account is a person in a role: an enterprise's agent (经办人) or legal representative
(法定代表人), or a CA officer (管理员) or auditor (审计员) of the authority itself. An account
is found from the certificate that logs in: the certificate names the USB-Key it was issued
onto (``certificates.token_label``), the CA's record of that key (``tokens``) names the
enterprise, the role and the holder, and (enterprise, role, holder) is the account. Keys come
and go (renewal keeps the key, a lost key is replaced by a new token) and the account stays.

This module also keeps what belongs to accounts rather than to one login:

* enrollment codes (single use, stored hashed): an officer, or an enterprise's legal
  representative for its agents, asks for one; the holder redeems it from their own machine
  with ``eseal token enroll --server URL --code C`` (keys are made on their token);
* lockout (decided here only, :data:`LOCKOUT_FAILURES`): only failures that prove the key
  signed *now* count toward the account: a valid signature over a challenge this server
  issued, still live and never answered, whose signed origin, purpose or time differ from the
  challenge (a phishing relay, or someone using the key against us); ``lockout_threshold`` of
  them lock it for ``lockout_hours`` and alert the enterprise; an officer unlocks it.
  Failures anyone could cause (certificates are public, and a captured answer can be sent
  again from anywhere: replayed, expired or unknown challenges) never lock an account; they
  feed rate limits in ``eseal.ca.login``;
* login history (every attempt, with address, user agent, result and exact code) and the
  "first login from a new network" notice, queued in the outbox;
* the staff tokens: ``eseal init`` provisions the first officer's USB-Key with an officer
  login certificate (``provision_staff_token``).

The tables live here until they move to ``eseal.store.models`` (the schema is created by
migration 0003). The per-login statements themselves are in ``eseal.ca.login`` (plain SQL
on the login transaction's connection); what is here runs once per account, per lockout or
per officer request.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from sqlalchemy import (
    Connection,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.orm import Session

from eseal import clock
from eseal.ca import identity
from eseal.errors import Conflict, Forbidden, InvalidInput, NotFound
from eseal.store.models import Certificate, EnrollmentCode, Enterprise, Outbox, TokenRecord
from eseal.store.models_login import account_networks, accounts, login_attempts

if TYPE_CHECKING:
    from eseal.ca.authority import Authority, Issued

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

_CERTS = Certificate.__table__
_ENTERPRISES = Enterprise.__table__
_CODES = EnrollmentCode.__table__
_OUTBOX = Outbox.__table__

# --- prepared statements ------------------------------------------------------------------
_ACCOUNT_BY_IDENTITY = select(accounts).where(accounts.c.identity == bindparam("identity"))
_ACCOUNT_BY_ID = select(accounts).where(accounts.c.id == bindparam("account_id"))
_INSERT_ACCOUNT = insert(accounts)
_NEW_NETWORK = select(account_networks.c.network).where(
    account_networks.c.account_id == bindparam("account_id"),
    account_networks.c.network == bindparam("network"))
_INSERT_NETWORK = insert(account_networks)
_INSERT_OUTBOX = insert(_OUTBOX)
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
    result = conn.execute(_INSERT_ACCOUNT, {
        "identity": ident, "role": role, "name": name, "enterprise_id": enterprise_id,
        "status": "active", "failures": 0, "locked_until": None, "created_at": now,
        "last_login_at": None})
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def _account(row: Any, uscc: str | None) -> Account:
    return Account(id=row.id, role=row.role, name=row.name, enterprise_id=row.enterprise_id,
                   enterprise_uscc=uscc, status=row.status, failures=row.failures,
                   locked_until=row.locked_until, created_at=row.created_at,
                   last_login_at=row.last_login_at)


def get_account(auth: Authority, account_id: int) -> Account:
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


def list_accounts(auth: Authority, *, enterprise_id: int | None = None,
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


# --- lockout ----------------------------------------------------------------------------------
#: The refusals that count toward an account's lockout, and the only place that says so.
#: The question for each refusal after a valid signature: does it prove that the key signed
#: *now*, for this attempt? Only a signature over a nonce this server issued at most
#: ``challenge_ttl_seconds`` ago and nobody had answered yet does (32 random bytes cannot be
#: signed before they exist, and the nonce is spent by this very answer, so one signature
#: makes at most one such failure). If the bytes signed over that fresh nonce then differ from
#: the challenge (another origin: a phishing site relayed it; another purpose or issue time:
#: someone using the key against us), the key's holder is being attacked or the key is
#: misused, and locking protects the account.
#: Not in the set, because an old signature produces them as often as anyone likes, from any
#: address: ``CHALLENGE_REPLAYED`` (a spent nonce: a captured answer sent again),
#: ``CHALLENGE_EXPIRED`` (signed at some time before now, perhaps long ago),
#: ``CHALLENGE_UNKNOWN`` (a nonce this server never issued or has purged: nothing dates the
#: signature). Those feed the address and certificate rate limits only; an attacker who merely
#: captured an answer must never be able to lock its holder out or end their sessions.
LOCKOUT_FAILURES = frozenset({"CHALLENGE_ORIGIN", "CHALLENGE_PURPOSE", "CHALLENGE_MISMATCH"})


class LockoutStep(NamedTuple):
    """What one refusal did to the account: counted toward its lockout, and locked it."""

    counted: bool
    locked: bool


def count_possession_failure(auth: Authority, s: Session, account: Any | None,
                             owner: CertOwner | None, *, code: str, address: str | None,
                             now: datetime) -> LockoutStep:
    """Count one challenge refusal after a valid signature toward the account's lockout, if
    it proves that the key signed now (:data:`LOCKOUT_FAILURES`) and the key is a holder's.

    Every such refusal comes here, so whether it counts is decided in this one place; the
    caller feeds the rate limits with whatever was not counted. Runs inside the login's
    write transaction. Locking ends the account's sessions (``resolve_session`` checks the
    lock on every request) and queues an alert to the enterprise.
    """
    if not counts_toward_lockout(code) or account is None or owner is None:
        return LockoutStep(counted=False, locked=False)
    conn = s.connection()
    failures = int(account.failures) + 1
    threshold = auth.settings.lockout_threshold
    if failures < threshold:
        conn.execute(update(accounts).where(accounts.c.id == account.id)
                     .values(failures=failures))
        return LockoutStep(counted=True, locked=False)
    until = now + timedelta(hours=auth.settings.lockout_hours)
    # its sessions die with it: every request checks the account's lock (resolve_session)
    conn.execute(update(accounts).where(accounts.c.id == account.id)
                 .values(failures=0, locked_until=until))
    subject = f"eseal: account of {account.name} locked / 账户已锁定"
    body = (f"The eseal account of {account.name} ({account.role}) was locked at "
            f"{now.isoformat()} until {until.isoformat()} after {threshold} failed logins that "
            f"used the holder's own USB-Key (last: {code}, from {address or 'unknown'}). This "
            "is what a relayed or phished login looks like. An officer can unlock the account.\n"
            f"{account.name}（{ROLE_NAMES_ZH.get(account.role, account.role)}）的 eseal 账户因 "
            f"{threshold} 次使用其 USB-Key 的异常登录（最近一次：{code}）被锁定至 "
            f"{until.isoformat()}，疑似登录被中继或钓鱼。管理员可解除锁定。\n")
    queue_notice(conn, recipient=_recipient(auth, owner), subject=subject, body=body,
                 kind="account_locked", dedupe_key=f"lock:{account.id}:{until.isoformat()}",
                 now=now)
    auth.audit.append(s, actor="system:login", action="account.lock",
                      target=f"account:{account.id}",
                      details={"account_id": account.id, "until": until.isoformat(),
                               "last_code": code, "serial": owner.serial})
    return LockoutStep(counted=True, locked=True)


def counts_toward_lockout(code: str) -> bool:
    """True for the refusals that prove the key signed now (:data:`LOCKOUT_FAILURES`)."""
    return code in LOCKOUT_FAILURES


def unlock_account(auth: Authority, account_id: int, *, actor: str) -> Account:
    """An officer lifts a lockout (and clears the failure count); audited."""
    with auth.change(actor=actor, action="account.unlock", target=f"account:{account_id}",
                     details={"account_id": account_id}) as s:
        conn = s.connection()
        row = conn.execute(_ACCOUNT_BY_ID, {"account_id": account_id}).first()
        if row is None:
            raise NotFound("ACCOUNT_NOT_FOUND", f"no account {account_id}",
                           f"找不到账户 {account_id}", field="account_id")
        conn.execute(update(accounts).where(accounts.c.id == account_id)
                     .values(failures=0, locked_until=None))
    return get_account(auth, account_id)


# --- notices ----------------------------------------------------------------------------------
def _recipient(auth: Authority, owner: CertOwner) -> str:
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
    conn.execute(_INSERT_OUTBOX, {
        "message_id": f"<{secrets.token_hex(16)}@eseal>", "recipient": recipient,
        "subject": subject, "body": body, "kind": kind, "created_at": now, "sent_at": None,
        "attempts": 0, "last_error": None, "dedupe_key": dedupe_key, "sent": False})
    return True


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


def note_network(auth: Authority, conn: Connection, account: Any, owner: CertOwner,
                 network: str | None, now: datetime) -> bool:
    """Remember the network of a successful login; True (and a notice queued) the first time
    this account logs in from it."""
    if network is None:
        return False
    if conn.execute(_NEW_NETWORK, {"account_id": account.id, "network": network}).first():
        return False
    conn.execute(_INSERT_NETWORK, {"account_id": account.id, "network": network,
                                   "first_seen": now})
    subject = f"eseal: new login network for {account.name} / 新网络登录提醒"
    body = (f"{account.name} ({account.role}) logged in to eseal from a network not seen "
            f"before: {network}, at {now.isoformat()}. If this was not them, ask an officer "
            "to freeze the USB-Key's certificate.\n"
            f"{account.name}（{ROLE_NAMES_ZH.get(account.role, account.role)}）于 "
            f"{now.isoformat()} 首次从网络 {network} 登录 eseal。如非本人操作，请联系管理员冻结"
            "该 USB-Key 的证书。\n")
    queue_notice(conn, recipient=_recipient(auth, owner), subject=subject, body=body,
                 kind="login_new_network", dedupe_key=f"net:{account.id}:{network}", now=now)
    return True


def login_history(auth: Authority, *, enterprise_id: int | None = None,
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


# --- enrollment codes -------------------------------------------------------------------------
_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L


def _code_hash(code: str) -> str:
    return hashlib.sha256(b"eseal-enroll-code-v1\x00" + normalize_code(code).encode()).hexdigest()


def normalize_code(code: str) -> str:
    return "".join(c for c in code.upper() if c.isalnum())


@dataclass(frozen=True)
class NewCode:
    code: str  # shown once, stored only hashed
    role: str
    holder: str
    uscc: str | None
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "role": self.role, "holder": self.holder,
                "enterprise": self.uscc, "expires_at": self.expires_at.isoformat()}


def create_enrollment_code(auth: Authority, *, role: str, holder: str, uscc: str | None,
                           actor: str, by_role: str = "officer",
                           by_enterprise_id: int | None = None,
                           hours: int = ENROLLMENT_CODE_HOURS) -> NewCode:
    """A single-use code for enrolling one holder's USB-Key from their own machine.

    Officers ask for any role; a legal representative (``by_role="legal_rep"``) only for
    agents of their own enterprise. A legal representative's code must name the registered
    legal representative exactly; staff codes (officer, auditor) name no enterprise.
    """
    details = {"role": role, "holder": holder, "uscc": uscc}

    def validate() -> tuple[str, str, Any]:
        the_role = check_role(role)
        name = identity.validate_person_name(holder, "holder")
        if by_role == "legal_rep" and the_role != "agent":
            raise Forbidden("ROLE_FORBIDDEN",
                            "a legal representative asks for enrollment codes for agents only",
                            "法定代表人只能为经办人申请开通码", field="role")
        if the_role in STAFF_ROLES:
            if uscc:
                raise InvalidInput("STAFF_HAS_NO_ENTERPRISE",
                                   f"a {the_role} account belongs to the CA, not to an enterprise",
                                   f"{ROLE_NAMES_ZH[the_role]}账户属于 CA，不属于企业",
                                   field="uscc")
            return the_role, name, None
        if not uscc:
            raise InvalidInput("USCC_REQUIRED", f"a {the_role} code names the enterprise",
                               "须指定企业统一社会信用代码", field="uscc")
        ent = auth.enterprise(identity.validate_uscc(uscc))
        if by_enterprise_id is not None and ent.id != by_enterprise_id:
            raise NotFound("ENTERPRISE_NOT_FOUND", f"no enterprise {uscc} for you",
                           f"找不到企业 {uscc}", field="uscc")
        auth.check_enterprise_active(ent)
        identity.check_holder(the_role, name, ent.legal_rep)
        return the_role, name, ent

    the_role, name, ent = auth.refusing(validate, actor=actor, action="enroll_code.create",
                                        target=uscc, details=details)
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(20))  # ~99 bits
    code = "-".join(raw[i:i + 5] for i in range(0, 20, 5))
    expires = clock.now() + timedelta(hours=hours)
    with auth.change(actor=actor, action="enroll_code.create",
                     target=ent.uscc if ent else f"staff:{the_role}",
                     details={**details, "expires_at": expires.isoformat()}) as s:
        s.connection().execute(insert(_CODES).values(
            code_hash=_code_hash(code), enterprise_id=ent.id if ent else None, role=the_role,
            holder=name, expires_at=expires, used_at=None, created_by=actor))
    return NewCode(code=code, role=the_role, holder=name, uscc=ent.uscc if ent else None,
                   expires_at=expires)


@dataclass(frozen=True)
class CodeInfo:
    """What a valid code is for: enough for the holder's machine to build its CSRs."""

    role: str
    holder: str
    uscc: str | None
    enterprise_name: str | None
    enterprise_id: int | None
    expires_at: datetime
    profiles: dict[str, str]  # key purpose -> certificate profile

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role, "holder": self.holder, "enterprise": self.uscc,
                "enterprise_name": self.enterprise_name,
                "expires_at": self.expires_at.isoformat(), "keys": self.profiles}


_CODE_REFUSED = ("ENROLL_CODE_INVALID", "this enrollment code is unknown, used or expired",
                 "开通码无效、已使用或已过期")


def _code_info(conn: Connection, code: str, now: datetime) -> CodeInfo:
    row = conn.execute(
        select(_CODES, _ENTERPRISES.c.uscc, _ENTERPRISES.c.name.label("ent_name"))
        .select_from(_CODES.outerjoin(_ENTERPRISES, _ENTERPRISES.c.id == _CODES.c.enterprise_id))
        .where(_CODES.c.code_hash == _code_hash(code))).first()
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise NotFound(*_CODE_REFUSED, field="code")
    return CodeInfo(role=row.role, holder=row.holder, uscc=row.uscc,
                    enterprise_name=row.ent_name, enterprise_id=row.enterprise_id,
                    expires_at=row.expires_at, profiles=dict(PROFILES_BY_ROLE[row.role]))


def describe_code(auth: Authority, code: str) -> CodeInfo:
    """What an unused, unexpired code enrolls (the code is the credential: no session)."""
    if not isinstance(code, str) or not 8 <= len(normalize_code(code)) <= 64:
        raise InvalidInput(*_CODE_REFUSED, field="code")
    with auth.db.engine.connect() as conn:
        return _code_info(conn, code, clock.now())


@dataclass(frozen=True)
class Redeemed:
    label: str
    role: str
    holder: str
    uscc: str | None
    account_id: int
    issued: dict[str, Issued]
    chain: list[bytes]  # PEM, issuing CA first

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "role": self.role, "holder": self.holder,
                "enterprise": self.uscc, "account_id": self.account_id,
                "certificates": {p: {"serial": i.serial, "pem": i.pem.decode("ascii"),
                                     "not_after": i.certificate.not_valid_after_utc.isoformat()}
                                 for p, i in self.issued.items()},
                "chain": [pem.decode("ascii") for pem in self.chain]}


def redeem_code(auth: Authority, *, code: str, label: str, csrs: dict[str, bytes],
                actor: str = "holder:enroll") -> Redeemed:
    """Certify the keys a holder generated on their token, once per code.

    Everything that can be checked is checked before the code is spent; the code is then
    taken with one atomic UPDATE (two redemptions racing: one wins). A failure after that
    gives the code back and withdraws what was issued.
    """
    from eseal.ca.csr import load_csr
    from eseal.ca.profiles import check_key_policy
    from eseal.token.usbkey import check_label

    details: dict[str, Any] = {"label": label}
    now = clock.now()

    def validate() -> tuple[CodeInfo, dict[str, Any]]:
        info = describe_code(auth, code)
        details.update({"role": info.role, "holder": info.holder, "uscc": info.uscc})
        check_label(label)
        wanted = set(info.profiles)
        given = set(csrs)
        if given != wanted:
            raise InvalidInput("CSR_SET_MISMATCH",
                               f"a {info.role} enrolls exactly these keys: "
                               f"{', '.join(sorted(wanted))} (got {', '.join(sorted(given))})",
                               f"{ROLE_NAMES_ZH[info.role]}须提交以下密钥的证书请求："
                               f"{'、'.join(sorted(wanted))}", field="csrs")
        loaded = {}
        for purpose, pem in csrs.items():
            csr = load_csr(pem)
            check_key_policy(csr.public_key())
            loaded[purpose] = csr
        with auth.db.read() as s:
            record = s.get(TokenRecord, label)
            if record is not None and record.role is not None:
                raise Conflict("TOKEN_LABEL_IN_USE",
                               f"the CA already has an enrolled token labelled {label!r}; "
                               "give the new USB-Key another label",
                               f"CA 已有标签为 {label!r} 的 USB-Key，请更换标签", field="label")
            if info.enterprise_id is not None:
                ent = auth.enterprise_row(s, info.uscc or "")
                auth.check_enterprise_active(ent)
                for csr in loaded.values():
                    auth.check_csr_subject(csr, ent)
        return info, loaded

    info, loaded = auth.refusing(validate, actor=actor, action="enroll_code.redeem",
                                 target=label, details=details)
    code_hash = _code_hash(code)
    with auth.change(actor=actor, action="enroll_code.redeem", target=label,
                     details=details) as s:
        taken = s.connection().execute(
            update(_CODES).where(_CODES.c.code_hash == code_hash, _CODES.c.used_at.is_(None),
                                 _CODES.c.expires_at > now).values(used_at=now))
        if taken.rowcount != 1:
            raise NotFound(*_CODE_REFUSED, field="code")
    issued: dict[str, Issued] = {}
    try:
        for purpose, profile in info.profiles.items():
            pem = csrs[purpose]
            if info.uscc is not None:
                issued[purpose] = auth.issue(pem, uscc=info.uscc, profile=profile,
                                             holder=info.holder, actor=actor, token_label=label)
            else:
                issued[purpose] = issue_staff_certificate(
                    auth, loaded[purpose].public_key(), holder=info.holder, label=label,
                    actor=actor)
        with auth.change(actor=actor, action="token.enroll", target=label,
                         details={**details, "serials": {p: i.serial
                                                         for p, i in issued.items()}}) as s:
            record = s.get(TokenRecord, label)
            if record is None:
                record = TokenRecord(label=label, created_at=now)
                s.add(record)
            elif record.role is not None:
                raise Conflict("TOKEN_LABEL_IN_USE", f"token {label!r} is already enrolled",
                               f"USB-Key {label!r} 已办理过证书", field="label")
            record.enterprise_id = info.enterprise_id
            record.role = info.role
            record.holder = info.holder
            s.flush()
            account_id = ensure_account(s.connection(), role=info.role, name=info.holder,
                                        enterprise_id=info.enterprise_id, now=now)
    except BaseException as exc:
        with auth.db.write() as s:
            s.connection().execute(update(_CODES).where(_CODES.c.code_hash == code_hash)
                                   .values(used_at=None))
        from eseal.ca.enrollment import withdraw

        withdraw(auth, issued, actor=actor, label=label, cause=exc)  # type: ignore[arg-type]
        raise
    from cryptography.hazmat.primitives.serialization import Encoding

    return Redeemed(label=label, role=info.role, holder=info.holder, uscc=info.uscc,
                    account_id=account_id, issued=issued,
                    chain=[c.public_bytes(Encoding.PEM) for c in auth.chain()])


# --- staff (officers, auditors) ------------------------------------------------------------
def issue_staff_certificate(auth: Authority, public_key: Any, *, holder: str, label: str,
                            actor: str) -> Issued:
    """An officer-profile login certificate for a CA staff member's token key."""
    from eseal.ca.authority import spki_sha256
    from eseal.ca.profiles import check_key_policy

    details = {"profile": "officer", "holder": holder, "label": label}
    name = auth.refusing(lambda: identity.validate_person_name(holder, "holder"), actor=actor,
                         action="cert.issue", target=label, details=details)

    def vet() -> None:
        check_key_policy(public_key)
        with auth.db.read() as s:
            auth.check_key_free(s, spki_sha256(public_key), "officer", renewing=False)

    auth.refusing(vet, actor=actor, action="cert.issue", target=label, details=details)
    draft = auth.draft(enterprise=None, public_key=public_key, profile="officer", holder=name,
                       token_label=label)
    details["serial"] = draft.serial
    with auth.change(actor=actor, action="cert.issue", target=label, details=details) as s:
        auth.store(s, draft, renewing=False)
    return draft.issued


@dataclass(frozen=True)
class StaffToken:
    label: str
    pin: str  # shown once by ``eseal init``; never stored
    role: str
    name: str
    serial: str
    account_id: int


def _generated_pin(label: str) -> str:
    from eseal.errors import InvalidInput as _Invalid
    from eseal.token.pin import check_pin

    while True:
        pin = "".join(secrets.choice("23456789abcdefghjkmnpqrstuvwxyz") for _ in range(12))
        try:
            return check_pin(pin, forbidden=[label])
        except _Invalid:
            continue


def softhsm_conf(auth: Authority) -> Path:
    """The SoftHSM configuration in force for this home (``SOFTHSM2_CONF`` unless the home
    names one), as the token commands use it."""
    env = os.environ.get("SOFTHSM2_CONF")
    if env and not auth.settings.softhsm_conf:
        return Path(env)
    return auth.settings.softhsm_conf_path


def provision_staff_token(auth: Authority, *, label: str, name: str, role: str = "officer",
                          actor: str) -> StaffToken:
    """A new SoftHSM USB-Key for a CA officer (or auditor): a generated PIN (returned once),
    an SO PIN kept encrypted by the CA, a login key made on the token and an officer login
    certificate beside it with the CA chain; the account is created. A failure removes the
    token again."""
    from eseal.ca.enrollment import pin_policy
    from eseal.ca.so_pins import check_label_free, keep_so_pin
    from eseal.token.pin import generate_so_pin
    from eseal.token.softhsm import delete_token
    from eseal.token.usbkey import (
        check_label,
        generate_key,
        install_certificate,
        install_chain,
        provision,
    )

    the_role = check_role(role, allowed=STAFF_ROLES)
    holder = identity.validate_person_name(name, "name")
    check_label(label)
    check_label_free(auth, label)
    policy = pin_policy(auth)
    pin, so_pin = _generated_pin(label), generate_so_pin()
    conf = softhsm_conf(auth)
    provision(conf, label, pin, so_pin, policy=policy)
    try:
        keep_so_pin(auth, label, so_pin, actor=actor, generated=True)
        ts = policy.login(label, pin, rw=True)
        try:
            info = generate_key(ts, "login")
            issued = issue_staff_certificate(auth, info.public_key, holder=holder, label=label,
                                             actor=actor)
            install_certificate(ts, "login", issued.certificate)
            install_chain(ts, auth.chain())
        finally:
            ts.close()
        now = clock.now()
        with auth.change(actor=actor, action="staff.provision", target=label,
                         details={"role": the_role, "name": holder,
                                  "serial": issued.serial}) as s:
            record = s.get_one(TokenRecord, label)
            record.role = the_role
            record.holder = holder
            s.flush()
            account_id = ensure_account(s.connection(), role=the_role, name=holder,
                                        enterprise_id=None, now=now)
    except BaseException:
        delete_token(conf, label)
        raise
    return StaffToken(label=label, pin=pin, role=the_role, name=holder, serial=issued.serial,
                      account_id=account_id)
