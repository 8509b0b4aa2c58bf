"""Filings over HTTP (journey 3): an agent uploads a draft, the legal representative seals it
with their USB-Key on their own machine and uploads the sealed file, the service answers with
a receipt it signs itself.

Routes (all need a USB-Key login session):

* ``POST /filings?title=T&type=K`` — agent or legal representative: the body is the draft
  PDF (``application/pdf``), checked by :func:`eseal.signing.intake.check_draft`; ``K`` a
  filing type the account holds a right for (:mod:`eseal.ra.rights`, default ``other``);
* ``GET /filings``, ``GET /filings/{id}`` — the enterprise's own filings (officers and
  auditors see all);
* ``GET /filings/{id}/draft`` — the stored draft, byte for byte (what must be sealed);
* ``POST /filings/{id}/seal`` — legal representative only: the sealed PDF; accepted only if
  :func:`eseal.signing.intake.check_sealed_upload` finds it is the stored draft plus one
  incremental update holding one timestamped seal made with the enterprise's current seal
  certificate, not revoked or frozen; answers the receipt;
* ``GET /filings/{id}/sealed``, ``GET /filings/{id}/receipt``.

An agent can prepare and submit, never seal or approve: ``/seal`` refuses every role but the
legal representative (403, audited). Another enterprise's filing answers 404, exactly as one
that does not exist. Every step — upload, download, seal, and every refusal — is in the audit
log (``auth.change`` / ``auth.record_refusal``); a refused upload stores nothing.

Uploads are bounded by the ``upload_limit_bytes`` setting (default 100 MB) *while the body
streams in*: a declared Content-Length over the limit is refused before reading, and a chunked
body is refused (413) as soon as it passes the limit, without waiting for the rest.

The receipt is the JSON body (:mod:`eseal.signing.intake` defines the format and verifies it)
plus an RFC 3161 token from the CA's own TSA key over the SHA-256 of its canonical JSON; its
serial comes from the same counter blocks as ``/tsa`` tokens, so serials never repeat.
"""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Annotated, Any

from asn1crypto import algos, tsp
from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from eseal import clock
from eseal.api.bodies import read_upload
from eseal.api.deps import Principal, RowId, current_principal, get_authority, get_settings
from eseal.api.door import has_url_control
from eseal.api.live_status import live_status_lookup
from eseal.ca.authority import Authority
from eseal.errors import Conflict, EsealError, Forbidden, InvalidInput, NotFound
from eseal.settings import Settings
from eseal.signing import intake
from eseal.store.models import Certificate, Enterprise, FreezeWindow
from eseal.store.models_filings import Filing, FilingDocument, FilingReceipt

router = APIRouter(tags=["filings"])

PDF = "application/pdf"
MAX_TITLE = 200
SEALERS = ("legal_rep",)
SUBMITTERS = ("agent", "legal_rep")
READERS = ("agent", "legal_rep", "officer", "auditor")


# ---------------------------------------------------------------------------------------------
# bounded uploads


# ---------------------------------------------------------------------------------------------
# the domain: filings, seals, receipts


def _filing_dict(row: Filing, ent: Any) -> dict[str, Any]:
    return {
        "id": row.id, "title": row.title, "status": row.status,
        "enterprise": {"uscc": ent.uscc, "name": ent.name},
        "created_by": row.created_by, "created_at": row.created_at.isoformat(),
        "type": row.filing_type, "flag": row.flag,
        "draft": {"sha256": row.draft_sha256, "size": row.draft_size, "pages": row.draft_pages},
        "sealed": None if row.sealed_sha256 is None else {
            "sha256": row.sealed_sha256, "size": row.sealed_size,
            "seal_certificate_serial": row.seal_serial,
            "seal_signing_time": row.seal_signing_time.isoformat()
            if row.seal_signing_time else None,
            "sealed_by": row.sealed_by,
            "accepted_at": row.accepted_at.isoformat() if row.accepted_at else None},
    }


