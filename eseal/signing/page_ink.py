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
* text: from the current point, one em (times horizontal scaling, plus character and word
  spacing) *per byte* of the string, from 0.6 em below to 1.3 em above the baseline — no
  glyph metrics are trusted, so the box only grows;
* marked content of an optional-content group that the default configuration turns OFF is
  skipped (the "hidden layer" of shadow documents is drawn, but not shown, until someone
  turns it on — and turning it on after sealing is refused by the difference analysis);
* ``sh`` (a shading filling the clip) is taken to cover the whole page.

What it does not understand — an unreadable or unsupported stream, Type 3 fonts (glyphs are
procedures of any size), PostScript XObjects, nesting deeper than :data:`MAX_DEPTH`,
more than :data:`MAX_OPERATORS` operators — raises :class:`InkUnknown`, so callers fail
closed ("cannot decide"), never open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pyhanko.pdf_utils import generic

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
MAX_OPERATORS = 500_000
_IDENTITY: Matrix = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
_EVERYWHERE: Box = (float("-inf"), float("-inf"), float("inf"), float("inf"))
_PAINT = {"S", "s", "f", "F", "f*", "B", "B*", "b", "b*"}

_TOKEN = re.compile(rb"""
    (?P<ws>[\x00\t\n\x0c\r ]+|%[^\r\n]*)
  | (?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?![^\x00\t\n\x0c\r ()<>\[\]{}/%])
  | (?P<name>/[^\x00\t\n\x0c\r ()<>\[\]{}/%]*)
  | (?P<dopen><<) | (?P<dclose>>>)
  | (?P<hex><[0-9A-Fa-f\x00\t\n\x0c\r ]*>)
  | (?P<lit>\()
  | (?P<aopen>\[) | (?P<aclose>\])
  | (?P<op>[^\x00\t\n\x0c\r ()<>\[\]{}/%]+)
""", re.X)
_INLINE_END = re.compile(rb"[\x00\t\n\x0c\r ]EI(?=[\x00\t\n\x0c\r ]|$)")


class InkUnknown(Exception):
    """The content cannot be outlined reliably; the caller must not assume free space."""


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


def _literal_end(data: bytes, start: int) -> int:
    """Index just after the literal string opened at ``start`` (balanced parentheses)."""
    depth, i = 0, start
    while i < len(data):
        ch = data[i]
        if ch == 0x5C:  # backslash escapes the next byte
            i += 2
            continue
        if ch == 0x28:
            depth += 1
        elif ch == 0x29:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise InkUnknown("unterminated string in a content stream")


_ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
_ESCAPE = re.compile(rb"\\([0-7]{1,3}|\r\n|.)", re.S)


def _literal_bytes(raw: bytes) -> bytes:
    """The bytes a literal string ``(...)`` stands for (ISO 32000-1 7.3.4.2)."""
    def one(m: re.Match[bytes]) -> bytes:
        esc = m.group(1)
        if esc[:1].isdigit():
            return bytes([int(esc, 8) & 0xFF])
        if esc in (b"\r\n", b"\n", b"\r"):
            return b""  # a line continuation
        return _ESCAPES.get(esc, esc)
    return _ESCAPE.sub(one, raw[1:-1])


@dataclass(frozen=True)
class PdfString:
    """A string operand of a content stream: the bytes it shows."""

    data: bytes

    @property
    def length(self) -> int:
        return max(1, len(self.data))


def content_operations(data: bytes) -> Iterator[tuple[str, list[Any]]]:
    """(operator, operands) pairs of a content stream; numbers become ``float``, names
    ``str`` (without the slash), strings :class:`PdfString`, dictionaries ``{}``; inline
    images are skipped (yielded as ``BI`` without operands)."""
    operands: list[Any] = []
    stack: list[list[Any]] = []
    pos, count = 0, 0
    while pos < len(data):
        m = _TOKEN.match(data, pos)
        if m is None:
            raise InkUnknown(f"unreadable content stream at byte {pos}")
        kind, text, pos = m.lastgroup, m.group(0), m.end()
        target = stack[-1] if stack else operands
        if kind == "ws":
            continue
        if kind == "num":
            target.append(float(text))
        elif kind == "name":
            target.append(text[1:].decode("latin-1"))
        elif kind == "hex":
            digits = re.sub(rb"[^0-9A-Fa-f]", b"", text)
            target.append(PdfString(bytes.fromhex((digits + b"0" * (len(digits) % 2)).decode())))
        elif kind == "lit":
            end = _literal_end(data, m.start())
            target.append(PdfString(_literal_bytes(data[m.start():end])))
            pos = end
        elif kind in ("aopen", "dopen"):
            stack.append([])
        elif kind in ("aclose", "dclose"):
            if not stack:
                raise InkUnknown("unbalanced array or dictionary in a content stream")
            done = stack.pop()
            (stack[-1] if stack else operands).append(done if kind == "aclose" else {})
        else:
            op = text.decode("latin-1")
            if stack:  # true/false/null inside an array or dictionary
                target.append(op)
                continue
            count += 1
            if count > MAX_OPERATORS:
                raise InkUnknown("too many operators to outline")
            if op == "BI":  # inline image: skip its dictionary and data
                idx = data.find(b"ID", pos)
                end = _INLINE_END.search(data, idx + 3) if idx >= 0 else None
                if end is None:
                    raise InkUnknown("unterminated inline image")
                pos = end.end()
                yield "BI", []
            else:
                yield op, operands
            operands = []


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
    type3: bool = False

    def copy(self) -> _State:
        return _State(**self.__dict__)


