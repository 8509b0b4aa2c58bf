"""USB-Key login (journey 2 of DESIGN.md): verifying an answer.

``verify_login`` checks the signature first (certificates are public: nothing before this
proves anything, so every refusal until here says only ``LOGIN_REFUSED`` and feeds the
per-address and per-certificate rate limits of ``eseal.auth.throttle``), then consumes the
nonce (``eseal.auth.challenges``), then checks chain to our root, validity, the login
profile, the live status in the database (frozen or revoked a moment ago: refused now), the
account and its lockout (``eseal.auth.lockout``), and opens a session
(``eseal.auth.sessions``). Each step does its CPU work before taking the write lock, then
one write transaction (``eseal.auth.login_sql``). Tokens, nonces and PINs are never logged;
the login history and the audit log keep the exact refusal code.
"""

from __future__ import annotations

import binascii
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from eseal import clock
from eseal.auth import accounts as acc
from eseal.auth.accounts import STAFF_ROLES
from eseal.auth.challenges import LoginAnswer, consume_challenge, origin_of, sha256_hex, time_text
from eseal.auth.lockout import count_possession_failure
from eseal.auth.login_sql import LoginSql, run_write, run_write_async
from eseal.auth.presented import (
    KNOWN_NETWORKS,
    LoginAccount,
    ParsedCertificate,
    login_signature_ok,
    owner_of,
    parse_certificate,
)
from eseal.auth.refusals import LoginRateLimited, LoginRefused
from eseal.auth.sessions import session_id_of
from eseal.auth.throttle import count_failure, load_throttles, wait_seconds
from eseal.pki.login_message import b64url, b64url_decode

if TYPE_CHECKING:
    from eseal.auth.context import AuthContext


LOGIN_PROFILES = ("login", "officer")


# --- verifying an answer -----------------------------------------------------------------------
@dataclass(frozen=True)
class LoginResult:
    token: str  # the bearer token: returned once, stored only hashed
    session_id: str
    account: dict[str, Any]
    certificate_serial: str
    expires_at: datetime
    idle_minutes: int
    new_network: bool

    def to_dict(self) -> dict[str, Any]:
        return {"session": self.token, "session_id": self.session_id,
                "account": self.account, "certificate_serial": self.certificate_serial,
                "expires_at": time_text(self.expires_at), "idle_minutes": self.idle_minutes,
                "new_network": self.new_network}


def _decode(value: str) -> bytes:
    if not isinstance(value, str) or len(value) > 16384:
        raise ValueError("bad field")
    cleaned = value.strip().replace("+", "-").replace("/", "_")
    return b64url_decode(cleaned)


@dataclass
class _Outcome:
    reason: str | None = None
    possession: bool = False
    retry_after: int | None = None
    account: LoginAccount | None = None
    owner: acc.CertOwner | None = None
    locked_now: bool = False
    challenge_failure: bool = False  # the answer's challenge was refused
    counted: bool = False  # ... and that counted toward the account's lockout
    result: LoginResult | None = None


