"""The portal's filings pages over a real ``eseal serve``: the list and the review page for
the agent and the legal representative, another enterprise's filing as a 404 page, the seal
preview drawn by the service's own seal drawing, and every bad upload the form can send —
a non-PDF, a 50 MB+ body over the limit (a real body to a real server with the limit set to
50 MiB), the business type missing or unknown — answered field by field, coded, bilingual,
with nothing stored."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from eseal.holder.sealing import seal_image_for
from tests.conftest import LiveServer, free_port
from tests.pdfkit import make_pdf
from tests.web.test_web_session import browser
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world

PDF = {"Content-Type": "application/pdf"}
LIMIT = 50 * 1024 * 1024


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("portal-filings"), ENTERPRISE_HOLDERS)


@pytest.fixture(scope="module")
def clients(world: World) -> Iterator[dict[str, tuple[httpx.Client, str]]]:
    made = {label: browser(world, label) for label in ("a-agent", "a-rep", "b-agent")}
    yield made
    for client, _ in made.values():
        client.close()


def upload(client: httpx.Client, csrf: str, data: bytes, **params: str) -> httpx.Response:
    return client.post("/filings", params=params, content=data,
                       headers={**PDF, "X-CSRF-Token": csrf})


def stored(world: World) -> tuple[int, int]:
    return (world.query("SELECT count(*) FROM filings")[0][0],
            world.query("SELECT count(*) FROM filing_documents")[0][0])


def field_error(answer: httpx.Response, status: int, code: str, field: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert body["code"] == code and body["field"] == field, body
    assert body["message"] and body["message_zh"] and body["message"] != body["message_zh"]
    return dict(body)


@pytest.fixture(scope="module")
def a_filing(clients: dict[str, tuple[httpx.Client, str]]) -> int:
    answer = upload(*clients["a-agent"], make_pdf(pages=3).data, title="2025 年度报告",
                    type="annual_report")
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def test_the_list_shows_the_filing_with_its_type_and_state_and_offers_the_upload_form(
        clients: dict[str, tuple[httpx.Client, str]], a_filing: int) -> None:
    for label in ("a-agent", "a-rep"):
        page = clients[label][0].get("/portal/filings")
        assert page.status_code == 200, page.text
        row = re.search(rf'<tr data-filing-id="{a_filing}" data-status="draft">(.*?)</tr>',
                        page.text, re.S)
        assert row and "2025 年度报告" in row.group(1) and "年度报告" in row.group(1)
        assert "待签章" in row.group(1)
        for name in ('name="type"', 'name="title"', 'name="file"'):
            assert name in page.text  # the inputs carry the API's field names
        assert '<option value="change_registration">变更登记</option>' in page.text
        assert f'data-limit="{100 * 1024 * 1024}"' in page.text
        assert '<script src="/static/portal-filings.js">' in page.text
    english = clients["a-agent"][0].get("/portal/filings?lang=en")
    assert "annual report" in english.text and "Upload a draft filing" in english.text
    clients["a-agent"][0].get("/portal/filings?lang=zh")  # back to Chinese for the rest


def test_the_review_page_shows_every_page_with_its_geometry_and_only_the_rep_gets_the_seal(
        clients: dict[str, tuple[httpx.Client, str]], a_filing: int) -> None:
    rep, _ = clients["a-rep"]
    geometry = rep.get(f"/filings/{a_filing}/pages").json()
    page = rep.get(f"/portal/filings/{a_filing}")
    assert page.status_code == 200, page.text
    figures = re.findall(r'<figure class="page" data-page="(\d+)" data-width-pt="([\d.]+)" '
                         r'data-height-pt="([\d.]+)"\s+data-rotate="(\d+)"', page.text)
    assert [(int(n), float(w), float(h), int(r)) for n, w, h, r in figures] == [
        (p["index"], p["width_pt"], p["height_pt"], p["rotate"]) for p in geometry["pages"]]
    assert len(figures) == 3
    for n in (1, 2, 3):
        src = f"/filings/{a_filing}/pages/{n}.png?which=draft&amp;dpi=100"
        assert src in page.text
        image = rep.get(src.replace("&amp;", "&"))
        assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert 'id="seal"' in page.text and 'name="paging_seal"' in page.text
    assert 'id="seal-button"' in page.text and 'id="install-help"' in page.text
    assert '<script src="/static/portal-filing.js">' in page.text

    agent_view = clients["a-agent"][0].get(f"/portal/filings/{a_filing}")
    assert agent_view.status_code == 200
    assert 'id="seal"' not in agent_view.text and "portal-filing.js" not in agent_view.text
    assert "等待法定代表人签章" in agent_view.text
    # the JSON route behind the button refuses the agent on its own
    client, csrf = clients["a-agent"]
    refused = client.post(f"/filings/{a_filing}/browser-seal", json={"page": 2},
                          headers={"X-CSRF-Token": csrf})
    field_error(refused, 403, "ROLE_FORBIDDEN", "role")


def test_the_seal_preview_is_the_services_own_drawing_of_the_enterprise_seal(
        world: World, clients: dict[str, tuple[httpx.Client, str]], a_filing: int) -> None:
    from cryptography import x509

    preview = clients["a-rep"][0].get(f"/portal/filings/{a_filing}/seal.png")
    assert preview.status_code == 200 and preview.headers["content-type"] == "image/png"
    der = world.query("SELECT c.der FROM certificates c JOIN enterprises e ON e.id = "
                      "c.enterprise_id WHERE e.uscc = :u AND c.profile = 'seal'",
                      u=world.holders["a-rep"].uscc)[0][0]
    expected = seal_image_for(x509.load_der_x509_certificate(bytes(der)), size_px=300)
    assert preview.content == expected
    image = Image.open(io.BytesIO(preview.content)).convert("RGBA")
    r, g, b, a = image.getpixel((150, 4))  # the top of the ring: red, opaque
    assert a > 0 and r > 150 and g < 80 and b < 80
    assert clients["a-agent"][0].get(f"/portal/filings/{a_filing}/seal.png").status_code == 403


def test_another_enterprises_filing_is_a_404_page_like_one_that_does_not_exist(
        clients: dict[str, tuple[httpx.Client, str]], a_filing: int) -> None:
    b_filing = upload(*clients["b-agent"], make_pdf(pages=1).data, title="B 的变更登记",
                      type="change_registration")
    assert b_filing.status_code == 201, b_filing.text
    b_id = b_filing.json()["id"]
    for label in ("a-agent", "a-rep"):
        client = clients[label][0]
        for path in (f"/portal/filings/{b_id}", f"/portal/filings/{b_id + 1000}"):
            page = client.get(path)
            assert page.status_code == 404, page.text
            assert page.headers["content-type"].startswith("text/html")
            assert 'data-code="FILING_NOT_FOUND"' in page.text
            assert "B 的变更登记" not in page.text
    assert clients["a-rep"][0].get(f"/portal/filings/{b_id}/seal.png").status_code == 404
    listed = clients["a-agent"][0].get("/portal/filings").text
    assert "B 的变更登记" not in listed and f'data-filing-id="{a_filing}"' in listed


def test_a_non_pdf_upload_is_a_field_error_on_the_file_and_stores_nothing(
        world: World, clients: dict[str, tuple[httpx.Client, str]]) -> None:
    before = stored(world)
    for data in (b"PK\x03\x04 this is a zip, not a PDF" * 10, b"", "年度报告".encode()):
        answer = upload(*clients["a-agent"], data, title="年报", type="annual_report")
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "file" and answer.json()["message_zh"]
    assert stored(world) == before


def test_a_missing_or_unknown_business_type_is_a_field_error_and_stores_nothing(
        world: World, clients: dict[str, tuple[httpx.Client, str]]) -> None:
    before = stored(world)
    pdf = make_pdf(pages=1).data
    field_error(upload(*clients["a-agent"], pdf, title="年报", type=""),
                422, "FILING_TYPE_REQUIRED", "type")
    field_error(upload(*clients["a-agent"], pdf, title="年报", type="tax_return"),
                422, "FILING_TYPE_UNKNOWN", "type")
    assert stored(world) == before
    refusals = world.query("SELECT count(*) FROM audit_events WHERE action = 'filing.create'"
                           " AND outcome = 'refused'")[0][0]
    assert refusals >= 2


def test_a_50_mb_upload_over_the_limit_is_a_coded_413_on_the_file_and_stores_nothing(
        world: World, clients: dict[str, tuple[httpx.Client, str]]) -> None:
    server = LiveServer(world.home, free_port(), env={"ESEAL_UPLOAD_LIMIT_BYTES": str(LIMIT)})
    try:
        _, csrf = clients["a-agent"]
        cookies = clients["a-agent"][0].cookies
        body = b"%PDF-1.7\n" + b"0" * (LIMIT + 1024 * 1024)  # 51 MiB, a real body
        before = stored(world)
        with httpx.Client(base_url=server.url, cookies=cookies, timeout=120) as client:
            page = client.get("/portal/filings")
            assert f'data-limit="{LIMIT}"' in page.text and "50 MB" in page.text

            def chunks() -> Iterator[bytes]:  # no Content-Length: the server must cut it
                for start in range(0, len(body), 1024 * 1024):
                    yield body[start:start + 1024 * 1024]

            for content in (body, chunks()):
                try:
                    answer = client.post("/filings", params={"title": "大文件",
                                                             "type": "annual_report"},
                                         content=content, headers={**PDF, "X-CSRF-Token": csrf})
                except httpx.WriteError:
                    pytest.fail("the server closed the connection instead of answering 413")
                error = field_error(answer, 413, "UPLOAD_TOO_LARGE", "file")
                assert error["details"]["limit_bytes"] == LIMIT
        assert stored(world) == before
    finally:
        server.stop()


def test_a_one_page_filing_offers_no_paging_seal_and_says_why(
        clients: dict[str, tuple[httpx.Client, str]]) -> None:
    answer = upload(*clients["a-agent"], make_pdf(pages=1).data, title="单页备案",
                    type="record_filing")
    assert answer.status_code == 201, answer.text
    page = clients["a-rep"][0].get(f"/portal/filings/{answer.json()['id']}")
    assert re.search(r'name="paging_seal" disabled aria-describedby="paging-why"', page.text)
    assert "单页或含旋转页面的材料不能加盖骑缝章" in page.text


def test_the_form_offers_only_the_types_the_agent_holds_and_the_api_refuses_the_others(
        world: World, clients: dict[str, tuple[httpx.Client, str]]) -> None:
    rep, rep_csrf = clients["a-rep"]
    uscc = world.holders["a-agent"].uscc
    agent_id = world.query("SELECT id FROM accounts WHERE name = :n", n="王五")[0][0]
    rights = f"/enterprises/{uscc}/accounts/{agent_id}/rights"
    granted = rep.put(rights, json={"types": ["annual_report"]},
                      headers={"X-CSRF-Token": rep_csrf})
    assert granted.status_code == 200, granted.text
    try:
        page = clients["a-agent"][0].get("/portal/filings").text
        form = page[page.index('<form id="upload"'):page.index("</form>")]
        assert re.findall(r'<option value="(\w+)">', form) == ["annual_report"]
        before = stored(world)
        field_error(upload(*clients["a-agent"], make_pdf(pages=1).data, title="变更",
                           type="change_registration"), 403, "FILING_TYPE_FORBIDDEN", "type")
        assert stored(world) == before
    finally:
        every = [t["code"] for t in rep.get("/filing-types").json()]
        restored = rep.put(rights, json={"types": every}, headers={"X-CSRF-Token": rep_csrf})
        assert restored.status_code == 200, restored.text