def _not_found(filing_id: int) -> NotFound:
    return NotFound("FILING_NOT_FOUND", f"no filing {filing_id}", f"找不到申报材料 {filing_id}",
                    field="id")


def _visible(auth: Authority, principal: Principal, filing_id: int) -> tuple[Filing, Any]:
    """The filing and its enterprise, if this principal may see it (404 otherwise)."""
    with auth.db.read() as s:
        row = s.get(Filing, filing_id)
        ent = s.get(Enterprise, row.enterprise_id) if row is not None else None
    if row is None or ent is None:
        raise _not_found(filing_id)
    if principal.role in ("agent", "legal_rep") and principal.enterprise_id != row.enterprise_id:
        raise _not_found(filing_id)
    return row, ent


def _require(auth: Authority, principal: Principal, roles: tuple[str, ...], *, action: str,
             target: str | None) -> None:
    """Role check that is itself audited (an agent trying to seal is worth recording)."""
    if principal.role in roles:
        return
    names = {"agent": "经办人", "legal_rep": "法定代表人", "officer": "管理员", "auditor": "审计员"}
    err = Forbidden("ROLE_FORBIDDEN",
                    f"a {principal.role} may not do this (needs: {', '.join(roles)})",
                    f"{names.get(principal.role, principal.role)}无权执行此操作"
                    f"（需要：{'、'.join(names.get(r, r) for r in roles)}）", field="role")
    auth.record_refusal(actor=principal.actor, action=action, target=target, error=err)
    raise err


def _check_title(title: str | None) -> str:
    value = (title or "").strip() or "filing"
    if len(value) > MAX_TITLE or has_url_control(value):
        raise InvalidInput("TITLE_INVALID",
                           f"the title must be 1-{MAX_TITLE} characters without control characters",
                           f"标题应为 1 到 {MAX_TITLE} 个字符且不含控制字符", field="title")
    return value


def create_filing(auth: Authority, principal: Principal, *, title: str,
                  data: bytes, filing_type: str | None = None) -> dict[str, Any]:
    """Store a checked draft for the principal's enterprise (audited ``filing.create``).

    ``filing_type`` (default ``other``) must be a known type the account holds a right for
    (``eseal.ra.rights``): else ``FILING_TYPE_UNKNOWN`` 422 / ``FILING_TYPE_FORBIDDEN`` 403."""
    from eseal.ra import rights

    kind = filing_type if filing_type is not None else rights.DEFAULT_FILING_TYPE
    details: dict[str, Any] = {"title": title, "size": len(data), "type": kind}
    target = principal.enterprise_uscc

    def validate() -> intake.DraftInfo:
        if principal.enterprise_id is None:
            raise Forbidden("NO_ENTERPRISE", "this account belongs to no enterprise",
                            "该账户不属于任何企业", field="role")
        if kind == "":  # the portal's form sends the choice even when none was made
            raise InvalidInput("FILING_TYPE_REQUIRED", "choose the business type of the filing",
                               "请选择申报材料的业务类型", field="type")
        rights.check_filing_type(auth, kind)
        rights.check_may_file(auth, account_id=principal.account_id, role=principal.role,
                              filing_type=kind)
        return intake.check_draft(data)

    info = auth.refusing(validate, actor=principal.actor, action="filing.create", target=target,
                         details=details)
    details.update({"sha256": info.sha256, "pages": info.pages})
    now = clock.now()
    with auth.change(actor=principal.actor, action="filing.create", target=target,
                     details=details) as s:
        ent = s.get(Enterprise, principal.enterprise_id)
        if ent is None or ent.status != "active":
            raise Conflict("ENTERPRISE_NOT_ACTIVE", "the enterprise is not active",
                           "企业已注销", field="uscc")
        row = Filing(enterprise_id=ent.id, title=title, status="draft",
                     created_by=principal.actor, created_by_account=principal.account_id,
                     created_at=now, draft_sha256=info.sha256, draft_size=info.size,
                     draft_pages=info.pages, filing_type=kind)
        s.add(row)
        s.flush()
        s.add(FilingDocument(filing_id=row.id, kind="draft", data=data))
        details["filing_id"] = row.id
        result = _filing_dict(row, ent)
    return result


