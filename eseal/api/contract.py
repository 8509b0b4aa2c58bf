"""The error contract of the HTTP service: every non-2xx answer is ``{code, message,
message_zh, field}`` (``field`` where one input is to blame).

Route code raises ``EsealError``s with its own domain codes. This module names the codes
that belong to the *door* of the service (declared with every other code, status and titles,
in :mod:`eseal.error_codes`) — what goes wrong before or around a route's
own logic: a body too large, not UTF-8, not JSON, nested too deep; a number out of range; a
control character; an unknown path or method; a schema mismatch; the CA's database lost or
unreachable (503 ``DATABASE_UNAVAILABLE`` with ``Retry-After``: a restart of the database
costs the requests in flight, and the pool's pre-ping recovers without restarting eseal);
a bug. FastAPI and
Starlette answer those with ``{"detail": …}`` by default; :func:`install` replaces every such
handler so no answer leaves the service without a stable code, English and Chinese text and
the field at fault when one is to blame. The CA's own database going away is a coded 503
(``DATABASE_UNAVAILABLE``), not a bug.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from eseal.errors import REGISTRY, EsealError, ServiceUnavailable, service_failure
from eseal.store.db import is_unavailable, unavailable

log = logging.getLogger("eseal.api")


@dataclass(frozen=True)
class DoorCode:
    """One stable code of the door; its status and generic text are the registry's
    (:mod:`eseal.error_codes`)."""

    code: str

    @property
    def status(self) -> int:
        return REGISTRY[self.code].status

    @property
    def message(self) -> str:
        return REGISTRY[self.code].title

    @property
    def message_zh(self) -> str:
        return REGISTRY[self.code].title_zh

    def error(self, *, field: str | None = None, message: str = "", message_zh: str = "",
              details: dict[str, Any] | None = None) -> EsealError:
        """An ``EsealError`` carrying this code; specific text when given, else the title."""
        return EsealError(self.code, message, message_zh, field=field, details=details)


BODY_TOO_LARGE = DoorCode("BODY_TOO_LARGE")
BODY_NOT_UTF8 = DoorCode("BODY_NOT_UTF8")
BODY_NOT_JSON = DoorCode("BODY_NOT_JSON")
BODY_TOO_DEEP = DoorCode("BODY_TOO_DEEP")
VALUE_OUT_OF_RANGE = DoorCode("VALUE_OUT_OF_RANGE")
CONTROL_CHARACTER = DoorCode("CONTROL_CHARACTER")
REQUEST_INVALID = DoorCode("REQUEST_INVALID")
NOT_FOUND = DoorCode("NOT_FOUND")
METHOD_NOT_ALLOWED = DoorCode("METHOD_NOT_ALLOWED")
HTTP_MALFORMED = DoorCode("HTTP_MALFORMED")
HTTP_ERROR = DoorCode("HTTP_ERROR")
INTERNAL_ERROR = DoorCode("INTERNAL_ERROR")

#: every code the door can answer (tests walk this)
DOOR_CODES: tuple[DoorCode, ...] = (
    BODY_TOO_LARGE, BODY_NOT_UTF8, BODY_NOT_JSON, BODY_TOO_DEEP, VALUE_OUT_OF_RANGE,
    CONTROL_CHARACTER, REQUEST_INVALID, NOT_FOUND, METHOD_NOT_ALLOWED, HTTP_MALFORMED,
    HTTP_ERROR, INTERNAL_ERROR)

#: pydantic error types that mean "a number outside its bounds" (ids, limits, days), a
#: number of thousands of digits included
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than",
                           "less_than_equal", "int_parsing_size"})
#: where pydantic locates a parameter; the field is what follows
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def response(err: EsealError, headers: dict[str, str] | None = None) -> JSONResponse:
    """The JSON answer for ``err``; ``field`` names the input at fault when there is one
    (absent otherwise: a login refusal, for one, must not say which part failed).

    A 413 also closes the connection, so the server stops receiving a body it refused
    instead of reading and discarding the rest of it.
    """
    body = err.to_dict()
    extra = dict(headers or {})
    if err.status == 413:
        extra["Connection"] = "close"
    return JSONResponse(status_code=err.status, content=body, headers=extra or None)


def validation_error(exc: RequestValidationError) -> EsealError:
    """The first schema error as a coded error naming its field."""
    errors = exc.errors()
    first: dict[str, Any] = errors[0] if errors else {}
    loc = [str(p) for p in first.get("loc", ())]
    if loc and loc[0] in _LOCATIONS:
        loc = loc[1:]
    where = ".".join(loc) or None
    kind = str(first.get("type", ""))
    reason = str(first.get("msg", "invalid"))
    if kind == "json_invalid":
        return BODY_NOT_JSON.error(field="body")
    if kind in _RANGE_ERRORS:
        return VALUE_OUT_OF_RANGE.error(
            field=where, message=f"{where or 'value'}: {reason}",
            message_zh=f"{where or '数值'} 超出允许范围")
    return REQUEST_INVALID.error(field=where, message=f"{where or 'request'}: {reason}",
                                 message_zh=f"请求参数无效：{where or '请求'}")


def _body_parse_error(cause: BaseException | None) -> EsealError:
    """FastAPI's bare 400 "error parsing the body", classified by what caused it."""
    if isinstance(cause, UnicodeDecodeError):
        return BODY_NOT_UTF8.error(field="body")
    if isinstance(cause, RecursionError):
        return BODY_TOO_DEEP.error(field="body")
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return VALUE_OUT_OF_RANGE.error(field="body")
    return BODY_NOT_JSON.error(field="body")


