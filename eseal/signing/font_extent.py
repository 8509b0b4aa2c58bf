"""How far a font's glyphs can reach, from the font's own dictionary: advances and boxes.

A viewer advances the text position by each glyph's width from the font dictionary
(/Widths, /MissingWidth; /W and /DW for CID fonts) and paints glyph outlines that may
stick out of the em square (the /FontBBox says how far). The page outline
(:mod:`eseal.signing.page_ink`) must never place text nearer than a viewer does, so this
module answers, per shown byte, the *range* an advance can take and how far ink can lie
around a glyph's origin — generous where the dictionary leaves room (a non-embedded
standard font's built-in metrics are bounded by 1.2 em; a code outside /Widths of such a
font by that bound too), and :class:`FontUnbounded` where only the font program or a
substitute font would tell (no /Widths for an embedded or non-standard simple font, a
code outside /Widths of an embedded one, vertical writing, a width that is not a number).
Glyph outlines larger than the declared /FontBBox are not looked for: the box is what the
font declares, widened to at least -0.6..1.3 em vertically and 0..advance horizontally.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["FontExtent", "FontUnbounded", "font_extent"]

STANDARD_14 = frozenset({
    "Times-Roman", "Times-Bold", "Times-Italic", "Times-BoldItalic", "Helvetica",
    "Helvetica-Bold", "Helvetica-Oblique", "Helvetica-BoldOblique", "Courier", "Courier-Bold",
    "Courier-Oblique", "Courier-BoldOblique", "Symbol", "ZapfDingbats",
})
#: Every glyph of the 14 standard fonts advances less than this (glyph units: 1/1000 em).
BUILTIN_MAX = 1200.0
_FONT_FILES = ("/FontFile", "/FontFile2", "/FontFile3")


class FontUnbounded(Exception):
    """The font's dictionary does not bound how far its text reaches."""


def _get(mapping: Any, key: str, default: Any = None) -> Any:
    try:
        return mapping[key]
    except (KeyError, TypeError):
        return default


def _number(value: Any) -> float:
    if isinstance(value, bool | str | bytes) or not hasattr(value, "__float__"):
        raise FontUnbounded(f"a font metric is not a number: {value!r}")
    number = float(value)
    if number != number or abs(number) == float("inf"):
        raise FontUnbounded("a font metric is not finite")
    return number


def _items(array: Any) -> list[Any]:
    """An array's entries with references followed (iterating pyHanko's arrays does not)."""
    return [array[i] for i in range(len(array))]


@dataclass(frozen=True)
class FontExtent:
    """Glyph-unit (1/1000 em) metrics: per-code widths of a simple font, or the width range
    of a composite one; ``bbox`` is (x0, y0, x1, y1) around a glyph's origin."""

    simple: bool
    widths: dict[int, float]
    other: tuple[float, float]  # width range of codes not in ``widths``
    bbox: tuple[float, float, float, float]
    outside_unbounded: bool = False  # a code not in ``widths`` is decided by the program

    def advances(self, data: bytes) -> list[tuple[float, float, tuple[float, ...]]]:
        """(lowest width, highest width, word-spacing factors) per byte of ``data``: word
        spacing applies to the single-byte code 32 (ISO 32000-1 9.3.3), so in a composite
        font it may or may not apply, and a byte may be only part of a glyph (the caller
        then also allows no advance at all)."""
        if not self.simple:
            return [(*self.other, (0.0, 1.0))] * len(data)
        out = []
        for code in data:
            space = (1.0,) if code == 32 else (0.0,)
            if code in self.widths:
                out.append((self.widths[code], self.widths[code], space))
            elif self.outside_unbounded:
                raise FontUnbounded(f"code {code} is outside the embedded font's /Widths")
            else:
                out.append((*self.other, space))
        return out


