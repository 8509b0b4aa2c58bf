"""Page images: a PDF page rendered by poppler's pdftoppm in a bounded child process, with the
geometry that maps its pixels to PDF points, and each seal's widget in the verify report.

Pixel tests: a red rectangle painted at known points must appear at the pixels the geometry
says (portrait, landscape, rotated, cropped pages, three resolutions), and a seal's reported
widget must be where its appearance is painted. Hostile files (not a PDF, truncated,
encrypted, 100,000 pages, absurd sizes) and bad arguments are coded 422s naming the field.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest
from hankokit import rewrite_pdf, seal_pdf
from pdfkit import PdfBuilder, make_pdf, stream_object
from PIL import Image
from pkikit import TestPki, make_pki

from eseal.errors import InvalidInput
from eseal.signing import page_images
from eseal.signing.page_geometry import MAX_PAGES, PageBox
from eseal.signing.page_images import document_pages, render_page, render_pages
from eseal.signing.verify import verify_pdf

RED_RECT = (100.0, 200.0, 150.0, 230.0)  # x0, y0, x1, y1 in points


def one_page(media: str = "0 0 595 842", *, extra: str = "",
             content: bytes | None = None) -> bytes:
    """One page with a red rectangle at :data:`RED_RECT` (user space)."""
    x0, y0, x1, y1 = RED_RECT
    body = content if content is not None else (
        f"1 0 0 rg {x0:g} {y0:g} {x1 - x0:g} {y1 - y0:g} re f".encode())
    b = PdfBuilder()
    root, pages, page = b.reserve(), b.reserve(), b.reserve()
    stream = b.add(stream_object(body))
    b.set(page, f"<< /Type /Page /Parent {pages} 0 R /MediaBox [{media}] {extra} "
                f"/Resources << >> /Contents {stream} 0 R >>")
    b.set(pages, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    b.set(root, f"<< /Type /Catalog /Pages {pages} 0 R >>")
    return b.build(root)


def red_bbox(png: bytes, region: tuple[int, int, int, int] | None = None
             ) -> tuple[int, int, int, int] | None:
    """Left, top, right, bottom (exclusive) of the red pixels."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    r, g, b = image.split()
    mask = Image.eval(r, lambda v: 255 if v > 180 else 0)
    mask = Image.composite(mask, Image.new("L", image.size, 0),
                           Image.eval(g, lambda v: 255 if v < 90 else 0))
    mask = Image.composite(mask, Image.new("L", image.size, 0),
                           Image.eval(b, lambda v: 255 if v < 90 else 0))
    if region is not None:
        mask = mask.crop(region)
    box = mask.getbbox()
    if box is None or region is None:
        return box
    return (box[0] + region[0], box[1] + region[1], box[2] + region[0], box[3] + region[1])


def ink_bbox(png: bytes, region: tuple[int, int, int, int]) -> tuple[int, int, int, int] | None:
    """Bounding box of every non-white pixel inside ``region`` (page coordinates)."""
    image = Image.open(io.BytesIO(png)).convert("L").crop(region)
    box = Image.eval(image, lambda v: 255 if v < 200 else 0).getbbox()
    return None if box is None else (box[0] + region[0], box[1] + region[1],
                                     box[2] + region[0], box[3] + region[1])


def expected_px(page: PageBox, rect: tuple[float, ...], dpi: int) -> tuple[float, ...]:
    left, top, width, height = page.rect_to_pixels(rect, dpi)  # type: ignore[arg-type]
    return (left, top, left + width, top + height)


def assert_near(got: tuple[int, ...] | None, want: tuple[float, ...], tol: float = 1.5) -> None:
    assert got is not None
    assert all(abs(g - w) <= tol for g, w in zip(got, want, strict=True)), (got, want)


