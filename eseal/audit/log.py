"""The tamper-evident audit log: every state change and every refusal, hash-chained.

Each event's hash covers its own id, time, actor, action, outcome, target, details and the
previous event's hash, so editing, deleting or reordering a row breaks the chain at that row.
Rewriting the whole tail consistently is stopped by checkpoints: signatures by the audit key
on the CA token over (event id, event hash), written every ``checkpoint_every`` events and on
demand (each CLI command ends with one). Checkpoints are also appended to
``<home>/audit/checkpoints.jsonl``, outside the database, so truncating both tables together
is still caught while that file survives, and a checkpoint in the database that the journal
lacks means the journal was cut.

Someone holding the database *and* the journal can delete the checkpoints after a row they
rewrite. So verification also measures coverage: how many events at the end no valid
signature vouches for. The service checkpoints every ``checkpoint_every`` events and every
CLI command ends with one, so an honest log never has more than ``checkpoint_every - 1``
uncovered events, and never none at all (``eseal init`` checkpoints its first event); more is
a finding. Every published CRL also carries the head of the chain (``audit_anchor``), signed
by a CA key and copied by relying parties: the CA's stored CRLs and any copy an auditor
brings are checked against the log, and count as coverage.

Coverage alone did not stop the service from signing a rewritten chain itself: re-insert the
rewritten rows a few at a time and let ordinary audited events (a refused login) reach the
cadence. So the signer remembers what it signed, on the CA token (``audit_head``): checkpoints
form a chain (sequence number and predecessor hash, both signed), the token holds the newest,
and a checkpoint is only signed over a database that still holds that checkpoint and its
event with the same hash; otherwise ``AUDIT_HISTORY_REWRITTEN`` (503) and nothing is signed
or appended. Verification compares the database with the token's record too, so a rewrite
or truncation of anything up to the newest checkpoint is found without any CRL copy.
What is left undetectable: a rewrite or truncation of the at most ``checkpoint_every - 1``
events after the newest checkpoint (and after the newest CRL the auditor holds), by someone
who edits the database and the journal; and, in a home from before the token record, the
events only its legacy (unchained) checkpoints vouch for (reported as ``unanchored_through``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import event, func, insert, select
from sqlalchemy.orm import Session

from eseal import clock
from eseal.audit import head as audit_head
from eseal.audit.anchor import AnchorError, CrlAnchor, read_anchor
from eseal.audit.head import HeadRecord, HeadState, HeadStore, row_hash
from eseal.audit.report import AuditFinding, AuditReport
from eseal.store.db import AUDIT_APPEND_LOCK, serialise
from eseal.store.models import AuditCheckpoint, AuditEvent, CrlRecord

GENESIS = "0" * 64
logger = logging.getLogger(__name__)
_EVENTS = AuditEvent.__table__
# Built once: plain Core statements with bound parameters skip the ORM's per-call compile
# and cache-key work, which dominated issuance time when every issuance appends an event.
_HEAD = select(_EVENTS.c.id, _EVENTS.c.hash).order_by(_EVENTS.c.id.desc()).limit(1)
_APPEND = insert(_EVENTS)
CHECKPOINT_LABEL = b"eseal-audit-checkpoint-v1\x00"
CHAINED_LABEL = b"eseal-audit-checkpoint-v2\x00"  # names its sequence number and predecessor


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


def _checkpoint_message(event_id: int, event_hash_: str, at: datetime,
                        seq: int | None = None, prev: str | None = None) -> bytes:
    body: dict[str, Any] = {"event_id": event_id, "event_hash": event_hash_,
                            "at": at.astimezone(UTC).isoformat()}
    if seq is None:  # a legacy checkpoint, signed before checkpoints were chained
        return CHECKPOINT_LABEL + _canonical(body)
    return CHAINED_LABEL + _canonical({**body, "seq": seq, "prev": prev})


def _jsonable(details: dict[str, Any] | None) -> dict[str, Any]:
    """Details as they will come back from the JSON column (so the hash is stable)."""
    return json.loads(_canonical(details or {}))


def chain_head(session: Session) -> tuple[int, str] | None:
    """The newest event's id and hash (what a CRL carries as the audit head)."""
    head = session.execute(_HEAD).first()
    return (int(head[0]), str(head[1])) if head else None


