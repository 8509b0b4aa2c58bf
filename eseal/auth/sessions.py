"""Login sessions: 32 random bytes, stored as SHA-256, with idle and absolute expiry.

A session dies with its certificate (freeze, revoke: ``end_sessions_for_certificate`` runs
in the caller's transaction), with its account's lock and on logout. Every request checks
the session *and* its certificate's and account's live state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from eseal import clock
from eseal.auth.challenges import sha256_hex
from eseal.auth.login_sql import LoginSql, from_db, run_write
from eseal.errors import Unauthorized

if TYPE_CHECKING:
    from eseal.auth.context import AuthContext


SESSION_TOUCH = timedelta(seconds=30)  # last_seen is written at most this often


# --- sessions ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SessionView:
    session_id: str
    account_id: int
    role: str
    name: str
    enterprise_id: int | None
    enterprise_uscc: str | None
    certificate_serial: str
    created_at: datetime
    expires_at: datetime


def session_id_of(token_hash: str) -> str:
    """A session's opaque id: the first half of its token's SHA-256 (the token is never
    stored; the id reveals nothing that opens the session)."""
    return token_hash[:32]


_SESSION = (
    "SELECT s.token_hash, s.account_id, s.certificate_serial, s.created_at, s.last_seen_at,"
    " s.absolute_expires_at, s.ended_at, s.end_reason, a.role, a.name, a.enterprise_id,"
    " a.status, a.locked_until, c.status, c.not_after, e.uscc, e.status"
    " FROM login_sessions s"
    " JOIN accounts a ON a.id = s.account_id"
    " JOIN certificates c ON c.serial = s.certificate_serial"
    " LEFT JOIN enterprises e ON e.id = a.enterprise_id"
    " WHERE s.token_hash = :token_hash")
_TOUCH = "UPDATE login_sessions SET last_seen_at = :now WHERE token_hash = :token_hash"
_END = ("UPDATE login_sessions SET ended_at = :now, end_reason = :reason"
        " WHERE token_hash = :token_hash AND ended_at IS NULL")
# by the opaque id: a range on the key (hex digits sort below "g")
_END_BY_ID = ("UPDATE login_sessions SET ended_at = :now, end_reason = :reason"
              " WHERE token_hash >= :sid AND token_hash < :sid_end AND ended_at IS NULL")
_END_FOR_CERT = ("UPDATE login_sessions SET ended_at = :now, end_reason = :reason"
                 " WHERE certificate_serial = :serial AND ended_at IS NULL")

REVOKING_END_REASONS = frozenset({"certificate_frozen", "certificate_revoked",
                                  "account_locked", "account_disabled",
                                  "enterprise_deregistered"})


def _session_error(code: str) -> Unauthorized:
    texts = {
        "SESSION_REQUIRED": ("log in first: send Authorization: Bearer <session>",
                             "请先登录（Authorization: Bearer <会话>）"),
        "SESSION_EXPIRED": ("the session has ended or expired; log in again",
                            "会话已结束或过期，请重新登录"),
        "SESSION_REVOKED": ("the session was ended because its certificate or account is no "
                            "longer good (frozen, revoked or locked); log in again",
                            "会话所用证书或账户已失效（冻结、吊销或锁定），会话已终止"),
    }
    en, zh = texts[code]
    return Unauthorized(code, en, zh, field="Authorization")


def resolve_session(auth: AuthContext, token: str | None) -> SessionView:
    """The live session for a bearer token, checking its certificate's status *now*."""
    if not token or len(token) > 200:
        raise _session_error("SESSION_REQUIRED")
    now = clock.now()
    with auth.db.engine.connect() as conn:
        row = LoginSql(conn).one(_SESSION, token_hash=sha256_hex(token))
        conn.rollback()
    if row is None:
        raise _session_error("SESSION_EXPIRED")
    (token_hash, account_id, serial, created_at, last_seen_at, absolute, ended_at, end_reason,
     role, name, enterprise_id, account_status, locked_until, cert_status, not_after, uscc,
     enterprise_status) = row
    if ended_at is not None:
        raise _session_error("SESSION_REVOKED" if end_reason in REVOKING_END_REASONS
                             else "SESSION_EXPIRED")
    locked = from_db(locked_until)
    last_seen = from_db(last_seen_at)
    assert last_seen is not None
    dead: str | None = None
    if cert_status == "hold":
        dead = "certificate_frozen"
    elif cert_status != "good":
        dead = "certificate_revoked"
    elif account_status != "active":
        dead = "account_disabled"
    elif locked is not None and locked > now:
        dead = "account_locked"
    elif enterprise_id is not None and enterprise_status != "active":
        dead = "enterprise_deregistered"
    elif now >= from_db(not_after):  # type: ignore[operator]
        dead = "certificate_expired"
    elif now >= from_db(absolute):  # type: ignore[operator]
        dead = "expired"
    elif now - last_seen > timedelta(minutes=auth.settings.session_idle_minutes):
        dead = "idle"
    if dead is not None:
        run_write(auth, lambda tx: LoginSql(tx.connection()).run(_END, now=now, reason=dead,
                                                        token_hash=token_hash))
        raise _session_error("SESSION_REVOKED" if dead in REVOKING_END_REASONS
                             else "SESSION_EXPIRED")
    if now - last_seen > SESSION_TOUCH:
        run_write(auth, lambda tx: LoginSql(tx.connection()).run(_TOUCH, now=now,
                                                        token_hash=token_hash))
    return SessionView(session_id=session_id_of(token_hash), account_id=account_id, role=role,
                       name=name, enterprise_id=enterprise_id, enterprise_uscc=uscc,
                       certificate_serial=serial, created_at=from_db(created_at),  # type: ignore[arg-type]
                       expires_at=from_db(absolute))  # type: ignore[arg-type]


def logout(auth: AuthContext, *, session_id: str, actor: str) -> None:
    """End a session (audited)."""
    now = clock.now()
    with auth.change(actor=actor, action="auth.logout", target=f"session:{session_id}") as s:
        LoginSql(s.connection()).run(_END_BY_ID, now=now, reason="logout", sid=session_id,
                                 sid_end=session_id + "g")


def end_sessions_for_certificate(s: Any, serial: str, *, reason: str) -> int:
    """End every open session opened with a certificate (inside the caller's transaction):
    a frozen or revoked certificate takes its sessions with it."""
    return LoginSql(s.connection()).run(_END_FOR_CERT, now=clock.now(), reason=reason,
                                    serial=serial)