def code_of(call, *args, **kwargs) -> InvalidInput:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidInput) as caught:
        call(*args, **kwargs)
    return caught.value


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dpi", [72, 100, 150])
def test_a4_page_renders_at_its_size_in_pixels_and_the_red_box_where_its_points_say(
        dpi: int) -> None:
    image = render_page(one_page(), 1, dpi)
    assert (image.page.width_pt, image.page.height_pt, image.page.rotate) == (595, 842, 0)
    size = Image.open(io.BytesIO(image.png)).size
    assert size == (image.width_px, image.height_px) == image.page.pixel_size(dpi)
    assert abs(size[0] - 595 * dpi / 72) < 1 and abs(size[1] - 842 * dpi / 72) < 1
    assert_near(red_bbox(image.png), expected_px(image.page, RED_RECT, dpi))
    # and back: the centre pixel of the box is the centre point of the rectangle
    x, y = image.page.to_user(*image.page.to_pixels(125, 215, dpi), dpi)
    assert (round(x, 6), round(y, 6)) == (125, 215)


def test_landscape_page_is_wider_than_high_and_maps_the_same_way() -> None:
    image = render_page(one_page("0 0 842 595"), 1, 100)
    assert (image.page.width_pt, image.page.height_pt) == (842, 595)
    assert image.width_px > image.height_px
    assert_near(red_bbox(image.png), expected_px(image.page, RED_RECT, 100))


