"""Does the sealed upload's one incremental update add a seal and nothing else?

A receipt says "this is the stored draft with this enterprise's seal". The upload must be the
draft's exact bytes plus one update, and that update may only do what adding a seal does:
the catalog gains the form, the DSS, extensions and metadata; the document information a
new producer and date; a page widget annotations; the form signature fields; an empty
signature field of the draft its value and appearance; and, with a paging seal
(骑缝章), every page exactly one slice of *this* seal's image at its right edge
(:func:`eseal.signing.paging_seal.slice_problem` pins the shape: place, flags, names, the
exact drawing, the one image, which must be the one the new seal's widget draws).
Anything else the update touches (a page's content, an annotation, a deleted object) could
change what the sealed document shows while the draft's bytes stay intact, so it is refused.
The seal's own validity is the verifier's business (:mod:`eseal.signing.verify`); this
module only reads the update.
"""

from __future__ import annotations

from typing import Any

from eseal.errors import Conflict, InvalidInput
from eseal.signing.draft_check import DraftInfo, read_pdf
from eseal.signing.paging_seal import may_carry_slices, page_list

__all__ = ["new_seal", "refuse"]


def refuse(code: str, en: str, zh: str, *, conflict: bool = False,
           details: dict[str, Any] | None = None) -> InvalidInput | Conflict:
    cls = Conflict if conflict else InvalidInput
    return cls(code, en, zh, field="file", details=details)


def new_seal(sealed: bytes, draft: DraftInfo) -> Any:
    """The one signature the update added (pyHanko's view), and that the update added nothing
    but that seal (its field and widget, the form entry, DSS and metadata)."""
    reader = read_pdf(sealed, "file")
    if reader.xrefs.total_revisions != draft.revisions + 1:
        added = reader.xrefs.total_revisions - draft.revisions
        raise refuse("ONE_UPDATE_REQUIRED",
                     f"the upload adds {added} revisions to the draft; exactly one incremental "
                     "update with the seal is accepted (seal at B-T or B-LT, without a "
                     "document timestamp)",
                     f"上传文件在草稿之后追加了 {added} 个版本；只接受一个包含签章的增量更新"
                     "（B-T 或 B-LT 级别，不含文档时间戳）",
                     details={"added_revisions": added})
    signatures = list(reader.embedded_signatures)
    new = [s for s in signatures if s.signed_revision == draft.revisions]
    if len(signatures) != draft.signatures + 1 or len(new) != 1:
        raise refuse("ONE_SEAL_REQUIRED",
                     f"the update must add exactly one seal (it has {len(new)} new signature(s) "
                     f"and the file {len(signatures)} in all, the draft had {draft.signatures})",
                     "增量更新必须恰好加盖一个签章", details={"new_signatures": len(new)})
    emb = new[0]
    if emb.sig_object_type != "/Sig":
        raise refuse("ONE_SEAL_REQUIRED", "the update adds a document timestamp, not a seal",
                     "增量更新添加的是文档时间戳而不是签章")
    problem = _only_a_seal(reader, draft.revisions - 1, _new_widget_images(emb),
                           paging=may_carry_slices(sealed))
    if problem is not None:
        raise refuse("UPDATE_NOT_ONLY_A_SEAL",
                     f"the update changes the draft besides adding the seal: {problem}",
                     "增量更新除加盖签章外还修改了草稿内容", details={"change": problem})
    return emb


def _new_widget_images(emb: Any) -> set[tuple[int, int]]:
    """The image XObjects the new seal's widget draws (what paging-seal slices may show)."""
    from eseal.signing.paging_seal import widget_images, widget_of

    try:
        return widget_images(widget_of(emb.sig_field))
    except Exception:  # an appearance we cannot walk shows no image a slice may share
        return set()


def _annot_refs(page: Any) -> list[Any]:
    annots = page.raw_get("/Annots") if "/Annots" in page else None
    return [_plain(a) for a in _refs(annots)] if annots is not None else []