def document(auth: Authority, principal: Principal, filing_id: int,
             kind: str) -> tuple[bytes, Filing]:
    """A filing's draft or sealed bytes (audited ``filing.download``)."""
    row, _ent = _visible(auth, principal, filing_id)
    with auth.change(actor=principal.actor, action="filing.download", target=str(filing_id),
                     details={"kind": kind}) as s:
        doc = s.get(FilingDocument, (filing_id, kind))
        if doc is None:
            raise NotFound("FILING_NOT_SEALED", f"filing {filing_id} has no sealed version yet",
                           f"申报材料 {filing_id} 尚未签章", field="id")
        data = doc.data
    return data, row


def enterprise_seals(auth: Authority, enterprise_id: int, uscc: str) -> intake.EnterpriseSeals:
    """What the CA's records say about the enterprise's seal certificates, now."""
    now = clock.now()
    with auth.db.read() as s:
        rows = s.execute(select(Certificate.serial, Certificate.status, Certificate.not_after,
                                Certificate.replaced_by)
                         .where(Certificate.enterprise_id == enterprise_id,
                                Certificate.profile == "seal")).all()
        serials = [r.serial for r in rows]
        windows = s.execute(select(FreezeWindow.serial, FreezeWindow.frozen_at,
                                   FreezeWindow.unfrozen_at)
                            .where(FreezeWindow.serial.in_(serials))).all() if serials else []
    frozen: dict[str, list[tuple[datetime, datetime | None]]] = {}
    for w in windows:
        frozen.setdefault(w.serial, []).append((w.frozen_at, w.unfrozen_at))
    return intake.EnterpriseSeals(
        uscc=uscc,
        current=frozenset(r.serial for r in rows if r.replaced_by is None and r.not_after > now),
        status={r.serial: r.status for r in rows}, frozen=frozen)


def sign_receipt(auth: Authority, body: dict[str, Any], serial: int) -> bytes:
    """An RFC 3161 token (CMS ContentInfo DER) from the CA's TSA over the receipt body."""
    from eseal.ca import tsa

    request = tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": tsp.MessageImprint({
            "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "hashed_message": intake.receipt_imprint(body)}),
        "nonce": secrets.randbits(63),
        "cert_req": True,
    })
    answer = tsa.answer(request.dump(), tsa_cert=auth.certificate("tsa"),
                        tsa_key=auth.key("tsa"),  # type: ignore[arg-type]
                        chain=auth.chain(), serial=serial, now=clock.now())
    response = tsp.TimeStampResp.load(answer)
    if response["status"]["status"].native != "granted":
        raise EsealError("RECEIPT_SIGNING_FAILED", "the TSA could not sign the receipt",
                         "时间戳服务无法签署回执")
    return bytes(response["time_stamp_token"].dump())


def receipt_json(body: dict[str, Any], token: bytes, tsa_serial: str) -> dict[str, Any]:
    return {"receipt": body,
            "signature": {"type": "rfc3161", "algorithm": "sha256",
                          "token": base64.b64encode(token).decode("ascii"),
                          "tsa_serial": tsa_serial}}


