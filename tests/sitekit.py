"""End-to-end test kit: a CA home with enrolled USB-Keys, the ``eseal`` CLI as its own process,
sealing through a USB-Key, and counting what the token signs.

Why a kit: the filing, ``eseal sign`` and ``eseal verify`` tests each need the same site — an
initialised home bound to a free loopback port, enterprises registered, holders' SoftHSM
USB-Keys provisioned and enrolled, the process environment pointed at that home — and they
run ``eseal`` the way a user does, in a separate process with nothing of the test's own
environment leaking in. Module-scoped fixtures build it once per file::

    with ca_home(tmp / "home", enterprises=[(USCC_A, NAME_A, "张三")],
                 holders=[Holder("zhang", PIN, USCC_A, "legal_rep", "张三")]) as ca:
        server = LiveServer(ca.home, ca.port)          # tests.conftest
        sealed = seal_with_token(pdf, "zhang", PIN, server=server.url)
        done = eseal_cli("verify", "sealed.pdf", home=ca.home)
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pgkit
import pytest
from cryptography import x509

from eseal.ca.authority import Authority, init_home
from eseal.cli.cmd_sign import build_options
from eseal.holder.sealing import seal_with_usbkey
from eseal.ra.enrollment import enroll_on_token
from eseal.ra.enterprises import register_enterprise
from eseal.settings import Settings, load_settings
from eseal.token import configure
from eseal.token import signer as token_signer
from eseal.token.client import UsbKey
from eseal.token.softhsm import write_conf
from eseal.token.usbkey import provision
from tests.conftest import free_port

ACTOR = "officer:test"


@dataclass(frozen=True)
class Holder:
    """A USB-Key to provision and enrol: token label and PIN, enterprise, role, holder."""

    label: str
    pin: str
    uscc: str
    role: str  # "legal_rep" or "agent"
    name: str


@dataclass(frozen=True)
class CaHome:
    home: Path
    settings: Settings  # as the home's files now say (base URL, eseal.toml additions)
    port: int  # the free loopback port the base URL names; nothing listens yet
    root: x509.Certificate


@contextmanager
def ca_home(home: Path, *, enterprises: Iterable[tuple[str, str, str]],
            holders: Iterable[Holder], toml: str = "") -> Iterator[CaHome]:
    """Initialise ``home`` for ``http://127.0.0.1:<free port>``, append ``toml`` to its
    eseal.toml, register ``enterprises`` (credit code, name, legal representative) and enrol
    each holder's new USB-Key. While the block runs the environment points at the home
    (ESEAL_ENV=test, ESEAL_HOME, its SOFTHSM2_CONF, no ESEAL_NOW); it is restored after."""
    home.mkdir()
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("ESEAL_ENV", "test")
        mp.setenv("ESEAL_HOME", str(home))
        mp.delenv("ESEAL_NOW", raising=False)
        mp.setenv("SOFTHSM2_CONF", str(write_conf(home / "softhsm2.conf", home / "tokens")))
        port = free_port()
        settings = load_settings(home, base_url=f"http://127.0.0.1:{port}")
        configure(settings.pkcs11_module, settings.softhsm_conf_path)
        init_home(settings)
        if toml:
            with (home / "eseal.toml").open("a", encoding="utf-8") as f:
                f.write(toml)
        with Authority.open(settings) as auth:
            for uscc, name, rep in enterprises:
                register_enterprise(auth, uscc=uscc, name=name, legal_rep=rep, actor=ACTOR)
            for h in holders:
                provision(settings.softhsm_conf_path, h.label, h.pin, f"so-{h.pin}-x")
                enroll_on_token(auth, label=h.label, pin=h.pin, uscc=h.uscc, role=h.role,
                                holder=h.name, actor=ACTOR)
            root = auth.certificate("root")
        yield CaHome(home, load_settings(home), port, root)
    finally:
        mp.undo()


def eseal_cli(*args: str, home: Path, stdin: str | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m eseal ARGS`` as a user runs it: ESEAL_HOME=home, ESEAL_ENV=test and none of
    this process's other ESEAL_* or SOFTHSM2_CONF (the home's own softhsm2.conf, if any, is
    the one in force)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESEAL_")
           and k != "SOFTHSM2_CONF"}
    env.update(ESEAL_ENV="test", ESEAL_HOME=str(home))
    pgkit.prepare_home(home, args)
    return subprocess.run([sys.executable, "-m", "eseal", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=cwd)


def seal_with_token(pdf: bytes, label: str, pin: str, *, server: str, level: str = "B-LT",
                    reason: str | None = None, at: str | None = None,
                    field_name: str | None = None, size_pt: float = 120) -> bytes:
    """``pdf`` sealed on page 1 by the USB-Key ``label`` through eseal's own sealing client
    (what ``eseal sign`` does), services reached at ``server``."""
    options = build_options(page=1, at=at, field_name=field_name, reason=reason,
                            location=None, level=level, certify=False, size_pt=size_pt)
    with UsbKey.open(label, pin) as usbkey:
        return seal_with_usbkey(pdf, usbkey=usbkey, options=options, server=server).sealed


def count_token_signatures(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """A list that receives every raw signature input a token key is asked to sign (the
    lowest level, below sign/sign_digest), until ``monkeypatch`` is undone."""
    calls: list[bytes] = []
    original = token_signer._TokenKeyMixin._sign_raw

    def counting(self: Any, data: bytes, mechanism: Any, param: Any = None) -> bytes:
        calls.append(data)
        return original(self, data, mechanism, param)

    monkeypatch.setattr(token_signer._TokenKeyMixin, "_sign_raw", counting)
    return calls


def query_home(home: Path, sql: str, **params: Any) -> list[Any]:
    """Read a home's database directly (SQLite file or PostgreSQL, as the home's settings
    say), as an auditor with shell access would."""
    from sqlalchemy import create_engine, text

    from eseal.settings import load_settings
    from eseal.store.db import driver_url

    engine = create_engine(driver_url(load_settings(home).database))
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(sql), params).all())
    finally:
        engine.dispose()
