"""Deleting checkpoints cannot make a rewritten audit log look intact (issue 13, item 8).

The attacker controls the database *and* ``audit/checkpoints.jsonl`` (not the CA token): they
rewrite a row, recompute the chain and delete the checkpoints after it from both. The
verifier counts the events no signature vouches for against the service's own cadence
(``checkpoint_every``, 5 here), finds checkpoints the journal lost, gaps between checkpoints,
and checks the audit head that every published CRL carries, including a relying party's
copy. Each attack runs against a real home: ``eseal audit verify`` as its own process and
``GET /audit/verify`` on a real ``eseal serve``, asked by an auditor logged in with a USB-Key.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from eseal.audit.head import AuditHistoryRewritten
from eseal.audit.log import event_hash
from eseal.audit.report import AuditReport
from eseal.ca.authority import Authority
from eseal.ca.status import publish
from eseal.holder.client import EsealClient
from eseal.settings import Settings, load_settings
from eseal.token import configure
from tests.conftest import LiveServer, free_port

EVERY = 5


@pytest.fixture
def settings(home: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The conftest home, with a checkpoint every 5 events (the CLI and server inherit it)."""
    monkeypatch.setenv("ESEAL_CHECKPOINT_EVERY", str(EVERY))
    s = load_settings(home, base_url=f"http://127.0.0.1:{free_port()}")
    configure(s.pkcs11_module, s.softhsm_conf_path)
    return s


def note(auth: Authority, count: int) -> None:
    """``count`` more real events through the audit log (auto checkpoints at the cadence)."""
    for i in range(count):
        with auth.db.write() as s:
            auth.audit.append(s, actor="officer:test", action="test.note", details={"i": i})


def head(auth: Authority) -> int:
    return int(sql(auth, "SELECT max(id) FROM audit_events")[0][0])


def sql(auth: Authority, statement: str, **params: Any) -> list[Any]:
    with auth.db.engine.begin() as conn:
        result = conn.execute(text(statement), params)
        return list(result.all()) if result.returns_rows else []


def verify(auth: Authority, crls: list[tuple[str, bytes]] | None = None) -> AuditReport:
    with auth.db.read() as s:
        return auth.audit.verify(s, crls=crls or [])


def cli_verify(auth: Authority, *crl_files: Path) -> subprocess.CompletedProcess[str]:
    args = [a for f in crl_files for a in ("--crl", str(f))]
    env = dict(os.environ, ESEAL_HOME=str(auth.settings.home))
    return subprocess.run([sys.executable, "-m", "eseal", "audit", "verify", *args], env=env,
                          capture_output=True, text=True, timeout=120)


def build_log(auth: Authority) -> bytes:
    """Bring an honest log to 24 events: checkpoints at 1 (init), 5, 10, 15, 20; a CRL
    published at event 19 (its audit head), returned as the copy a relying party keeps; 4
    events after the last checkpoint, one under what the cadence allows."""
    assert head(auth) < 19
    note(auth, 19 - head(auth))
    crl_copy = publish(auth, "issuing")  # event 20: crl.publish, then the checkpoint
    note(auth, 4)
    assert head(auth) == 24
    return crl_copy


@pytest.fixture
def logged(authority: Authority) -> tuple[Authority, bytes]:
    return authority, build_log(authority)


@pytest.fixture
def served(authority: Authority) -> Iterator[tuple[Authority, EsealClient]]:
    """The same log on a real ``eseal serve``, with an auditor logged in with a USB-Key
    before the log is built (so the login's own events are part of the honest log)."""
    from eseal.ra.staff import provision_staff_token

    staff = provision_staff_token(authority, label="auditor", name="审计员钱", role="auditor",
                                  actor="officer:test")
    server = LiveServer(authority.settings.home,
                        int(authority.settings.base_url.rsplit(":", 1)[1]))
    try:
        auditor = EsealClient(server.url)
        auditor.login_with_token("auditor", staff.pin)
        build_log(authority)
        assert auditor.request("GET", "/audit/verify")["ok"] is True
        yield authority, auditor
    finally:
        server.stop()


