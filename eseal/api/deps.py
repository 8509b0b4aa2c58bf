"""FastAPI dependencies shared by the route modules."""

from __future__ import annotations

from fastapi import Request

from eseal.ca.authority import Authority
from eseal.settings import Settings


def get_authority(request: Request) -> Authority:
    return request.app.state.authority  # type: ignore[no-any-return]


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]
