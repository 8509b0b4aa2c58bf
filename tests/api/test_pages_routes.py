"""Page images over HTTP against a live ``eseal serve``: a filing's pages (geometry and PNGs)
for whoever may download the filing, 404 for another enterprise, and the public
``POST /verify/pages`` showing a sealed file's pages with each seal outlined.

The draft is sealed by the legal representative's SoftHSM USB-Key through eseal's own
sealing client (the red round seal), so the outline the service reports is checked against
where the red pixels of the rendered page really are.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hankokit import rewrite_pdf
from pdfkit import make_pdf
from PIL import Image
from sitekit import seal_with_token

from tests.doorkit import check
from tests.worldkit import ENTERPRISE_HOLDERS, PIN, World, build_world

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("pages"), dict(ENTERPRISE_HOLDERS))


@pytest.fixture(scope="module")
def sessions(world: World) -> Iterator[dict[str, httpx.Client]]:
    clients: dict[str, httpx.Client] = {}
    for label in ("a-agent", "a-rep", "b-agent", "officer", "auditor"):
        api = world.login(label)
        clients[label] = httpx.Client(base_url=world.server.url, timeout=120, headers={
            "Authorization": f"Bearer {api.session}"})
    clients["anonymous"] = httpx.Client(base_url=world.server.url, timeout=120)
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def filing(world: World, sessions: dict[str, httpx.Client]) -> dict[str, Any]:
    """A two-page draft by A's agent, sealed by A's legal representative and accepted."""
    draft = make_pdf(pages=2).data
    made = sessions["a-agent"].post("/filings", content=draft, params={"title": "年度报告"},
                                    headers={"Content-Type": "application/pdf"})
    assert made.status_code == 201, made.text
    fid = made.json()["id"]
    sealed = seal_with_token(draft, "a-rep", PIN, server=world.server.url)
    done = sessions["a-rep"].post(f"/filings/{fid}/seal", content=sealed,
                                  headers={"Content-Type": "application/pdf"})
    assert done.status_code == 200, done.text
    return {"id": fid, "draft": draft, "sealed": sealed}


def red_bbox(png: bytes, near: tuple[float, float, float, float]
             ) -> tuple[int, int, int, int] | None:
    """The red pixels' box within 30 px of ``near`` (the sample page's colourful 16x16 test
    image, far from the seal, holds red pixels too)."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    x_range = range(max(0, int(near[0]) - 30), min(image.width, int(near[2]) + 30))
    y_range = range(max(0, int(near[1]) - 30), min(image.height, int(near[3]) + 30))
    red = [(x, y) for y in y_range for x in x_range
           if (p := image.getpixel((x, y)))[0] > 180 and p[1] < 90 and p[2] < 90]
    if not red:
        return None
    xs, ys = [x for x, _ in red], [y for _, y in red]
    return (min(xs), min(ys), max(xs) + 1, max(ys) + 1)


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reader", ["a-agent", "a-rep", "officer", "auditor"])
def test_page_geometry_of_a_draft_for_everyone_who_may_download_it(
        reader: str, sessions: dict[str, httpx.Client], filing: dict[str, Any]) -> None:
    answer = sessions[reader].get(f"/filings/{filing['id']}/pages")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["page_count"] == 2 and body["which"] == "draft"
    assert body["pages"][0] == {"index": 1, "width_pt": 612, "height_pt": 792, "rotate": 0,
                                "box": [0, 0, 612, 792], "media_box": [0, 0, 612, 792]}


def test_another_enterprise_gets_404_for_the_pages_and_their_images(
        sessions: dict[str, httpx.Client], filing: dict[str, Any]) -> None:
    for path in (f"/filings/{filing['id']}/pages", f"/filings/{filing['id']}/pages/1.png",
                 f"/filings/{filing['id']}/pages?which=sealed"):
        answer = sessions["b-agent"].get(path)
        assert answer.status_code == 404
        check(answer, code="FILING_NOT_FOUND", field="id")
    assert sessions["anonymous"].get(f"/filings/{filing['id']}/pages").status_code == 401


