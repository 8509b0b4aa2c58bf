"""Expiry notices at 90/30/7 days reach a real SMTP server (aiosmtpd on loopback) through
the outbox: never twice queued, resent with the same Message-ID after a crash between
sending and marking, kept when the server is down, bilingual, and only for certificates
that still need one."""

from __future__ import annotations

import email
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from eseal.ca.authority import Authority
from eseal.ca.issuance import IssuanceRequest
from eseal.errors import EsealError
from eseal.ra import notices, renewal, revocation
from eseal.ra.enterprises import register_enterprise
from eseal.store.models import Outbox
from tests.conftest import USCC_A, make_csr

ACTOR = "officer:test"
EPOCH = "2030-01-01T00:00:00+00:00"
USCC_C = "91350200MA2XY0123A"
NAME_C = "厦门𠮷祥测试有限公司"
CONTACTS = "finance@example.com; legal@example.com"


class Sink:
    """An aiosmtpd handler keeping what it was given."""

    def __init__(self) -> None:
        self.received: list[tuple[list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=default_policy)
        self.received.append((list(envelope.rcpt_tos), msg))  # type: ignore[arg-type]
        return "250 OK"

    def ids(self) -> list[str]:
        return [str(m["Message-ID"]) for _, m in self.received]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp() -> Iterator[tuple[int, Sink]]:
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, sink
    finally:
        controller.stop()


@pytest.fixture
def auth(home: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest,
         smtp: tuple[int, Sink]) -> Authority:
    monkeypatch.setenv("ESEAL_NOW", EPOCH)
    a: Authority = request.getfixturevalue("authority")
    a.settings = a.settings.replace(smtp_port=smtp[0])
    register_enterprise(a, uscc=USCC_C, name=NAME_C, legal_rep="王五", actor=ACTOR,
                          contact_email=CONTACTS)
    return a


def at(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    monkeypatch.setenv("ESEAL_NOW", when)


def issue(auth: Authority, uscc: str = USCC_C) -> str:
    return auth.issue(make_csr(), uscc=uscc, profile="login", holder="王五",
                      actor=ACTOR).serial


def expiring_at(auth: Authority, not_after: str) -> str:
    """A certificate with a chosen notAfter, made through the one issuance path (certify)."""
    with auth.db.read() as s:
        ent = auth.enterprise_row(s, USCC_C)
    end = datetime.fromisoformat(not_after)
    return auth.certify(IssuanceRequest(
        profile="seal", public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        holder="王五", actor=ACTOR, target=USCC_C, enterprise=ent, not_after=end,
        key_certified_at=end - timedelta(days=365))).serial


def outbox(auth: Authority) -> list[Outbox]:
    with auth.db.read() as s:
        return list(s.execute(select(Outbox).order_by(Outbox.id)).scalars())


def test_notices_at_90_30_and_7_days_reach_the_contacts_once_each(
        auth: Authority, smtp: tuple[int, Sink], monkeypatch: pytest.MonkeyPatch) -> None:
    _, sink = smtp
    serial = issue(auth)  # expires 2031-01-01
    for when, days in (("2030-10-05T00:00:00+00:00", 90), ("2030-12-05T00:00:00+00:00", 30),
                       ("2030-12-28T00:00:00+00:00", 7)):
        at(monkeypatch, when)
        result = notices.run(auth)
        assert result["queued"] == [f"expiry:{serial}:{days}"]
        assert result["sent"] == [f"<expiry-{serial}-{days}d@127.0.0.1>"]
        assert notices.run(auth) == {"queued": [], "sent": [], "failed": []}  # rerun: nothing
    assert sink.ids() == [f"<expiry-{serial}-{d}d@127.0.0.1>" for d in (90, 30, 7)]
    rcpts, last = sink.received[-1]
    assert rcpts == ["finance@example.com", "legal@example.com"]
    assert str(last["From"]) == auth.settings.smtp_sender
    assert "2031-01-01" in str(last["Subject"]) and "证书" in str(last["Subject"])
    body = last.get_content()
    assert NAME_C in body and "将于 2031-01-01 00:00 UTC 到期" in body  # Chinese
    assert "expires on 2031-01-01 00:00 UTC, in about 4 days" in body  # and English
    assert all(row.sent and row.attempts == 1 and row.sent_at for row in outbox(auth))


def test_only_the_tightest_due_threshold_is_sent_and_only_to_those_who_need_it(
        auth: Authority, smtp: tuple[int, Sink], monkeypatch: pytest.MonkeyPatch) -> None:
    _, sink = smtp
    plain, renewed, revoked, frozen = (issue(auth) for _ in range(4))
    no_contact = issue(auth, USCC_A)  # enterprise A has no contact address
    at(monkeypatch, "2030-12-01T00:00:00+00:00")
    renewal.renew_one(auth, renewed, actor=ACTOR)
    revocation.revoke(auth, revoked, reason="keyCompromise", actor=ACTOR)
    revocation.freeze(auth, frozen, actor=ACTOR)
    late = expiring_at(auth, "2030-12-21T00:00:00+00:00")  # first seen 20 days before
    sent = notices.run(auth)["sent"]
    assert sorted(sent) == sorted([f"<expiry-{plain}-90d@127.0.0.1>",
                                   f"<expiry-{late}-30d@127.0.0.1>"])
    assert not any(s in " ".join(sink.ids()) for s in (renewed, revoked, frozen, no_contact))


def test_a_crash_between_sending_and_marking_resends_the_same_message_id_once(
        auth: Authority, smtp: tuple[int, Sink], monkeypatch: pytest.MonkeyPatch) -> None:
    _, sink = smtp
    serial = issue(auth)
    at(monkeypatch, "2030-12-30T00:00:00+00:00")

    def crash(message_id: str) -> None:
        raise RuntimeError("killed after the server accepted the message")

    with pytest.raises(RuntimeError):
        notices.run(auth, after_send=crash)
    [row] = outbox(auth)
    assert (row.sent, row.attempts, row.sent_at) == (False, 1, None)
    assert notices.run(auth)["sent"] == [row.message_id]
    assert sink.ids() == [f"<expiry-{serial}-7d@127.0.0.1>"] * 2  # same Message-ID twice
    [row] = outbox(auth)
    assert (row.sent, row.attempts) == (True, 2) and row.sent_at is not None
    first, second = (m for _, m in sink.received)
    assert first.as_bytes() == second.as_bytes()  # the very same message
    assert notices.run(auth)["sent"] == []


def test_notices_stay_queued_while_the_smtp_server_is_down(
        auth: Authority, smtp: tuple[int, Sink], monkeypatch: pytest.MonkeyPatch) -> None:
    _, sink = smtp
    issue(auth)
    at(monkeypatch, "2030-12-30T00:00:00+00:00")
    with pytest.raises(EsealError) as exc:
        notices.run(auth, port=free_port())
    assert exc.value.code == "SMTP_UNAVAILABLE"
    [row] = outbox(auth)
    assert not row.sent
    assert notices.run(auth)["sent"] == [row.message_id]
    assert len(sink.received) == 1


def test_cli_notify_run_with_configured_thresholds(
        auth: Authority, smtp: tuple[int, Sink], home: Path) -> None:
    port, sink = smtp
    serial = issue(auth)
    env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test",
               ESEAL_NOW="2030-11-10T00:00:00Z", ESEAL_SMTP_PORT=str(port),
               ESEAL_NOTICE_DAYS="60,10")
    done = subprocess.run([sys.executable, "-m", "eseal", "notify", "run"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sent"] == [f"<expiry-{serial}-60d@127.0.0.1>"] == sink.ids()
