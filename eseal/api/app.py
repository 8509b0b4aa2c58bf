"""The FastAPI application: one Authority per process, eseal's error contract on every route.

Every request passes the door first (:mod:`eseal.api.door`: bounded bodies, clean text, sane
numbers). Every non-2xx answer carries the contract (:mod:`eseal.api.contract`): an
``EsealError`` becomes its JSON body (code, English, Chinese, field); a schema mismatch,
an unknown path or method, a malformed body get the door's codes; anything else is a bug,
logged with its traceback and answered 500 ``INTERNAL_ERROR`` without details.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

import eseal
from eseal.api import contract
from eseal.api.door import BodyDoor
from eseal.api.web import viewer
from eseal.settings import Settings, load_settings


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

    contract.install(app)
    viewer.install(app)
    app.add_middleware(BodyDoor, fastapi_app=app, settings=settings)

    @app.get("/healthz", tags=["service"], summary="Liveness: the process answers")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for module in _route_modules():
        app.include_router(module.router)
    return app
