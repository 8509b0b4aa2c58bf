"""Where on the page a seal goes: where the holder asked, or a default that avoids other seals.

A seal placed off the page would be invisible, and one painted over an earlier seal would
hide it (the verifier refuses a later seal over an earlier one: ``LATER_SEAL_OVER_SEAL``), so
the signer checks an asked-for position against the page's visible box (CropBox, else
MediaBox, inherited through the page tree) and, by default, puts the seal in the
bottom-right corner and moves it left past widgets already on the page.
"""

from __future__ import annotations

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from eseal.errors import InvalidInput
from eseal.signing.page_ink import inherited

__all__ = ["DEFAULT_MARGIN_PT", "SEAL_GAP_PT", "place_seal"]

DEFAULT_MARGIN_PT = 56.0  # ~2 cm from the page's right and bottom edges
SEAL_GAP_PT = 12.0        # between a default-placed seal and one already on the page


def _page_box(writer: IncrementalPdfFileWriter, page_index: int) -> tuple[float, ...]:
    page_ref, _ = writer.find_page_for_modification(page_index)
    page = page_ref.get_object()
    box = inherited(page, "/CropBox") or inherited(page, "/MediaBox")
    if box is None or len(box) != 4:
        return (0.0, 0.0, 595.0, 842.0)  # A4, the most common page by far
    x0, y0, x1, y1 = (float(v) for v in box)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _widget_rects(writer: IncrementalPdfFileWriter, page_index: int) -> list[tuple[float, ...]]:
    page_ref, _ = writer.find_page_for_modification(page_index)
    rects: list[tuple[float, ...]] = []
    for annot in page_ref.get_object().get("/Annots", []) or []:
        annot = annot.get_object()
        if annot.get("/Subtype") == "/Widget" and "/Rect" in annot:
            x0, y0, x1, y1 = (float(v) for v in annot["/Rect"])
            rects.append((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
    return rects


def _overlaps(a: tuple[float, ...], b: tuple[float, ...]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def place_seal(writer: IncrementalPdfFileWriter, page_index: int, size: float,
               position: tuple[float, float] | None) -> tuple[int, int, int, int]:
    """The seal's rectangle: at ``position`` if given, or bottom-right, left of any seal
    already there."""
    x0, y0, x1, y1 = _page_box(writer, page_index)
    if position is not None:
        x, y = position
        if x < x0 - 0.5 or y < y0 - 0.5 or x + size > x1 + 0.5 or y + size > y1 + 0.5:
            raise InvalidInput(
                "POSITION_OFF_PAGE",
                f"a {size:g} pt seal at ({x:g}, {y:g}) does not fit on page {page_index + 1} "
                f"({x0:g} {y0:g} {x1:g} {y1:g})",
                f"印章放在 ({x:g}, {y:g}) 会超出第 {page_index + 1} 页", field="position")
        rect = (x, y, x + size, y + size)
    else:
        x = max(x0, x1 - DEFAULT_MARGIN_PT - size)
        y = min(y0 + DEFAULT_MARGIN_PT, max(y0, y1 - size))
        rect = (x, y, x + size, y + size)
        taken = _widget_rects(writer, page_index)
        candidate = rect
        while any(_overlaps(candidate, t) for t in taken):
            nx = candidate[0] - size - SEAL_GAP_PT
            if nx < x0:
                candidate = rect  # nowhere free on this row: overlap the first place
                break
            candidate = (nx, y, nx + size, y + size)
        rect = candidate
    return tuple(round(v) for v in rect)  # type: ignore[return-value]
