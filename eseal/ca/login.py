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
   lockout, and opens a session. Whether a challenge failure after a valid signature counts
   toward the account's lockout is decided in one place, ``accounts.LOCKOUT_FAILURES``: only
   a signature over a live, unanswered challenge proves the key signed now; a replayed,
   expired or unknown challenge can be sent by anyone holding an old answer, so it feeds the
   rate limits and never locks the holder out.
4. Sessions: 32 random bytes, stored as SHA-256, with idle and absolute expiry; a session
   dies with its certificate (freeze, revoke), with its account's lock and on logout.
   Tokens, nonces and PINs are never logged; the login history and the audit log keep the
   exact refusal code.

Speed (``bench/login.py``). Each step does its CPU work (decoding, the chain, which is cached
per certificate, the signature) before taking the write lock, then one write transaction.
The statements are plain SQL on the transaction's own DBAPI connection on SQLite (through
the ORM each cost more than the rest of a login), the tables carry only the indexes their
queries need, writers of all processes queue on one ``flock`` instead of SQLite's sleeping
busy handler, and on the event loop the writes of concurrent logins commit as one group.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import fcntl
import hashlib
import json
import os
import secrets
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from threading import Lock
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from sqlalchemy import Connection, text

from eseal import clock
from eseal.ca import accounts as acc
from eseal.ca.accounts import STAFF_ROLES, account_networks
from eseal.ca.serials import serial_hex
from eseal.errors import InvalidInput, RateLimited, Unauthorized

if TYPE_CHECKING:
    from eseal.ca.authority import Authority

T = TypeVar("T")

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


# --- the login path's SQL ------------------------------------------------------------------------
# A login runs a dozen statements in two write transactions; through the ORM and Core each
# statement costs ~90 us of Python, more than the rest of the login together. On SQLite the
# statements below therefore run on the transaction's own DBAPI connection (same transaction,
# so the audit event appended through SQLAlchemy commits with them); elsewhere they run as
# SQLAlchemy text(). Times are stored exactly as SQLAlchemy's SQLite DateTime stores them.
_SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"
_TEXTS: dict[str, Any] = {}


def _to_db(value: Any, sqlite: bool) -> Any:
    if isinstance(value, datetime):
        naive = value.astimezone(UTC).replace(tzinfo=None)
        return naive.strftime(_SQLITE_TIME) if sqlite else naive
    if isinstance(value, bool):
        return int(value)
    return value


