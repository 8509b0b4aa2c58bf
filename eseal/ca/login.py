"""USB-Key login (journey 2 of DESIGN.md): challenges, the signed bytes, verification, sessions.

1. ``issue_challenge`` stores a single-use 32-byte nonce bound to the origin (the configured
   public base URL), the purpose ``login`` and an expiry of at most 120 s.
2. The holder's client signs :func:`login_message` — ``b"eseal-login-v1\\x00"`` followed by
   the canonical JSON (sorted keys, no spaces, UTF-8) of nonce, origin, purpose and
   issued_at — with the login key on the token. The client puts the origin *it* believes it
   talks to into those bytes, so a phishing site that relays our challenge gets a signature
   over its own origin, which we refuse. This function is the one definition client and
   server share.
3. ``verify_login`` checks the signature first (certificates are public: nothing before this
   proves anything, so every refusal until here says only ``LOGIN_REFUSED`` and feeds the
   per-address and per-certificate rate limits), then consumes the nonce with one atomic
   ``UPDATE ... WHERE used_at IS NULL`` (two server processes sharing the database cannot
   both consume it), then checks chain to our root, validity, the login profile, the live
   status in the database (frozen or revoked a moment ago: refused now), the account and its
   lockout, and opens a session. Challenge failures after a valid signature prove the key is
   being used by someone relaying it: they count toward the account's lockout.
4. Sessions: 32 random bytes, stored as SHA-256, with idle and absolute expiry; a session
   dies with its certificate (freeze, revoke) and on logout. Tokens, nonces and PINs are
   never logged; the login history and the audit log keep the exact refusal code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from threading import Lock
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from sqlalchemy import Connection, bindparam, delete, insert, select, update

from eseal import clock
from eseal.ca import accounts as acc
from eseal.ca.accounts import (
    STAFF_ROLES,
    account_networks,
    accounts,
    login_challenges,
    login_sessions,
    login_throttles,
)
from eseal.ca.serials import serial_hex
from eseal.errors import InvalidInput, RateLimited, Unauthorized
from eseal.store.models import Certificate, Enterprise

if TYPE_CHECKING:
    from eseal.ca.authority import Authority

LOGIN_DOMAIN = b"eseal-login-v1\x00"
PURPOSE = "login"
NONCE_BYTES = 32
MAX_CHALLENGE_SECONDS = 120
LOGIN_PROFILES = ("login", "officer")

# Rate limits for failures anyone can cause (per address, per certificate): FREE failures in
# WINDOW cost nothing, then each further one blocks for 2**(n - FREE) seconds, at most
# MAX_BLOCK. A valid signature is never stopped by a certificate's limit (only by its own
# address's): possession of the key beats a flood of forgeries.
THROTTLE_FREE = 10
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_MAX_BLOCK = timedelta(minutes=15)
SESSION_TOUCH = timedelta(seconds=30)  # last_seen is written at most this often

#: every exact refusal code, English and Chinese
REASONS: dict[str, tuple[str, str]] = {
    "ANSWER_MALFORMED": ("the login answer is malformed", "登录应答格式错误"),
    "CERT_MALFORMED": ("the certificate cannot be read", "证书无法解析"),
    "SIGNATURE_INVALID": ("the signature does not verify with the certificate's key",
                          "签名与证书公钥不符"),
    "CHALLENGE_UNKNOWN": ("this challenge was never issued here", "该挑战不是本服务签发的"),
    "CHALLENGE_REPLAYED": ("this challenge was already used", "该挑战已被使用（重放）"),
    "CHALLENGE_EXPIRED": ("this challenge has expired", "该挑战已过期"),
    "CHALLENGE_ORIGIN": ("the challenge was signed for another site",
                         "该挑战签名所针对的站点不是本站"),
    "CHALLENGE_PURPOSE": ("the challenge was signed for another purpose", "该挑战签名用途不符"),
    "CHALLENGE_MISMATCH": ("the signed challenge differs from the one issued",
                           "签名内容与签发的挑战不一致"),
    "CERT_UNTRUSTED": ("the certificate was not issued by this CA", "证书不是本 CA 签发的"),
    "CERT_PROFILE_NOT_LOGIN": ("this certificate is not a login certificate",
                               "该证书不是登录证书"),
    "CERT_NOT_YET_VALID": ("the certificate is not valid yet", "证书尚未生效"),
    "CERT_EXPIRED": ("the certificate has expired", "证书已过期"),
    "CERT_FROZEN": ("the certificate is frozen", "证书已冻结"),
    "CERT_REVOKED": ("the certificate is revoked", "证书已吊销"),
    "ENTERPRISE_DEREGISTERED": ("the enterprise is deregistered", "企业已注销"),
    "ACCOUNT_NOT_FOUND": ("no account is linked to this USB-Key", "该 USB-Key 未关联账户"),
    "ACCOUNT_DISABLED": ("the account is disabled", "账户已停用"),
    "ACCOUNT_LOCKED": ("the account is locked after repeated suspicious logins; an officer can "
                       "unlock it", "账户因多次可疑登录已被锁定，请联系管理员解锁"),
    "RATE_LIMITED": ("too many failed logins; wait and try again", "登录失败次数过多，请稍后再试"),
}
#: refusals after a valid signature that count toward the account's lockout
POSSESSION_FAILURES = frozenset({"CHALLENGE_UNKNOWN", "CHALLENGE_REPLAYED", "CHALLENGE_EXPIRED",
                                 "CHALLENGE_ORIGIN", "CHALLENGE_PURPOSE", "CHALLENGE_MISMATCH"})


class LoginRefused(Unauthorized):
    """A refused login. ``reason`` is the exact code (history, audit log); the caller sees it
    only after proof of possession, otherwise only ``LOGIN_REFUSED``."""

    def __init__(self, reason: str, *, possession: bool, field: str | None = None) -> None:
        en, zh = REASONS.get(reason, ("login refused", "登录被拒绝"))
        if possession:
            super().__init__(reason, f"login refused: {en}", f"登录被拒绝：{zh}", field=field)
        else:
            super().__init__("LOGIN_REFUSED", "login refused", "登录被拒绝")
        self.reason = reason
        self.possession = possession


class LoginRateLimited(RateLimited):
    def __init__(self, retry_after: int) -> None:
        en, zh = REASONS["RATE_LIMITED"]
        super().__init__("RATE_LIMITED", en, zh, details={"retry_after": retry_after})
        self.reason = "RATE_LIMITED"
        self.retry_after = retry_after


# --- the signed bytes (client and server) ------------------------------------------------------
def normalize_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased, default ports dropped."""
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "").lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise InvalidInput("ORIGIN_INVALID", f"not an http(s) URL: {url!r}",
                           f"不是 http(s) 地址：{url!r}", field="origin")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("ORIGIN_INVALID", f"bad port in {url!r}", f"端口无效：{url!r}",
                           field="origin") from None
    if ":" in host:
        host = f"[{host}]"
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def login_message(*, nonce: str, origin: str, issued_at: str, purpose: str = PURPOSE) -> bytes:
    """The exact bytes the login key signs (domain-separated, canonical JSON)."""
    body = {"issued_at": issued_at, "nonce": nonce, "origin": origin, "purpose": purpose}
    return LOGIN_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _time_text(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


# --- challenges -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Challenge:
    nonce: str  # base64url of 32 random bytes
    origin: str
    purpose: str
    issued_at: str
    expires_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"nonce": self.nonce, "origin": self.origin, "purpose": self.purpose,
                "issued_at": self.issued_at, "expires_at": _time_text(self.expires_at),
                "domain": LOGIN_DOMAIN.rstrip(b"\x00").decode()}


