"""Account lockout, decided here only (:data:`LOCKOUT_FAILURES`).

Only failures that prove the key signed *now* count toward the account: a valid signature
over a challenge this server issued, still live and never answered, whose signed origin,
purpose or time differ from the challenge (a phishing relay, or someone using the key
against us); ``lockout_threshold`` of them lock it for ``lockout_hours`` and alert the
enterprise; an officer unlocks it. Failures anyone could cause (certificates are public, and
a captured answer can be sent again from anywhere: replayed, expired or unknown challenges)
never lock an account; they feed the rate limits in ``eseal.auth.throttle``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session

from eseal.auth.accounts import (
    ACCOUNT_BY_ID,
    ROLE_NAMES_ZH,
    Account,
    CertOwner,
    get_account,
    notice_recipient,
    queue_notice,
)
from eseal.auth.context import AuthContext
from eseal.errors import NotFound
from eseal.store.models_login import accounts

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


_COUNT_FAILURE = (update(accounts).where(accounts.c.id == bindparam("account_id"))
                  .values(failures=accounts.c.failures + 1).returning(accounts.c.failures))


def count_possession_failure(auth: AuthContext, s: Session, account: Any | None,
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
    # counted in the database (``failures = failures + 1``), not from the row read earlier:
    # two refusals racing each other are both counted
    failures = int(conn.execute(_COUNT_FAILURE, {"account_id": account.id}).scalar_one())
    threshold = auth.settings.lockout_threshold
    if failures < threshold:
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
    queue_notice(conn, recipient=notice_recipient(auth, owner), subject=subject, body=body,
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


def unlock_account(auth: AuthContext, account_id: int, *, actor: str) -> Account:
    """An officer lifts a lockout (and clears the failure count); audited."""
    with auth.change(actor=actor, action="account.unlock", target=f"account:{account_id}",
                     details={"account_id": account_id}) as s:
        conn = s.connection()
        row = conn.execute(ACCOUNT_BY_ID, {"account_id": account_id}).first()
        if row is None:
            raise NotFound("ACCOUNT_NOT_FOUND", f"no account {account_id}",
                           f"找不到账户 {account_id}", field="account_id")
        conn.execute(update(accounts).where(accounts.c.id == account_id)
                     .values(failures=0, locked_until=None))
    return get_account(auth, account_id)