@dataclass
class _Outliner:
    """Interprets one content stream (and the forms it draws) into ``boxes``."""

    off_groups: set[tuple[int, int]]
    boxes: list[Box] = field(default_factory=list)

    def run(self, data: bytes, resources: Any, state: _State, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise InkUnknown("form XObjects nested too deeply")
        stack: list[_State] = []
        hidden: list[bool] = []  # one entry per open marked-content sequence
        path: list[tuple[float, float]] = []
        tm = tlm = _IDENTITY
        x_lo = x_hi = 0.0  # the current point along the line: known only as an interval
        for op, args in content_operations(data):
            nums = [a for a in args if isinstance(a, float)]
            invisible = any(hidden)
            if op == "q":
                stack.append(state.copy())
            elif op == "Q":
                if stack:
                    state = stack.pop()
            elif op == "cm" and len(nums) == 6:
                state.ctm = _mul(tuple(nums), state.ctm)  # type: ignore[arg-type]
            elif op == "w" and nums:
                state.line_width = abs(nums[0])
            elif op in ("m", "l") and len(nums) >= 2:
                path.append(_apply(state.ctm, nums[-2], nums[-1]))
            elif op in ("c", "v", "y") and len(nums) >= 4:
                path.extend(_apply(state.ctm, nums[i], nums[i + 1])
                            for i in range(0, len(nums) - 1, 2))
            elif op == "re" and len(nums) == 4:
                x, y, w, h = nums
                path.extend(_apply(state.ctm, px, py)
                            for px, py in ((x, y), (x + w, y), (x, y + h), (x + w, y + h)))
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
            elif op == "Do" and args and isinstance(args[-1], str):
                if not invisible:
                    self._xobject(args[-1], resources, state, depth)
            elif op in ("BMC", "BDC"):
                hidden.append(op == "BDC" and len(args) >= 2 and args[0] == "OC"
                              and self._oc_off(args[1], resources))
            elif op == "EMC":
                if hidden:
                    hidden.pop()
            elif op == "BT":
                tm = tlm = _IDENTITY
                x_lo = x_hi = 0.0
            elif op == "Tf" and nums and args and isinstance(args[0], str):
                state.font_size = nums[-1]
                state.type3 = self._is_type3(args[0], resources)
            elif op == "Tc" and nums:
                state.char_space = nums[0]
            elif op == "Tw" and nums:
                state.word_space = nums[0]
            elif op == "Tz" and nums:
                state.h_scale = nums[0] / 100
            elif op == "TL" and nums:
                state.leading = nums[0]
            elif op == "Ts" and nums:
                state.rise = nums[0]
            elif op in ("Td", "TD") and len(nums) == 2:
                if op == "TD":
                    state.leading = -nums[1]
                tlm = tm = _mul((1, 0, 0, 1, nums[0], nums[1]), tlm)
                x_lo = x_hi = 0.0
            elif op == "Tm" and len(nums) == 6:
                tlm = tm = tuple(nums)  # type: ignore[assignment]
                x_lo = x_hi = 0.0
            elif op in ("T*", "'", '"'):
                tlm = tm = _mul((1, 0, 0, 1, 0, -state.leading), tlm)
                x_lo = x_hi = 0.0
                if op == '"' and len(nums) >= 2:
                    state.word_space, state.char_space = nums[0], nums[1]
            if op in ("Tj", "'", '"', "TJ"):
                strings = [a for a in (args[0] if op == "TJ" and args
                                       and isinstance(args[0], list) else args)
                           if isinstance(a, PdfString | float)]
                for item in strings:
                    if isinstance(item, float):  # TJ adjustment, thousandths of an em
                        shift = -item / 1000 * state.font_size * state.h_scale
                        x_lo, x_hi = x_lo + shift, x_hi + shift
                        continue
                    if state.type3:
                        raise InkUnknown("Type 3 font glyphs cannot be outlined")
                    em = abs(state.font_size)
                    width = item.length * (em + abs(state.char_space)
                                           + abs(state.word_space)) * abs(state.h_scale)
                    if not invisible:
                        corners = [(x, state.rise + dy) for x in (min(x_lo, x_hi),
                                                                  max(x_lo, x_hi) + width)
                                   for dy in (-0.6 * em, 1.3 * em)]
                        full = _mul(tm, state.ctm)
                        self.boxes.append(_box_of([_apply(full, *p) for p in corners], 1))
                    x_hi += width

    def _unit_square(self, ctm: Matrix) -> None:
        self.boxes.append(_box_of([_apply(ctm, x, y) for x in (0, 1) for y in (0, 1)], 1))

    @staticmethod
    def _lookup(resources: Any, category: str, name: str) -> Any:
        try:
            return resources[category][f"/{name}"]
        except (KeyError, TypeError) as exc:
            raise InkUnknown(f"resource /{name} of /{category} is missing") from exc

    def _is_type3(self, name: str, resources: Any) -> bool:
        try:
            font = self._lookup(resources, "/Font", name)
        except InkUnknown:
            return False  # a missing font paints nothing a viewer could show differently
        return isinstance(font, dict) and _get(font, "/Subtype") == "/Type3"

    def _oc_off(self, prop: Any, resources: Any) -> bool:
        """Whether the optional content named ``prop`` is OFF in the default configuration."""
        if not isinstance(prop, str):
            return False  # an inline membership dictionary: assume visible
        try:
            group = resources["/Properties"].raw_get(f"/{prop}")
        except (KeyError, TypeError):
            return False
        if not isinstance(group, generic.IndirectObject):
            return False
        return (group.idnum, group.generation) in self.off_groups

    def _xobject(self, name: str, resources: Any, state: _State, depth: int) -> None:
        raw = self._lookup(resources, "/XObject", name)
        xobj = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
        if not isinstance(xobj, generic.StreamObject):
            raise InkUnknown(f"XObject /{name} is not a stream")
        oc = xobj.raw_get("/OC") if "/OC" in xobj else None
        if isinstance(oc, generic.IndirectObject) and \
                (oc.idnum, oc.generation) in self.off_groups:
            return
        subtype = _get(xobj, "/Subtype")
        if subtype == "/Image":
            self._unit_square(state.ctm)
            return
        if subtype != "/Form":
            raise InkUnknown(f"XObject /{name} of type {subtype} cannot be outlined")
        matrix = tuple(float(v) for v in _get(xobj, "/Matrix", _IDENTITY))
        inner = state.copy()
        inner.ctm = _mul(matrix, state.ctm)  # type: ignore[arg-type]
        try:
            data = xobj.data
        except Exception as exc:  # an unsupported or broken filter
            raise InkUnknown(f"form XObject /{name} cannot be decoded: {exc}") from exc
        self.run(data, _get(xobj, "/Resources", resources), inner, depth + 1)


def _off_groups(root: Any) -> set[tuple[int, int]]:
    """Optional-content groups the default configuration (/OCProperties /D) turns OFF."""
    try:
        props = root["/OCProperties"]
        config = props["/D"]
    except (KeyError, TypeError):
        return set()
    def refs(arr: Any) -> set[tuple[int, int]]:
        return {(r.idnum, r.generation) for r in arr if isinstance(r, generic.IndirectObject)}

    try:
        off = refs(config.raw_get("/OFF")) if "/OFF" in config else set()
        if _get(config, "/BaseState") == "/OFF":
            on = refs(config.raw_get("/ON")) if "/ON" in config else set()
            off |= refs(props.raw_get("/OCGs")) - on
    except (KeyError, TypeError, AttributeError):
        return set()
    return off


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
        data = b"\n".join(s.get_object().data for s in streams)
    except Exception as exc:
        raise InkUnknown(f"the page content cannot be decoded: {exc}") from exc
    outliner = _Outliner(_off_groups(root))
    outliner.run(data, inherited(page, "/Resources") or generic.DictionaryObject(),
                 _State(), 0)
    return outliner.boxes
