"""The audit log over HTTP, for auditors (and officers): read the events, verify the chain.

Auditors change nothing: every route here is a read. Verification recomputes the hash chain,
checks the checkpoints signed by the CA token's audit key and the audit head carried by the
CA's stored CRLs, and reports how many events at the end no signature covers against the
checkpoint cadence (``eseal.audit.log``), and that the database still holds the newest
checkpoint the CA token recorded (``eseal.audit.head``). CRL copies held by relying parties
are checked with ``eseal audit verify --crl``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from sqlalchemy import select

from eseal.api.deps import MAX_ROW_ID, Principal, get_authority, require_roles
from eseal.ca.authority import Authority
from eseal.store.models import AuditEvent

router = APIRouter(prefix="/audit", tags=["audit"])
Reader = Annotated[Principal, Depends(require_roles("auditor", "officer"))]
Auth = Annotated[Authority, Depends(get_authority)]


@router.get("/events", summary="Audit events in order (page with after_id)")
def events(principal: Reader, auth: Auth,
           after_id: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           action: Annotated[str | None, Query(max_length=64)] = None,
           ) -> list[dict[str, Any]]:
    q = select(AuditEvent).where(AuditEvent.id > after_id).order_by(AuditEvent.id).limit(limit)
    if action is not None:
        q = q.where(AuditEvent.action == action)
    with auth.db.read() as s:
        rows = list(s.execute(q).scalars())
    return [{"id": r.id, "at": r.at.isoformat(), "actor": r.actor, "action": r.action,
             "outcome": r.outcome, "target": r.target, "details": r.details,
             "prev_hash": r.prev_hash, "hash": r.hash} for r in rows]


@router.get("/verify", summary="Verify the chain, the signed checkpoints, CRL anchors and coverage")
def verify(principal: Reader, auth: Auth) -> dict[str, Any]:
    with auth.db.read() as s:
        return auth.audit.verify(s).to_dict()