def accept_sealed(auth: Authority, principal: Principal, filing_id: int, data: bytes, *,
                  serial: int, base_url: str) -> dict[str, Any]:
    """Check a sealed upload against the stored draft; on success store it with its receipt
    (audited ``filing.seal``); on failure record the refusal and store nothing."""
    action, target = "filing.seal", str(filing_id)
    details: dict[str, Any] = {"size": len(data)}

    def load() -> tuple[Filing, Any, bytes]:
        row, ent = _visible(auth, principal, filing_id)
        if row.status != "draft":
            raise Conflict("FILING_ALREADY_SEALED", f"filing {filing_id} is already sealed",
                           f"申报材料 {filing_id} 已签章", field="id")
        with auth.db.read() as s:
            draft = s.get_one(FilingDocument, (filing_id, "draft")).data
        return row, ent, draft

    row, ent, draft = auth.refusing(load, actor=principal.actor, action=action, target=target,
                                    details=details)
    seals = enterprise_seals(auth, ent.id, ent.uscc)
    accepted = auth.refusing(
        lambda: intake.check_sealed_upload(draft, data, seals=seals,
                                           trust_roots=[auth.certificate("root")],
                                           live_status=live_status_lookup(auth)),
        actor=principal.actor, action=action, target=target, details=details)
    now = clock.now()
    body = {
        "version": intake.RECEIPT_VERSION,
        "filing_id": row.id,
        "title": row.title,
        "enterprise": {"uscc": ent.uscc, "name": ent.name},
        "draft_sha256": row.draft_sha256,
        "sealed_sha256": accepted.sha256,
        "sealed_size": accepted.size,
        "seal_certificate_serial": accepted.certificate_serial,
        "seal_signing_time": accepted.signing_time.isoformat(),
        "pades_level": accepted.pades_level,
        "submitted_by": row.created_by,
        "sealed_by": principal.actor,
        "accepted_at": now.isoformat(),
        "service": base_url,
    }
    token = sign_receipt(auth, body, serial)
    tsa_serial = format(serial, "x")
    details.update({"sha256": accepted.sha256, "seal_serial": accepted.certificate_serial,
                    "tsa_serial": tsa_serial})
    with auth.change(actor=principal.actor, action=action, target=target, details=details) as s:
        current = s.get_one(Filing, filing_id)
        if current.status != "draft":
            raise Conflict("FILING_ALREADY_SEALED", f"filing {filing_id} is already sealed",
                           f"申报材料 {filing_id} 已签章", field="id")
        current.status = "accepted"
        current.sealed_sha256 = accepted.sha256
        current.sealed_size = accepted.size
        current.seal_serial = accepted.certificate_serial
        current.seal_signing_time = accepted.signing_time
        current.sealed_by = principal.actor
        current.accepted_at = now
        s.add(FilingDocument(filing_id=filing_id, kind="sealed", data=data))
        s.add(FilingReceipt(filing_id=filing_id,
                            body=intake.canonical_json(body).decode("utf-8"), token=token,
                            tsa_serial=tsa_serial, created_at=now))
    return receipt_json(body, token, tsa_serial)


def stored_receipt(auth: Authority, principal: Principal, filing_id: int) -> dict[str, Any]:
    import json

    _visible(auth, principal, filing_id)
    with auth.db.read() as s:
        rec = s.get(FilingReceipt, filing_id)
    if rec is None:
        raise NotFound("FILING_NOT_SEALED", f"filing {filing_id} has no receipt yet",
                       f"申报材料 {filing_id} 尚无回执", field="id")
    return receipt_json(json.loads(rec.body), rec.token, rec.tsa_serial)


# ---------------------------------------------------------------------------------------------
# routes

