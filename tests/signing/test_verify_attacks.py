"""The PDF signature attack corpus: every file here must be reported *invalid* (exit 1).

Generated at test time from one good seal (B-LT, revocation data inside the signed revision,
as eseal's signer makes it) on a "shadow document" (tests/pdfkit.py: it carries a hidden
optional-content layer, unused objects, a whole unused second catalog and raw object bytes
hidden in a stream). Research basis:

* Mladenov, Mainka, Meyer zu Selhausen, Grothe, Schwenk, "1 Trillion Dollar Refund – How To
  Spoof PDF Signatures" / "Vulnerability of PDF signatures" (CCS 2019): universal signature
  forgery (USF), incremental saving attack (ISA), signature wrapping (SWA);
* Mainka, Mladenov, Rohlmann, Schwenk, "Shadow Attacks: Hiding and Replacing Content in
  Signed PDFs" (NDSS 2021): hide, replace, hide-and-replace, including xref-only updates.

Each case names the finding code(s) that explain the verdict, so a regression that makes a
file "invalid for the wrong reason" is noticed too. Damaged files whose signature
dictionaries are still visible are reports (invalid), not errors.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from asn1crypto import cms
from hankokit import add_dss, seal_pdf
from pdfkit import SamplePdf, append_update, make_pdf, object_offset, stream_object, xref_entries
from pkikit import TestPki, make_pki

from eseal.signing.report import VerificationReport
from eseal.signing.verify import verify_pdf


@dataclass(frozen=True)
class Sealed:
    doc: SamplePdf
    data: bytes
    pki: TestPki

    @property
    def byte_range(self) -> tuple[int, int, int, int]:
        m = _BR.search(self.data)
        assert m is not None
        a, b, c, d = (int(x) for x in m.groups())
        return a, b, c, d


_BR = re.compile(rb"/ByteRange \[(\d+) (\d+) (\d+) (\d+)\]")
_BR_FIELD = re.compile(rb"/ByteRange \[[^\]]*\] *")


@pytest.fixture(autouse=True)
def _real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sealed files are made at the real time (pyHanko's signer reads the system clock),
    so the verifier's default "now" must be real too."""
    monkeypatch.delenv("ESEAL_NOW", raising=False)


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return make_pki()