def _from_db(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class _Sql:
    """Plain SQL on one connection (inside the caller's transaction, if any)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        self._cursor = conn.connection.dbapi_connection.cursor() if self.sqlite else None  # type: ignore[union-attr]

    def _run(self, sql: str, params: dict[str, Any]) -> Any:
        values = {k: _to_db(v, self.sqlite) for k, v in params.items()}
        if self._cursor is not None:
            return self._cursor.execute(sql, values)
        stmt = _TEXTS.get(sql)
        if stmt is None:
            stmt = _TEXTS[sql] = text(sql)
        return self.conn.execute(stmt, values)

    def one(self, sql: str, **params: Any) -> Any:
        rows = self._run(sql, params).fetchall()  # drained: the statement is finished
        return rows[0] if rows else None

    def all(self, sql: str, **params: Any) -> list[Any]:
        return list(self._run(sql, params).fetchall())

    def run(self, sql: str, **params: Any) -> int:
        return int(self._run(sql, params).rowcount or 0)


class _Tx:
    """A write transaction on a plain Connection, shaped like the Session the audit log
    appends through (``connection()``, ``execute()``): the ORM's unit of work would cost
    more than all of a login's statements."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def connection(self) -> Connection:
        return self._conn

    def execute(self, statement: Any, params: Any = None) -> Any:
        return self._conn.execute(statement, params)


_LOCKS: dict[tuple[int, str], tuple[Lock, int]] = {}
_LOCKS_GUARD = Lock()


@contextmanager
def _transaction(auth: Authority) -> Iterator[Any]:
    # eseal_immediate: the database's begin hook opens it with BEGIN IMMEDIATE (SQLite), so
    # the transaction holds the write lock from its first statement, as Database.write does
    with auth.db.engine.connect() as conn:
        conn.execution_options(eseal_immediate=True)
        with conn.begin():
            yield _Tx(conn)


def _lock_of(auth: Authority) -> tuple[Lock, int] | None:
    """The login writers' lock of this database: a thread lock and a ``flock``-ed file beside
    the SQLite file (None for other databases, which have no busy handler to avoid)."""
    url = auth.db.url
    if not url.startswith("sqlite:///"):
        return None
    path = url[len("sqlite:///"):] + ".login-lock"
    key = (os.getpid(), path)
    with _LOCKS_GUARD:
        entry = _LOCKS.get(key)
        if entry is None:
            entry = _LOCKS[key] = (Lock(), os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    return entry


@contextmanager
def _write(auth: Authority) -> Iterator[Any]:
    """A write transaction of the login path. On SQLite, login writers of every process on
    the host queue on one ``flock`` (the kernel wakes the next one the moment the lock is
    free) instead of meeting in SQLite's busy handler, which sleeps in steps of 1 ms and
    more: with two server processes that sleeping, not the work, would set the login rate."""
    entry = _lock_of(auth)
    if entry is None:
        with _transaction(auth) as tx:
            yield tx
        return
    lock, fd = entry
    with lock:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with _transaction(auth) as tx:
                yield tx
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)


def _run(auth: Authority, job: Callable[[Any], T]) -> T:
    """Run a write job in its own transaction (any thread)."""
    with _write(auth) as tx:
        return job(tx)


class _GroupCommit:
    """Group commit on an event loop: the login path's write jobs queue here and one task
    commits every job that arrived meanwhile in one transaction (one lock, one BEGIN
    IMMEDIATE, one WAL append, pages re-read once after the other process wrote). Waiting
    for the lock never blocks the loop: it is tried without blocking and, only if another
    process holds it, awaited in a worker thread while the loop serves the next requests
    (whose jobs join the group). A job returns its outcome rather than raising; if a group
    fails anyway (a bug), its jobs are retried one by one, so one bad job cannot fail its
    neighbours."""

    MAX_GROUP = 64

    def __init__(self, auth: Authority, loop: asyncio.AbstractEventLoop) -> None:
        self._auth = auth
        self._loop = loop
        self._pending: list[tuple[Callable[[Any], Any], asyncio.Future[Any]]] = []
        self._flushing = False

    def submit(self, job: Callable[[Any], T]) -> asyncio.Future[T]:
        future: asyncio.Future[T] = self._loop.create_future()
        self._pending.append((job, future))
        if not self._flushing:
            self._flushing = True
            self._loop.create_task(self._flush())
        return future

    async def _flush(self) -> None:
        try:
            while self._pending:
                entry = _lock_of(self._auth)
                if entry is not None:
                    await self._acquire(*entry)
                group, self._pending = (self._pending[:self.MAX_GROUP],
                                        self._pending[self.MAX_GROUP:])
                try:
                    self._commit(group)
                finally:
                    if entry is not None:
                        fcntl.flock(entry[1], fcntl.LOCK_UN)
                        entry[0].release()
        finally:
            self._flushing = False

    async def _acquire(self, lock: Lock, fd: int) -> None:
        if not lock.acquire(blocking=False):
            await self._loop.run_in_executor(None, lock.acquire)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                await self._loop.run_in_executor(None, fcntl.flock, fd, fcntl.LOCK_EX)
            except BaseException:
                lock.release()
                raise

    def _commit(self, group: list[tuple[Callable[[Any], Any], asyncio.Future[Any]]]) -> None:
        try:
            with _transaction(self._auth) as tx:
                results = [job(tx) for job, _ in group]
        except Exception as exc:
            if len(group) == 1:
                if not group[0][1].done():
                    group[0][1].set_exception(exc)
                return
            for item in group:
                self._commit([item])
            return
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)


_COMMITTERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                       dict[int, _GroupCommit]] = weakref.WeakKeyDictionary()


async def _run_async(auth: Authority, job: Callable[[Any], T]) -> T:
    """Run a write job from the event loop, in this loop's group commit."""
    loop = asyncio.get_running_loop()
    per_loop = _COMMITTERS.setdefault(loop, {})
    committer = per_loop.get(id(auth))
    if committer is None or committer._auth is not auth:
        committer = per_loop[id(auth)] = _GroupCommit(auth, loop)
    return await committer.submit(job)


# --- challenges -------------------------------------------------------------------------------
def origin_of(auth: Authority) -> str:
    return normalize_origin(auth.settings.base_url)


_BLOCKED = "SELECT blocked_until FROM login_throttles WHERE key = :key"
_INSERT_CHALLENGE = (
    "INSERT INTO login_challenges (nonce_hash, origin, purpose, issued_at, expires_at, used_at,"
    " address) VALUES (:nonce_hash, :origin, :purpose, :issued_at, :expires_at, NULL, :address)")
# the oldest first (ids grow with time), a bounded batch, only what has long expired
_PURGE = ("DELETE FROM login_challenges WHERE id IN (SELECT id FROM login_challenges"
          " ORDER BY id LIMIT 5000) AND expires_at < :before")


@dataclass
class _ChallengePlan:
    """A challenge made outside the lock; the job stores it (or finds the address blocked)."""

    address: str | None
    now: datetime
    nonce: str
    origin: str
    issued: datetime
    expires: datetime

    @classmethod
    def make(cls, auth: Authority, address: str | None) -> _ChallengePlan:
        now = clock.now()
        ttl = max(1, min(auth.settings.challenge_ttl_seconds, MAX_CHALLENGE_SECONDS))
        issued = now.replace(microsecond=0)
        return cls(address=address, now=now, nonce=b64url(secrets.token_bytes(NONCE_BYTES)),
                   origin=origin_of(auth), issued=issued,
                   expires=issued + timedelta(seconds=ttl))

    def job(self, tx: Any) -> int | None:
        """Inside the write transaction: seconds to wait if rate limited, else None."""
        sql = _Sql(tx.connection())
        row = sql.one(_BLOCKED, key=f"addr:{self.address}")
        wait = _wait(_from_db(row[0]) if row else None, self.now)
        if wait is not None:
            return wait
        sql.run(_INSERT_CHALLENGE, nonce_hash=_sha256(self.nonce), origin=self.origin,
                purpose=PURPOSE, issued_at=self.issued, expires_at=self.expires,
                address=self.address)
        if secrets.randbelow(1000) == 0:  # old challenges: kept a day for replay detection
            sql.run(_PURGE, before=self.now - timedelta(days=1))
        return None

    def finish(self, wait: int | None) -> Challenge:
        if wait is not None:
            raise LoginRateLimited(wait)
        return Challenge(nonce=self.nonce, origin=self.origin, purpose=PURPOSE,
                         issued_at=_time_text(self.issued), expires_at=self.expires)


def issue_challenge(auth: Authority, *, address: str | None) -> Challenge:
    """A fresh single-use challenge, stored; refused while the address is rate limited."""
    plan = _ChallengePlan.make(auth, address)
    return plan.finish(_run(auth, plan.job))


async def issue_challenge_async(auth: Authority, *, address: str | None) -> Challenge:
    """:func:`issue_challenge` for the event loop."""
    plan = _ChallengePlan.make(auth, address)
    return plan.finish(await _run_async(auth, plan.job))


_CONSUME = ("UPDATE login_challenges SET used_at = :now WHERE nonce_hash = :nh AND used_at IS NULL"
            " RETURNING origin, purpose, issued_at, expires_at")
_CHALLENGE_KNOWN = "SELECT 1 FROM login_challenges WHERE nonce_hash = :nh"


