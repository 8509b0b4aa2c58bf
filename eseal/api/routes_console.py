"""The officer console's reads over HTTP: certificate search, a certificate's history and
PEM, the batch renewal preview, and the status health of CRLs, OCSP, the TSA and the audit
log.

Who may: officers all of it; auditors the reads (search, history, PEM, health), which change
nothing; the renewal preview is an officer's tool (it answers what a renewal *would* do) and
is refused to auditors like every other POST. Enterprise staff get 403 everywhere here.
GET reads of certificates are audited as ``officer.read`` / ``auditor.read`` (as
``routes_officer`` audits officers' reads); the preview and the health poll are not, so they
leave the log exactly as it was. The rules live
in ``eseal.ra`` (``certificate_search``, ``certificate_history``, ``renewal``) and
:mod:`eseal.api.console_health`.

Paths: ``/officer/certificates/search`` is served from this module, whose router the app
includes before ``routes_officer`` (``/officer/certificates/{serial}``): modules are
included in name order (``eseal.api.app``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from eseal.api.deps import Principal, get_authority, require_roles
from eseal.api.routes_officer import BatchIn
from eseal.ca.authority import Authority
from eseal.ra import certificate_history, certificate_search, renewal

router = APIRouter(tags=["console"])
Auth = Annotated[Authority, Depends(get_authority)]
OfficerOnly = Annotated[Principal, Depends(require_roles("officer"))]


def _audited_read(request: Request,
                  principal: Annotated[Principal, Depends(require_roles("officer", "auditor"))],
                  auth: Auth) -> Principal:
    with auth.db.write() as s:
        auth.audit.append(s, actor=principal.actor, action=f"{principal.role}.read",
                          target=request.url.path,
                          details={"query": str(request.url.query)[:300]})
    return principal


Reader = Annotated[Principal, Depends(_audited_read)]


@router.get("/officer/certificates/search",
            summary="Search certificates: credit code, name, holder, serial prefix, state, "
                    "profile, expiring within N days; keyset pages (cursor) or offset ≤ 10,000")
def search(principal: Reader, auth: Auth,
           uscc: Annotated[str | None, Query(max_length=64,
                                             description="credit code, exact or prefix")] = None,
           name: Annotated[str | None, Query(max_length=300,
                                             description="enterprise name substring")] = None,
           holder: Annotated[str | None, Query(max_length=300)] = None,
           serial: Annotated[str | None, Query(max_length=64,
                                               description="serial prefix (hex)")] = None,
           status: Annotated[str | None, Query(max_length=16,
                                               description="good, hold, revoked or "
                                                           "expired")] = None,
           profile: Annotated[str | None, Query(max_length=16)] = None,
           expiring_within: Annotated[int | None, Query(ge=0, le=3650)] = None,
           sort: Annotated[str | None, Query(max_length=16,
                                             description="newest, oldest, expiry, "
                                                         "expiry_desc")] = None,
           cursor: Annotated[str | None, Query(max_length=512)] = None,
           offset: Annotated[int | None, Query(ge=0, le=10_000)] = None,
           limit: Annotated[int | None, Query(ge=1, le=200)] = None,
           ) -> dict[str, Any]:
    q = certificate_search.search_query(
        uscc=uscc, name=name, holder=holder, serial=serial, status=status, profile=profile,
        expiring_within=expiring_within, sort=sort, cursor=cursor, offset=offset, limit=limit)
    return certificate_search.search_certificates(auth, q).to_dict()


@router.get("/officer/certificates/{serial}/history",
            summary="A certificate's status history and freeze windows")
def history(serial: str, principal: Reader, auth: Auth) -> dict[str, Any]:
    return certificate_history.certificate_history(auth, serial).to_dict()


@router.get("/officer/certificates/{serial}/pem", response_class=Response,
            summary="The certificate as a PEM file (download)",
            responses={200: {"content": {"application/x-pem-file": {}}}})
def pem(serial: str, principal: Reader, auth: Auth) -> Response:
    canonical, body = certificate_history.certificate_pem(auth, serial)
    return Response(body, media_type="application/x-pem-file", headers={
        "Content-Disposition": f'attachment; filename="{canonical}.pem"',
        "Cache-Control": "no-store"})


@router.post("/officer/renewals/preview",
             summary="What POST /officer/renewals would renew, skip and refuse now; "
                     "changes nothing")
def renewal_preview(body: BatchIn, principal: OfficerOnly, auth: Auth) -> dict[str, Any]:
    todo = renewal.batch_serials(auth, body.serials, body.expiring_within_days)
    return renewal.preview_many(auth, todo)


@router.get("/status/health",
            summary="CRL age and next update, OCSP and TSA answering, the audit head")
def status_health(request: Request, auth: Auth,
                  principal: Annotated[Principal, Depends(require_roles("officer", "auditor"))],
                  ) -> dict[str, Any]:
    """Not audited: the console polls it, and it reads only (the OCSP and TSA answers it
    asks for are signed, as any relying party's are)."""
    from eseal.api.console_health import health

    return health(request, auth)