def test_page_png_has_the_pixel_size_of_its_points_and_a_private_etag(
        sessions: dict[str, httpx.Client], filing: dict[str, Any]) -> None:
    client = sessions["a-rep"]
    answer = client.get(f"/filings/{filing['id']}/pages/2.png", params={"dpi": 72})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png"
    assert answer.headers["cache-control"].startswith("private")
    assert answer.content.startswith(PNG)
    assert Image.open(io.BytesIO(answer.content)).size == (612, 792)
    etag = answer.headers["etag"]
    again = client.get(f"/filings/{filing['id']}/pages/2.png", params={"dpi": 72},
                       headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other = client.get(f"/filings/{filing['id']}/pages/2.png", params={"dpi": 144})
    assert other.headers["etag"] != etag
    assert Image.open(io.BytesIO(other.content)).size == (1224, 1584)


def test_sealed_file_pages_show_the_red_seal_where_the_report_puts_its_widget(
        sessions: dict[str, httpx.Client], filing: dict[str, Any]) -> None:
    client = sessions["a-agent"]
    geometry = client.get(f"/filings/{filing['id']}/pages", params={"which": "sealed"})
    assert geometry.status_code == 200 and geometry.json()["page_count"] == 2
    png = client.get(f"/filings/{filing['id']}/pages/1.png",
                     params={"which": "sealed", "dpi": 72}).content
    report = client.post("/verify", content=filing["sealed"],
                         headers={"Content-Type": "application/pdf"}).json()
    widget = report["signatures"][0]["widget"]
    assert widget["page"] == 1
    x0, y0, x1, y1 = widget["rect"]
    # 72 dpi: one pixel per point, origin top-left; the seal's ring touches its widget's edges
    want = (x0, 792 - y1, x1, 792 - y0)
    got = red_bbox(png, want)
    assert got is not None
    assert all(abs(g - w) <= 4 for g, w in zip(got, want, strict=True)), (got, want)


@pytest.mark.parametrize(("query", "code", "field"), [
    ({"dpi": 1000}, "DPI_OUT_OF_RANGE", "dpi"),
    ({"dpi": 0}, "DPI_OUT_OF_RANGE", "dpi"),
    ({"dpi": "many"}, "REQUEST_INVALID", "dpi"),
    ({"which": "other"}, "REQUEST_INVALID", "which"),
    ({"dpi": 2**40}, "VALUE_OUT_OF_RANGE", "dpi"),
])
def test_bad_image_parameters_are_coded_422s_naming_the_parameter(
        query: dict[str, Any], code: str, field: str, sessions: dict[str, httpx.Client],
        filing: dict[str, Any]) -> None:
    answer = sessions["a-agent"].get(f"/filings/{filing['id']}/pages/1.png", params=query)
    assert answer.status_code == 422
    check(answer, code=code, field=field)


@pytest.mark.parametrize("page", ["0", "3", "-1", str(2**31 - 1)])
def test_page_zero_or_past_the_last_is_a_coded_422_naming_page(
        page: str, sessions: dict[str, httpx.Client], filing: dict[str, Any]) -> None:
    answer = sessions["a-agent"].get(f"/filings/{filing['id']}/pages/{page}.png")
    assert answer.status_code == 422
    check(answer, code="PAGE_OUT_OF_RANGE", field="page")


def test_sealed_pages_of_a_draft_not_yet_sealed_are_404(
        sessions: dict[str, httpx.Client]) -> None:
    made = sessions["a-agent"].post("/filings", content=make_pdf().data,
                                    headers={"Content-Type": "application/pdf"})
    fid = made.json()["id"]
    answer = sessions["a-agent"].get(f"/filings/{fid}/pages", params={"which": "sealed"})
    assert answer.status_code == 404
    check(answer, code="FILING_NOT_SEALED", field="which")


# ---------------------------------------------------------------------------------------------
def test_public_verify_pages_reports_valid_with_the_seal_outlined_on_its_page(
        sessions: dict[str, httpx.Client], filing: dict[str, Any]) -> None:
    answer = sessions["anonymous"].post("/verify/pages", content=filing["sealed"],
                                        params={"dpi": 72},
                                        headers={"Content-Type": "application/pdf"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["verdict"] == "valid" and body["exit_code"] == 0
    assert body["page_count"] == 2 and body["pages_problem"] is None
    (sig,) = body["signatures"]
    assert sig["widget"]["page"] == 1
    (page,) = body["pages"]  # page 1 carries the seal; page 2 has none
    assert (page["index"], page["width_px"], page["height_px"]) == (1, 612, 792)
    assert page["image"].startswith("data:image/png;base64,")
    png = base64.b64decode(page["image"].split(",", 1)[1])
    (outline,) = page["outlines"]
    assert outline["field_name"] == sig["field_name"]
    left, top, width, height = outline["px"]
    want = (left, top, left + width, top + height)
    got = red_bbox(png, want)
    assert got is not None
    assert all(abs(g - w) <= 4 for g, w in zip(got, want, strict=True)), (got, want)
    # the report part is what POST /verify answers (but the moments it was checked at)
    plain = sessions["anonymous"].post("/verify", content=filing["sealed"]).json()
    for key in ("verdict", "file_sha256", "problems", "revisions", "labels_zh"):
        assert body[key] == plain[key]
    for key in ("field_name", "verdict", "signer", "widget", "integrity", "pades_level"):
        assert [s[key] for s in body["signatures"]] == [s[key] for s in plain["signatures"]]


@pytest.mark.parametrize(("name", "code"), [
    ("not a pdf", "PDF_NOT_PDF"), ("truncated", "PDF_TRUNCATED"),
    ("encrypted", "PDF_ENCRYPTED"), ("unsealed", "PDF_NO_SIGNATURE")])
def test_public_verify_pages_refuses_what_cannot_be_judged_with_a_coded_422(
        name: str, code: str, sessions: dict[str, httpx.Client],
        filing: dict[str, Any]) -> None:
    data = {"not a pdf": b"<html>hello</html>", "truncated": filing["sealed"][:2000],
            "encrypted": rewrite_pdf(filing["draft"], xref_stream=False,
                                     encrypt_password="pw"),
            "unsealed": filing["draft"]}[name]
    answer = sessions["anonymous"].post("/verify/pages", content=data)
    assert answer.status_code == 422
    check(answer, code=code)


def test_public_verify_pages_refuses_an_absurd_dpi_before_reading_the_file(
        sessions: dict[str, httpx.Client], filing: dict[str, Any]) -> None:
    answer = sessions["anonymous"].post("/verify/pages", content=filing["sealed"],
                                        params={"dpi": 100000})
    assert answer.status_code == 422
    check(answer, code="DPI_OUT_OF_RANGE", field="dpi")
