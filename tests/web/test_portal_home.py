"""The portal home and 挂失 over a real ``eseal serve`` with real SoftHSM USB-Keys.

The home shows the enterprise exactly as registered (𠮷 and all), the holder and role, the
certificates on the holder's own key(s) and the enterprise's seal with days left counted as
the expiry notices count them, the renewal window of the RA's rules and what a renewal would
give; frozen and revoked certificates in plain words chosen by status and reason; the
account's logins with new-network alerts. "This was not me" freezes exactly the holder's own
key (its login certificate, and a legal representative's seal certificate on it), ends the
holder's sessions, is audited with the holder as actor, needs the CSRF token, and answers a
second press with a code. The public verify page needs no login.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from eseal import clock
from tests.conftest import NAME_A, USCC_A, USCC_B
from tests.web.test_web_session import browser
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world

CHINA = ZoneInfo("Asia/Shanghai")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("home"), ENTERPRISE_HOLDERS)


@pytest.fixture(scope="module")
def lost(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A world of its own for 挂失 (it freezes keys): A has a second agent, 孙七."""
    holders = {**ENTERPRISE_HOLDERS, "a-clerk": ("孙七", "agent", USCC_A)}
    yield from build_world(tmp_path_factory.mktemp("lost"), holders)


def certs_of(world: World, label: str) -> dict[str, Any]:
    """profile -> (serial, status, not_after) of the certificates on a USB-Key."""
    rows = world.query("SELECT profile, serial, status, not_after FROM certificates "
                       "WHERE token_label = :l ORDER BY serial", l=label)
    return {r[0]: r for r in rows}


