"""A throwaway PostgreSQL server for the test run, and one database per eseal home.

``ESEAL_TEST_DATABASE=postgresql`` runs the suite on PostgreSQL: each pytest process (each
xdist worker) starts its own server — ``initdb --no-sync -A trust`` and ``pg_ctl start -w``
as the unprivileged ``postgres`` user when we run as root, listening only on a unix socket
in a private directory — migrates one template database, and gives every home a database
of its own copied from that template (``CREATE DATABASE … TEMPLATE``: a file copy, far
cheaper than running the migrations again). A home learns its database through
``database_url`` in its ``eseal.toml``, so the ``eseal`` processes a test starts (``eseal
serve``, the CLI) open the same database as the test itself. The server and its data
directory are removed when the process ends.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

TEMPLATE = "eseal_template"
_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)


def wanted() -> bool:
    """Whether this test run asked for PostgreSQL."""
    return os.environ.get("ESEAL_TEST_DATABASE", "sqlite").strip().lower() in {
        "postgresql", "postgres", "pg"}


def _bin(name: str) -> str:
    for folder in _BIN_CANDIDATES:
        if (folder / name).exists():
            return str(folder / name)
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: apt-get install postgresql (make setup does)")
    return found


class PgServer:
    """One PostgreSQL server on a unix socket, owned by an unprivileged user."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="eseal-pg-"))
        self.data = self.root / "data"
        self.socket_dir = self.root / "sock"
        self.socket_dir.mkdir()
        self._user: str | None = None
        if os.geteuid() == 0:  # initdb refuses root: run the server as 'postgres'
            entry = pwd.getpwnam("postgres")
            self._user = "postgres"
            for path in (self.root, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            os.chmod(self.root, 0o755)
        self._lock = threading.Lock()
        self._made: set[str] = set()
        self.started = False

    def _run(self, *argv: str) -> None:
        cmd = list(argv)
        if self._user is not None:
            cmd = ["runuser", "-u", self._user, "--", *cmd]
        out = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             check=False)
        if out.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{out.stdout}\n{out.stderr}")

    def start(self) -> None:
        self._run(_bin("initdb"), "--no-sync", "-A", "trust", "-U", "postgres", "-E", "UTF8",
                  "--locale=C", "-D", str(self.data))
        options = (f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                   "-c shared_buffers=32MB")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-o", options, "-w", "-t", "60", "start")
        self.started = True
        self._make_template()

    def stop(self) -> None:
        if self.started:
            try:
                self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
            self.started = False
        shutil.rmtree(self.root, ignore_errors=True)

    def restart(self, *, down_seconds: float = 0.0) -> None:
        """Stop the server (fast: connections are cut) and start it again."""
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        time.sleep(down_seconds)
        options = (f"-k {self.socket_dir} -c listen_addresses='' -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300 "
                   "-c shared_buffers=32MB")
        self._run(_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
                  "-o", options, "-w", "-t", "60", "start")

    def url(self, database: str) -> str:
        return f"postgresql+psycopg://postgres@/{database}?host={self.socket_dir}"

    def admin(self, sql: str) -> None:
        """Run one statement on the maintenance database, outside a transaction."""
        import psycopg

        with psycopg.connect(dbname="postgres", user="postgres", host=str(self.socket_dir),
                             autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def run_in(self, database: str, sql: str) -> None:
        """Run statements in one database, committed."""
        import psycopg

        with psycopg.connect(dbname=database, user="postgres", host=str(self.socket_dir),
                             autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def _make_template(self) -> None:
        from eseal.store import db as store_db

        self.admin(f"CREATE DATABASE {TEMPLATE}")
        database = store_db.Database(self.url(TEMPLATE))
        try:
            store_db.upgrade(database)
        finally:
            database.dispose()

    def create(self, name: str, *, template: str = TEMPLATE) -> str:
        """A new database copied from ``template`` (the migrated schema); returns its URL."""
        with self._lock:
            if name not in self._made:
                # FILE_COPY: ~65 ms here, against ~170 ms for PostgreSQL 15's default
                # WAL_LOG copy and ~160 ms to create an empty one and migrate it
                self.admin(f"CREATE DATABASE {name} TEMPLATE {template} STRATEGY FILE_COPY")
                self._made.add(name)
        return self.url(name)

    def create_empty(self, name: str) -> str:
        """A new database with no schema at all (template0)."""
        return self.create(name, template="template0")

    def drop(self, name: str) -> None:
        with self._lock:
            if name in self._made:
                self._made.discard(name)
                self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def database_name(home: Path) -> str:
    """The database of a home: named after its absolute path, so it is stable."""
    digest = hashlib.sha256(str(home.resolve()).encode()).hexdigest()[:24]
    return f"home_{digest}"


_SERVER: PgServer | None = None


def server() -> PgServer:
    """This process's server, started on first use."""
    global _SERVER
    if _SERVER is None:
        _SERVER = PgServer()
        _SERVER.start()
    return _SERVER


def shutdown() -> None:
    global _SERVER
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


def database_for(home: Path, base_url: str) -> str:
    """The URL of ``home``'s own database, created from the template and written into the
    home's ``eseal.toml`` (so every eseal process started on the home finds it). A new
    ``eseal.toml`` also gets the base URL, which ``eseal init`` writes only into a home that
    has none."""
    url = server().create(database_name(home))
    home.mkdir(parents=True, exist_ok=True)
    toml = home / "eseal.toml"
    text = toml.read_text(encoding="utf-8") if toml.exists() else ""
    if "database_url" not in text:
        with toml.open("a", encoding="utf-8") as fh:
            if not text:
                fh.write(f'base_url = "{base_url}"\n')
            fh.write(f'database_url = "{url}"\n')
    return url


def drop_for(home: Path) -> None:
    if _SERVER is not None:
        _SERVER.drop(database_name(home))


def prepare_home(home: Path, args: tuple[str, ...] = ("init",)) -> None:
    """Before ``eseal ARGS`` runs on ``home``: if it is ``eseal init``, give the home its
    database first (with the ``--base-url`` it names, which ``init`` writes only into a home
    without an ``eseal.toml``). A no-op on SQLite runs and for other commands."""
    if not wanted() or args[:1] != ("init",):
        return
    from eseal.settings import load_settings

    base_url = None
    if "--base-url" in args[:-1]:
        base_url = args[args.index("--base-url") + 1]
    load_settings(home, base_url=base_url).database  # noqa: B018 - the property makes it
