"""The console's enterprise, account, audit and health pages over a real ``eseal serve``, as a
page's script uses them: a cookie session, the CSRF header, the JSON API behind each control.

Registration refuses what the licence would not say (a wrong USCC check character, a name in
pinyin) with a field-level error in both languages and stores nothing; a rare character is
stored byte for byte and shown with its code point; unlock needs a fresh USB-Key proof; the
audit search filters; the health page exercises CRL, OCSP and TSA; the auditor sees the audit
and health pages with no change control in them, and every change behind the controls
answers them 403."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from eseal import clock
from eseal.pki.identity import USCC_ALPHABET, uscc_check_character
from tests.conftest import NAME_A, USCC_A, USCC_B
from tests.web.test_web_session import browser, page_login
from tests.worldkit import (
    ENTERPRISE_HOLDERS,
    World,
    build_world,
    challenge_at,
    post_verify,
    signed_answer,
)

RARE_NAME = "福州𠮷祥控股有限公司"  # 𠮷 U+20BB7, outside the Basic Multilingual Plane


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("console"), ENTERPRISE_HOLDERS)


def make_uscc(body: str) -> str:
    """A valid code from 17 characters of the alphabet."""
    assert len(body) == 17 and all(c in USCC_ALPHABET for c in body)
    return body + uscc_check_character(body)


def wrong_check(code: str) -> str:
    return code[:17] + next(c for c in USCC_ALPHABET if c != code[17])


def enterprise_rows(world: World) -> list[tuple[str, bytes]]:
    return sorted((r[0], r[1].encode("utf-8"))
                  for r in world.query("SELECT uscc, name FROM enterprises"))


def post(client: httpx.Client, csrf: str, path: str, body: dict[str, object] | None = None,
         ) -> httpx.Response:
    return client.post(path, json=body, headers={"X-CSRF-Token": csrf})


def data_actions(html: str) -> list[str]:
    return re.findall(r'data-action="([^"]+)"', html)


# --- enterprises ------------------------------------------------------------------------------
def test_the_enterprise_page_offers_the_live_check_and_the_change_controls(world: World) -> None:
    client, _ = browser(world, "officer")
    with client:
        page = client.get("/console/enterprises")
        script = client.get("/static/console-enterprises.js")
        english = client.get("/console/enterprises", params={"lang": "en"}).text
    assert "Register an enterprise" in english and "Unified social credit code" in english
    assert page.status_code == 200, page.text
    html = page.text
    assert 'id="uscc-live"' in html and 'name="uscc"' in html and 'name="name"' in html
    assert 'name="legal_rep"' in html and 'id="name-preview"' in html
    assert '<script src="/static/console-enterprises.js"></script>' in html
    assert {"register", "deregister"} <= set(data_actions(html))
    assert USCC_A in html and NAME_A in html  # as stored, unreplaced
    assert "U+20BB7" in html  # NAME_A begins with 𠮷
    assert script.status_code == 200 and "checkCharacter" in script.text


def test_a_wrong_check_character_is_a_bilingual_field_error_on_uscc_and_stores_nothing(
        world: World) -> None:
    code = wrong_check(make_uscc("91350100M00010001"))
    before = enterprise_rows(world)
    client, csrf = browser(world, "officer")
    with client:
        answer = post(client, csrf, "/officer/enterprises",
                      {"uscc": code, "name": "福州校验测试有限公司", "legal_rep": "王一"})
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert (error["code"], error["field"]) == ("USCC_CHECKSUM", "uscc")
    assert "check character" in error["message"] and "校验码" in error["message_zh"]
    assert enterprise_rows(world) == before
    refused = world.query("SELECT outcome FROM audit_events WHERE action = "
                          "'enterprise.register' AND target = :t", t=code)
    assert [r[0] for r in refused] == ["refused"]


@pytest.mark.parametrize("name", ["Zhangsan Keji", "Fuzhou Jixiang Konggu Youxian Gongsi"])
def test_a_name_typed_in_pinyin_is_a_bilingual_field_error_on_name_and_stores_nothing(
        world: World, name: str) -> None:
    before = enterprise_rows(world)
    client, csrf = browser(world, "officer")
    with client:
        answer = post(client, csrf, "/officer/enterprises",
                      {"uscc": make_uscc("91350100M00010002"), "name": name,
                       "legal_rep": "王二"})
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert (error["code"], error["field"]) == ("NAME_NOT_CHINESE", "name")
    assert "pinyin" in error["message"] and "拼音" in error["message_zh"]
    assert enterprise_rows(world) == before


def test_a_rare_character_is_stored_byte_exactly_and_shown_with_its_code_point(
        world: World) -> None:
    code = make_uscc("91350100M00010003")
    client, csrf = browser(world, "officer")
    with client:
        made = post(client, csrf, "/officer/enterprises",
                    {"uscc": code, "name": RARE_NAME, "legal_rep": "𠮷田"})
        assert made.status_code == 200, made.text
        assert made.json()["name"] == RARE_NAME
        stored = dict(enterprise_rows(world))[code]
        assert stored == RARE_NAME.encode("utf-8")
        assert b"\xf0\xa0\xae\xb7" in stored  # U+20BB7 itself, not 吉 U+5409 nor surrogates
        listing = client.get("/console/enterprises").text
        row = listing[listing.index(f'data-uscc="{code}"'):]
        row = row[:row.index("</tr>")]
        assert RARE_NAME in row and 'data-codepoint="U+20BB7"' in row and "吉" not in row
        detail = client.get(f"/console/enterprises/{code}")
        assert detail.status_code == 200
        assert "<code>U+20BB7</code>" in detail.text and RARE_NAME in detail.text
        missing = client.get(f"/console/enterprises/{make_uscc('91350100M00019999')}")
        assert missing.status_code == 404
        assert 'data-code="ENTERPRISE_NOT_REGISTERED"' in missing.text


def test_deregistering_marks_the_enterprise_and_the_page_drops_its_control(world: World) -> None:
    code = make_uscc("91350100M00010004")
    client, csrf = browser(world, "officer")
    with client:
        assert post(client, csrf, "/officer/enterprises",
                    {"uscc": code, "name": "厦门注销测试有限公司", "legal_rep": "王三"}
                    ).status_code == 200
        done = post(client, csrf, f"/officer/enterprises/{code}/deregister")
        assert done.status_code == 200 and done.json()["status"] == "deregistered"
        listing = client.get("/console/enterprises").text
    row = listing[listing.index(f'data-uscc="{code}"'):]
    row = row[:row.index("</tr>")]
    assert 'data-status="deregistered"' in row and "data-action" not in row


def test_the_enterprise_list_pages_by_registration_and_refuses_a_bad_page_key(
        world: World) -> None:
    client, _ = browser(world, "officer")
    with client:
        newest = client.get("/console/enterprises").text
        earlier = client.get("/console/enterprises", params={"before_id": "3"}).text
        bad = client.get("/console/enterprises", params={"before_id": "x"})
    listed = re.findall(r'<tr data-uscc="([0-9A-Z]{18})"', newest)
    assert listed[-2:] == [USCC_B, USCC_A]  # newest first
    assert re.findall(r'<tr data-uscc="([0-9A-Z]{18})"', earlier) == [USCC_B, USCC_A]
    assert bad.status_code == 422 and 'data-code="VALUE_OUT_OF_RANGE"' in bad.text


# --- accounts ---------------------------------------------------------------------------------
def lock(world: World, label: str) -> None:
    """Lock the holder's account the real way: five answers their key signed for a relaying
    site (possession-proving failures)."""
    for i in range(world.settings.lockout_threshold):
        answer = signed_answer(world, label, challenge_at(world.server.url),
                               origin="https://relay.example")
        post_verify(world.server.url, answer, address=f"10.90.0.{i + 1}")


def test_unlock_needs_a_fresh_usb_key_proof_then_lifts_the_lock(world: World) -> None:
    lock(world, "b-agent")
    name = world.holders["b-agent"].name
    account_id, locked = world.query("SELECT id, locked_until FROM accounts WHERE name = :n",
                                     n=name)[0]
    assert locked is not None
    client, csrf = browser(world, "officer")
    later = world.start("console-later", now=clock.now() + timedelta(minutes=6))
    with client, httpx.Client(base_url=later.url, cookies=client.cookies, timeout=30) as late:
        page = late.get("/console/accounts").text
        assert f'data-action="unlock" data-account-id="{account_id}"' in page
        assert "5 分钟" in page  # the page says unlock needs a fresh USB-Key proof
        refused = post(late, csrf, f"/officer/accounts/{account_id}/unlock")
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "STEP_UP_REQUIRED"
        assert refused.json()["message_zh"]
        assert world.query("SELECT locked_until FROM accounts WHERE id = :i",
                           i=account_id)[0][0] is not None
        fresh = page_login(world, "officer", url=later.url, cookies=late.cookies, step_up=True)
        assert fresh.status_code == 200, fresh.text
        late.cookies = fresh.cookies
        done = post(late, fresh.json()["csrf_token"], f"/officer/accounts/{account_id}/unlock")
        assert done.status_code == 200 and done.json()["locked"] is False
        page = late.get("/console/accounts").text
        assert f'data-action="unlock" data-account-id="{account_id}"' not in page


def test_the_accounts_page_lists_requests_and_issues_an_enrollment_code_once(
        world: World) -> None:
    asked = httpx.post(f"{world.server.url}/unblock-requests", json={"label": "a-rep"},
                       timeout=30)
    assert asked.status_code == 201, asked.text
    request_id = asked.json()["id"]
    client, csrf = browser(world, "officer")
    with client:
        page = client.get("/console/accounts").text
        assert f'data-action="approve-unblock" data-request-id="{request_id}"' in page
        assert {"enrollment-code", "unblock-token"} <= set(data_actions(page))
        made = post(client, csrf, "/officer/enrollment-codes",
                    {"role": "auditor", "holder": "钱审计", "uscc": None})
        assert made.status_code == 200, made.text
        code = made.json()["code"]
        assert code not in client.get("/console/accounts").text  # shown once, by the script
        bad = post(client, csrf, "/officer/enrollment-codes",
                   {"role": "agent", "holder": "钱经办", "uscc": None})
        assert bad.status_code == 422 and bad.json()["field"] == "uscc", bad.text


# --- audit ------------------------------------------------------------------------------------
def event_rows(html: str) -> list[tuple[str, str, str]]:
    """(actor, action, target) of each event row in the page."""
    return [(a.strip(), b.strip(), c.strip()) for a, b, c in re.findall(
        r'<td class="actor cjk">(.*?)</td>\s*<td class="mono action">(.*?)</td>.*?'
        r'<td class="mono target">(.*?)</td>', html, re.S)]


def test_the_audit_search_filters_by_actor_event_enterprise_and_time(world: World) -> None:
    client, _ = browser(world, "auditor")
    with client:
        everything = client.get("/console/audit")
        assert everything.status_code == 200
        assert event_rows(everything.text)
        by_action = event_rows(client.get("/console/audit", params={"action": "enterprise."}).text)
        assert by_action and all(a.startswith("enterprise.") for _, a, _ in by_action)
        exact = event_rows(client.get("/console/audit",
                                      params={"action": "enterprise.register"}).text)
        assert exact and {a for _, a, _ in exact} == {"enterprise.register"}
        by_actor = event_rows(client.get("/console/audit", params={"actor": "周主任"}).text)
        assert by_actor and all("周主任" in actor for actor, _, _ in by_actor)
        by_b = event_rows(client.get("/console/audit", params={"enterprise": USCC_B}).text)
        assert by_b and (("officer:test", "enterprise.register", USCC_B) in by_b)
        assert all(t != USCC_A for _, _, t in by_b)
        future = (clock.now() + timedelta(days=400)).date().isoformat()
        none = client.get("/console/audit", params={"from": future})
        assert event_rows(none.text) == [] and 'id="no-events"' in none.text
        bad = client.get("/console/audit", params={"enterprise": wrong_check(USCC_A)})
        assert bad.status_code == 422
        assert 'data-field="enterprise"' in bad.text and "USCC_CHECKSUM" in bad.text
        assert 'id="f-enterprise" name="enterprise"' in bad.text


def test_the_audit_page_pages_back_through_older_events(world: World) -> None:
    officer, _ = browser(world, "officer")
    with officer:  # each look of an officer's at the enterprises is an audited event
        for _ in range(60):
            assert officer.get("/console/enterprises").status_code == 200
    client, _ = browser(world, "auditor")
    with client:
        first = client.get("/console/audit").text
        link = re.search(r'id="older" href="([^"]+)"', first)
        assert link, "more than one page of events exists"
        older = client.get(link.group(1).replace("&amp;", "&")).text
    ids_first = [int(i) for i in re.findall(r'data-event-id="(\d+)"', first)]
    ids_older = [int(i) for i in re.findall(r'data-event-id="(\d+)"', older)]
    assert ids_first == sorted(ids_first, reverse=True)
    assert ids_older and max(ids_older) < min(ids_first)


# --- health -----------------------------------------------------------------------------------
def test_the_health_page_shows_crl_ocsp_and_tsa_ok_on_a_healthy_service(world: World) -> None:
    client, _ = browser(world, "auditor")
    with client:
        for role in ("issuing", "root"):  # relying parties fetch them: the CA publishes
            assert client.get(f"/crl/{role}.crl").status_code == 200
        page = client.get("/console/health")
    assert page.status_code == 200, page.text
    for part in ("health-crl", "health-ocsp", "health-tsa"):
        assert f'id="{part}" data-state="ok"' in page.text, part
    assert 'data-crl="issuing" data-state="ok"' in page.text
    assert 'id="health-audit" data-state=' in page.text


# --- the auditor ------------------------------------------------------------------------------
def test_the_auditor_sees_audit_and_health_without_any_change_control(world: World) -> None:
    client, _ = browser(world, "auditor")
    with client:
        for path in ("/console/audit", "/console/health"):
            page = client.get(path)
            assert page.status_code == 200, path
            assert data_actions(page.text) == [], path
            assert 'href="/console/enterprises"' not in page.text, path
            assert 'href="/console/accounts"' not in page.text, path
        for path in ("/console/enterprises", "/console/accounts",
                     f"/console/enterprises/{USCC_A}"):
            page = client.get(path)
            assert page.status_code == 403 and 'data-code="ROLE_FORBIDDEN"' in page.text, path


def test_every_change_behind_the_console_controls_is_refused_to_the_auditor(
        world: World) -> None:
    before = (enterprise_rows(world),
              world.query("SELECT id, locked_until FROM accounts ORDER BY id"),
              world.query("SELECT count(*) FROM enrollment_codes"),
              world.query("SELECT id, status FROM unblock_requests ORDER BY id"))
    account_id = world.query("SELECT min(id) FROM accounts")[0][0]
    changes = [("/officer/enterprises", {"uscc": make_uscc("91350100M00010005"),
                                         "name": "审计员不能登记有限公司", "legal_rep": "王四"}),
               (f"/officer/enterprises/{USCC_B}/deregister", None),
               (f"/officer/accounts/{account_id}/unlock", None),
               ("/officer/tokens/a-agent/unblock", {"new_pin": "7731-2290"}),
               ("/unblock-requests/1/approve", None),
               ("/officer/enrollment-codes", {"role": "auditor", "holder": "审计二"})]
    client, csrf = browser(world, "auditor")
    with client:
        for path, body in changes:
            answer = post(client, csrf, path, body)
            assert answer.status_code == 403, f"{path}: {answer.text}"
            assert answer.json()["code"] == "ROLE_FORBIDDEN", path
    after = (enterprise_rows(world),
             world.query("SELECT id, locked_until FROM accounts ORDER BY id"),
             world.query("SELECT count(*) FROM enrollment_codes"),
             world.query("SELECT id, status FROM unblock_requests ORDER BY id"))
    assert after == before
