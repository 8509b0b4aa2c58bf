"""Rendering a page: Jinja2 templates (autoescaped), the two languages, the security headers.

Chinese comes first; ``?lang=en`` (or the language cookie the switch sets) shows English.
Templates say both at once with ``tr("中文", "English")`` and get the viewer (who is logged
in), the CSRF token for the page's script and the navigation of the viewer's role. Every page
goes out with a Content-Security-Policy that admits script and style only from this service
(no inline script, no CDN), forbids framing (``frame-ancestors 'none'``) and form posts
(the pages change things through the JSON API, with the CSRF header), and is never cached.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse

from eseal.api.web.session_cookie import LANG_COOKIE

if TYPE_CHECKING:
    from eseal.api.web.viewer import Viewer

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; form-action 'self'; frame-ancestors 'none'; "
       "base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store",
           "Referrer-Policy": "no-referrer"}
LANGS = ("zh", "en")

#: The navigation of each role: (path, Chinese, English). The console's links an auditor
#: may not follow are not shown to them (and the routes refuse them anyway).
NAV: dict[str, tuple[tuple[str, str, str], ...]] = {
    "agent": (("/portal/home", "首页", "Home"), ("/portal/filings", "申报材料", "Filings"),
              ("/portal/verify", "验证签章", "Verify a seal")),
    "legal_rep": (("/portal/home", "首页", "Home"), ("/portal/filings", "申报材料", "Filings"),
                  ("/portal/verify", "验证签章", "Verify a seal")),
    "officer": (("/console/certificates", "证书", "Certificates"),
                ("/console/enterprises", "企业", "Enterprises"),
                ("/console/accounts", "账户", "Accounts"),
                ("/console/audit", "审计日志", "Audit log"),
                ("/console/health", "服务状态", "Service health")),
    "auditor": (("/console/audit", "审计日志", "Audit log"),
                ("/console/health", "服务状态", "Service health")),
}
ROLE_NAMES = {"agent": ("经办人", "agent"), "legal_rep": ("法定代表人", "legal representative"),
              "officer": ("管理员", "CA officer"), "auditor": ("审计员", "auditor")}


def language(request: Request) -> str:
    """``?lang=`` first, then the cookie, then Chinese."""
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE) or "zh"
    return asked if asked in LANGS else "zh"


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("eseal.api", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    return env


def render(request: Request, template: str, *, viewer: Viewer | None = None,
           status: int = 200, **context: Any) -> HTMLResponse:
    """The page ``template`` for this request, with the viewer and the security headers."""
    lang = language(request)

    def tr(zh: str, en: str) -> str:
        return en if lang == "en" else zh

    principal = viewer.principal if viewer is not None else None
    kept = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"]

    def lang_url(code: str) -> str:
        """This page in another language, its query (a search's filters) kept."""
        return f"{request.url.path}?{urlencode([*kept, ('lang', code)])}"

    body = environment().get_template(template).render(
        request=request, lang=lang, tr=tr, viewer=viewer, principal=principal,
        csrf_token=viewer.csrf_token if viewer is not None else "",
        nav=NAV.get(principal.role, ()) if principal is not None else (),
        role_names=ROLE_NAMES, path=request.url.path, lang_url=lang_url, **context)
    response = HTMLResponse(body, status_code=status, headers=HEADERS)
    if request.query_params.get("lang") in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/",
                            samesite="strict")
    return response
