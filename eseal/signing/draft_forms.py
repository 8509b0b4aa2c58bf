"""Refuse a draft whose form fields show one thing and hold another.

A seal covers bytes, and a relying party sees what a viewer draws from them. A form field has
two faces: its value (/V) and its stored appearance stream (/AP), which a viewer shows unless
told to regenerate it (/NeedAppearances, XFA). A draft whose field *shows* "1,000 CNY" but
*holds* "9,999,999 CNY" is a shadow document (Mainka et al., "Shadow Attacks", NDSS 2021):
sealed as it looks, and re-rendered from the hidden value by any viewer that regenerates
appearances or by anyone who extracts the form data.

We **refuse** such drafts rather than flatten them. Flattening would mean eseal redraws the
agent's fields (with fonts for every script, 𠮷 included) and the legal representative seals
a rendering the agent never looked at; and the intake accepts a sealed upload only as the
stored draft's exact bytes plus one seal, so the draft must be final when it is submitted.
Refusing names the field, and the agent fixes it where they can see the result (re-save or
"print to PDF" in their own tool).

What is checked (first failure wins, each with its own code):

* ``DRAFT_XFA_FORM`` — an XFA form: viewers render it from XML, not from the appearances;
* ``DRAFT_FORM_NEEDS_APPEARANCES`` — /NeedAppearances true: viewers regenerate every field;
* ``DRAFT_FIELD_APPEARANCE_MISMATCH`` — a visible text or choice field whose appearance shows
  other text than its value (or nothing, for a value), or a check box / radio button whose
  appearance state (/AS) is not its value;
* ``DRAFT_FIELD_APPEARANCE_UNCHECKED`` — the shown text cannot be read back (a composite font
  without /ToUnicode, a re-encoded simple font, an unreadable stream): fail closed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pyhanko.pdf_utils import generic

from eseal.errors import InvalidInput
from eseal.signing.page_ink import InkUnknown, PdfString, annotation_visible, content_operations
from eseal.signing.page_ink import resolved as _get

__all__ = ["check_draft_form"]

_MAX_FIELDS = 10_000
_MAX_DEPTH = 32
_PUSH_BUTTON = 1 << 16
_SHOW_OPS = {"Tj", "TJ", "'", '"'}
_HEX = re.compile(rb"<([0-9A-Fa-f]+)>")


class _Unreadable(Exception):
    """The appearance's text cannot be read back reliably."""


def _refuse(code: str, en: str, zh: str, field: str, form_field: str | None = None
            ) -> InvalidInput:
    details = {"form_field": form_field} if form_field is not None else None
    return InvalidInput(code, en, zh, field=field, details=details)


def check_draft_form(root: Any, *, field: str = "file") -> None:
    """Raise :class:`~eseal.errors.InvalidInput` if the draft's form would show a relying
    party something else than what it holds (module docstring); return if it would not."""
    form = _get(root, "/AcroForm") if "/AcroForm" in root else None
    if not isinstance(form, dict):
        return
    if "/XFA" in form:
        raise _refuse("DRAFT_XFA_FORM",
                      "the draft is an XFA form: viewers draw it from its XML data, not from "
                      "what would be sealed; save it as a plain (flattened) PDF",
                      "草稿是 XFA 表单，阅读器按其 XML 数据显示而非按签章内容显示，"
                      "请另存为普通（扁平化）PDF",
                      field)
    if bool(_get(form, "/NeedAppearances", False)):  # any true-ish value: some viewers obey it
        raise _refuse("DRAFT_FORM_NEEDS_APPEARANCES",
                      "the draft's form asks viewers to redraw its fields (/NeedAppearances): "
                      "what a viewer shows is then not what is sealed; save the form with its "
                      "appearances or flatten it",
                      "草稿表单要求阅读器重新生成字段外观（/NeedAppearances），显示内容将不同于签章内容，"
                      "请保存字段外观或扁平化后再提交", field)
    resources = _get(form, "/DR") if "/DR" in form else None
    for name, node, widgets in _terminal_fields(form):
        try:
            problem = _field_problem(node, widgets, resources)
        except (_Unreadable, InkUnknown) as exc:
            raise _refuse("DRAFT_FIELD_APPEARANCE_UNCHECKED",
                          f"the appearance of form field {name!r} cannot be read back ({exc}); "
                          "flatten the form before submitting it",
                          f"无法读取表单字段 {name!r} 的显示内容，请将表单扁平化后再提交",
                          field, name) from exc
        if problem is not None:
            raise _refuse("DRAFT_FIELD_APPEARANCE_MISMATCH",
                          f"form field {name!r} shows {problem[0]!r} but holds {problem[1]!r}; "
                          "a viewer that redraws it would show the held value",
                          f"表单字段 {name!r} 显示“{problem[0]}”，实际值却是“{problem[1]}”",
                          field, name)


