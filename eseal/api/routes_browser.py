"""The browser's routes: sealing a filing with a USB-Key in the page, and two small pages.

* ``POST /filings/{id}/browser-seal`` — legal representative: prepare a seal of the stored
  draft; answers what the USB-Key signs and what its holder is shown
  (:mod:`eseal.api.browser_seal`);
* ``POST /filings/{id}/browser-seal/finish`` — the prepared id and the key's signature;
  answers the receipt, exactly as ``POST /filings/{id}/seal`` does;
* ``GET /login`` and ``GET /seal`` — a minimal login page and sealing page that use the
  extension's page API (``eseal.status()``, ``eseal.authenticate()``, ``eseal.sign()``) with
  a bearer session, for integrators to copy; people use the portal (``/portal/``). Their
  script and style come from ``/static/`` under the pages' Content-Security-Policy
  (:mod:`eseal.api.web.render`).

A browser login needs no route of its own: the page takes ``POST /auth/challenge``, the
extension signs it for the origin the *browser* reports, and the page sends the answer to
``POST /auth/verify`` — the same verification as ``eseal login``, which refuses a signature
made for any other origin (``CHALLENGE_ORIGIN``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from eseal.api.deps import Principal, RowId, current_principal, get_authority, get_settings
from eseal.api.web.render import render
from eseal.ca.authority import Authority
from eseal.settings import Settings

router = APIRouter(tags=["browser"])

_PAGES = {"login": "browser/login.html", "seal": "browser/seal.html"}


class PrepareIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    certificate_serial: str | None = Field(default=None, max_length=40,
                                           description="the seal certificate on the key")
    page: int = Field(default=1, ge=1, le=100000)
    x: float | None = Field(default=None, ge=-1e6, le=1e6, description="lower-left x, pt")
    y: float | None = Field(default=None, ge=-1e6, le=1e6, description="lower-left y, pt")
    size_pt: float = Field(default=120, ge=24, le=600)
    paging_seal: bool = Field(default=False, description="also the 骑缝章 (paging seal)")


class FinishIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    prepared_id: str = Field(min_length=1, max_length=128)
    signature: str = Field(min_length=1, max_length=2048, description="base64 raw signature")


AuthorityDep = Annotated[Authority, Depends(get_authority)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


@router.post("/filings/{filing_id}/browser-seal",
             summary="Prepare a seal of the draft for a USB-Key in the browser")
async def prepare_browser_seal(filing_id: RowId, body: PrepareIn, request: Request,
                               auth: AuthorityDep, principal: PrincipalDep) -> dict[str, Any]:
    from eseal.api import browser_seal
    from eseal.api.routes_filings import SEALERS, _require
    from eseal.api.routes_status import status_state

    await run_in_threadpool(_require, auth, principal, SEALERS, action="filing.seal_prepare",
                            target=str(filing_id))
    state = status_state(request.app, auth)
    placement = browser_seal.Placement(page=body.page, x=body.x, y=body.y,
                                       size_pt=body.size_pt, paging=body.paging_seal)
    return await run_in_threadpool(browser_seal.prepare, auth, state, principal, filing_id,
                                   placement=placement,
                                   certificate_serial=body.certificate_serial)


@router.post("/filings/{filing_id}/browser-seal/finish",
             summary="Finish a browser seal with the USB-Key's signature; answers the receipt")
async def finish_browser_seal(filing_id: RowId, body: FinishIn, request: Request,
                              auth: AuthorityDep, settings: SettingsDep,
                              principal: PrincipalDep) -> dict[str, Any]:
    from eseal.api import browser_seal
    from eseal.api.routes_filings import SEALERS, _require
    from eseal.api.routes_status import status_state

    await run_in_threadpool(_require, auth, principal, SEALERS, action="filing.seal",
                            target=str(filing_id))
    state = status_state(request.app, auth)
    return await run_in_threadpool(browser_seal.finish, auth, state, principal, filing_id,
                                   prepared_id=body.prepared_id, signature_b64=body.signature,
                                   base_url=settings.base_url)


# -- the two pages ---------------------------------------------------------------------------
def _add_page(path: str, template: str) -> None:
    async def page(request: Request) -> Response:
        return render(request, template)

    page.__name__ = f"page_{path}"
    router.add_api_route(f"/{path}", page, methods=["GET"], response_class=Response,
                         summary=f"The minimal {path} page (uses the eseal extension)",
                         include_in_schema=False)


for _path, _template in _PAGES.items():
    _add_page(_path, _template)
