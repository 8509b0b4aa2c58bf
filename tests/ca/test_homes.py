"""Homes that share a CA: ``init`` records where the CA lives, ``init --join`` makes a replica
home of an existing CA, and both refuse cleanly (a code, no traceback, nothing left behind).

Two homes on one SQLite file stand in for replicas on one PostgreSQL database; the token is
shared through one SoftHSM configuration here (tests/token/test_token_remote.py serves it over
``p11-kit server`` instead).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from eseal.ca.authority import Authority
from eseal.ca.home import init_home, join_home
from eseal.errors import EsealError
from eseal.ra.enterprises import register_enterprise
from eseal.settings import load_settings
from eseal.store import close_all
from eseal.store.models import AuditEvent, CaKey
from eseal.token import TokenSession, list_keys
from eseal.token.softhsm import write_conf
from tests.conftest import USCC_A, make_csr, sqlite_only

#: why some tests here run on SQLite only
SHARED_FILE = ("the homes here share one SQLite file by URL (the PostgreSQL shape is make "
               "cluster / deploy.load)")

ACTOR = "officer:test"


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture
def first(home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A CA created in ``home`` on a database outside it; the URL given only at init."""
    url = _url(tmp_path / "shared" / "ca.db")
    settings = load_settings(home, database_url=url)
    init_home(settings)
    with Authority.open(settings) as auth:
        register_enterprise(auth, uscc=USCC_A, name="测试企业有限公司", legal_rep="张三",
                            actor=ACTOR)
    return url


def _eseal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("ESEAL_")}
    full.pop("SOFTHSM2_CONF", None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "eseal", *args], env=full, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL, timeout=120)


@sqlite_only(SHARED_FILE)
def test_init_records_the_database_url_in_a_secret_file_and_not_in_the_toml(
        home: Path, first: str) -> None:
    toml = (home / "eseal.toml").read_text()
    assert 'database_url_file = "secrets/database.url"' in toml
    assert "sqlite:" not in toml
    secret = home / "secrets" / "database.url"
    assert secret.read_text().strip() == first
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    # a later command with no variable finds the same CA, not an empty SQLite file
    settings = load_settings(home)
    assert settings.database == first
    with Authority.open(settings) as auth:
        assert [e.uscc for e in auth.enterprises()] == [USCC_A]
    assert not (home / "eseal.db").exists()


def test_a_later_cli_command_without_the_variable_uses_the_recorded_database(
        home: Path, first: str) -> None:
    done = _eseal("cert", "list", "--json", "--home", str(home),
                  env={"SOFTHSM2_CONF": str(home / "softhsm2.conf")})
    assert done.returncode == 0, done.stderr
    assert '"profile": "issuing"' in done.stdout or "issuing" in done.stdout
    assert not (home / "eseal.db").exists()


def test_init_refuses_a_database_that_already_holds_a_ca_and_leaves_no_home(
        home: Path, first: str, tmp_path: Path) -> None:
    second = tmp_path / "second"
    with pytest.raises(EsealError) as caught:
        init_home(load_settings(second, database_url=first))
    assert caught.value.code == "DATABASE_HAS_CA"
    assert caught.value.status == 409
    assert not second.exists()
    # from the command line: one coded line, no traceback, no half-made home
    done = _eseal("init", "--home", str(second), env={"ESEAL_DATABASE_URL": first})
    assert done.returncode == 1
    assert done.stderr.startswith("error DATABASE_HAS_CA [database_url]:"), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not second.exists()


def test_init_into_an_existing_directory_removes_only_what_it_made(
        home: Path, first: str, tmp_path: Path) -> None:
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "eseal.toml").write_text("checkpoint_every = 50\n")
    (existing / "notes.txt").write_text("mine")
    with pytest.raises(EsealError):
        init_home(load_settings(existing, database_url=first))
    assert sorted(p.name for p in existing.iterdir()) == ["eseal.toml", "notes.txt"]
    assert (existing / "eseal.toml").read_text() == "checkpoint_every = 50\n"


def _join(replica: Path, url: str, conf: Path, pin: str, **extra: str):  # type: ignore[no-untyped-def]
    return join_home(load_settings(replica, database_url=url, softhsm_conf=str(conf), **extra),
                     ca_pin=pin)


