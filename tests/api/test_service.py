"""The service runs under a real uvicorn and keeps eseal's error contract."""

from __future__ import annotations

import httpx

from eseal.settings import Settings
from tests.conftest import LiveServer


def test_service_answers_health_and_publishes_openapi(
        served_home: tuple[Settings, LiveServer]) -> None:
    _, server = served_home
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
    spec = httpx.get(f"{server.url}/openapi.json").json()
    assert spec["info"]["title"] == "eseal"
    assert httpx.get(f"{server.url}/docs").status_code == 200


def test_unknown_route_is_a_plain_404(served_home: tuple[Settings, LiveServer]) -> None:
    _, server = served_home
    assert httpx.get(f"{server.url}/no/such/thing").status_code == 404
