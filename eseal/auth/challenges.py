"""Login challenges: issuing single-use nonces and consuming them atomically.

``issue_challenge`` stores a 32-byte nonce (as SHA-256) bound to the origin (the configured
public base URL), the purpose ``login`` and an expiry of at most 120 s. An answer consumes
it with one ``UPDATE ... WHERE used_at IS NULL``, so two server processes sharing the
database cannot both accept it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from eseal import clock
from eseal.auth.login_sql import LoginSql, from_db, run_write, run_write_async
from eseal.auth.refusals import LoginRateLimited
from eseal.auth.throttle import wait_seconds
from eseal.pki.login_message import LOGIN_DOMAIN, PURPOSE, b64url, login_message, normalize_origin

if TYPE_CHECKING:
    from eseal.auth.context import AuthContext


NONCE_BYTES = 32
MAX_CHALLENGE_SECONDS = 120



def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def time_text(when: datetime) -> str:
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
                "issued_at": self.issued_at, "expires_at": time_text(self.expires_at),
                "domain": LOGIN_DOMAIN.rstrip(b"\x00").decode()}



# --- challenges -------------------------------------------------------------------------------
def origin_of(auth: AuthContext) -> str:
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
    def make(cls, auth: AuthContext, address: str | None) -> _ChallengePlan:
        now = clock.now()
        ttl = max(1, min(auth.settings.challenge_ttl_seconds, MAX_CHALLENGE_SECONDS))
        issued = now.replace(microsecond=0)
        return cls(address=address, now=now, nonce=b64url(secrets.token_bytes(NONCE_BYTES)),
                   origin=origin_of(auth), issued=issued,
                   expires=issued + timedelta(seconds=ttl))

    def job(self, tx: Any) -> int | None:
        """Inside the write transaction: seconds to wait if rate limited, else None."""
        sql = LoginSql(tx.connection())
        row = sql.one(_BLOCKED, key=f"addr:{self.address}")
        wait = wait_seconds(from_db(row[0]) if row else None, self.now)
        if wait is not None:
            return wait
        sql.run(_INSERT_CHALLENGE, nonce_hash=sha256_hex(self.nonce), origin=self.origin,
                purpose=PURPOSE, issued_at=self.issued, expires_at=self.expires,
                address=self.address)
        if secrets.randbelow(1000) == 0:  # old challenges: kept a day for replay detection
            sql.run(_PURGE, before=self.now - timedelta(days=1))
        return None

    def finish(self, wait: int | None) -> Challenge:
        if wait is not None:
            raise LoginRateLimited(wait)
        return Challenge(nonce=self.nonce, origin=self.origin, purpose=PURPOSE,
                         issued_at=time_text(self.issued), expires_at=self.expires)


def issue_challenge(auth: AuthContext, *, address: str | None) -> Challenge:
    """A fresh single-use challenge, stored; refused while the address is rate limited."""
    plan = _ChallengePlan.make(auth, address)
    return plan.finish(run_write(auth, plan.job))


async def issue_challenge_async(auth: AuthContext, *, address: str | None) -> Challenge:
    """:func:`issue_challenge` for the event loop."""
    plan = _ChallengePlan.make(auth, address)
    return plan.finish(await run_write_async(auth, plan.job))


_CONSUME = ("UPDATE login_challenges SET used_at = :now WHERE nonce_hash = :nh AND used_at IS NULL"
            " RETURNING origin, purpose, issued_at, expires_at")
_CHALLENGE_KNOWN = "SELECT 1 FROM login_challenges WHERE nonce_hash = :nh"


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



def consume_challenge(sql: LoginSql, answer: LoginAnswer, now: datetime, origin: str) -> str | None:
    """Spend the nonce (one atomic UPDATE: once, across processes); the refusal or None."""
    nonce_hash = sha256_hex(answer.nonce)
    row = sql.one(_CONSUME, now=now, nh=nonce_hash)
    if row is None:
        known = sql.one(_CHALLENGE_KNOWN, nh=nonce_hash)
        return "CHALLENGE_REPLAYED" if known else "CHALLENGE_UNKNOWN"
    stored_origin, purpose, issued_at, expires_at = row
    if now >= from_db(expires_at):  # type: ignore[operator]
        return "CHALLENGE_EXPIRED"
    if answer.origin != stored_origin:  # the key signed our fresh nonce for another site
        return "CHALLENGE_ORIGIN"
    if stored_origin != origin:
        # issued under another base URL (a server configured differently on this database):
        # the holder signed what the challenge said, so it proves nothing against them
        return "CHALLENGE_UNKNOWN"
    if answer.purpose != PURPOSE or purpose != PURPOSE:
        return "CHALLENGE_PURPOSE"
    if answer.issued_at != time_text(from_db(issued_at)):  # type: ignore[arg-type]
        return "CHALLENGE_MISMATCH"
    return None