def as_utc(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def china_day(when: datetime) -> str:
    return when.astimezone(CHINA).strftime("%Y-%m-%d")


def article(page: str, serial: str) -> str:
    """The <article> of one certificate on the home page."""
    match = re.search(rf'<article class="card cert" data-serial="{serial}".*?</article>', page,
                      re.S)
    assert match, f"no certificate {serial} on the page"
    return match.group(0)


def home(world: World, label: str, *, url: str | None = None) -> str:
    client, _ = browser(world, label, url=url)
    with client:
        page = client.get("/portal/home")
    assert page.status_code == 200, page.text
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text
    return page.text


# --- the home page ----------------------------------------------------------------------------
def test_the_legal_rep_sees_the_registered_name_exactly_and_both_keys_with_days_left(
        world: World) -> None:
    page = home(world, "a-rep")
    assert f'<dd id="enterprise-name" lang="zh-CN">{NAME_A}</dd>' in page  # 𠮷, not 吉 or ?
    assert "𠮷" in page and USCC_A in page
    assert '<dd id="holder" lang="zh-CN">张三</dd>' in page
    assert 'data-role="legal_rep">法定代表人' in page
    now = clock.now()
    for profile in ("login", "seal"):
        _, serial, _, not_after = certs_of(world, "a-rep")[profile]
        block = article(page, serial)
        left = math.ceil((as_utc(not_after) - now) / timedelta(days=1))
        assert f'data-days-left="{left}"' in block and f"剩余 {left} 天" in block
        assert 'data-mine="true"' in block and 'data-phase="before_window"' in block
        opens = as_utc(not_after) - timedelta(days=90)
        closes = as_utc(not_after) + timedelta(days=90)
        assert f"{china_day(opens)} — {china_day(closes)}" in block
        assert "续期（年检）窗口将于" in block and china_day(opens) in block
        # renewed before expiry, the remaining days carry over: old notAfter + 1 year
        next_year = as_utc(not_after).replace(year=as_utc(not_after).year + 1)
        assert f"新证书有效期至 {china_day(next_year)}" in block
    # nobody else's key is listed as the holder's
    assert certs_of(world, "a-agent")["login"][1] not in page


def test_an_agent_sees_their_login_certificate_and_the_enterprise_seal_not_colleagues_logins(
        world: World) -> None:
    page = home(world, "a-agent")
    own = certs_of(world, "a-agent")["login"][1]
    seal = certs_of(world, "a-rep")["seal"][1]
    assert 'data-mine="true"' in article(page, own)
    assert 'data-mine="false"' in article(page, seal)  # the seal is the legal rep's key
    assert certs_of(world, "a-rep")["login"][1] not in page
    assert certs_of(world, "b-rep")["seal"][1] not in page  # another enterprise's seal
    english = httpx.get(f"{world.server.url}/portal/home?lang=en", timeout=30,
                        cookies=browser(world, "a-agent")[0].cookies).text
    assert "days left" in english and "Seal certificate" in english


def test_the_window_open_a_month_before_expiry_and_what_renewal_gives(world: World) -> None:
    _, serial, _, not_after = certs_of(world, "b-agent")["login"]
    end = as_utc(not_after)
    later = world.start("month-before", now=end - timedelta(days=30))
    page = home(world, "b-agent", url=later.url)
    block = article(page, serial)
    assert 'data-phase="window_open"' in block and 'data-days-left="30"' in block
    assert "续期窗口已开放" in block and f"请在 {china_day(end)} 到期前办理续期" in block
    assert f"新证书有效期至 {china_day(end.replace(year=end.year + 1))}" in block
    assert "class=\"days soon\"" in block


def test_the_annual_report_card_counts_down_to_30_june_china_time(world: World) -> None:
    today = clock.now().astimezone(CHINA)

    def coming(month: int, day: int) -> int:  # the next such day: the key is still good
        return today.year if (today.month, today.day) < (month, day) else today.year + 1

    year = coming(6, 20)
    # 20 June, 16:30 UTC is already 21 June in China: 9 days left, not 10
    june = world.start("june", now=datetime(year, 6, 20, 16, 30, tzinfo=UTC))
    page = home(world, "a-agent", url=june.url)
    card = re.search(r'<section class="card" id="annual-report".*?</section>', page, re.S)
    assert card and 'data-days-left="9"' in card.group(0)
    assert f"{year - 1} 年度报告须于 {year}-06-30 前报送，还剩 9 天" in card.group(0)
    assert "经营异常名录" in card.group(0)
    july = world.start("july", now=datetime(coming(7, 2), 7, 2, tzinfo=UTC))
    late = re.search(r'<section class="card" id="annual-report".*?</section>',
                     home(world, "a-agent", url=july.url), re.S)
    assert late and "已过，尚未收到" in late.group(0)


def test_frozen_then_revoked_seal_are_explained_in_plain_words_by_status_and_reason(
        world: World) -> None:
    seal = certs_of(world, "b-rep")["seal"][1]
    with world.officer() as officer:
        officer.request("POST", f"/officer/certificates/{seal}/freeze")
        block = article(home(world, "b-agent"), seal)
        assert 'data-status="hold"' in block and 'data-explains="frozen"' in block
        assert "已冻结（暂停使用）" in block and "不能用于登录，也不能加盖印章" in block
        assert 'data-next="unfreeze"' in block and "管理员核实后解冻" in block
        assert "剩余" not in block  # no countdown on a frozen certificate
        officer.request("POST", f"/officer/certificates/{seal}/revoke",
                        json={"reason": "affiliationChanged"})
    block = article(home(world, "b-agent"), seal)
    assert 'data-status="revoked"' in block and 'data-reason="affiliationChanged"' in block
    assert "已吊销（永久失效）" in block and "法定代表人已变更" in block
    assert "吊销不能撤销" in block and 'data-next="apply"' in block
    english = browser(world, "b-agent")[0]
    with english:
        text = english.get("/portal/home?lang=en").text
    assert "Revoked (for good)" in html.unescape(text)
    assert "the holder no longer holds this position" in html.unescape(text)


def test_logins_from_a_new_network_are_flagged_with_a_this_was_not_me_button(
        world: World) -> None:
    with world.login("a-agent", address="203.0.113.77"):  # someone, somewhere else
        pass
    page = home(world, "a-agent")
    alerts = re.search(r'<section class="card alert" id="login-alerts".*?</section>', page, re.S)
    assert alerts, "no new-network alert"
    assert "203.0.113.0/24" in alerts.group(0) and "这不是我" in alerts.group(0)
    newest = world.query("SELECT id FROM login_attempts WHERE network = '203.0.113.0/24'")
    assert f'data-login-id="{newest[-1][0]}"' in alerts.group(0)
    assert "本次登录" in page  # the session looking is marked, and has no button


def test_the_public_verify_page_needs_no_login_and_keeps_the_policy(world: World) -> None:
    page = httpx.get(f"{world.server.url}/portal/verify", timeout=30)
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert '<input type="file" id="file" name="data"' in page.text
    assert '<script src="/static/portal-verify.js"></script>' in page.text
    assert 'id="logout"' not in page.text  # nobody is logged in
    client, _ = browser(world, "a-agent")
    with client:
        logged_in = client.get("/portal/verify")
    assert 'id="logout"' in logged_in.text and 'href="/portal/home"' in logged_in.text
    script = httpx.get(f"{world.server.url}/static/portal-verify.js", timeout=30)
    assert script.status_code == 200 and "/verify/pages" in script.text


# --- 挂失: "this was not me" --------------------------------------------------------------------
def statuses(world: World, *labels: str) -> dict[str, str]:
    """"label/profile" -> status of every certificate on the given USB-Keys."""
    return {f"{r[0]}/{r[1]}": r[2] for label in labels for r in world.query(
        "SELECT token_label, profile, status FROM certificates WHERE token_label = :l",
        l=label)}


def test_an_agent_freezes_exactly_their_own_key_and_is_logged_out(lost: World) -> None:
    before = statuses(lost, "a-clerk", "a-rep", "b-agent", "b-rep")
    client, csrf = browser(lost, "a-agent")
    other = lost.login("a-agent", address="198.51.100.9")  # a second session (the CLI's)
    disputed = lost.query("SELECT max(id) FROM login_attempts WHERE network = "
                          "'198.51.100.0/24'")[0][0]
    with client, other:
        refused = client.post("/me/report-lost", json={})  # no CSRF token
        assert refused.status_code == 403 and refused.json()["code"] == "CSRF_TOKEN_INVALID"
        assert statuses(lost, "a-agent") == {"a-agent/login": "good"}

        done = client.post("/me/report-lost", json={"login_id": disputed},
                           headers={"X-CSRF-Token": csrf})
        assert done.status_code == 200, done.text
        answer = done.json()
        serial = certs_of(lost, "a-agent")["login"][1]
        assert [f["serial"] for f in answer["frozen"]] == [serial]
        assert answer["tokens"] == ["a-agent"] and answer["uscc"] == USCC_A
        assert answer["enterprise"] == NAME_A and answer["unfreeze"]["by"] == "officer"
        assert statuses(lost, "a-agent") == {"a-agent/login": "hold"}
        # the colleague, the legal representative and enterprise B keep their keys
        assert statuses(lost, "a-clerk", "a-rep", "b-agent", "b-rep") == before

        # a second press (the same page, still open) is a clear coded answer
        again = client.post("/me/report-lost", json={}, headers={"X-CSRF-Token": csrf})
        assert again.status_code == 401 and again.json()["code"] == "SESSION_REVOKED"
        assert statuses(lost, "a-agent") == {"a-agent/login": "hold"}

        # both sessions are over: the page's next load goes to the login page saying why
        page = client.get("/portal/home")
        assert page.status_code == 303
        assert page.headers["location"].endswith("why=SESSION_REVOKED")
        assert httpx.get(f"{lost.server.url}/auth/me", timeout=30, headers={
            "Authorization": f"Bearer {other.session}"}).json()["code"] == "SESSION_REVOKED"
        login = httpx.get(f"{lost.server.url}{page.headers['location']}", timeout=30)
        assert 'id="why-frozen"' in login.text and "管理员核实后解冻" in login.text

    audited = lost.query("SELECT actor, action, outcome, target, details FROM audit_events "
                         "WHERE action IN ('cert.report_lost', 'cert.freeze') ORDER BY id")
    ok = [r for r in audited if r[2] == "ok" and (r[3] == serial or "王五" in r[3])]
    assert [(r[1], r[3]) for r in ok] == [("cert.freeze", serial),
                                          ("cert.report_lost",
                                           f"holder:{lost_enterprise_id(lost, USCC_A)}:agent:王五")]
    assert all(r[0].startswith("agent:王五#") for r in ok)  # the holder is the actor
    assert str(disputed) in str(ok[-1][4])
    windows = lost.query("SELECT count(*) FROM freeze_windows WHERE serial = :s "
                         "AND unfrozen_at IS NULL", s=serial)
    assert windows[0][0] == 1
    mails = lost.query("SELECT recipient, subject FROM outbox WHERE kind = 'key_reported_lost'")
    assert ("ops@a.example", True) in [(m[0], "王五" in m[1]) for m in mails]


def lost_enterprise_id(world: World, uscc: str) -> int:
    return int(world.query("SELECT id FROM enterprises WHERE uscc = :u", u=uscc)[0][0])


def test_a_legal_rep_freezes_the_login_and_the_seal_on_their_key_and_the_ra_says_409_after(
        lost: World) -> None:
    from eseal.ca.authority import Authority
    from eseal.errors import Conflict
    from eseal.ra.self_freeze import report_lost

    client, csrf = browser(lost, "b-rep")
    with client:
        done = client.post("/me/report-lost", json={}, headers={"X-CSRF-Token": csrf})
    assert done.status_code == 200, done.text
    assert sorted(f["profile"] for f in done.json()["frozen"]) == ["login", "seal"]
    assert statuses(lost, "b-rep") == {"b-rep/login": "hold", "b-rep/seal": "hold"}
    assert statuses(lost, "b-agent") == {"b-agent/login": "good"}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESEAL_HOME", str(lost.home))
        mp.setenv("SOFTHSM2_CONF", str(lost.home / "softhsm2.conf"))
        with Authority.open(lost.settings) as auth, pytest.raises(Conflict) as again:
            report_lost(auth, enterprise_id=lost_enterprise_id(lost, USCC_B), role="legal_rep",
                        holder="李四", actor="legal_rep:李四#0")
    assert again.value.code == "KEY_ALREADY_FROZEN" and again.value.status == 409
    refused = lost.query("SELECT details FROM audit_events WHERE action = 'cert.report_lost' "
                         "AND outcome = 'refused'")
    assert any("KEY_ALREADY_FROZEN" in str(r[0]) for r in refused)


def test_an_agent_of_b_cannot_name_a_login_of_a_and_freezes_nothing(lost: World) -> None:
    with lost.login("a-clerk"):  # a login of enterprise A (whatever ran before)
        pass
    a_login = lost.query("SELECT max(id) FROM login_attempts WHERE account_id IS NOT NULL "
                         "AND enterprise_id = :e", e=lost_enterprise_id(lost, USCC_A))[0][0]
    assert a_login is not None
    before = statuses(lost, "a-clerk", "a-rep", "b-agent")
    client, csrf = browser(lost, "b-agent")
    with client:
        refused = client.post("/me/report-lost", json={"login_id": a_login},
                              headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 404, refused.text
        assert refused.json()["code"] == "LOGIN_NOT_FOUND"
        assert refused.json()["field"] == "login_id"
        bad = client.post("/me/report-lost", json={"login_id": "x"},
                          headers={"X-CSRF-Token": csrf})
        assert bad.status_code == 422 and bad.json()["field"] == "login_id"
        assert client.get("/auth/me").status_code == 200  # still logged in
    assert statuses(lost, "a-clerk", "a-rep", "b-agent") == before
    officer, officer_csrf = browser(lost, "officer")
    with officer:  # staff report a lost key to an officer, not here
        forbidden = officer.post("/me/report-lost", json={},
                                 headers={"X-CSRF-Token": officer_csrf})
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "ROLE_FORBIDDEN"


def test_the_outlook_follows_the_ra_rules_in_the_grace_period_after_it_and_for_an_old_key(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Phases a logged-in holder cannot reach with the key itself (an expired login
    certificate opens no session), judged by the same function the home page uses."""
    from eseal.ca.authority import Authority
    from eseal.ra.outlook import certificates_outlook

    _, serial, _, not_after = certs_of(world, "a-agent")["login"]
    end = as_utc(not_after)
    ent = lost_enterprise_id(world, USCC_A)
    monkeypatch.setenv("ESEAL_HOME", str(world.home))
    monkeypatch.setenv("SOFTHSM2_CONF", str(world.home / "softhsm2.conf"))

    def outlook(at: datetime) -> Any:
        monkeypatch.setenv("ESEAL_NOW", at.isoformat())
        auth = Authority.open(world.settings)
        try:  # reading only: no audit checkpoint signed at a moved clock
            found = certificates_outlook(auth, enterprise_id=ent, role="agent", holder="王五")
        finally:
            auth.close(checkpoint=False)
        return next(o for o in found if o.serial == serial)

    grace = outlook(end + timedelta(days=10))
    assert (grace.phase, grace.days_left) == ("grace", -10)
    assert grace.next is not None and not grace.next.carried_over  # one year from renewal
    assert grace.next.not_after is not None
    assert grace.next.not_after.date() == (end + timedelta(days=10)).replace(
        year=end.year + 1).date()
    lapsed = outlook(end + timedelta(days=91))
    assert lapsed.phase == "lapsed" and lapsed.next is None
    early = outlook(end - timedelta(days=200))
    assert early.phase == "before_window" and early.window_opens == end - timedelta(days=90)
    # a key first certified almost three years ago must be replaced before renewal
    old = world.query("SELECT key_certified_at FROM certificates WHERE serial = :s", s=serial)
    with world_sql(world) as run:
        run("UPDATE certificates SET key_certified_at = :t WHERE serial = :s",
            t=(end - timedelta(days=3 * 365)).replace(tzinfo=None), s=serial)
        try:
            rekey = outlook(end - timedelta(days=30))
        finally:
            run("UPDATE certificates SET key_certified_at = :t WHERE serial = :s",
                t=old[0][0], s=serial)
    assert rekey.phase == "window_open" and rekey.next is not None
    assert rekey.next.refusal == "REKEY_REQUIRED" and rekey.next.not_after is None


@contextmanager
def world_sql(world: World) -> Iterator[Any]:
    """Run statements on the world's database (SQLite file or PostgreSQL)."""
    from sqlalchemy import create_engine, text

    from eseal.store.db import driver_url

    engine = create_engine(driver_url(world.settings.database))

    def run(sql: str, **params: Any) -> None:
        with engine.begin() as conn:
            conn.execute(text(sql), params)

    try:
        yield run
    finally:
        engine.dispose()