class AuditLog:
    """Appends and verifies. ``signer`` signs checkpoint messages with the CA token's audit key."""

    def __init__(self, *, signer: Callable[[bytes], bytes] | None,
                 public_key: ec.EllipticCurvePublicKey | None, checkpoint_every: int,
                 journal: Path | None, crl_issuers: Iterable[x509.Certificate] = (),
                 head: HeadStore | None = None) -> None:
        self._signer = signer
        self._head = head
        self._public_key = public_key
        self._every = max(1, checkpoint_every)
        self._journal = journal
        self._crl_issuers = list(crl_issuers)

    # -- writing --------------------------------------------------------------------------
    def append(self, session: Session, *, actor: str, action: str, outcome: str = "ok",
               target: str | None = None, details: dict[str, Any] | None = None) -> int:
        """Append one event inside the caller's write transaction; returns its id.

        The caller's transaction must hold the write lock (``Database.write``), so the read
        of the chain head and the insert are one atomic step across processes. On
        PostgreSQL that is an advisory lock (``FOR UPDATE`` on the head row does not
        serialise appenders under READ COMMITTED: the waiter re-reads the old head);
        ``serialise`` takes it here too, for a transaction that was opened otherwise.
        """
        conn = session.connection()
        serialise(conn, AUDIT_APPEND_LOCK)
        head = conn.execute(_HEAD).first()
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
            if self._signer is not None and self._head is not None:
                audit_head.anchor(session, self._head.read())  # nothing new, but still ours?
            return None
        self._write_checkpoint(session, head[0], head[1])
        return int(head[0])

    def _write_checkpoint(self, session: Session, event_id: int, digest: str) -> None:
        """Sign (event id, hash) as the next link of the checkpoint chain, only if the log
        still holds what the token says was signed last (``audit_head``); record it on the
        token as pending now (inside the write lock) and as confirmed once committed."""
        if self._signer is None:
            return
        state = self._head.read() if self._head is not None else None
        base = audit_head.anchor(session, state)
        newest = session.execute(
            select(*audit_head.CHECKPOINT_COLUMNS).order_by(AuditCheckpoint.id.desc())
            .limit(1)).first()
        if self._head is not None and base is None and newest is not None \
                and newest.seq is not None:
            raise audit_head.rewritten(
                "the CA token has no record of the chained checkpoints the database holds",
                "数据库中有链式检查点，但 CA USB-Key 上没有相应记录")
        if base is not None and event_id < base.event_id:
            raise audit_head.rewritten(
                f"the head is event {event_id}, behind event {base.event_id} signed before",
                f"日志末尾为事件 {event_id}，早于此前已签署的事件 {base.event_id}")
        top = session.execute(select(func.max(AuditCheckpoint.seq))).scalar()
        seq = int(top or 0) + 1
        prev = row_hash(newest) if newest is not None else audit_head.GENESIS
        at = clock.now()
        signature = self._signer(_checkpoint_message(event_id, digest, at, seq, prev))
        session.execute(insert(AuditCheckpoint).values(
            event_id=event_id, event_hash=digest, at=at, signature=signature, seq=seq,
            prev_hash=prev))
        record = HeadRecord(seq, event_id, digest, audit_head.checkpoint_hash(
            seq, prev, event_id, digest, at, signature))
        signed: list[tuple[HeadRecord, str]] = session.info.setdefault("audit_signed", [])
        if self._head is not None:
            # pending before the commit; ``confirmed`` only ever names a committed
            # checkpoint (never one signed earlier in this same transaction)
            mine = [r for r, _ in signed]
            confirmed = base if base is not None and base not in mine else (
                state.confirmed if state is not None else None)
            self._head.write(HeadState(confirmed=confirmed, pending=record))
        signed.append((record, json.dumps({
            "event_id": event_id, "event_hash": digest, "at": at.isoformat(),
            "signature": signature.hex(), "seq": seq, "prev": prev})))
        if len(signed) == 1:
            if isinstance(session, Session):
                event.listen(session, "after_commit", self._committed, once=True)
                event.listen(session, "after_rollback",
                             lambda sess: sess.info.pop("audit_signed", None), once=True)
            else:  # the login fast path's plain-Connection transaction (auth.login_sql)
                session.after_commit(self._committed)

    def _committed(self, session: Session) -> None:
        """After the commit: journal the checkpoints (a rolled-back one never reaches the
        journal), then confirm the newest on the token in a write transaction of its own so
        token writers stay serialised. Both are safe to lose: a crash here leaves a journal
        line missing (reported) or a token record one checkpoint behind (tolerated)."""
        signed: list[tuple[HeadRecord, str]] = session.info.pop("audit_signed", [])
        if not signed:
            return
        if self._journal is not None:
            self._journal.parent.mkdir(parents=True, exist_ok=True)
            with self._journal.open("a", encoding="utf-8") as fh:
                fh.write("".join(line + "\n" for _, line in signed))
        if self._head is None:
            return
        last = signed[-1][0]
        try:
            with session.get_bind().connect().execution_options(
                    eseal_immediate=True) as conn, conn.begin():
                serialise(conn, AUDIT_APPEND_LOCK)
                conn.execute(_HEAD)
                now = self._head.read()
                if now is not None and now.pending == last:
                    self._head.write(HeadState(confirmed=last, pending=None))
        except Exception:  # committed already: a lagging record is safe, so log only
            logger.exception("could not confirm the audit checkpoint on the CA token")

    # -- verifying ------------------------------------------------------------------------
    def verify(self, session: Session, *,
               crls: Iterable[tuple[str, bytes]] = ()) -> AuditReport:
        """Recompute the chain, check every checkpoint (database and journal), the audit
        head in the CA's stored CRLs and in ``crls`` (name, DER: copies an auditor obtained
        from relying parties), and how many events at the end nothing signed vouches for."""
        report = AuditReport(allowed_uncovered=self._every - 1)
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
        last_id = report.last_event = expected_id - 1
        checkpoints = list(session.execute(
            select(AuditCheckpoint).order_by(AuditCheckpoint.id)).scalars())
        report.checkpoints = len(checkpoints)
        seen = {(c.event_id, c.event_hash) for c in checkpoints}
        for cp in checkpoints:
            self._check_checkpoint(report, cp.event_id, cp.event_hash, cp.at, cp.signature,
                                   cp.seq, cp.prev_hash, hashes_by_id=hashes_by_id,
                                   last_id=last_id)
        self._check_chain(report, checkpoints)
        journal = self._journal_entries()
        in_journal = {(e[0], e[1]) for e in journal}
        for entry in journal:
            if (entry[0], entry[1]) not in seen:
                self._check_checkpoint(report, *entry, hashes_by_id=hashes_by_id,
                                       last_id=last_id)
        if self._journal is not None:
            # both are written by the same call: a checkpoint only the database has means
            # the journal was cut or replaced
            for cp in checkpoints:
                if (cp.event_id, cp.event_hash) not in in_journal:
                    report.findings.append(AuditFinding(
                        cp.event_id, "journal_missing", str(self._journal.name)))
        self._check_anchors(report, session, crls, hashes_by_id, last_id)
        self._check_coverage(report, last_id)
        self._check_token_head(report, session, checkpoints)
        report.findings.sort(key=lambda f: (f.event_id is None, f.event_id or 0))
        return report

    def _check_checkpoint(self, report: AuditReport, event_id: int, digest: str, at: datetime,
                          signature: bytes, seq: int | None = None, prev: str | None = None,
                          *, hashes_by_id: dict[int, str], last_id: int) -> None:
        if self._public_key is not None:
            try:
                self._public_key.verify(signature,
                                        _checkpoint_message(event_id, digest, at, seq, prev),
                                        ec.ECDSA(hashes.SHA256()))
            except InvalidSignature:
                report.findings.append(AuditFinding(event_id, "bad_checkpoint"))
                return
        self._check_signed_head(report, event_id, digest, hashes_by_id, last_id,
                                f"checkpoint at event {event_id}")

    def _check_chain(self, report: AuditReport, checkpoints: list[AuditCheckpoint]) -> None:
        """Chained checkpoints name their predecessor and sequence number (both signed), so a
        deleted, inserted or moved one shows whatever the cadence says (``audit_head``)."""
        legacy, breaks = audit_head.chain_breaks(checkpoints)
        report.unanchored_through = max(report.unanchored_through, legacy)
        report.findings.extend(AuditFinding(event_id, "checkpoint_chain", detail)
                               for event_id, detail in breaks)

    def _check_token_head(self, report: AuditReport, session: Session,
                          checkpoints: list[AuditCheckpoint]) -> None:
        """The database must still hold the newest checkpoint the CA token recorded, and
        its event with that hash: no CRL copy is needed to see a truncation or rewrite."""
        if self._head is None:
            return
        state = self._head.read()
        record = None
        if state is not None:
            record = state.pending if state.pending is not None and audit_head.held(
                session, state.pending) is None else state.confirmed
        report.token_head = record
        if record is None:
            if any(cp.seq is not None for cp in checkpoints):
                report.findings.append(AuditFinding(
                    None, "head_rewritten", "the CA token has no record of the chained "
                    "checkpoints the database holds"))
            else:  # a home from before the token record: nothing anchors its checkpoints
                report.unanchored_through = report.last_event
            return
        reason = audit_head.held(session, record)
        if reason is not None:
            report.findings.append(AuditFinding(
                min(record.event_id, report.last_event + 1), "head_rewritten",
                f"the CA token recorded checkpoint #{record.seq} at event "
                f"{record.event_id}: {reason}"))

    def _check_signed_head(self, report: AuditReport, event_id: int, digest: str,
                           hashes_by_id: dict[int, str], last_id: int, source: str) -> None:
        """A validly signed (event id, hash): the log must still hold exactly that."""
        if event_id > last_id:
            report.findings.append(AuditFinding(last_id + 1, "truncated",
                                                f"{source} vouches for event {event_id}"))
        elif hashes_by_id.get(event_id) == digest:
            report.covered_through = max(report.covered_through, event_id)
            if source.startswith("checkpoint"):
                report.checkpointed.add(event_id)
        elif event_id in hashes_by_id and not any(
                f.event_id is not None and f.event_id <= event_id for f in report.findings):
            report.findings.append(AuditFinding(event_id, "changed", f"differs from {source}"))

    def _check_anchors(self, report: AuditReport, session: Session,
                       crls: Iterable[tuple[str, bytes]], hashes_by_id: dict[int, str],
                       last_id: int) -> None:
        """The audit head in the CA's stored CRLs and in the copies an auditor brought."""
        stored = [(f"stored CRL {role}", bytes(der)) for role, der in session.execute(
            select(CrlRecord.issuer_role, CrlRecord.der).order_by(CrlRecord.id)).all()]
        for name, der in [*stored, *crls]:
            try:
                anchor: CrlAnchor | None = read_anchor(der, self._crl_issuers, name=name)
            except AnchorError as exc:
                report.findings.append(AuditFinding(None, "bad_anchor", str(exc)))
                continue
            if anchor is None:
                continue
            report.anchors += 1
            self._check_signed_head(report, anchor.event_id, anchor.event_hash, hashes_by_id,
                                    last_id, anchor.source)

    def _check_coverage(self, report: AuditReport, last_id: int) -> None:
        """Events nothing signed vouches for, against the cadence: at the end, and between
        checkpoints. The service signs every ``checkpoint_every``-th event, so consecutive
        valid checkpoints are never further apart than that; a wider gap means the ones in
        between were deleted and a later checkpoint (a restart, any CLI command) signed a
        rewritten chain. (Lowering ``checkpoint_every`` makes older, sparser stretches show
        as gaps too; the finding names the range so an auditor can tell.)"""
        if self._signer is None and self._public_key is None:
            return
        previous = 0
        for event_id in sorted(report.checkpointed):
            if event_id - previous > self._every:
                report.findings.append(AuditFinding(
                    previous + 1, "checkpoint_gap",
                    f"events {previous + 1}-{event_id - 1} lack the checkpoint the cadence "
                    f"of {self._every} requires"))
            previous = event_id
        if last_id > 0 and report.covered_through == 0:
            report.findings.append(AuditFinding(
                1, "no_checkpoint", f"{last_id} events, none covered"))
        elif report.uncovered > report.allowed_uncovered:
            report.findings.append(AuditFinding(
                report.covered_through + 1, "uncovered",
                f"{report.uncovered} events after event {report.covered_through}, "
                f"the cadence allows {report.allowed_uncovered}"))

    def _journal_entries(self) -> list[tuple[int, str, datetime, bytes, int | None, str | None]]:
        if self._journal is None or not self._journal.exists():
            return []
        entries = []
        for line in self._journal.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
                seq = raw.get("seq")
                entries.append((int(raw["event_id"]), str(raw["event_hash"]),
                                datetime.fromisoformat(raw["at"]), bytes.fromhex(raw["signature"]),
                                int(seq) if seq is not None else None,
                                str(raw["prev"]) if seq is not None else None))
            except (ValueError, KeyError, TypeError):
                continue
        return entries
