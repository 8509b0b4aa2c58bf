"""How large a request body each route accepts: the one table.

Three kinds of route, told apart by how FastAPI declares them:

* **json** — a pydantic model or ``Body()`` parameter (``route.body_field``): control
  messages, a few KB to tens of KB. The door reads them whole (bounded) and checks them
  before FastAPI parses them (:mod:`eseal.api.door`).
* **raw** — the route reads the body itself with :func:`eseal.api.bodies.read_bounded` and
  declares it in ``openapi_extra`` (PDF uploads, OCSP, timestamp requests). Those routes give
  their own answer to an oversized body (an audited ``UPLOAD_TOO_LARGE``, an OCSP or TSA
  protocol error); the door only makes sure none can read past its limit.
* **none** — every other route takes no body; a declared one over :data:`NO_BODY_LIMIT` is
  refused before the route runs.

A route whose body is neither (a form, a multipart upload) makes :func:`route_rules` raise
when the service starts, so a new kind of body cannot slip past the bound unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fastapi import FastAPI
from fastapi.params import Form
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import BaseRoute

from eseal.settings import Settings

BodyKind = Literal["json", "raw", "none"]

KIB = 1024
#: a route that takes no body still tolerates a client that sends ``{}`` or similar
NO_BODY_LIMIT = 1 * KIB
#: a JSON control message not listed below
JSON_LIMIT = 16 * KIB
#: JSON routes whose messages carry more (CSRs in PEM, certificates, batches)
JSON_LIMITS: dict[tuple[str, str], int] = {
    ("POST", "/auth/verify"): 32 * KIB,  # a 16 KiB certificate + signature, base64
    ("POST", "/web/login"): 32 * KIB,  # the same answer, for a page (cookie session)
    ("POST", "/enroll"): 96 * KIB,  # up to four 16 KiB PEM CSRs, JSON-escaped
    ("POST", "/officer/certificates"): 32 * KIB,  # one 16 KiB PEM CSR
    ("POST", "/officer/renewals"): 1024 * KIB,  # up to 10,000 serials
    ("POST", "/officer/renewals/preview"): 1024 * KIB,  # the same body
    ("POST", "/verify/receipt"): 64 * KIB,  # receipt + RFC 3161 token with its chain
}


def raw_limits(settings: Settings) -> dict[tuple[str, str], int]:
    """Routes that read their own body, with the limit each one enforces itself."""
    from eseal.ca import ocsp, tsa

    upload = settings.upload_limit_bytes
    return {
        ("POST", "/filings"): upload,
        ("POST", "/filings/{filing_id}/seal"): upload,
        ("POST", "/verify"): upload,
        ("POST", "/verify/pages"): upload,
        ("POST", "/ocsp"): ocsp.MAX_REQUEST_BYTES,
        ("POST", "/tsa"): tsa.MAX_REQUEST_BYTES,
    }


@dataclass(frozen=True)
class BodyRule:
    """What the door lets through for one route and method."""

    kind: BodyKind
    limit: int


def _declares_raw_body(route: APIRoute) -> bool:
    extra = route.openapi_extra or {}
    return "requestBody" in extra


def rule_for(route: APIRoute, method: str, raw: dict[tuple[str, str], int]) -> BodyRule:
    """The rule of one route; raises for a body kind the door cannot bound."""
    key = (method, route.path)
    field = route.body_field
    if field is not None:
        if isinstance(field.field_info, Form):
            raise RuntimeError(f"{method} {route.path}: form bodies are not bounded by the "
                               "door (eseal.api.door); add them before using one")
        return BodyRule("json", JSON_LIMITS.get(key, JSON_LIMIT))
    if key in raw:
        return BodyRule("raw", raw[key])
    if _declares_raw_body(route):
        raise RuntimeError(f"{method} {route.path} reads a raw body but has no limit in "
                           "eseal.api.limits.raw_limits")
    return BodyRule("none", NO_BODY_LIMIT)


def api_routes(app: FastAPI) -> list[BaseRoute]:
    """Every route the app serves, included routers flattened, with full paths."""
    return [context.route for context in iter_route_contexts(app.routes)]


def route_rules(app: FastAPI, settings: Settings
                ) -> list[tuple[BaseRoute, dict[str, BodyRule]]]:
    """Every route of ``app`` with its rule per method (non-API routes take no body)."""
    raw = raw_limits(settings)
    table: list[tuple[BaseRoute, dict[str, BodyRule]]] = []
    for route in api_routes(app):
        if isinstance(route, APIRoute):
            table.append((route, {m: rule_for(route, m, raw) for m in route.methods}))
        else:
            table.append((route, {}))
    return table
