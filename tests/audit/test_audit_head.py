"""The audit signer refuses to sign a history that does not extend what it signed before
(issue 13 item 8, the red team's "trickle" rewrite).

The attacker holds the database and ``audit/checkpoints.jsonl``, not the CA token. Whatever
they rewrite, truncate or renumber, the token's ``audit-head`` record names the newest
checkpoint the audit key signed; the next checkpoint is refused (``AUDIT_HISTORY_REWRITTEN``,
503, over HTTP too) and ``audit verify`` reports ``head_rewritten`` without any CRL copy.
Honest paths stay intact: a rolled-back transaction after a checkpoint was signed, two
processes appending at once, a home whose checkpoints predate the token record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from eseal.audit.head import HEAD_LABEL, AuditHistoryRewritten, TokenHeadStore
from eseal.audit.log import _checkpoint_message, event_hash
from eseal.ca.authority import Authority
from eseal.token import delete_objects, lock
from eseal.token.data_objects import read_data
from tests.audit.test_audit_coverage import (  # noqa: F401  (settings: the cadence-5 home)
    EVERY,
    build_log,
    delete_checkpoints_from,
    delete_stored_crls,
    head,
    note,
    settings,
    sql,
    verify,
)
from tests.conftest import LiveServer

JOURNAL = Path("audit") / "checkpoints.jsonl"


def _rechain(auth: Authority, rows: list[dict[str, Any]], *, batch: int | None = None,
             between: Callable[[], None] | None = None) -> None:
    """Insert ``rows`` after the current head with fresh ids and hashes (a consistent chain
    again), ``batch`` at a time with ``between()`` after each batch."""
    step = batch or len(rows) or 1
    for start in range(0, len(rows), step):
        prev_id, prev = sql(auth, "SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")[0]
        for r in rows[start:start + step]:
            new_id = prev_id + 1
            at = datetime.fromisoformat(str(r["at"])).replace(tzinfo=UTC)
            details = json.loads(r["details"]) if isinstance(r["details"], str) else r["details"]
            digest = event_hash(new_id, at, r["actor"], r["action"], r["outcome"], r["target"],
                                details, prev)
            sql(auth, "INSERT INTO audit_events (id, at, actor, action, outcome, target, "
                      "details, prev_hash, hash) VALUES (:i, :at, :a, :ac, :o, :t, :d, :p, :h)",
                i=new_id, at=r["at"], a=r["actor"], ac=r["action"], o=r["outcome"],
                t=r["target"], d=json.dumps(details), p=prev, h=digest)
            prev_id, prev = new_id, digest
        if between is not None:
            between()


def _take_from(auth: Authority, first: int) -> list[dict[str, Any]]:
    """Delete events ``first``.. and their checkpoints (database and journal); return them."""
    rows = [dict(r._mapping) for r in sql(
        auth, "SELECT id, at, actor, action, outcome, target, details, prev_hash, hash "
              "FROM audit_events WHERE id >= :f ORDER BY id", f=first)]
    sql(auth, "DELETE FROM audit_events WHERE id >= :f", f=first)
    delete_checkpoints_from(auth, first)
    return rows


def _refused_login(auth: Authority) -> None:
    """What anyone can cause: an audited refusal, appended as the service appends it."""
    with auth.db.write() as s:
        auth.audit.append(s, actor="anonymous", action="login.refused", outcome="refused",
                          details={"reason": "SIGNATURE_INVALID"})


# --- the attacks: each leaves a chain that is consistent on its own ----------------------------
def trickle_rewrite(auth: Authority) -> None:
    """The red team's scenario: event 27 rewritten, re-inserted 4 at a time, each batch
    followed by an ordinary event at which the service would checkpoint."""
    rows = _take_from(auth, 26)
    rows[1]["actor"] = "officer:mallory"
    _rechain(auth, rows, batch=EVERY - 1, between=lambda: _refused_login(auth))


def truncate_to_a_checkpoint(auth: Authority) -> None:
    """Events, checkpoints, journal lines and the CA's stored CRLs after event 30 deleted."""
    _take_from(auth, 31)
    delete_stored_crls(auth)


