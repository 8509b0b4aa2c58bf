"""The 骑缝章 (paging seal): the round red seal split across the right edges of all pages.

Stack the pages of a paper filing, fan them out and press the seal over their right edges:
each page keeps one vertical slice, and the slices line up into one seal again — so a page
cannot be swapped without the seal showing it. Here the slices are drawn in the *same*
incremental revision as the PAdES signature, so the ``/ByteRange`` covers them and the
document stays ONE seal, made by ONE signature of the USB-Key.

Shape (what :func:`add_paging_seal` writes and :func:`slice_problem` accepts, nothing else):

* N pages → N slices of equal width ``size / N``; slice ``i`` (0-based) shows the part
  ``[i·w, (i+1)·w]`` of the seal, so page 1 carries the seal's left edge and the pages laid
  side by side, left to right, reassemble it. Every slice sits flush with its page's right
  edge (CropBox, else MediaBox), vertically centred on the page.
* One ``/Stamp`` annotation per page, flags Print|ReadOnly|Locked|LockedContents, ``/NM``
  ``eseal paging seal i/N`` and ``/Contents`` ``骑缝章 i/N``, its ``/AP /N`` a form XObject
  whose content is exactly ``q 0 0 w S re W n S 0 0 S -i·w 0 cm /Im0 Do Q`` over exactly one
  resource: the image XObject the seal's own widget draws (shared, not a copy — it also
  proves the slices show this seal and nothing else).

Why stamps and not more widgets of the signature field: a signature field with several
widgets is legal PDF, but pyHanko's signer and validator assume one widget per signature
field, and our verifier's review of later revisions (:mod:`.modifications`) judges a
signature by its one widget. A stamp annotation is what viewers (poppler, pdf.js, Acrobat)
render as plain printed ink; in the signed revision it is covered by the signature like
any other object, and in any *later* revision pyHanko's difference policy allows no
annotation but a new signature widget, so adding, removing or changing a slice after the
seal is a modification the verifier reports (``MODIFIED_AFTER_SEALING``).

A one-page document is refused (``PAGING_SEAL_ONE_PAGE``): a paging seal binds pages to
each other, and on one page it would only repeat the seal. Rotated pages are refused too
(``PAGING_SEAL_ROTATED_PAGE``): their "right edge" on screen is another edge of the page's
user space, and a slice drawn there would be turned. Slices narrower than
:data:`MIN_SLICE_PT` would be invisible (``PAGING_SEAL_TOO_MANY_PAGES``: use a larger seal).
"""

from __future__ import annotations

from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.generic import pdf_name

from eseal.errors import Conflict, InvalidInput
from eseal.signing.page_ink import inherited, resolved

__all__ = ["MARKER", "MIN_SLICE_PT", "add_paging_seal", "page_list", "paging_findings",
           "slice_geometry", "slice_problem", "widget_images", "widget_of"]

MARKER = "eseal paging seal"  # letters and spaces: written literally (may_carry_slices)
MIN_SLICE_PT = 1.0
#: Print (4) | ReadOnly (64) | Locked (128) | LockedContents (512), ISO 32000-2 table 167
FLAGS = 4 | 64 | 128 | 512
IMAGE_NAME = "/Im0"
_ANNOT_KEYS = frozenset({"/Type", "/Subtype", "/Rect", "/F", "/NM", "/Contents", "/P", "/AP"})
_FORM_KEYS = frozenset({"/Type", "/Subtype", "/BBox", "/Resources", "/Length", "/Filter"})
_TOLERANCE = 0.01  # points: numbers go through a decimal writer and back


def _num(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def page_box(page: Any) -> tuple[float, float, float, float]:
    """The visible box (CropBox, else MediaBox, inherited) of a page dictionary."""
    box = inherited(page, "/CropBox") or inherited(page, "/MediaBox")
    if box is None or len(box) != 4:
        return (0.0, 0.0, 595.0, 842.0)  # what seal_placement assumes too
    x0, y0, x1, y1 = (float(v) for v in box)
    return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))


def _rotation(page: Any) -> int:
    try:
        return int(inherited(page, "/Rotate") or 0) % 360
    except (TypeError, ValueError):
        return -1


def slice_geometry(box: tuple[float, float, float, float], index: int, count: int,
                   size: float) -> tuple[tuple[float, float, float, float], bytes]:
    """(the slice's /Rect, its appearance content) for page ``index`` of ``count``."""
    width = size / count
    x1 = box[2]
    middle = (box[1] + box[3]) / 2
    rect = (round(x1 - width, 4), round(middle - size / 2, 4), round(x1, 4),
            round(middle + size / 2, 4))
    content = (f"q 0 0 {_num(width)} {_num(size)} re W n {_num(size)} 0 0 {_num(size)} "
               f"{_num(-index * width)} 0 cm {IMAGE_NAME} Do Q").encode("ascii")
    return rect, content