def _paging_slices(reader: Any, old: Any, last: int,
                   images: set[tuple[int, int]]) -> tuple[set[Any], str | None]:
    """The paging-seal slices the update adds (references as plain tuples), or the first
    reason the annotations it appends to pages are not exactly one paging seal: a stamp
    that is not a slice of this seal in its place, or slices missing from some pages."""
    from pyhanko.pdf_utils import generic

    from eseal.signing.page_ink import resolved
    from eseal.signing.paging_seal import MARKER, slice_height, slice_problem

    new_pages, old_pages = page_list(reader.root), page_list(old.root)
    if len(new_pages) != len(old_pages):
        return set(), "the update adds or removes pages"

    def is_new(ref: Any) -> bool:
        return bool(reader.xrefs.get_introducing_revision(
            generic.Reference(ref.idnum, ref.generation)) == last)

    slices: set[Any] = set()
    heights: set[float] = set()
    per_page = []
    for index, ((_, page), (_, old_page)) in enumerate(zip(new_pages, old_pages,
                                                           strict=True)):
        before = set(_annot_refs(old_page))
        found = 0
        for item in _annot_refs(page):
            if item in before or not (isinstance(item, tuple) and item[0] == "ref"):
                continue
            ref = generic.IndirectObject(item[1], item[2], reader)
            annot = ref.get_object()
            subtype = resolved(annot, "/Subtype") if isinstance(annot, dict) else None
            if subtype is None or subtype == "/Widget":
                continue  # judged as a signature widget (or refused) elsewhere
            nm = resolved(annot, "/NM")
            if subtype != "/Stamp" and not (
                    isinstance(nm, str) and nm.startswith(MARKER)):
                continue  # not a slice: refused as "not a signature field" elsewhere
            if not is_new(ref):
                return set(), f"page {index + 1} gained annotation {item[1]} of the draft"
            problem = slice_problem(annot, page=page, index=index, count=len(new_pages),
                                    images=images, is_new=is_new)
            if problem is not None:
                return set(), (f"annotation {item[1]} on page {index + 1} is not the paging "
                               f"seal's slice {index + 1}/{len(new_pages)}: it {problem}")
            slices.add(item)
            heights.add(slice_height(annot))
            found += 1
        per_page.append(found)
    if len(heights) > 1:
        return set(), "the paging seal's slices are cut from seals of different sizes"
    if slices and per_page != [1] * len(per_page):
        where = [str(i + 1) for i, n in enumerate(per_page) if n != 1]
        return set(), ("a paging seal needs exactly one slice on every page; pages "
                       f"{', '.join(where)} have {'none' if 0 in per_page else 'more'}")
    return slices, None


# What the seal's update may touch in objects the draft already had: the catalog gains the
# form, the DSS, extensions and metadata (and a version bump); the document information gets
# a new producer and date; a page gains widget annotations; the form gains signature fields;
# an empty signature field of the draft gets its value and appearance.
_CATALOG_KEYS = frozenset({"/AcroForm", "/DSS", "/Extensions", "/Version", "/Metadata",
                           "/Perms"})
_INFO_KEYS = frozenset({"/Producer", "/ModDate"})
_FORM_KEYS = frozenset({"/Fields", "/SigFlags", "/DR", "/DA"})
_FILLED_FIELD_KEYS = frozenset({"/V", "/AP", "/AS", "/F", "/MK"})


def _plain(value: Any, depth: int = 0) -> Any:
    """A comparable view of a PDF value: references as (number, generation), not followed."""
    from pyhanko.pdf_utils import generic

    if depth > 32:
        return "<deep>"
    if isinstance(value, generic.IndirectObject):
        return ("ref", value.idnum, value.generation)
    if isinstance(value, generic.StreamObject):
        return ({k: _plain(v, depth + 1) for k, v in value.items()}, value.encoded_data)
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    return value


def _resolved(mapping: Any, key: str) -> Any:
    """``mapping[key]`` with references followed (pyHanko's ``get`` does not follow them)."""
    if key not in mapping:
        return None
    return mapping[key]


def _changed_keys(old: Any, new: Any) -> set[str]:
    keys = set(old) | set(new)
    return {k for k in keys if _plain(old.raw_get(k) if k in old else None)
            != _plain(new.raw_get(k) if k in new else None)}


def _refs(array: Any) -> list[Any]:
    from pyhanko.pdf_utils import generic

    items = array.get_object() if isinstance(array, generic.IndirectObject) else array
    if not isinstance(items, list):
        return []
    return [_plain(v) for v in items]


def _is_sig_field(obj: Any) -> bool:
    node = obj
    for _ in range(8):
        if not isinstance(node, dict):
            return False
        if node.get("/FT") == "/Sig":
            return True
        if "/Parent" not in node:
            return False
        node = node["/Parent"]
    return False


def _appended_only(old: Any, new: Any, what: str, check: Any, reader: Any,
                   allowed: frozenset[Any] | set[Any] = frozenset()) -> str | None:
    """``new`` is ``old`` with entries appended, each passing ``check`` or in ``allowed``
    (paging-seal slices already judged whole)."""
    from pyhanko.pdf_utils import generic

    old_refs, new_refs = _refs(old) if old is not None else [], _refs(new)
    if new_refs[:len(old_refs)] != old_refs:
        return f"existing entries of {what} were changed"
    for item in new_refs[len(old_refs):]:
        if not (isinstance(item, tuple) and item[0] == "ref"):
            return f"{what} gained a direct (non-signature) entry"
        if item in allowed:
            continue
        if not check(reader.get_object(generic.Reference(item[1], item[2]))):
            return f"{what} gained object {item[1]}, which is not a signature field"
    return None


