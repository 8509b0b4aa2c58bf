"""The officer API: everything the officer console (CLI) does, over HTTP, for officers only.

Enterprises (vetting, registration, deregistration), enrollment codes (any role, CA staff
too), issuance from a CSR, renewal one by one or in batches, freeze, unfreeze, revocation
(one certificate or all of an enterprise's), account unlock, PIN unblock with the SO PIN the
CA keeps, the login history of everyone. The rules live in ``eseal.ra`` (``renewal``,
``revocation``, ``enrollment_codes``), ``eseal.auth`` and ``eseal.ca.authority``; each
change is audited there, naming the officer's account (``Principal.actor``), and every read
through this API is audited here. Freezing or revoking a certificate also ends the sessions
opened with it (``eseal.ra.revocation`` does, in the same transaction).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from eseal.api.deps import (
    Principal,
    RowId,
    RowIdQuery,
    get_authority,
    require_roles,
    require_step_up,
)
from eseal.api.routes_enterprise import certificate_dict, enterprise_dict
from eseal.ca.authority import Authority
from eseal.errors import EsealError, InvalidInput
from eseal.ra.enterprises import deregister_enterprise, register_enterprise


def _audited_read(request: Request,
                  principal: Annotated[Principal, Depends(require_roles("officer"))],
                  auth: Annotated[Authority, Depends(get_authority)]) -> Principal:
    """Officers only; reads are audited too (changes are audited where they happen)."""
    if request.method == "GET":
        with auth.db.write() as s:
            auth.audit.append(s, actor=principal.actor, action="officer.read",
                              target=request.url.path,
                              details={"query": str(request.url.query)[:300]})
    return principal


Officer = Annotated[Principal, Depends(_audited_read)]


def _stepped_up(request: Request, principal: Officer,
                auth: Annotated[Authority, Depends(get_authority)]) -> Principal:
    """An officer whose USB-Key proved itself in the last five minutes, for the gravest
    actions (revoke, batch renew, unlock, unblock); a refusal is audited."""
    try:
        require_step_up(principal)
    except EsealError as err:
        auth.record_refusal(actor=principal.actor, action="officer.step_up",
                            target=request.url.path, error=err)
        raise
    return principal


SteppedUp = Annotated[Principal, Depends(_stepped_up)]
Auth = Annotated[Authority, Depends(get_authority)]
router = APIRouter(prefix="/officer", tags=["officer"])


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- enterprises -------------------------------------------------------------------------------
class EnterpriseIn(Strict):
    uscc: str = Field(max_length=64, description="18-character unified social credit code")
    name: str = Field(max_length=300, description="registered name, exactly as on the licence")
    legal_rep: str = Field(max_length=300, description="legal representative (法定代表人)")
    contact_email: str | None = Field(default=None, max_length=320)


@router.get("/enterprises", summary="All enterprises")
def enterprises(principal: Officer, auth: Auth) -> list[dict[str, Any]]:
    return [enterprise_dict(e) for e in auth.enterprises()]


@router.post("/enterprises", summary="Register an enterprise after vetting its licence")
def register(body: EnterpriseIn, principal: Officer, auth: Auth) -> dict[str, Any]:
    ent = register_enterprise(auth, uscc=body.uscc, name=body.name, legal_rep=body.legal_rep,
                              contact_email=body.contact_email, actor=principal.actor)
    return enterprise_dict(ent)


@router.get("/enterprises/{uscc}", summary="One enterprise")
def enterprise(uscc: str, principal: Officer, auth: Auth) -> dict[str, Any]:
    return enterprise_dict(auth.enterprise(uscc))


@router.post("/enterprises/{uscc}/deregister",
             summary="Mark an enterprise deregistered: nothing new is issued to it")
def deregister(uscc: str, principal: Officer, auth: Auth) -> dict[str, Any]:
    deregister_enterprise(auth, uscc, actor=principal.actor)
    return enterprise_dict(auth.enterprise(uscc))


class ReasonIn(Strict):
    reason: str = Field(max_length=64, description="RFC 5280 reason name, e.g. keyCompromise")


@router.post("/enterprises/{uscc}/revoke-all",
             summary="Revoke every certificate of an enterprise not revoked yet")
def revoke_all(uscc: str, body: ReasonIn, principal: SteppedUp, auth: Auth) -> dict[str, Any]:
    from eseal.ra import revocation

    changed = revocation.revoke_all(auth, uscc, reason=body.reason, actor=principal.actor)
    return {"enterprise": uscc, "reason": body.reason, "revoked": [c.serial for c in changed]}


# --- enrollment codes -------------------------------------------------------------------------
class OfficerCodeIn(Strict):
    role: str = Field(max_length=32, description="agent, legal_rep, officer or auditor")
    holder: str = Field(max_length=300)
    uscc: str | None = Field(default=None, max_length=64,
                             description="the enterprise (not for officer/auditor codes)")


@router.post("/enrollment-codes", summary="A single-use enrollment code for any role")
def enrollment_code(body: OfficerCodeIn, principal: Officer, auth: Auth) -> dict[str, Any]:
    from eseal.ra.enrollment_codes import create_enrollment_code

    return create_enrollment_code(auth, role=body.role, holder=body.holder, uscc=body.uscc,
                                  actor=principal.actor).to_dict()


# --- certificates -----------------------------------------------------------------------------
class IssueIn(Strict):
    csr: str = Field(max_length=16384, description="PEM certificate signing request")
    uscc: str = Field(max_length=64)
    profile: str = Field(max_length=16, description="login or seal")
    holder: str = Field(max_length=300)


@router.post("/certificates", summary="Issue a certificate from a CSR")
def issue(body: IssueIn, principal: Officer, auth: Auth) -> dict[str, Any]:
    issued = auth.issue(body.csr.encode("utf-8"), uscc=body.uscc, profile=body.profile,
                        holder=body.holder, actor=principal.actor)
    return {"serial": issued.serial, "pem": issued.pem.decode("ascii")}


@router.get("/certificates", summary="Certificates (all, or one enterprise's)")
def certificates(principal: Officer, auth: Auth,
                 uscc: Annotated[str | None, Query(max_length=64)] = None,
                 ) -> list[dict[str, Any]]:
    return [certificate_dict(row, code) for row, code in auth.list_certificates(uscc=uscc)]


@router.get("/certificates/{serial}", summary="One certificate")
def certificate(serial: str, principal: Officer, auth: Auth) -> dict[str, Any]:
    from eseal.store.models import Enterprise

    row = auth.certificate_row(serial)
    uscc = None
    if row.enterprise_id is not None:
        with auth.db.read() as s:
            ent = s.get(Enterprise, row.enterprise_id)
            uscc = ent.uscc if ent else None
    return certificate_dict(row, uscc)


@router.post("/certificates/{serial}/renew", summary="Renew one certificate (same key)")
def renew(serial: str, principal: Officer, auth: Auth) -> dict[str, Any]:
    from eseal.ra import renewal

    outcome = renewal.renew_one(auth, serial, actor=principal.actor)
    if isinstance(outcome, renewal.Skipped):
        return {"skipped": outcome.to_dict()}
    return {"renewed": outcome.to_dict()}


class BatchIn(Strict):
    serials: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list,
                                                                max_length=10000)
    expiring_within_days: int | None = Field(default=None, ge=0, le=3650)


@router.post("/renewals", summary="Renew a batch (serials and/or everything expiring soon)")
def renew_batch(body: BatchIn, principal: SteppedUp, auth: Auth) -> dict[str, Any]:
    from eseal.ra import renewal

    todo = renewal.batch_serials(auth, body.serials, body.expiring_within_days)
    return renewal.renew_many(auth, todo, actor=principal.actor).to_dict()


@router.post("/certificates/{serial}/freeze",
             summary="Freeze (certificateHold): fails at once, ends its sessions")
def freeze(serial: str, principal: Officer, auth: Auth) -> dict[str, Any]:
    from eseal.ra import revocation

    return revocation.freeze(auth, serial, actor=principal.actor).to_dict()


@router.post("/certificates/{serial}/unfreeze", summary="Lift a freeze")
def unfreeze(serial: str, principal: Officer, auth: Auth) -> dict[str, Any]:
    from eseal.ra import revocation

    return revocation.unfreeze(auth, serial, actor=principal.actor).to_dict()


class RevokeIn(Strict):
    reason: str = Field(max_length=64, description="RFC 5280 reason name")
    invalidity_date: datetime | None = Field(
        default=None, description="when the key was known or suspected compromised")


@router.post("/certificates/{serial}/revoke",
             summary="Revoke: effective at once, CRLs re-issued, its sessions end")
def revoke(serial: str, body: RevokeIn, principal: SteppedUp, auth: Auth) -> dict[str, Any]:
    from eseal.ra import revocation

    when = body.invalidity_date
    if when is not None and when.tzinfo is None:
        raise InvalidInput("INVALIDITY_DATE_INVALID",
                           "the invalidity date must be a time with a time zone",
                           "失效日期必须是带时区的时间", field="invalidity_date")
    change = revocation.revoke(auth, serial, reason=body.reason, actor=principal.actor,
                               invalidity_date=when)
    return change.to_dict()


# --- accounts and logins ----------------------------------------------------------------------
@router.get("/accounts", summary="Every account (enterprise staff, officers, auditors)")
def accounts(principal: Officer, auth: Auth) -> list[dict[str, Any]]:
    from eseal.auth.accounts import list_accounts

    return [a.to_dict() for a in list_accounts(auth, all_accounts=True)]


@router.post("/accounts/{account_id}/unlock", summary="Lift a lockout")
def unlock(account_id: RowId, principal: SteppedUp,
           auth: Auth) -> dict[str, Any]:
    from eseal.auth.lockout import unlock_account

    return unlock_account(auth, account_id, actor=principal.actor).to_dict()


@router.get("/logins", summary="Login history of everyone")
def logins(principal: Officer, auth: Auth,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           before_id: RowIdQuery = None,
           account_id: RowIdQuery = None,
           ) -> list[dict[str, Any]]:
    from eseal.auth.accounts import login_history

    return login_history(auth, all_enterprises=True, account_id=account_id, limit=limit,
                         before_id=before_id)


# --- tokens -----------------------------------------------------------------------------------
class UnblockIn(Strict):
    new_pin: str = Field(max_length=64, description="the holder's new PIN (never logged)")


@router.post("/tokens/{label}/unblock",
             summary="Unblock a locked USB-Key with the SO PIN the CA keeps; set a new PIN")
def unblock(label: str, body: UnblockIn, principal: SteppedUp, auth: Auth) -> dict[str, Any]:
    from eseal.errors import EsealError
    from eseal.ra.enrollment import pin_policy
    from eseal.ra.so_pins import kept_so_pin
    from eseal.token.pin import check_pin
    from eseal.token.usbkey import check_label, enterprise_codes
    from eseal.token.usbkey import unblock as unblock_token

    details = {"so_pin": "kept"}

    def validate() -> list[str]:
        check_label(label)
        forbidden = enterprise_codes(label)  # TOKEN_NOT_FOUND first
        check_pin(body.new_pin, field="new_pin", forbidden=[label, *forbidden])
        return forbidden

    forbidden = auth.refusing(validate, actor=principal.actor, action="token.unblock",
                              target=label, details=details)
    so_pin = kept_so_pin(auth, label, actor=principal.actor, purpose="unblock")
    policy = pin_policy(auth)
    try:
        unblock_token(label, so_pin, body.new_pin, policy=policy, forbidden=forbidden)
    except EsealError as err:
        auth.record_refusal(actor=principal.actor, action="token.unblock", target=label,
                            error=err, details=details)
        raise
    with auth.change(actor=principal.actor, action="token.unblock", target=label,
                     details=details):
        pass
    return {"label": label, "unblocked": True}