def check_paging(pages: list[Any], size: float) -> None:
    """Refuse a document the paging seal cannot be drawn on, before anything is written."""
    if len(pages) < 2:
        raise InvalidInput("PAGING_SEAL_ONE_PAGE",
                           "a paging seal (骑缝章) binds two or more pages; this document has one",
                           "骑缝章用于两页及以上的文件，本文件只有一页", field="paging_seal")
    if size / len(pages) < MIN_SLICE_PT:
        raise InvalidInput("PAGING_SEAL_TOO_MANY_PAGES",
                           f"{len(pages)} pages would cut a {size:g} pt seal into slices "
                           f"narrower than {MIN_SLICE_PT:g} pt; use a larger seal (size_pt)",
                           f"{len(pages)} 页会把 {size:g} 磅的印章切成不足 "
                           f"{MIN_SLICE_PT:g} 磅的窄条，请增大印章尺寸", field="paging_seal")
    for number, page in enumerate(pages, start=1):
        if _rotation(page) != 0:
            raise InvalidInput("PAGING_SEAL_ROTATED_PAGE",
                               f"page {number} is rotated; a paging seal is drawn on upright "
                               "pages only",
                               f"第 {number} 页是旋转页面，骑缝章只能加盖在未旋转的页面上",
                               field="paging_seal")
        for annot in resolved(page, "/Annots") or []:
            obj = annot.get_object()
            nm = resolved(obj, "/NM") if isinstance(obj, dict) else None
            if isinstance(nm, str) and nm.startswith(MARKER):
                raise Conflict("PAGING_SEAL_EXISTS",
                               "the document already carries a paging seal",
                               "文件上已有骑缝章", field="paging_seal")


def add_paging_seal(writer: Any, image: Any, size: float) -> int:
    """Add one slice of ``image`` (a pyHanko ``PdfImage``, the same instance the seal's
    widget draws, so both share one image XObject) to every page of ``writer``'s document,
    in the revision being written. Returns the number of pages."""
    from pyhanko.sign.validation.pdf_embedded import read_certification_data

    try:
        certified = read_certification_data(writer.prev) is not None
    except Exception:  # an unreadable certification: do not add annotations under it
        certified = True
    if certified:
        raise Conflict("PAGING_SEAL_CERTIFIED",
                       "the document is certified: its certification allows no new "
                       "annotations, so a paging seal would invalidate it",
                       "文件已认证签章，不允许新增注释，加盖骑缝章会使其失效", field="paging_seal")
    count = int(writer.root["/Pages"]["/Count"])
    refs = [writer.find_page_for_modification(i)[0] for i in range(count)]
    check_paging([r.get_object() for r in refs], size)
    image.set_writer(writer)
    image_ref = image.image_ref
    for index, page_ref in enumerate(refs):
        rect, content = slice_geometry(page_box(page_ref.get_object()), index, count, size)
        width = rect[2] - rect[0]
        form = generic.StreamObject({
            pdf_name("/Type"): pdf_name("/XObject"),
            pdf_name("/Subtype"): pdf_name("/Form"),
            pdf_name("/BBox"): generic.ArrayObject(
                map(generic.FloatObject, (0, 0, round(width, 4), round(size, 4)))),
            pdf_name("/Resources"): generic.DictionaryObject({
                pdf_name("/XObject"): generic.DictionaryObject({
                    pdf_name(IMAGE_NAME): image_ref})}),
        }, stream_data=content)
        label = f"{index + 1}/{count}"
        annot = generic.DictionaryObject({
            pdf_name("/Type"): pdf_name("/Annot"),
            pdf_name("/Subtype"): pdf_name("/Stamp"),
            pdf_name("/Rect"): generic.ArrayObject(map(generic.FloatObject, rect)),
            pdf_name("/F"): generic.NumberObject(FLAGS),
            pdf_name("/NM"): generic.TextStringObject(f"{MARKER} {label}"),
            pdf_name("/Contents"): generic.TextStringObject(f"骑缝章 {label}"),
            pdf_name("/P"): page_ref,
            pdf_name("/AP"): generic.DictionaryObject({
                pdf_name("/N"): writer.add_object(form)}),
        })
        writer.register_annotation(page_ref, writer.add_object(annot))
    return count


def page_list(root: Any) -> list[tuple[Any, Any]]:
    """(reference, page dictionary) of every page of a document, in order."""
    out: list[tuple[Any, Any]] = []
    stack: list[tuple[Any, int]] = [(root.raw_get("/Pages"), 0)]
    while stack:
        raw, depth = stack.pop()
        node = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
        if not isinstance(node, dict) or depth > 64 or len(out) > 100_000:
            continue
        if "/Kids" in node:
            stack.extend((kid, depth + 1) for kid in reversed(list(resolved(node, "/Kids"))))
        else:
            out.append((raw, node))
    return out