def _seal(pki: TestPki, doc: SamplePdf) -> Sealed:
    data = seal_pdf(doc.data, pki.seal, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    return Sealed(doc, data, pki)


@pytest.fixture(scope="module")
def sealed(pki: TestPki) -> Sealed:
    return _seal(pki, make_pdf(pages=2))


@pytest.fixture(scope="module")
def sealed_form(pki: TestPki) -> Sealed:
    return _seal(pki, make_pdf(pages=1, with_form=True))


def verify(data: bytes, pki: TestPki) -> VerificationReport:
    return verify_pdf(data, trust_roots=[pki.root.cert])


def test_the_untouched_files_are_valid(sealed: Sealed, sealed_form: Sealed) -> None:
    """The baseline: without this, every 'invalid' below could be for the wrong reason."""
    for s in (sealed, sealed_form):
        report = verify(s.data, s.pki)
        assert report.verdict == "valid", report.all_problems()


# ---------------------------------------------------------------------------------------------
# byte surgery helpers


def same_length(data: bytes, old: bytes, new: bytes, *, last: bool = True) -> bytes:
    """Replace one occurrence of ``old`` by ``new`` padded with spaces to the same length, so
    that every xref offset stays right (the forger's usual trick)."""
    assert len(new) <= len(old), (new, old)
    at = data.rindex(old) if last else data.index(old)
    return data[:at] + new.ljust(len(old)) + data[at + len(old):]


def set_byte_range(s: Sealed, text: bytes) -> bytes:
    m = list(_BR_FIELD.finditer(s.data))[-1]
    field = m.group(0)
    assert len(text) <= len(field)
    return s.data[:m.start()] + text.ljust(len(field)) + s.data[m.end():]


def gap(s: Sealed) -> tuple[int, int]:
    _, a, b, _ = s.byte_range
    return a, b


def set_gap(s: Sealed, new: bytes) -> bytes:
    a, b = gap(s)
    assert len(new) <= b - a
    return s.data[:a] + new.ljust(b - a) + s.data[b:]


def trimmed_hex(s: Sealed) -> bytes:
    """The CMS hex without its zero padding (DER is self-delimiting)."""
    a, b = gap(s)
    hexstr = s.data[a + 1:b - 1]
    stripped = hexstr.rstrip(b"0")
    if len(stripped) % 2:
        stripped += b"0"
    return stripped


def object_body(data: bytes, num: int) -> bytes:
    """The body of the last definition of object ``num`` (between ``obj`` and ``endobj``)."""
    start = object_offset(data, num)
    body_start = data.index(b"obj", start) + 3
    return data[body_start:data.index(b"endobj", body_start)].strip()


def with_key(body: bytes, entry: bytes) -> bytes:
    """Insert ``entry`` right after the opening ``<<`` of a dictionary body."""
    assert body.startswith(b"<<")
    return b"<< " + entry + b" " + body[2:]


def replace_key(body: bytes, key: bytes, value: bytes) -> bytes:
    """Replace the value of a simple (non-nested) ``key`` in a dictionary body."""
    new, n = re.subn(re.escape(key) + rb"\s*(\[[^\]]*\]|\d+ \d+ R|/\w+|\([^)]*\))",
                     key + b" " + value, body, count=1)
    assert n == 1, (key, body[:200])
    return new


def text_stream(text: str) -> bytes:
    return stream_object(f"BT /F1 18 Tf 72 720 Td ({text}) Tj ET".encode(), compress=True)


def xref_only(data: bytes, pointers: dict[int, int], *, root: str | None = None) -> bytes:
    return append_update(data, {}, pointers=pointers, root=root)


# ---------------------------------------------------------------------------------------------
# the corpus: name -> (attack, finding codes of which at least one must be reported)

Attack = Callable[[Sealed], bytes]
CASES: dict[str, tuple[Attack, set[str]]] = {}


def case(name: str, *expected: str) -> Callable[[Attack], Attack]:
    def register(fn: Attack) -> Attack:
        CASES[name] = (fn, set(expected))
        return fn
    return register


# -- universal signature forgery: the signature dictionary itself is forged ----------------

@case("usf-contents-missing", "MALFORMED_SIGNATURE", "UNATTACHED_SIGNATURE")
def _(s: Sealed) -> bytes:
    return same_length(s.data, b"/Contents <", b"/Contentz <")


@case("usf-contents-empty", "MALFORMED_SIGNATURE", "CONTENTS_GAP_NOT_ONE_HEX_STRING")
def _(s: Sealed) -> bytes:
    return set_gap(s, b"<>")


@case("usf-contents-null", "MALFORMED_SIGNATURE", "CONTENTS_GAP_NOT_ONE_HEX_STRING")
def _(s: Sealed) -> bytes:
    return set_gap(s, b"null")


@case("usf-contents-all-zeros", "MALFORMED_SIGNATURE", "SIGNATURE_INVALID", "DIGEST_MISMATCH")
def _(s: Sealed) -> bytes:
    a, b = gap(s)
    return set_gap(s, b"<" + b"0" * (b - a - 2) + b">")


@case("usf-byterange-missing", "MALFORMED_SIGNATURE")
def _(s: Sealed) -> bytes:
    return set_byte_range(s, b"")


@case("usf-byterange-null", "MALFORMED_SIGNATURE", "BYTE_RANGE_MALFORMED")
def _(s: Sealed) -> bytes:
    return set_byte_range(s, b"/ByteRange null")


@case("usf-byterange-three-numbers", "BYTE_RANGE_MALFORMED", "MALFORMED_SIGNATURE")
def _(s: Sealed) -> bytes:
    a, b, c, _ = s.byte_range
    return set_byte_range(s, f"/ByteRange [{a} {b} {c}]".encode())


@case("usf-byterange-five-numbers", "BYTE_RANGE_MALFORMED", "MALFORMED_SIGNATURE")
def _(s: Sealed) -> bytes:
    a, b, c, d = s.byte_range
    return set_byte_range(s, f"/ByteRange [{a} {b} {c} {d} 0]".encode())


@case("usf-byterange-not-integers", "BYTE_RANGE_MALFORMED", "MALFORMED_SIGNATURE")
def _(s: Sealed) -> bytes:
    a, b, c, d = s.byte_range
    return set_byte_range(s, f"/ByteRange [{a} {b}.0 {c} ({d})]".encode())


@case("usf-byterange-wrong-offsets", "CONTENTS_GAP_NOT_ONE_HEX_STRING", "DIGEST_MISMATCH")
def _(s: Sealed) -> bytes:
    a, b, c, d = s.byte_range
    return set_byte_range(s, f"/ByteRange [{a} {b + 2} {c} {d}]".encode())


@case("usf-byterange-short-of-the-end", "BYTE_RANGE_NOT_A_REVISION", "DIGEST_MISMATCH")
def _(s: Sealed) -> bytes:
    a, b, c, d = s.byte_range
    return set_byte_range(s, f"/ByteRange [{a} {b} {c} {d - 200}]".encode())


@case("usf-byterange-beyond-the-end", "BYTE_RANGE_OUT_OF_FILE", "MALFORMED_SIGNATURE")
def _(s: Sealed) -> bytes:
    a, b, c, d = s.byte_range
    return set_byte_range(s, f"/ByteRange [{a} {b} {c} {d + 10_000}]".encode())


@case("usf-byterange-overlapping", "BYTE_RANGE_MALFORMED", "MALFORMED_SIGNATURE")
def _(s: Sealed) -> bytes:
    a, b, c, d = s.byte_range
    return set_byte_range(s, f"/ByteRange [{a} {b} {b - 100} {d + c - b + 100}]".encode())


@case("usf-byterange-negative", "BYTE_RANGE_NEGATIVE", "MALFORMED_SIGNATURE")
def _(s: Sealed) -> bytes:
    a, b, c, d = s.byte_range
    return set_byte_range(s, f"/ByteRange [{a} {b} -{c} {d}]".encode())


@case("usf-byterange-not-from-zero", "BYTE_RANGE_MALFORMED", "MALFORMED_SIGNATURE")
def _(s: Sealed) -> bytes:
    _, b, c, d = s.byte_range
    return set_byte_range(s, f"/ByteRange [9 {b - 9} {c} {d}]".encode())


# -- incremental saving attack: a later update changes what the document says -------------

@case("isa-page-content-replaced", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    return append_update(s.data, {s.doc.content_ids[0]: text_stream("revenue 9,999,999 CNY")})


@case("isa-annotation-added", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    page = s.doc.page_ids[0]
    annot = 900
    body = object_body(s.data, page)
    if b"/Annots" in body:
        body = re.sub(rb"/Annots\s*\[", b"/Annots [" + f"{annot} 0 R ".encode(), body)
    else:
        body = with_key(body, f"/Annots [{annot} 0 R]".encode())
    free_text = (b"<< /Type /Annot /Subtype /FreeText /Rect [72 600 540 700] "
                 b"/Contents (PAID IN FULL) /DA (/Helv 24 Tf 1 0 0 rg) /F 4 >>")
    return append_update(s.data, {page: body, annot: free_text})


@case("isa-catalog-changed", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    body = object_body(s.data, s.doc.catalog_id)
    body = with_key(body, b"/OpenAction << /S /JavaScript /JS (app.alert\\('paid'\\)) >>")
    return append_update(s.data, {s.doc.catalog_id: body})


@case("isa-document-info-changed", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    body = object_body(s.data, s.doc.info_id)
    return append_update(s.data, {s.doc.info_id: replace_key(body, b"/Title",
                                                             b"(Amended filing)")})


@case("isa-form-field-value-changed", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    assert s.doc.form_field_id is not None
    body = object_body(s.data, s.doc.form_field_id)
    return append_update(s.data, {s.doc.form_field_id: replace_key(body, b"/V",
                                                                   b"(9,999,999 CNY)")})


@case("isa-empty-signature-field-with-appearance", "UNSIGNED_FIELD_ADDED",
      "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    """A new, unsigned signature field whose widget paints over the page: pyHanko's diff
    policy tolerates it (signature fields may be added); a seal verifier must not."""
    page, field_id, ap = s.doc.page_ids[0], 901, 902
    page_body = object_body(s.data, page)
    page_body = re.sub(rb"/Annots\s*\[", b"/Annots [" + f"{field_id} 0 R ".encode(), page_body)
    acro_ref = re.search(rb"/AcroForm (\d+) 0 R", object_body(s.data, s.doc.catalog_id))
    assert acro_ref is not None
    acro_id = int(acro_ref.group(1))
    acro = re.sub(rb"/Fields\s*\[", b"/Fields [" + f"{field_id} 0 R ".encode(),
                  object_body(s.data, acro_id))
    field_body = (f"<< /FT /Sig /T (Approval) /Type /Annot /Subtype /Widget /F 4 "
                  f"/Rect [0 0 612 792] /P {page} 0 R /AP << /N {ap} 0 R >> >>").encode()
    appearance = stream_object(b"q 1 1 1 rg 0 600 612 192 re f Q BT /Helv 36 Tf 72 650 Td "
                               b"(PAID IN FULL) Tj ET",
                               "/Type /XObject /Subtype /Form /BBox [0 0 612 792]")
    return append_update(s.data, {page: page_body, acro_id: acro, field_id: field_body,
                                  ap: appearance})


@case("isa-xref-only-update-to-new-bytes", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    """New object bytes dropped after %%EOF, then an update with nothing but an xref
    section pointing the page content at them."""
    num = s.doc.content_ids[0]
    hidden = f"{num} 0 obj\n".encode() + text_stream("revenue 9,999,999 CNY") + b"\nendobj\n"
    return append_update(s.data, {}, raw_objects={num: hidden})


# -- signature wrapping: the unsigned gap is not just the signature --------------------------

@case("swa-extra-bytes-in-the-gap", "CONTENTS_GAP_NOT_ONE_HEX_STRING", "COVERAGE_UNCLEAR")
def _(s: Sealed) -> bytes:
    """The CMS without its zero padding still verifies, and the freed bytes of the gap now
    hold an extra dictionary entry: digest intact, gap not one hex string."""
    return set_gap(s, b"<" + trimmed_hex(s) + b"> /Name (Chief Financial Officer)")


@case("swa-gap-holds-a-second-object", "CONTENTS_GAP_NOT_ONE_HEX_STRING", "MALFORMED_SIGNATURE",
      "COVERAGE_UNCLEAR")
def _(s: Sealed) -> bytes:
    return set_gap(s, b"<" + trimmed_hex(s) + b">\n>>\nendobj\n950 0 obj\n<< /Evil true")


@case("swa-signed-part-relocated", "CONTENTS_GAP_NOT_ONE_HEX_STRING", "DIGEST_MISMATCH",
      "XREF_POINTS_OUTSIDE_UPDATE")
def _(s: Sealed) -> bytes:
    """Mladenov et al.'s wrapping: the second signed part moves towards the end and the byte
    range follows it; the space freed after the signature string holds a new object (inside a
    dictionary string, so the file still parses), and a final xref section points the page
    content at it and re-points every moved object."""
    _, a, b, c = s.byte_range
    first, sig, second = s.data[:a], s.data[a:b], s.data[b:b + c]
    evil = b"BT /F1 18 Tf 72 720 Td <" + b"revenue 9,999,999 CNY".hex().encode() + b"> Tj ET"
    num = s.doc.content_ids[0]
    inserted = b" /Evil (" + f"{num} 0 obj\n".encode() + stream_object(evil) + b"\nendobj\n)"
    shift = len(inserted)
    old_field = _BR_FIELD.search(second)
    assert old_field is not None
    moved = (second[:old_field.start()]
             + f"/ByteRange [0 {a} {b + shift} {c}]".encode().ljust(len(old_field.group(0)))
             + second[old_field.end():])
    tail = moved.rindex(b"startxref\n") + len(b"startxref\n")
    old_xref = int(moved[tail:moved.index(b"\n", tail)])
    moved = moved[:tail] + str(old_xref + shift).encode() + moved[moved.index(b"\n", tail):]
    data = first + sig + inserted + moved
    pointers = {n: off + shift for n, off in xref_entries(s.data).items() if off >= b}
    pointers[num] = a + len(sig) + len(b" /Evil (")
    return append_update(data, {}, pointers=pointers, prev=old_xref + shift,
                         trailer_from=s.data)


# -- shadow attacks: prepared before sealing, switched on afterwards -------------------------

@case("shadow-hide-optional-content-switched-on", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    """The overlay was drawn all along inside an OFF layer; the update only turns it ON by
    rewriting the (indirect) default optional-content configuration."""
    ocg = s.doc.ocg_id
    return append_update(s.data, {s.doc.ocg_config_id: f"<< /Order [{ocg} 0 R] /ON [{ocg} 0 R] "
                                                       f"/OFF [] >>".encode()})


@case("shadow-hide-overlay-drawn-by-extra-content", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    page = s.doc.page_ids[0]
    extra = 960
    body = replace_key(object_body(s.data, page), b"/Contents",
                       f"[{s.doc.content_ids[0]} 0 R {extra} 0 R]".encode())
    return append_update(s.data, {page: body, extra: stream_object(b"q /Ov1 Do Q")})


@case("shadow-replace-font", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    """Same text, other glyphs: the font now maps '1' to the glyph of '9'."""
    return append_update(s.data, {s.doc.font_id: (
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
        b"/Encoding << /Type /Encoding /Differences [49 /nine] >> >>")})


@case("shadow-replace-content-stream-reference", "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    page = s.doc.page_ids[0]
    body = replace_key(object_body(s.data, page), b"/Contents",
                       f"{s.doc.unused_content_id} 0 R".encode())
    return append_update(s.data, {page: body})


@case("shadow-hide-and-replace-new-trailer-root", "XREF_POINTS_OUTSIDE_UPDATE",
      "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    """Not one new object: a new xref section listing the second catalog, its page tree and
    content — all present, unused, when the document was sealed — and a trailer whose
    /Root is that catalog."""
    alt = s.doc.alt_catalog_id
    ids = (alt, alt + 1, alt + 2, s.doc.unused_content_id)
    return xref_only(s.data, {n: object_offset(s.data, n) for n in ids}, root=f"{alt} 0 R")


@case("shadow-hide-and-replace-xref-only-redirect", "XREF_POINTS_OUTSIDE_UPDATE",
      "MODIFIED_AFTER_SEALING")
def _(s: Sealed) -> bytes:
    """Not one new object: the page content's xref entry now points into signed bytes,
    at a complete object hidden inside an unused stream."""
    return xref_only(s.data, {s.doc.content_ids[0]: s.doc.payload_offset})


# -- bytes after the last %%EOF ---------------------------------------------------------------

@case("trailing-junk-after-eof", "TRAILING_BYTES")
def _(s: Sealed) -> bytes:
    return s.data + b"<html><script>alert('paid')</script></html>\n"


@case("trailing-second-eol", "TRAILING_BYTES")
def _(s: Sealed) -> bytes:
    return s.data + b"\n"


@case("trailing-nul-padding", "TRAILING_BYTES")
def _(s: Sealed) -> bytes:
    return s.data + b"\x00" * 16


@case("trailing-fake-eof-line", "PDF_BROKEN_XREF", "PDF_TRUNCATED", "TRAILING_BYTES")
def _(s: Sealed) -> bytes:
    return s.data + b"junk\n%%EOF\n"


@case("trailing-junk-longer-than-1k", "PDF_TRUNCATED", "TRAILING_BYTES")
def _(s: Sealed) -> bytes:
    return s.data + b"% padding\n" * 200


@case("trailing-junk-then-valid-update", "UPDATE_HAS_UNREFERENCED_BYTES")
def _(s: Sealed) -> bytes:
    return add_dss(s.data + b"% a second document could hide here\n", crls=[s.pki.crl()])


# -- damage ---------------------------------------------------------------------------------

@case("damaged-truncated", "PDF_TRUNCATED", "PDF_BROKEN_XREF")
def _(s: Sealed) -> bytes:
    return s.data[:-300]


@case("damaged-xref-keyword", "PDF_BROKEN_XREF")
def _(s: Sealed) -> bytes:
    at = s.data.rindex(b"\nxref\n")
    return s.data[:at] + b"\nxrex\n" + s.data[at + 6:]


@case("damaged-header", "PDF_NOT_PDF")
def _(s: Sealed) -> bytes:
    return b"%PDX" + s.data[4:]


@pytest.mark.parametrize("name", list(CASES))
def test_attack_is_reported_invalid(name: str, sealed: Sealed, sealed_form: Sealed) -> None:
    attack, expected = CASES[name]
    target = sealed_form if "form" in name else sealed
    data = attack(target)
    assert data != target.data
    report = verify(data, target.pki)
    found = report.problem_codes()
    assert report.verdict == "invalid", (name, report.all_problems())
    assert report.exit_code == 1
    assert found & expected, (name, found)


# ---------------------------------------------------------------------------------------------
# one byte changed anywhere in the signed range


def _positions(s: Sealed) -> dict[str, int]:
    data = s.data
    _, a, b, _ = s.byte_range
    doc = s.doc
    image_at = object_offset(data, doc.image_id)
    image_stream = data.index(b"stream", image_at) + 7
    content_at = object_offset(data, doc.content_ids[0])
    content_stream = data.index(b"stream", content_at) + 7
    crl_at = data.index(b"/CRLs")
    first_crl = int(re.search(rb"/CRLs \[ (\d+) 0 R", data[crl_at:]).group(1))  # type: ignore[union-attr]
    crl_stream = data.index(b"stream", object_offset(data, first_crl)) + 7
    sig_dict = data.rindex(b"/Type /Sig")
    return {
        "header": 1,
        "binary-comment": 10,
        "base-xref-table": data.index(b"\nxref\n") + 12,
        "font-dict": object_offset(data, doc.font_id) + 20,
        "image-stream-binary": image_stream + 20,
        "content-stream-flate": content_stream + 5,
        "hidden-payload": doc.payload_offset + 3,
        "catalog": object_offset(data, doc.catalog_id) + 12,
        "dss-crl-der": crl_stream + 30,
        "sig-dict-byterange-digit": data.rindex(b"/ByteRange [0 ") + 14,
        "sig-dict-type": sig_dict + 7,
        "sig-dict-subfilter": data.rindex(b"/ETSI.CAdES.detached") + 6,
        "sig-dict-signing-time": data.rindex(b"/M (D") + 8,
        "byte-before-gap": a - 1,
        "byte-after-gap": b,
        "last-startxref-digit": data.rindex(b"startxref\n") + 11,
        "final-eof": len(data) - 3,
    }


def _flip(data: bytes, at: int) -> bytes:
    old = data[at]
    new = old ^ 0x01 if chr(old).isalnum() else (ord("A") if old != ord("A") else ord("B"))
    return data[:at] + bytes([new]) + data[at + 1:]


def test_one_byte_changed_anywhere_in_the_signed_range_is_invalid(sealed: Sealed) -> None:
    _, a, b, c = sealed.byte_range
    assert c + b == len(sealed.data)  # the seal covers the whole file
    failures = []
    for where, at in _positions(sealed).items():
        assert not a <= at < b, where  # in the signed range, not in the gap
        report = verify(_flip(sealed.data, at), sealed.pki)
        if report.verdict != "invalid":
            failures.append((where, at, report.verdict, report.problem_codes()))
    assert not failures


def _cms_parts(s: Sealed) -> dict[str, int]:
    """Hex-digit offsets (in the file) of parts of the CMS inside the gap."""
    a, b = gap(s)
    der = bytes.fromhex(s.data[a + 1:b - 1].decode())
    info = cms.ContentInfo.load(der)
    sd = info["content"]
    si = sd["signer_infos"][0]
    serial = si["sid"].chosen["serial_number"].native
    certs = [c.chosen for c in sd["certificates"]]
    signer = next(c for c in certs if c.serial_number == serial)
    root_copy = next(c for c in certs if c.self_issued)
    tst = si["unsigned_attrs"][0]["values"][0]["content"]["signer_infos"][0]["signature"]

    def at(part: bytes) -> int:
        where = der.find(part)
        assert where >= 0
        return a + 1 + 2 * (where + len(part) // 2)

    return {
        "signer-certificate": at(signer.dump()),
        "signed-attributes": at(si["signed_attrs"].dump()[2:]),
        "signature-value": at(si["signature"].native),
        "timestamp-token-signature": at(tst.native),
        "embedded-root-copy": at(root_copy.dump()),
    }


def _flip_hex(data: bytes, at: int) -> bytes:
    new = b"1" if data[at:at + 1] != b"1" else b"2"
    return data[:at] + new + data[at + 1:]


@pytest.mark.parametrize(("part", "expected"), [
    ("signer-certificate", {"NO_SIGNING_CERTIFICATE", "SIGNATURE_INVALID"}),
    ("signed-attributes", {"NO_SIGNING_CERTIFICATE", "SIGNATURE_INVALID", "DIGEST_MISMATCH"}),
    ("signature-value", {"SIGNATURE_INVALID"}),
    ("timestamp-token-signature", {"TIMESTAMP_INVALID"}),
])
def test_one_byte_changed_in_the_signature_container_is_invalid(
        sealed: Sealed, part: str, expected: set[str]) -> None:
    """Outside the signed range but inside what the signature vouches for: the signer's
    certificate (bound by the signed signing-certificate attribute), the signed attributes,
    the signature value, and the timestamp token."""
    report = verify(_flip_hex(sealed.data, _cms_parts(sealed)[part]), sealed.pki)
    assert report.verdict == "invalid", report.all_problems()
    assert report.problem_codes() & expected, report.problem_codes()


def test_a_damaged_copy_of_the_root_in_the_signature_changes_nothing(sealed: Sealed) -> None:
    """The CMS certificate set is not signed; trust anchors come from the caller only, so an
    altered root copy in it is ignored rather than derailing path building."""
    data = _flip_hex(sealed.data, _cms_parts(sealed)["embedded-root-copy"])
    assert verify(data, sealed.pki).verdict == "valid"


def test_flate_stream_bytes_were_really_binary(sealed: Sealed) -> None:
    """Guard for the sample above: the content stream is compressed, not plain text."""
    at = object_offset(sealed.data, sealed.doc.content_ids[0])
    start = sealed.data.index(b"stream\n", at) + 7
    end = sealed.data.index(b"\nendstream", start)
    assert zlib.decompress(sealed.data[start:end]).startswith(b"BT /F1")


def test_a_later_writer_refreshing_only_the_modification_date_keeps_the_seal_valid(
        sealed: Sealed, pki: TestPki) -> None:
    """Every incremental writer (pyHanko included) refreshes /ModDate in /Info when it adds
    the next seal or a document timestamp a second later; that alone must not break the
    first seal, while any other /Info change (the Title case above) still does."""
    body = object_body(sealed.data, sealed.doc.info_id)
    moddate = b"(D:20300101000000Z)"
    body = replace_key(body, b"/ModDate", moddate) if b"/ModDate" in body else \
        with_key(body, b"/ModDate " + moddate)
    refreshed = append_update(sealed.data, {sealed.doc.info_id: body})
    report = verify(refreshed, pki)
    assert report.verdict == "valid", report.all_problems()
    both = append_update(sealed.data, {sealed.doc.info_id: replace_key(
        body, b"/Title", b"(Amended filing)")})
    assert verify(both, pki).verdict == "invalid"
