"""Opening the database: SQLite in the home by default, any SQLAlchemy URL by setting.

SQLite runs in WAL mode with a busy timeout, and every write transaction starts with
``BEGIN IMMEDIATE`` so two processes appending to the hash-chained audit log serialise at
BEGIN instead of failing at COMMIT. The schema is owned by Alembic; ``open_database``
upgrades it to head (a no-op, and cheap, when it is already there).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).with_name("migrations")


class Database:
    """An engine plus the two kinds of transaction eseal uses."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, object] = {}
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            _sqlite_pragmas(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that holds the write lock from its first statement (SQLite)."""
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
    with db.engine.connect() as conn:
        try:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except Exception:
            current = None
        conn.rollback()
    if current == head:
        return
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


_OPEN: dict[str, Database] = {}


def open_database(url: str, *, migrate: bool = True) -> Database:
    """One ``Database`` per URL per process, upgraded to the newest schema."""
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
