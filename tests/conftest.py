"""Shared fixtures: every test gets its own eseal home with its own SoftHSM token directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pgkit
import pytest

from eseal.ra.enterprises import register_enterprise
from eseal.settings import Settings, load_settings
from eseal.store import close_all
from eseal.token import configure
from eseal.token.softhsm import write_conf

os.environ.setdefault("ESEAL_ENV", "test")

if pgkit.wanted():
    # ESEAL_TEST_DATABASE=postgresql: a home without a database URL of its own gets a
    # PostgreSQL database instead of the SQLite file (tests/pgkit.py)
    def _test_database(self: Settings) -> str:
        if self.database_url:
            return self.database_url
        if (self.home / "eseal.db").exists():  # made on SQLite already: never split a home
            return f"sqlite:///{(self.home / 'eseal.db').resolve()}"
        return pgkit.database_for(self.home, self.base_url)

    Settings.database = property(_test_database)  # type: ignore[assignment,method-assign]


def pytest_sessionfinish(session: pytest.Session) -> None:
    close_all()
    pgkit.shutdown()


def pytest_report_header(config: pytest.Config) -> str:
    return f"eseal test database: {'postgresql' if pgkit.wanted() else 'sqlite'}"


def sqlite_only(reason: str) -> pytest.MarkDecorator:
    """Mark a test that is about the SQLite file itself (skipped, with ``reason``, on
    PostgreSQL runs)."""
    return pytest.mark.skipif(pgkit.wanted(), reason=f"SQLite only: {reason}")


def postgresql_only(reason: str) -> pytest.MarkDecorator:
    """Mark a test that needs PostgreSQL (skipped, with ``reason``, on SQLite runs)."""
    return pytest.mark.skipif(not pgkit.wanted(),
                              reason=f"PostgreSQL only (ESEAL_TEST_DATABASE=postgresql): "
                                     f"{reason}")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ESEAL_HOME whose softhsm2.conf points at an empty token directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ESEAL_HOME", str(home))
    monkeypatch.setenv("ESEAL_ENV", "test")
    monkeypatch.delenv("ESEAL_NOW", raising=False)
    conf = write_conf(home / "softhsm2.conf", home / "tokens")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    yield home
    close_all()
    pgkit.drop_for(home)


@pytest.fixture
def settings(home: Path) -> Settings:
    s = load_settings(home)
    configure(s.pkcs11_module, s.softhsm_conf_path)
    return s


# --- the authority --------------------------------------------------------------------------
USCC_A = "91350100M000100Y43"
USCC_B = "91110000802100433B"
NAME_A = "𠮷野家（福建）餐饮管理有限公司"
NAME_B = "北京测试科技有限公司"


@pytest.fixture
def authority(settings: Settings):  # type: ignore[no-untyped-def]
    """A freshly initialised home, opened; two enterprises registered."""
    from eseal.ca.authority import Authority, init_home

    init_home(settings)
    auth = Authority.open(settings)
    register_enterprise(auth, uscc=USCC_A, name=NAME_A, legal_rep="张三", actor="officer:test")
    register_enterprise(auth, uscc=USCC_B, name=NAME_B, legal_rep="李四", actor="officer:test")
    yield auth
    auth.close(checkpoint=False)


def make_csr(key=None, *, common_name: str = "holder", organization: str | None = None,  # type: ignore[no-untyped-def]
             org_id: str | None = None) -> bytes:
    """A PEM CSR signed by ``key`` (a fresh software P-256 key by default)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = key or ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if org_id is not None:
        attrs.append(x509.NameAttribute(x509.ObjectIdentifier("2.5.4.97"), org_id))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(
        key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


# --- a real service on loopback ----------------------------------------------------------------
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``eseal serve`` in its own process on 127.0.0.1, for tests where HTTP behaviour matters."""

    def __init__(self, home: Path, port: int, *, env: dict[str, str] | None = None) -> None:
        import subprocess
        import sys

        self.home, self.port = home, port
        self.url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, ESEAL_HOME=str(home), **(env or {}))
        env.pop("SOFTHSM2_CONF", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eseal", "serve", "--home", str(home), "--port", str(port)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait()

    def _wait(self) -> None:
        import time

        import httpx

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                out = self.process.stdout.read().decode() if self.process.stdout else ""
                raise RuntimeError(f"eseal serve exited early:\n{out}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("eseal serve did not come up")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except Exception:
            self.process.kill()


@pytest.fixture
def served_home(home: Path) -> Iterator[tuple[Settings, LiveServer]]:
    """An initialised home whose base URL is a live ``eseal serve`` on a free loopback port."""
    from eseal.ca.authority import Authority, init_home

    port = free_port()
    settings = load_settings(home, base_url=f"http://127.0.0.1:{port}")
    configure(settings.pkcs11_module, settings.softhsm_conf_path)
    init_home(settings)
    with Authority.open(settings) as auth:
        register_enterprise(auth, uscc=USCC_A, name=NAME_A, legal_rep="张三", actor="officer:test")
        register_enterprise(auth, uscc=USCC_B, name=NAME_B, legal_rep="李四", actor="officer:test")
    server = LiveServer(home, port)
    yield load_settings(home), server
    server.stop()
