"""The web's own routes: the page login (a cookie session), logout, the language switch, the
static files, and the doors of the portal and the console.

* ``POST /web/login`` — the same USB-Key answer as ``POST /auth/verify``, but the session goes
  into an HttpOnly cookie instead of the answer: the page's script never holds it. With
  ``step_up`` it is the console's re-authentication: the key must be the same account's, and
  the new session (fresh for five minutes of grave actions) replaces the old one.
* ``POST /web/logout`` — ends the cookie's session (CSRF-checked like every change).
* ``GET /portal/login`` — the login page, or how to install the USB-Key support.
* ``GET /static/{name}`` — script, style, images, from the package, nothing else.
"""

from __future__ import annotations

from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import Field

from eseal import clock
from eseal.api.deps import Principal, current_principal
from eseal.api.routes_auth import VerifyIn, rate_limited, verified_login
from eseal.api.web.render import HEADERS, render
from eseal.api.web.session_cookie import (
    SESSION_COOKIE,
    check_same_site,
    clear_session_cookie,
    csrf_token_for,
    set_session_cookie,
)
from eseal.api.web.viewer import CONSOLE_READERS, Viewer, viewer_for
from eseal.ca.authority import Authority
from eseal.errors import REGISTRY, Forbidden, NotFound

router = APIRouter(tags=["web"])

#: where each role lands after logging in
HOME = {"agent": "/portal/home", "legal_rep": "/portal/home",
        "officer": "/console/certificates", "auditor": "/console/audit"}
_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".png": "image/png", ".svg": "image/svg+xml"}


class WebLoginIn(VerifyIn):
    step_up: bool = Field(default=False, description="re-authenticate the current session's "
                                                      "account (console step-up)")
    next: str | None = Field(default=None, max_length=512, description="where to go after")


def safe_next(next_path: str | None, role: str) -> str:
    """Only a path of this site's pages: never another site (no open redirect)."""
    if (next_path and next_path.startswith(("/portal/", "/console/"))
            and "//" not in next_path and "\\" not in next_path):
        return next_path
    return HOME.get(role, "/portal/home")


@router.post("/web/login", summary="Log in a page with a USB-Key answer (HttpOnly cookie)")
async def web_login(body: WebLoginIn, request: Request) -> Any:
    from starlette.concurrency import run_in_threadpool

    from eseal.auth.challenges import sha256_hex
    from eseal.auth.refusals import LoginRateLimited
    from eseal.auth.sessions import logout, resolve_session, session_id_of

    auth: Authority = request.app.state.authority
    settings = request.app.state.settings
    check_same_site(request, settings.base_url)
    previous = request.cookies.get(SESSION_COOKIE)
    before = None
    if body.step_up:
        before = await run_in_threadpool(resolve_session, auth, previous)
    try:
        result = await verified_login(body, request)
    except LoginRateLimited as err:
        return rate_limited(err)
    account_id = int(result.account["id"])
    role = str(result.account["role"])
    actor = f"{role}:{result.account['name']}#{account_id}"
    if before is not None and before.account_id != account_id:
        await run_in_threadpool(logout, auth, session_id=result.session_id, actor=actor)
        raise Forbidden("STEP_UP_ACCOUNT_MISMATCH",
                        "re-authenticate with your own USB-Key: this key belongs to another "
                        "account", "请使用您本人的 USB-Key 重新验证：该 USB-Key 属于其他账户",
                        field="certificate")
    if previous:
        old_id = session_id_of(sha256_hex(previous))
        if old_id != result.session_id:
            await run_in_threadpool(logout, auth, session_id=old_id, actor=actor)
    response = JSONResponse({"account": result.account, "csrf_token": csrf_token_for(result.token),
                             "next": safe_next(body.next, role),
                             "new_network": result.new_network,
                             "expires_at": result.to_dict()["expires_at"]})
    max_age = int((result.expires_at - clock.now()).total_seconds())
    set_session_cookie(response, result.token, base_url=settings.base_url,
                       max_age_seconds=max(60, max_age))
    return response


@router.post("/web/logout", summary="End the page's session and drop its cookie")
def web_logout(request: Request,
               principal: Annotated[Principal, Depends(current_principal)]) -> Response:
    from eseal.auth.sessions import logout

    logout(request.app.state.authority, session_id=principal.session_id, actor=principal.actor)
    response = JSONResponse({"ended": True, "next": "/portal/login"})
    clear_session_cookie(response, base_url=request.app.state.settings.base_url)
    return response


# --- doors --------------------------------------------------------------------------------------
@router.get("/portal/login", include_in_schema=False)
def login_page(request: Request) -> Response:
    why = request.query_params.get("why")
    reason = REGISTRY.get(why) if why else None
    return render(request, "portal/login.html", reason=reason,
                  next_path=request.query_params.get("next", ""))


@router.get("/portal", include_in_schema=False)
@router.get("/portal/", include_in_schema=False)
def portal_door() -> Response:
    return RedirectResponse("/portal/home", status_code=303, headers=HEADERS)


@router.get("/console", include_in_schema=False)
@router.get("/console/", include_in_schema=False)
def console_door(viewer: Annotated[Viewer, Depends(viewer_for(*CONSOLE_READERS))]) -> Response:
    return RedirectResponse(HOME[viewer.principal.role], status_code=303, headers=HEADERS)


# --- static files -------------------------------------------------------------------------------
def _static_file(name: str) -> tuple[bytes, str]:
    suffix = name[name.rfind("."):] if "." in name else ""
    kind = _STATIC_TYPES.get(suffix)
    ok = (kind is not None and len(name) <= 80
          and all(c.isascii() and (c.isalnum() or c in "-_.") for c in name)
          and not name.startswith("."))
    if ok:
        item = resources.files("eseal.api").joinpath("static", name)
        if item.is_file():
            return item.read_bytes(), kind  # type: ignore[return-value]
    raise NotFound("NOT_FOUND", f"no static file {name!r}", f"没有静态文件 {name!r}",
                   field="name")


@router.get("/static/{name}", response_class=Response, include_in_schema=False)
async def static(name: str) -> Response:
    data, kind = _static_file(name)
    headers = dict(HEADERS)
    headers["Cache-Control"] = "no-cache"
    return Response(data, media_type=kind, headers=headers)
