"""Where a page can put ink: a generous outline of everything its content stream paints.

The verifier needs one fact about a sealed page: could a rectangle drawn *later* (the widget
of a later seal) lie over something that was on the page when it was sealed? A renderer
would answer exactly but is a large attack surface for a verifier that reads hostile files,
so this module interprets the content stream itself, as far as geometry goes, and answers
with boxes that are never smaller than what a viewer paints:

* paths: the bounding box of their points (Bézier control points included) widened by the
  line width, for every painting operator (clipping paths alone paint nothing);
* images (XObject or inline): the unit square under the current matrix;
* form XObjects: interpreted recursively with their matrix and resources;
* text: each glyph advances by what the font's dictionary allows (/Widths, /MissingWidth,
  /W, /DW, or 1.2 em for a non-embedded standard font: :mod:`eseal.signing.font_extent`)
  plus character and word spacing, times horizontal scaling — as an *interval*, so negative
  widths, spacing or scaling move the text leftwards as far as a viewer can; the ink of a
  glyph spans the font's /FontBBox around its origin, at least 0.6 em below and 1.3 em
  above the baseline (raised by the rise);
* ``sh`` (a shading filling the clip) is taken to cover the whole page.

Optional content: content of a group counts as ink unless *every* viewer hides it
(:mod:`eseal.signing.optional_content`: listed in /OCGs, switched off in /D in the plain
way, no auto states, intents or membership dictionaries). We did not choose the simpler
"all optional content is ink": a filing may carry a layer that is switched off (the shadow
attack's hidden layer is drawn but not shown, and switching it on after sealing is refused
by the difference analysis), and a later seal over the free space it would occupy is honest.
Everything the viewers decide differently is ink — a false refusal, never a false "valid".

What it does not understand raises :class:`InkUnknown`, so callers fail closed ("cannot
decide"), never open: content-stream syntax viewers may read differently (an operator with
operands of the wrong number or type, an unknown operator, Q without q, BT inside BT, text
operators outside BT ... ET, q/Q/cm inside it, inline images whose end viewers find
differently: :mod:`eseal.signing.content_syntax`; a token split over two streams of the
page's /Contents, which some viewers join and others do not), text in a font whose
dictionary does not bound its extent (no /Widths for an embedded or non-standard font,
vertical writing, a font missing from the resources), Type 3 fonts (glyphs are
procedures of any size), PostScript XObjects, an unreadable stream, nesting deeper than
:data:`MAX_DEPTH`, more than :data:`MAX_OPERATORS` operators.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from typing import Any

from pyhanko.pdf_utils import generic

from eseal.signing.content_syntax import (
    MAX_OPERATORS,
    InkUnknown,
    PdfString,
    content_operations,
    operand_problem,
)
from eseal.signing.font_extent import FontExtent, FontUnbounded, font_extent
from eseal.signing.optional_content import hidden_groups
from eseal.signing.optional_content import ref_key as _ref_key

__all__ = [
    "MAX_DEPTH",
    "MAX_OPERATORS",
    "Box",
    "InkUnknown",
    "PdfString",
    "annotation_box",
    "annotation_visible",
    "content_operations",
    "inherited",
    "overlaps",
    "page_ink",
    "resolved",
]

def resolved(mapping: Any, key: str, default: Any = None) -> Any:
    """``mapping[key]`` with references followed (pyHanko's ``get`` does not follow them, so
    an indirect value would silently look absent or of the wrong type)."""
    try:
        return mapping[key]
    except KeyError:
        return default


_get = resolved


Box = tuple[float, float, float, float]
Matrix = tuple[float, float, float, float, float, float]

MAX_DEPTH = 8
_IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_EVERYWHERE: Box = (float("-inf"), float("-inf"), float("inf"), float("inf"))
_PAINT = {"S", "s", "f", "F", "f*", "B", "B*", "b", "b*"}

def overlaps(a: Box, b: Box) -> bool:
    """Whether two boxes share an area (touching edges do not count)."""
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


_HIDDEN, _NO_VIEW, _TOGGLE_NO_VIEW = 2, 32, 256


def annotation_box(annot: Any) -> Box | None:
    """An annotation's /Rect as a box with an area (default user space), or None."""
    try:
        x1, y1, x2, y2 = (float(v) for v in annot["/Rect"])
    except (KeyError, TypeError, ValueError):
        return None
    box = (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))
    return box if box[2] > box[0] and box[3] > box[1] else None