def _only_a_seal(reader: Any, base: int, images: set[tuple[int, int]] | None = None,
                 *, paging: bool = True) -> str | None:
    """Describe the first change the last revision makes to the draft (revision ``base``)
    beyond adding one seal (and its paging seal, drawing one of ``images``); None if there
    is none."""
    last = reader.xrefs.total_revisions - 1
    if reader.xrefs.refs_freed_in_revision(last):
        return "objects of the draft were deleted"
    old = reader.get_historical_resolver(base)
    slices: set[Any] = set()
    if paging:  # else no appended annotation can be a slice: each must be a seal's widget
        slices, problem = _paging_slices(reader, old, last, images or set())
        if problem is not None:
            return problem
    old_trailer, new_trailer = old.trailer_view, reader.trailer_view
    for key in ("/Root", "/Info"):
        if key in old_trailer and _plain(old_trailer.raw_get(key)) != _plain(
                new_trailer.raw_get(key) if key in new_trailer else None):
            return f"the trailer's {key} was replaced"
    root_ref = _plain(new_trailer.raw_get("/Root"))
    annots_arrays = {_plain(page.raw_get("/Annots")) for _, page in page_list(old.root)
                     if "/Annots" in page} if slices else set()
    info_ref = _plain(old_trailer.raw_get("/Info")) if "/Info" in old_trailer else None
    old_root = old.root
    form_ref = _plain(old_root.raw_get("/AcroForm")) if "/AcroForm" in old_root else None
    old_form = _resolved(old_root, "/AcroForm")
    meta_ref = _plain(old_root.raw_get("/Metadata")) if "/Metadata" in old_root else None
    dss = _resolved(old_root, "/DSS")
    dss_refs: set[Any] = {_plain(old_root.raw_get("/DSS"))} if dss is not None else set()
    if isinstance(dss, dict):
        dss_refs |= {p for p in (_plain(dss.raw_get(k)) for k in dss) if isinstance(p, tuple)}
    form_fields_ref = _plain(old_form.raw_get("/Fields")) if isinstance(old_form, dict) \
        and "/Fields" in old_form else None

    new_root = reader.root
    if "/AcroForm" in new_root:
        problem = _appended_only(old_form.get("/Fields") if isinstance(old_form, dict)
                                 else None, new_root["/AcroForm"].get("/Fields", []),
                                 "the form's /Fields", _is_sig_field, reader)
        if problem:
            return problem
    for ref in sorted(reader.xrefs.explicit_refs_in_revision(last), key=lambda r: r.idnum):
        if reader.xrefs.get_introducing_revision(ref) > base:
            continue  # new objects matter only where an old object points at them
        key = ("ref", ref.idnum, ref.generation)
        try:
            before, after = old(ref), reader.get_object(ref)
        except Exception:
            return f"object {ref.idnum} cannot be read in both versions"
        what = f"object {ref.idnum}"
        if key == root_ref:
            extra = _changed_keys(before, after) - _CATALOG_KEYS
        elif key == info_ref:
            extra = _changed_keys(before, after) - _INFO_KEYS
        elif key == meta_ref or key in dss_refs:
            continue
        elif key == form_ref:
            extra = _changed_keys(before, after) - _FORM_KEYS
        elif key == form_fields_ref:
            problem = _appended_only(before, after, "the form's /Fields", _is_sig_field, reader)
            if problem:
                return problem
            continue
        elif isinstance(before, dict) and before.get("/Type") == "/Page":
            extra = _changed_keys(before, after) - {"/Annots"}
            problem = _appended_only(before.get("/Annots"), after.get("/Annots", []),
                                     f"page object {ref.idnum}'s /Annots",
                                     lambda a: a.get("/Subtype") == "/Widget"
                                     and _is_sig_field(a), reader, slices)
            if problem:
                return problem
        elif isinstance(before, dict) and _is_sig_field(before) and "/V" not in before:
            extra = _changed_keys(before, after) - _FILLED_FIELD_KEYS
        elif isinstance(before, list) and isinstance(after, list):
            problem = _appended_only(before, after, f"array {what}",
                                     lambda a: isinstance(a, dict) and _is_sig_field(a),
                                     reader, slices if key in annots_arrays else frozenset())
            if problem:
                return problem
            continue
        else:
            kind = before.get("/Type", type(before).__name__) if isinstance(before, dict) \
                else type(before).__name__
            return f"{what} ({kind}) of the draft was rewritten"
        if extra:
            return f"{what} changed {', '.join(sorted(extra))}"
    return None