def _consume(sql: _Sql, answer: LoginAnswer, now: datetime, origin: str) -> str | None:
    """Spend the nonce (one atomic UPDATE: once, across processes); the refusal or None."""
    nonce_hash = _sha256(answer.nonce)
    row = sql.one(_CONSUME, now=now, nh=nonce_hash)
    if row is None:
        known = sql.one(_CHALLENGE_KNOWN, nh=nonce_hash)
        return "CHALLENGE_REPLAYED" if known else "CHALLENGE_UNKNOWN"
    stored_origin, purpose, issued_at, expires_at = row
    if now >= _from_db(expires_at):  # type: ignore[operator]
        return "CHALLENGE_EXPIRED"
    if answer.origin != stored_origin:  # the key signed our fresh nonce for another site
        return "CHALLENGE_ORIGIN"
    if stored_origin != origin:
        # issued under another base URL (a server configured differently on this database):
        # the holder signed what the challenge said, so it proves nothing against them
        return "CHALLENGE_UNKNOWN"
    if answer.purpose != PURPOSE or purpose != PURPOSE:
        return "CHALLENGE_PURPOSE"
    if answer.issued_at != _time_text(_from_db(issued_at)):  # type: ignore[arg-type]
        return "CHALLENGE_MISMATCH"
    return None


# --- rate limits -------------------------------------------------------------------------------
@dataclass
class _Throttle:
    key: str
    failures: int
    window_start: datetime
    blocked_until: datetime | None


_THROTTLES = ("SELECT key, failures, window_start, blocked_until FROM login_throttles "
              "WHERE key = :a OR key = :b")
_NEW_THROTTLE = ("INSERT INTO login_throttles (key, failures, window_start, blocked_until) "
                 "VALUES (:key, 1, :now, NULL)")
_SET_THROTTLE = ("UPDATE login_throttles SET failures = :failures, window_start = :start, "
                 "blocked_until = :blocked WHERE key = :key")


def _throttles(sql: _Sql, keys: list[str]) -> dict[str, _Throttle]:
    rows = sql.all(_THROTTLES, a=keys[0], b=keys[-1])
    return {r[0]: _Throttle(r[0], int(r[1]), _from_db(r[2]), _from_db(r[3]))  # type: ignore[arg-type]
            for r in rows}


def _wait(blocked_until: datetime | None, now: datetime) -> int | None:
    """Seconds to wait while a key is blocked, else None."""
    if blocked_until is None or blocked_until <= now:
        return None
    return max(1, int((blocked_until - now).total_seconds() + 0.999))


def _count_failure(sql: _Sql, key: str, row: _Throttle | None, now: datetime) -> None:
    if row is None:
        sql.run(_NEW_THROTTLE, key=key, now=now)
        return
    fresh = now - row.window_start > THROTTLE_WINDOW and (
        row.blocked_until is None or row.blocked_until <= now)
    failures = 1 if fresh else row.failures + 1
    blocked = None
    if failures > THROTTLE_FREE:
        exponent = min(failures - THROTTLE_FREE, 20)
        blocked = now + min(timedelta(seconds=2 ** exponent), THROTTLE_MAX_BLOCK)
    sql.run(_SET_THROTTLE, failures=failures, start=now if fresh else row.window_start,
            blocked=blocked, key=key)


# --- certificates and accounts -------------------------------------------------------------------
@dataclass(frozen=True)
class _Parsed:
    certificate: x509.Certificate
    serial: str
    profile: str | None
    trusted: bool  # directly issued by our issuing CA, which our root issued


_PARSED: OrderedDict[tuple[int, bytes], _Parsed] = OrderedDict()
_PARSED_LOCK = Lock()
_PARSED_MAX = 20000
#: certificate serial -> account identity; fixed once the token record names its holder
_IDENTITIES: dict[tuple[int, str], str] = {}
#: (account id, network) pairs known to be recorded: no query for a returning holder
_NETWORKS: set[tuple[int, int, str]] = set()


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