@dataclass
class _VerifyPlan:
    """The CPU work of a login, done outside the lock: decoding, the certificate's chain (cached)
    and the signature. The job then does everything that needs the database, in one write
    transaction; ``finish`` turns the outcome into a session or a refusal."""

    auth: AuthContext
    answer: LoginAnswer
    address: str | None
    user_agent: str | None
    now: datetime
    network: str | None
    parsed: ParsedCertificate | None
    sig_ok: bool
    malformed: str | None

    @classmethod
    def make(cls, auth: AuthContext, answer: LoginAnswer, address: str | None,
             user_agent: str | None) -> _VerifyPlan:
        parsed: ParsedCertificate | None = None
        sig_ok = False
        malformed: str | None = None
        try:
            der = _decode(answer.certificate)
            signature = _decode(answer.signature)
            message = answer.message()
        except (ValueError, TypeError, binascii.Error):
            malformed = "ANSWER_MALFORMED"
        if malformed is None:
            try:
                parsed = parse_certificate(auth, der)
            except ValueError:
                malformed = "CERT_MALFORMED"
        if parsed is not None:
            sig_ok = login_signature_ok(parsed.certificate, signature, message)
        return cls(auth=auth, answer=answer, address=address, user_agent=user_agent,
                   now=clock.now(), network=acc.network_of(address), parsed=parsed,
                   sig_ok=sig_ok, malformed=malformed)

    def job(self, tx: Any) -> _Outcome:
        auth, parsed, now = self.auth, self.parsed, self.now
        sql = LoginSql(tx.connection())
        serial = parsed.serial if parsed is not None else None
        out = _Outcome()
        addr_key = f"addr:{self.address}"
        keys = [addr_key] + ([f"cert:{serial}"] if serial else [])
        states = load_throttles(sql, keys)
        addr_wait = (wait_seconds(states[addr_key].blocked_until, now)
                     if addr_key in states else None)
        cert_wait = (wait_seconds(states[keys[-1]].blocked_until, now)
                     if serial and keys[-1] in states else None)
        if addr_wait is not None:
            out.reason, out.retry_after = "RATE_LIMITED", addr_wait
        elif not self.sig_ok:
            if cert_wait is not None:
                out.reason, out.retry_after = "RATE_LIMITED", cert_wait
            else:
                out.reason = self.malformed or "SIGNATURE_INVALID"
                for key in keys:
                    count_failure(sql, key, states.get(key), now)
            if parsed is not None and parsed.trusted:
                # one of our certificates, presented by someone who could not sign with its
                # key: the holder's enterprise sees the attempt in its history
                out.owner, out.account = owner_of(auth, sql, parsed.serial, now)
        else:
            assert parsed is not None
            out.possession = True
            _after_possession(auth, tx, sql, self.answer, parsed, out, address=self.address,
                              network=self.network, now=now)
            if out.reason is not None and out.account is None:
                # a valid signature by a key that is not one of our holders' (a certificate
                # of another CA, say): anyone can do that, so it feeds the address's limit
                count_failure(sql, addr_key, states.get(addr_key), now)
            elif out.challenge_failure and not out.counted:
                # an old answer sent again (replayed, expired, unknown): it proves nothing
                # about who holds the key now, so it feeds the rate limits, like a forgery
                for key in keys:
                    count_failure(sql, key, states.get(key), now)
        _record(auth, tx, sql, out, serial=serial, address=self.address, network=self.network,
                user_agent=self.user_agent, now=now)
        return out

    @staticmethod
    def finish(out: _Outcome) -> LoginResult:
        if out.reason == "RATE_LIMITED":
            raise LoginRateLimited(out.retry_after or 1)
        if out.reason is not None:
            raise LoginRefused(out.reason, possession=out.possession)
        assert out.result is not None
        return out.result


def verify_login(auth: AuthContext, answer: LoginAnswer, *, address: str | None,
                 user_agent: str | None) -> LoginResult:
    """Check a signed answer and open a session, or raise ``LoginRefused`` /
    ``LoginRateLimited``. Every attempt is recorded (login history and audit log)."""
    plan = _VerifyPlan.make(auth, answer, address, user_agent)
    return plan.finish(run_write(auth, plan.job))


async def verify_login_async(auth: AuthContext, answer: LoginAnswer, *, address: str | None,
                             user_agent: str | None) -> LoginResult:
    """:func:`verify_login` for the event loop."""
    plan = _VerifyPlan.make(auth, answer, address, user_agent)
    return plan.finish(await run_write_async(auth, plan.job))


_INSERT_SESSION = (
    "INSERT INTO login_sessions (token_hash, account_id, certificate_serial, created_at,"
    " last_seen_at, absolute_expires_at, ended_at, end_reason, address) VALUES (:token_hash,"
    " :account_id, :serial, :now, :now, :expires, NULL, NULL, :address)")
_ACCOUNT_SUCCESS = "UPDATE accounts SET failures = 0, last_login_at = :now WHERE id = :id"
_NETWORK_KNOWN = ("SELECT 1 FROM account_networks WHERE account_id = :account_id"
                  " AND network = :network")
_LAST_LOGIN_EVERY = timedelta(minutes=1)


