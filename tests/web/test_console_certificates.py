"""The officer console's certificate pages over a real ``eseal serve``: the search rendered on
the server for each filter (a rare-character name included), keyset pages forward and back,
a bad filter shown next to its field, a certificate's page (enterprise name byte-exact,
history, freeze windows, PEM), the batch renewal page, and the JSON routes the pages' script
calls — refused to auditors and agents, a revoke without a reason refused naming the field,
a preview that changes nothing. (The browser journey is tests/browser/test_console_journey.py;
the role walk over every page is tests/web/test_page_roles.py.)"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from html import unescape

import httpx
import pytest

from eseal import clock
from tests.conftest import NAME_A, NAME_B, USCC_A, USCC_B
from tests.web.test_web_session import browser
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("console-certs"), ENTERPRISE_HOLDERS)


@pytest.fixture(scope="module")
def officer(world: World) -> Iterator[tuple[httpx.Client, str]]:
    client, csrf = browser(world, "officer")
    with client:
        yield client, csrf


def serials_shown(html: str) -> list[str]:
    """The serials of the results table, in the order shown."""
    return re.findall(r'<tr data-serial="([0-9a-f]+)">', html)


def certs(world: World, where: str = "1 = 1", **params: str) -> set[str]:
    within = params.pop("within_days", None)
    rows = world.query(
        "SELECT c.serial, c.not_after FROM certificates c"
        f" LEFT JOIN enterprises e ON e.id = c.enterprise_id WHERE {where}", **params)
    if within is not None:  # compared here: each database writes times its own way
        limit = clock.now() + timedelta(days=int(within))
        return {r[0] for r in rows if as_time(r[1]) <= limit}
    return {r[0] for r in rows}


def as_time(value: object) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def search(client: httpx.Client, **params: str) -> httpx.Response:
    return client.get("/console/certificates", params={"limit": "200", **params})


def test_the_search_page_lists_certificates_rendered_on_the_server(
        world: World, officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    page = client.get("/console/certificates")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert "<script>" not in page.text and 'src="/static/web.js"' in page.text
    assert set(serials_shown(search(client).text)) == certs(world)
    assert f'data-total="{len(certs(world))}"' in search(client).text
    reads = world.query("SELECT count(*) FROM audit_events WHERE action = 'officer.read' "
                        "AND target = '/console/certificates'")
    assert reads[0][0] >= 3  # a page read is audited like the API's reads


def test_the_cas_own_certificates_are_listed_without_any_control(
        world: World, officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    issuing = world.query("SELECT serial FROM certificates WHERE profile = 'issuing'")[0][0]
    page = client.get(f"/console/certificates/{issuing}")
    assert page.status_code == 200 and "CA 自身证书" in page.text
    assert 'id="freeze"' not in page.text and 'id="revoke"' not in page.text


@pytest.mark.parametrize(("params", "where", "sql"), [
    ({"uscc": USCC_A}, "e.uscc = :v", {"v": USCC_A}),
    ({"uscc": USCC_B[:6]}, "e.uscc = :v", {"v": USCC_B}),
    ({"name": "𠮷"}, "e.name = :v", {"v": NAME_A}),  # outside the BMP, matched exactly
    ({"name": "北京测试"}, "e.name = :v", {"v": NAME_B}),
    ({"holder": "王五"}, "c.holder = :v", {"v": "王五"}),
    ({"profile": "seal"}, "c.profile = :v", {"v": "seal"}),
    ({"status": "good"}, "c.status = :v", {"v": "good"}),
    ({"expiring_within": "400"}, "1 = 1", {"within_days": "400"}),
    ({"expiring_within": "30"}, "1 = 0", {}),
])
def test_each_filter_finds_exactly_the_certificates_it_names(
        world: World, officer: tuple[httpx.Client, str], params: dict[str, str], where: str,
        sql: dict[str, str]) -> None:
    client, _ = officer
    page = search(client, **params)
    assert page.status_code == 200, page.text
    expected = certs(world, where, **sql)
    assert set(serials_shown(page.text)) == expected
    if "expiring_within" in params:  # the batch renewal starts from the same N days
        assert (f'href="/console/renewals?expiring_within={params["expiring_within"]}" '
                'id="batch-link"') in page.text
    if not expected:
        assert 'id="no-results"' in page.text
    for name, value in params.items():  # the query stays in the form (bookmarkable)
        assert f'name="{name}"' in page.text
        if name not in ("status", "profile"):
            assert f'value="{value}"' in page.text


def test_a_rare_character_name_is_shown_byte_exact_not_replaced(
        world: World, officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    page = search(client, name="𠮷")
    assert NAME_A in unescape(page.text)
    assert "吉野家" not in page.text
    assert not serials_shown(search(client, name="吉").text)  # 吉 is not 𠮷


def test_a_serial_prefix_finds_the_certificate_and_links_to_its_page(
        world: World, officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    serial = world.holders["a-agent"].serial
    page = search(client, serial=serial[:8].upper())
    assert serial in serials_shown(page.text)
    assert f'href="/console/certificates/{serial}"' in page.text


def test_pages_walk_forward_by_cursor_and_back_without_losing_or_repeating_a_row(
        world: World, officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    pages: list[list[str]] = []
    url = "/console/certificates?limit=3&sort=newest"
    while url:
        page = client.get(unescape(url))
        assert page.status_code == 200, page.text
        pages.append(serials_shown(page.text))
        found = re.search(r'id="next" rel="next" href="([^"]+)"', page.text)
        url = found.group(1) if found else ""
        assert len(pages) < 20
    seen = [s for p in pages for s in p]
    assert len(seen) == len(set(seen)) and set(seen) == certs(world)
    assert all(len(p) == 3 for p in pages[:-1]) and len(pages) >= 3
    # back from the second page is the first page, in the same order
    second = client.get(unescape(re.search(
        r'id="next" rel="next" href="([^"]+)"',
        client.get("/console/certificates?limit=3&sort=newest").text).group(1)))
    assert serials_shown(second.text) == pages[1]
    previous = re.search(r'id="prev" rel="prev" href="([^"]+)"', second.text)
    assert previous is not None
    back = client.get(unescape(previous.group(1)))
    assert serials_shown(back.text) == pages[0]
    assert 'id="prev"' not in back.text and 'id="next"' in back.text


@pytest.mark.parametrize(("params", "field", "code"), [
    ({"uscc": "9135-01"}, "uscc", "USCC_CHARACTER"),
    ({"serial": "xyz"}, "serial", "SERIAL_INVALID"),
    ({"status": "lost"}, "status", "SEARCH_STATUS_UNKNOWN"),
    ({"expiring_within": "ten"}, "expiring_within", "VALUE_OUT_OF_RANGE"),
    ({"expiring_within": "99999"}, "expiring_within", "VALUE_OUT_OF_RANGE"),
    ({"limit": "0"}, "limit", "VALUE_OUT_OF_RANGE"),
])
def test_a_bad_filter_is_a_bilingual_error_next_to_its_field(
        officer: tuple[httpx.Client, str], params: dict[str, str], field: str,
        code: str) -> None:
    client, _ = officer
    page = client.get("/console/certificates", params=params)
    assert page.status_code == 422, page.text
    note = re.search(rf'<p class="field-error" id="{field}-error" data-code="([A-Z_]+)" '
                     rf'data-field="{field}">([^<]+)</p>', page.text)
    assert note is not None, page.text
    assert note.group(1) == code
    text = unescape(note.group(2))
    assert re.search(r"[\u4e00-\u9fff]", text) and re.search(r"[a-z]{3}", text)  # both
    assert f'aria-describedby="{field}-error"' in page.text
    assert "<tr data-serial" not in page.text


def test_a_forged_cursor_is_refused_on_the_page(officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    page = client.get("/console/certificates", params={"cursor": "bm90LWEtY3Vyc29y"})
    assert page.status_code == 422
    assert 'data-code="SEARCH_CURSOR_INVALID"' in page.text


def test_the_certificate_page_shows_enterprise_holder_history_and_the_pem_link(
        world: World, officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    serial = world.holders["a-rep"].serial
    page = client.get(f"/console/certificates/{serial}")
    assert page.status_code == 200, page.text
    text = unescape(page.text)
    assert USCC_A in text and NAME_A in text and "张三" in text
    assert f'data-serial="{serial}"' in page.text and 'data-state="good"' in page.text
    assert f'href="/officer/certificates/{serial}/pem"' in page.text
    assert "吊销需在5分钟内重新验证 USB-Key" in text
    assert 'id="freeze"' in page.text and 'id="unfreeze"' not in page.text
    assert 'data-kind="enrolled"' in page.text or 'data-kind="issued"' in page.text
    assert 'id="no-windows"' in page.text
    pem = client.get(f"/officer/certificates/{serial}/pem")
    assert pem.status_code == 200 and pem.text.startswith("-----BEGIN CERTIFICATE-----")
    english = client.get(f"/console/certificates/{serial}?lang=en")
    assert "Revoking needs a USB-Key re-authentication within the last 5 minutes" in \
        unescape(english.text)
    client.get(f"/console/certificates/{serial}?lang=zh")  # back to Chinese (a cookie)
    missing = client.get("/console/certificates/abcdef0123")
    assert missing.status_code == 404 and 'data-code="CERT_NOT_FOUND"' in missing.text


def test_freeze_and_unfreeze_show_in_the_history_and_as_a_closed_window(
        world: World, officer: tuple[httpx.Client, str]) -> None:
    client, csrf = officer
    serial = world.holders["b-rep"].serial
    headers = {"X-CSRF-Token": csrf}
    assert client.post(f"/officer/certificates/{serial}/freeze", headers=headers).status_code \
        == 200
    frozen = client.get(f"/console/certificates/{serial}")
    assert 'data-state="hold"' in frozen.text and 'id="unfreeze"' in frozen.text
    assert 'data-open="yes"' in frozen.text
    assert serial in serials_shown(search(client, status="hold").text)
    assert client.post(f"/officer/certificates/{serial}/unfreeze",
                       headers=headers).status_code == 200
    page = client.get(f"/console/certificates/{serial}")
    assert 'data-state="good"' in page.text
    assert 'data-open="no"' in page.text and 'data-open="yes"' not in page.text
    assert 'data-kind="frozen"' in page.text and 'data-kind="unfrozen"' in page.text


@pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "certificateHold"},
                                  {"reason": "lost it"}])
def test_revoke_without_a_valid_reason_is_422_naming_reason_and_changes_nothing(
        world: World, officer: tuple[httpx.Client, str], body: dict[str, str]) -> None:
    client, csrf = officer
    serial = world.holders["b-agent"].serial
    before = world.query("SELECT count(*) FROM audit_events WHERE action = 'cert.revoke' "
                         "AND outcome = 'ok'")
    answer = client.post(f"/officer/certificates/{serial}/revoke", json=body,
                         headers={"X-CSRF-Token": csrf})
    assert answer.status_code == 422, answer.text
    error = answer.json()
    assert error["field"] == "reason" and error["message"] and error["message_zh"]
    assert world.query("SELECT status, revocation_reason FROM certificates WHERE serial = :s",
                       s=serial) == [("good", None)]
    assert world.query("SELECT count(*) FROM audit_events WHERE action = 'cert.revoke' "
                       "AND outcome = 'ok'") == before


def test_the_renewal_preview_says_what_would_happen_and_changes_nothing(
        world: World, officer: tuple[httpx.Client, str]) -> None:
    client, csrf = officer
    serial = world.holders["a-agent"].serial
    rows_before = world.query("SELECT count(*) FROM certificates")
    page = client.get("/console/renewals", params={"serials": f"{serial},00"})
    assert page.status_code == 200 and serial in page.text
    assert "批量续期需在5分钟内重新验证 USB-Key" in unescape(page.text)
    preview = client.post("/officer/renewals/preview", json={"serials": [serial, "zz"]},
                          headers={"X-CSRF-Token": csrf})
    assert preview.status_code == 200, preview.text
    result = preview.json()
    # a year from expiry the window is not open yet: refused, with the renewal's own code
    assert result["counts"] == {"renew": 0, "skipped": 0, "refused": 2}
    codes = {r["serial"]: r["code"] for r in result["refused"]}
    assert codes[serial] == "RENEWAL_WINDOW_NOT_OPEN"
    assert world.query("SELECT count(*) FROM certificates") == rows_before
    bad = client.post("/officer/renewals/preview", json={"expiring_within_days": "soon"},
                      headers={"X-CSRF-Token": csrf})
    assert bad.status_code == 422 and bad.json()["field"] == "expiring_within_days"


@pytest.mark.parametrize("label", ["auditor", "a-agent"])
def test_auditors_and_agents_get_no_certificate_page_and_no_change_route(
        world: World, label: str) -> None:
    serial = world.holders["a-rep"].serial
    client, csrf = browser(world, label)
    headers = {"X-CSRF-Token": csrf}
    with client:
        for path in ("/console/certificates", f"/console/certificates/{serial}",
                     "/console/renewals"):
            page = client.get(path)
            assert page.status_code == 403 and 'data-code="ROLE_FORBIDDEN"' in page.text
            assert 'id="freeze"' not in page.text and 'id="revoke"' not in page.text
        for path, body in ((f"/officer/certificates/{serial}/freeze", None),
                           (f"/officer/certificates/{serial}/unfreeze", None),
                           (f"/officer/certificates/{serial}/renew", None),
                           (f"/officer/certificates/{serial}/revoke",
                            {"reason": "keyCompromise"}),
                           ("/officer/renewals", {"serials": [serial]}),
                           ("/officer/renewals/preview", {"serials": [serial]})):
            answer = client.post(path, json=body, headers=headers)
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["code"] == "ROLE_FORBIDDEN"
        if label == "a-agent":
            assert client.get(f"/officer/certificates/{serial}/pem").status_code == 403
            assert client.get("/officer/certificates/search").status_code == 403
    assert world.query("SELECT status, replaced_by FROM certificates WHERE serial = :s",
                       s=serial) == [("good", None)]


def test_the_search_page_speaks_english_on_request(
        world: World, officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    try:
        page = client.get("/console/certificates", params={"lang": "en", "status": "good"})
        assert page.status_code == 200 and 'lang="en"' in page.text
        assert "Find certificates" in page.text and ">good</span>" in page.text
        bad = client.get("/console/certificates", params={"uscc": "?"})
        assert bad.status_code == 422
        assert re.search(r'data-field="uscc">USCC_CHARACTER: uscc: .+ / uscc：', bad.text)
    finally:
        client.get("/console/certificates", params={"lang": "zh"})


def test_the_renewal_page_starts_from_the_days_or_serials_it_is_given(
        officer: tuple[httpx.Client, str]) -> None:
    client, _ = officer
    page = client.get("/console/renewals", params={"expiring_within": "30"})
    assert page.status_code == 200
    assert 'name="expiring_within_days" inputmode="numeric" value="30"' in page.text
    listed = client.get("/console/renewals", params={"serials": "ab12,cd34"})
    assert ">ab12\ncd34</textarea>" in listed.text
    assert 'data-chunk="20"' in listed.text and 'id="progress"' in listed.text
