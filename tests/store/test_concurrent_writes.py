"""Many writers at once on one database: two server replicas, several processes, a restart.

What broke on PostgreSQL before (issue 14): audit appends colliding under READ COMMITTED
(17-19 % of audited requests answered 500), rows made on first use racing into unique
violations, two ``notify run``s sending the same mail, replicas failing to migrate an empty
database together, and a database restart answered with 500s. These tests drive those
paths concurrently and check the outcome: no 5xx, the audit chain intact, each nonce spent
once, each notice sent once, the schema built once, a restart costing coded 503s only.
The ones that need a PostgreSQL server run under ``ESEAL_TEST_DATABASE=postgresql``
(``make test`` runs the suite on both engines); the rest run on both.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pgkit
import pytest
from aiosmtpd.controller import Controller

from eseal.holder.client import EsealClient, ServiceError, sign_challenge
from tests.conftest import free_port, postgresql_only
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world, eseal_cli

HOLDERS = {label: ENTERPRISE_HOLDERS[label] for label in ("a-agent", "a-rep", "b-agent")}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("concurrent"), HOLDERS)


@pytest.fixture(scope="module")
def twin(world: World) -> Any:
    """A second replica: another ``eseal serve`` process on the same home and database."""
    return world.start("twin")


# --- replicas under load -----------------------------------------------------------------------
def _login_pair(world: World, label: str, urls: tuple[str, str],
                address: str) -> list[int | str]:
    """One signed answer sent to both replicas at the same moment: exactly one may win.
    (Each pair from its own address: a replay feeds the address's rate limit.)"""
    from eseal.token.client import UsbKey

    holder = world.holders[label]
    first = world.client(urls[0], address=address)
    with UsbKey.open(holder.label, holder.pin) as key:
        answer = sign_challenge(first.challenge(), key, origin=world.origin)
    clients = [first, world.client(urls[1], address=address)]
    outcomes: list[int | str] = []
    barrier = threading.Barrier(2)

    def send(client: EsealClient) -> None:
        barrier.wait()
        try:
            client.verify(answer)
            client.me()
            client.logout()
            outcomes.append(200)
        except ServiceError as err:
            outcomes.append(err.status if err.status >= 500 or err.status == 0
                            else err.code)

    threads = [threading.Thread(target=send, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for client in clients:
        client.close()
    return outcomes


def test_two_replicas_under_concurrent_logins_and_cli_changes_answer_no_5xx_and_keep_the_chain(
        world: World, twin: Any) -> None:
    urls = (world.server.url, twin.url)
    rounds = 8
    labels = ("a-agent", "a-rep", "officer", "auditor")
    serial = world.holders["b-agent"].serial
    cli_codes: list[int] = []

    def freezer() -> None:  # audited changes from the CLI while the replicas serve logins
        for command in ("freeze", "unfreeze", "freeze", "unfreeze"):
            cli_codes.append(eseal_cli(world, "cert", command, serial).returncode)

    sessions_before = _sessions(world)
    cli = threading.Thread(target=freezer)
    cli.start()
    with ThreadPoolExecutor(max_workers=len(labels)) as pool:
        jobs = [pool.submit(_login_pair, world, label, urls if i % 2 else urls[::-1],
                            f"10.{60 + i}.{n}.1")
                for i in range(rounds) for n, label in enumerate(labels)]
        outcomes = [o for job in jobs for o in job.result()]
    cli.join()
    assert cli_codes == [0, 0, 0, 0]
    tally = Counter(outcomes)
    # every pair: one login, one refusal of the same answer (the nonce was spent)
    assert tally[200] == rounds * len(labels), tally
    assert tally["CHALLENGE_REPLAYED"] == rounds * len(labels), tally
    assert not [o for o in outcomes if isinstance(o, int) and o != 200], tally
    done = eseal_cli(world, "audit", "verify", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["ok"] is True
    # each answer opened one session, on whichever replica won: none opened two
    assert _sessions(world) == sessions_before + rounds * len(labels)


def _sessions(world: World) -> int:
    return int(world.query("SELECT COUNT(*) FROM login_sessions")[0][0])


def test_the_door_refuses_nul_and_numbers_past_32_bit_columns_before_the_database(
        world: World) -> None:
    """PostgreSQL refuses NUL in text and integers past 32 bits where SQLite stores them:
    the door answers 4xx naming the field, on either engine."""
    officer = world.officer()
    for account_id, expected in ((2**31, "VALUE_OUT_OF_RANGE"),
                                 (2**31 - 1, "ACCOUNT_NOT_FOUND")):
        with pytest.raises(ServiceError) as refused:
            officer.request("POST", f"/officer/accounts/{account_id}/unlock")
        assert (refused.value.status < 500, refused.value.code) == (True, expected)
    with pytest.raises(ServiceError) as refused:
        officer.request("POST", "/officer/enterprises", json={
            "uscc": "91350100M000100Y43", "name": "北京\u0000科技", "legal_rep": "张三"})
    assert (refused.value.status, refused.value.code) == (422, "CONTROL_CHARACTER")
    assert refused.value.field == "name"
    answer = httpx.post(f"{world.server.url}/auth/verify", json={
        "nonce": "a\u0000b", "origin": world.origin, "purpose": "login", "issued_at": "x",
        "certificate": "AAAA", "signature": "AAAA"})
    assert answer.status_code == 422 and answer.json()["code"] == "CONTROL_CHARACTER"
    officer.logout()


# --- the outbox ----------------------------------------------------------------------------------
class _SlowSink:
    """An SMTP server that takes a while over each message, so two senders overlap."""

    def __init__(self) -> None:
        self.message_ids: list[str] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(0.02)
        for line in envelope.content.decode("utf-8", "replace").splitlines():
            if line.lower().startswith("message-id:"):
                self.message_ids.append(line.split(":", 1)[1].strip())
        return "250 OK"


def test_two_notify_runs_racing_send_each_notice_once(authority: Any, home: Path) -> None:
    from eseal import clock
    from eseal.auth.accounts import queue_notice

    count = 30
    with authority.db.write() as s:
        for i in range(count):
            queue_notice(s.connection(), recipient=f"staff{i}@example.com",
                         subject=f"notice {i}", body="正文 body", kind="test",
                         dedupe_key=f"race:{i}", now=clock.now())
    sink = _SlowSink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test",
                   ESEAL_SMTP_PORT=str(port))
        runs = [subprocess.Popen([sys.executable, "-m", "eseal", "notify", "run"],
                                 env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [run.communicate(timeout=180) for run in runs]
    finally:
        controller.stop()
    for run, (out, err) in zip(runs, results, strict=True):
        assert run.returncode == 0, out + err
    sent = [set(json.loads(out)["sent"]) for out, _ in results]
    assert not sent[0] & sent[1]
    assert len(sink.message_ids) == count and len(set(sink.message_ids)) == count
    with authority.db.read() as s:
        from sqlalchemy import text

        rows = s.execute(text("SELECT sent, attempts FROM outbox WHERE kind = 'test'")).all()
    assert sorted(map(tuple, rows)) == [(True, 1)] * count


# --- PostgreSQL only ----------------------------------------------------------------------------
_MIGRATE = """
import sys, time
from sqlalchemy import text
start = float(sys.argv[2])
from eseal.store.db import open_database
time.sleep(max(0.0, start - time.time()))  # a start line, so all nine migrate at once
db = open_database(sys.argv[1])
with db.engine.connect() as conn:
    print(conn.execute(text("SELECT version_num FROM alembic_version")).scalar())
"""


@postgresql_only("SQLite has no concurrent schema builders to serialise (one file, one host)")
def test_nine_processes_starting_together_on_an_empty_database_build_the_schema_once() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from eseal.store.db import MIGRATIONS

    server = pgkit.server()
    name = f"empty_{secrets.token_hex(4)}"
    url = server.create_empty(name)
    try:
        start = time.time() + 3.0
        procs = [subprocess.Popen([sys.executable, "-c", _MIGRATE, url, str(start)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(9)]
        outs = [p.communicate(timeout=120) for p in procs]
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        head = ScriptDirectory.from_config(cfg).get_current_head()
        for p, (out, err) in zip(procs, outs, strict=True):
            assert p.returncode == 0, err[-2000:]
            assert out.strip() == head
        from sqlalchemy import create_engine, text

        engine = create_engine(url)
        with engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        engine.dispose()
        assert [v[0] for v in versions] == [head]
    finally:
        server.drop(name)


@postgresql_only("restarts the throwaway PostgreSQL server")
def test_a_database_restart_under_load_costs_only_coded_503s_then_recovers(
        world: World, twin: Any) -> None:
    urls = (world.server.url, twin.url)
    session = world.login("a-agent")
    stop = threading.Event()
    seen: list[tuple[int, str]] = []

    def load(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30,
                          headers={"Authorization": f"Bearer {session.session}",
                                   "X-Forwarded-For": "10.7.7.7"}) as http:
            while not stop.is_set():
                for method, path in (("POST", "/auth/challenge"), ("GET", "/auth/me")):
                    response = http.request(method, path)
                    code = "" if response.status_code < 400 else response.json().get("code", "")
                    seen.append((response.status_code, code))

    threads = [threading.Thread(target=load, args=(url,)) for url in urls * 2]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)  # load running before the restart
        pgkit.server().restart(down_seconds=1.0)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # recovered: a run of successes after it
            mark = len(seen)
            time.sleep(0.5)
            if seen[mark:] and all(status == 200 for status, _ in seen[mark:]):
                break
    finally:
        stop.set()
        for t in threads:
            t.join()
    statuses = Counter(seen)
    assert all(status in (200, 503) for status, _ in seen), statuses
    assert all(code == "DATABASE_UNAVAILABLE" for status, code in seen if status == 503)
    assert statuses[(503, "DATABASE_UNAVAILABLE")] > 0, statuses  # the restart was felt
    tail = seen[-20:]
    assert tail and all(status == 200 for status, _ in tail), statuses
    assert session.me()["name"] == world.holders["a-agent"].name
    session.logout()


def test_the_cli_on_an_unreachable_database_prints_one_coded_line(authority: Any,
                                                                   home: Path) -> None:
    env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test",
               ESEAL_DATABASE_URL=f"postgresql://eseal@/eseal?host={home / 'no-server'}")
    done = subprocess.run([sys.executable, "-m", "eseal", "cert", "list"], env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stderr.startswith("error DATABASE_UNAVAILABLE:") and "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1