_INSERT_CHALLENGE = insert(login_challenges)
_THROTTLE_ROWS = select(login_throttles).where(
    login_throttles.c.key.in_(bindparam("keys", expanding=True)))
_PURGE = delete(login_challenges).where(login_challenges.c.expires_at < bindparam("before"))


def origin_of(auth: Authority) -> str:
    return normalize_origin(auth.settings.base_url)


def issue_challenge(auth: Authority, *, address: str | None) -> Challenge:
    """A fresh single-use challenge, stored; refused while the address is rate limited."""
    now = clock.now()
    ttl = max(1, min(auth.settings.challenge_ttl_seconds, MAX_CHALLENGE_SECONDS))
    issued = now.replace(microsecond=0)
    nonce = b64url(secrets.token_bytes(NONCE_BYTES))
    origin = origin_of(auth)
    with auth.db.write() as s:
        conn = s.connection()
        blocked = _blocked(conn, [f"addr:{address}"], now)
        if blocked is not None:
            raise LoginRateLimited(blocked)
        conn.execute(_INSERT_CHALLENGE, {
            "nonce_hash": _sha256(nonce), "origin": origin, "purpose": PURPOSE,
            "issued_at": issued, "expires_at": issued + timedelta(seconds=ttl),
            "used_at": None, "address": address})
        if secrets.randbelow(1024) == 0:  # old challenges: keep a day for replay detection
            conn.execute(_PURGE, {"before": now - timedelta(days=1)})
    return Challenge(nonce=nonce, origin=origin, purpose=PURPOSE, issued_at=_time_text(issued),
                     expires_at=issued + timedelta(seconds=ttl))


