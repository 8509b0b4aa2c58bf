"""The page session over a real ``eseal serve``: an HttpOnly, SameSite=Strict cookie the page's
script never sees, CSRF on every change made with it, cross-site requests refused, the pages'
security headers, and the officer's step-up (a USB-Key proof within five minutes) for the
gravest actions — including a re-authentication with somebody else's key, which is refused."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from eseal import clock
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world, challenge_at, signed_answer


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("web"), ENTERPRISE_HOLDERS)


def page_login(world: World, label: str, *, url: str | None = None,
               cookies: httpx.Cookies | None = None, step_up: bool = False,
               ) -> httpx.Response:
    url = url or world.server.url
    answer = signed_answer(world, label, challenge_at(url))
    return httpx.post(f"{url}/web/login", json={**answer, "step_up": step_up},
                      cookies=cookies, timeout=30)


def browser(world: World, label: str, *, url: str | None = None) -> tuple[httpx.Client, str]:
    """An HTTP client holding a page session's cookie, and the page's CSRF token."""
    url = url or world.server.url
    answer = page_login(world, label, url=url)
    assert answer.status_code == 200, answer.text
    client = httpx.Client(base_url=url, cookies=answer.cookies, timeout=30)
    return client, answer.json()["csrf_token"]


def test_page_login_sets_an_httponly_samesite_strict_cookie_and_never_returns_the_token(
        world: World) -> None:
    answer = page_login(world, "a-agent")
    assert answer.status_code == 200, answer.text
    header = answer.headers["set-cookie"]
    assert header.startswith("eseal_session=")
    attributes = {part.strip().lower() for part in header.split(";")}
    assert "httponly" in attributes and "samesite=strict" in attributes and "path=/" in attributes
    assert "secure" not in attributes  # plain http on loopback; https adds Secure
    token = answer.cookies["eseal_session"]
    assert token not in answer.text and "session" not in answer.json()
    assert answer.json()["next"] == "/portal/home"


def test_a_change_on_the_cookie_session_without_the_csrf_token_is_403_and_changes_nothing(
        world: World) -> None:
    client, csrf = browser(world, "a-agent")
    with client:
        for headers in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": csrf[:-1]}):
            refused = client.post("/web/logout", headers=headers)
            assert refused.status_code == 403, refused.text
            assert refused.json()["code"] == "CSRF_TOKEN_INVALID"
            assert refused.json()["field"] == "X-CSRF-Token"
        assert client.get("/auth/me").status_code == 200  # still logged in
        token = client.cookies["eseal_session"]
        done = client.post("/web/logout", headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200, done.text
        assert "eseal_session" not in client.cookies  # the cookie is dropped ...
        ended = httpx.get(f"{world.server.url}/auth/me", cookies={"eseal_session": token})
        assert ended.json()["code"] == "SESSION_EXPIRED"  # ... and the session is over


@pytest.mark.parametrize("headers", [{"Origin": "http://evil.example"},
                                     {"Sec-Fetch-Site": "cross-site"},
                                     {"Origin": "null"}])
def test_a_cross_site_post_is_403_with_or_without_the_cookie(world: World,
                                                               headers: dict[str, str]) -> None:
    client, csrf = browser(world, "a-rep")
    with client:
        with_cookie = client.post("/web/logout", headers={**headers, "X-CSRF-Token": csrf})
        assert with_cookie.status_code == 403 and with_cookie.json()["code"] == "CSRF_TOKEN_INVALID"
        bare = httpx.post(f"{world.server.url}/filings", headers=headers, content=b"%PDF")
        assert bare.status_code == 403 and bare.json()["code"] == "CSRF_TOKEN_INVALID"
        assert client.get("/auth/me").status_code == 200


def test_a_page_without_a_session_goes_to_the_login_page_remembering_where_it_was(
        world: World) -> None:
    answer = httpx.get(f"{world.server.url}/console/", timeout=30)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/portal/login?next=%2Fconsole%2F&why=SESSION_REQUIRED"
    login = httpx.get(f"{world.server.url}/portal/login", timeout=30)
    assert login.status_code == 200
    csp = login.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert login.headers["x-frame-options"] == "DENY"
    assert "<script>" not in login.text  # no inline script
    english = httpx.get(f"{world.server.url}/portal/login?lang=en", timeout=30)
    assert "Log in with your USB-Key" in english.text and 'lang="en"' in english.text


def test_an_enterprise_role_gets_a_403_page_from_the_console(world: World) -> None:
    client, _ = browser(world, "a-agent")
    with client:
        page = client.get("/console/")
        assert page.status_code == 403
        assert page.headers["content-type"].startswith("text/html")
        assert 'data-code="ROLE_FORBIDDEN"' in page.text


def test_next_only_leads_to_this_sites_pages(world: World) -> None:
    url = world.server.url
    for asked, expected in (("//evil.example/x", "/portal/home"),
                            ("https://evil.example/", "/portal/home"),
                            ("/portal/filings", "/portal/filings")):
        answer = signed_answer(world, "a-agent", challenge_at(url))
        got = httpx.post(f"{url}/web/login", json={**answer, "next": asked}, timeout=30)
        assert got.json()["next"] == expected


def test_revoke_without_a_fresh_usb_key_proof_is_refused_and_audited_then_step_up_allows_it(
        world: World) -> None:
    client, csrf = browser(world, "officer")
    later = world.start("later", now=clock.now() + timedelta(minutes=6))
    serial = world.holders["b-agent"].serial
    with client, httpx.Client(base_url=later.url, cookies=client.cookies, timeout=30) as late:
        refused = late.post(f"/officer/certificates/{serial}/revoke",
                            json={"reason": "keyCompromise"}, headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "STEP_UP_REQUIRED"
        status = world.query("SELECT status FROM certificates WHERE serial = :s", s=serial)
        assert status[0][0] == "good"
        audited = world.query("SELECT outcome FROM audit_events WHERE action = 'officer.step_up'")
        assert ("refused",) in [tuple(r) for r in audited]

        mismatch = page_login(world, "auditor", url=later.url, cookies=late.cookies,
                              step_up=True)
        assert mismatch.status_code == 403
        assert mismatch.json()["code"] == "STEP_UP_ACCOUNT_MISMATCH"

        fresh = page_login(world, "officer", url=later.url, cookies=late.cookies, step_up=True)
        assert fresh.status_code == 200, fresh.text
        late.cookies = fresh.cookies
        new_csrf = fresh.json()["csrf_token"]
        assert new_csrf != csrf
        # the replaced session is over; a wrong reason is a field error, nothing revoked
        bad = late.post(f"/officer/certificates/{serial}/revoke", json={"reason": ""},
                        headers={"X-CSRF-Token": new_csrf})
        assert bad.status_code == 422 and bad.json()["field"] == "reason", bad.text
        assert client.get("/auth/me").status_code == 401


def test_the_language_switch_keeps_the_pages_query(world: World) -> None:
    client, _ = browser(world, "officer")
    with client:
        page = client.get("/console/certificates", params={"holder": "王五", "status": "good"})
        assert page.status_code == 200
        switch = ('href="/console/certificates?holder=%E7%8E%8B%E4%BA%94&amp;status=good'
                  '&amp;lang=en"')
        assert switch in page.text
        english = client.get("/console/certificates",
                             params={"holder": "王五", "status": "good", "lang": "en"})
        assert "lang=zh" in english.text and "holder=%E7%8E%8B%E4%BA%94" in english.text