def delete_a_middle_event_and_renumber(auth: Authority) -> None:
    rows = _take_from(auth, 22)
    _rechain(auth, rows[1:])  # event 22 is gone, 23.. become 22..
    delete_stored_crls(auth)


def drop_the_newest_checkpoint(auth: Authority) -> None:
    """Only the newest checkpoint (database and journal), events untouched."""
    delete_checkpoints_from(auth, 40)


def rewrite_one_event_in_place(auth: Authority) -> None:
    rows = _take_from(auth, 33)
    rows[0]["actor"] = "officer:mallory"
    _rechain(auth, rows)
    delete_stored_crls(auth)


ATTACKS: dict[str, Callable[[Authority], None]] = {
    "trickle_rewrite": trickle_rewrite,
    "truncate_to_a_checkpoint": truncate_to_a_checkpoint,
    "delete_a_middle_event_and_renumber": delete_a_middle_event_and_renumber,
    "drop_the_newest_checkpoint": drop_the_newest_checkpoint,
    "rewrite_one_event_in_place": rewrite_one_event_in_place,
}


@pytest.fixture
def forty(authority: Authority) -> Authority:
    """An honest log of 40 events, the newest checkpoint at 40, the token agreeing."""
    build_log(authority)
    note(authority, 40 - head(authority))
    report = verify(authority)
    assert report.ok, report.findings
    assert report.token_head is not None and report.token_head.event_id == 40
    return authority


def _attack(auth: Authority, name: str) -> None:
    if name == "trickle_rewrite":  # the service's own checkpoint is the first thing refused
        with pytest.raises(AuditHistoryRewritten):
            trickle_rewrite(auth)
    else:
        ATTACKS[name](auth)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_history_that_does_not_extend_the_tokens_head_is_reported_without_a_crl(
        forty: Authority, attack: str) -> None:
    _attack(forty, attack)
    report = verify(forty)
    assert not report.ok
    assert "head_rewritten" in {f.problem for f in report.findings}, report.findings
    finding = next(f for f in report.findings if f.problem == "head_rewritten")
    assert "at event 40" in finding.detail


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_the_signer_refuses_to_checkpoint_a_history_that_does_not_extend_its_head(
        forty: Authority, attack: str) -> None:
    _attack(forty, attack)
    before = sql(forty, "SELECT count(*) FROM audit_checkpoints")[0][0]
    events = head(forty)
    with pytest.raises(AuditHistoryRewritten) as caught:
        with forty.db.write() as s:  # a forced checkpoint (what every CLI command ends with)
            forty.audit.append(s, actor="officer:test", action="test.note")
            forty.audit.checkpoint(s)
    err = caught.value
    assert (err.code, err.status, err.field) == ("AUDIT_HISTORY_REWRITTEN", 503, "audit_log")
    assert err.message_zh and "eseal audit verify" in err.message
    # refused: nothing signed, nothing appended, the token's record unchanged
    assert sql(forty, "SELECT count(*) FROM audit_checkpoints")[0][0] == before
    assert head(forty) == events
    assert TokenHeadStore(forty.ca_session).read().confirmed.event_id == 40  # type: ignore[union-attr]


