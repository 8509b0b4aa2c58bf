"""The officer's certificate journey through the console, end to end: Debian's chromium with the
eseal extension (Playwright), the native host, real SoftHSM USB-Keys, real ``eseal serve``
processes on one CA home.

The officer logs in at /portal/login with the USB-Key, finds a holder's certificate by credit
code and holder, freezes it after a confirmation that names the holder and the enterprise —
and the holder's next page load is a logout that says why; the officer unfreezes it. Then,
with the clock moved 300 days on (a server on the same home with ``ESEAL_NOW``), the officer
finds 20 certificates due for renewal, previews the batch (nothing changes), confirms, proves
the USB-Key again (the login is more than five minutes old: consent window and PIN), watches
the progress reach 20 and the database hold the 20 renewals.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from eseal import clock
from tests.browserkit import chromium, click_for_consent, need_chromium, open_page, type_pin
from tests.conftest import NAME_A, USCC_A, USCC_B, LiveServer, free_port, make_csr
from tests.web.test_web_session import browser
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world

BATCH = 20
BATCH_HOLDER = "续期测试"
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    need_chromium()
    yield from build_world(tmp_path_factory.mktemp("console-journey"), ENTERPRISE_HOLDERS)


def seed_batch(world: World) -> list[str]:
    """20 real certificates issued by the CA of this home (its token key signs them)."""
    from eseal.ca.authority import Authority
    from eseal.token import configure

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESEAL_HOME", str(world.home))
        mp.setenv("SOFTHSM2_CONF", str(world.home / "softhsm2.conf"))
        mp.delenv("ESEAL_NOW", raising=False)
        configure(world.settings.pkcs11_module, world.settings.softhsm_conf_path)
        with Authority.open(world.settings) as auth:
            return [auth.issue(make_csr(), uscc=USCC_B, profile="login",
                               holder=f"{BATCH_HOLDER}{i:02d}", actor="officer:test").serial
                    for i in range(BATCH)]


def later_server(world: World, name: str, offset: timedelta) -> LiveServer:
    """A server on the same home with the clock moved, answering as its own origin (the
    extension signs the login for the origin the browser shows)."""
    port = free_port()
    server = LiveServer(world.home, port, env={
        "ESEAL_NOW": (clock.now() + offset).isoformat(),
        "ESEAL_BASE_URL": f"http://127.0.0.1:{port}"})
    world.extra[name] = server
    return server


def log_in(context: Any, url: str, pin: str) -> Any:
    page = open_page(context, f"{url}/portal/login")
    consent = click_for_consent(context, page, "#login")
    consent.select_option("#token", "officer")
    type_pin(consent, pin)
    page.wait_for_url(f"{url}/console/certificates")
    return page


def confirm_text(page: Any) -> str:
    page.wait_for_function("() => document.getElementById('confirm-dialog').open")
    return str(page.text_content("#confirm-text"))


def test_officer_freezes_a_holder_who_is_logged_out_unfreezes_and_batch_renews_twenty(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    batch = seed_batch(world)
    target = world.holders["a-agent"]  # 王五 of enterprise A (𠮷 in its name)
    officer_pin = world.holders["officer"].pin
    holder, _ = browser(world, "a-agent")  # the holder, logged in (cookie session)
    monkeypatch.setenv("SOFTHSM2_CONF", str(world.home / "softhsm2.conf"))  # for the host
    with holder, chromium(tmp_path / "profile") as context:
        assert holder.get("/auth/me").status_code == 200
        page = log_in(context, world.server.url, officer_pin)
        page.set_viewport_size({"width": 1280, "height": 800})
        if os.environ.get("ESEAL_SCREENSHOTS") == "docs":  # the README's picture
            page.goto(f"{world.server.url}/console/certificates?uscc=9&status=good&sort=oldest")
            page.wait_for_selector("#results")
            page.screenshot(path=str(DOCS / "console-search.png"))

        # find the holder's certificate by credit code and holder
        page.fill("#f-uscc", USCC_A)
        page.fill("#f-holder", target.name)
        page.click("#search-go")
        page.wait_for_url("**/console/certificates?*uscc=*")
        assert f"uscc={USCC_A}" in page.url  # the search is in the address (bookmarkable)
        page.click(f'#results a[href="/console/certificates/{target.serial}"]')
        page.wait_for_selector(f'#cert[data-serial="{target.serial}"]')
        assert page.text_content("#enterprise-name") == NAME_A

        # a revoke without a reason: a bilingual error under the field, nothing asked or sent
        page.click("#revoke")
        note = page.wait_for_selector('.field-error[data-field="reason"]')
        assert "吊销原因" in note.text_content() and "reason" in note.text_content()
        assert not page.evaluate("() => document.getElementById('confirm-dialog').open")
        assert world.query("SELECT status FROM certificates WHERE serial = :s",
                           s=target.serial) == [("good",)]

        # freeze: the confirmation names the holder and the enterprise
        page.click("#freeze")
        text = confirm_text(page)
        assert target.name in text and NAME_A in text and USCC_A in text
        page.click("#confirm-ok")
        page.wait_for_selector('#cert[data-state="hold"]')
        assert page.get_attribute('#windows tbody tr', "data-open") == "yes"

        # the holder's next page load: logged out, and told why
        next_load = holder.get("/console/", follow_redirects=False)
        assert next_load.status_code == 303, next_load.text
        assert "why=SESSION_REVOKED" in next_load.headers["location"]
        told = holder.get(next_load.headers["location"])
        assert 'data-code="SESSION_REVOKED"' in told.text
        assert "eseal_session" not in holder.cookies  # the page dropped the dead cookie

        # unfreeze: the window closes, the certificate is good again
        page.click("#unfreeze")
        assert target.name in confirm_text(page)
        page.click("#confirm-ok")
        page.wait_for_selector('#cert[data-state="good"]')
        assert page.get_attribute('#windows tbody tr', "data-open") == "no"
        assert world.query("SELECT status FROM certificates WHERE serial = :s",
                           s=target.serial) == [("good",)]

        # 300 days on: log in there, then six minutes later renew (step-up asked)
        later = later_server(world, "later", timedelta(days=300))
        log_in(context, later.url, officer_pin).close()
        page.close()
        latest = later_server(world, "latest", timedelta(days=300, minutes=6))
        page = context.new_page()
        page.goto(f"{latest.url}/console/certificates?holder={BATCH_HOLDER}&limit=20")
        page.wait_for_selector("#results")
        shown = page.eval_on_selector_all("#results tbody tr",
                                          "rows => rows.map(r => r.dataset.serial)")
        assert sorted(shown) == sorted(batch)
        page.click("#renew-these")
        page.wait_for_url("**/console/renewals?serials=*")
        page.wait_for_function("() => document.documentElement.dataset.esealExtension")
        page.click("#preview")
        page.wait_for_selector("#preview-result:not([hidden])")
        assert page.get_attribute("#preview-result", "data-renew") == str(BATCH)
        assert world.query("SELECT count(*) FROM certificates WHERE replaced_by IS NOT NULL"
                           ) == [(0,)]  # the preview changed nothing
        batches: list[Any] = []
        page.on("request", lambda r: batches.append(r.post_data_json) if (
            r.method == "POST" and r.url.endswith("/officer/renewals")) else None)
        page.click("#confirm-renew")
        assert str(BATCH) in confirm_text(page)
        page.click("#confirm-ok")
        page.wait_for_function("() => document.getElementById('confirm-dialog').open && "
                               "document.getElementById('confirm-text').textContent"
                               ".includes('USB-Key')")
        consent = click_for_consent(context, page, "#confirm-ok")
        assert consent.text_content("#origin") == latest.url
        consent.select_option("#token", "officer")
        type_pin(consent, officer_pin)
        page.wait_for_selector('#summary[data-finished="yes"]', timeout=120_000)
        assert page.eval_on_selector("#progress", "p => [p.value, p.max]") == [BATCH, BATCH]
        assert page.get_attribute("#progress-box", "data-renewed") == str(BATCH)
        # one chunk of 20, sent twice: refused for the step-up, then done
        assert [len(b["serials"]) for b in batches] == [BATCH, BATCH]

    renewed = world.query("SELECT serial, replaced_by FROM certificates "
                          "WHERE replaced_by IS NOT NULL")
    assert sorted(r[0] for r in renewed) == sorted(batch)
    new = [r[1] for r in renewed]
    rows = world.query("SELECT renewed_from, status FROM certificates WHERE serial IN ("
                       + ", ".join(f"'{s}'" for s in new) + ")")
    assert sorted(r[0] for r in rows) == sorted(batch) and {r[1] for r in rows} == {"good"}
    stepped = world.query("SELECT count(*) FROM audit_events WHERE action = 'officer.step_up'"
                          " AND outcome = 'refused'")
    assert stepped[0][0] >= 1  # the first chunk was refused until the USB-Key proved itself
