"""The login path's SQL fast path: transactions, the write lock and group commit.

A login runs a dozen statements in two write transactions; through the ORM each costs more
than the rest of the login together. So on SQLite the statements run on the transaction's
own DBAPI connection, writers of all processes queue on one ``flock`` instead of SQLite's
sleeping busy handler, and on the event loop the writes of concurrent logins commit as one
group (``bench/login.py`` measures it).

On PostgreSQL there is no ``flock``: correctness never rests on it. Writers take turns on
the database's own advisory lock (``eseal.store.db``), which holds across hosts, and the
group's transaction runs in a worker thread so that waiting for it never stalls the loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from threading import Lock
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, text

from eseal.store.db import is_unavailable

if TYPE_CHECKING:
    from eseal.auth.context import AuthContext


T = TypeVar("T")


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
    if sqlite and isinstance(value, bool):
        # SQLite stores booleans as 0/1; PostgreSQL's boolean column refuses an integer
        return int(value)
    return value


def from_db(value: Any) -> datetime | None:
    """A stored time as an aware UTC datetime (SQLite hands back text)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LoginSql:
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
    appends through (``connection()``, ``execute()``, ``info`` and ``after_commit()``, which
    a checkpoint uses to journal itself once committed): the ORM's unit of work would cost
    more than all of a login's statements."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.info: dict[str, Any] = {}
        self._after_commit: list[Callable[[Any], None]] = []

    def connection(self) -> Connection:
        return self._conn

    def execute(self, statement: Any, params: Any = None) -> Any:
        return self._conn.execute(statement, params)

    def after_commit(self, callback: Callable[[Any], None]) -> None:
        """Run ``callback(self)`` once this transaction has committed (never on rollback)."""
        self._after_commit.append(callback)

    def committed(self) -> None:
        for callback in self._after_commit:
            callback(self)


_LOCKS: dict[tuple[int, str], tuple[Lock, int]] = {}
_LOCKS_GUARD = Lock()


@contextmanager
def _transaction(auth: AuthContext) -> Iterator[Any]:
    # eseal_immediate: the database's begin hook opens it with BEGIN IMMEDIATE (SQLite), so
    # the transaction holds the write lock from its first statement, as Database.write does
    with auth.db.engine.connect() as conn:
        conn.execution_options(eseal_immediate=True)
        tx = _Tx(conn)
        with conn.begin():
            yield tx
        tx.committed()


def _lock_of(auth: AuthContext) -> tuple[Lock, int] | None:
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
def _write(auth: AuthContext) -> Iterator[Any]:
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


def run_write(auth: AuthContext, job: Callable[[Any], T]) -> T:
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

    def __init__(self, auth: AuthContext, loop: asyncio.AbstractEventLoop) -> None:
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
                    if entry is None:
                        # PostgreSQL: the transaction waits for the audit lock, which
                        # another process or host may hold, in a worker thread, so the
                        # loop goes on serving (and gathering the next group)
                        await self._loop.run_in_executor(None, self._commit, group)
                    else:
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
            if len(group) == 1 or is_unavailable(exc):
                # a lost database fails every job alike: no point in retrying one by one
                for _, future in group:
                    self._settle(future, exc=exc)
                return
            for item in group:
                self._commit([item])
            return
        for (_, future), result in zip(group, results, strict=True):
            self._settle(future, result=result)

    def _settle(self, future: asyncio.Future[Any], *, result: Any = None,
                exc: BaseException | None = None) -> None:
        """Resolve a job's future from whichever thread committed it."""
        def settle() -> None:
            if future.done():
                return
            if exc is not None:
                future.set_exception(exc)
            else:
                future.set_result(result)

        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            settle()
        else:
            self._loop.call_soon_threadsafe(settle)


_COMMITTERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                       dict[int, _GroupCommit]] = weakref.WeakKeyDictionary()


async def run_write_async(auth: AuthContext, job: Callable[[Any], T]) -> T:
    """Run a write job from the event loop, in this loop's group commit."""
    loop = asyncio.get_running_loop()
    per_loop = _COMMITTERS.setdefault(loop, {})
    committer = per_loop.get(id(auth))
    if committer is None or committer._auth is not auth:
        committer = per_loop[id(auth)] = _GroupCommit(auth, loop)
    return await committer.submit(job)
