"""axe-core over every page, as every role that may see it, in Debian's chromium at desktop
(1280×800) and phone (375×800) width: no WCAG 2.1 A/AA violation of impact serious or critical.

The pages are found the way tests/web/test_page_roles.py finds them — in the application's
own routes — so a page added later is checked too: a page with ``viewer_for(...)`` roles is
loaded as each of those roles (its path parameters from that test's ``samples()``) and once
as a role it is not for (the 403 error page); a page without roles and parameters (the login
pages, the public verify page) is loaded as nobody. Each is checked at 1280×800, then resized
to 375×800 and checked again.

axe comes from npm (``tests/browser/axe``, version pinned in its package-lock.json, installed
by ``make test`` with ``npm ci``). The pages' Content-Security-Policy forbids inline and
foreign script, so axe is injected with ``add_init_script(path=...)``: Chromium evaluates an
init script through the DevTools protocol, outside the page's CSP, so the page is checked
under its real policy (``bypass_csp`` would also switch the policy off for the page's own
scripts and could hide what the CSP breaks).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute

from eseal.api.app import create_app
from eseal.api.limits import api_routes
from tests.browserkit import CHROMIUM, TIMEOUT_MS, need_chromium
from tests.pdfkit import make_pdf
from tests.web.test_page_roles import ROLES, concrete, page_routes, samples
from tests.web.test_web_session import browser as page_session
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world

AXE = Path(__file__).parent / "axe" / "node_modules" / "axe-core" / "axe.min.js"
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
GRAVE = ("serious", "critical")
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 800}}
#: pages whose script changes them after load: checked once this holds (the login page asks
#: for the extension, and without it shows the install help — the state checked here)
SETTLED = {"/portal/login": "() => document.getElementById('keys').textContent !== '\u2026'"}
RUN_AXE = """async (tags) => {
  const result = await axe.run(document, {runOnly: {type: 'tag', values: tags},
                                          resultTypes: ['violations']});
  return result.violations.map((v) => ({id: v.id, impact: v.impact, help: v.help,
    helpUrl: v.helpUrl, targets: v.nodes.map((n) => n.target.join(' ')).slice(0, 5)}));
}"""


def need_axe() -> Path:
    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed at {AXE}: `make test` installs it "
                    "(cd tests/browser/axe && npm ci --omit=dev)")
    return AXE


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    need_chromium()
    need_axe()
    for world in build_world(tmp_path_factory.mktemp("a11y"), ENTERPRISE_HOLDERS):
        draft(world)  # so the filing pages (review, sealing) have a filing to show
        yield world


def draft(world: World) -> None:
    """A two-page draft filing of enterprise A, submitted by its agent."""
    with world.login("a-agent") as agent:
        answer = httpx.post(f"{world.server.url}/filings", params={"title": "2025 年度报告"},
                            content=make_pdf(pages=2).data, timeout=60,
                            headers={"Authorization": f"Bearer {agent.session}",
                                     "Content-Type": "application/pdf"})
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def chromium_browser(world: World) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def public_pages(world: World) -> list[str]:
    """Pages that declare no roles and take no parameter — the login pages, the public verify
    page, the doors — loaded as nobody: the GET routes left out of the OpenAPI schema (the
    pages are; the JSON API is not) other than the static files."""
    app = create_app(world.settings)
    found = []
    for route in api_routes(app):
        if (isinstance(route, APIRoute) and "GET" in route.methods
                and not route.include_in_schema and "{" not in route.path
                and not route.path.startswith("/static")
                and not any(getattr(d.call, "page_roles", None)
                            for d in route.dependant.dependencies)):
            found.append(route.path)
    return sorted(found)


def visits(world: World) -> list[tuple[str | None, str, str]]:
    """(role or None for nobody, route path, URL): every page as each role it is for, once as
    a role it is not for, and the public pages as nobody (the login page also in English and
    with the reason it was sent there)."""
    values = samples(world)
    out: list[tuple[str | None, str, str]] = []
    for path, allowed in sorted(page_routes(world).items()):
        url = concrete(path, values)
        out += [(role, path, url) for role in ROLES if role in allowed]
        outsider = next((role for role in ROLES if role not in allowed), None)
        if outsider:
            out.append((outsider, path, url))
    out += [(None, path, path) for path in public_pages(world)]
    out += [(None, "/portal/login", "/portal/login?next=%2Fconsole%2F&why=SESSION_EXPIRED"),
            (None, "/portal/login", "/portal/login?lang=en")]
    return out


def axe_violations(page: Any, path: str = "") -> list[dict[str, Any]]:
    """axe's serious and critical WCAG 2.1 A/AA violations on the loaded page."""
    try:
        page.wait_for_load_state("networkidle", timeout=10_000)
    except Exception:  # a page that keeps polling is checked as it stands
        pass
    if path in SETTLED:
        page.wait_for_function(SETTLED[path])
    found = page.evaluate(RUN_AXE, TAGS)
    return [v for v in found if v["impact"] in GRAVE]


