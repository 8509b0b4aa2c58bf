"""Every page route, walked as every role and as nobody, over a real ``eseal serve``.

The page routes are found in the application itself (every GET under ``/portal`` and
``/console`` whose dependency declares ``page_roles``), so a page added later is walked too;
a page with a path parameter needs a sample here, or this test fails and says so. A role a
page is for gets the page (200) or the page's door (303 to its own start); every other role
gets a 403 page; nobody gets sent to the login page. The JSON routes behind the pages check
roles on their own (tests/auth/test_roles.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from eseal.api.app import create_app
from eseal.api.limits import api_routes
from tests.web.test_web_session import browser
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world

ROLES = {"agent": "a-agent", "legal_rep": "a-rep", "officer": "officer", "auditor": "auditor"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("roles"), ENTERPRISE_HOLDERS)


def page_routes(world: World) -> dict[str, frozenset[str]]:
    """path -> the roles its page is for, from the application's own routes."""
    app = create_app(world.settings)
    found: dict[str, frozenset[str]] = {}
    for route in api_routes(app):
        if not isinstance(route, APIRoute) or "GET" not in route.methods:
            continue
        roles = [getattr(dep.call, "page_roles", None) for dep in route.dependant.dependencies]
        declared = [r for r in roles if r is not None]
        if declared:
            found[route.path] = declared[0]
    return found


def samples(world: World) -> dict[str, str]:
    """A value for each path parameter a page may have (extend when a page adds one)."""
    serial = world.holders["a-agent"].serial
    filing = world.query("SELECT min(id) FROM filings")[0][0] or 1
    return {"serial": serial, "uscc": world.holders["a-agent"].uscc or "",
            "filing_id": str(filing), "account_id": "1", "request_id": "1", "event_id": "1"}


def concrete(path: str, values: dict[str, str]) -> str:
    import re

    def fill(match: Any) -> str:
        name = match.group(1)
        if name not in values:
            pytest.fail(f"page {path} has a path parameter {{{name}}} without a sample in "
                        "tests/web/test_page_roles.py samples()")
        return values[name]

    return re.sub(r"\{(\w+)(?::\w+)?\}", fill, path)


def test_the_walk_finds_the_portal_and_the_console(world: World) -> None:
    routes = page_routes(world)
    assert any(p.startswith("/console") for p in routes)
    assert all(p.startswith(("/portal", "/console")) for p in routes)


def test_every_page_route_answers_each_role_as_declared_and_nobody_is_sent_to_log_in(
        world: World) -> None:
    routes = page_routes(world)
    values = samples(world)
    clients: dict[str, httpx.Client] = {role: browser(world, label)[0]
                                        for role, label in ROLES.items()}
    problems: list[str] = []
    try:
        for path, allowed in sorted(routes.items()):
            url = concrete(path, values)
            nobody = httpx.get(f"{world.server.url}{url}", timeout=30)
            if nobody.status_code != 303 or not nobody.headers["location"].startswith(
                    "/portal/login?next="):
                problems.append(f"{url} as nobody: {nobody.status_code}")
            for role, client in clients.items():
                got = client.get(url)
                if role in allowed:
                    ok = got.status_code == 200 or (
                        got.status_code == 303 and got.headers["location"].startswith(
                            ("/portal/", "/console/")))
                    ok = ok or (got.status_code == 404 and "{" in path)  # a sample it lacks
                else:
                    ok = got.status_code == 403 and 'data-code="ROLE_FORBIDDEN"' in got.text
                if not ok:
                    problems.append(f"{url} as {role}: {got.status_code}")
                if got.status_code == 200:
                    csp = got.headers.get("content-security-policy", "")
                    if "frame-ancestors 'none'" not in csp or "<script>" in got.text:
                        problems.append(f"{url} as {role}: CSP missing or inline script")
    finally:
        for client in clients.values():
            client.close()
    assert not problems, "\n".join(problems)


def test_every_stylesheet_closes_every_block_it_opens() -> None:
    """A rule block left open swallows every rule after it — the browser drops them silently
    (a merge once lost two closing braces and the verify page's seal outlines fell off the
    page image); count the braces outside comments and strings."""
    import re
    from importlib import resources

    static = resources.files("eseal.api").joinpath("static")
    for item in static.iterdir():
        if not item.name.endswith(".css"):
            continue
        text = re.sub(r"/\*.*?\*/", "", item.read_text(encoding="utf-8"), flags=re.S)
        text = re.sub(r'"[^"\n]*"|\'[^\'\n]*\'', '""', text)
        depth = 0
        for number, line in enumerate(text.split("\n"), 1):
            depth += line.count("{") - line.count("}")
            assert depth >= 0, f"{item.name}:{number}: a closing brace too many"
        assert depth == 0, f"{item.name}: {depth} block(s) never closed"