def annotation_visible(annot: Any) -> bool:
    """Whether a viewer shows the annotation: an area, and neither Hidden nor NoView
    (unless ToggleNoView shows it on hover). Its appearance is clipped to the box."""
    try:
        flags = int(_get(annot, "/F", 0))
    except (TypeError, ValueError):
        flags = 0
    if flags & _HIDDEN or (flags & _NO_VIEW and not flags & _TOGGLE_NO_VIEW):
        return False
    return annotation_box(annot) is not None


def _mul(m: Matrix, n: Matrix) -> Matrix:
    a, b, c, d, e, f = m
    a2, b2, c2, d2, e2, f2 = n
    return (a * a2 + b * c2, a * b2 + b * d2, c * a2 + d * c2, c * b2 + d * d2,
            e * a2 + f * c2 + e2, e * b2 + f * d2 + f2)


def _apply(m: Matrix, x: float, y: float) -> tuple[float, float]:
    return m[0] * x + m[2] * y + m[4], m[1] * x + m[3] * y + m[5]


def _box_of(points: list[tuple[float, float]], pad: float = 0.0) -> Box:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return min(xs) - pad, min(ys) - pad, max(xs) + pad, max(ys) + pad


def _scale(m: Matrix) -> float:
    return max(abs(m[0]) + abs(m[2]), abs(m[1]) + abs(m[3]), 1e-9)


@dataclass
class _State:
    ctm: Matrix = _IDENTITY
    line_width: float = 1.0
    font_size: float = 0.0
    char_space: float = 0.0
    word_space: float = 0.0
    h_scale: float = 1.0
    leading: float = 0.0
    rise: float = 0.0
    font: FontExtent | str = "text shown before any font was selected"

    def copy(self) -> _State:
        return _State(**self.__dict__)


_REGULAR = re.compile(rb"[^\x00\t\n\x0c\r ()<>\[\]{}/%]{2}")
#: Operators that move the text position: viewers disagree about them outside BT ... ET.
_TEXT_POSITION = {"Td", "TD", "Tm", "T*", "Tj", "TJ", "'", '"'}
#: Special graphics-state operators (ISO 32000-1 table 51): not allowed inside BT ... ET,
#: and whether Q restores the text matrix differs between viewers.
_NOT_IN_TEXT = {"q", "Q", "cm", "BT"}
_OUTSIDE_TEXT = _TEXT_POSITION | {"ET"}


