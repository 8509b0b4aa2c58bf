"""Verification over HTTP for relying parties: the same report as ``eseal verify``.

``POST /verify`` takes a PDF as the request body and answers the verification report
(:mod:`eseal.signing.report`: verdict, exit code, every signature, English and Chinese) judged
against this service's root CA — HTTP 200 whatever the verdict, since "invalid" is an answer,
not an error. Input that cannot be judged at all (not a PDF, empty, encrypted, unreadable, no
signature) is 422 with the verifier's code; a body over ``upload_limit_bytes`` is 413 while it
streams in. ``?online=true`` lets the verifier fetch CRLs/OCSP (the current status).

The service is the CA: the verifier consults its records as the live status of the
certificates it issued (:mod:`eseal.api.live_status`), so a seal without a timestamp by a
certificate revoked or frozen now is *invalid* here — nothing proves it was made before —
even when the file's own CRLs predate the revocation.

``POST /verify/receipt`` checks a filing receipt (JSON) the same way ``eseal verify
--receipt`` does. No login is needed: verifying is public, nothing is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from eseal.api.bodies import read_upload
from eseal.api.deps import get_authority, get_settings
from eseal.api.live_status import live_status_lookup
from eseal.api.routes_filings import PDF
from eseal.ca.authority import Authority
from eseal.settings import Settings

router = APIRouter(tags=["verify"])


@router.post("/verify", summary="Verify a sealed PDF (body: the PDF) against this CA's root",
             openapi_extra={"requestBody": {"required": True, "content": {PDF: {}}}})
async def verify(request: Request, auth: Annotated[Authority, Depends(get_authority)],
                 settings: Annotated[Settings, Depends(get_settings)],
                 online: Annotated[bool, Query()] = False) -> dict[str, Any]:
    from eseal.signing.verify import verify_pdf

    data = await read_upload(request, settings.upload_limit_bytes)
    report = await run_in_threadpool(verify_pdf, data, trust_roots=[auth.certificate("root")],
                                     allow_fetching=online,
                                     live_status=live_status_lookup(auth))
    return report.to_dict()


@router.post("/verify/receipt", summary="Verify a filing receipt's timestamp signature")
def verify_receipt(receipt: Annotated[dict[str, Any], Body()],
                   auth: Annotated[Authority, Depends(get_authority)]) -> dict[str, Any]:
    from eseal.signing.receipts import verify_receipt as check

    return check(receipt, trust_roots=[auth.certificate("root")]).to_dict()
