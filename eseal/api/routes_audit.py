"""The audit log over HTTP, for auditors (and officers): read the events, verify the chain.

Auditors change nothing: every route here is a read. The event search's filters
(enterprise, actor, action or prefix, time) live in :mod:`eseal.ra.audit_search`.
Verification recomputes the hash chain, checks the checkpoints signed by the CA token's
audit key and the audit head carried by the CA's stored CRLs, and reports how many events at
the end no signature covers against the checkpoint cadence (``eseal.audit.log``), and that
the database still holds the newest checkpoint the CA token recorded (``eseal.audit.head``).
CRL copies held by relying parties are checked with ``eseal audit verify --crl``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from eseal.api.deps import MAX_ROW_ID, Principal, get_authority, require_roles
from eseal.ca.authority import Authority
from eseal.ra.audit_search import audit_query, search_events

router = APIRouter(prefix="/audit", tags=["audit"])
Reader = Annotated[Principal, Depends(require_roles("auditor", "officer"))]
Auth = Annotated[Authority, Depends(get_authority)]


@router.get("/events", summary="Audit events: oldest first after after_id, or newest first "
            "below before_id; by enterprise, actor, action (or prefix such as cert.), time")
def events(principal: Reader, auth: Auth,
           after_id: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
           before_id: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           action: Annotated[str | None, Query(max_length=65,
                                               description="exact, or a prefix ending "
                                                           "in '.' (cert.)")] = None,
           enterprise: Annotated[str | None, Query(max_length=64,
                                                   description="credit code (USCC)")] = None,
           actor: Annotated[str | None, Query(max_length=200,
                                              description="substring of the actor")] = None,
           outcome: Annotated[str | None, Query(max_length=16)] = None,
           since: Annotated[str | None, Query(alias="from", max_length=64,
                                              description="ISO 8601 time or date")] = None,
           until: Annotated[str | None, Query(alias="to", max_length=64)] = None,
           ) -> list[dict[str, Any]]:
    q = audit_query(enterprise=enterprise, actor=actor, action=action, outcome=outcome,
                    since=since, until=until, after_id=after_id, before_id=before_id,
                    limit=limit)
    return search_events(auth, q)


@router.get("/verify", summary="Verify the chain, the signed checkpoints, CRL anchors and coverage")
def verify(principal: Reader, auth: Auth) -> dict[str, Any]:
    with auth.db.read() as s:
        return auth.audit.verify(s).to_dict()
