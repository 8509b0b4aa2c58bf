"""Who looks at a page, and whether they may: the page routes' one dependency.

A page route declares its roles with ``Depends(viewer_for("officer", "auditor"))``. Without a
live cookie session the browser is sent to the login page (``303``, remembering where it was
going and why: a frozen certificate's holder reads "your certificate was frozen", not a bare
login form); with a role the page is not for, the answer is a 403 page — the links were never
shown, and the JSON routes behind each control refuse the role again on their own. The roles
sit on the dependency (``page_roles``) so a test can walk every page route as every role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from eseal.api.deps import ALL_ROLES, Principal, current_principal
from eseal.api.web.render import HEADERS, render
from eseal.api.web.session_cookie import SESSION_COOKIE, csrf_token_for
from eseal.ca.authority import Authority
from eseal.errors import EsealError, Forbidden, Unauthorized

PAGE_PREFIXES = ("/portal", "/console")
ENTERPRISE_PAGE_ROLES = ("agent", "legal_rep")
CONSOLE_READERS = ("officer", "auditor")


@dataclass(frozen=True)
class Viewer:
    """The logged-in person looking at a page, with what the page needs to act for them."""

    principal: Principal
    auth: Authority
    csrf_token: str
    request: Request

    def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        return render(self.request, template, viewer=self, status=status, **context)


class PageLogin(Exception):
    """No live session: go to the login page, then come back."""

    def __init__(self, next_path: str, why: str) -> None:
        super().__init__(why)
        self.next_path, self.why = next_path, why


def viewer_for(*roles: str) -> Callable[[Request], Viewer]:
    """The dependency of a page for ``roles``."""
    unknown = [r for r in roles if r not in ALL_ROLES]
    if not roles or unknown:
        raise ValueError(f"unknown roles {unknown or roles!r}")
    allowed = frozenset(roles)

    def dependency(request: Request) -> Viewer:
        auth: Authority = request.app.state.authority
        token = request.cookies.get(SESSION_COOKIE)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if not token:
            raise PageLogin(target, "SESSION_REQUIRED")
        try:
            principal = current_principal(request, auth, None)
        except Unauthorized as err:
            raise PageLogin(target, err.code) from err
        if principal.role not in allowed:
            raise Forbidden("ROLE_FORBIDDEN",
                            f"this page is not for a {principal.role}",
                            "当前角色无权访问此页面", field="role")
        return Viewer(principal=principal, auth=auth, csrf_token=csrf_token_for(token),
                      request=request)

    dependency.page_roles = allowed  # type: ignore[attr-defined]
    dependency.__name__ = f"viewer_{'_'.join(roles)}"
    return dependency


def is_page(request: Request) -> bool:
    return request.url.path.startswith(PAGE_PREFIXES) and request.method in ("GET", "HEAD")


def error_page(request: Request, err: EsealError) -> HTMLResponse:
    """An error on a page, as a page (same code and both languages as the JSON answer)."""
    return render(request, "error.html", status=err.status, error=err)


def install(app: FastAPI) -> None:
    """Pages answer errors as pages and send the logged-out to the login page; the JSON
    routes keep the JSON contract."""
    json_handler = app.exception_handlers[EsealError]

    async def eseal_error(request: Request, exc: Exception) -> Response:
        if is_page(request) and isinstance(exc, EsealError):
            return error_page(request, exc)
        result: JSONResponse = await json_handler(request, exc)
        return result

    async def page_login(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageLogin)
        location = f"/portal/login?next={quote(exc.next_path, safe='')}&why={exc.why}"
        response = RedirectResponse(location, status_code=303, headers=HEADERS)
        if exc.why != "SESSION_REQUIRED":
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    app.add_exception_handler(EsealError, eseal_error)
    app.add_exception_handler(PageLogin, page_login)