def _descriptor_bbox(descriptor: Any, widest: float) -> tuple[float, float, float, float]:
    x0, y0, x1, y1 = 0.0, -600.0, max(widest, 1000.0), 1300.0
    box = _get(descriptor, "/FontBBox")
    if isinstance(box, list) and len(box) == 4:
        bx = [_number(v) for v in _items(box)]
        x0, x1 = min(x0, bx[0], bx[2]), max(x1, bx[0], bx[2])
        y0, y1 = min(y0, bx[1], bx[3]), max(y1, bx[1], bx[3])
    return x0, y0, x1, y1


def _simple(font: Any) -> FontExtent:
    descriptor = _get(font, "/FontDescriptor")
    base = str(_get(font, "/BaseFont", ""))[1:]
    embedded = descriptor is not None and any(k in descriptor for k in _FONT_FILES)
    builtin = base in STANDARD_14 and not embedded
    missing = _number(_get(descriptor, "/MissingWidth", 0)) if descriptor is not None else 0.0
    raw = _get(font, "/Widths")
    widths: dict[int, float] = {}
    if raw is None:
        if not builtin:
            raise FontUnbounded(f"font /{base} has no /Widths: its program decides")
    else:
        if not isinstance(raw, list):
            raise FontUnbounded("/Widths is not an array")
        first = int(_number(_get(font, "/FirstChar", 0)))
        last = int(_number(_get(font, "/LastChar", first + len(raw) - 1)))
        if last - first + 1 != len(raw):
            raise FontUnbounded("/Widths does not match /FirstChar and /LastChar")
        widths = {first + i: _number(w) for i, w in enumerate(_items(raw)) if 0 <= first + i < 256}
    # a code outside /Widths: /MissingWidth, or the built-in metrics of a standard font, or
    # (embedded program) whatever the program says, which only some viewers ignore
    other = (min(missing, 0.0), max(missing, BUILTIN_MAX if builtin else missing))
    return FontExtent(True, widths, other,
                      _descriptor_bbox(descriptor, max([*widths.values(), *other])),
                      outside_unbounded=embedded)


def _composite(font: Any) -> FontExtent:
    encoding = _get(font, "/Encoding")
    if isinstance(encoding, str):
        if encoding.endswith("-V"):
            raise FontUnbounded("vertical writing is not outlined")
    elif _get(encoding, "/WMode", 0) != 0:
        raise FontUnbounded("vertical writing is not outlined")
    kids = _get(font, "/DescendantFonts")
    if not isinstance(kids, list) or len(kids) != 1:
        raise FontUnbounded("a composite font needs exactly one descendant font")
    cid = kids[0]
    if not isinstance(cid, dict):
        raise FontUnbounded("the descendant font is not a dictionary")
    default = _number(_get(cid, "/DW", 1000))
    found = [default]
    raw = _get(cid, "/W", [])
    if not isinstance(raw, list):
        raise FontUnbounded("/W is not an array")
    i = 0
    while i < len(raw):
        if i + 1 < len(raw) and isinstance(raw[i + 1], list):
            _number(raw[i])
            found += [_number(w) for w in _items(raw[i + 1])]
            i += 2
        elif i + 2 < len(raw):
            _number(raw[i]), _number(raw[i + 1])
            found.append(_number(raw[i + 2]))
            i += 3
        else:
            raise FontUnbounded("/W ends in the middle of an entry")
    return FontExtent(False, {}, (min(found), max(found)),
                      _descriptor_bbox(_get(cid, "/FontDescriptor"), max(found)))


def font_extent(font: Any) -> FontExtent:
    """The metrics of the font dictionary ``font`` (Type 3 fonts are refused by the caller:
    their glyphs are procedures)."""
    if not isinstance(font, dict):
        raise FontUnbounded("the font is not a dictionary")
    try:
        if _get(font, "/Subtype") == "/Type0":
            return _composite(font)
        return _simple(font)
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise FontUnbounded(f"the font dictionary cannot be read: {exc}") from exc