@pytest.mark.parametrize("attack", ["truncate_to_a_checkpoint", "drop_the_newest_checkpoint"])
def test_cli_verify_and_checkpoint_name_the_rewrite(forty: Authority, attack: str) -> None:
    _attack(forty, attack)
    env = dict(os.environ, ESEAL_HOME=str(forty.settings.home))
    done = subprocess.run([sys.executable, "-m", "eseal", "audit", "verify"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "head_rewritten" in done.stderr, done.stderr
    signed = subprocess.run([sys.executable, "-m", "eseal", "audit", "checkpoint"], env=env,
                            capture_output=True, text=True, timeout=120)
    assert signed.returncode != 0
    assert "AUDIT_HISTORY_REWRITTEN" in signed.stderr and "Traceback" not in signed.stderr


def test_an_audited_request_over_http_gets_a_coded_503_not_a_5xx_crash(
        forty: Authority) -> None:
    """Over a real ``eseal serve``: once the history was cut, a request whose audit event
    falls on the cadence is refused with the code, and nothing is signed."""
    truncate_to_a_checkpoint(forty)
    server = LiveServer(forty.settings.home, int(forty.settings.base_url.rsplit(":", 1)[1]))
    try:
        answers = []
        for _ in range(EVERY):
            nonce = httpx.post(f"{server.url}/auth/challenge", timeout=30).json()["nonce"]
            answers.append(httpx.post(f"{server.url}/auth/verify", timeout=30, json={
                "nonce": nonce, "origin": server.url, "purpose": "login",
                "issued_at": datetime.now(UTC).isoformat(), "certificate": "MIIB",
                "signature": "AAAA"}))
    finally:
        server.stop()
    statuses = {a.status_code for a in answers}
    assert 503 in statuses and not statuses & {500, 502, 504}, [a.text for a in answers]
    refused = next(a.json() for a in answers if a.status_code == 503)
    assert refused["code"] == "AUDIT_HISTORY_REWRITTEN" and refused["message_zh"]
    assert int(sql(forty, "SELECT max(event_id) FROM audit_checkpoints")[0][0]) == 30


def test_a_rolled_back_transaction_after_a_checkpoint_does_not_look_like_a_rewrite(
        forty: Authority) -> None:
    """The token is told about the checkpoint before the commit; if the transaction then
    rolls back, the pending record names a checkpoint the database never got. The next
    checkpoint must still be signed and the log verify intact."""
    note(forty, 4)  # head 44: the next append lands on the cadence
    with pytest.raises(RuntimeError), forty.db.write() as s:
        forty.audit.append(s, actor="officer:test", action="test.note")  # event 45, signed
        raise RuntimeError("the caller's change failed after the audit append")
    state = TokenHeadStore(forty.ca_session).read()
    assert state is not None and state.pending is not None and state.pending.event_id == 45
    note(forty, 1)  # event 45 again, a different hash: signed over, not refused
    report = verify(forty)
    assert report.ok, report.findings
    state = TokenHeadStore(forty.ca_session).read()
    assert state is not None and state.confirmed is not None
    assert (state.confirmed.event_id, state.pending) == (45, None)


_APPENDER = """
import sys
from eseal.ca.authority import Authority
from eseal.settings import load_settings
auth = Authority.open(load_settings(sys.argv[1]))
for i in range(int(sys.argv[2])):
    with auth.db.write() as s:
        auth.audit.append(s, actor="officer:other-process", action="test.note", details={"i": i})
auth.close()
"""


def test_two_processes_appending_at_once_keep_an_intact_log_and_head(
        forty: Authority) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    other = subprocess.Popen([sys.executable, "-c", _APPENDER, str(forty.settings.home), "60"],
                             env=env, stderr=subprocess.PIPE, text=True)
    note(forty, 60)
    _, err = other.communicate(timeout=300)
    assert other.returncode == 0, err
    report = verify(forty)
    assert report.ok, report.findings
    newest = sql(forty, "SELECT seq, event_id FROM audit_checkpoints ORDER BY id DESC LIMIT 1")[0]
    assert report.token_head is not None
    assert (report.token_head.seq, report.token_head.event_id) == (newest[0], newest[1])
    assert head(forty) == 160  # both processes' events, all of them
    # checkpoints are one chain: sequence numbers 1..n without a hole
    seqs = [r[0] for r in sql(forty, "SELECT seq FROM audit_checkpoints ORDER BY id")]
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_home_from_before_the_token_head_is_anchored_from_its_next_checkpoint(
        forty: Authority) -> None:
    """Legacy checkpoints (unchained, no token record): the first new checkpoint creates
    the record and chains onto them; what only they vouch for is reported as unanchored."""
    audit_key = forty.key("audit")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    sql(forty, "DELETE FROM audit_checkpoints")
    (forty.settings.home / JOURNAL).unlink()
    lines = []
    for event_id in range(5, 41, 5):
        digest = sql(forty, "SELECT hash FROM audit_events WHERE id=:i", i=event_id)[0][0]
        at = datetime(2026, 1, 1, tzinfo=UTC)
        signature = audit_key.sign(_checkpoint_message(event_id, digest, at),
                                   ec.ECDSA(hashes.SHA256()))
        sql(forty, "INSERT INTO audit_checkpoints (event_id, event_hash, at, signature) "
                   "VALUES (:e, :h, :a, :s)", e=event_id, h=digest, a=at, s=signature)
        lines.append(json.dumps({"event_id": event_id, "event_hash": digest,
                                 "at": at.isoformat(), "signature": signature.hex()}))
    (forty.settings.home / JOURNAL).write_text("".join(line + "\n" for line in lines))
    with lock():
        delete_objects(forty.ca_session, label=HEAD_LABEL)
    assert read_data(forty.ca_session, HEAD_LABEL) is None
    legacy = verify(forty)
    assert legacy.ok and legacy.token_head is None and legacy.unanchored_through == 40
    note(forty, 5)  # event 45: the first chained checkpoint, which creates the record
    report = verify(forty)
    assert report.ok, report.findings
    assert report.token_head is not None and report.token_head.event_id == 45
    assert report.unanchored_through == 40
    assert report.to_dict()["token_head"] == {"seq": 1, "event_id": 45}


@pytest.mark.parametrize("missing", [10, 25, 35])
def test_a_checkpoint_deleted_from_the_middle_breaks_the_checkpoint_chain(
        forty: Authority, missing: int) -> None:
    """Each checkpoint signs its predecessor's hash and its sequence number: deleting one
    (database and journal) shows at the next, whatever the cadence says."""
    sql(forty, "DELETE FROM audit_checkpoints WHERE event_id = :e", e=missing)
    path = forty.settings.home / JOURNAL
    path.write_text("".join(line + "\n" for line in path.read_text().splitlines()
                            if json.loads(line)["event_id"] != missing))
    report = verify(forty)
    assert (missing + 5, "checkpoint_chain") in [(f.event_id, f.problem)
                                                 for f in report.findings], report.findings


def test_logins_over_http_that_cross_checkpoints_are_signed_and_journalled(
        forty: Authority) -> None:
    """The login fast path appends through a plain-Connection transaction, not an ORM
    Session: a login whose audit event lands on the cadence must still sign its checkpoint,
    confirm it on the token and journal it after the commit (it once answered 500 there)."""
    server = LiveServer(forty.settings.home, int(forty.settings.base_url.rsplit(":", 1)[1]))
    try:
        answers = []
        for i in range(3 * EVERY):  # from many addresses, under the per-address limit
            sender = {"X-Forwarded-For": f"10.9.{i}.1"}
            nonce = httpx.post(f"{server.url}/auth/challenge", headers=sender,
                               timeout=30).json()["nonce"]
            answers.append(httpx.post(f"{server.url}/auth/verify", headers=sender, timeout=30,
                                      json={
                "nonce": nonce, "origin": server.url, "purpose": "login",
                "issued_at": datetime.now(UTC).isoformat(), "certificate": "MIIB",
                "signature": "AAAA"}))
    finally:
        server.stop()
    assert {a.status_code for a in answers} == {401}, [a.text for a in answers]
    report = verify(forty)
    assert report.ok, report.findings
    checkpoints = int(sql(forty, "SELECT count(*) FROM audit_checkpoints")[0][0])
    journalled = (forty.settings.home / JOURNAL).read_text().splitlines()
    assert checkpoints >= 40 // EVERY + 3 and len(journalled) == checkpoints
    assert report.token_head is not None and report.token_head.event_id == head(forty) \
        - (head(forty) % EVERY)
