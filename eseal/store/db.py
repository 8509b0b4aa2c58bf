"""Opening the database: SQLite in the home by default, PostgreSQL when scaling out.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE`` so two processes appending to the hash-chained audit log serialise at
BEGIN instead of failing at COMMIT: the whole database is the lock.

PostgreSQL (psycopg 3) has no such lock: under READ COMMITTED two transactions that read
the audit chain's head both see the same row, and ``FOR UPDATE`` does not help (the waiter
re-reads the *old* head once the first commits). So writers that must take turns say so
with :func:`serialise`, a transaction-scoped advisory lock (``pg_advisory_xact_lock``) that
holds across processes and hosts and is released by COMMIT or ROLLBACK, and on SQLite costs
nothing. Connections are pinged before use (``pool_pre_ping``) so a database restart costs
the requests in flight, not the first request on every pooled connection; lock waits end
after ``lock_timeout`` instead of hanging. :func:`unavailable` is how a lost or unreachable
database reaches callers: a coded 503, ``DATABASE_UNAVAILABLE``.

The schema is owned by Alembic; ``open_database`` upgrades it to head (a no-op, and cheap,
when it is already there). On PostgreSQL the upgrade runs under an advisory lock, so
replicas starting together on an empty database build the schema once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, exc, text
from sqlalchemy.orm import Session, sessionmaker

from eseal.errors import EsealError

MIGRATIONS = Path(__file__).with_name("migrations")

#: advisory lock keys (64-bit, one namespace per database): "eseal" + a small number
AUDIT_APPEND_LOCK = 0x657365616C0001  # the audit chain's head: one appender at a time
MIGRATION_LOCK = 0x657365616C0002  # Alembic upgrades: one migrating process at a time
OUTBOX_CLAIMS = 0x6F7574  # "out": the two-key advisory locks (this, row id) of outbox rows
#: how long a PostgreSQL statement waits for a row or advisory lock before giving up (ms)
LOCK_TIMEOUT_MS = 15_000


class DatabaseUnavailable(EsealError):
    """The CA's own database cannot be reached or did not answer in time: not the
    caller's fault, and worth retrying (503)."""

    status = 503


def unavailable(cause: BaseException | None = None) -> DatabaseUnavailable:
    busy = cause is not None and "lock timeout" in str(cause).lower()
    what = ("the database is busy (a lock wait timed out)" if busy
            else "the database cannot be reached")
    what_zh = "数据库繁忙（等待锁超时）" if busy else "无法连接数据库"
    return DatabaseUnavailable("DATABASE_UNAVAILABLE", f"{what}; retry shortly",
                               f"{what_zh}，请稍后重试")


#: what SQLAlchemy raises when the database itself fails (connection lost, server
#: restarting, lock timeout), as opposed to a statement being wrong
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (exc.OperationalError,
                                                       exc.InterfaceError)


def is_unavailable(error: BaseException) -> bool:
    """Whether ``error`` is the database failing rather than a bug in a statement."""
    if isinstance(error, UNAVAILABLE_ERRORS):
        return True
    return isinstance(error, exc.DBAPIError) and bool(error.connection_invalidated)


def driver_url(url: str) -> str:
    """A PostgreSQL URL without a driver gets psycopg 3 (SQLAlchemy's default is psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def serialise(conn: Connection, key: int) -> None:
    """Take turns with every other transaction that serialises on ``key``, in any process
    on any host, until this transaction ends. On SQLite the write transaction already holds
    the database's one write lock (``BEGIN IMMEDIATE``), so there is nothing to do."""
    if conn.dialect.name != "postgresql":
        return
    if key == AUDIT_APPEND_LOCK and conn.get_execution_options().get("eseal_immediate"):
        return  # a write transaction: it took this lock when it began (_postgresql_turns)
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


_INSERTS_OR_SKIP: dict[tuple[str, str], Any] = {}


def insert_if_new(conn: Connection, table: Table, keys: tuple[str, ...],
                  values: dict[str, Any]) -> bool:
    """``INSERT … ON CONFLICT (keys) DO NOTHING RETURNING``: True if the row was new, False if
    another writer had made it (in either engine, never a unique violation)."""
    cache_key = (conn.dialect.name, table.name)
    stmt = _INSERTS_OR_SKIP.get(cache_key)
    if stmt is None:
        if conn.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as dialect_insert
        else:
            from sqlalchemy.dialects.sqlite import insert as dialect_insert
        stmt = _INSERTS_OR_SKIP[cache_key] = (
            dialect_insert(table).on_conflict_do_nothing(index_elements=list(keys))
            .returning(*table.primary_key.columns))
    return conn.execute(stmt, values).first() is not None


