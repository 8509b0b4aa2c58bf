"""Where each seal shows on the page: the page and rectangle of its signature widget.

The public verify page draws an outline around each seal on the page image, so the report
says, for each signature, on which page its widget annotation sits and where (in PDF user
space and relative to the page's visible box — see :mod:`eseal.signing.page_geometry` for
mapping either to pixels). The page is found by looking the widget up in each page's
/Annots (the widget's own /P is optional and may lie); a widget on no page, with a zero-area
/Rect, or flagged Hidden or NoView is *invisible* and has no outline (``None``).

This is display information only: it never changes a verdict, and a file whose page tree or
widgets cannot be read simply has no outlines.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from eseal.signing.page_geometry import PageBox, page_boxes, page_objects
from eseal.signing.report import Widget

__all__ = ["SealOutliner"]

logger = logging.getLogger(__name__)

_HIDDEN, _NOVIEW = 1 << 1, 1 << 5


def _ref(obj: Any) -> tuple[int, int] | None:
    ref = getattr(obj, "container_ref", None)
    if ref is None or not hasattr(ref, "idnum"):
        ref = getattr(obj, "reference", None)
    if ref is None or not hasattr(ref, "idnum"):
        return None
    return (ref.idnum, ref.generation)


class SealOutliner:
    """The widgets of one document; build once, then ask :meth:`widget` per signature."""

    def __init__(self, root: Any) -> None:
        self.pages: list[PageBox] = []
        self._page_of: dict[tuple[int, int], int] = {}
        try:
            objects = page_objects(root)
            self.pages = page_boxes(root, objects=objects)
        except Exception as exc:  # no outlines for a file whose pages cannot be read
            logger.debug("no seal outlines: %s", exc)
            return
        for index, (_page, attrs) in enumerate(objects, start=1):
            for ref in attrs["annots"]:
                if ref is not None:
                    self._page_of.setdefault(ref, index)

    def _widgets(self, sig_field: Any) -> list[tuple[Any, tuple[int, int] | None]]:
        if "/Kids" in sig_field:
            kids = sig_field["/Kids"]
            return [(kids[i], _ref(kids.raw_get(i))) for i in range(min(len(kids), 16))]
        return [(sig_field, _ref(sig_field))]

    def widget(self, sig_field: Any) -> Widget | None:
        """The first visible widget of ``sig_field`` (a signature field dictionary)."""
        try:
            for annot, ref in self._widgets(sig_field):
                found = self._visible(annot, ref)
                if found is not None:
                    return found
        except Exception as exc:  # display only: an unreadable widget has no outline
            logger.debug("unreadable signature widget: %s", exc)
        return None

    def _visible(self, annot: Any, ref: tuple[int, int] | None) -> Widget | None:
        if ref is None or ref not in self._page_of or "/Rect" not in annot:
            return None
        if int(annot.get("/F", 0)) & (_HIDDEN | _NOVIEW):
            return None
        values = [float(v) for v in annot["/Rect"]]
        if len(values) != 4 or not all(math.isfinite(v) for v in values):
            return None
        x0, y0, x1, y1 = values
        rect = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if rect[2] - rect[0] <= 0 or rect[3] - rect[1] <= 0:
            return None
        page = self.pages[self._page_of[ref] - 1]
        bx, by = page.box[0], page.box[1]
        return Widget(page=page.index, rect=rect,
                      rect_in_box=(rect[0] - bx, rect[1] - by, rect[2] - bx, rect[3] - by),
                      page_rotate=page.rotate)
