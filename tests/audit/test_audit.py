"""The audit log is tamper-evident: edits, deletions, reordering and truncation are caught,
and the report names the first row that is wrong."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import text

from eseal.ca.authority import Authority
from tests.conftest import USCC_A, make_csr


def _events(authority: Authority, n: int) -> None:
    for i in range(n):
        authority.issue(make_csr(), uscc=USCC_A, profile="login", holder=f"员工{i}",
                        actor="officer:test")


def _verify(authority: Authority):  # type: ignore[no-untyped-def]
    with authority.db.read() as s:
        return authority.audit.verify(s)


def _sql(authority: Authority, statement: str) -> None:
    with authority.db.engine.begin() as conn:
        conn.execute(text(statement))


@pytest.fixture
def logged(authority: Authority) -> Authority:
    _events(authority, 8)
    with authority.db.write() as s:
        authority.audit.checkpoint(s)
    _events(authority, 2)
    assert _verify(authority).ok
    return authority


def test_untouched_log_verifies(logged: Authority) -> None:
    report = _verify(logged)
    assert report.ok and report.events >= 13 and report.checkpoints >= 2


def test_edited_row_is_named(logged: Authority) -> None:
    _sql(logged, "UPDATE audit_events SET actor='officer:mallory' WHERE id=5")
    report = _verify(logged)
    assert not report.ok
    assert (report.findings[0].event_id, report.findings[0].problem) == (5, "changed")


def test_edited_details_are_caught(logged: Authority) -> None:
    _sql(logged, "UPDATE audit_events SET details='{\"code\": \"x\"}' WHERE id=7")
    assert _verify(logged).findings[0].event_id == 7


def test_deleted_row_is_named(logged: Authority) -> None:
    _sql(logged, "DELETE FROM audit_events WHERE id=6")
    report = _verify(logged)
    assert (report.findings[0].event_id, report.findings[0].problem) == (6, "deleted")


def test_reordered_rows_are_caught(logged: Authority) -> None:
    _sql(logged, "UPDATE audit_events SET id=1000 WHERE id=4")
    _sql(logged, "UPDATE audit_events SET id=4 WHERE id=9")
    _sql(logged, "UPDATE audit_events SET id=9 WHERE id=1000")
    report = _verify(logged)
    assert not report.ok and report.findings[0].event_id == 4


def test_consistently_rewritten_tail_is_caught_by_the_signed_checkpoint(
        logged: Authority) -> None:
    # Rewrite row 3 and recompute every later hash: the chain is self-consistent again,
    # but the checkpoint signed by the token's audit key no longer matches.
    from eseal.audit.log import event_hash

    with logged.db.engine.begin() as conn:
        rows = conn.execute(text("SELECT id, at, actor, action, outcome, target, details "
                                 "FROM audit_events ORDER BY id")).all()
        prev = "0" * 64
        from datetime import UTC, datetime
        for row in rows:
            actor = "officer:mallory" if row.id == 3 else row.actor
            at = datetime.fromisoformat(str(row.at)).replace(tzinfo=UTC)
            digest = event_hash(row.id, at, actor, row.action, row.outcome, row.target,
                                _details(row.details), prev)
            conn.execute(text("UPDATE audit_events SET actor=:a, prev_hash=:p, hash=:h "
                              "WHERE id=:i"), {"a": actor, "p": prev, "h": digest, "i": row.id})
            prev = digest
    report = _verify(logged)
    assert not report.ok
    assert report.findings[0].problem == "changed"


def test_truncated_table_is_caught(logged: Authority) -> None:
    _sql(logged, "DELETE FROM audit_events WHERE id > 4")
    report = _verify(logged)
    assert not report.ok
    assert (report.findings[0].event_id, report.findings[0].problem) == (5, "truncated")


def test_truncating_events_and_checkpoints_together_is_caught_by_the_journal(
        logged: Authority) -> None:
    _sql(logged, "DELETE FROM audit_events WHERE id > 4")
    _sql(logged, "DELETE FROM audit_checkpoints")
    report = _verify(logged)
    assert not report.ok and report.findings[0].problem == "truncated"


def test_cli_audit_verify_exits_non_zero_and_names_the_row(logged: Authority) -> None:
    _sql(logged, "UPDATE audit_events SET action='cert.nothing' WHERE id=6")
    env = dict(os.environ, ESEAL_HOME=str(logged.settings.home))
    done = subprocess.run([sys.executable, "-m", "eseal", "audit", "verify"], env=env,
                          capture_output=True, text=True)
    assert done.returncode == 1
    assert "row 6" in done.stderr


def _details(raw: object) -> object:
    """A row's details: text from SQLite, already parsed from PostgreSQL's json column."""
    return json.loads(raw) if isinstance(raw, str | bytes) else raw