_CHALLENGE_ROW = select(login_challenges).where(
    login_challenges.c.nonce_hash == bindparam("nonce_hash"))
_CONSUME = (update(login_challenges)
            .where(login_challenges.c.nonce_hash == bindparam("nh"),
                   login_challenges.c.used_at.is_(None))
            .values(used_at=bindparam("now")))


def _consume(conn: Connection, answer: LoginAnswer, now: datetime, origin: str) -> str | None:
    """Spend the nonce (atomically, once across processes); the refusal code or None."""
    nonce_hash = _sha256(answer.nonce)
    taken = conn.execute(_CONSUME, {"nh": nonce_hash, "now": now}).rowcount == 1
    row = conn.execute(_CHALLENGE_ROW, {"nonce_hash": nonce_hash}).first()
    if row is None:
        return "CHALLENGE_UNKNOWN"
    if not taken:
        return "CHALLENGE_REPLAYED"
    if now >= row.expires_at:
        return "CHALLENGE_EXPIRED"
    if answer.origin != origin or row.origin != origin:
        return "CHALLENGE_ORIGIN"
    if answer.purpose != PURPOSE or row.purpose != PURPOSE:
        return "CHALLENGE_PURPOSE"
    if answer.issued_at != _time_text(row.issued_at):
        return "CHALLENGE_MISMATCH"
    return None


# --- rate limits -------------------------------------------------------------------------------
def _blocked(conn: Connection, keys: list[str], now: datetime) -> int | None:
    """Seconds to wait if any of ``keys`` is blocked now, else None."""
    wait = None
    for row in conn.execute(_THROTTLE_ROWS, {"keys": keys}):
        if row.blocked_until is not None and row.blocked_until > now:
            seconds = max(1, int((row.blocked_until - now).total_seconds() + 0.999))
            wait = max(wait or 0, seconds)
    return wait


def _throttle_states(conn: Connection, keys: list[str]) -> dict[str, Any]:
    return {row.key: row for row in conn.execute(_THROTTLE_ROWS, {"keys": keys})}


def _count_failure(conn: Connection, key: str, row: Any, now: datetime) -> None:
    if row is None:
        conn.execute(insert(login_throttles).values(key=key, failures=1, window_start=now,
                                                    blocked_until=None))
        return
    fresh = now - row.window_start > THROTTLE_WINDOW and (
        row.blocked_until is None or row.blocked_until <= now)
    failures = 1 if fresh else row.failures + 1
    start = now if fresh else row.window_start
    blocked = None
    if failures > THROTTLE_FREE:
        exponent = min(failures - THROTTLE_FREE, 20)
        blocked = now + min(timedelta(seconds=2 ** exponent), THROTTLE_MAX_BLOCK)
    conn.execute(update(login_throttles).where(login_throttles.c.key == key)
                 .values(failures=failures, window_start=start, blocked_until=blocked))


# --- certificates -------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Parsed:
    certificate: x509.Certificate
    serial: str
    profile: str | None
    trusted: bool  # directly issued by our issuing CA, which our root issued


_PARSED: OrderedDict[tuple[int, bytes], _Parsed] = OrderedDict()
_PARSED_LOCK = Lock()
_PARSED_MAX = 20000


def _parse_certificate(auth: Authority, der: bytes) -> _Parsed:
    """Parse a presented certificate and check its chain to our root (cached per DER)."""
    from eseal.ca.profiles import profile_of

    key = (id(auth), hashlib.sha256(der).digest())
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
    if hit is not None:
        return hit
    cert = x509.load_der_x509_certificate(der)
    issuing, root = auth.certificate("issuing"), auth.certificate("root")
    try:
        cert.verify_directly_issued_by(issuing)
        issuing.verify_directly_issued_by(root)
        trusted = True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        trusted = False
    parsed = _Parsed(cert, serial_hex(cert.serial_number), profile_of(cert), trusted)
    with _PARSED_LOCK:
        _PARSED[key] = parsed
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return parsed


