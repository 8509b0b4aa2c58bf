"""Test kit for the paging seal (骑缝章): pages rendered by poppler, red-ink masks, the strip
each page should carry, and the later-revision attacks on slices.

Pixels come from ``pdftoppm`` (a renderer we did not write), so "the seal is split across the
pages" is judged on what a reader sees, not on the objects we wrote.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
from pathlib import Path

from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from eseal.signing.paging_seal import MARKER, add_paging_seal

DPI = 50


def render_pages(pdf: bytes, dpi: int = DPI) -> list[Image.Image]:
    """Every page of ``pdf`` as RGB, by ``pdftoppm -r DPI -png``."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", str(dpi), "-png", str(source), f"{tmp}/page"],
                       check=True, capture_output=True, timeout=120)
        files = sorted(Path(tmp).glob("page-*.png"), key=lambda p: int(p.stem.split("-")[1]))
        return [Image.open(f).convert("RGB") for f in files]


def is_red(pixel: tuple[int, ...]) -> bool:
    r, g, b = pixel[:3]
    return r > 150 and g < 110 and b < 110


def red_columns(image: Image.Image, x0: int, x1: int, y0: int, y1: int) -> list[int]:
    """Red pixels per column in [x0, x1) × [y0, y1)."""
    px = image.load()
    return [sum(is_red(px[x, y]) for y in range(max(y0, 0), min(y1, image.height)))
            for x in range(max(x0, 0), min(x1, image.width))]


def differing_pixels(a: Image.Image, b: Image.Image, *, outside: list[tuple[int, ...]]
                     ) -> int:
    """Pixels where ``a`` and ``b`` differ, not counting the boxes ``outside`` (x0,y0,x1,y1)."""
    pa, pb = a.load(), b.load()
    count = 0
    for y in range(a.height):
        for x in range(a.width):
            if any(x0 <= x < x1 and y0 <= y < y1 for x0, y0, x1, y1 in outside):
                continue
            if pa[x, y] != pb[x, y]:
                count += 1
    return count


def seal_strips(seal_png: bytes, size_px: int, count: int) -> list[int]:
    """Red pixels of each of ``count`` vertical strips of the seal drawn ``size_px`` wide."""
    seal = Image.open(io.BytesIO(seal_png)).convert("RGBA").resize((size_px, size_px))
    background = Image.new("RGBA", seal.size, (255, 255, 255, 255))
    flat = Image.alpha_composite(background, seal).convert("RGB")
    cols = red_columns(flat, 0, size_px, 0, size_px)
    bounds = [round(i * size_px / count) for i in range(count + 1)]
    return [sum(cols[bounds[i]:bounds[i + 1]]) for i in range(count)]


# -- later revisions that touch a paging seal -----------------------------------------------
def _writer(sealed: bytes) -> tuple[io.BytesIO, IncrementalPdfFileWriter]:
    buffer = io.BytesIO(sealed)
    return buffer, IncrementalPdfFileWriter(buffer)


def _slice_of(writer: IncrementalPdfFileWriter, page: int) -> tuple[generic.IndirectObject,
                                                                      generic.IndirectObject]:
    page_ref, _ = writer.find_page_for_modification(page)
    for ref in page_ref.get_object()["/Annots"]:
        annot = ref.get_object()
        if str(annot.get("/NM", "")).startswith(MARKER):
            return page_ref, ref
    raise AssertionError(f"page {page + 1} has no slice")


def add_slices_later(sealed: bytes, seal_png: bytes, size: float = 120) -> bytes:
    """A later revision that draws a paging seal (what a forger adds after the seal)."""
    buffer, writer = _writer(sealed)
    add_paging_seal(writer, PdfImage(Image.open(io.BytesIO(seal_png)).convert("RGBA")), size)
    writer.write_in_place()
    return buffer.getvalue()


def remove_slice_later(sealed: bytes, page: int) -> bytes:
    """A later revision that takes page ``page``'s (0-based) slice off the page."""
    buffer, writer = _writer(sealed)
    page_ref, ref = _slice_of(writer, page)
    page_obj = page_ref.get_object()
    annots = generic.ArrayObject(a for a in page_obj["/Annots"]
                                 if (a.idnum, a.generation) != (ref.idnum, ref.generation))
    page_obj[generic.pdf_name("/Annots")] = annots
    writer.update_container(page_obj)
    writer.write_in_place()
    return buffer.getvalue()


def redraw_slice_later(sealed: bytes, page: int, content: bytes) -> bytes:
    """A later revision that rewrites the appearance stream of page ``page``'s slice."""
    buffer, writer = _writer(sealed)
    _, ref = _slice_of(writer, page)
    form_ref = ref.get_object()["/AP"].raw_get("/N")
    form = form_ref.get_object()
    form.strip_filters()
    form._data = form._encoded_data = content  # no public setter
    writer.mark_update(form_ref)
    writer.write_in_place()
    return buffer.getvalue()
