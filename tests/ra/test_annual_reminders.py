"""Annual-report reminders at 30/7/1 days before 30 June, through the outbox to a real SMTP
server on loopback, until a sealed 年度报告 filing for the year is received (ESEAL_NOW moves
the clock; nothing sleeps)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from test_notices import Sink, smtp  # noqa: F401 - the real SMTP server fixture

from eseal.ca.authority import Authority
from eseal.ra import notices
from eseal.ra.annual_reminders import due_threshold, queue_due
from eseal.ra.contacts import set_contacts
from eseal.store.models import Enterprise, Outbox
from eseal.store.models_filings import Filing
from tests.conftest import USCC_A, USCC_B

ACTOR = "officer:test"


@pytest.fixture
def auth(authority: Authority, smtp: tuple[int, Sink]) -> Authority:  # noqa: F811
    authority.settings = authority.settings.replace(smtp_port=smtp[0])
    with authority.db.write() as s:
        for ent in s.execute(select(Enterprise)).scalars():
            ent.contact_email = f"office-{ent.uscc[-4:]}@example.com"
    set_contacts(authority, USCC_A, [
        {"name": "陈财务", "role": "财务", "phone": "13800138000", "email": "cw@example.com"},
        {"name": "林法务", "role": "法务", "phone": "13900001111", "email": "fw@example.com"}],
        actor=ACTOR)
    return authority


def at(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    monkeypatch.setenv("ESEAL_NOW", when)


def reminders(auth: Authority) -> list[Outbox]:
    with auth.db.read() as s:
        return list(s.execute(select(Outbox).where(Outbox.kind == "annual_report_reminder")
                              .order_by(Outbox.id)).scalars())


def test_the_deadline_thresholds_follow_china_time() -> None:
    assert due_threshold(datetime(2031, 5, 30, 15, 59, tzinfo=UTC)) is None  # 31 May 23:59
    assert due_threshold(datetime(2031, 5, 30, 16, 0, tzinfo=UTC)) == (2031, 30, 30)
    assert due_threshold(datetime(2031, 6, 23, 16, 0, tzinfo=UTC)) == (2031, 6, 7)
    assert due_threshold(datetime(2031, 6, 29, 16, 0, tzinfo=UTC)) == (2031, 0, 1)
    assert due_threshold(datetime(2031, 6, 30, 16, 0, tzinfo=UTC)) is None  # 1 July


def test_reminders_at_30_7_1_days_until_the_sealed_annual_report_arrives(
        auth: Authority, smtp: tuple[int, Sink], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
        home: Path) -> None:
    port, sink = smtp
    at(monkeypatch, "2031-04-01T02:00:00Z")
    assert queue_due(auth) == []  # three months early: nothing
    at(monkeypatch, "2031-05-31T02:00:00Z")
    assert sorted(queue_due(auth)) == sorted([f"annual:{USCC_A}:2031:30",
                                             f"annual:{USCC_B}:2031:30"])
    assert queue_due(auth) == []  # once per threshold
    at(monkeypatch, "2031-06-02T02:00:00Z")
    assert queue_due(auth) == []  # still the 30-day one
    notices.send_queued(auth, host="127.0.0.1", port=port)
    to_a = next(rcpt for rcpt, msg in sink.received if USCC_A in str(msg["Subject"]))
    assert sorted(to_a) == ["cw@example.com", "fw@example.com", "office-0Y43@example.com"]

    # enterprise A files its sealed 年度报告; B does not
    with auth.db.write() as s:
        ent_a = s.execute(select(Enterprise).where(Enterprise.uscc == USCC_A)).scalar_one()
        s.add(Filing(enterprise_id=ent_a.id, title="2030 年度报告", status="accepted",
                     created_by="agent:test", created_at=datetime(2031, 6, 5, tzinfo=UTC),
                     draft_sha256="0" * 64, draft_size=1, draft_pages=1,
                     accepted_at=datetime(2031, 6, 5, tzinfo=UTC), filing_type="annual_report"))
    at(monkeypatch, "2031-06-23T02:00:00Z")
    assert queue_due(auth) == [f"annual:{USCC_B}:2031:7"]
    at(monkeypatch, "2031-06-29T02:00:00Z")
    result = notices.run(auth, host="127.0.0.1", port=port)
    assert f"annual:{USCC_B}:2031:1" in result["queued"]
    assert [r.dedupe_key for r in reminders(auth)] == [
        f"annual:{USCC_A}:2031:30", f"annual:{USCC_B}:2031:30", f"annual:{USCC_B}:2031:7",
        f"annual:{USCC_B}:2031:1"]
    assert all(r.sent for r in reminders(auth))
    last = sink.received[-1][1]
    assert "2030" in str(last["Subject"]) and USCC_B in str(last["Subject"])
    at(monkeypatch, "2031-07-01T02:00:00Z")
    assert queue_due(auth) == []  # past the deadline: the reminders stop
