"""The USB-Key in the browser, end to end: Debian's chromium with the eseal extension
(Playwright), the native host, real SoftHSM USB-Keys and a real ``eseal serve``.

A person's view: the page asks, a window the page cannot reach shows who asks and what is
signed, the holder types the PIN there, and the page gets a session or a receipt — or a
clear bilingual message (cancelled, wrong PIN with tries left, locked, key pulled out,
helper not installed) and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from eseal.holder.client import EsealClient
from tests.browserkit import (
    chromium,
    click_for_consent,
    need_chromium,
    open_page,
    press_cancel,
    static_site,
    type_pin,
)
from tests.conftest import NAME_A, USCC_A, LiveServer
from tests.judgekit import pdfsig_check
from tests.pdfkit import make_pdf
from tests.sitekit import CaHome, Holder, ca_home, eseal_cli, query_home

PINS = {"zhang": "4913-7720", "wang": "6624-0195", "zhao": "5802-3317",
        "pulled": "7311-4086"}
HOLDERS = {"zhang": ("legal_rep", "张三"), "wang": ("agent", "王五"),
           "zhao": ("agent", "赵六"), "pulled": ("agent", "钱七")}
RECORD_MESSAGES = ("() => { window.__seen = []; window.addEventListener('message', "
                   "(e) => window.__seen.push(JSON.stringify(e.data))); }")


@dataclass
class Site:
    ca: CaHome
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    need_chromium()
    tmp = tmp_path_factory.mktemp("browser")
    with ca_home(tmp / "home", enterprises=[(USCC_A, NAME_A, "张三")],
                 holders=[Holder(label, PINS[label], USCC_A, role, name)
                          for label, (role, name) in HOLDERS.items()]) as ca:
        server = LiveServer(ca.home, ca.port)
        try:
            yield Site(ca, server)
        finally:
            server.stop()


def _login_in_page(context: Any, site: Site, label: str) -> Any:
    page = open_page(context, f"{site.url}/login")
    consent = click_for_consent(context, page, "#login")
    consent.select_option("#token", label)
    type_pin(consent, PINS[label])
    page.wait_for_selector("#account:not([hidden])")
    return page


def _draft(site: Site) -> int:
    with EsealClient(site.url) as wang:
        wang.login_with_token("wang", PINS["wang"])
        answer = httpx.post(f"{site.url}/filings", params={"title": "2025 年度报告"},
                            content=make_pdf(pages=2).data, timeout=60,
                            headers={"Authorization": f"Bearer {wang.session}",
                                     "Content-Type": "application/pdf"})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def test_login_from_the_page_through_the_consent_window_is_the_same_account_as_eseal_login(
        site: Site, tmp_path: Path) -> None:
    with chromium(tmp_path / "profile") as context:
        page = open_page(context, f"{site.url}/login")
        page.evaluate(RECORD_MESSAGES)
        status = page.evaluate("() => eseal.status()")
        assert {t["label"] for t in status["tokens"]} >= {"zhang", "wang"}
        assert "张三" not in json.dumps(status, ensure_ascii=False)  # no names to any page
        consent = click_for_consent(context, page, "#login")
        assert consent.text_content("#origin") == site.url
        consent.select_option("#token", "zhang")
        assert consent.text_content("#holder") == "张三"
        assert NAME_A in consent.text_content("#enterprise")
        type_pin(consent, PINS["zhang"])
        page.wait_for_selector("#account:not([hidden])")
        account = int(page.get_attribute("#account", "data-account-id"))
        seen = page.evaluate("() => window.__seen")
    with EsealClient(site.url) as cli:
        assert cli.login_with_token("zhang", PINS["zhang"])["account"]["id"] == account
    assert seen and not any(PINS["zhang"] in m for m in seen)


def test_another_origin_gets_a_signature_over_its_own_origin_and_the_portal_refuses_it(
        site: Site, tmp_path: Path) -> None:
    api_js = (Path(__file__).resolve().parents[2] / "eseal/api/static/eseal.js").read_text()
    page_html = '<!doctype html><title>evil</title><script src="eseal.js"></script>'
    relayed = httpx.post(f"{site.url}/auth/challenge").json()  # the phisher's server relays
    with static_site(tmp_path / "evil", {"index.html": page_html, "eseal.js": api_js}) as evil, \
            chromium(tmp_path / "profile") as context:
        page = open_page(context, f"{evil}/index.html")
        page.evaluate(RECORD_MESSAGES)
        with context.expect_page() as popup:
            page.evaluate("(c) => { window.__answer = null; eseal.authenticate(c).then("
                          "(a) => window.__answer = a, (e) => window.__answer = {error: e.code})"
                          "; }", relayed)
        consent = popup.value
        consent.wait_for_function("() => document.getElementById('origin').textContent")
        assert consent.text_content("#origin") == evil  # the holder sees who really asks
        consent.select_option("#token", "wang")
        type_pin(consent, PINS["wang"])
        page.wait_for_function("() => window.__answer")
        answer = page.evaluate("() => window.__answer")
        seen = page.evaluate("() => window.__seen")
    assert answer["origin"] == evil and answer["nonce"] == relayed["nonce"]
    refused = httpx.post(f"{site.url}/auth/verify", json=answer)
    assert refused.status_code in (400, 401, 403), refused.text
    assert "session" not in refused.json()
    assert not any(PINS["wang"] in m for m in seen)


def test_seal_from_the_page_is_valid_for_eseal_verify_and_pdfsig(
        site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    filing = _draft(site)
    journal = tmp_path / "host.jsonl"
    monkeypatch.setenv("ESEAL_HOST_JOURNAL", str(journal))  # written into the host launcher
    with chromium(tmp_path / "profile") as context:
        page = _login_in_page(context, site, "zhang")
        page.goto(f"{site.url}/seal?filing={filing}")
        page.wait_for_function("() => document.documentElement.dataset.esealExtension")
        consent = click_for_consent(context, page, "#seal")
        consent.wait_for_function("() => document.getElementById('seal').naturalWidth > 0")
        assert consent.text_content("#title") == "2025 年度报告"
        sha = query_home(site.ca.home, "SELECT draft_sha256 FROM filings WHERE id = :i",
                         i=filing)[0][0]
        assert consent.text_content("#sha256").replace(" ", "").startswith(sha[:16])
        assert consent.text_content("#origin") == site.url
        type_pin(consent, PINS["zhang"])
        page.wait_for_selector("#receipt:not([hidden])", timeout=60_000)
        sealed_sha = page.get_attribute("#receipt", "data-sealed-sha256")
    entries = [json.loads(line) for line in journal.read_text("utf-8").splitlines()]
    seals = [e for e in entries if e["command"] == "sign"]
    assert [e["signatures"] for e in seals] == [1] and seals[0]["origin"] == site.url
    assert sum(e["signatures"] for e in entries) == 2  # the login, then the one seal
    assert all(PINS["zhang"] not in json.dumps(e) for e in entries)
    with EsealClient(site.url) as zhang:
        zhang.login_with_token("zhang", PINS["zhang"])
        sealed = httpx.get(f"{site.url}/filings/{filing}/sealed",
                           headers={"Authorization": f"Bearer {zhang.session}"}).content
    import hashlib

    assert hashlib.sha256(sealed).hexdigest() == sealed_sha
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    verdict = eseal_cli("verify", str(path), "--json", home=site.ca.home)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    report = json.loads(verdict.stdout)
    assert len(report["signatures"]) == 1
    pdfsig = pdfsig_check(path, site.ca.root, workdir=tmp_path)
    assert pdfsig.signatures == 1 and pdfsig.valid == [True] and pdfsig.trusted == [True]
    assert pdfsig.total_document_signed == [True]


def test_cancel_gives_the_page_a_bilingual_message_and_seals_nothing(
        site: Site, tmp_path: Path) -> None:
    filing = _draft(site)
    with chromium(tmp_path / "profile") as context:
        page = _login_in_page(context, site, "zhang")
        page.goto(f"{site.url}/seal?filing={filing}")
        consent = click_for_consent(context, page, "#seal")
        press_cancel(consent)
        page.wait_for_selector("#error:not([hidden])")
        assert page.get_attribute("#error", "data-code") == "USER_CANCELLED"
        text = page.text_content("#error")
    assert "取消" in text and "cancelled" in text
    rows = query_home(site.ca.home, "SELECT status FROM filings WHERE id = :i", i=filing)
    assert rows == [("draft",)]
    assert query_home(site.ca.home, "SELECT count(*) FROM filing_documents WHERE filing_id = :i"
                      " AND kind = 'sealed'", i=filing) == [(0,)]


def test_wrong_pins_show_tries_left_and_the_sixth_locks_with_unblock_instructions(
        site: Site, tmp_path: Path) -> None:
    with chromium(tmp_path / "profile") as context:
        page = open_page(context, f"{site.url}/login")
        consent = click_for_consent(context, page, "#login")
        consent.select_option("#token", "zhao")
        shown = []
        for attempt in range(6):
            consent.evaluate("() => { const m = document.getElementById('message');"
                             " m.textContent = ''; m.dataset.code = ''; }")
            type_pin(consent, f"0000-000{attempt}")
            consent.wait_for_function("() => document.getElementById('message').dataset.code")
            shown.append((consent.get_attribute("#message", "data-code"),
                          consent.text_content("#message")))
        assert [c for c, _ in shown] == ["PIN_INCORRECT"] * 5 + ["PIN_LOCKED"]
        assert [t.split("剩余 ")[1][0] for _, t in shown[:5]] == ["5", "4", "3", "2", "1"]
        assert "unblock" in shown[5][1] and "解锁" in shown[5][1]
        assert consent.is_disabled("#ok")
        press_cancel(consent)
        page.wait_for_selector("#error:not([hidden])")
        assert page.get_attribute("#error", "data-code") == "PIN_LOCKED"
    holder = "赵六"
    sessions = query_home(site.ca.home, "SELECT count(*) FROM login_sessions s JOIN accounts a"
                          " ON a.id = s.account_id WHERE a.name = :n", n=holder)
    assert sessions == [(0,)]


def _token_dir(site: Site, label: str) -> Path:
    for directory in (site.ca.home / "tokens").iterdir():
        data = (directory / "token.object").read_bytes()
        if label.encode().ljust(32) in data:
            return directory
    raise AssertionError(f"no token directory for {label}")


def test_a_key_pulled_out_mid_flow_a_missing_helper_or_extension_give_clear_messages(
        site: Site, tmp_path: Path) -> None:
    with chromium(tmp_path / "profile") as context:
        page = open_page(context, f"{site.url}/login")
        consent = click_for_consent(context, page, "#login")
        consent.select_option("#token", "pulled")
        gone = _token_dir(site, "pulled")
        gone.rename(tmp_path / "out-of-the-port")  # the holder pulls the USB-Key out
        consent.fill("#pin", PINS["pulled"])
        consent.click("#ok")
        page.wait_for_selector("#error:not([hidden])")
        assert page.get_attribute("#error", "data-code") == "TOKEN_NOT_PRESENT"
        assert "拔出" in page.text_content("#error")
    with chromium(tmp_path / "bare", host=False) as context:
        page = open_page(context, f"{site.url}/login")
        page.wait_for_selector("#error:not([hidden])")
        assert page.get_attribute("#error", "data-code") == "HOST_NOT_INSTALLED"
        text = page.text_content("#error")
        assert "eseal browser install" in text and "未安装" in text
        assert page.is_visible("#install-help")
    with chromium(tmp_path / "plain", host=False, extension=False) as context:
        page = context.new_page()
        page.goto(f"{site.url}/login")
        page.wait_for_selector("#error:not([hidden])")
        assert page.get_attribute("#error", "data-code") == "EXTENSION_MISSING"
        assert "扩展程序" in page.text_content("#error") and page.is_visible("#install-help")
