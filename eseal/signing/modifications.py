"""What may change after a seal: the difference policy and our review of later revisions.

Two layers judge every revision appended after a signed one (the verifier's module docstring,
"What may change after a seal", states the policy and its sources):

1. pyHanko's difference analysis with :data:`STRICT_DIFF_POLICY` — only later signature
   fields and their widgets, DSS/VRI, document timestamps, the XMP stream and the /Info dates.
   It decides *which objects* may change, but it rates a new signature field's appearance as
   "form filling" whatever it paints, lets the /AcroForm's /NeedAppearances, /DA and /DR
   change, and does not look inside a new widget for actions.
2. :func:`review_after` — what those allowed objects *do*, revision by revision:

   * **form settings** (``FORM_SETTINGS_CHANGED``): any /AcroForm key but /Fields and
     /SigFlags (/NeedAppearances by its effective value, /DA, /DR, /Q, /XFA, /CO, …) must
     stay as sealed: each makes viewers draw fields from something other than the sealed
     appearance streams, or run scripts. /SigFlags only tells a viewer that signatures
     exist and that the file is append-only, which every later seal sets.
   * **actions** (``ACTION_ADDED_AFTER_SEALING``): no object written after sealing may bring
     a new or changed /A, /AA or /OpenAction entry, or a changed action dictionary
     (JavaScript, Launch, URI, SubmitForm, … — any /S of ISO 32000 table 198).
   * **appearances**: a document timestamp's widget must be invisible
     (``TIMESTAMP_APPEARANCE_ADDED``); a later seal's widget may not overlap an earlier
     signature's widget (``LATER_SEAL_OVER_SEAL``) or anything the page showed when it was
     sealed — content or annotations (``LATER_SEAL_OVER_CONTENT``), judged on the generous
     outline of :mod:`eseal.signing.page_ink`; where the page cannot be outlined the answer is
     *indeterminate* (``LATER_APPEARANCE_UNDECIDED``). A widget that was already there when
     sealed (an empty signature field the author placed) may be filled where it stands —
     only if the sealer could see it there: no Invisible, Hidden or NoView flag, no /OC,
     the same /Rect (a hidden or zero-size placeholder that is revealed or grows later is
     judged like a new widget) — but a widget whose field already had a value may not get
     a new appearance (``LATER_APPEARANCE_CHANGED``).
   * **untrusted document timestamps** (``LATER_TIMESTAMP_UNTRUSTED``): a later document
     timestamp that does not chain to the caller's roots is an update nobody we trust
     vouches for; the earlier seal's verdict says so (*indeterminate*) instead of "allowed".
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import HistoricalResolver, PdfFileReader, RawPdfPath
from pyhanko.sign.diff_analysis import (
    CatalogModificationRule,
    DSSCompareRule,
    FormUpdatingRule,
    MetadataUpdateRule,
    ModificationLevel,
    ObjectStreamRule,
    SigFieldCreationRule,
    SigFieldModificationRule,
    StandardDiffPolicy,
    XrefStreamRule,
)
from pyhanko.sign.diff_analysis.commons import safe_whitelist
from pyhanko.sign.diff_analysis.rules_api import Context, ReferenceUpdate, WhitelistRule

from eseal.signing.page_ink import Box, InkUnknown, overlaps, page_ink
from eseal.signing.page_ink import annotation_box as _rect
from eseal.signing.page_ink import annotation_visible as _visible
from eseal.signing.page_ink import resolved as _get
from eseal.signing.report import Finding
from eseal.signing.structure import finding

__all__ = ["STRICT_DIFF_POLICY", "InfoDatesRule", "LaterSignature", "review_after"]


class InfoDatesRule(WhitelistRule):
    """Allow a later revision to rewrite ``/Info`` only in ``/ModDate`` and ``/Producer``.

    Every incremental writer we know of (pyHanko included) refreshes the modification date
    in ``/Info`` when it adds a seal or a document timestamp, so a contract sealed a second
    later by the counterparty must not break the first seal. Anything else in ``/Info`` —
    title, author, subject, keywords — stays as signed (pyHanko's ``DocInfoRule`` would allow
    any change), and an ``/Info`` that appears, disappears or is reached indirectly is not
    whitelisted at all.
    """

    MUTABLE = frozenset({"/ModDate", "/Producer"})

    def apply(self, old: HistoricalResolver, new: HistoricalResolver
              ) -> Iterable[ReferenceUpdate]:
        new_ref = new.trailer_view.get_value_as_reference("/Info", optional=True)
        old_ref = old.trailer_view.get_value_as_reference("/Info", optional=True)
        if new_ref is None or old_ref is None:
            return
        old_info, new_info = old.get_object(old_ref), new.get_object(new_ref)
        if not isinstance(old_info, generic.DictionaryObject) or \
                not isinstance(new_info, generic.DictionaryObject):
            return
        for key in (set(old_info) | set(new_info)) - self.MUTABLE:
            before, after = old_info.raw_get(key, None), new_info.raw_get(key, None)
            if isinstance(before, generic.IndirectObject) or \
                    isinstance(after, generic.IndirectObject) or before != after:
                return
        yield from map(
            ReferenceUpdate.curry_ref(context_checked=Context.from_absolute(
                old, RawPdfPath("/Info"))),
            safe_whitelist(old, old_ref, new_ref))


#: After a seal, only later signatures (new signature fields and their widgets), DSS/VRI
#: updates, document timestamps, the XMP metadata stream (rewritten by every PAdES signer)
#: and the modification date in /Info may change. No generic form field rule (filling a text
#: field after sealing changes what the document says). What the allowed objects paint or
#: run is reviewed by :func:`review_after`.
STRICT_DIFF_POLICY = StandardDiffPolicy(
    global_rules=[
        CatalogModificationRule(),
        InfoDatesRule().as_qualified(ModificationLevel.LTA_UPDATES),
        XrefStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        ObjectStreamRule().as_qualified(ModificationLevel.LTA_UPDATES),
        DSSCompareRule().as_qualified(ModificationLevel.LTA_UPDATES),
        MetadataUpdateRule().as_qualified(ModificationLevel.LTA_UPDATES),
    ],
    form_rule=FormUpdatingRule(field_rules=[SigFieldCreationRule(), SigFieldModificationRule()]),
    reject_object_freeing=True,
    ignore_orphaned_objects=True,
    ignore_identical_objects=True,
)

#: /AcroForm keys a later seal or document timestamp may change.
MUTABLE_FORM_KEYS = frozenset({"/Fields", "/SigFlags"})
#: Keys that attach an action to whatever holds them.
ACTION_KEYS = ("/A", "/AA", "/OpenAction")
#: ISO 32000-2 table 198: the action types (a dictionary with one of these as /S is an action).
ACTION_TYPES = frozenset({
    "/GoTo", "/GoToR", "/GoToE", "/GoToDp", "/Launch", "/Thread", "/URI", "/Sound", "/Movie",
    "/Hide", "/Named", "/SubmitForm", "/ResetForm", "/ImportData", "/SetOCGState",
    "/Rendition", "/Trans", "/GoTo3DView", "/JavaScript", "/RichMediaExecute", "/ECMAScript",
})
_MAX_DEPTH = 24


@dataclass(frozen=True)
class LaterSignature:
    """What the verifier established about a signature, as :func:`review_after` needs it."""

    revision: int
    kind: Literal["seal", "document_timestamp"]
    field_name: str
    trusted: bool


def review_after(reader: PdfFileReader, signed_revision: int,
                 signatures: Sequence[LaterSignature]) -> list[Finding]:
    """Findings about what the revisions after ``signed_revision`` (0-based) paint, run or
    switch on (module docstring). Empty when nothing is wrong; never raises on hostile input
    (a review that cannot run is an *invalid* finding: we fail closed)."""
    found: list[Finding] = []
    total = reader.xrefs.total_revisions
    for revision in range(signed_revision + 1, total):
        try:
            old = reader.get_historical_resolver(revision - 1)
            new = reader.get_historical_resolver(revision)
            found += _form_settings(old, new, revision)
            found += _actions(reader, old, new, revision)
            found += _widgets(reader, old, new, revision)
        except Exception as exc:  # hostile structure the review cannot walk
            found.append(finding(
                "MODIFIED_AFTER_SEALING",
                f"revision {revision + 1} cannot be reviewed: {type(exc).__name__}: {exc}",
                f"无法审查签章后的第 {revision + 1} 个版本"))
    for sig in signatures:
        if sig.kind == "document_timestamp" and sig.revision > signed_revision \
                and not sig.trusted:
            found.append(finding(
                "LATER_TIMESTAMP_UNTRUSTED",
                f"the later document timestamp {sig.field_name!r} does not chain to a trust "
                "root: nobody trusted vouches for the revision it adds",
                f"签章后添加的文档时间戳 {sig.field_name!r} 不能链接到可信根证书，"
                "其追加的版本无人担保",
                "indeterminate"))
    unique: dict[tuple[str, str], Finding] = {}
    for f in found:
        unique.setdefault((f.code, f.message), f)
    return list(unique.values())


# ---------------------------------------------------------------------------------------------
# comparable values


def _deep(value: Any, depth: int = 0, seen: frozenset[tuple[int, int]] = frozenset()) -> Any:
    """A comparable view of a PDF value with references followed (cycles and depth bounded)."""
    if depth > _MAX_DEPTH:
        return "<deep>"
    if isinstance(value, generic.IndirectObject):
        key = (value.idnum, value.generation)
        if key in seen:
            return ("ref", *key)
        return _deep(value.get_object(), depth + 1, seen | {key})
    if isinstance(value, generic.StreamObject):
        return ({k: _deep(v, depth + 1, seen) for k, v in value.items()
                 if k not in ("/Length", "/Parent", "/P")}, value.encoded_data)
    if isinstance(value, dict):
        # /Parent and /P point back up the tree; they are compared where they are written
        return {k: _deep(value.raw_get(k), depth + 1, seen) for k in value
                if k not in ("/Parent", "/P")}
    if isinstance(value, list):
        return [_deep(v, depth + 1, seen) for v in value]
    return value


def _dict(value: Any) -> generic.DictionaryObject | None:
    obj = value.get_object() if isinstance(value, generic.IndirectObject) else value
    return obj if isinstance(obj, generic.DictionaryObject) else None


def _ref_key(value: Any) -> tuple[int, int] | None:
    if isinstance(value, generic.IndirectObject):
        return value.idnum, value.generation
    return None


# ---------------------------------------------------------------------------------------------
# 1. form settings


def _form_settings(old: HistoricalResolver, new: HistoricalResolver,
                   revision: int) -> list[Finding]:
    old_form = _dict(old.root.raw_get("/AcroForm")) if "/AcroForm" in old.root else None
    new_form = _dict(new.root.raw_get("/AcroForm")) if "/AcroForm" in new.root else None
    old_form = old_form if old_form is not None else generic.DictionaryObject()
    new_form = new_form if new_form is not None else generic.DictionaryObject()
    changed = []
    for key in sorted((set(old_form) | set(new_form)) - MUTABLE_FORM_KEYS):
        before = old_form.raw_get(key) if key in old_form else None
        after = new_form.raw_get(key) if key in new_form else None
        if key == "/NeedAppearances":
            same = bool(_deep(before)) == bool(_deep(after))
        else:
            same = _deep(before) == _deep(after)
        if not same:
            changed.append(key)
    if not changed:
        return []
    keys = ", ".join(changed)
    return [finding(
        "FORM_SETTINGS_CHANGED",
        f"revision {revision + 1} changed the form's {keys}: viewers would draw or compute "
        "fields differently from the sealed appearances",
        f"签章后第 {revision + 1} 个版本修改了表单设置 {keys}，"
        "阅读器显示的表单内容可能不同于签章时")]


# ---------------------------------------------------------------------------------------------
# 2. actions


def _action_entries(value: Any, path: str = "", depth: int = 0) -> Iterator[tuple[str, Any]]:
    """(where, comparable value) of every action-carrying entry in ``value``'s direct
    structure (references are followed only to compare what an entry points at)."""
    if depth > _MAX_DEPTH:
        return
    if isinstance(value, dict):
        subtype = _get(value, "/S") if "/S" in value else None
        if isinstance(subtype, generic.NameObject) and subtype in ACTION_TYPES and \
                _get(value, "/Type", "/Action") == "/Action":
            yield path or "(the object)", ("action", _deep(value))
        for key in value:
            raw = value.raw_get(key)
            if key in ACTION_KEYS:
                yield f"{path}{key}", _deep(raw)
            elif not isinstance(raw, generic.IndirectObject):
                yield from _action_entries(raw, f"{path}{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if not isinstance(item, generic.IndirectObject):
                yield from _action_entries(item, f"{path}[{i}]", depth + 1)


def _actions(reader: PdfFileReader, old: HistoricalResolver, new: HistoricalResolver,
             revision: int) -> list[Finding]:
    out: list[Finding] = []
    for ref in sorted(reader.xrefs.explicit_refs_in_revision(revision), key=lambda r: r.idnum):
        after = new(ref)
        before = old(ref) if reader.xrefs.get_introducing_revision(ref) < revision else None
        had = list(_action_entries(before)) if before is not None else []
        for where, value in _action_entries(after):
            if (where, value) in had:
                continue
            out.append(finding(
                "ACTION_ADDED_AFTER_SEALING",
                f"revision {revision + 1} adds or changes an action in object {ref.idnum} "
                f"({where}): a viewer could run it (JavaScript, launch, submit, link) when "
                "the page opens or a field is touched",
                f"签章后第 {revision + 1} 个版本在对象 {ref.idnum} 中新增或修改了动作（{where}），"
                "阅读器可能会执行它"))
    return out


# ---------------------------------------------------------------------------------------------
# 3. appearances


def _pages(root: Any) -> list[generic.DictionaryObject]:
    out: list[generic.DictionaryObject] = []
    stack: list[tuple[Any, int]] = [(root["/Pages"], 0)]
    while stack:
        node, depth = stack.pop()
        node = _dict(node)
        if node is None or depth > 64 or len(out) > 1_000_000:
            continue
        if _get(node, "/Type") == "/Pages" or "/Kids" in node:
            kids = _get(node, "/Kids", [])
            stack.extend((kid, depth + 1) for kid in reversed(list(kids)))
        else:
            out.append(node)
    return out


def _field_of(annot: generic.DictionaryObject) -> generic.DictionaryObject:
    if "/FT" in annot or "/T" in annot or "/Parent" not in annot:
        return annot
    parent = _dict(annot.raw_get("/Parent"))
    return parent if parent is not None else annot


def _field_name(annot: generic.DictionaryObject) -> str:
    name = _get(_field_of(annot), "/T")
    return str(name) if name is not None else "(unnamed)"


def _signature_value(annot: generic.DictionaryObject) -> generic.DictionaryObject | None:
    field = _field_of(annot)
    return _dict(field.raw_get("/V")) if "/V" in field and _get(field, "/FT") == "/Sig" else None


def _annots(page: generic.DictionaryObject) -> list[tuple[tuple[int, int] | None,
                                                          generic.DictionaryObject]]:
    raw = _get(page, "/Annots") if "/Annots" in page else None
    out = []
    for item in (raw if isinstance(raw, list) else []):
        annot = _dict(item)
        if annot is not None:
            out.append((_ref_key(item), annot))
    return out


#: /F bits that keep an annotation from showing as it stands (ISO 32000-1 table 165):
#: Invisible, Hidden, NoView (ToggleNoView shows it only under the pointer).
_NOT_SHOWN = 1 | 2 | 32


def _shown_when_sealed(old: generic.DictionaryObject, rect: Box) -> bool:
    """Whether an empty field's widget was on show, at ``rect``, when the page was sealed:
    the sealer saw that box reserved, so a later seal may fill it. A widget the sealer could
    not see there — hidden, not viewed, in an optional-content group (whatever its state), or
    of another size or place (a zero /Rect that grows) — reserved nothing."""
    try:
        flags = int(_get(old, "/F", 0))
    except (TypeError, ValueError):
        return False
    return not flags & _NOT_SHOWN and "/OC" not in old and _rect(old) == rect


def _widgets(reader: PdfFileReader, old: HistoricalResolver, new: HistoricalResolver,
             revision: int) -> list[Finding]:
    written = {(r.idnum, r.generation) for r in reader.xrefs.explicit_refs_in_revision(revision)}
    old_pages, new_pages = _pages(old.root), _pages(new.root)
    if len(old_pages) != len(new_pages):
        return []  # pages added or removed: the difference analysis refuses that already
    out: list[Finding] = []
    for index, (old_page, new_page) in enumerate(zip(old_pages, new_pages, strict=True)):
        before = {key: annot for key, annot in _annots(old_page) if key is not None}
        ink: list[Box] | None = None
        for key, annot in _annots(new_page):
            existed = key is not None and key in before
            if existed and key not in written and \
                    _deep(annot.raw_get("/AP") if "/AP" in annot else None) == \
                    _deep(before[key].raw_get("/AP") if "/AP" in before[key] else None):
                continue  # untouched
            where = f"{_field_name(annot)!r} on page {index + 1}"
            value = _signature_value(annot)
            if existed and key is not None:
                old_annot = before[key]
                if "/V" in _field_of(old_annot) or value is None:
                    out.append(finding(
                        "LATER_APPEARANCE_CHANGED",
                        f"revision {revision + 1} changed the appearance of {where}, which "
                        "was already there when sealed",
                        f"签章后第 {revision + 1} 个版本修改了签章时已存在的 {where} 的外观"))
                    continue
            if not _visible(annot):
                continue
            rect = _rect(annot)
            assert rect is not None
            if value is not None and _get(value, "/Type") == "/DocTimeStamp":
                out.append(finding(
                    "TIMESTAMP_APPEARANCE_ADDED",
                    f"the document timestamp {where} (revision {revision + 1}) has a visible "
                    "appearance; a timestamp adds time, not ink",
                    f"签章后第 {revision + 1} 个版本添加的文档时间戳 {where} 带有可见外观"))
                continue
            reserved = existed and key is not None and _shown_when_sealed(before[key], rect)
            for other_key, other in before.items():
                if other_key == key or not _visible(other):
                    continue
                other_rect = _rect(other)
                if other_rect is None or not overlaps(rect, other_rect):
                    continue
                is_seal = _get(_field_of(other), "/FT") == "/Sig"
                out.append(finding(
                    "LATER_SEAL_OVER_SEAL" if is_seal else "LATER_SEAL_OVER_CONTENT",
                    f"the widget of {where} (revision {revision + 1}) overlaps "
                    f"{'the signature' if is_seal else 'the annotation'} "
                    f"{_field_name(other)!r} that was there when sealed",
                    f"签章后第 {revision + 1} 个版本的 {where} 外观覆盖了签章时已有的"
                    f"{'签章' if is_seal else '注释'} {_field_name(other)!r}"))
            if reserved:
                continue  # an empty field the author placed: filled where it stood
            try:
                if ink is None:
                    ink = page_ink(old.root, old_page)
            except InkUnknown as exc:
                out.append(finding(
                    "LATER_APPEARANCE_UNDECIDED",
                    f"the widget of {where} (revision {revision + 1}) is visible and the "
                    f"sealed page cannot be outlined ({exc}): whether it hides sealed "
                    "content cannot be decided",
                    f"签章后第 {revision + 1} 个版本的 {where} 外观可见，"
                    "无法判定其是否遮盖了签章时的页面内容",
                    "indeterminate"))
                continue
            if any(overlaps(rect, box) for box in ink):
                out.append(finding(
                    "LATER_SEAL_OVER_CONTENT",
                    f"the widget of {where} (revision {revision + 1}) lies over content the "
                    "page showed when it was sealed",
                    f"签章后第 {revision + 1} 个版本的 {where} 外观覆盖了签章时的页面内容"))
    return out