# ---------------------------------------------------------------------------------------------
# the field tree


def _inherited(node: Any, key: str) -> Any:
    for _ in range(_MAX_DEPTH):
        if key in node:
            return node[key]
        if "/Parent" not in node:
            return None
        node = node["/Parent"]
    return None


def _terminal_fields(form: Any) -> Iterator[tuple[str, Any, list[Any]]]:
    """(full name, field dictionary, its widget annotations) for every terminal field."""
    stack: list[tuple[Any, str, int]] = [(f, "", 0) for f in reversed(list(_get(form, "/Fields",
                                                                                  [])))]
    seen = 0
    while stack:
        raw, prefix, depth = stack.pop()
        node = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
        seen += 1
        if not isinstance(node, dict) or depth > _MAX_DEPTH or seen > _MAX_FIELDS:
            continue
        part = str(node["/T"]) if "/T" in node else ""
        name = f"{prefix}.{part}" if prefix and part else prefix or part
        kids = [k.get_object() if isinstance(k, generic.IndirectObject) else k
                for k in _get(node, "/Kids", [])]
        fields = [k for k in kids if isinstance(k, dict) and "/T" in k]
        if fields:
            stack.extend((k, name, depth + 1) for k in reversed(fields))
            continue
        widgets = [k for k in kids if isinstance(k, dict)] or [node]
        yield name or "(unnamed)", node, widgets


def _field_problem(node: Any, widgets: list[Any], dr: Any) -> tuple[str, str] | None:
    kind = _inherited(node, "/FT")
    value = _inherited(node, "/V")
    if kind == "/Btn":
        flags = _inherited(node, "/Ff")
        if isinstance(flags, int) and flags & _PUSH_BUTTON:
            return None
        return _button_problem(value, widgets)
    if kind not in ("/Tx", "/Ch"):
        return None  # signature fields are checked by the verifier
    values = [str(v) for v in value] if isinstance(value, list) else \
        [str(value)] if value is not None else []
    wanted = [_squash(v) for v in values if _squash(v)]
    for widget in widgets:
        if not annotation_visible(widget):
            continue
        shown = _squash(_shown_text(widget, dr))
        if kind == "/Tx" and shown != "".join(wanted):
            return shown, " ".join(values)
        if kind == "/Ch" and any(w not in shown for w in wanted):
            return shown, " ".join(values)
    return None


def _button_problem(value: Any, widgets: list[Any]) -> tuple[str, str] | None:
    on = str(value) if isinstance(value, generic.NameObject) else "/Off"
    for widget in widgets:
        ap = _get(widget, "/AP") if "/AP" in widget else None
        normal = _get(ap, "/N") if isinstance(ap, dict) and "/N" in ap else None
        states = set(normal) if isinstance(normal, dict) else set()
        state = str(_get(widget, "/AS", "/Off"))
        expected = on if on in states else "/Off"
        if state != expected:
            return state, on
    return None


def _squash(text: str) -> str:
    return "".join(text.split())