def _after_possession(auth: AuthContext, s: Any, sql: LoginSql, answer: LoginAnswer,
                      parsed: ParsedCertificate, out: _Outcome, *, address: str | None,
                      network: str | None, now: datetime) -> None:
    """The checks after a valid signature, inside the login's write transaction."""
    owner, account = owner_of(auth, sql, parsed.serial, now) if parsed.trusted else (None, None)
    out.owner, out.account = owner, account
    challenge_problem = consume_challenge(sql, answer, now, origin_of(auth))
    if challenge_problem is not None:
        out.reason, out.challenge_failure = challenge_problem, True
        out.counted, out.locked_now = count_possession_failure(
            auth, s, account, owner, code=challenge_problem, address=address, now=now)
        return
    out.reason = _refusal(parsed, owner, account, now)
    if out.reason is not None:
        return
    assert owner is not None and account is not None
    token = b64url(secrets.token_bytes(32))
    token_hash = sha256_hex(token)
    session_id = session_id_of(token_hash)
    expires = now + timedelta(hours=auth.settings.session_absolute_hours)
    sql.run(_INSERT_SESSION, token_hash=token_hash, account_id=account.id,
            serial=parsed.serial, now=now, expires=expires, address=address)
    if account.failures or account.last_login_at is None or \
            now - account.last_login_at > _LAST_LOGIN_EVERY:
        sql.run(_ACCOUNT_SUCCESS, now=now, id=account.id)
    new_network = False
    seen = (id(auth), account.id, network or "")
    if network is not None and seen not in KNOWN_NETWORKS:
        if sql.one(_NETWORK_KNOWN, account_id=account.id, network=network) is None:
            new_network = acc.note_network(auth, sql.conn, account, owner, network, now)
        KNOWN_NETWORKS.add(seen)
    out.result = LoginResult(
        token=token, session_id=session_id,
        account={"id": account.id, "role": account.role, "name": account.name,
                 "enterprise": owner.enterprise_uscc},
        certificate_serial=parsed.serial, expires_at=expires,
        idle_minutes=auth.settings.session_idle_minutes, new_network=new_network)


def _refusal(parsed: ParsedCertificate, owner: acc.CertOwner | None, account: LoginAccount | None,
             now: datetime) -> str | None:
    """What, after the challenge, still stops this certificate from logging in now."""
    if owner is None:
        return "CERT_UNTRUSTED"
    if parsed.profile not in LOGIN_PROFILES or owner.profile not in LOGIN_PROFILES:
        return "CERT_PROFILE_NOT_LOGIN"
    if now < owner.not_before:
        return "CERT_NOT_YET_VALID"
    if now >= owner.not_after:
        return "CERT_EXPIRED"
    if owner.status == "hold":
        return "CERT_FROZEN"
    if owner.status != "good":
        return "CERT_REVOKED"
    if owner.enterprise_id is not None and owner.enterprise_status != "active":
        return "ENTERPRISE_DEREGISTERED"
    if account is None or (owner.profile == "officer") != (account.role in STAFF_ROLES):
        return "ACCOUNT_NOT_LINKED"
    if account.status != "active":
        return "ACCOUNT_DISABLED"
    if account.locked_until is not None and account.locked_until > now:
        return "ACCOUNT_LOCKED"
    return None


_INSERT_ATTEMPT = (
    "INSERT INTO login_attempts (at, account_id, enterprise_id, certificate_serial, address,"
    " network, user_agent, result, code, possession, new_network, session_id) VALUES (:at,"
    " :account_id, :enterprise_id, :serial, :address, :network, :user_agent, :result, :code,"
    " :possession, :new_network, :session_id)")


def _record(auth: AuthContext, s: Any, sql: LoginSql, out: _Outcome, *, serial: str | None,
            address: str | None, network: str | None, user_agent: str | None,
            now: datetime) -> None:
    """The attempt in the login history and the audit log, in the login's transaction."""
    account = out.account
    code = out.reason or "OK"
    result = "ok" if out.reason is None else "refused"
    session_id = out.result.session_id if out.result is not None else None
    new_network = bool(out.result.new_network) if out.result is not None else False
    sql.run(_INSERT_ATTEMPT, at=now, account_id=account.id if account else None,
            enterprise_id=out.owner.enterprise_id if out.owner is not None else None,
            serial=serial, address=address, network=network,
            user_agent=(user_agent or "")[:300] or None, result=result, code=code,
            possession=out.possession, new_network=new_network, session_id=session_id)
    details: dict[str, Any] = {"code": code, "address": address, "possession": out.possession}
    if session_id:
        details["session_id"] = session_id
    if new_network:
        details["new_network"] = network
    if out.locked_now:
        details["locked"] = True
    actor = f"account:{account.id}" if account is not None and out.possession else "anonymous"
    auth.audit.append(s, actor=actor, action="auth.login", outcome=result,
                      target=f"cert:{serial}" if serial else None, details=details)