def _signature_ok(cert: x509.Certificate, signature: bytes, message: bytes) -> bool:
    from eseal.token.client import verify_signature

    try:
        verify_signature(cert, signature, message)
        return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False


# --- verifying an answer -----------------------------------------------------------------------
@dataclass(frozen=True)
class LoginAnswer:
    """What the client sends back: the challenge fields it signed, its certificate, the
    signature (all as received; decoding is checked here)."""

    nonce: str
    origin: str
    purpose: str
    issued_at: str
    certificate: str  # base64 (or base64url) DER
    signature: str  # base64 (or base64url)

    def message(self) -> bytes:
        return login_message(nonce=self.nonce, origin=self.origin, issued_at=self.issued_at,
                             purpose=self.purpose)


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
                "expires_at": _time_text(self.expires_at), "idle_minutes": self.idle_minutes,
                "new_network": self.new_network}


def _decode(text: str) -> bytes:
    if not isinstance(text, str) or len(text) > 16384:
        raise ValueError("bad field")
    cleaned = text.strip().replace("+", "-").replace("/", "_")
    return b64url_decode(cleaned)


@dataclass
class _Outcome:
    reason: str | None = None
    possession: bool = False
    retry_after: int | None = None
    account: Any = None
    owner: acc.CertOwner | None = None
    locked_now: bool = False
    result: LoginResult | None = None


def verify_login(auth: Authority, answer: LoginAnswer, *, address: str | None,
                 user_agent: str | None) -> LoginResult:
    """Check a signed answer and open a session, or raise ``LoginRefused`` /
    ``LoginRateLimited``. Every attempt is recorded (login history and audit log)."""
    now = clock.now()
    network = acc.network_of(address)
    parsed: _Parsed | None = None
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
            parsed = _parse_certificate(auth, der)
        except ValueError:
            malformed = "CERT_MALFORMED"
    if parsed is not None:
        sig_ok = _signature_ok(parsed.certificate, signature, message)

    serial = parsed.serial if parsed is not None else None
    out = _Outcome()
    with auth.db.write() as s:
        conn = s.connection()
        addr_key = f"addr:{address}"
        cert_key = f"cert:{serial}" if serial else None
        keys = [addr_key] + ([cert_key] if cert_key else [])
        states = _throttle_states(conn, keys)
        addr_wait = _wait(states.get(addr_key), now)
        cert_wait = _wait(states.get(cert_key), now) if cert_key else None
        if addr_wait is not None:
            out.reason, out.retry_after = "RATE_LIMITED", addr_wait
        elif not sig_ok:
            if cert_wait is not None:
                out.reason, out.retry_after = "RATE_LIMITED", cert_wait
            else:
                out.reason = malformed or "SIGNATURE_INVALID"
                for key in keys:
                    _count_failure(conn, key, states.get(key), now)
            if parsed is not None and parsed.trusted:
                # one of our certificates, presented by someone who could not sign with its
                # key: the holder's enterprise sees the attempt in its history
                out.owner = acc.certificate_owner(conn, parsed.serial)
                if out.owner is not None and out.owner.has_account:
                    out.account = acc.account_row(conn, out.owner, now)
        else:
            assert parsed is not None
            out.possession = True
            _after_possession(auth, s, answer, parsed, out, address=address, network=network,
                              now=now)
            if out.reason is not None and out.account is None:
                # a valid signature by a key that is not one of our holders' (a certificate
                # of another CA, say): anyone can do that, so it feeds the address's limit
                _count_failure(conn, addr_key, states.get(addr_key), now)
        _record(auth, s, out, serial=serial, address=address, network=network,
                user_agent=user_agent, now=now)
    if out.reason == "RATE_LIMITED":
        raise LoginRateLimited(out.retry_after or 1)
    if out.reason is not None:
        raise LoginRefused(out.reason, possession=out.possession)
    assert out.result is not None
    return out.result


def _wait(row: Any, now: datetime) -> int | None:
    if row is None or row.blocked_until is None or row.blocked_until <= now:
        return None
    return max(1, int((row.blocked_until - now).total_seconds() + 0.999))