class Database:
    """An engine plus the two kinds of transaction eseal uses."""

    def __init__(self, url: str) -> None:
        url = driver_url(url)
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgresql = url.startswith("postgresql")
        kwargs: dict[str, object] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        if self.is_postgresql:
            kwargs["connect_args"] = {"options": f"-c lock_timeout={LOCK_TIMEOUT_MS}",
                                      "connect_timeout": 10}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        elif self.is_postgresql:
            _postgresql_turns(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that holds the write lock from its first statement: SQLite's
        ``BEGIN IMMEDIATE``, PostgreSQL's audit advisory lock (see :func:`_postgresql_turns`)."""
        with self._sessions() as session:
            session.connection(execution_options={"eseal_immediate": True})
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("eseal_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _postgresql_turns(engine: Engine) -> None:
    """A write transaction (``eseal_immediate``) takes the audit append lock first, as SQLite's
    ``BEGIN IMMEDIATE`` takes the database's write lock first.

    Taking it at the start rather than just before the audit append is what keeps writers
    free of deadlocks: a transaction that locked rows (an account's counter, a throttle)
    and then waited for the append lock, while the holder of that lock went on to touch the
    same rows (the login path commits several logins in one transaction), would deadlock;
    taken first, the lock orders every writer before any row lock. Nearly every write
    appends an audit event, so this costs little parallelism that the chain did not cost
    already; reads never wait for it (bench/audit_append.py measures both engines).
    """

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("eseal_immediate", False):
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%(k)s)",
                                 {"k": AUDIT_APPEND_LOCK})


def _alembic_config(db: Database):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", db.url.replace("%", "%%"))
    return cfg


def upgrade(db: Database) -> None:
    """Bring the schema to the newest migration (only if it is not already there)."""
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(db)
    head = ScriptDirectory.from_config(cfg).get_current_head()
    if _current_revision(db) == head:
        return
    with db.engine.begin() as conn:
        if db.is_postgresql:
            # DDL is transactional here: whoever holds the lock builds the schema and
            # commits; the others wait, then find it at head and do nothing
            serialise(conn, MIGRATION_LOCK)
            if _current_revision(conn) == head:
                return
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def _current_revision(where: Database | Connection) -> str | None:
    """The schema's Alembic revision (None for an empty database)."""
    if isinstance(where, Database):
        with where.engine.connect() as conn:
            try:
                return _current_revision(conn)
            finally:
                conn.rollback()
    has_table = where.dialect.has_table(where, "alembic_version")
    if not has_table:
        return None
    return where.execute(text("SELECT version_num FROM alembic_version")).scalar()


class RowClaims:
    """Claims on rows that this process is working on, across processes and hosts, for as
    long as the work takes (an e-mail being sent), released at once if the process dies.

    ``FOR UPDATE SKIP LOCKED`` would hold the claim as a row lock inside an open
    transaction, so nothing about the row (the attempt counted *before* the send, which a
    crash must leave behind) could be committed meanwhile. A session-level advisory lock
    ``(namespace, row id)`` on a connection of its own is the same skip-if-taken claim
    (``pg_try_advisory_lock``) without that transaction, and PostgreSQL drops it with the
    connection of a process that crashed. On SQLite (one host) the claimant holds an
    exclusive ``flock`` beside the database file for the whole run instead.
    """

    def __init__(self, db: Database, namespace: int) -> None:
        self._db, self._ns = db, namespace
        self._conn: Connection | None = None
        self._fd: int | None = None

    def __enter__(self) -> RowClaims:
        if self._db.is_postgresql:
            self._conn = self._db.engine.connect().execution_options(
                isolation_level="AUTOCOMMIT")
        elif self._db.url.startswith("sqlite:///"):
            import fcntl
            import os

            path = f"{self._db.url[len('sqlite:///'):]}.claims-{self._ns:x}"
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def take(self, row_id: int) -> bool:
        """Claim a row; False if another claimant holds it (skip it)."""
        if self._conn is None:
            return True
        return bool(self._conn.execute(text("SELECT pg_try_advisory_lock(:ns, :id)"),
                                       {"ns": self._ns, "id": row_id}).scalar())

    def release(self, row_id: int) -> None:
        if self._conn is not None:
            self._conn.execute(text("SELECT pg_advisory_unlock(:ns, :id)"),
                               {"ns": self._ns, "id": row_id})

    def __exit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            try:  # the connection goes back to the pool: it must hold no claim there
                self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
            except exc.DBAPIError:
                self._conn.invalidate()  # lost already: so are its locks
            finally:
                self._conn.close()
                self._conn = None
        if self._fd is not None:
            import os

            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


_OPEN: dict[str, Database] = {}


def open_database(url: str, *, migrate: bool = True) -> Database:
    """One ``Database`` per URL per process, upgraded to the newest schema."""
    url = driver_url(url)
    db = _OPEN.get(url)
    if db is None:
        if url.startswith("sqlite:///"):
            Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        db = Database(url)
        if migrate:
            upgrade(db)
        _OPEN[url] = db
    return db


def close_all() -> None:
    for db in _OPEN.values():
        db.dispose()
    _OPEN.clear()
