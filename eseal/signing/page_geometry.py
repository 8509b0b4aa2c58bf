"""Where a page's pixels are in PDF user space: each page's visible box and rotation.

The portal shows a page as an image and lets the legal representative drop the seal on it;
the seal is placed in PDF user space (points, origin bottom-left, before /Rotate), so the
server must say, for each page, which rectangle of user space the image shows and how it is
turned. This module reads that from the page tree the way poppler (the renderer,
:mod:`eseal.signing.page_images`) does:

* the visible box is the /CropBox clipped to the /MediaBox (both inheritable; a missing
  /MediaBox is US Letter, poppler's default); a box that is not four numbers, or a crop box
  that shows less than a point of the media box, is refused;
* /Rotate (inheritable) is taken modulo 360; a value that is not an integer multiple of 90
  is refused, since viewers disagree on it and a wrong guess would put a seal in the wrong
  place;
* the page tree is walked from the catalog with the attributes passed down (never by
  climbing /Parent, which a hostile file may point anywhere), refusing cycles, more than
  :data:`MAX_PAGES` pages (checked against /Count before walking) and deeper than
  :data:`MAX_DEPTH` levels.

:class:`PageBox` converts between image pixels (origin top-left, ``dpi`` pixels per inch)
and user space, both ways, for each of the four rotations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from eseal.errors import InvalidInput

__all__ = ["LETTER", "MAX_DEPTH", "MAX_PAGES", "PageBox", "page_boxes", "page_objects"]

#: more pages than any filing has; a file claiming more is refused, never rendered
MAX_PAGES = 2000
#: page-tree nesting; real files use a handful of levels
MAX_DEPTH = 32
#: poppler's page size when a page tree names none (US Letter)
LETTER = (0.0, 0.0, 612.0, 792.0)
#: the largest page ISO 32000 allows (14,400 units in default user space)
MAX_SIDE_PT = 14400.0

Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class PageBox:
    """One page: ``index`` (1-based), the visible ``box`` in user space (x0, y0, x1, y1,
    normalised), the ``media`` box, and ``rotate`` (0, 90, 180 or 270, clockwise)."""

    index: int
    box: Box
    media: Box
    rotate: int

    @property
    def width_pt(self) -> float:
        """Width as shown (after rotation)."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return h if self.rotate in (90, 270) else w

    @property
    def height_pt(self) -> float:
        """Height as shown (after rotation)."""
        w, h = self.box[2] - self.box[0], self.box[3] - self.box[1]
        return w if self.rotate in (90, 270) else h

    def pixel_size(self, dpi: int) -> tuple[int, int]:
        """The image size pdftoppm gives at ``dpi`` (it rounds up)."""
        scale = dpi / 72.0
        return (math.ceil(self.width_pt * scale - 1e-6), math.ceil(self.height_pt * scale - 1e-6))

    def to_user(self, px: float, py: float, dpi: int) -> tuple[float, float]:
        """User-space point under pixel (``px``, ``py``) of an image rendered at ``dpi``."""
        s = 72.0 / dpi
        x0, y0, x1, y1 = self.box
        if self.rotate == 90:
            return (x0 + py * s, y0 + px * s)
        if self.rotate == 180:
            return (x1 - px * s, y0 + py * s)
        if self.rotate == 270:
            return (x1 - py * s, y1 - px * s)
        return (x0 + px * s, y1 - py * s)

    def to_pixels(self, x: float, y: float, dpi: int) -> tuple[float, float]:
        """Pixel position (origin top-left) of user-space point (``x``, ``y``) at ``dpi``."""
        k = dpi / 72.0
        x0, y0, x1, y1 = self.box
        if self.rotate == 90:
            return ((y - y0) * k, (x - x0) * k)
        if self.rotate == 180:
            return ((x1 - x) * k, (y - y0) * k)
        if self.rotate == 270:
            return ((y1 - y) * k, (x1 - x) * k)
        return ((x - x0) * k, (y1 - y) * k)

    def rect_to_pixels(self, rect: Box, dpi: int) -> tuple[float, float, float, float]:
        """A user-space rectangle as [left, top, width, height] in pixels at ``dpi``."""
        xs, ys = zip(self.to_pixels(rect[0], rect[1], dpi), self.to_pixels(rect[2], rect[3], dpi),
                     strict=True)
        return (min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys))

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "width_pt": _num(self.width_pt),
                "height_pt": _num(self.height_pt), "rotate": self.rotate,
                "box": [_num(v) for v in self.box], "media_box": [_num(v) for v in self.media]}


def _num(value: float) -> float | int:
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def _refuse(code: str, en: str, zh: str, field: str) -> InvalidInput:
    return InvalidInput(code, en, zh, field=field)


def _box(value: Any, what: str, field: str) -> Box:
    try:
        numbers = [float(v) for v in value]
    except Exception as exc:
        raise _refuse("PDF_MALFORMED", f"a page's {what} is not four numbers",
                      f"页面的 {what} 不是四个数", field) from exc
    if len(numbers) != 4 or not all(math.isfinite(v) for v in numbers):
        raise _refuse("PDF_MALFORMED", f"a page's {what} is not four numbers",
                      f"页面的 {what} 不是四个数", field)
    x0, y0, x1, y1 = numbers
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _rotate(value: Any, field: str) -> int:
    # poppler ignores a /Rotate that is not an integer object (90.0 shows unturned) while
    # other viewers turn the page: refused, as the seal's place would depend on the viewer
    if isinstance(value, bool) or not isinstance(value, int):
        raise _refuse("PDF_MALFORMED", "a page's /Rotate is not an integer",
                      "页面的 /Rotate 不是整数", field)
    number = int(value)
    if number % 90:
        raise _refuse("PDF_MALFORMED", f"a page's /Rotate ({number}) is not a multiple of 90",
                      f"页面的 /Rotate（{number}）不是 90 的倍数", field)
    return number % 360


