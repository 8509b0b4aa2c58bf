"""The login message: the exact bytes a holder's login key signs, shared by both sides.

:func:`login_message` is ``b"eseal-login-v1\\x00"`` followed by the canonical JSON (sorted
keys, no spaces, UTF-8) of nonce, origin, purpose and issued_at. The client puts the origin
*it* believes it talks to into those bytes (:func:`normalize_origin`), so a phishing site
that relays our challenge gets a signature over its own origin, which the server refuses.
The holder's client (``eseal.holder``) and the server (``eseal.auth``) both import this one
definition, so they cannot drift.
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from eseal.errors import InvalidInput

if TYPE_CHECKING:
    pass


LOGIN_DOMAIN = b"eseal-login-v1\x00"
PURPOSE = "login"


# --- the signed bytes (client and server) ------------------------------------------------------
def normalize_origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased, default ports dropped."""
    parts = urlsplit(url.strip())
    scheme = (parts.scheme or "").lower()
    host = (parts.hostname or "").lower()
    if scheme not in ("http", "https") or not host:
        raise InvalidInput("ORIGIN_INVALID", f"not an http(s) URL: {url!r}",
                           f"不是 http(s) 地址：{url!r}", field="origin")
    try:
        port = parts.port
    except ValueError:
        raise InvalidInput("ORIGIN_INVALID", f"bad port in {url!r}", f"端口无效：{url!r}",
                           field="origin") from None
    if ":" in host:
        host = f"[{host}]"
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def login_message(*, nonce: str, origin: str, issued_at: str, purpose: str = PURPOSE) -> bytes:
    """The exact bytes the login key signs (domain-separated, canonical JSON)."""
    body = {"issued_at": issued_at, "nonce": nonce, "origin": origin, "purpose": purpose}
    return LOGIN_DOMAIN + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
