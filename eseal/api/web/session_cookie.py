"""The page session: an HttpOnly, SameSite=Strict cookie, its CSRF token, and the origin check.

The cookie holds the same opaque session token a USB-Key login gives the CLI (``Authorization:
Bearer``); the page's script never sees it. A request that comes with the cookie instead of a
bearer token and changes something must also carry ``X-CSRF-Token``: a value derived from the
session token (``SHA-256("eseal-csrf-v1" ‖ 0 ‖ token)``), which the server puts into each page
it renders for that session. Another site can neither read the page nor compute the value,
so it cannot forge the header; no table is needed, and a new session (a new login, a step-up)
has a new token. A request whose ``Origin`` (or ``Sec-Fetch-Site``) says another site sent it
is refused before anything else, with or without a cookie: SameSite=Strict keeps the cookie
off such a request, and the origin check makes the answer a 403 rather than a puzzling 401.
Bearer requests (the CLI, scripts) carry no ambient credential and need no token.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlsplit

from fastapi import Request, Response

from eseal.errors import Forbidden

SESSION_COOKIE = "eseal_session"
LANG_COOKIE = "eseal_lang"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def csrf_token_for(session_token: str) -> str:
    """The CSRF token of a session (derived, so nothing is stored)."""
    return hashlib.sha256(b"eseal-csrf-v1\x00" + session_token.encode("utf-8")).hexdigest()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origins(request: Request, base_url: str) -> set[str]:
    """The origins this service answers as: its configured base URL and the address the
    request was sent to (the same service reached as 127.0.0.1 or by name)."""
    origins = {_origin(base_url)}
    host = request.headers.get("host")
    if host:
        origins.add(f"{request.url.scheme}://{host}".lower())
    return origins


def _csrf_error(message: str, message_zh: str, field: str) -> Forbidden:
    return Forbidden("CSRF_TOKEN_INVALID", message, message_zh, field=field)


def check_same_site(request: Request, base_url: str) -> None:
    """Refuse a state-changing request that a browser says another site sent (403)."""
    if request.method in SAFE_METHODS:
        return
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise _csrf_error("a cross-site request may not change anything here",
                          "不接受来自其他网站的修改请求", "Origin")
    origin = request.headers.get("origin")
    if origin is not None and origin.lower() not in own_origins(request, base_url):
        raise _csrf_error(f"a request from {origin} may not change anything here",
                          f"不接受来自 {origin} 的修改请求", "Origin")


def check_csrf(request: Request, session_token: str) -> None:
    """A state-changing request on the cookie session must carry the session's token."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not sent or not hmac.compare_digest(sent.encode("utf-8", "replace"),
                                           csrf_token_for(session_token).encode("ascii")):
        raise _csrf_error("this request needs the page's CSRF token (X-CSRF-Token); reload "
                          "the page and try again",
                          "请求缺少或带有错误的 CSRF 令牌（X-CSRF-Token），请刷新页面后重试",
                          "X-CSRF-Token")


def set_session_cookie(response: Response, token: str, *, base_url: str,
                       max_age_seconds: int) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure
    whenever the service is reached over https, the whole site as its path."""
    response.set_cookie(SESSION_COOKIE, token, max_age=max_age_seconds, path="/",
                        httponly=True, samesite="strict",
                        secure=urlsplit(base_url).scheme == "https")


def clear_session_cookie(response: Response, *, base_url: str) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=urlsplit(base_url).scheme == "https")