@dataclass(frozen=True)
class _Account:
    id: int
    role: str
    name: str
    enterprise_id: int | None
    status: str
    failures: int
    locked_until: datetime | None
    last_login_at: datetime | None


_OWNER = (
    "SELECT c.serial, c.profile, c.status, c.not_before, c.not_after, c.enterprise_id,"
    " t.role, t.holder, t.enterprise_id, e.uscc, e.status, e.contact_email,"
    " a.id, a.role, a.name, a.enterprise_id, a.status, a.failures, a.locked_until,"
    " a.last_login_at"
    " FROM certificates c"
    " LEFT JOIN tokens t ON t.label = c.token_label"
    " LEFT JOIN enterprises e ON e.id = c.enterprise_id"
    " LEFT JOIN accounts a ON a.identity = :identity"
    " WHERE c.serial = :serial")


def _owner(auth: Authority, sql: _Sql, serial: str,
           now: datetime) -> tuple[acc.CertOwner | None, _Account | None]:
    """The certificate, its enterprise and its holder's account (created on first use), in
    one query once this process has seen the certificate."""
    cache_key = (id(auth), serial)
    identity = _IDENTITIES.get(cache_key, "")
    row = sql.one(_OWNER, identity=identity, serial=serial)
    if row is None:
        return None, None
    role = row[6] if row[6] is not None and row[8] == row[5] else None
    owner = acc.CertOwner(serial=row[0], profile=row[1], status=row[2],
                          not_before=_from_db(row[3]), not_after=_from_db(row[4]),  # type: ignore[arg-type]
                          enterprise_id=row[5], enterprise_uscc=row[9], enterprise_status=row[10],
                          contact_email=row[11], role=role,
                          holder=row[7] if role is not None else None)
    if not owner.has_account:
        return owner, None
    assert owner.role is not None and owner.holder is not None
    wanted = acc.account_identity(owner.role, owner.enterprise_id, owner.holder)
    if row[12] is None or identity != wanted:
        account_id = acc.ensure_account(sql.conn, role=owner.role, name=owner.holder,
                                        enterprise_id=owner.enterprise_id, now=now)
        _IDENTITIES[cache_key] = wanted
        again = sql.one(_OWNER, identity=wanted, serial=serial)
        assert again is not None and again[12] == account_id
        row = again
    account = _Account(id=row[12], role=row[13], name=row[14], enterprise_id=row[15],
                       status=row[16], failures=int(row[17]), locked_until=_from_db(row[18]),
                       last_login_at=_from_db(row[19]))
    return owner, account


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
    account: _Account | None = None
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

    auth: Authority
    answer: LoginAnswer
    address: str | None
    user_agent: str | None
    now: datetime
    network: str | None
    parsed: _Parsed | None
    sig_ok: bool
    malformed: str | None

    @classmethod
    def make(cls, auth: Authority, answer: LoginAnswer, address: str | None,
             user_agent: str | None) -> _VerifyPlan:
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
        return cls(auth=auth, answer=answer, address=address, user_agent=user_agent,
                   now=clock.now(), network=acc.network_of(address), parsed=parsed,
                   sig_ok=sig_ok, malformed=malformed)

    def job(self, tx: Any) -> _Outcome:
        auth, parsed, now = self.auth, self.parsed, self.now
        sql = _Sql(tx.connection())
        serial = parsed.serial if parsed is not None else None
        out = _Outcome()
        addr_key = f"addr:{self.address}"
        keys = [addr_key] + ([f"cert:{serial}"] if serial else [])
        states = _throttles(sql, keys)
        addr_wait = _wait(states[addr_key].blocked_until, now) if addr_key in states else None
        cert_wait = (_wait(states[keys[-1]].blocked_until, now)
                     if serial and keys[-1] in states else None)
        if addr_wait is not None:
            out.reason, out.retry_after = "RATE_LIMITED", addr_wait
        elif not self.sig_ok:
            if cert_wait is not None:
                out.reason, out.retry_after = "RATE_LIMITED", cert_wait
            else:
                out.reason = self.malformed or "SIGNATURE_INVALID"
                for key in keys:
                    _count_failure(sql, key, states.get(key), now)
            if parsed is not None and parsed.trusted:
                # one of our certificates, presented by someone who could not sign with its
                # key: the holder's enterprise sees the attempt in its history
                out.owner, out.account = _owner(auth, sql, parsed.serial, now)
        else:
            assert parsed is not None
            out.possession = True
            _after_possession(auth, tx, sql, self.answer, parsed, out, address=self.address,
                              network=self.network, now=now)
            if out.reason is not None and out.account is None:
                # a valid signature by a key that is not one of our holders' (a certificate
                # of another CA, say): anyone can do that, so it feeds the address's limit
                _count_failure(sql, addr_key, states.get(addr_key), now)
            elif out.challenge_failure and not out.counted:
                # an old answer sent again (replayed, expired, unknown): it proves nothing
                # about who holds the key now, so it feeds the rate limits, like a forgery
                for key in keys:
                    _count_failure(sql, key, states.get(key), now)
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