def _after_possession(auth: Authority, s: Any, answer: LoginAnswer, parsed: _Parsed,
                      out: _Outcome, *, address: str | None, network: str | None,
                      now: datetime) -> None:
    """The checks after a valid signature, inside the login's write transaction."""
    conn = s.connection()
    owner = acc.certificate_owner(conn, parsed.serial) if parsed.trusted else None
    if owner is not None and owner.has_account:
        out.account = acc.account_row(conn, owner, now)
    out.owner = owner
    challenge_problem = _consume(conn, answer, now, origin_of(auth))
    if challenge_problem is not None:
        out.reason = challenge_problem
        if out.account is not None and owner is not None:
            out.locked_now = acc.count_possession_failure(
                auth, s, out.account, owner, code=challenge_problem, address=address, now=now)
        return
    if owner is None:
        out.reason = "CERT_UNTRUSTED"
        return
    if parsed.profile not in LOGIN_PROFILES or owner.profile not in LOGIN_PROFILES:
        out.reason = "CERT_PROFILE_NOT_LOGIN"
        return
    if now < owner.not_before:
        out.reason = "CERT_NOT_YET_VALID"
        return
    if now >= owner.not_after:
        out.reason = "CERT_EXPIRED"
        return
    if owner.status == "hold":
        out.reason = "CERT_FROZEN"
        return
    if owner.status != "good":
        out.reason = "CERT_REVOKED"
        return
    if owner.enterprise_id is not None and owner.enterprise_status != "active":
        out.reason = "ENTERPRISE_DEREGISTERED"
        return
    account = out.account
    if account is None or (owner.profile == "officer") != (account.role in STAFF_ROLES):
        out.reason = "ACCOUNT_NOT_FOUND"
        return
    if account.status != "active":
        out.reason = "ACCOUNT_DISABLED"
        return
    if account.locked_until is not None and account.locked_until > now:
        out.reason = "ACCOUNT_LOCKED"
        return
    token = b64url(secrets.token_bytes(32))
    session_id = secrets.token_hex(16)
    expires = now + timedelta(hours=auth.settings.session_absolute_hours)
    conn.execute(_INSERT_SESSION, {
        "id": session_id, "token_hash": _sha256(token), "account_id": account.id,
        "certificate_serial": parsed.serial, "created_at": now, "last_seen_at": now,
        "absolute_expires_at": expires, "ended_at": None, "end_reason": None,
        "address": address})
    conn.execute(_ACCOUNT_SUCCESS, {"account_id": account.id, "now": now})
    new_network = acc.note_network(auth, conn, account, owner, network, now)
    out.result = LoginResult(
        token=token, session_id=session_id,
        account={"id": account.id, "role": account.role, "name": account.name,
                 "enterprise": owner.enterprise_uscc},
        certificate_serial=parsed.serial, expires_at=expires,
        idle_minutes=auth.settings.session_idle_minutes, new_network=new_network)


_INSERT_SESSION = insert(login_sessions)
_ACCOUNT_SUCCESS = (update(accounts).where(accounts.c.id == bindparam("account_id"))
                    .values(failures=0, last_login_at=bindparam("now")))


def _record(auth: Authority, s: Any, out: _Outcome, *, serial: str | None,
            address: str | None, network: str | None, user_agent: str | None,
            now: datetime) -> None:
    """The attempt in the login history and the audit log, in the login's transaction."""
    account = out.account
    owner = out.owner
    code = out.reason or "OK"
    result = "ok" if out.reason is None else "refused"
    session_id = out.result.session_id if out.result is not None else None
    new_network = bool(out.result.new_network) if out.result is not None else False
    enterprise_id = owner.enterprise_id if owner is not None else None
    acc.record_attempt(s.connection(), at=now, account_id=account.id if account else None,
                       enterprise_id=enterprise_id, serial=serial, address=address,
                       network=network, user_agent=user_agent, result=result, code=code,
                       possession=out.possession, new_network=new_network,
                       session_id=session_id)
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


_CERTS = Certificate.__table__
_ENTERPRISES = Enterprise.__table__
_SESSION_LOOKUP = (
    select(login_sessions.c.id, login_sessions.c.account_id,
           login_sessions.c.certificate_serial, login_sessions.c.created_at,
           login_sessions.c.last_seen_at, login_sessions.c.absolute_expires_at,
           login_sessions.c.ended_at, login_sessions.c.end_reason,
           accounts.c.role, accounts.c.name, accounts.c.enterprise_id, accounts.c.status,
           accounts.c.locked_until, _CERTS.c.status.label("cert_status"),
           _CERTS.c.not_after, _ENTERPRISES.c.uscc,
           _ENTERPRISES.c.status.label("enterprise_status"))
    .select_from(login_sessions
                 .join(accounts, accounts.c.id == login_sessions.c.account_id)
                 .join(_CERTS, _CERTS.c.serial == login_sessions.c.certificate_serial)
                 .outerjoin(_ENTERPRISES, _ENTERPRISES.c.id == accounts.c.enterprise_id))
    .where(login_sessions.c.token_hash == bindparam("token_hash")))
