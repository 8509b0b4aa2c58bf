"""The enterprise portal in a real browser, end to end: Debian's chromium with the eseal
extension (Playwright), the native host, real SoftHSM USB-Keys and a real ``eseal serve``.

One journey of the legal representative 张三: log in with the USB-Key through /portal/login,
read the home (the registered name with 𠮷, both certificates with days left, an alert for a
login from a network never seen before — made by "someone" with the key from elsewhere),
check at phone width that nothing scrolls sideways, verify a sealed PDF on the public page
(VALID, the seal outlined on the page image) and a tampered copy (INVALID), then press "this
was not me", confirm the dialog that names the key and the enterprise, read how to get it
unfrozen, and on the next page load land on the login page that says why. With
``ESEAL_SCREENSHOTS=docs`` the home is saved as ``docs/portal-home.png`` (1280×800).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browserkit import chromium, click_for_consent, need_chromium, open_page, type_pin
from tests.conftest import NAME_A, USCC_A
from tests.pdfkit import make_pdf
from tests.sitekit import seal_with_token
from tests.worldkit import ENTERPRISE_HOLDERS, PIN, World, build_world

STRANGER = "203.0.113.66"  # the "someone else" who logs in with the key


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    need_chromium()
    yield from build_world(tmp_path_factory.mktemp("journey"), ENTERPRISE_HOLDERS)


@pytest.fixture(scope="module")
def pdfs(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A PDF sealed by 张三's USB-Key (B-LT, timestamped) and a copy with one signed byte
    changed."""
    out = tmp_path_factory.mktemp("pdfs")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(world.home / "softhsm2.conf"))
        sealed = seal_with_token(make_pdf(pages=2).data, "a-rep", PIN, server=world.server.url)
    first = sealed.index(b"(Sample filing)")  # in the first revision, which the seal covers
    assert first < sealed.index(b"/ByteRange")
    files = {"sealed": out / "sealed.pdf", "tampered": out / "tampered.pdf"}
    files["sealed"].write_bytes(sealed)
    files["tampered"].write_bytes(sealed.replace(b"(Sample filing)", b"(Sample fiLing)", 1))
    return files


def statuses(world: World, label: str) -> dict[str, str]:
    return {r[0]: r[1] for r in world.query(
        "SELECT profile, status FROM certificates WHERE token_label = :l", l=label)}


def verify(page: Any, path: Path) -> str:
    page.set_input_files("#file", str(path))
    page.evaluate("() => { const v = document.getElementById('verdict');"
                  " v.dataset.verdict = ''; }")
    page.click("#verify")
    page.wait_for_function("() => document.getElementById('verdict').dataset.verdict",
                           timeout=90_000)
    return str(page.get_attribute("#verdict", "data-verdict"))


def test_holder_logs_in_reads_home_verifies_and_reports_the_key_lost(
        world: World, pdfs: dict[str, Path], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with world.login("a-rep", address=STRANGER):  # someone else, with the key, elsewhere
        pass
    monkeypatch.setenv("SOFTHSM2_CONF", str(world.home / "softhsm2.conf"))
    with chromium(tmp_path / "profile") as context:
        # --- log in with the USB-Key ------------------------------------------------------
        page = open_page(context, f"{world.server.url}/portal/login")
        page.set_viewport_size({"width": 1280, "height": 800})
        consent = click_for_consent(context, page, "#login")
        consent.select_option("#token", "a-rep")
        type_pin(consent, PIN)
        page.wait_for_url("**/portal/home", timeout=60_000)

        # --- the home: enterprise, holder, certificates, the alert ----------------------------
        assert page.text_content("#enterprise-name") == NAME_A  # 𠮷 as registered
        assert page.text_content("#uscc").strip() == USCC_A
        assert page.text_content("#holder") == "张三"
        certs = page.locator("article.cert[data-mine='true']")
        assert certs.count() == 2
        for i in range(2):
            days = int(certs.nth(i).get_attribute("data-days-left") or "0")
            assert 360 <= days <= 366
            assert f"剩余 {days} 天" in certs.nth(i).text_content()
        alerts = page.locator("#login-alerts")
        assert alerts.is_visible() and "203.0.113.0/24" in alerts.text_content()
        if os.environ.get("ESEAL_SCREENSHOTS"):
            target = Path(os.environ["ESEAL_SCREENSHOTS"]) / "portal-home.png"
            page.screenshot(path=str(target), full_page=False)

        # --- phone width: nothing scrolls sideways ---------------------------------------------
        page.set_viewport_size({"width": 375, "height": 800})
        page.reload()
        page.wait_for_selector("#report-lost")
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
        if os.environ.get("ESEAL_SCREENSHOTS"):
            page.screenshot(path=str(Path(os.environ["ESEAL_SCREENSHOTS"])
                                     / "portal-home-phone.png"))
        page.set_viewport_size({"width": 1280, "height": 800})

        # --- the public verify page: VALID with the seal outlined, then INVALID -------------
        checker = context.new_page()
        checker.set_viewport_size({"width": 1280, "height": 800})
        checker.goto(f"{world.server.url}/portal/verify")
        assert verify(checker, pdfs["sealed"]) == "valid"
        assert "VALID" in checker.text_content("#verdict")
        if os.environ.get("ESEAL_SCREENSHOTS"):
            checker.screenshot(path=str(Path(os.environ["ESEAL_SCREENSHOTS"])
                                        / "portal-verify.png"), full_page=True)
        report = checker.locator("article.seal-report")
        assert report.count() == 1 and report.get_attribute("data-verdict") == "valid"
        assert NAME_A in report.text_content() and USCC_A in report.text_content()
        image = checker.locator(".page-view[data-page='1'] img")
        box = checker.locator(".page-view[data-page='1'] .seal-box")
        assert box.count() == 1 and box.get_attribute("data-number") == "1"
        checker.wait_for_function(
            "() => document.querySelector('.page-view img').complete")
        outer, inner = image.bounding_box(), box.bounding_box()
        assert outer and inner and inner["width"] > 20 and inner["height"] > 20
        assert outer["x"] <= inner["x"]
        assert inner["x"] + inner["width"] <= outer["x"] + outer["width"]
        assert outer["y"] <= inner["y"]
        assert inner["y"] + inner["height"] <= outer["y"] + outer["height"]
        assert verify(checker, pdfs["tampered"]) == "invalid"
        assert "INVALID" in checker.text_content("#verdict")
        assert checker.locator("article.seal-report li.finding.invalid").count() >= 1
        checker.close()

        # --- "this was not me": confirm, frozen, told how to unfreeze ------------------------
        page.reload()
        page.locator("#login-alerts button.not-me").first.click()
        dialog = page.locator("#confirm-dialog")
        dialog.wait_for(state="visible")
        question = page.text_content("#confirm-text") or ""
        assert "a-rep" in question and NAME_A in question and USCC_A in question
        page.click("#confirm-ok")
        page.wait_for_selector("#lost-result:not([hidden])", timeout=60_000)
        assert page.get_attribute("#lost-summary", "data-frozen") == "2"
        assert "管理员" in page.text_content("#lost-result")
        assert statuses(world, "a-rep") == {"login": "hold", "seal": "hold"}
        assert statuses(world, "a-agent") == {"login": "good"}

        # --- the next page load: logged out, and the login page says why ----------------------
        page.reload()
        page.wait_for_url("**/portal/login?**")
        assert page.get_attribute("#why", "data-code") == "SESSION_REVOKED"
        assert page.locator("#why-frozen").is_visible()
