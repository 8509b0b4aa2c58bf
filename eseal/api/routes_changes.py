"""When the enterprise changes: rename, new legal representative, staff who leave, rights per
filing type, emergency contacts (journey 6 of DESIGN.md). The decisions are the RA's
(``eseal.ra.rename``, ``legal_rep``, ``departures``, ``rights``, ``contacts``); these routes
only say who may ask:

* officers: ``POST /officer/enterprises/{uscc}/rename``, ``POST
  /officer/enterprises/{uscc}/legal-rep``, ``POST /officer/accounts/{id}/disable``;
* the enterprise's legal representative (or an officer): rights of its agents (``GET``/``PUT
  /enterprises/{uscc}/accounts/{id}/rights``), disabling an agent who left (``POST
  /enterprises/{uscc}/accounts/{id}/disable``), the emergency contacts (``GET``/``PUT
  /enterprises/{uscc}/contacts``);
* any logged-in account: ``GET /filing-types``, and its enterprise's name and legal
  representative history (``GET /enterprises/{uscc}/history``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from eseal.api.deps import (
    Principal,
    RowId,
    check_enterprise,
    current_principal,
    get_authority,
    require_roles,
)
from eseal.ca.authority import Authority
from eseal.errors import NotFound

router = APIRouter(tags=["enterprise changes"])

Auth = Annotated[Authority, Depends(get_authority)]
Officer = Annotated[Principal, Depends(require_roles("officer"))]
RepOrOfficer = Annotated[Principal, Depends(require_roles("legal_rep", "officer"))]
Staff = Annotated[Principal, Depends(require_roles("agent", "legal_rep", "officer"))]
Anyone = Annotated[Principal, Depends(current_principal)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RenameIn(Strict):
    name: str = Field(max_length=300, description="the new registered name, exactly, in NFC")


class LegalRepIn(Strict):
    legal_rep: str = Field(max_length=300, description="the new legal representative")


class RightsIn(Strict):
    types: list[Annotated[str, Field(max_length=64)]] = Field(
        max_length=50, description="filing type codes the agent may submit (GET /filing-types)")


class ContactIn(Strict):
    name: str = Field(max_length=300)
    role: str = Field(max_length=300)
    phone: str = Field(max_length=32, description="mainland mobile number, 11 digits")
    email: str = Field(max_length=320)


class ContactsIn(Strict):
    contacts: list[ContactIn] = Field(max_length=20)


def _own(principal: Principal, auth: Authority, uscc: str) -> Any:
    check_enterprise(principal, uscc)
    return auth.enterprise(uscc)


def _own_account(principal: Principal, auth: Authority, uscc: str, account_id: int) -> Any:
    from eseal.auth.accounts import get_account

    ent = _own(principal, auth, uscc)
    account = get_account(auth, account_id)
    if account.enterprise_id != ent.id:
        raise NotFound("ACCOUNT_NOT_FOUND", f"no account {account_id} in {uscc}",
                       f"企业 {uscc} 中找不到账户 {account_id}", field="account_id")
    return ent


@router.post("/officer/enterprises/{uscc}/rename",
             summary="Rename: new certificates for the same keys, then the old superseded")
def rename(uscc: str, body: RenameIn, principal: Officer, auth: Auth) -> dict[str, Any]:
    from eseal.ra.rename import rename_enterprise

    return rename_enterprise(auth, uscc, body.name, actor=principal.actor).to_dict()


@router.post("/officer/enterprises/{uscc}/legal-rep",
             summary="A new legal representative: the old one's keys revoked, a code for the new")
def legal_rep(uscc: str, body: LegalRepIn, principal: Officer, auth: Auth) -> dict[str, Any]:
    from eseal.ra.legal_rep import change_legal_rep

    return change_legal_rep(auth, uscc, body.legal_rep, actor=principal.actor)


@router.post("/officer/accounts/{account_id}/disable",
             summary="Someone left: certificates revoked, sessions ended, account kept")
def officer_disable(account_id: RowId, principal: Officer, auth: Auth) -> dict[str, Any]:
    from eseal.ra.departures import disable_account

    return disable_account(auth, account_id, actor=principal.actor,
                           by_account_id=principal.account_id)


@router.post("/enterprises/{uscc}/accounts/{account_id}/disable",
             summary="An agent left (legal representative or officer)")
def disable(uscc: str, account_id: RowId, principal: RepOrOfficer,
            auth: Auth) -> dict[str, Any]:
    from eseal.ra.departures import disable_account

    ent = _own_account(principal, auth, uscc, account_id)
    return disable_account(auth, account_id, actor=principal.actor, by_role=principal.role,
                           by_enterprise_id=ent.id, by_account_id=principal.account_id)


@router.get("/filing-types", summary="The kinds of business filed (年度报告, 变更登记, ...)")
def filing_types(principal: Anyone, auth: Auth) -> list[dict[str, str]]:
    from eseal.ra.rights import filing_types as types

    return types(auth)


@router.get("/enterprises/{uscc}/accounts/{account_id}/rights",
            summary="The filing types an account may submit")
def get_rights(uscc: str, account_id: RowId, principal: Staff, auth: Auth) -> dict[str, Any]:
    from eseal.ra.rights import rights_of

    _own_account(principal, auth, uscc, account_id)
    return rights_of(auth, account_id)


@router.put("/enterprises/{uscc}/accounts/{account_id}/rights",
            summary="Grant an agent exactly these filing types (legal representative)")
def put_rights(uscc: str, account_id: RowId, body: RightsIn, principal: RepOrOfficer,
               auth: Auth) -> dict[str, Any]:
    from eseal.ra.rights import set_rights

    ent = _own_account(principal, auth, uscc, account_id)
    return set_rights(auth, account_id, list(body.types), actor=principal.actor,
                      by_role=principal.role, by_enterprise_id=ent.id)


@router.get("/enterprises/{uscc}/contacts", summary="The emergency contacts")
def get_contacts(uscc: str, principal: RepOrOfficer, auth: Auth) -> list[dict[str, str]]:
    from eseal.ra.contacts import list_contacts

    _own(principal, auth, uscc)
    return list_contacts(auth, uscc)


@router.put("/enterprises/{uscc}/contacts",
            summary="File the emergency contacts (at least two; replaces the list)")
def put_contacts(uscc: str, body: ContactsIn, principal: RepOrOfficer,
                 auth: Auth) -> list[dict[str, str]]:
    from eseal.ra.contacts import set_contacts

    ent = _own(principal, auth, uscc)
    return set_contacts(auth, uscc, [c.model_dump() for c in body.contacts],
                        actor=principal.actor, by_enterprise_id=ent.id)


@router.get("/enterprises/{uscc}/history",
            summary="Registered names and legal representatives over time")
def history(uscc: str, principal: Staff, auth: Auth) -> dict[str, Any]:
    from eseal.ra.legal_rep import legal_rep_history
    from eseal.ra.rename import name_history

    _own(principal, auth, uscc)
    return {"names": name_history(auth, uscc), "legal_reps": legal_rep_history(auth, uscc)}


@router.get("/enterprises/{uscc}/ledger",
            summary="The credential ledger (企业数字凭证管理台账) from the audit log; ?format=csv",
            responses={200: {"content": {"application/json": {}, "text/csv": {}}}})
def ledger(uscc: str, principal: RepOrOfficer, auth: Auth,
           format: Annotated[str, Query(pattern="^(json|csv)$")] = "json") -> Any:
    from dataclasses import asdict

    from eseal.ra.ledger import ledger_rows, to_csv

    _own(principal, auth, uscc)
    rows = ledger_rows(auth, uscc)
    if format == "csv":
        return Response(to_csv(rows).encode("utf-8"), media_type="text/csv; charset=utf-8",
                        headers={"Cache-Control": "no-store"})
    return {"uscc": uscc, "events": [asdict(r) for r in rows]}