def verify_login(auth: Authority, answer: LoginAnswer, *, address: str | None,
                 user_agent: str | None) -> LoginResult:
    """Check a signed answer and open a session, or raise ``LoginRefused`` /
    ``LoginRateLimited``. Every attempt is recorded (login history and audit log)."""
    plan = _VerifyPlan.make(auth, answer, address, user_agent)
    return plan.finish(_run(auth, plan.job))


async def verify_login_async(auth: Authority, answer: LoginAnswer, *, address: str | None,
                             user_agent: str | None) -> LoginResult:
    """:func:`verify_login` for the event loop."""
    plan = _VerifyPlan.make(auth, answer, address, user_agent)
    return plan.finish(await _run_async(auth, plan.job))


_INSERT_SESSION = (
    "INSERT INTO login_sessions (token_hash, account_id, certificate_serial, created_at,"
    " last_seen_at, absolute_expires_at, ended_at, end_reason, address) VALUES (:token_hash,"
    " :account_id, :serial, :now, :now, :expires, NULL, NULL, :address)")
_ACCOUNT_SUCCESS = "UPDATE accounts SET failures = 0, last_login_at = :now WHERE id = :id"
_NETWORK_KNOWN = ("SELECT 1 FROM account_networks WHERE account_id = :account_id"
                  " AND network = :network")
_LAST_LOGIN_EVERY = timedelta(minutes=1)


def _after_possession(auth: Authority, s: Any, sql: _Sql, answer: LoginAnswer,
                      parsed: _Parsed, out: _Outcome, *, address: str | None,
                      network: str | None, now: datetime) -> None:
    """The checks after a valid signature, inside the login's write transaction."""
    owner, account = _owner(auth, sql, parsed.serial, now) if parsed.trusted else (None, None)
    out.owner, out.account = owner, account
    challenge_problem = _consume(sql, answer, now, origin_of(auth))
    if challenge_problem is not None:
        out.reason, out.challenge_failure = challenge_problem, True
        out.counted, out.locked_now = acc.count_possession_failure(
            auth, s, account, owner, code=challenge_problem, address=address, now=now)
        return
    out.reason = _refusal(parsed, owner, account, now)
    if out.reason is not None:
        return
    assert owner is not None and account is not None
    token = b64url(secrets.token_bytes(32))
    token_hash = _sha256(token)
    session_id = session_id_of(token_hash)
    expires = now + timedelta(hours=auth.settings.session_absolute_hours)
    sql.run(_INSERT_SESSION, token_hash=token_hash, account_id=account.id,
            serial=parsed.serial, now=now, expires=expires, address=address)
    if account.failures or account.last_login_at is None or \
            now - account.last_login_at > _LAST_LOGIN_EVERY:
        sql.run(_ACCOUNT_SUCCESS, now=now, id=account.id)
    new_network = False
    seen = (id(auth), account.id, network or "")
    if network is not None and seen not in _NETWORKS:
        if sql.one(_NETWORK_KNOWN, account_id=account.id, network=network) is None:
            new_network = acc.note_network(auth, sql.conn, account, owner, network, now)
        _NETWORKS.add(seen)
    out.result = LoginResult(
        token=token, session_id=session_id,
        account={"id": account.id, "role": account.role, "name": account.name,
                 "enterprise": owner.enterprise_uscc},
        certificate_serial=parsed.serial, expires_at=expires,
        idle_minutes=auth.settings.session_idle_minutes, new_network=new_network)


