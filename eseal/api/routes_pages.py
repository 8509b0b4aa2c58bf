"""Page images over HTTP: what the portal shows of a filing, and the public verify page.

* ``GET /filings/{id}/pages?which=draft|sealed`` — the page count and each page's geometry
  (visible box in points, shown width and height, /Rotate), so a page can map a pixel of the
  image to the PDF point the seal goes to (:class:`eseal.signing.page_geometry.PageBox`);
* ``GET /filings/{id}/pages/{n}.png?which=…&dpi=…`` — page ``n`` (from 1) as a PNG, dpi
  :data:`~eseal.signing.page_images.MIN_DPI` to :data:`~eseal.signing.page_images.MAX_DPI`,
  ``Cache-Control: private`` and an ETag (the stored file's SHA-256, page, dpi), so a second
  look is a 304 without rendering;
* ``POST /verify/pages`` (public; body: the PDF, same limit as ``POST /verify``) — the report
  of ``POST /verify`` plus ``pages``: page 1 and every page carrying a seal widget (at most
  :data:`MAX_VERIFY_PAGES`), each a PNG ``data:`` URL with its geometry and each seal's
  outline in the image's pixels.

Who may see a filing's pages is who may download it (``GET /filings/{id}/draft``): its
enterprise's agent and legal representative, officers and auditors; another enterprise's
filing answers 404, as one that does not exist. Looking at pages changes nothing, so it is
not audited (``GET /filings/{id}`` is not either); downloading the file itself still is.
Rendering runs on a worker thread in a bounded child process (:mod:`eseal.signing.page_images`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from eseal.api.bodies import read_upload
from eseal.api.deps import Principal, RowId, current_principal, get_authority, get_settings
from eseal.api.live_status import live_status_lookup
from eseal.api.routes_filings import PDF, _visible
from eseal.ca.authority import Authority
from eseal.errors import EsealError, NotFound, ServiceUnavailable
from eseal.settings import Settings
from eseal.signing.page_geometry import PageBox
from eseal.signing.page_images import DEFAULT_DPI, document_pages, render_page, render_pages
from eseal.store.models_filings import FilingDocument

router = APIRouter(tags=["pages"])

AuthorityDep = Annotated[Authority, Depends(get_authority)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
Which = Annotated[Literal["draft", "sealed"], Query(description="the draft or the sealed file")]
#: the routes check page and dpi themselves (PAGE_OUT_OF_RANGE, DPI_OUT_OF_RANGE, with the
#: allowed range in the message); the schema only keeps them within a 32-bit column's range
INT32 = {"ge": -(2**31), "le": 2**31 - 1}
Dpi = Annotated[int, Query(description="pixels per inch, 36 to 150", **INT32)]
PageNumber = Annotated[int, Path(description="page number, from 1", **INT32)]

#: pages of one uploaded PDF shown by POST /verify/pages (page 1 and the sealed ones)
MAX_VERIFY_PAGES = 10
#: seconds all pages of one POST /verify/pages may take together
VERIFY_RENDER_BUDGET = 30.0
#: documents whose geometry is remembered (keyed by SHA-256; a filing's file never changes)
GEOMETRY_CACHE = 32
#: bumped when rendering changes, so browsers do not keep an old image under the same ETag
RENDER_VERSION = "1"

_geometry: OrderedDict[str, list[PageBox]] = OrderedDict()
_geometry_lock = threading.Lock()


def _document(auth: Authority, principal: Principal, filing_id: int,
              which: str) -> tuple[str, Any]:
    """The SHA-256 of the filing's draft or sealed file and a loader of its bytes."""
    row, _ent = _visible(auth, principal, filing_id)
    sha = row.draft_sha256 if which == "draft" else row.sealed_sha256
    if sha is None:
        raise NotFound("FILING_NOT_SEALED", f"filing {filing_id} has no sealed version yet",
                       f"申报材料 {filing_id} 尚未签章", field="which")

    def load() -> bytes:
        with auth.db.read() as s:
            doc = s.get(FilingDocument, (filing_id, which))
            if doc is None:
                raise NotFound("FILING_NOT_SEALED", f"filing {filing_id} has no {which} file",
                               f"申报材料 {filing_id} 没有该文件", field="which")
            return bytes(doc.data)

    return sha, load


def _boxes(sha: str, data: bytes) -> list[PageBox]:
    with _geometry_lock:
        if sha in _geometry:
            _geometry.move_to_end(sha)
            return _geometry[sha]
    boxes = document_pages(data, field="file")
    with _geometry_lock:
        _geometry[sha] = boxes
        while len(_geometry) > GEOMETRY_CACHE:
            _geometry.popitem(last=False)
    return boxes


