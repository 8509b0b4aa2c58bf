"""The audit log's last signed checkpoint, kept on the CA token: what the signer signed before.

Checkpoints alone cannot stop a patient attacker who holds the database and the journal:
they delete the checkpoints after a row, rewrite the rows, and let the service itself sign
the rewritten chain at its own cadence (issue 13 item 8). The signer must remember what it
signed, somewhere the attacker cannot write. So the CA token holds a private data object
(``audit-head``) naming the newest checkpoint: its sequence number, the event id and hash it
signs, and the checkpoint's own hash. Checkpoints form a chain (each names its sequence
number and its predecessor's hash), and before signing a new one the signer checks that the
database still holds the recorded checkpoint and the recorded event with its hash; if not,
the history was rewritten or truncated and it refuses (``AUDIT_HISTORY_REWRITTEN``, 503).

Ordering against rollbacks: the record is written inside the database's write lock *before*
the commit, as ``pending`` next to the last ``confirmed`` one, and promoted to ``confirmed``
right after the commit. A pending checkpoint the database lacks is what a rolled-back
transaction leaves, so it is ignored (the confirmed one must hold); a confirmed one is only
ever a checkpoint that was committed, so its absence is evidence. Two processes racing the
promotion can only make the record lag one checkpoint behind the database, never run ahead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from eseal.errors import EsealError
from eseal.store.models import AuditCheckpoint, AuditEvent
from eseal.token.data_objects import read_data, write_data
from eseal.token.session import TokenSession

HEAD_LABEL = "audit-head"
GENESIS = "0" * 64
log = logging.getLogger(__name__)


class AuditHistoryRewritten(EsealError):
    """The log no longer extends what the audit key signed: refuse to sign it (a 503: the
    CA's own state is compromised, not the caller's input)."""

    status = 503


@dataclass(frozen=True)
class HeadRecord:
    """One signed checkpoint as the token remembers it."""

    seq: int
    event_id: int
    event_hash: str
    checkpoint_hash: str


@dataclass(frozen=True)
class HeadState:
    confirmed: HeadRecord | None = None
    pending: HeadRecord | None = None

    def encode(self) -> bytes:
        return json.dumps({"v": 1, "confirmed": asdict(self.confirmed) if self.confirmed else None,
                           "pending": asdict(self.pending) if self.pending else None},
                          sort_keys=True).encode()

    @classmethod
    def decode(cls, raw: bytes) -> HeadState:
        data = json.loads(raw)
        return cls(*(HeadRecord(**data[k]) if data.get(k) else None
                     for k in ("confirmed", "pending")))


class HeadStore(Protocol):
    def read(self) -> HeadState | None: ...
    def write(self, state: HeadState) -> None: ...


class TokenHeadStore:
    """The head record in a data object on the CA token (``ts``: read-write, logged in)."""

    def __init__(self, ts: TokenSession, label: str = HEAD_LABEL) -> None:
        self._ts, self._label = ts, label

    def read(self) -> HeadState | None:
        raw = read_data(self._ts, self._label)
        if raw is None:
            return None
        try:
            return HeadState.decode(raw)
        except (ValueError, TypeError, KeyError) as exc:
            raise rewritten(f"the token's {self._label!r} record is unreadable",
                            f"USB-Key 上的 {self._label!r} 记录无法解析") from exc

    def write(self, state: HeadState) -> None:
        write_data(self._ts, self._label, state.encode())


def rewritten(en: str, zh: str) -> AuditHistoryRewritten:
    return AuditHistoryRewritten(
        "AUDIT_HISTORY_REWRITTEN",
        f"the audit log does not extend what the audit key signed before ({en}); refusing to "
        f"sign it: run `eseal audit verify`",
        f"审计日志与审计密钥此前签署的内容不一致（{zh}），拒绝签署：请运行 `eseal audit verify`",
        field="audit_log")


def checkpoint_hash(seq: int | None, prev_hash: str | None, event_id: int, event_hash: str,
                    at: datetime, signature: bytes) -> str:
    """What the next checkpoint names as its predecessor (covers the signature too)."""
    body = {"seq": seq, "prev": prev_hash, "event_id": event_id, "event_hash": event_hash,
            "at": at.astimezone(UTC).isoformat(), "signature": signature.hex()}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"))
                          .encode()).hexdigest()


#: The columns a checkpoint's hash covers, selected as columns rather than as the ORM entity
#: so the same query works in a Session and in the login fast path's plain Connection.
CHECKPOINT_COLUMNS = (AuditCheckpoint.seq, AuditCheckpoint.prev_hash, AuditCheckpoint.event_id,
                      AuditCheckpoint.event_hash, AuditCheckpoint.at, AuditCheckpoint.signature)


def row_hash(cp: Any) -> str:
    """The hash of a checkpoint row (an ``AuditCheckpoint`` or a row of
    :data:`CHECKPOINT_COLUMNS`)."""
    return checkpoint_hash(cp.seq, cp.prev_hash, cp.event_id, cp.event_hash, cp.at,
                           cp.signature)


def held(session: Session, record: HeadRecord) -> str | None:
    """Why the database no longer holds ``record`` (None when it does)."""
    cp = session.execute(select(*CHECKPOINT_COLUMNS).where(AuditCheckpoint.seq == record.seq)
                         .order_by(AuditCheckpoint.id).limit(1)).first()
    if cp is None or row_hash(cp) != record.checkpoint_hash:
        return f"checkpoint #{record.seq} at event {record.event_id} is missing or changed"
    digest = session.execute(select(AuditEvent.hash).where(
        AuditEvent.id == record.event_id)).scalar()
    if digest != record.event_hash:
        return f"event {record.event_id} is missing or changed"
    return None


def anchor(session: Session, state: HeadState | None) -> HeadRecord | None:
    """The record the database must still hold before anything more is signed: the pending
    one if it was committed, else the confirmed one. Raises if the database lost it."""
    if state is None:
        return None
    if state.pending is not None and held(session, state.pending) is None:
        return state.pending
    if state.confirmed is not None:
        reason = held(session, state.confirmed)
        if reason is not None:
            log.error("audit checkpoint refused: %s", reason)
            raise rewritten(reason, f"检查点 #{state.confirmed.seq}（事件 "
                                    f"{state.confirmed.event_id}）缺失或被改动")
    return state.confirmed


def chain_breaks(checkpoints: list[AuditCheckpoint]) -> tuple[int, list[tuple[int, str]]]:
    """Walk the checkpoints in order: the last event only legacy (unchained, pre-token)
    checkpoints vouch for, and each chained one that does not follow its predecessor."""
    legacy, breaks = 0, []
    before: AuditCheckpoint | None = None
    for cp in checkpoints:
        if cp.seq is None:
            legacy = max(legacy, cp.event_id)
        else:
            expected_seq = (before.seq or 0) + 1 if before is not None else 1
            expected_prev = row_hash(before) if before is not None else GENESIS
            if (cp.seq, cp.prev_hash) != (expected_seq, expected_prev):
                breaks.append((cp.event_id, f"checkpoint #{cp.seq} does not follow the one "
                                            f"before it (expected #{expected_seq})"))
        before = cp
    return legacy, breaks
