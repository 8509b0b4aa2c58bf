"""The tamper-evident audit log: every state change and every refusal, hash-chained.

Each event's hash covers its own id, time, actor, action, outcome, target, details and the
previous event's hash, so editing, deleting or reordering a row breaks the chain at that row.
Rewriting the whole tail consistently is stopped by checkpoints: signatures by the audit key
on the CA token over (event id, event hash), written every ``checkpoint_every`` events and on
demand (each CLI command ends with one). Checkpoints are also appended to
``<home>/audit/checkpoints.jsonl``, outside the database, so truncating both tables together
is still caught while that file survives. What no design here can catch: events appended
after the last checkpoint and then truncated by someone holding the database *and* the file;
the window is one command (CLI) or ``checkpoint_every`` events (service).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from eseal import clock
from eseal.store.models import AuditCheckpoint, AuditEvent

GENESIS = "0" * 64
_EVENTS = AuditEvent.__table__
# Built once: plain Core statements with bound parameters skip the ORM's per-call compile
# and cache-key work, which dominated issuance time when every issuance appends an event.
_HEAD = select(_EVENTS.c.id, _EVENTS.c.hash).order_by(_EVENTS.c.id.desc()).limit(1)
_APPEND = insert(_EVENTS)
CHECKPOINT_LABEL = b"eseal-audit-checkpoint-v1\x00"


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode("utf-8")


def event_hash(event_id: int, at: datetime, actor: str, action: str, outcome: str,
               target: str | None, details: dict[str, Any], prev_hash: str) -> str:
    body = {
        "id": event_id,
        "at": at.astimezone(UTC).isoformat(),
        "actor": actor,
        "action": action,
        "outcome": outcome,
        "target": target,
        "details": details,
        "prev": prev_hash,
    }
    return hashlib.sha256(_canonical(body)).hexdigest()


def _checkpoint_message(event_id: int, event_hash_: str, at: datetime) -> bytes:
    return CHECKPOINT_LABEL + _canonical(
        {"event_id": event_id, "event_hash": event_hash_, "at": at.astimezone(UTC).isoformat()})


def _jsonable(details: dict[str, Any] | None) -> dict[str, Any]:
    """Details as they will come back from the JSON column (so the hash is stable)."""
    return json.loads(_canonical(details or {}))


@dataclass(frozen=True)
class AuditFinding:
    event_id: int | None
    problem: str  # changed | deleted | reordered | truncated | bad_checkpoint

    def describe(self) -> str:
        where = f"row {self.event_id}" if self.event_id is not None else "the log"
        return f"{where}: {self.problem}"


@dataclass
class AuditReport:
    events: int = 0
    checkpoints: int = 0
    findings: list[AuditFinding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "first_problem": self.findings[0].describe() if self.findings else None,
            "findings": [{"event_id": f.event_id, "problem": f.problem} for f in self.findings],
        }


class AuditLog:
    """Appends and verifies. ``signer`` signs checkpoint messages with the CA token's audit key."""

    def __init__(self, *, signer: Callable[[bytes], bytes] | None,
                 public_key: ec.EllipticCurvePublicKey | None, checkpoint_every: int,
                 journal: Path | None) -> None:
        self._signer = signer
        self._public_key = public_key
        self._every = max(1, checkpoint_every)
        self._journal = journal

    # -- writing --------------------------------------------------------------------------
    def append(self, session: Session, *, actor: str, action: str, outcome: str = "ok",
               target: str | None = None, details: dict[str, Any] | None = None) -> int:
        """Append one event inside the caller's write transaction; returns its id.

        The caller's transaction must hold the write lock (``Database.write``), so the read
        of the chain head and the insert are one atomic step across processes.
        """
        conn = session.connection()
        head = conn.execute(_HEAD if conn.dialect.name == "sqlite"
                            else _HEAD.with_for_update()).first()
        last_id, prev = (head[0], head[1]) if head else (0, GENESIS)
        at = clock.now()
        clean = _jsonable(details)
        event_id = last_id + 1
        digest = event_hash(event_id, at, actor, action, outcome, target, clean, prev)
        conn.execute(_APPEND, {"id": event_id, "at": at, "actor": actor, "action": action,
                               "outcome": outcome, "target": target, "details": clean,
                               "prev_hash": prev, "hash": digest})
        if event_id % self._every == 0:
            self._write_checkpoint(session, event_id, digest)
        return event_id

    def checkpoint(self, session: Session) -> int | None:
        """Sign the current chain head (if anything is new since the last checkpoint)."""
        head = session.execute(
            select(AuditEvent.id, AuditEvent.hash).order_by(AuditEvent.id.desc()).limit(1)
        ).first()
        if head is None:
            return None
        last = session.execute(select(func.max(AuditCheckpoint.event_id))).scalar()
        if last is not None and last >= head[0]:
            return None
        self._write_checkpoint(session, head[0], head[1])
        return int(head[0])

    def _write_checkpoint(self, session: Session, event_id: int, digest: str) -> None:
        if self._signer is None:
            return
        at = clock.now()
        signature = self._signer(_checkpoint_message(event_id, digest, at))
        session.execute(insert(AuditCheckpoint).values(
            event_id=event_id, event_hash=digest, at=at, signature=signature))
        if self._journal is not None:
            self._journal.parent.mkdir(parents=True, exist_ok=True)
            with self._journal.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps({"event_id": event_id, "event_hash": digest,
                                     "at": at.isoformat(), "signature": signature.hex()}) + "\n")

    # -- verifying ------------------------------------------------------------------------
    def verify(self, session: Session) -> AuditReport:
        report = AuditReport()
        rows: Iterable[AuditEvent] = session.execute(
            select(AuditEvent).order_by(AuditEvent.id)).scalars()
        hashes_by_id: dict[int, str] = {}
        expected_id, prev = 1, GENESIS
        for row in rows:
            report.events += 1
            if row.id != expected_id and not report.findings:
                report.findings.append(AuditFinding(expected_id, "deleted"))
            recomputed = event_hash(row.id, row.at, row.actor, row.action, row.outcome,
                                    row.target, row.details, row.prev_hash)
            if recomputed != row.hash:
                report.findings.append(AuditFinding(row.id, "changed"))
            elif row.prev_hash != prev and row.id == expected_id:
                report.findings.append(AuditFinding(row.id, "reordered"))
            hashes_by_id[row.id] = row.hash
            prev, expected_id = row.hash, row.id + 1
        last_id = expected_id - 1
        checkpoints = list(session.execute(
            select(AuditCheckpoint).order_by(AuditCheckpoint.id)).scalars())
        report.checkpoints = len(checkpoints)
        seen = {(c.event_id, c.event_hash) for c in checkpoints}
        for cp in checkpoints:
            self._check_checkpoint(report, cp.event_id, cp.event_hash, cp.at, cp.signature,
                                   hashes_by_id, last_id)
        for entry in self._journal_entries():
            if (entry[0], entry[1]) not in seen:
                self._check_checkpoint(report, *entry, hashes_by_id, last_id)
        report.findings.sort(key=lambda f: (f.event_id is None, f.event_id or 0))
        return report

    def _check_checkpoint(self, report: AuditReport, event_id: int, digest: str, at: datetime,
                          signature: bytes, hashes_by_id: dict[int, str], last_id: int) -> None:
        if self._public_key is not None:
            try:
                self._public_key.verify(signature, _checkpoint_message(event_id, digest, at),
                                        ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                report.findings.append(AuditFinding(event_id, "bad_checkpoint"))
                return
        if event_id > last_id:
            report.findings.append(AuditFinding(last_id + 1, "truncated"))
        elif event_id in hashes_by_id and hashes_by_id[event_id] != digest and not any(
                f.event_id is not None and f.event_id <= event_id for f in report.findings):
            report.findings.append(AuditFinding(event_id, "changed"))

    def _journal_entries(self) -> list[tuple[int, str, datetime, bytes]]:
        if self._journal is None or not self._journal.exists():
            return []
        entries = []
        for line in self._journal.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                entries.append((int(raw["event_id"]), str(raw["event_hash"]),
                                datetime.fromisoformat(raw["at"]),
                                bytes.fromhex(raw["signature"])))
            except (ValueError, KeyError, TypeError):
                continue
        return entries