def _ref_key(raw: Any) -> tuple[int, int] | None:
    ref = getattr(raw, "reference", None)
    if ref is None:
        return None
    return (ref.idnum, ref.generation)


def _too_many(count: int | str, field: str) -> InvalidInput:
    return _refuse("PDF_TOO_MANY_PAGES",
                   f"the PDF has {count} pages; at most {MAX_PAGES} are shown",
                   f"PDF 共 {count} 页，最多只能显示 {MAX_PAGES} 页", field)


def page_objects(root: Any, *, field: str = "data") -> list[tuple[Any, dict[str, Any]]]:
    """Every page dictionary in order, with its inherited /MediaBox, /CropBox and /Rotate,
    and the reference of each of its annotations (``"annots"``)."""
    try:
        tree = root["/Pages"]
        claimed = tree.get("/Count", 0)
        claimed = int(claimed)
    except Exception as exc:
        raise _refuse("PDF_MALFORMED", "the PDF has no readable page tree",
                      "PDF 页面结构无法读取", field) from exc
    if claimed > MAX_PAGES:
        raise _too_many(claimed, field)
    out: list[tuple[Any, dict[str, Any]]] = []
    seen: set[tuple[int, int]] = set()
    root_ref = _ref_key(root.raw_get("/Pages"))
    stack: list[tuple[Any, tuple[int, int] | None, dict[str, Any], int]] = [
        (tree, root_ref, {}, 0)]
    try:
        while stack:
            node, ref, attrs, depth = stack.pop()
            if ref is not None:
                if ref in seen:
                    raise _refuse("PDF_MALFORMED", "a page-tree node appears twice (a cycle?)",
                                  "PDF 页面树中某节点重复出现（循环引用）", field)
                seen.add(ref)
            if depth > MAX_DEPTH:
                raise _refuse("PDF_MALFORMED", f"the page tree is deeper than {MAX_DEPTH}",
                              f"PDF 页面树超过 {MAX_DEPTH} 层", field)
            attrs = dict(attrs)
            for key in ("/MediaBox", "/CropBox", "/Rotate"):
                if key in node:
                    attrs[key] = node[key]
            if "/Kids" in node and node.get("/Type") != "/Page":
                kids = node.raw_get("/Kids")
                kids = kids.get_object() if hasattr(kids, "get_object") else kids
                if len(seen) + len(stack) + len(kids) > 2 * MAX_PAGES + MAX_DEPTH:
                    raise _too_many(f"more than {MAX_PAGES}", field)
                for i in reversed(range(len(kids))):
                    raw = kids.raw_get(i)
                    stack.append((raw.get_object(), _ref_key(raw), attrs, depth + 1))
                continue
            annots = node.get("/Annots")
            refs = []
            if annots is not None and hasattr(annots, "raw_get"):
                refs = [_ref_key(annots.raw_get(i)) for i in range(len(annots))]
            out.append((node, {**attrs, "annots": refs}))
            if len(out) > MAX_PAGES:
                raise _too_many(f"more than {MAX_PAGES}", field)
    except InvalidInput:
        raise
    except Exception as exc:  # pyHanko raises many types on hostile input
        raise _refuse("PDF_MALFORMED", "the PDF's page tree cannot be read",
                      "PDF 页面结构无法读取", field) from exc
    if not out:
        raise _refuse("PDF_NO_PAGES", "the PDF has no pages", "PDF 没有页面", field)
    return out


def page_boxes(root: Any, *, field: str = "data",
               objects: list[tuple[Any, dict[str, Any]]] | None = None) -> list[PageBox]:
    """The :class:`PageBox` of every page of the document whose catalog is ``root``
    (``objects``: what :func:`page_objects` already read of it)."""
    boxes = []
    if objects is None:
        objects = page_objects(root, field=field)
    for index, (_page, attrs) in enumerate(objects, start=1):
        media = _box(attrs["/MediaBox"], "/MediaBox", field) if "/MediaBox" in attrs else LETTER
        visible = media
        if "/CropBox" in attrs:
            crop = _box(attrs["/CropBox"], "/CropBox", field)
            visible = (max(crop[0], media[0]), max(crop[1], media[1]),
                       min(crop[2], media[2]), min(crop[3], media[3]))
            if visible[2] - visible[0] < 1 or visible[3] - visible[1] < 1:
                raise _refuse("PDF_MALFORMED",
                              f"page {index}'s /CropBox shows (almost) none of its /MediaBox",
                              f"第 {index} 页的 /CropBox 几乎不在 /MediaBox 之内", field)
        w, h = visible[2] - visible[0], visible[3] - visible[1]
        if w <= 0 or h <= 0 or w > MAX_SIDE_PT or h > MAX_SIDE_PT:
            raise _refuse("PDF_MALFORMED",
                          f"page {index} is {w:g} x {h:g} pt (1 to {MAX_SIDE_PT:g} allowed)",
                          f"第 {index} 页尺寸为 {w:g} x {h:g} 磅，超出允许范围", field)
        rotate = _rotate(attrs.get("/Rotate", 0), field)
        boxes.append(PageBox(index=index, box=visible, media=media, rotate=rotate))
    return boxes
