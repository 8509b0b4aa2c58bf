"""The console's audit and enterprise pages in Debian's chromium with the eseal extension
(Playwright), real SoftHSM USB-Keys and a real ``eseal serve``, one journey end to end:

the auditor logs in at the portal's login page with their USB-Key (consent window, PIN),
lands on the audit page, sees the chain verified and runs "verify now", searches by actor —
and finds no change control anywhere; then the officer registers an enterprise with a typo
in its credit code: the page's live check says so as the code is typed, the server's
field-level error appears next to the field anyway when it is sent, the officer fixes the
code and the enterprise is registered with its rare character (𠮷) exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eseal.pki.identity import USCC_ALPHABET, uscc_check_character
from tests.browserkit import chromium, click_for_consent, need_chromium, open_page, type_pin
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world

NAME = "福州𠮷祥控股有限公司"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    need_chromium()
    yield from build_world(tmp_path_factory.mktemp("console-browser"), ENTERPRISE_HOLDERS)


def log_in(context: Any, world: World, label: str, next_path: str) -> Any:
    page = open_page(context, f"{world.server.url}/portal/login?next={next_path}")
    consent = click_for_consent(context, page, "#login")
    consent.select_option("#token", label)
    type_pin(consent, world.holders[label].pin)
    page.wait_for_url(f"**{next_path}")
    return page


def test_the_auditor_verifies_and_searches_then_the_officer_registers_past_a_typo(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTHSM2_CONF", str(world.home / "softhsm2.conf"))
    body = "91350100M0002000" + "7"
    good = body + uscc_check_character(body)
    typo = good[:17] + next(c for c in USCC_ALPHABET if c != good[17])
    with chromium(tmp_path / "profile") as context:
        # --- the auditor -----------------------------------------------------------------
        page = log_in(context, world, "auditor", "/console/audit")
        page.wait_for_selector('#chain[data-state="ok"]')
        assert "✓" in page.text_content("#chain-result")
        page.click("#verify-now")
        page.wait_for_selector('#chain[data-state="ok"] #verify-now:not([disabled])')
        assert page.get_attribute("#chain-result", "data-ok") == "true"
        assert page.locator("[data-action]").count() == 0  # no change control at all
        nav = page.locator("header nav a").all_text_contents()
        assert len(nav) == 2  # the audit log and the service health only
        page.fill("#f-actor", "officer:test")
        with page.expect_navigation():
            page.click("#search")
        actors = page.locator("#events td.actor").all_text_contents()
        assert actors and all("officer:test" in a for a in actors)
        assert page.input_value("#f-actor") == "officer:test"
        page.screenshot(path=str(tmp_path / "console-audit.png"), full_page=True)
        page.click("#logout")
        page.wait_for_url("**/portal/login")

        # --- the officer -------------------------------------------------------------------
        page = log_in(context, world, "officer", "/console/enterprises")
        page.type("#uscc", typo[:10])
        assert page.get_attribute("#uscc-live", "data-state") == "partial"
        page.type("#uscc", typo[10:])
        assert page.get_attribute("#uscc-live", "data-state") == "bad"
        live = page.text_content("#uscc-live")
        assert f"“{good[17]}”" in live and "校验码" in live
        page.fill("#ent-name", NAME)
        preview = page.locator("#name-preview li code").all_text_contents()
        assert len(preview) == len(NAME) and preview[2] == "U+20BB7"
        page.fill("#legal-rep", "王六")
        page.click("[data-action=register]")  # the server is the authority: it is sent
        error = page.wait_for_selector('.field-error[data-field="uscc"]')
        assert error.get_attribute("data-code") == "USCC_CHECKSUM"
        text = error.text_content() or ""
        assert "校验码" in text and "check character" in text
        assert page.get_attribute("#uscc", "aria-invalid") == "true"
        assert world.query("SELECT count(*) FROM enterprises WHERE uscc = :u", u=typo)[0][0] == 0

        page.fill("#uscc", good)
        assert page.get_attribute("#uscc-live", "data-state") == "ok"
        page.click("[data-action=register]")
        page.wait_for_selector("#registered:not([hidden])")
        assert page.locator('.field-error[data-field="uscc"]').count() == 0
        row = page.locator(f'#enterprises tr[data-uscc="{good}"]')
        assert row.locator(".ent-name").text_content() == NAME
        assert row.locator('.cp[data-codepoint="U+20BB7"]').count() == 1
        page.screenshot(path=str(tmp_path / "console-enterprises.png"), full_page=True)
    stored = world.query("SELECT name, legal_rep FROM enterprises WHERE uscc = :u", u=good)
    assert [(r[0].encode("utf-8"), r[1]) for r in stored] == [(NAME.encode("utf-8"), "王六")]
