"""The filing intake refuses drafts whose fields show one thing and hold another, and sealed
uploads whose earlier seal was painted over, given actions or re-rendered (issue 13, 1-3).

A draft whose text field *shows* "1,000 CNY" in its stored appearance but *holds* "9,999,999
CNY" is the shadow document that /NeedAppearances later reveals; the intake refuses it
(naming the field) instead of flattening it — see ``eseal.signing.draft_forms`` for why. The
sealed-upload path runs the verifier, so the attacks of test_verify_later_revisions on a
counterparty's earlier seal are refused there too.
"""

from __future__ import annotations

import asyncio
from io import BytesIO

import pytest
from hankokit import form_update, seal_pdf, timestamper
from pdfkit import make_form_pdf, make_pdf, stream_object
from pkikit import TestPki, make_pki
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from eseal.errors import InvalidInput
from eseal.signing.intake import EnterpriseSeals, check_draft, check_sealed_upload


@pytest.fixture(autouse=True)
def _real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESEAL_NOW", raising=False)


def _ap(content: bytes, resources: str = "<< /Font << /Helv {font} >> >>") -> bytes:
    return stream_object(content, f"/Type /XObject /Subtype /Form /BBox [0 0 228 20] "
                                  f"/Resources {resources}")


def _text(value: str, *, ap: str = " /AP << /N {ap} >>", rect: str = "72 400 300 420",
          extra: str = "") -> str:
    held = value if value.startswith("<") else f"({value})"  # hex strings as they are
    return (f"<< /FT /Tx /T (amount) /V {held} /DA (/Helv 12 Tf 0 g) /Type /Annot "
            f"/Subtype /Widget /Rect [{rect}] /F 4 /P {{page}}{ap}{extra} >>")


def _shows(text: bytes) -> dict[str, bytes | str]:
    return {"ap": _ap(b"/Tx BMC BT /Helv 12 Tf 2 6 Td (" + text + b") Tj ET EMC")}


# A composite (Type 0) font whose ToUnicode maps 2-byte codes to CJK characters:
# <0001> 营, <0002> 业, <0003>..<0005> 收 入 额 (a bfrange), <0010> 一, <0011> 千.
CMAP = (b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap "
        b"1 begincodespacerange <0000> <FFFF> endcodespacerange "
        b"4 beginbfchar <0001> <8425> <0002> <4E1A> <0010> <4E00> <0011> <5343> endbfchar "
        b"1 beginbfrange <0003> <0005> [<6536> <5165> <989D>] endbfrange "
        b"endcmap CMapName currentdict /CMap defineresource pop end end")
CJK = {
    "cjk": "<< /Type /Font /Subtype /Type0 /BaseFont /SimSun /Encoding /Identity-H "
           "/DescendantFonts [] /ToUnicode {cmap} >>",
    "cmap": stream_object(CMAP),
}
CJK_NO_MAP = {"cjk": "<< /Type /Font /Subtype /Type0 /BaseFont /SimSun "
                     "/Encoding /Identity-H /DescendantFonts [] >>"}


def _cjk_ap(hexcodes: bytes) -> bytes:
    return _ap(b"BT /C0 12 Tf 2 6 Td <" + hexcodes + b"> Tj ET",
               "<< /Font << /C0 {cjk} >> >>")


def _check_box(value: str, state: str) -> str:
    return (f"<< /FT /Btn /T (agree) /V /{value} /AS /{state} /Type /Annot /Subtype /Widget "
            "/Rect [72 300 90 318] /F 4 /P {page} /AP << /N << /Yes {on} /Off {off} >> >> >>")


BOX_STATES = {"on": _ap(b"q 0 g 4 4 10 10 re f Q", "<< >>"), "off": _ap(b"", "<< >>")}


def _radio(value: str, states: tuple[str, str]) -> dict[str, bytes | str]:
    kids = {f"kid{i}": (f"<< /Type /Annot /Subtype /Widget /Parent {{radio}} "
                        f"/Rect [{72 + 30 * i} 250 {90 + 30 * i} 268] /F 4 /P {{page}} "
                        f"/AS /{state} /AP << /N << /{name} {{on}} /Off {{off}} >> >> >>")
            for i, (name, state) in enumerate(zip(("One", "Two"), states, strict=True))}
    # the field is an object named "radio" (listed as "@radio") so its kids can point at it
    field = f"<< /FT /Btn /T (choice) /Ff 49152 /V /{value} /Kids [{{kid0}} {{kid1}}] >>"
    return {"radio": field, **kids, **BOX_STATES}


