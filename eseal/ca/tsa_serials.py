"""TSA serial numbers that stay unique across every process sharing one eseal database.

RFC 3161 §2.4.2 requires each TimeStampToken serial to be unique for the TSA, and eseal
runs several processes against one home (``eseal serve --workers N``, a second server, the
CLI). ``eseal.ca.tsa.SerialBlocks`` hands out serials from blocks of a shared counter; this
module supplies the shared counter: the ``counters`` row named ``tsa``, advanced by a whole
block inside one write transaction (``BEGIN IMMEDIATE`` on SQLite, a row lock from the
UPDATE on PostgreSQL), so two processes can never reserve overlapping ranges. One database
round trip per ``block`` timestamps; values of a block a process never used (it stopped)
are simply skipped, which RFC 3161 allows (serials need to be unique, not dense).
"""

from __future__ import annotations

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from eseal.ca.tsa import SerialBlocks
from eseal.errors import InvalidInput
from eseal.store import Database
from eseal.store.models import StatusCounter

COUNTER = "tsa"
DEFAULT_BLOCK = 1024

_COUNTERS = StatusCounter.__table__


def reserve(db: Database, n: int, *, name: str = COUNTER) -> int:
    """Advance counter ``name`` by ``n`` and return the first value of the reserved range.

    The range is ``first … first + n - 1``; the counter row holds the last value handed out
    (a missing row counts as 0, so the first range starts at 1).
    """
    if n < 1:
        raise InvalidInput("COUNTER_BLOCK_SIZE", "a reservation needs at least one value",
                           "至少需要预留一个值", field="n")
    for _ in range(2):  # a second try only if another process created the row first
        try:
            with db.write() as s:
                conn = s.connection()
                done = conn.execute(update(_COUNTERS).where(_COUNTERS.c.name == name)
                                    .values(value=_COUNTERS.c.value + n))
                if done.rowcount == 0:
                    conn.execute(insert(_COUNTERS).values(name=name, value=n))
                last = conn.execute(select(_COUNTERS.c.value)
                                    .where(_COUNTERS.c.name == name)).scalar_one()
            return int(last) - n + 1
        except IntegrityError:
            continue
    raise RuntimeError(f"counter {name!r} could not be created")  # pragma: no cover


def serial_blocks(db: Database, *, block: int = DEFAULT_BLOCK,
                  node: bytes | None = None) -> SerialBlocks:
    """A thread-safe source of TSA serials backed by the ``tsa`` counter of ``db``."""
    return SerialBlocks(lambda n: reserve(db, n), block=block, node=node)
