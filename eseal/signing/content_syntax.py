"""Reading content streams as every viewer would, or not at all: the tokenizer and the
operand signatures of content-stream operators.

:func:`content_operations` turns a stream into (operator, operands) pairs (also for the draft
checks of :mod:`eseal.signing.draft_forms`); :class:`InkUnknown` is what every reader here
raises where the outline must not be trusted.

Viewers disagree on malformed syntax: for ``9 72 400 Td`` poppler takes the *last* two
operands, another viewer the first two, a third drops the operator. An outline that guesses
(or skips the operator and leaves the text at the origin) can be steered away from ink a
viewer shows. So :func:`operand_problem` accepts an operator only with exactly the operands
ISO 32000-1 table A.1 gives it — count and type — and knows every operator of that table;
anything else (an unknown operator, ``BX``/``EX`` compatibility sections included, a stray
``true``) makes the page unoutlinable, which the verifier reports as *undecided* instead of
guessing. :func:`inline_image_problem` does the same for inline image data whose end viewers
find by different rules (computed length, ``EI`` search, filter end-of-data markers).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_OPERATORS", "OPERATORS", "InkUnknown", "PdfString", "content_operations",
           "inline_image_problem", "operand_problem"]

MAX_OPERATORS = 500_000

# n number, N name, s string, a array, P name or dictionary (a property list)
OPERATORS: dict[str, tuple[str, ...]] = {
    **{op: () for op in ("b", "B", "b*", "B*", "BT", "BX", "EMC", "ET", "EX", "f", "F", "f*",
                         "h", "n", "q", "Q", "s", "S", "T*", "W", "W*")},
    "BDC": ("N", "P"), "BMC": ("N",), "c": ("n",) * 6, "cm": ("n",) * 6, "CS": ("N",),
    "cs": ("N",), "d": ("a", "n"), "d0": ("n",) * 2, "d1": ("n",) * 6, "Do": ("N",),
    "DP": ("N", "P"), "G": ("n",), "g": ("n",), "gs": ("N",), "i": ("n",), "j": ("n",),
    "J": ("n",), "K": ("n",) * 4, "k": ("n",) * 4, "l": ("n",) * 2, "m": ("n",) * 2,
    "M": ("n",), "MP": ("N",), "re": ("n",) * 4, "RG": ("n",) * 3, "rg": ("n",) * 3,
    "ri": ("N",), "sh": ("N",), "Tc": ("n",), "TD": ("n",) * 2, "Td": ("n",) * 2,
    "Tf": ("N", "n"), "TJ": ("a",), "Tj": ("s",), "TL": ("n",), "Tm": ("n",) * 6,
    "Tr": ("n",), "Ts": ("n",), "Tw": ("n",), "Tz": ("n",), "v": ("n",) * 4, "w": ("n",),
    "y": ("n",) * 4, "'": ("s",), '"': ("n", "n", "s"),
}
_COLOUR = {"sc", "SC", "scn", "SCN"}  # 1-4 numbers (scn/SCN: and/or a pattern name last)


def _kind(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "?"
    if isinstance(value, float):
        return "n"
    if isinstance(value, str):
        return "N"
    if isinstance(value, list):
        return "a"
    if isinstance(value, dict):
        return "d"
    return "s"  # PdfString (the only other operand type the tokenizer makes)


def operand_problem(op: str, args: list[Any]) -> str | None:
    """Why ``op`` with ``args`` may be read differently by viewers, or None when it is
    well formed (known operator, exact operand count and types)."""
    kinds = "".join(_kind(a) for a in args)
    if op in _COLOUR:
        pattern = r"n{1,4}" if op in ("sc", "SC") else r"n{0,4}N?"
        ok = bool(kinds) and re.fullmatch(pattern, kinds) is not None
    elif op in OPERATORS:
        expected = OPERATORS[op]
        ok = len(kinds) == len(expected) and all(
            k == e or (e == "P" and k in "Nd") for k, e in zip(kinds, expected, strict=True))
    else:
        return f"unknown operator {op!r}"
    if ok:
        return None
    return f"operator {op!r} with operands of kinds {kinds or 'none'!r}"


_COMPONENTS = {"G": 1, "DeviceGray": 1, "RGB": 3, "DeviceRGB": 3, "CMYK": 4, "DeviceCMYK": 4}
_TOKEN_SPLIT = re.compile(rb"[\x00\t\n\x0c\r ()<>\[\]{}/%]+")


def _raw_length(params: dict[str, Any]) -> int | None:
    """The byte length of unfiltered inline image data, when its dictionary fixes it."""
    def number(*keys: str) -> float | None:
        for key in keys:
            value = params.get(key)
            if isinstance(value, float) and value >= 0 and value == int(value):
                return value
        return None

    width, height = number("W", "Width"), number("H", "Height")
    mask = params.get("IM", params.get("ImageMask")) is True
    bpc = 1.0 if mask else number("BPC", "BitsPerComponent")
    space = params.get("CS", params.get("ColorSpace"))
    if mask:
        comps: int | None = 1
    elif isinstance(space, list) and space and space[0] in ("I", "Indexed"):
        comps = 1
    else:
        comps = _COMPONENTS.get(space) if isinstance(space, str) else None
    if width is None or height is None or bpc is None or comps is None:
        return None
    return math.ceil(width * bpc * comps / 8) * int(height)


def inline_image_problem(params: dict[str, Any], data: bytes, start: int, ei_start: int
                         ) -> str | None:
    """Why viewers may end the inline image whose data begins at ``start`` somewhere else
    than the first ``EI`` (at ``ei_start``), or None.

    Unfiltered data of a size the dictionary fixes must end exactly there (poppler reads that
    many bytes, pdf.js searches for ``EI``). Filtered data ends where its filter says, which
    we do not decode: then no operator may appear in it as a token of its own, or a viewer
    that stops early would run it while the outline skips it.
    """
    region = data[start:ei_start]
    if params.get("F", params.get("Filter")) is None:
        length = _raw_length(params)
        if length is None:
            return "inline image of unknown size"
        if length > len(region) or region[length:].strip(b"\x00\t\n\x0c\r "):
            return "inline image data does not end where its dictionary says"
        return None
    for token in _TOKEN_SPLIT.split(region):
        if token.decode("latin-1") in OPERATORS or token in (b"sc", b"scn", b"SC", b"SCN"):
            return "inline image data holds content operators"
    return None


class InkUnknown(Exception):
    """The content cannot be outlined reliably; the caller must not assume free space."""


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


_CONSTANTS: dict[str, bool | None] = {"true": True, "false": False, "null": None}


def content_operations(data: bytes) -> Iterator[tuple[str, list[Any]]]:
    """(operator, operands) pairs of a content stream; numbers become ``float``, names
    ``str`` (without the slash), strings :class:`PdfString`, dictionaries ``{}``, ``true``,
    ``false`` and ``null`` Python's constants; an inline image is yielded as ``BI`` with
    its dictionary as a ``dict`` operand, after checking that viewers agree where its data
    ends (:func:`eseal.signing.content_syntax.inline_image_problem`)."""
    operands: list[Any] = []
    stack: list[list[Any]] = []
    pos, count = 0, 0
    image: list[Any] | None = None  # the operands of an open BI ... ID dictionary
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
            if stack or op in _CONSTANTS:  # true/false/null are operands, not operators
                target.append(_CONSTANTS.get(op, op))
                continue
            count += 1
            if count > MAX_OPERATORS:
                raise InkUnknown("too many operators to outline")
            if image is not None:
                if op != "ID":
                    raise InkUnknown(f"operator {op!r} inside an inline image dictionary")
                yield "BI", [_inline_image(data, pos, image + operands)]
                pos = _inline_end(data, pos, image + operands)
                image = None
            elif op == "BI":
                if operands:
                    raise InkUnknown("operands before an inline image")
                image = []
            else:
                yield op, operands
            operands = []
    if image is not None or stack:
        raise InkUnknown("the content stream ends inside an inline image or array")


def _inline_image(data: bytes, pos: int, entries: list[Any]) -> dict[str, Any]:
    """The inline image dictionary from the operands between ``BI`` and ``ID``."""
    if len(entries) % 2 or not all(isinstance(k, str) for k in entries[::2]):
        raise InkUnknown("malformed inline image dictionary")
    return dict(zip(entries[::2], entries[1::2], strict=True))


def _inline_end(data: bytes, pos: int, entries: list[Any]) -> int:
    """Where the content resumes after the inline image data that starts after ``ID``."""
    start = pos + 1  # one white-space byte follows ID
    end = _INLINE_END.search(data, max(start - 1, 0))
    if end is None:
        raise InkUnknown("unterminated inline image")
    problem = inline_image_problem(_inline_image(data, pos, entries), data, start,
                                   end.start() + 1)
    if problem:
        raise InkUnknown(problem)
    return end.end()
