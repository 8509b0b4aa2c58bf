"""Test kit: a shared login world — a CA home, enterprises A and B, enrolled USB-Keys for
their holders, an officer and an auditor, a live ``eseal serve`` — and the helpers that
log in against it. The login, lockout, roles and API-contract tests all stand in it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from eseal.holder.client import EsealClient, sign_challenge
from eseal.ra.enterprises import register_enterprise
from eseal.settings import Settings, load_settings
from eseal.token.client import UsbKey
from tests.conftest import NAME_A, NAME_B, USCC_A, USCC_B, LiveServer, free_port
from tests.sitekit import query_home

PIN = "4913-7720"
SO_PIN = "so-8812-4401"
MAIL_A = "ops@a.example"
MAIL_B = "ops@b.example"
#: routes that end the caller's own session by design (logout; 挂失 freezes the caller's own
#: key): a walk or a fuzzer holding one session skips them, their own tests cover them
SESSION_ENDING: frozenset[tuple[str, str]] = frozenset({
    ("POST", "/auth/logout"), ("POST", "/web/logout"), ("POST", "/me/report-lost")})


# --- a shared world: CA home, enterprises, tokens, servers (module scope) -------------------------
@dataclass(frozen=True)
class Holder:
    label: str
    name: str
    role: str
    uscc: str | None
    pin: str
    serial: str  # the login certificate


@dataclass
class World:
    home: Path
    settings: Settings
    server: LiveServer
    holders: dict[str, Holder]
    extra: dict[str, LiveServer] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return self.settings.base_url

    def client(self, url: str | None = None, *, address: str = "10.1.1.1",
               origin: str | None = None) -> EsealClient:
        return EsealClient(url or self.server.url, origin=origin or self.origin,
                           headers={"X-Forwarded-For": address, "User-Agent": "eseal-tests"})

    def login(self, label: str, *, url: str | None = None,
              address: str = "10.1.1.1") -> EsealClient:
        client = self.client(url, address=address)
        holder = self.holders[label]
        client.login_with_token(holder.label, holder.pin)
        return client

    def officer(self) -> EsealClient:
        return self.login("officer", address="10.250.0.1")

    def query(self, sql: str, **params: Any) -> list[Any]:
        return query_home(self.home, sql, **params)

    def has_table(self, name: str) -> bool:
        from sqlalchemy import create_engine, inspect

        from eseal.store.db import driver_url

        engine = create_engine(driver_url(self.settings.database))
        try:
            return inspect(engine).has_table(name)
        finally:
            engine.dispose()

    def last_attempt(self, serial: str) -> Any:
        rows = self.query("SELECT code, result, possession, account_id, new_network "
                          "FROM login_attempts WHERE certificate_serial = :s "
                          "ORDER BY id DESC LIMIT 1", s=serial)
        return rows[0]

    def start(self, name: str, *, now: datetime | None = None) -> LiveServer:
        """Another server process on the same home (same database, same base URL), with its
        clock set by ESEAL_NOW (honoured because ESEAL_ENV=test)."""
        with pytest.MonkeyPatch.context() as mp:
            if now is not None:
                mp.setenv("ESEAL_NOW", now.isoformat())
            else:
                mp.delenv("ESEAL_NOW", raising=False)
            server = LiveServer(self.home, free_port())
        self.extra[name] = server
        return server


#: label -> (holder name, role, enterprise)
ENTERPRISE_HOLDERS: dict[str, tuple[str, str, str]] = {
    "a-agent": ("王五", "agent", USCC_A),
    "a-rep": ("张三", "legal_rep", USCC_A),
    "b-agent": ("赵六", "agent", USCC_B),
    "b-rep": ("李四", "legal_rep", USCC_B),
}


def build_world(base: Path, holders: dict[str, tuple[str, str, str]]) -> Iterator[World]:
    """Initialise a CA home, register A and B (with contact addresses), provision and enroll
    the holders' tokens (SO PINs kept by the CA), provision an officer and an auditor token,
    and serve it. Yields the world; stops every server afterwards."""
    from eseal.ca.authority import Authority, init_home
    from eseal.ra.enrollment import enroll_on_token
    from eseal.ra.so_pins import keep_so_pin
    from eseal.ra.staff import provision_staff_token
    from eseal.store import close_all
    from eseal.token import configure
    from eseal.token.softhsm import write_conf
    from eseal.token.usbkey import provision

    home = base / "home"
    home.mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESEAL_HOME", str(home))
        mp.setenv("ESEAL_ENV", "test")
        mp.delenv("ESEAL_NOW", raising=False)
        conf = write_conf(home / "softhsm2.conf", home / "tokens")
        mp.setenv("SOFTHSM2_CONF", str(conf))
        port = free_port()
        settings = load_settings(home, base_url=f"http://127.0.0.1:{port}")
        configure(settings.pkcs11_module, settings.softhsm_conf_path)
        init_home(settings)
        made: dict[str, Holder] = {}
        with Authority.open(settings) as auth:
            register_enterprise(auth, uscc=USCC_A, name=NAME_A, legal_rep="张三",
                                     contact_email=MAIL_A, actor="officer:test")
            register_enterprise(auth, uscc=USCC_B, name=NAME_B, legal_rep="李四",
                                     contact_email=MAIL_B, actor="officer:test")
            for label, (name, role, uscc) in holders.items():
                provision(conf, label, PIN, SO_PIN)
                keep_so_pin(auth, label, SO_PIN, actor="officer:test", generated=False)
                done = enroll_on_token(auth, label=label, pin=PIN, uscc=uscc, role=role,
                                       holder=name, actor="officer:test")
                made[label] = Holder(label, name, role, uscc, PIN, done.issued["login"].serial)
            for label, name, role in (("officer", "周主任", "officer"),
                                      ("auditor", "审计员赵", "auditor")):
                staff = provision_staff_token(auth, label=label, name=name, role=role,
                                              actor="officer:test")
                made[label] = Holder(label, name, role, None, staff.pin, staff.serial)
        server = LiveServer(home, port)
        world = World(home=home, settings=load_settings(home), server=server, holders=made)
        try:
            yield world
        finally:
            server.stop()
            for extra in world.extra.values():
                extra.stop()
            close_all()


# --- helpers ---------------------------------------------------------------------------------
def signed_answer(world: World, label: str, challenge: dict[str, Any], *,
                  origin: str | None = None) -> dict[str, str]:
    holder = world.holders[label]
    with UsbKey.open(holder.label, holder.pin) as key:
        return sign_challenge(challenge, key, origin=origin or world.origin)


def post_verify(url: str, answer: dict[str, Any], *, address: str = "10.1.1.1",
                ) -> httpx.Response:
    return httpx.post(f"{url}/auth/verify", json=answer,
                      headers={"X-Forwarded-For": address}, timeout=30)


def challenge_at(url: str, *, address: str = "10.1.1.1") -> dict[str, Any]:
    r = httpx.post(f"{url}/auth/challenge", headers={"X-Forwarded-For": address}, timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


def refusal(response: httpx.Response, status: int = 401) -> str:
    assert response.status_code == status, response.text
    return str(response.json()["code"])


def eseal_cli(world: World, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ESEAL_HOME=str(world.home), ESEAL_ENV="test",
               SOFTHSM2_CONF=str(world.home / "softhsm2.conf"))
    env.pop("ESEAL_NOW", None)
    return subprocess.run([sys.executable, "-m", "eseal", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)