# --- the attacker's tools: the database and the journal, nothing else ---------------------------
def rewrite_from(auth: Authority, row: int) -> None:
    """Change row ``row`` and recompute every later hash: a self-consistent chain again."""
    rows = sql(auth, "SELECT id, at, actor, action, outcome, target, details, prev_hash "
                     "FROM audit_events ORDER BY id")
    prev = next(r.prev_hash for r in rows if r.id == row)
    for r in rows:
        if r.id < row:
            continue
        actor = "officer:mallory" if r.id == row else r.actor
        at = datetime.fromisoformat(str(r.at)).replace(tzinfo=UTC)
        digest = event_hash(r.id, at, actor, r.action, r.outcome, r.target,
                            _details(r.details), prev)
        sql(auth, "UPDATE audit_events SET actor=:a, prev_hash=:p, hash=:h WHERE id=:i",
            a=actor, p=prev, h=digest, i=r.id)
        prev = digest


def delete_checkpoints_from(auth: Authority, event_id: int, *, journal: bool = True) -> None:
    """Delete the checkpoints at ``event_id`` and later from the database (and the journal)."""
    sql(auth, "DELETE FROM audit_checkpoints WHERE event_id >= :e", e=event_id)
    path = auth.settings.home / "audit" / "checkpoints.jsonl"
    if journal:
        kept = [line for line in path.read_text().splitlines()
                if json.loads(line)["event_id"] < event_id]
        path.write_text("".join(line + "\n" for line in kept))


def delete_stored_crls(auth: Authority) -> None:
    """A careful attacker also removes the CA's own copies of the CRLs that carry the head."""
    sql(auth, "DELETE FROM crls")


def rewrite_middle(auth: Authority) -> None:
    rewrite_from(auth, 10)
    delete_checkpoints_from(auth, 10)
    delete_stored_crls(auth)


def delete_all_checkpoints(auth: Authority) -> None:
    rewrite_from(auth, 10)
    delete_checkpoints_from(auth, 1)
    delete_stored_crls(auth)


def delete_only_the_last(auth: Authority) -> None:
    rewrite_from(auth, 18)
    delete_checkpoints_from(auth, 18)  # only the one at 20
    delete_stored_crls(auth)


def drop_the_journal(auth: Authority) -> None:
    rewrite_from(auth, 10)
    delete_checkpoints_from(auth, 10, journal=False)
    (auth.settings.home / "audit" / "checkpoints.jsonl").unlink()
    delete_stored_crls(auth)


def truncate_the_tail_but_keep_the_crls(auth: Authority) -> None:
    sql(auth, "DELETE FROM audit_events WHERE id > 15")
    delete_checkpoints_from(auth, 16)


#: attack -> (problems the verifier must name, events left uncovered at the end)
ATTACKS: dict[str, tuple[Callable[[Authority], None], set[str], int]] = {
    "rewrite_middle": (rewrite_middle, {"uncovered"}, 19),
    "delete_all_checkpoints": (delete_all_checkpoints, {"no_checkpoint"}, 24),
    "delete_only_the_last": (delete_only_the_last, {"uncovered"}, 9),
    "drop_the_journal": (drop_the_journal, {"journal_missing", "uncovered"}, 19),
    "truncate_the_tail_but_keep_the_crls": (truncate_the_tail_but_keep_the_crls,
                                            {"truncated"}, 0),
}


def test_an_honest_log_just_under_the_cadence_is_intact(
        logged: tuple[Authority, bytes], tmp_path: Path) -> None:
    auth, crl_copy = logged
    report = verify(auth)
    assert report.ok, report.findings
    assert (report.events, report.uncovered, report.allowed_uncovered) == (24, 4, EVERY - 1)
    assert report.anchors == 1  # the stored CRL carries event 19
    copy = tmp_path / "relying-party.crl"
    copy.write_bytes(crl_copy)
    done = cli_verify(auth, copy)
    assert done.returncode == 0, done.stderr
    assert "intact: 24 events" in done.stdout
    assert "4 events not covered" in done.stdout and "allows 4" in done.stdout


