"""Remote unblock (远程解锁) over HTTP; the steps and their rules are in
:mod:`eseal.ra.remote_unblock`.

* ``POST /unblock-requests`` ``{label}`` — no session (the key is locked, it cannot log in);
* ``GET /enterprises/{uscc}/unblock-requests`` — the legal representative (or an officer)
  sees what waits for approval;
* ``POST /unblock-requests/{id}/approve`` — the legal representative's session (an agent's
  key) or an officer's (the legal representative's key); answers the one-time authorisation;
* ``POST /unblock-requests/{id}/redeem`` and ``/complete`` ``{authorisation}`` — no session:
  the authorisation is the credential, spent by ``redeem``.

No route takes or returns a user PIN: the holder's new PIN is set on the token by the
holder's own machine (:mod:`eseal.holder.unblock`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from eseal.api.deps import Principal, RowId, check_enterprise, get_authority, require_roles
from eseal.ca.authority import Authority

router = APIRouter(tags=["remote unblock"])

Auth = Annotated[Authority, Depends(get_authority)]
Approver = Annotated[Principal, Depends(require_roles("legal_rep", "officer"))]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestIn(Strict):
    label: str = Field(max_length=64, description="the locked USB-Key's label")


class AuthorisationIn(Strict):
    authorisation: str = Field(max_length=128, description="the one-time authorisation")


@router.post("/unblock-requests", status_code=201,
             summary="Ask for a remote unblock of a locked USB-Key (no session)")
def request(body: RequestIn, auth: Auth) -> dict[str, Any]:
    from eseal.ra.remote_unblock import request_unblock

    return request_unblock(auth, body.label, actor=f"holder:{body.label}")


@router.get("/enterprises/{uscc}/unblock-requests", summary="Unblock requests awaiting approval")
def pending(uscc: str, principal: Approver, auth: Auth) -> list[dict[str, Any]]:
    from eseal.ra.remote_unblock import pending_requests

    check_enterprise(principal, uscc)
    return pending_requests(auth, enterprise_id=auth.enterprise(uscc).id)


@router.post("/unblock-requests/{request_id}/approve",
             summary="Approve: answers the one-time authorisation (shown once)")
def approve(request_id: RowId, principal: Approver, auth: Auth) -> dict[str, Any]:
    from eseal.ra.remote_unblock import approve_unblock

    return approve_unblock(auth, request_id, actor=principal.actor, role=principal.role,
                           enterprise_id=principal.enterprise_id)


@router.post("/unblock-requests/{request_id}/redeem",
             summary="Spend the authorisation: the SO PIN to unblock with and the next one")
def redeem(request_id: RowId, body: AuthorisationIn, auth: Auth) -> dict[str, str]:
    from eseal.ra.remote_unblock import redeem_unblock

    return redeem_unblock(auth, request_id, body.authorisation,
                          actor=f"holder:unblock:{request_id}")


@router.post("/unblock-requests/{request_id}/complete",
             summary="The token has its new PIN and SO PIN: keep the new SO PIN")
def complete(request_id: RowId, body: AuthorisationIn, auth: Auth) -> dict[str, Any]:
    from eseal.ra.remote_unblock import complete_unblock

    return complete_unblock(auth, request_id, body.authorisation,
                            actor=f"holder:unblock:{request_id}")