_TOUCH = (update(login_sessions).where(login_sessions.c.id == bindparam("sid"))
          .values(last_seen_at=bindparam("now")))
_END = (update(login_sessions)
        .where(login_sessions.c.id == bindparam("sid"), login_sessions.c.ended_at.is_(None))
        .values(ended_at=bindparam("now"), end_reason=bindparam("reason")))

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


def resolve_session(auth: Authority, token: str | None) -> SessionView:
    """The live session for a bearer token, checking its certificate's status *now*."""
    if not token or len(token) > 200:
        raise _session_error("SESSION_REQUIRED")
    now = clock.now()
    with auth.db.engine.connect() as conn:
        row = conn.execute(_SESSION_LOOKUP, {"token_hash": _sha256(token)}).first()
    if row is None:
        raise _session_error("SESSION_EXPIRED")
    if row.ended_at is not None:
        raise _session_error("SESSION_REVOKED" if row.end_reason in REVOKING_END_REASONS
                             else "SESSION_EXPIRED")
    dead: str | None = None
    if row.cert_status == "hold":
        dead = "certificate_frozen"
    elif row.cert_status != "good":
        dead = "certificate_revoked"
    elif row.status != "active":
        dead = "account_disabled"
    elif row.locked_until is not None and row.locked_until > now:
        dead = "account_locked"
    elif row.enterprise_id is not None and row.enterprise_status != "active":
        dead = "enterprise_deregistered"
    elif now >= row.not_after:
        dead = "certificate_expired"
    elif now >= row.absolute_expires_at:
        dead = "expired"
    elif now - row.last_seen_at > timedelta(minutes=auth.settings.session_idle_minutes):
        dead = "idle"
    if dead is not None:
        with auth.db.write() as s:
            s.connection().execute(_END, {"sid": row.id, "now": now, "reason": dead})
        raise _session_error("SESSION_REVOKED" if dead in REVOKING_END_REASONS
                             else "SESSION_EXPIRED")
    if now - row.last_seen_at > SESSION_TOUCH:
        with auth.db.write() as s:
            s.connection().execute(_TOUCH, {"sid": row.id, "now": now})
    return SessionView(session_id=row.id, account_id=row.account_id, role=row.role,
                       name=row.name, enterprise_id=row.enterprise_id,
                       enterprise_uscc=row.uscc, certificate_serial=row.certificate_serial,
                       created_at=row.created_at, expires_at=row.absolute_expires_at)


def logout(auth: Authority, *, session_id: str, actor: str) -> None:
    """End a session (audited)."""
    now = clock.now()
    with auth.change(actor=actor, action="auth.logout", target=f"session:{session_id}") as s:
        s.connection().execute(_END, {"sid": session_id, "now": now, "reason": "logout"})


def end_sessions_for_certificate(s: Any, serial: str, *, reason: str) -> int:
    """End every open session opened with a certificate (inside the caller's transaction):
    a frozen or revoked certificate takes its sessions with it."""
    result = s.connection().execute(
        update(login_sessions)
        .where(login_sessions.c.certificate_serial == serial,
               login_sessions.c.ended_at.is_(None))
        .values(ended_at=clock.now(), end_reason=reason))
    return int(result.rowcount or 0)


def sessions_of(auth: Authority, *, account_id: int) -> list[dict[str, Any]]:
    """An account's sessions, newest first (ids only: tokens are never stored)."""
    with auth.db.engine.connect() as conn:
        rows = conn.execute(select(login_sessions).where(
            login_sessions.c.account_id == account_id)
            .order_by(login_sessions.c.created_at.desc()).limit(100)).all()
    return [{"session_id": r.id, "certificate_serial": r.certificate_serial,
             "created_at": r.created_at.isoformat(), "ended_at":
             r.ended_at.isoformat() if r.ended_at else None, "end_reason": r.end_reason,
             "address": r.address} for r in rows]


__all__ = ["LOGIN_DOMAIN", "Challenge", "LoginAnswer", "LoginRateLimited", "LoginRefused",
           "LoginResult", "SessionView", "account_networks", "end_sessions_for_certificate",
           "issue_challenge", "login_message", "logout", "normalize_origin",
           "resolve_session", "verify_login"]