# ---------------------------------------------------------------------------------------------
# reading back what an appearance stream shows


def _shown_text(widget: Any, dr: Any) -> str:
    ap = _get(widget, "/AP") if "/AP" in widget else None
    normal = _get(ap, "/N") if isinstance(ap, dict) and "/N" in ap else None
    if isinstance(normal, dict) and not isinstance(normal, generic.StreamObject):
        state = _get(widget, "/AS")
        normal = normal[state] if state is not None and state in normal else None
    if not isinstance(normal, generic.StreamObject):
        return ""  # no appearance: shows nothing
    try:
        data = normal.data
    except Exception as exc:
        raise _Unreadable(f"the appearance stream cannot be decoded: {exc}") from exc
    resources = _get(normal, "/Resources") if "/Resources" in normal else None
    font: Any = None
    out: list[str] = []
    for op, args in content_operations(data):
        if op == "Tf" and args and isinstance(args[0], str):
            font = _font(args[0], resources, dr)
        elif op in _SHOW_OPS:
            items = args[0] if op == "TJ" and args and isinstance(args[0], list) else args
            for item in items:
                if isinstance(item, PdfString):
                    out.append(_decode(item.data, font))
    return "".join(out)


def _font(name: str, *sources: Any) -> Any:
    for resources in sources:
        try:
            return resources["/Font"][f"/{name}"]
        except (KeyError, TypeError):
            continue
    raise _Unreadable(f"font /{name} is not in the appearance's resources")


def _decode(data: bytes, font: Any) -> str:
    if not isinstance(font, dict):
        raise _Unreadable("text is shown without a font")
    if "/ToUnicode" in font:
        return _to_unicode(data, font["/ToUnicode"])
    if _get(font, "/Subtype") == "/Type0":
        raise _Unreadable("a composite font without /ToUnicode")
    encoding = _get(font, "/Encoding") if "/Encoding" in font else None
    if isinstance(encoding, dict) and "/Differences" in encoding:
        raise _Unreadable("a simple font whose glyphs are re-encoded (/Differences)")
    return data.decode("latin-1")


def _to_unicode(data: bytes, cmap: Any) -> str:
    """Map ``data`` through a ToUnicode CMap (bfchar and bfrange entries)."""
    try:
        text = cmap.data
    except Exception as exc:
        raise _Unreadable(f"its /ToUnicode map cannot be decoded: {exc}") from exc
    table: dict[bytes, str] = {}
    width = 0
    for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
        codes = _HEX.findall(block)
        for src, dst in zip(codes[0::2], codes[1::2], strict=False):
            table[bytes.fromhex(src.decode())] = bytes.fromhex(dst.decode()).decode(
                "utf-16-be", "replace")
            width = max(width, len(src) // 2)
    for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
        for m in re.finditer(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*(<[0-9A-Fa-f]+>|\[[^\]]*\])",
                             block):
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            size = len(m.group(1)) // 2
            width = max(width, size)
            if hi - lo > 0xFFFF:
                raise _Unreadable("an oversized /ToUnicode range")
            targets = [bytes.fromhex(t.decode()) for t in _HEX.findall(m.group(3))]
            for i, code in enumerate(range(lo, hi + 1)):
                if m.group(3).startswith(b"["):
                    if i >= len(targets):
                        break
                    dst = targets[i]
                else:
                    base = targets[0]
                    if len(base) < 2:
                        raise _Unreadable("a malformed /ToUnicode range")
                    dst = base[:-2] + (int.from_bytes(base[-2:], "big") + i).to_bytes(2, "big")
                table[code.to_bytes(size, "big")] = dst.decode("utf-16-be", "replace")
    if width == 0:
        raise _Unreadable("an empty /ToUnicode map")
    out = []
    for i in range(0, len(data), width):
        chunk = data[i:i + width]
        if chunk not in table:
            raise _Unreadable("a shown code has no /ToUnicode entry")
        out.append(table[chunk])
    return "".join(out)
