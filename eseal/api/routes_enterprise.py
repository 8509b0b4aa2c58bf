"""An enterprise's own data, for its agents and legal representative (and officers), and
redeeming an enrollment code from the holder's machine.

Every route is under ``/enterprises/{uscc}``: enterprise staff see only their own enterprise
(another's answers 404 as if it did not exist, ``check_enterprise``), officers see any.
Agents read the enterprise's certificates and login history; the legal representative also
lists its accounts and asks for enrollment codes for agents. ``/enroll`` needs no session:
the single-use code is the credential, and what it enrolls was fixed when it was issued.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from eseal.api.deps import (
    Principal,
    RowIdQuery,
    check_enterprise,
    get_authority,
    require_roles,
)
from eseal.ca.authority import Authority
from eseal.errors import NotFound

router = APIRouter(tags=["enterprise"])

Staff = Annotated[Principal, Depends(require_roles("agent", "legal_rep", "officer"))]
RepOrOfficer = Annotated[Principal, Depends(require_roles("legal_rep", "officer"))]
Auth = Annotated[Authority, Depends(get_authority)]


def certificate_dict(row: Any, uscc: str | None) -> dict[str, Any]:
    return {"serial": row.serial, "enterprise": uscc, "profile": row.profile,
            "holder": row.holder, "subject": row.subject, "status": row.status,
            "not_before": row.not_before.isoformat(), "not_after": row.not_after.isoformat(),
            "revocation_reason": row.revocation_reason,
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            "replaced_by": row.replaced_by, "renewed_from": row.renewed_from,
            "token_label": row.token_label}


def enterprise_dict(ent: Any) -> dict[str, Any]:
    return {"uscc": ent.uscc, "name": ent.name, "legal_rep": ent.legal_rep,
            "contact_email": ent.contact_email, "status": ent.status}


@router.get("/enterprises/{uscc}", summary="The enterprise's registration")
def enterprise(uscc: str, principal: Staff, auth: Auth) -> dict[str, Any]:
    check_enterprise(principal, uscc)
    return enterprise_dict(auth.enterprise(uscc))


@router.get("/enterprises/{uscc}/certificates", summary="The enterprise's certificates")
def certificates(uscc: str, principal: Staff, auth: Auth) -> list[dict[str, Any]]:
    check_enterprise(principal, uscc)
    auth.enterprise(uscc)  # ENTERPRISE_NOT_REGISTERED for an officer's typo
    return [certificate_dict(row, code) for row, code in auth.list_certificates(uscc=uscc)]


@router.get("/enterprises/{uscc}/certificates/{serial}", summary="One of its certificates")
def certificate(uscc: str, serial: str, principal: Staff, auth: Auth) -> dict[str, Any]:
    check_enterprise(principal, uscc)
    ent = auth.enterprise(uscc)
    row = auth.certificate_row(serial)
    if row.enterprise_id != ent.id:
        raise NotFound("CERT_NOT_FOUND", f"no certificate with serial {row.serial} here",
                       f"找不到序列号为 {row.serial} 的证书", field="serial")
    return certificate_dict(row, ent.uscc)


@router.get("/enterprises/{uscc}/logins", summary="Login history of the enterprise's accounts")
def logins(uscc: str, principal: Staff, auth: Auth,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
           before_id: RowIdQuery = None,
           ) -> list[dict[str, Any]]:
    from eseal.auth.accounts import login_history

    check_enterprise(principal, uscc)
    ent = auth.enterprise(uscc)
    return login_history(auth, enterprise_id=ent.id, limit=limit, before_id=before_id)


@router.get("/enterprises/{uscc}/accounts", summary="The enterprise's accounts")
def enterprise_accounts(uscc: str, principal: RepOrOfficer, auth: Auth) -> list[dict[str, Any]]:
    from eseal.auth.accounts import list_accounts

    check_enterprise(principal, uscc)
    ent = auth.enterprise(uscc)
    return [a.to_dict() for a in list_accounts(auth, enterprise_id=ent.id)]


class CodeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: str = Field(max_length=32, description="agent (legal representatives) or any "
                      "enterprise role (officers)")
    holder: str = Field(max_length=300, description="the holder's name as registered")


@router.post("/enterprises/{uscc}/enrollment-codes",
             summary="A single-use enrollment code for a holder of this enterprise")
def enterprise_code(uscc: str, body: CodeRequest, principal: RepOrOfficer,
                    auth: Auth) -> dict[str, Any]:
    from eseal.auth.accounts import ENTERPRISE_ROLES, check_role
    from eseal.ra.enrollment_codes import create_enrollment_code

    check_enterprise(principal, uscc)
    check_role(body.role, allowed=ENTERPRISE_ROLES)
    code = create_enrollment_code(
        auth, role=body.role, holder=body.holder, uscc=uscc, actor=principal.actor,
        by_role=principal.role, by_enterprise_id=principal.enterprise_id)
    return code.to_dict()


# --- redeeming a code (no session: the code is the credential) --------------------------------
class CodeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64)


class EnrollIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(max_length=64)
    label: str = Field(max_length=128, description="the USB-Key's label")
    csrs: dict[str, Annotated[str, Field(max_length=16384)]] = Field(
        description="PEM CSR per key purpose (login; and seal for a legal representative), "
                    "each signed on the token by the key it certifies")


@router.post("/enroll/lookup", tags=["enrollment"],
             summary="What an enrollment code enrolls (role, holder, enterprise, keys)")
def enroll_lookup(body: CodeIn, auth: Auth) -> dict[str, Any]:
    from eseal.ra.enrollment_codes import describe_code

    return describe_code(auth, body.code).to_dict()


@router.post("/enroll", tags=["enrollment"],
             summary="Redeem an enrollment code: certify the keys generated on a USB-Key")
def enroll(body: EnrollIn, auth: Auth) -> dict[str, Any]:
    from eseal.ra.enrollment_codes import redeem_code

    if len(body.csrs) > 4:
        from eseal.errors import InvalidInput

        raise InvalidInput("CSR_SET_MISMATCH", "too many CSRs", "证书请求过多", field="csrs")
    redeemed = redeem_code(auth, code=body.code, label=body.label,
                           csrs={k: v.encode("utf-8") for k, v in body.csrs.items()},
                           actor=f"holder:{body.label}")
    return redeemed.to_dict()