def may_carry_slices(data: bytes) -> bool:
    """Whether a file can hold an annotation marked as a slice: the marker written as our
    writer writes it (a literal string), or object streams we would have to open to know.
    The page walks that judge slices are skipped otherwise, so a 50,000-page filing is not
    walked for nothing. Sound because the marker is only a *claim*: an annotation that hides
    it (hex-escaped) claims nothing — it is one more annotation, judged as such (the intake
    refuses any that is not a signature widget, and later revisions are diffed)."""
    return MARKER.encode("ascii") in data or b"/ObjStm" in data


# -- the intake's side: is this annotation exactly a slice of this seal? ---------------------
def slice_height(annot: Any) -> float:
    """The seal size a (checked) slice was cut from: its /Rect's height."""
    rect = annot.raw_get("/Rect")
    return round(float(rect[3]) - float(rect[1]), 2)


def _close(a: Any, b: float) -> bool:
    try:
        return abs(float(a) - b) <= _TOLERANCE
    except (TypeError, ValueError):
        return False


def slice_problem(annot: Any, *, page: Any, index: int, count: int, images: set[Any],
                  is_new: Any) -> str | None:
    """Why ``annot`` (on page ``index`` of ``count``) is not exactly slice ``index`` of a
    paging seal drawing one of ``images`` (references ``(num, gen)`` of the image XObjects
    the new seal's widget draws); None if it is. ``is_new(ref)`` says whether an indirect
    object was written in the seal's revision."""
    if not isinstance(annot, generic.DictionaryObject):
        return "is not a dictionary"
    if set(annot) - _ANNOT_KEYS:
        return f"has entries {', '.join(sorted(set(annot) - _ANNOT_KEYS))}"
    label = f"{index + 1}/{count}"
    expected = {"/Type": "/Annot", "/Subtype": "/Stamp", "/NM": f"{MARKER} {label}",
                "/Contents": f"骑缝章 {label}"}
    for key, value in expected.items():
        raw = annot.raw_get(key) if key in annot else None
        if isinstance(raw, generic.IndirectObject) or raw != value:
            return f"has {key} {raw!r}, not {value!r}"
    flags = annot.raw_get("/F") if "/F" in annot else None
    if not isinstance(flags, int) or isinstance(flags, generic.IndirectObject) \
            or int(flags) != FLAGS:
        return f"has flags {flags!r}, not {FLAGS}"
    if _rotation(page) != 0:
        return "is on a rotated page"
    rect = annot.raw_get("/Rect") if "/Rect" in annot else None
    if not isinstance(rect, generic.ArrayObject) or len(rect) != 4:
        return "has no direct /Rect of four numbers"
    try:
        size = float(rect[3]) - float(rect[1])
    except (TypeError, ValueError):
        return "has a /Rect that is not numbers"
    if not 24 <= size <= 600:
        return f"is {size:g} pt high, not a seal size"
    want_rect, want_content = slice_geometry(page_box(page), index, count, size)
    if not all(_close(a, b) for a, b in zip(rect, want_rect, strict=True)):
        return (f"lies at {[float(v) for v in rect]}, not at the page's right edge "
                f"{list(want_rect)}")
    ap = annot.raw_get("/AP") if "/AP" in annot else None
    if not isinstance(ap, generic.DictionaryObject) or set(ap) != {"/N"}:
        return "has an appearance dictionary other than one /N"
    normal = ap.raw_get("/N")
    if not isinstance(normal, generic.IndirectObject) or not is_new(normal):
        return "has an appearance stream not written with the seal"
    form = normal.get_object()
    if not isinstance(form, generic.StreamObject) or set(form) - _FORM_KEYS \
            or form.raw_get("/Subtype") != "/Form":
        return "has an appearance that is not a plain form XObject"
    if resolved(form, "/Filter") not in (None, "/FlateDecode") or "/DecodeParms" in form:
        return "has an appearance stream with an unexpected filter"
    bbox = form.raw_get("/BBox")
    if not isinstance(bbox, generic.ArrayObject) or len(bbox) != 4 or not all(
            _close(a, b) for a, b in zip(bbox, (0, 0, want_rect[2] - want_rect[0], size),
                                         strict=True)):
        return "has an appearance box that is not the slice's"
    try:
        data = form.data
    except Exception:
        return "has an appearance stream that cannot be decoded"
    if data != want_content:
        return "draws something else than its slice of the seal"
    resources = form.raw_get("/Resources")
    xobjects = resources.raw_get("/XObject") if isinstance(
        resources, generic.DictionaryObject) and set(resources) == {"/XObject"} else None
    if not isinstance(xobjects, generic.DictionaryObject) or set(xobjects) != {IMAGE_NAME}:
        return "has resources other than the one seal image"
    image = xobjects.raw_get(IMAGE_NAME)
    if not isinstance(image, generic.IndirectObject) \
            or (image.idnum, image.generation) not in images:
        return "draws an image that is not the seal's own"
    return None