def _refusal(parsed: _Parsed, owner: acc.CertOwner | None, account: _Account | None,
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
        return "ACCOUNT_NOT_FOUND"
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


def _record(auth: Authority, s: Any, sql: _Sql, out: _Outcome, *, serial: str | None,
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


def resolve_session(auth: Authority, token: str | None) -> SessionView:
    """The live session for a bearer token, checking its certificate's status *now*."""
    if not token or len(token) > 200:
        raise _session_error("SESSION_REQUIRED")
    now = clock.now()
    with auth.db.engine.connect() as conn:
        row = _Sql(conn).one(_SESSION, token_hash=_sha256(token))
        conn.rollback()
    if row is None:
        raise _session_error("SESSION_EXPIRED")
    (token_hash, account_id, serial, created_at, last_seen_at, absolute, ended_at, end_reason,
     role, name, enterprise_id, account_status, locked_until, cert_status, not_after, uscc,
     enterprise_status) = row
    if ended_at is not None:
        raise _session_error("SESSION_REVOKED" if end_reason in REVOKING_END_REASONS
                             else "SESSION_EXPIRED")
    locked = _from_db(locked_until)
    last_seen = _from_db(last_seen_at)
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
    elif now >= _from_db(not_after):  # type: ignore[operator]
        dead = "certificate_expired"
    elif now >= _from_db(absolute):  # type: ignore[operator]
        dead = "expired"
    elif now - last_seen > timedelta(minutes=auth.settings.session_idle_minutes):
        dead = "idle"
    if dead is not None:
        _run(auth, lambda tx: _Sql(tx.connection()).run(_END, now=now, reason=dead,
                                                        token_hash=token_hash))
        raise _session_error("SESSION_REVOKED" if dead in REVOKING_END_REASONS
                             else "SESSION_EXPIRED")
    if now - last_seen > SESSION_TOUCH:
        _run(auth, lambda tx: _Sql(tx.connection()).run(_TOUCH, now=now,
                                                        token_hash=token_hash))
    return SessionView(session_id=session_id_of(token_hash), account_id=account_id, role=role,
                       name=name, enterprise_id=enterprise_id, enterprise_uscc=uscc,
                       certificate_serial=serial, created_at=_from_db(created_at),  # type: ignore[arg-type]
                       expires_at=_from_db(absolute))  # type: ignore[arg-type]


def logout(auth: Authority, *, session_id: str, actor: str) -> None:
    """End a session (audited)."""
    now = clock.now()
    with auth.change(actor=actor, action="auth.logout", target=f"session:{session_id}") as s:
        _Sql(s.connection()).run(_END_BY_ID, now=now, reason="logout", sid=session_id,
                                 sid_end=session_id + "g")


def end_sessions_for_certificate(s: Any, serial: str, *, reason: str) -> int:
    """End every open session opened with a certificate (inside the caller's transaction):
    a frozen or revoked certificate takes its sessions with it."""
    return _Sql(s.connection()).run(_END_FOR_CERT, now=clock.now(), reason=reason,
                                    serial=serial)


__all__ = ["LOGIN_DOMAIN", "Challenge", "LoginAnswer", "LoginRateLimited", "LoginRefused",
           "LoginResult", "SessionView", "account_networks", "end_sessions_for_certificate",
           "issue_challenge", "login_message", "logout", "normalize_origin",
           "resolve_session", "verify_login"]
