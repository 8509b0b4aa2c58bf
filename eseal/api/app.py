"""The FastAPI application: one Authority per process, eseal's error contract on every route.

An ``EsealError`` becomes its 4xx JSON body (code, English, Chinese, field); a request that
does not match the schema becomes 422 ``REQUEST_INVALID`` naming the field; anything else is
a bug, logged with its traceback and answered 500 ``INTERNAL_ERROR`` without details.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

import eseal
from eseal.errors import EsealError
from eseal.settings import Settings, load_settings

log = logging.getLogger("eseal.api")


def _route_modules() -> list[Any]:
    import eseal.api as package

    names = sorted(m.name for m in pkgutil.iter_modules(package.__path__)
                   if m.name.startswith("routes_"))
    return [importlib.import_module(f"eseal.api.{name}") for name in names]


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app for a home (default: ``$ESEAL_HOME``); uvicorn calls it as a factory."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from eseal.ca.authority import Authority

        app.state.authority = Authority.open(settings)
        try:
            yield
        finally:
            app.state.authority.close()

    app = FastAPI(
        title="eseal",
        version=eseal.__version__,
        summary="Enterprise CA with USB-Key login and PDF electronic seals (电子签章)",
        lifespan=lifespan,
    )
    app.state.settings = settings

    @app.exception_handler(EsealError)
    async def eseal_error(request: Request, exc: EsealError) -> JSONResponse:
        return JSONResponse(status_code=exc.status, content=exc.to_dict())

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query"))
        return JSONResponse(status_code=422, content={
            "code": "REQUEST_INVALID",
            "message": f"{where or 'request'}: {first.get('msg', 'invalid')}",
            "message_zh": f"请求参数无效：{where or '请求'}",
            "field": where or None,
        })

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse(status_code=500, content={
            "code": "INTERNAL_ERROR", "message": "internal error", "message_zh": "服务内部错误"})

    @app.get("/healthz", tags=["service"], summary="Liveness: the process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for module in _route_modules():
        app.include_router(module.router)
    return app