AuthorityDep = Annotated[Authority, Depends(get_authority)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


@router.post("/filings", status_code=201,
             summary="Upload a draft filing (agent or legal representative); body: the PDF",
             openapi_extra={"requestBody": {"required": True, "content": {PDF: {}}}})
async def post_filing(request: Request, auth: AuthorityDep, settings: SettingsDep,
                      principal: PrincipalDep,
                      title: Annotated[str | None, Query(max_length=MAX_TITLE)] = None,
                      filing_type: Annotated[str | None, Query(alias="type", max_length=32)]
                      = None) -> dict[str, Any]:
    target = principal.enterprise_uscc
    await run_in_threadpool(_require, auth, principal, SUBMITTERS, action="filing.create",
                            target=target)
    try:
        name = _check_title(title)
        data = await read_upload(request, settings.upload_limit_bytes)
    except EsealError as err:
        await run_in_threadpool(auth.record_refusal, actor=principal.actor,
                                action="filing.create", target=target, error=err)
        raise
    return await run_in_threadpool(create_filing, auth, principal, title=name, data=data,
                                   filing_type=filing_type)


@router.get("/filings", summary="Filings of the caller's enterprise (all, for CA staff)")
def list_filings(auth: AuthorityDep, principal: PrincipalDep,
                 status: Annotated[str | None, Query(pattern="^(draft|accepted)$")] = None,
                 limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    q = select(Filing, Enterprise).join(Enterprise, Enterprise.id == Filing.enterprise_id)
    if principal.role in ("agent", "legal_rep"):
        q = q.where(Filing.enterprise_id == principal.enterprise_id)
    if status is not None:
        q = q.where(Filing.status == status)
    with auth.db.read() as s:
        rows = s.execute(q.order_by(Filing.id.desc()).limit(limit)).all()
        total = s.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    return {"filings": [_filing_dict(f, e) for f, e in rows], "total": total}


@router.get("/filings/{filing_id}", summary="One filing")
def get_filing(filing_id: RowId, auth: AuthorityDep, principal: PrincipalDep) -> dict[str, Any]:
    row, ent = _visible(auth, principal, filing_id)
    return _filing_dict(row, ent)


def _pdf_response(data: bytes, name: str) -> Response:
    return Response(data, media_type=PDF, headers={
        "Content-Disposition": f'attachment; filename="{name}"',
        "Cache-Control": "no-store"})


@router.get("/filings/{filing_id}/draft", response_class=Response,
            summary="The stored draft, byte for byte (what the legal representative seals)",
            responses={200: {"content": {PDF: {}}}})
def get_draft(filing_id: RowId, auth: AuthorityDep, principal: PrincipalDep) -> Response:
    data, _ = document(auth, principal, filing_id, "draft")
    return _pdf_response(data, f"filing-{filing_id}-draft.pdf")


@router.get("/filings/{filing_id}/sealed", response_class=Response,
            summary="The accepted sealed file", responses={200: {"content": {PDF: {}}}})
def get_sealed(filing_id: RowId, auth: AuthorityDep, principal: PrincipalDep) -> Response:
    data, _ = document(auth, principal, filing_id, "sealed")
    return _pdf_response(data, f"filing-{filing_id}-sealed.pdf")


@router.post("/filings/{filing_id}/seal",
             summary="Upload the sealed filing (legal representative only); answers the receipt",
             openapi_extra={"requestBody": {"required": True, "content": {PDF: {}}}})
async def post_sealed(filing_id: RowId, request: Request, auth: AuthorityDep,
                      settings: SettingsDep, principal: PrincipalDep) -> dict[str, Any]:
    from eseal.api.routes_status import status_state

    target = str(filing_id)
    await run_in_threadpool(_require, auth, principal, SEALERS, action="filing.seal",
                            target=target)
    try:
        data = await read_upload(request, settings.upload_limit_bytes)
    except EsealError as err:
        await run_in_threadpool(auth.record_refusal, actor=principal.actor,
                                action="filing.seal", target=target, error=err)
        raise
    state = status_state(request.app, auth)
    serial = await run_in_threadpool(state.tsa_serials.next_serial)
    return await run_in_threadpool(accept_sealed, auth, principal, filing_id, data,
                                   serial=serial, base_url=settings.base_url)


@router.get("/filings/{filing_id}/receipt", summary="The signed receipt of an accepted filing")
def get_receipt(filing_id: RowId, auth: AuthorityDep, principal: PrincipalDep) -> dict[str, Any]:
    return stored_receipt(auth, principal, filing_id)
