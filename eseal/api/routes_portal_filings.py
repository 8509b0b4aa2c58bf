"""The portal's filings pages (申报材料): the list with the upload form, and one filing's
review page where the legal representative drags the seal onto a page and seals it.

* ``GET /portal/filings`` (agent, legal representative) — the enterprise's filings with
  their state, business type and dates; the upload form offers the business types the
  account may submit (:mod:`eseal.ra.rights`); the form's script posts the PDF to the JSON
  API (``POST /filings``), which stays the authority on type, size and content;
* ``GET /portal/filings/{id}`` (agent, legal representative; another enterprise's filing is
  a 404 page) — the draft's pages as images (``GET /filings/{id}/pages/{n}.png``) with each
  page's geometry on the image, so the page's script maps where the seal was dropped to PDF
  points; the legal representative gets the seal to drag, the 骑缝章 choice and the USB-Key
  button (``POST /filings/{id}/browser-seal`` → ``window.eseal.sign`` → ``…/finish``);
* ``GET /portal/filings/{id}/seal.png`` (legal representative) — the seal exactly as the
  service will draw it (:func:`eseal.holder.sealing.seal_image_for` over the enterprise's
  current seal certificate), for the drag: what is placed is what is stamped.

Pages only read; every change goes through the JSON routes, which check roles and rights
again on their own.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response

from eseal.api.deps import RowId
from eseal.api.web.render import HEADERS
from eseal.api.web.viewer import ENTERPRISE_PAGE_ROLES, Viewer, viewer_for

router = APIRouter(tags=["portal"])

#: the resolution the review page asks page images at (sharp enough at 1280 px wide)
REVIEW_DPI = 100
#: the seal's side on the page, in points (42 mm, the usual round enterprise seal)
SEAL_SIZE_PT = 120
#: the preview image's side in pixels
PREVIEW_PX = 300

Reader = Annotated[Viewer, Depends(viewer_for(*ENTERPRISE_PAGE_ROLES))]
Sealer = Annotated[Viewer, Depends(viewer_for("legal_rep"))]


def _type_names(viewer: Viewer) -> dict[str, dict[str, str]]:
    from eseal.ra.rights import filing_types

    return {t["code"]: t for t in filing_types(viewer.auth)}


@router.get("/portal/filings", include_in_schema=False)
def filings_page(viewer: Reader) -> Response:
    from eseal.api.routes_filings import list_filings
    from eseal.ra.rights import rights_of

    principal = viewer.principal
    listed = list_filings(viewer.auth, principal, None, 200)
    types = _type_names(viewer)
    held = rights_of(viewer.auth, principal.account_id)["types"]
    offered = [types[code] for code in held if code in types]
    limit = viewer.request.app.state.settings.upload_limit_bytes
    return viewer.render("portal/filings.html", filings=listed["filings"],
                         total=listed["total"], types=types, offered=offered,
                         upload_limit=limit, upload_limit_mb=limit // (1024 * 1024))


@router.get("/portal/filings/{filing_id}", include_in_schema=False)
def filing_page(filing_id: RowId, viewer: Reader) -> Response:
    from eseal.api.routes_filings import _filing_dict, _visible
    from eseal.api.routes_pages import _boxes, _document

    row, ent = _visible(viewer.auth, viewer.principal, filing_id)
    filing: dict[str, Any] = _filing_dict(row, ent)
    which = "sealed" if row.status == "accepted" else "draft"
    sha, load = _document(viewer.auth, viewer.principal, filing_id, which)
    boxes = _boxes(sha, load())
    return viewer.render("portal/filing.html", filing=filing, which=which,
                         pages=[b.to_dict() for b in boxes], dpi=REVIEW_DPI,
                         seal_size_pt=SEAL_SIZE_PT, types=_type_names(viewer),
                         may_seal=viewer.principal.role == "legal_rep"
                         and row.status == "draft")


@lru_cache(maxsize=64)
def _preview(der: bytes) -> bytes:
    from cryptography import x509

    from eseal.holder.sealing import seal_image_for

    return seal_image_for(x509.load_der_x509_certificate(der), size_px=PREVIEW_PX)


@router.get("/portal/filings/{filing_id}/seal.png", include_in_schema=False)
def seal_preview(filing_id: RowId, viewer: Sealer) -> Response:
    """The enterprise's seal as the service draws it on the PDF (transparent PNG)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from eseal.api.browser_seal import _seal_certificate
    from eseal.api.routes_filings import _visible

    _row, ent = _visible(viewer.auth, viewer.principal, filing_id)
    cert = _seal_certificate(viewer.auth, viewer.principal, ent, None)
    headers = {**HEADERS, "Cache-Control": "private, max-age=300"}
    return Response(_preview(cert.public_bytes(Encoding.DER)), media_type="image/png",
                    headers=headers)