def test_one_more_uncovered_event_than_the_cadence_allows_is_a_finding(
        logged: tuple[Authority, bytes]) -> None:
    auth, _ = logged
    delete_checkpoints_from(auth, 20)
    report = verify(auth)
    # the CRL's head at 19 still vouches for 1..19: five events after it; and the CA token
    # still remembers the checkpoint at 20 that the database lost
    assert (report.uncovered, [f.problem for f in report.findings]) == (
        5, ["uncovered", "head_rewritten"])
    assert report.findings[0].event_id == 20 and report.findings[1].event_id == 20


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_deleting_checkpoints_after_a_rewrite_is_caught_by_cli_and_http(
        served: tuple[Authority, EsealClient], attack: str) -> None:
    auth, auditor = served
    tamper, problems, uncovered = ATTACKS[attack]
    tamper(auth)
    done = cli_verify(auth)
    over_http = auditor.request("GET", "/audit/verify")
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("error AUDIT_LOG_TAMPERED: audit log TAMPERED: ")
    assert done.stderr.count("\n") == 1
    assert f"{uncovered} events not covered" in done.stderr
    named = {f["problem"] for f in over_http["findings"]}
    assert problems <= named, over_http["findings"]
    assert all(p in done.stderr for p in named)
    assert over_http["ok"] is False and over_http["uncovered"] == uncovered
    assert over_http["first_problem"] in done.stderr
    assert all(f["message"] and f["message_zh"] for f in over_http["findings"])


def test_a_relying_partys_crl_catches_a_tail_truncated_back_to_a_checkpoint(
        logged: tuple[Authority, bytes], tmp_path: Path) -> None:
    """Events, checkpoints, journal lines and the CA's own CRLs after event 15 all deleted:
    the CA files are consistent again, but the CA token remembers the checkpoint at 20 (this
    was the documented window before the token kept the head); the published CRL shows it too."""
    auth, crl_copy = logged
    truncate_the_tail_but_keep_the_crls(auth)
    delete_stored_crls(auth)
    alone = verify(auth)
    assert [(f.event_id, f.problem) for f in alone.findings] == [(16, "head_rewritten")]
    copy = tmp_path / "copy.crl"
    copy.write_bytes(crl_copy)
    done = cli_verify(auth, copy)
    assert done.returncode == 1
    assert "row 16: truncated" in done.stderr and "vouches for event 19" in done.stderr


def test_a_relying_partys_crl_catches_a_rewrite_before_its_head(
        logged: tuple[Authority, bytes]) -> None:
    auth, crl_copy = logged
    rewrite_from(auth, 12)
    delete_checkpoints_from(auth, 12)
    delete_stored_crls(auth)
    report = verify(auth, [("copy.crl", crl_copy)])
    assert any(f.problem == "changed" and f.event_id == 19 and "copy.crl" in f.detail
               for f in report.findings), report.findings


def test_the_service_refuses_to_checkpoint_over_a_rewritten_chain(
        logged: tuple[Authority, bytes]) -> None:
    """The attacker lets the service sign again (a restart, any CLI command): the signer now
    refuses (the token's head no longer matches), so the rewritten tail stays uncovered and
    the checkpoints the cadence demands stay missing."""
    auth, _ = logged
    rewrite_middle(auth)
    with pytest.raises(AuditHistoryRewritten):
        note(auth, 1)  # event 25 would carry the service's own checkpoint
    assert head(auth) == 24  # refused: nothing signed, nothing appended
    report = verify(auth)
    assert report.uncovered == 19
    assert {"uncovered", "head_rewritten"} <= {f.problem for f in report.findings}


@pytest.mark.parametrize("garbage", [b"not a crl", b""])
def test_a_crl_file_that_is_not_ours_is_reported_not_trusted(
        logged: tuple[Authority, bytes], tmp_path: Path, garbage: bytes) -> None:
    auth, _ = logged
    bogus = tmp_path / "bogus.crl"
    bogus.write_bytes(garbage)
    done = cli_verify(auth, bogus)
    assert done.returncode == 1 and "bad_anchor" in done.stderr


def _details(raw: object) -> object:
    """A row's details: text from SQLite, already parsed from PostgreSQL's json column."""
    return json.loads(raw) if isinstance(raw, str | bytes) else raw
