"""Rate limits for login failures anyone can cause (per address, per certificate).

Certificates are public, so a failure before a valid signature proves nothing about the
holder: it feeds these limits and never the account's lockout (``eseal.auth.lockout``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from eseal.auth.login_sql import LoginSql, from_db

if TYPE_CHECKING:
    pass


# Rate limits for failures anyone can cause (per address, per certificate): FREE failures in
# WINDOW cost nothing, then each further one blocks for 2**(n - FREE) seconds, at most
# MAX_BLOCK. A valid signature is never stopped by a certificate's limit (only by its own
# address's): possession of the key beats a flood of forgeries.
THROTTLE_FREE = 10
THROTTLE_WINDOW = timedelta(minutes=15)
THROTTLE_MAX_BLOCK = timedelta(minutes=15)


# --- rate limits -------------------------------------------------------------------------------
@dataclass
class _Throttle:
    key: str
    failures: int
    window_start: datetime
    blocked_until: datetime | None


_THROTTLES = ("SELECT key, failures, window_start, blocked_until FROM login_throttles "
              "WHERE key = :a OR key = :b")
# ON CONFLICT: a key first seen by two writers at once is created once (the second, finding
# it made, counts on the row as it is now)
_NEW_THROTTLE = ("INSERT INTO login_throttles (key, failures, window_start, blocked_until) "
                 "VALUES (:key, 1, :now, NULL) ON CONFLICT (key) DO NOTHING")
_SET_THROTTLE = ("UPDATE login_throttles SET failures = :failures, window_start = :start, "
                 "blocked_until = :blocked WHERE key = :key")


def load_throttles(sql: LoginSql, keys: list[str]) -> dict[str, _Throttle]:
    rows = sql.all(_THROTTLES, a=keys[0], b=keys[-1])
    return {r[0]: _Throttle(r[0], int(r[1]), from_db(r[2]), from_db(r[3]))  # type: ignore[arg-type]
            for r in rows}


def wait_seconds(blocked_until: datetime | None, now: datetime) -> int | None:
    """Seconds to wait while a key is blocked, else None."""
    if blocked_until is None or blocked_until <= now:
        return None
    return max(1, int((blocked_until - now).total_seconds() + 0.999))


def count_failure(sql: LoginSql, key: str, row: _Throttle | None, now: datetime) -> None:
    if row is None:
        if sql.run(_NEW_THROTTLE, key=key, now=now):
            return
        row = load_throttles(sql, [key])[key]
    fresh = now - row.window_start > THROTTLE_WINDOW and (
        row.blocked_until is None or row.blocked_until <= now)
    failures = 1 if fresh else row.failures + 1
    blocked = None
    if failures > THROTTLE_FREE:
        exponent = min(failures - THROTTLE_FREE, 20)
        blocked = now + min(timedelta(seconds=2 ** exponent), THROTTLE_MAX_BLOCK)
    sql.run(_SET_THROTTLE, failures=failures, start=now if fresh else row.window_start,
            blocked=blocked, key=key)