REFUSED: dict[str, tuple[str, list[str], dict[str, bytes | str], str]] = {
    # name: (expected code, fields, objects, form extra)
    "text-shows-other-amount": ("DRAFT_FIELD_APPEARANCE_MISMATCH",
                                [_text("9,999,999 CNY")], _shows(b"1,000 CNY"), ""),
    "text-value-without-appearance": ("DRAFT_FIELD_APPEARANCE_MISMATCH",
                                      [_text("9,999,999 CNY", ap="")], {}, ""),
    "text-shows-text-holds-nothing": ("DRAFT_FIELD_APPEARANCE_MISMATCH",
                                      [_text("")], _shows(b"1,000 CNY"), ""),
    "text-split-by-tj": ("DRAFT_FIELD_APPEARANCE_MISMATCH", [_text("9,999,999 CNY")],
                         {"ap": _ap(b"BT /Helv 12 Tf 2 6 Td [(1,0) -20 (00 CNY)] TJ ET")}, ""),
    "choice-shows-other-option": (
        "DRAFT_FIELD_APPEARANCE_MISMATCH",
        ["<< /FT /Ch /Ff 131072 /T (region) /Opt [(Fujian) (Beijing)] /V (Beijing) "
         "/Type /Annot /Subtype /Widget /Rect [72 350 300 370] /F 4 /P {page} "
         "/AP << /N {ap} >> >>"], _shows(b"Fujian"), ""),
    "check-box-value-on-appearance-off": ("DRAFT_FIELD_APPEARANCE_MISMATCH",
                                          [_check_box("Yes", "Off")], BOX_STATES, ""),
    "check-box-value-off-appearance-on": ("DRAFT_FIELD_APPEARANCE_MISMATCH",
                                          [_check_box("Off", "Yes")], BOX_STATES, ""),
    "radio-shows-the-other-button": ("DRAFT_FIELD_APPEARANCE_MISMATCH",
                                     ["@radio"], _radio("Two", ("One", "Off")), ""),
    "cjk-shows-other-characters": ("DRAFT_FIELD_APPEARANCE_MISMATCH",
                                   [_text("<FEFF84254E1A65365165989D>")],
                                   {**CJK, "ap": _cjk_ap(b"00100011")}, ""),
    "need-appearances": ("DRAFT_FORM_NEEDS_APPEARANCES", [_text("1,000 CNY")],
                         _shows(b"1,000 CNY"), "/NeedAppearances true"),
    "xfa": ("DRAFT_XFA_FORM", [_text("1,000 CNY")], _shows(b"1,000 CNY"),
            "/XFA [(template) (<template/>)]"),
    "composite-font-without-tounicode": ("DRAFT_FIELD_APPEARANCE_UNCHECKED", [_text("x")],
                                         {**CJK_NO_MAP, "ap": _cjk_ap(b"0001")}, ""),
    "re-encoded-simple-font": (
        "DRAFT_FIELD_APPEARANCE_UNCHECKED", [_text("1,000 CNY")],
        {"odd": "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                "/Encoding << /Differences [49 /nine] >> >>",
         "ap": _ap(b"BT /Odd 12 Tf 2 6 Td (1,000 CNY) Tj ET", "<< /Font << /Odd {odd} >> >>")},
        ""),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_a_draft_whose_fields_show_other_than_they_hold_is_refused_naming_the_field(
        name: str) -> None:
    code, fields, objects, extra = REFUSED[name]
    draft = make_form_pdf(fields, objects=objects, form_extra=extra)
    with pytest.raises(InvalidInput) as caught:
        check_draft(draft)
    err = caught.value
    assert (err.code, err.field, err.status) == (code, "file", 422), err.to_dict()
    assert err.message and err.message_zh and err.message != err.message_zh
    if code.startswith("DRAFT_FIELD"):
        assert err.details["form_field"] in err.message


ACCEPTED: dict[str, tuple[list[str], dict[str, bytes | str]]] = {
    "text-as-shown": ([_text("1,000 CNY")], _shows(b"1,000 CNY")),
    "text-split-by-tj": ([_text("1,000 CNY")],
                         {"ap": _ap(b"BT /Helv 12 Tf 2 6 Td [(1,0) -20 (00) ( CNY)] TJ ET")}),
    "text-escaped-parentheses": ([_text("\\(1,000\\) CNY")], _shows(b"\\(1,000\\) CNY")),
    "empty-text-field": ([_text("")], _shows(b"")),
    "hidden-widget": ([_text("9,999,999 CNY", rect="0 0 0 0")], _shows(b"1,000 CNY")),
    "cjk-through-tounicode": ([_text("<FEFF84254E1A65365165989D>")],
                              {**CJK, "ap": _cjk_ap(b"00010002000300040005")}),
    "check-box-on": ([_check_box("Yes", "Yes")], BOX_STATES),
    "check-box-off": ([_check_box("Off", "Off")], BOX_STATES),
    "radio-consistent": (["@radio"], _radio("Two", ("Off", "Two"))),
    "empty-signature-field": (["<< /FT /Sig /T (PartyA) /Type /Annot /Subtype /Widget "
                               "/Rect [400 80 560 240] /F 4 /P {page} >>"], {}),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
def test_a_draft_whose_fields_show_what_they_hold_is_accepted(name: str) -> None:
    fields, objects = ACCEPTED[name]
    info = check_draft(make_form_pdf(fields, objects=objects))
    assert info.pages == 1


# ---------------------------------------------------------------------------------------------
# sealed uploads: the verifier's refusals reach the intake


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return make_pki()


def _counter_sealed(pki: TestPki, data: bytes) -> bytes:
    other = pki.issue_seal(name="对方测试有限公司")
    return seal_pdf(data, other, pki, field_name="Counterparty", timestamp=True,
                    embed_validation_info=True, dss_in_signed_revision=True,
                    box=(400, 80, 560, 240))


def _painted_timestamp(pki: TestPki, data: bytes) -> bytes:
    from pyhanko.sign import fields, signers

    w = IncrementalPdfFileWriter(BytesIO(data))
    fields.append_signature_field(w, fields.SigFieldSpec("DocTS1", on_page=0,
                                                         box=(0, 0, 612, 792)))
    ts = signers.PdfTimeStamper(timestamper(pki), field_name="DocTS1")
    out = BytesIO()
    asyncio.run(ts.async_timestamp_pdf(w, "sha256", output=out))
    return out.getvalue()


def _action_timestamp(pki: TestPki, data: bytes) -> bytes:
    from pyhanko.sign import fields, signers

    w = IncrementalPdfFileWriter(BytesIO(data))
    fields.append_signature_field(w, fields.SigFieldSpec("DocTS1", on_page=0))
    widget = next(f.get_object() for f in w.root["/AcroForm"]["/Fields"]
                  if f.get_object().get("/T") == "DocTS1")
    widget[generic.pdf_name("/AA")] = generic.DictionaryObject({
        generic.pdf_name("/PO"): generic.DictionaryObject({
            generic.pdf_name("/S"): generic.pdf_name("/JavaScript"),
            generic.pdf_name("/JS"): generic.TextStringObject("app.alert('paid')")})})
    ts = signers.PdfTimeStamper(timestamper(pki), field_name="DocTS1")
    out = BytesIO()
    asyncio.run(ts.async_timestamp_pdf(w, "sha256", output=out))
    return out.getvalue()


def _default_appearance_changed(pki: TestPki, data: bytes) -> bytes:
    def red_zero_size(form: generic.DictionaryObject, _: object) -> None:
        form[generic.pdf_name("/DA")] = generic.TextStringObject("/Helv 0 Tf 1 0 0 rg")

    return form_update(data, red_zero_size)


ATTACKS = {
    "painted-document-timestamp": (_painted_timestamp, "TIMESTAMP_APPEARANCE_ADDED"),
    "page-open-javascript": (_action_timestamp, "ACTION_ADDED_AFTER_SEALING"),
    "default-appearance-changed": (_default_appearance_changed, "FORM_SETTINGS_CHANGED"),
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_the_intake_refuses_a_draft_whose_earlier_seal_was_tampered_with_after_sealing(
        pki: TestPki, name: str) -> None:
    """The counterparty sealed first; someone then changed the file in one of the ways the
    verifier refuses; our legal representative seals it: the upload is refused."""
    attack, finding_code = ATTACKS[name]
    base = make_form_pdf([_text("1,000 CNY")], objects=_shows(b"1,000 CNY")) \
        if name == "default-appearance-changed" else make_pdf().data
    draft = attack(pki, _counter_sealed(pki, base))
    check_draft(draft)  # the draft itself is well formed
    sealed = seal_pdf(draft, pki.seal, pki, timestamp=True, embed_validation_info=True,
                      dss_in_signed_revision=True)
    seals = EnterpriseSeals(uscc=pki.uscc, current=[], status={})
    with pytest.raises(InvalidInput) as caught:
        check_sealed_upload(draft, sealed, seals=seals, trust_roots=[pki.root.cert])
    err = caught.value
    assert err.code == "SEAL_INVALID", err.to_dict()
    assert finding_code in err.details["findings"], err.details