@pytest.mark.parametrize("rotate", [90, 180, 270, -90, 450])
def test_rotated_page_is_shown_turned_and_its_pixels_map_back_to_points(rotate: int) -> None:
    image = render_page(one_page(extra=f"/Rotate {rotate}"), 1, 72)
    turned = rotate % 360
    assert image.page.rotate == turned
    if turned in (90, 270):
        assert (image.page.width_pt, image.page.height_pt) == (842, 595)
        assert (image.width_px, image.height_px) == (842, 595)
    bbox = red_bbox(image.png)
    assert_near(bbox, expected_px(image.page, RED_RECT, 72))
    assert bbox is not None
    centre = image.page.to_user((bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2, 72)
    assert abs(centre[0] - 125) < 1.5 and abs(centre[1] - 215) < 1.5


def test_crop_box_is_the_visible_area_and_offsets_the_mapping() -> None:
    pdf = one_page("0 0 595 842", extra="/CropBox [50 150 400 700]")
    (page,) = document_pages(pdf)
    assert page.box == (50, 150, 400, 700) and page.media == (0, 0, 595, 842)
    image = render_page(pdf, 1, 100)
    assert (image.width_px, image.height_px) == page.pixel_size(100) == (487, 764)
    assert_near(red_bbox(image.png), expected_px(page, RED_RECT, 100))


def test_inherited_boxes_and_rotation_come_from_the_page_tree() -> None:
    b = PdfBuilder()
    root, pages, p1, p2 = b.reserve(), b.reserve(), b.reserve(), b.reserve()
    content = b.add(stream_object(b"0 0 1 rg 10 10 20 20 re f"))
    b.set(p1, f"<< /Type /Page /Parent {pages} 0 R /Contents {content} 0 R >>")
    b.set(p2, f"<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 300 200] /Rotate 0 "
              f"/Contents {content} 0 R >>")
    b.set(pages, f"<< /Type /Pages /Kids [{p1} 0 R {p2} 0 R] /Count 2 /MediaBox [0 0 400 500]"
                 " /Rotate 90 >>")
    b.set(root, f"<< /Type /Catalog /Pages {pages} 0 R >>")
    pdf = b.build(root)
    first, second = document_pages(pdf)
    assert (first.width_pt, first.height_pt, first.rotate) == (500, 400, 90)
    assert (second.width_pt, second.height_pt, second.rotate) == (300, 200, 0)
    images = render_pages(pdf, [1, 2], 72)
    assert [(i.width_px, i.height_px) for i in images] == [(500, 400), (300, 200)]


# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki() -> TestPki:
    return make_pki()


@pytest.fixture(autouse=True)
def _real_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("ESEAL_NOW", raising=False)  # pyHanko seals at the real time
    yield


def test_seal_widget_in_the_report_is_where_its_appearance_is_painted(pki: TestPki) -> None:
    doc = make_pdf(pages=2).data
    sealed = seal_pdf(doc, pki.seal, pki, visible=True, box=(380, 90, 540, 190))
    report = verify_pdf(sealed, trust_roots=[pki.root.cert])
    (sig,) = report.signatures
    assert sig.widget is not None
    assert (sig.widget.page, sig.widget.rect) == (1, (380, 90, 540, 190))
    assert sig.to_dict()["widget"] == {"page": 1, "rect": [380, 90, 540, 190],
                                       "rect_in_box": [380, 90, 540, 190], "page_rotate": 0}
    image = render_page(sealed, 1, 100)
    want = expected_px(image.page, sig.widget.rect, 100)
    # the stamp's border is the ink nearest the widget's edges; nothing else is painted there
    region = (int(want[0]) - 20, int(want[1]) - 20, int(want[2]) + 20, int(want[3]) + 20)
    assert_near(ink_bbox(image.png, region), want, tol=3)


def test_invisible_seal_has_no_widget_and_the_report_says_so(pki: TestPki) -> None:
    sealed = seal_pdf(make_pdf().data, pki.seal, pki)
    (sig,) = verify_pdf(sealed, trust_roots=[pki.root.cert]).signatures
    assert sig.widget is None and sig.to_dict()["widget"] is None


def test_seal_on_a_cropped_page_reports_its_rect_in_the_visible_box_too(pki: TestPki) -> None:
    doc = one_page("0 0 595 842", extra="/CropBox [50 150 400 700]")
    sealed = seal_pdf(doc, pki.seal, pki, visible=True, box=(200, 300, 300, 400))
    (sig,) = verify_pdf(sealed, trust_roots=[pki.root.cert]).signatures
    assert sig.to_dict()["widget"]["rect_in_box"] == [150, 150, 250, 250]


# ---------------------------------------------------------------------------------------------
def _claiming_pages(count: int, kids: int) -> bytes:
    b = PdfBuilder()
    root, pages, page = b.reserve(), b.reserve(), b.reserve()
    b.set(page, f"<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 595 842] >>")
    b.set(pages, f"<< /Type /Pages /Kids [{' '.join([f'{page} 0 R'] * kids)}] "
                 f"/Count {count} >>")
    b.set(root, f"<< /Type /Catalog /Pages {pages} 0 R >>")
    return b.build(root)


def _many_distinct_pages(count: int) -> bytes:
    b = PdfBuilder()
    root, pages = b.reserve(), b.reserve()
    ids = [b.add(f"<< /Type /Page /Parent {pages} 0 R >>") for _ in range(count)]
    b.set(pages, f"<< /Type /Pages /Kids [{' '.join(f'{i} 0 R' for i in ids)}] /Count 1 "
                 "/MediaBox [0 0 595 842] >>")
    b.set(root, f"<< /Type /Catalog /Pages {pages} 0 R >>")
    return b.build(root)


HOSTILE = {
    "not a pdf": (b"GIF89a not a pdf at all", "PDF_NOT_PDF"),
    "empty": (b"", "PDF_EMPTY"),
    "truncated": (one_page()[:300], "PDF_TRUNCATED"),
    "encrypted": (rewrite_pdf(one_page(), xref_stream=False, encrypt_password="pw"),
                  "PDF_ENCRYPTED"),
    "claims 100,000 pages": (_claiming_pages(100_000, 1), "PDF_TOO_MANY_PAGES"),
    "one page listed 100,000 times": (_claiming_pages(1, 100_000), "PDF_TOO_MANY_PAGES"),
    "a page listed twice": (_claiming_pages(2, 2), "PDF_MALFORMED"),
    f"{MAX_PAGES + 1} real pages under a lying count": (_many_distinct_pages(MAX_PAGES + 1),
                                                         "PDF_TOO_MANY_PAGES"),
    "rotate 45": (one_page(extra="/Rotate 45"), "PDF_MALFORMED"),
    "rotate 90.0 (poppler ignores it, others turn)": (one_page(extra="/Rotate 90.0"),
                                                      "PDF_MALFORMED"),
    "crop box outside the media box": (one_page(extra="/CropBox [700 900 800 1000]"),
                                       "PDF_MALFORMED"),
    "box of three numbers": (one_page("0 0 595"), "PDF_MALFORMED"),
    "page larger than PDF allows": (one_page("0 0 20000 842"), "PDF_MALFORMED"),
    "no pages": (_claiming_pages(0, 0), "PDF_NO_PAGES"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_is_a_coded_422_naming_the_file_and_nothing_is_rendered(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data, code = HOSTILE[name]

    def no_render(*_a: object, **_k: object) -> bytes:
        raise AssertionError("rendered a file that should have been refused")

    monkeypatch.setattr(page_images, "_run", no_render)
    err = code_of(render_page, data, 1, 100)
    assert (err.code, err.status, err.field) == (code, 422, "file"), err.to_dict()


@pytest.mark.parametrize("dpi", [0, 35, 151, 10**9, -72])
def test_dpi_outside_36_to_150_is_refused_naming_dpi(dpi: int) -> None:
    err = code_of(render_page, one_page(), 1, dpi)
    assert (err.code, err.status, err.field) == ("DPI_OUT_OF_RANGE", 422, "dpi")


@pytest.mark.parametrize("page", [0, -1, 2, 10**12])
def test_page_zero_or_beyond_the_last_is_refused_naming_page(page: int) -> None:
    err = code_of(render_page, one_page(), page, 72)
    assert (err.code, err.status, err.field) == ("PAGE_OUT_OF_RANGE", 422, "page")


def test_page_too_large_in_pixels_is_refused_before_rendering() -> None:
    err = code_of(render_page, one_page("0 0 14400 14400"), 1, 72)
    assert (err.code, err.field) == ("PAGE_TOO_LARGE", "dpi")
    assert render_page(one_page("0 0 2000 2000"), 1, 36).width_px == 1000  # smaller is fine


def test_an_image_whose_size_differs_from_the_geometry_is_never_served() -> None:
    portrait = one_page()
    (page,) = document_pages(portrait)
    stale = PageBox(index=1, box=(0, 0, 842, 595), media=(0, 0, 842, 595), rotate=0)
    err = code_of(render_page, portrait, 1, 72, boxes=[stale])
    assert (err.code, err.status, err.field) == ("PAGE_GEOMETRY_MISMATCH", 422, "page")
    assert render_page(portrait, 1, 72, boxes=[page]).width_px == 595


def test_renderer_past_its_time_is_killed_and_answers_a_coded_timeout(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # a page of 20,000 small filled paths takes poppler well over a millisecond
    content = b"".join(b"1 0 0 rg %d %d 3 3 re f\n" % (i % 500, i // 40) for i in range(20000))
    monkeypatch.setattr(page_images, "RENDER_TIMEOUT", 0.001)
    err = code_of(render_page, one_page(content=content), 1, 150)
    assert (err.code, err.status, err.field) == ("PAGE_RENDER_TIMEOUT", 422, "page")


def test_a_page_the_renderer_cannot_draw_is_a_coded_failure_not_a_crash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # the child may write no more than 1 KiB: its image is cut short and it fails (SIGXFSZ)
    monkeypatch.setattr(page_images, "MAX_RASTER_BYTES", 1024)
    err = code_of(render_page, make_pdf().data, 1, 150)
    assert (err.code, err.status, err.field) == ("PAGE_RENDER_FAILED", 422, "page")