def widget_images(widget: Any, depth: int = 0) -> set[tuple[int, int]]:
    """References of the image XObjects a signature widget's normal appearance draws
    (through nested forms)."""
    found: set[tuple[int, int]] = set()
    if depth > 4 or not isinstance(widget, dict):
        return found
    stream = widget
    if depth == 0:
        ap = resolved(widget, "/AP")
        stream = resolved(ap, "/N") if isinstance(ap, dict) else None
        if not isinstance(stream, generic.StreamObject):
            return found
    resources = resolved(stream, "/Resources")
    xobjects = resolved(resources, "/XObject") if isinstance(resources, dict) else None
    if not isinstance(xobjects, dict):
        return found
    for key in xobjects:
        raw = xobjects.raw_get(key)
        obj = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
        if not isinstance(obj, generic.StreamObject):
            continue
        subtype = resolved(obj, "/Subtype")
        if subtype == "/Image" and isinstance(raw, generic.IndirectObject):
            found.add((raw.idnum, raw.generation))
        elif subtype == "/Form":
            found |= widget_images(obj, depth + 1)
    return found


def widget_of(sig_field: Any) -> Any:
    """A signature field's widget: the field itself (merged) or its one kid."""
    if "/Subtype" not in sig_field and "/Kids" in sig_field:
        kids = resolved(sig_field, "/Kids")
        if isinstance(kids, list) and len(kids) == 1:
            return kids[0].get_object()
    return sig_field


# -- the verifier's side: every slice on show belongs to a seal's own revision ----------------
def paging_findings(reader: Any, seals: list[tuple[int, Any]]
                    ) -> tuple[list[Any], dict[int, int]]:
    """Findings about annotations that present themselves as paging-seal slices, and the
    seals (signed revision → pages) that carry a complete paging seal. ``seals``: (signed
    revision, signature field) of every seal examined. A slice must be written in the very
    revision a seal signed, be exactly that seal's slice for its page (:func:`slice_problem`),
    and the seal must have one on every page; anything else shows seal ink no seal vouches
    for (invalid)."""
    from eseal.signing.structure import finding

    found: list[Any] = []
    pages = page_list(reader.root)
    count = len(pages)
    fields = dict(seals)
    placed: dict[int, list[int]] = {}
    heights: dict[int, set[float]] = {}
    for index, (_, page) in enumerate(pages):
        annots = resolved(page, "/Annots")
        for raw in annots if isinstance(annots, list) else []:
            annot = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
            name = resolved(annot, "/NM") if isinstance(annot, dict) else None
            if not (isinstance(name, str) and name.startswith(MARKER)):
                continue
            revision = reader.xrefs.get_introducing_revision(
                generic.Reference(raw.idnum, raw.generation)) \
                if isinstance(raw, generic.IndirectObject) else -1
            field = fields.get(revision)
            if field is None:
                problem = "was not drawn in the revision of any seal"
            else:
                def is_new(ref: Any, revision: int = revision) -> bool:
                    return bool(reader.xrefs.get_introducing_revision(
                        generic.Reference(ref.idnum, ref.generation)) == revision)

                problem = slice_problem(annot, page=page, index=index, count=count,
                                        images=widget_images(widget_of(field)),
                                        is_new=is_new)
                if problem is None:
                    placed.setdefault(revision, []).append(index)
                    heights.setdefault(revision, set()).add(slice_height(annot))
                    continue
                problem = f"is not that seal's slice {index + 1}/{count}: it {problem}"
            found.append(finding(
                "PAGING_SEAL_NOT_A_SEAL",
                f"page {index + 1} shows a paging-seal slice (骑缝章) that {problem}",
                f"第 {index + 1} 页的骑缝章切片不是签章的一部分"))
    complete: dict[int, int] = {}
    for revision, indices in placed.items():
        if sorted(indices) == list(range(count)) and len(heights[revision]) == 1:
            complete[revision] = count
        else:
            found.append(finding(
                "PAGING_SEAL_INCOMPLETE",
                f"the paging seal of revision {revision + 1} is not exactly one slice of one "
                f"seal on each of the {count} pages", "骑缝章并非在每一页上恰有同一印章的一个切片"))
    return found, complete