def sessions(world: World) -> dict[str, str]:
    cookies = {}
    for role, label in ROLES.items():
        client, _ = page_session(world, label)
        with client:
            cookies[role] = client.cookies["eseal_session"]
    return cookies


def test_axe_reports_a_grave_violation_on_a_page_that_has_one(chromium_browser: Any) -> None:
    """The check can fail: a page with an unlabelled input, an image without text and grey
    on white text is reported."""
    context = chromium_browser.new_context()
    context.add_init_script(path=str(need_axe()))
    try:
        page = context.new_page()
        page.set_content('<html><body><img src="data:,"><input type="text">'
                         '<p style="color:#bbb;background:#fff">faint</p></body></html>')
        rules = {v["id"] for v in axe_violations(page)}
    finally:
        context.close()
    assert {"image-alt", "label", "color-contrast"} <= rules, rules


def test_no_page_has_a_serious_or_critical_accessibility_violation_at_either_width(
        world: World, chromium_browser: Any) -> None:
    """Each page is loaded once at desktop width and checked, then resized to phone width
    (the stylesheet's media queries apply) and checked again."""
    cookies = sessions(world)
    problems: list[str] = []
    checked: set[str] = set()
    skipped: list[str] = []
    first, *others = VIEWPORTS.items()
    for who, route, url in visits(world):
        context = chromium_browser.new_context(viewport=first[1], locale="zh-CN")
        context.set_default_timeout(TIMEOUT_MS)
        context.add_init_script(path=str(AXE))
        if who is not None:
            context.add_cookies([{"name": "eseal_session", "value": cookies[who],
                                  "url": world.server.url, "httpOnly": True,
                                  "sameSite": "Strict"}])
        as_who = f"{url} as {who or 'nobody'}"
        try:
            page = context.new_page()
            answer = page.goto(f"{world.server.url}{url}")
            status = answer.status if answer else 0
            landed = page.url.removeprefix(world.server.url)
            kind = answer.headers.get("content-type", "") if answer else ""
            if "text/html" not in kind:
                if status == 200 and not kind.startswith("application/json"):
                    skipped.append(f"{as_who}: {kind}")  # an image a page shows, not a page
                    continue
                if status == 404 and ("{" in route or landed != url):
                    # a sample this world lacks, or a door leading to a page not built yet:
                    # test_page_roles checks the doors, and each page is walked on its own
                    skipped.append(f"{as_who} -> {landed}: {status}")
                    continue
                problems.append(f"{as_who}: {status}, not a page")
                continue
            checked.add(landed.split("?")[0] + f" ({status})")
            for name, size in [first, *others]:
                page.set_viewport_size(size)
                for v in axe_violations(page, landed.split("?")[0]):
                    problems.append(f"{as_who} -> {landed} ({status}) [{name}]: {v['id']} "
                                    f"({v['impact']}) {v['help']} — {'; '.join(v['targets'])}"
                                    f" — {v['helpUrl']}")
        finally:
            context.close()
    print("checked:", *sorted(checked), "not pages:", *skipped, sep="\n  ")
    assert any(c.startswith("/portal/login") for c in checked), checked
    assert any("(403)" in c for c in checked), checked  # the error page was checked
    assert not problems, "\n".join(problems)


def test_the_public_pages_include_the_login_page(world: World) -> None:
    assert "/portal/login" in public_pages(world)
    assert httpx.get(f"{world.server.url}/portal/login", timeout=30).status_code == 200
