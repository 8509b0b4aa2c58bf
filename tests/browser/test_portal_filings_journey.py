"""The filing journey through the portal's pages, end to end: Debian's chromium with the eseal
extension (Playwright), the native host, real SoftHSM USB-Keys, a real ``eseal serve``.

The agent logs in at /portal/login, uploads a 3-page draft with its business type; the legal
representative logs in, opens it, drags the seal with the mouse onto page 2, ticks 加盖骑缝章
and seals through the extension's consent window → the receipt on the page; the sealed PDF
downloaded from the page has its seal where it was dropped (the widget's /Rect, read by
pypdf), ``eseal verify`` says VALID and pdfsig trusts it, and poppler's rendering shows the
paging seal's slices at every page's right edge. A second filing is placed by touch at phone
width, nudged with the arrow keys, and sealed without the 骑缝章.

With ``ESEAL_SCREENSHOTS=docs`` the review page, mid-drag, is written to
docs/portal-sealing.png (1280×800) for the README.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from pyhanko.pdf_utils.reader import PdfFileReader

from tests.browserkit import (
    chromium,
    click_for_consent,
    need_chromium,
    open_page,
    press_cancel,
    type_pin,
)
from tests.judgekit import pdfsig_check
from tests.pagingkit import is_red, render_pages
from tests.pdfkit import make_pdf
from tests.web.test_web_session import page_login
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world, eseal_cli

SEAL_PT = 120
SHOTS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    need_chromium()
    yield from build_world(tmp_path_factory.mktemp("portal-journey"), ENTERPRISE_HOLDERS)


@pytest.fixture(scope="module")
def context(world: World, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SOFTHSM2_CONF", str(world.home / "softhsm2.conf"))  # for the native host
        with chromium(tmp_path_factory.mktemp("profile")) as ctx:
            yield ctx


def login(context: Any, world: World, label: str, next_path: str) -> Any:
    page = open_page(context, f"{world.server.url}/portal/login?next={next_path}")
    consent = click_for_consent(context, page, "#login")
    consent.select_option("#token", label)
    type_pin(consent, world.holders[label].pin)
    page.wait_for_url(f"{world.server.url}{next_path}")
    return page


def logout(page: Any) -> None:
    page.click("#logout")
    page.wait_for_url(re.compile(r"/portal/login"))
    page.close()


def upload_as_agent(context: Any, world: World, tmp: Path, title: str, kind: str) -> int:
    page = login(context, world, "a-agent", "/portal/filings")
    draft = tmp / "draft.pdf"
    draft.write_bytes(make_pdf(pages=3).data)
    page.select_option("#type", kind)
    page.fill("#title", title)
    page.set_input_files("#file", str(draft))
    page.click("#upload-button")
    page.wait_for_url(re.compile(r"/portal/filings/\d+$"))
    filing = int(page.url.rsplit("/", 1)[1])
    assert page.locator("figure.page").count() == 3
    assert page.locator("#seal").count() == 0  # an agent cannot seal
    logout(page)
    return filing


def box(page: Any, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, selector
    return dict(found)


def expected_position(page: Any, n: int, cx: float, cy: float) -> tuple[float, float]:
    """Where a seal centred on viewport point (cx, cy) over page n lands, in PDF points
    (lower-left corner; unrotated page, box from the figure's data)."""
    fig = page.locator(f"figure.page[data-page='{n}']")
    x0, _y0, _x1, y1 = (float(v) for v in fig.get_attribute("data-box").split())
    img = box(page, f"figure.page[data-page='{n}'] img.page-image")
    per_px = float(fig.get_attribute("data-width-pt")) / img["width"]
    u = (cx - img["x"]) * per_px - SEAL_PT / 2
    v = (cy - img["y"]) * per_px - SEAL_PT / 2
    return x0 + u, y1 - v - SEAL_PT


def seal_and_receipt(context: Any, page: Any, world: World) -> str:
    consent = click_for_consent(context, page, "#seal-button")
    consent.wait_for_function("() => document.getElementById('seal').naturalWidth > 0")
    type_pin(consent, world.holders["a-rep"].pin)
    page.wait_for_selector("#receipt:not([hidden])", timeout=90_000)
    assert "已签章并受理" in page.text_content("#receipt-text")
    return str(page.get_attribute("#receipt", "data-sealed-sha256"))


def download_sealed(page: Any, tmp: Path) -> bytes:
    with page.expect_download() as download:
        page.click("#download-sealed")
    path = tmp / "sealed.pdf"
    download.value.save_as(str(path))
    return path.read_bytes()


def seal_rects(pdf: bytes) -> list[tuple[int, list[float]]]:
    """(page number, /Rect) of every signature widget that holds a signature (pyHanko)."""
    reader = PdfFileReader(io.BytesIO(pdf))
    found = []
    for index in range(int(reader.root["/Pages"]["/Count"])):
        page_ref, _ = reader.find_page_for_modification(index)
        for ref in page_ref.get_object().get("/Annots", []):
            annot = ref.get_object()
            parent = annot.get("/Parent")
            field = parent.get_object() if parent is not None else annot
            if field.get("/FT") == "/Sig" and field.get("/V") is not None:
                found.append((index + 1, [float(v) for v in annot["/Rect"]]))
    return found


def root_of(world: World) -> x509.Certificate:
    pem = httpx.get(f"{world.server.url}/ca/chain.pem", timeout=30).content
    certs = x509.load_pem_x509_certificates(pem)
    return next(c for c in certs if c.subject == c.issuer)


def judged(world: World, sealed: bytes, tmp: Path) -> None:
    path = tmp / "judged.pdf"
    path.write_bytes(sealed)
    verdict = eseal_cli(world, "verify", str(path), "--json")
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr
    report = json.loads(verdict.stdout)
    assert len(report["signatures"]) == 1
    pdfsig = pdfsig_check(path, root_of(world), workdir=tmp)
    assert pdfsig.signatures == 1 and pdfsig.valid == [True] and pdfsig.trusted == [True]
    assert pdfsig.total_document_signed == [True]


def right_edge_red(pdf: bytes) -> list[int]:
    """Red pixels in the rightmost 20 px of each page as poppler draws it (50 dpi)."""
    counts = []
    for image in render_pages(pdf):
        px = image.load()
        counts.append(sum(is_red(px[x, y]) for x in range(image.width - 20, image.width)
                          for y in range(image.height)))
    return counts


def test_without_the_extension_the_review_page_says_how_to_install_it(
        world: World, tmp_path: Path) -> None:
    # first in the module: its own browser runs before the module's (one Playwright at a time)
    answer = page_login(world, "a-agent")
    created = httpx.post(f"{world.server.url}/filings",
                         params={"title": "备案材料", "type": "record_filing"},
                         content=make_pdf(pages=1).data, cookies=answer.cookies, timeout=60,
                         headers={"Content-Type": "application/pdf",
                                  "X-CSRF-Token": answer.json()["csrf_token"]})
    assert created.status_code == 201, created.text
    rep = page_login(world, "a-rep")
    with chromium(tmp_path / "bare", host=False, extension=False) as bare:
        bare.add_cookies([{"name": "eseal_session", "value": rep.cookies["eseal_session"],
                           "url": world.server.url}])
        page = bare.new_page()
        page.goto(f"{world.server.url}/portal/filings/{created.json()['id']}")
        page.wait_for_selector("#install-help:not([hidden])")
        assert page.get_attribute("#error", "data-code") == "EXTENSION_MISSING"
        text = page.text_content("#error")
        assert "扩展" in text and "extension" in text
        assert "eseal browser install" in page.text_content("#install-help")


def test_agent_uploads_rep_drags_the_seal_onto_page_2_and_seals_with_the_paging_seal(
        world: World, context: Any, tmp_path: Path) -> None:
    filing = upload_as_agent(context, world, tmp_path, "2025 年度报告", "annual_report")
    assert world.query("SELECT filing_type, draft_pages FROM filings WHERE id = :i",
                       i=filing) == [("annual_report", 3)]
    page = login(context, world, "a-rep", f"/portal/filings/{filing}")
    page.set_viewport_size({"width": 1280, "height": 800})
    page.wait_for_function("() => [...document.querySelectorAll('figure.page img.page-image')]"
                           ".every((i) => i.complete && i.naturalWidth > 0)")
    page.wait_for_function("() => document.getElementById('seal').naturalWidth > 0")
    assert page.get_attribute("#seal-where", "data-placed") == "false"

    # a first drag onto page 1 (the picture for the README is taken mid-drag), dropped, then
    # taken back off the page with Escape
    page.evaluate("() => window.scrollTo(0, 0)")
    seal = box(page, "#seal")
    img = box(page, "figure.page[data-page='1'] img.page-image")
    page.mouse.move(seal["x"] + seal["width"] / 2, seal["y"] + seal["height"] / 2)
    page.mouse.down()
    page.mouse.move(img["x"] + img["width"] * 0.62, 640, steps=10)
    if os.environ.get("ESEAL_SCREENSHOTS") == "docs":
        page.screenshot(path=str(SHOTS / "portal-sealing.png"))
    page.mouse.up()
    assert page.get_attribute("#seal-where", "data-page") == "1"
    page.keyboard.press("Escape")
    assert page.get_attribute("#seal-where", "data-placed") == "false"

    page.locator("figure.page[data-page='2'] img.page-image").scroll_into_view_if_needed()
    page.evaluate("() => window.scrollBy(0, 150)")
    seal = box(page, "#seal")
    img = box(page, "figure.page[data-page='2'] img.page-image")
    target = (img["x"] + img["width"] * 0.35, max(img["y"], 0) + 260)
    assert target[1] < 800 - 80 and target[1] > img["y"]
    page.mouse.move(seal["x"] + seal["width"] / 2, seal["y"] + seal["height"] / 2)
    page.mouse.down()
    page.mouse.move(target[0], target[1], steps=12)
    page.mouse.up()
    want_x, want_y = expected_position(page, 2, *target)
    where = page.locator("#seal-where")
    assert where.get_attribute("data-placed") == "true"
    assert where.get_attribute("data-page") == "2"
    assert abs(float(where.get_attribute("data-x")) - want_x) < 1.5
    assert abs(float(where.get_attribute("data-y")) - want_y) < 1.5
    assert "第 2 页" in where.text_content()

    page.check("#paging")
    sealed_sha = seal_and_receipt(context, page, world)
    sealed = download_sealed(page, tmp_path)
    import hashlib

    assert hashlib.sha256(sealed).hexdigest() == sealed_sha
    [(on_page, rect)] = seal_rects(sealed)
    assert on_page == 2
    assert abs(rect[0] - want_x) <= 3 and abs(rect[1] - want_y) <= 3
    assert abs(rect[2] - rect[0] - SEAL_PT) <= 1 and abs(rect[3] - rect[1] - SEAL_PT) <= 1
    judged(world, sealed, tmp_path)
    assert all(red > 50 for red in right_edge_red(sealed)), "a page lacks its 骑缝章 slice"
    receipt = page.evaluate("(u) => fetch(u).then((r) => r.json())",
                            f"/filings/{filing}/receipt")
    assert receipt["receipt"]["sealed_sha256"] == sealed_sha
    # the page, loaded again, shows the sealed pages and the receipt links, no seal to drag
    page.reload()
    assert page.locator("#seal").count() == 0
    assert page.get_attribute("#filing", "data-status") == "accepted"
    assert "which=sealed" in str(page.get_attribute("figure.page img.page-image >> nth=0", "src"))
    logout(page)


def test_touch_at_phone_width_and_the_arrow_keys_place_the_seal_and_it_seals_without_paging(
        world: World, context: Any, tmp_path: Path) -> None:
    filing = upload_as_agent(context, world, tmp_path, "股东变更登记", "change_registration")
    page = login(context, world, "a-rep", f"/portal/filings/{filing}")
    page.set_viewport_size({"width": 390, "height": 844})
    cdp = context.new_cdp_session(page)
    cdp.send("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 1})
    page.wait_for_function("() => document.getElementById('seal').naturalWidth > 0")
    page.wait_for_function("() => document.querySelector('figure.page img.page-image')"
                           ".naturalWidth > 0")
    # the pages scroll under the seal's panel, which stays on top at phone width
    page.evaluate("() => window.scrollTo(0, document.querySelector('figure.page').offsetTop)")
    panel = box(page, ".panel")
    assert panel["y"] >= 0 and panel["y"] + panel["height"] < 844 / 2
    seal = box(page, "#seal")
    img = box(page, "figure.page[data-page='1'] img.page-image")
    assert img["width"] < 390  # the page fits the phone's width
    start = (seal["x"] + seal["width"] / 2, seal["y"] + seal["height"] / 2)
    target = (img["x"] + img["width"] * 0.5, panel["y"] + panel["height"] + 120)
    assert img["y"] < target[1] < min(img["y"] + img["height"], 844 - 60)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart",
                                          "touchPoints": [{"x": start[0], "y": start[1]}]})
    for i in range(1, 11):
        x = start[0] + (target[0] - start[0]) * i / 10
        y = start[1] + (target[1] - start[1]) * i / 10
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove",
                                              "touchPoints": [{"x": x, "y": y}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    where = page.locator("#seal-where")
    page.wait_for_function("() => document.getElementById('seal-where').dataset.placed === "
                           "'true'")
    assert where.get_attribute("data-page") == "1"
    want_x, want_y = expected_position(page, 1, *target)
    assert abs(float(where.get_attribute("data-x")) - want_x) < 3
    assert abs(float(where.get_attribute("data-y")) - want_y) < 3
    page.focus("#seal")
    for _ in range(5):
        page.keyboard.press("ArrowLeft")  # 6 pt each
    page.keyboard.press("Shift+ArrowUp")  # 36 pt up: y grows
    moved_x, moved_y = float(where.get_attribute("data-x")), float(where.get_attribute("data-y"))
    assert abs(moved_x - (want_x - 30)) < 3.5 and abs(moved_y - (want_y + 36)) < 3.5
    assert not page.is_checked("#paging")
    consent = click_for_consent(context, page, "#seal-button")  # first the holder cancels
    press_cancel(consent)
    page.wait_for_selector("#error:not([hidden])")
    assert page.get_attribute("#error", "data-code") == "USER_CANCELLED"
    assert "取消" in page.text_content("#error") and "cancel" in page.text_content("#error")
    assert world.query("SELECT status FROM filings WHERE id = :i", i=filing) == [("draft",)]
    sealed_sha = seal_and_receipt(context, page, world)
    sealed = download_sealed(page, tmp_path)
    import hashlib

    assert hashlib.sha256(sealed).hexdigest() == sealed_sha
    [(on_page, rect)] = seal_rects(sealed)
    assert on_page == 1 and abs(rect[0] - moved_x) <= 3 and abs(rect[1] - moved_y) <= 3
    judged(world, sealed, tmp_path)
    assert all(red == 0 for red in right_edge_red(sealed)), "no 骑缝章 was asked for"
    logout(page)