def http_error(exc: StarletteHTTPException) -> EsealError:
    """Starlette's and FastAPI's own HTTP errors (404, 405, 400 …) as coded errors."""
    if exc.status_code == 404:
        return NOT_FOUND.error()
    if exc.status_code == 405:
        return METHOD_NOT_ALLOWED.error()
    if exc.status_code == 400:
        return _body_parse_error(exc.__cause__)
    err = HTTP_ERROR.error(message=f"the request was refused ({exc.status_code})",
                           message_zh=f"请求被拒绝（{exc.status_code}）")
    err.status = exc.status_code
    return err


def _token_failure(exc: Exception) -> EsealError | None:
    """A PKCS#11 error no token function translated. The only token this service opens is
    the CA's own, so it is the service's failure (503), not a bug and not the caller's."""
    if type(exc).__module__.split(".")[0] != "pkcs11":
        return None
    return ServiceUnavailable("CA_TOKEN_FAILED", f"the CA's token failed: {type(exc).__name__}",
                              "CA 自身的 USB-Key 操作失败")


def install(app: FastAPI) -> None:
    """Register the handlers that put every non-2xx answer under the contract."""

    @app.exception_handler(EsealError)
    async def eseal_error(request: Request, exc: EsealError) -> JSONResponse:
        return response(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return response(validation_error(exc))

    @app.exception_handler(StarletteHTTPException)
    async def starlette_error(request: Request,
                              exc: StarletteHTTPException) -> JSONResponse:
        return response(http_error(exc), headers=dict(exc.headers or {}))

    @app.exception_handler(DBAPIError)
    async def database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        # handled here, not in the catch-all below: Starlette re-raises what reaches that
        # one, and the server then drops the keep-alive connection after the answer
        if is_unavailable(exc):
            log.warning("database unavailable on %s %s: %s", request.method,
                        request.url.path, type(exc.orig).__name__)
            return response(unavailable(exc), headers={"Retry-After": "1"})
        down = service_failure(exc)
        if down is not None:  # e.g. the file is no database any more
            log.error("database unusable on %s %s: %s", request.method, request.url.path,
                      type(exc).__name__)
            return response(down)
        log.error("database error on %s %s", request.method, request.url.path,
                  exc_info=exc)
        return response(INTERNAL_ERROR.error())

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        lost = database_failure(exc)
        if lost is not None:
            log.warning("database unavailable on %s %s: %s", request.method,
                        request.url.path, type(lost).__name__)
            return response(unavailable(lost), headers={"Retry-After": "1"})
        down = service_failure(exc) or _token_failure(exc)
        if down is not None:  # the CA's own database or token: a coded 503, logged
            log.error("service unavailable on %s %s: %s", request.method, request.url.path,
                      type(exc).__name__)
            return response(down)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return response(INTERNAL_ERROR.error())


def database_failure(exc: BaseException) -> BaseException | None:
    """The database failure (connection lost, server restarting, lock wait timed out) that
    caused ``exc``, if one did: such an error is the CA's own database, a 503, not a bug."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if is_unavailable(current):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