@dataclass
class _Outliner:
    """Interprets one content stream (and the forms it draws) into ``boxes``."""

    hidden_groups: set[tuple[int, int]]
    boxes: list[Box] = field(default_factory=list)

    def run(self, data: bytes, resources: Any, state: _State, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InkUnknown("form XObjects nested too deeply")
        stack: list[_State] = []
        hidden: list[bool] = []  # one entry per open marked-content sequence
        path: list[tuple[float, float]] = []
        tm = tlm = _IDENTITY
        in_text = False
        x_lo = x_hi = 0.0  # the current point along the line: known only as an interval
        for op, args in content_operations(data):
            problem = operand_problem(op, args) if op != "BI" else None
            if problem:
                raise InkUnknown(problem)
            if op in (_NOT_IN_TEXT if in_text else _OUTSIDE_TEXT):
                raise InkUnknown(f"operator {op!r} {'inside' if in_text else 'outside'} "
                                 "a text object")
            nums = [a for a in args if isinstance(a, float)]
            invisible = any(hidden)
            if op == "q":
                stack.append(state.copy())
            elif op == "Q":
                if not stack:
                    raise InkUnknown("Q without a matching q")
                state = stack.pop()
            elif op == "cm":
                state.ctm = _mul(tuple(nums), state.ctm)  # type: ignore[arg-type]
            elif op == "w":
                state.line_width = abs(nums[0])
            elif op in ("m", "l", "c", "v", "y", "re"):
                if op == "re":
                    x, y, w, h = nums
                    nums = [x, y, x + w, y, x, y + h, x + w, y + h]
                path.extend(_apply(state.ctm, nums[i], nums[i + 1])
                            for i in range(0, len(nums), 2))
            elif op in _PAINT or op == "n":
                if op != "n" and path and not invisible:
                    pad = state.line_width * _scale(state.ctm) / 2 + 1
                    self.boxes.append(_box_of(path, pad))
                path = []
            elif op == "sh":
                if not invisible:
                    self.boxes.append(_EVERYWHERE)
            elif op == "BI":
                if not invisible:
                    self._unit_square(state.ctm)
            elif op == "Do":
                if not invisible:
                    self._xobject(args[0], resources, state, depth)
            elif op in ("BMC", "BDC"):
                hidden.append(op == "BDC" and args[0] == "OC"
                              and self._oc_hidden(args[1], resources))
            elif op == "EMC":
                if hidden:
                    hidden.pop()
            elif op == "BT":
                in_text = True
                tm = tlm = _IDENTITY
                x_lo = x_hi = 0.0
            elif op == "ET":
                in_text = False
            elif op == "Tf":
                state.font_size = nums[0]
                state.font = self._font(args[0], resources)
            elif op == "Tc":
                state.char_space = nums[0]
            elif op == "Tw":
                state.word_space = nums[0]
            elif op == "Tz":
                state.h_scale = nums[0] / 100
            elif op == "TL":
                state.leading = nums[0]
            elif op == "Ts":
                state.rise = nums[0]
            elif op in ("Td", "TD"):
                if op == "TD":
                    state.leading = -nums[1]
                tlm = tm = _mul((1, 0, 0, 1, nums[0], nums[1]), tlm)
                x_lo = x_hi = 0.0
            elif op == "Tm":
                tlm = tm = tuple(nums)  # type: ignore[assignment]
                x_lo = x_hi = 0.0
            elif op in ("T*", "'", '"'):
                tlm = tm = _mul((1, 0, 0, 1, 0, -state.leading), tlm)
                x_lo = x_hi = 0.0
                if op == '"':
                    state.word_space, state.char_space = nums[0], nums[1]
            if op in ("Tj", "'", '"', "TJ"):
                items = args[0] if op == "TJ" else args[-1:]
                for item in items:
                    if isinstance(item, float):  # TJ adjustment, thousandths of an em
                        shift = -item / 1000 * state.font_size * state.h_scale
                        x_lo, x_hi = x_lo + shift, x_hi + shift
                    elif isinstance(item, PdfString):
                        x_lo, x_hi = self._show(item, state, _mul(tm, state.ctm),
                                                x_lo, x_hi, invisible)
                    else:
                        raise InkUnknown(f"a {type(item).__name__} inside a TJ array")

    def _show(self, item: PdfString, state: _State, full: Matrix, x_lo: float, x_hi: float,
              invisible: bool) -> tuple[float, float]:
        """Outline one string shown from the current point (known to lie in x_lo..x_hi on
        the line) and return the interval the point lies in after it. Every glyph's advance
        is bounded by the font's widths and the spacing in force (interval arithmetic, so
        negative spacing, widths or scaling move the bounds the right way); its ink lies in
        the font's box around its origin."""
        font = state.font
        if isinstance(font, str):
            raise InkUnknown(font)
        try:
            advances = font.advances(item.data)
        except FontUnbounded as exc:
            raise InkUnknown(str(exc)) from exc
        size, scale = state.font_size / 1000, state.h_scale
        gx = sorted((font.bbox[0] * size * scale, font.bbox[2] * size * scale))
        gy = sorted((font.bbox[1] * size, font.bbox[3] * size))
        ink_lo, ink_hi = x_lo + min(gx[0], 0.0), x_hi + max(gx[1], 0.0)
        for w_lo, w_hi, word in advances:
            steps = [(w * size + state.char_space + state.word_space * f) * scale
                     for w in (w_lo, w_hi) for f in word]
            if not font.simple:
                steps.append(0.0)  # this byte may only continue a glyph
            ink_lo, ink_hi = min(ink_lo, x_lo + gx[0]), max(ink_hi, x_hi + gx[1])
            x_lo, x_hi = x_lo + min(steps), x_hi + max(steps)
        if not invisible:
            corners = [(x, state.rise + y) for x in (ink_lo, ink_hi) for y in gy]
            self.boxes.append(_box_of([_apply(full, *p) for p in corners], 1))
        return x_lo, x_hi

    def _unit_square(self, ctm: Matrix) -> None:
        self.boxes.append(_box_of([_apply(ctm, x, y) for x in (0, 1) for y in (0, 1)], 1))

    @staticmethod
    def _lookup(resources: Any, category: str, name: str) -> Any:
        try:
            return resources[category][f"/{name}"]
        except (KeyError, TypeError) as exc:
            raise InkUnknown(f"resource /{name} of /{category} is missing") from exc

    def _font(self, name: str, resources: Any) -> FontExtent | str:
        """The metrics of font ``name``, or why text in it cannot be outlined (raised only
        when text is shown: selecting a font paints nothing)."""
        try:
            font = self._lookup(resources, "/Font", name)
        except InkUnknown as exc:
            return str(exc)  # viewers substitute a font of their choosing, or show nothing
        if isinstance(font, dict) and _get(font, "/Subtype") == "/Type3":
            return "Type 3 font glyphs cannot be outlined"
        try:
            return font_extent(font)
        except FontUnbounded as exc:
            return f"font /{name}: {exc}"

    def _oc_hidden(self, prop: Any, resources: Any) -> bool:
        """Whether the optional content named ``prop`` is hidden in every viewer."""
        if not isinstance(prop, str):
            return False  # an inline membership dictionary: assume visible
        try:
            group = resources["/Properties"].raw_get(f"/{prop}")
        except (KeyError, TypeError, AttributeError):
            return False
        return _ref_key(group) in self.hidden_groups

    def _xobject(self, name: str, resources: Any, state: _State, depth: int) -> None:
        raw = self._lookup(resources, "/XObject", name)
        xobj = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
        if not isinstance(xobj, generic.StreamObject):
            raise InkUnknown(f"XObject /{name} is not a stream")
        if "/OC" in xobj and _ref_key(xobj.raw_get("/OC")) in self.hidden_groups:
            return
        subtype = _get(xobj, "/Subtype")
        if subtype == "/Image":
            self._unit_square(state.ctm)
            return
        if subtype != "/Form":
            raise InkUnknown(f"XObject /{name} of type {subtype} cannot be outlined")
        try:
            matrix = tuple(float(v) for v in _get(xobj, "/Matrix", _IDENTITY))
        except (TypeError, ValueError) as exc:
            raise InkUnknown(f"form XObject /{name} has an unreadable /Matrix") from exc
        if len(matrix) != 6:
            raise InkUnknown(f"form XObject /{name} has a /Matrix of {len(matrix)} numbers")
        inner = state.copy()
        inner.ctm = _mul(matrix, state.ctm)  # type: ignore[arg-type]
        try:
            data = xobj.data
        except Exception as exc:  # an unsupported or broken filter
            raise InkUnknown(f"form XObject /{name} cannot be decoded: {exc}") from exc
        self.run(data, _get(xobj, "/Resources", resources), inner, depth + 1)


def inherited(page: Any, key: str) -> Any:
    """``page[key]`` or the nearest ancestor's (ISO 32000 inheritable attributes)."""
    node = page
    for _ in range(64):
        if key in node:
            return node[key]
        if "/Parent" not in node:
            return None
        node = node["/Parent"]
    return None


def page_ink(root: Any, page: Any) -> list[Box]:
    """Boxes (default user space) that cover everything ``page``'s content paints when the
    document's default optional-content configuration applies; raises :class:`InkUnknown`
    where that cannot be established."""
    contents = _get(page, "/Contents")
    if contents is None:
        return []
    streams = contents if isinstance(contents, list) else [contents]
    try:
        parts = [s.get_object().data for s in streams]
    except Exception as exc:
        raise InkUnknown(f"the page content cannot be decoded: {exc}") from exc
    for before, after in itertools.pairwise(parts):
        if before[-1:] and after[:1] and _REGULAR.match(before[-1:] + after[:1]):
            # a token split over two streams: some viewers join it, others do not
            raise InkUnknown("a token runs from one content stream into the next")
    data = b"\n".join(parts)
    outliner = _Outliner(hidden_groups(root))
    outliner.run(data, inherited(page, "/Resources") or generic.DictionaryObject(),
                 _State(), 0)
    return outliner.boxes