def _geometry_answer(boxes: list[PageBox]) -> dict[str, Any]:
    return {"page_count": len(boxes), "pages": [b.to_dict() for b in boxes]}


@router.get("/filings/{filing_id}/pages",
            summary="Page count and each page's size in points and rotation (for page images)")
def get_pages(filing_id: RowId, auth: AuthorityDep, principal: PrincipalDep,
              which: Which = "draft") -> dict[str, Any]:
    sha, load = _document(auth, principal, filing_id, which)
    return {"filing_id": filing_id, "which": which, **_geometry_answer(_boxes(sha, load()))}


@router.get("/filings/{filing_id}/pages/{page}.png", response_class=Response,
            summary="One page of the filing as a PNG",
            responses={200: {"content": {"image/png": {}}}, 304: {"description": "unchanged"}})
def get_page_png(filing_id: RowId, page: PageNumber, request: Request, auth: AuthorityDep,
                 principal: PrincipalDep, which: Which = "draft",
                 dpi: Dpi = DEFAULT_DPI) -> Response:
    sha, load = _document(auth, principal, filing_id, which)
    etag = f'"{sha[:32]}-{which}-{page}-{dpi}-r{RENDER_VERSION}"'
    headers = {"Cache-Control": "private, max-age=3600", "ETag": etag,
               "X-Content-Type-Options": "nosniff"}
    if etag in [t.strip() for t in request.headers.get("if-none-match", "").split(",")]:
        return Response(status_code=304, headers=headers)
    data = load()
    image = render_page(data, page, dpi, boxes=_boxes(sha, data))
    return Response(image.png, media_type="image/png", headers={
        **headers, "X-Page-Width-Pt": str(image.page.width_pt),
        "X-Page-Height-Pt": str(image.page.height_pt), "X-Page-Rotate": str(image.page.rotate)})


def _verify_pages(data: bytes, report: dict[str, Any], dpi: int) -> dict[str, Any]:
    """``report`` plus ``page_count`` and ``pages`` (or ``pages_problem`` when the file
    verified but cannot be shown)."""
    try:
        boxes = document_pages(data, field="data")
        outlines: dict[int, list[dict[str, Any]]] = {}
        for sig in report["signatures"]:
            widget = sig.get("widget")
            if widget is not None and 1 <= widget["page"] <= len(boxes):
                outlines.setdefault(widget["page"], []).append(
                    {"field_name": sig["field_name"], "rect": widget["rect"]})
        wanted = sorted({1, *outlines})[:MAX_VERIFY_PAGES]
        images = render_pages(data, wanted, dpi, field="data", boxes=boxes,
                              deadline=time.monotonic() + VERIFY_RENDER_BUDGET)
    except ServiceUnavailable:
        raise
    except EsealError as err:
        return {**report, "page_count": None, "pages": [], "pages_problem": err.to_dict()}
    pages = []
    for image in images:
        box = image.page
        drawn = []
        for outline in outlines.get(box.index, []):
            left, top, width, height = box.rect_to_pixels(tuple(outline["rect"]), dpi)
            drawn.append({"field_name": outline["field_name"],
                          "px": [round(left, 1), round(top, 1), round(width, 1),
                                 round(height, 1)]})
        pages.append({**box.to_dict(), "dpi": dpi, "width_px": image.width_px,
                      "height_px": image.height_px, "image": image.data_url(),
                      "outlines": drawn})
    return {**report, "page_count": len(boxes), "pages": pages, "pages_problem": None}


@router.post("/verify/pages",
             summary="Verify a sealed PDF (body: the PDF) and show its sealed pages as images",
             openapi_extra={"requestBody": {"required": True, "content": {PDF: {}}}})
async def verify_pages(request: Request, auth: AuthorityDep, settings: SettingsDep,
                       online: Annotated[bool, Query()] = False,
                       dpi: Dpi = DEFAULT_DPI) -> dict[str, Any]:
    from eseal.signing.page_images import check_dpi
    from eseal.signing.verify import verify_pdf

    check_dpi(dpi)
    data = await read_upload(request, settings.upload_limit_bytes)
    report = await run_in_threadpool(verify_pdf, data, trust_roots=[auth.certificate("root")],
                                     allow_fetching=online,
                                     live_status=live_status_lookup(auth))
    return await run_in_threadpool(_verify_pages, data, report.to_dict(), dpi)