@sqlite_only(SHARED_FILE)
def test_join_makes_a_replica_home_that_serves_the_same_ca_without_new_keys(
        home: Path, first: str, tmp_path: Path) -> None:
    journal = tmp_path / "shared" / "checkpoints.jsonl"
    conf = home / "softhsm2.conf"
    pin = (home / "secrets" / "ca.pin").read_text().strip()
    keys_before = _key_count(load_settings(home), pin)
    replica = tmp_path / "replica"
    result = _join(replica, first, conf, pin, audit_journal=str(journal))
    assert result.base_url == load_settings(home).base_url  # the CA's own, not a default
    toml = (replica / "eseal.toml").read_text()
    assert "sqlite:" not in toml and f'softhsm_conf = "{conf}"' in toml
    assert stat.S_IMODE((replica / "secrets" / "ca.pin").stat().st_mode) == 0o600
    close_all()
    recorded = load_settings(replica)  # no overrides: everything from the home itself
    assert recorded.database == first
    with Authority.open(recorded) as auth:
        issued = auth.issue(make_csr(common_name="张三"), uscc=USCC_A, profile="login",
                            holder="张三", actor=ACTOR)
        with auth.db.read() as s:
            assert s.scalar(select(func.count()).select_from(CaKey)) == 5
            joins = s.scalars(select(AuditEvent).where(AuditEvent.action == "ca.join")).all()
        assert [e.target for e in joins] == [str(replica.resolve())]
    assert _key_count(load_settings(home), pin) == keys_before
    with Authority.open(load_settings(home)) as auth:  # the first home sees the issuance
        assert auth.certificate_row(issued.serial).holder == "张三"


def _key_count(settings, pin: str) -> int:  # type: ignore[no-untyped-def]
    from eseal.ca.authority import configure_tokens

    configure_tokens(settings)
    with TokenSession(settings.ca_token_label, pin) as ts:
        return len(list_keys(ts))


def test_join_refuses_a_token_that_is_not_the_databases_ca(
        home: Path, first: str, tmp_path: Path) -> None:
    other_home = tmp_path / "other"
    other_conf = write_conf(other_home / "softhsm2.conf", other_home / "tokens")
    other = load_settings(other_home, softhsm_conf=str(other_conf))
    init_home(other)
    other_pin = other.ca_pin_file.read_text().strip()
    replica = tmp_path / "replica"
    with pytest.raises(EsealError) as caught:
        _join(replica, first, other_conf, other_pin)
    assert caught.value.code == "CA_TOKEN_MISMATCH"
    assert not replica.exists()


def test_join_refuses_a_database_without_a_ca_and_a_wrong_pin(
        home: Path, first: str, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    with pytest.raises(EsealError) as caught:
        _join(replica, _url(tmp_path / "empty.db"), home / "softhsm2.conf", "whatever1")
    assert caught.value.code == "DATABASE_HAS_NO_CA"
    assert not replica.exists()
    with pytest.raises(EsealError) as caught:
        _join(replica, first, home / "softhsm2.conf", "not-the-pin-1")
    assert caught.value.code == "PIN_INCORRECT"
    assert not replica.exists()


def test_join_from_the_command_line_reads_the_pin_from_a_file(
        home: Path, first: str, tmp_path: Path) -> None:
    replica = tmp_path / "replica"
    done = _eseal("init", "--join", "--home", str(replica),
                  "--ca-pin-file", str(home / "secrets" / "ca.pin"),
                  env={"ESEAL_DATABASE_URL": first,
                       "ESEAL_SOFTHSM_CONF": str(home / "softhsm2.conf")})
    assert done.returncode == 0, done.stderr
    assert "replica home created" in done.stdout
    again = _eseal("init", "--join", "--home", str(replica),
                   "--ca-pin-file", str(home / "secrets" / "ca.pin"))
    assert again.returncode == 1 and again.stderr.startswith("error HOME_ALREADY_INITIALISED")


@sqlite_only(SHARED_FILE)
def test_a_missing_or_empty_database_url_file_is_a_coded_configuration_error(
        tmp_path: Path) -> None:
    home = tmp_path / "h"
    home.mkdir()
    (home / "eseal.toml").write_text('database_url_file = "secrets/database.url"\n')
    with pytest.raises(EsealError) as caught:
        _ = load_settings(home).database
    assert (caught.value.code, caught.value.field) == ("DATABASE_URL_FILE_UNREADABLE",
                                                        "database_url_file")
    (home / "secrets").mkdir()
    (home / "secrets" / "database.url").write_text("\n  \n")
    with pytest.raises(EsealError) as caught:
        _ = load_settings(home).database
    assert caught.value.code == "DATABASE_URL_FILE_EMPTY"
