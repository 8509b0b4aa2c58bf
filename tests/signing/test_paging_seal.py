"""The paging seal (骑缝章): one PAdES seal whose revision also puts a slice of the seal at
every page's right edge. Sealed through the real service (uvicorn on loopback) by the
browser path and the CLI's token path; judged by our verifier, pdfsig, pyHanko and by the
pixels poppler renders; tampered shapes in the seal's revision are refused by the intake,
and later revisions that touch a slice are not VALID.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from judgekit import pdfsig_check
from pagingkit import (
    DPI,
    add_slices_later,
    differing_pixels,
    red_columns,
    redraw_slice_later,
    remove_slice_later,
    render_pages,
    seal_strips,
)
from pdfkit import make_pdf
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko_certvalidator import ValidationContext
from sitekit import Holder, ca_home, eseal_cli

from eseal.holder.client import sign_challenge
from eseal.holder.sealing import seal_image_for, seal_with_usbkey
from eseal.signing import paging_seal
from eseal.signing.sign import SealOptions
from eseal.signing.verify import verify_pdf
from eseal.token.client import UsbKey
from tests.conftest import NAME_A, USCC_A, LiveServer

PINS = {"zhang": "4913-7720", "wang": "6624-0195"}
SIZE = 120.0


@dataclass
class Site:
    url: str
    home: Path
    root: x509.Certificate
    http: httpx.Client
    work: Path

    def session(self, label: str) -> dict[str, str]:
        challenge = self.http.post("/auth/challenge").json()
        with UsbKey.open(label, PINS[label]) as key:
            answer = sign_challenge(challenge, key, origin=self.url)
        verified = self.http.post("/auth/verify", json=answer)
        assert verified.status_code == 200, verified.text
        return {"Authorization": f"Bearer {verified.json()['session']}"}

    def draft(self, pdf: bytes) -> int:
        answer = self.http.post("/filings", params={"title": "年度报告"}, content=pdf,
                                headers={**self.session("wang"),
                                         "Content-Type": "application/pdf"})
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"])

    def browser_seal(self, filing: int, **placement: Any) -> httpx.Response:
        """Prepare (with the paging seal), the USB-Key's one signature, finish."""
        rep = self.session("zhang")
        prepared = self.http.post(f"/filings/{filing}/browser-seal",
                                  json={"paging_seal": True, **placement}, headers=rep)
        if prepared.status_code != 200:
            return prepared
        body = prepared.json()
        with UsbKey.open("zhang", PINS["zhang"]) as key:
            signature = key.sign("seal", base64.b64decode(body["signed_attrs"]))
        return self.http.post(f"/filings/{filing}/browser-seal/finish", headers=rep,
                              json={"prepared_id": body["id"],
                                    "signature": base64.b64encode(signature).decode()})

    def sealed(self, filing: int) -> bytes:
        answer = self.http.get(f"/filings/{filing}/sealed", headers=self.session("wang"))
        assert answer.status_code == 200, answer.text
        return answer.content

    def token_seal(self, pdf: bytes, **options: Any) -> bytes:
        """The token path (what ``eseal sign --paging-seal`` runs), in this process."""
        with UsbKey.open("zhang", PINS["zhang"]) as usbkey:
            return seal_with_usbkey(pdf, usbkey=usbkey, server=self.url, options=SealOptions(
                paging=True, level="B-LT", **options)).sealed

    def upload(self, filing: int, sealed: bytes) -> httpx.Response:
        return self.http.post(f"/filings/{filing}/seal", content=sealed,
                              headers={**self.session("zhang"),
                                       "Content-Type": "application/pdf"})


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("paging")
    with ca_home(tmp / "home", enterprises=[(USCC_A, NAME_A, "张三")],
                 holders=[Holder("zhang", PINS["zhang"], USCC_A, "legal_rep", "张三"),
                          Holder("wang", PINS["wang"], USCC_A, "agent", "王五")]) as ca:
        server = LiveServer(ca.home, ca.port)
        work = tmp / "work"
        work.mkdir()
        try:
            with httpx.Client(base_url=server.url, timeout=120) as http:
                yield Site(server.url, ca.home, ca.root, http, work)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def seal_png(site: Site) -> bytes:
    with UsbKey.open("zhang", PINS["zhang"]) as key:
        return seal_image_for(key.certificate("seal"))


def _pyhanko_verdicts(data: bytes, root: x509.Certificate) -> list[Any]:
    """pyHanko's own validation, revocation data required, nothing fetched (the DSS only)."""
    from asn1crypto import x509 as asn1_x509

    anchor = asn1_x509.Certificate.load(root.public_bytes(serialization.Encoding.DER))
    reader = PdfFileReader(io.BytesIO(data))
    dss = DocumentSecurityStore.read_dss(reader)
    out = []
    for sig in reader.embedded_regular_signatures:
        vc = ValidationContext(trust_roots=[anchor], other_certs=list(dss.load_certs()),
                               crls=[r.get_object().data for r in dss.crls],
                               ocsps=[r.get_object().data for r in dss.ocsps],
                               allow_fetching=False, revocation_mode="require")
        out.append(validate_pdf_signature(sig, vc))
    return out


def _slices(data: bytes) -> list[list[str]]:
    """Per page, the /NM of its paging-seal slices."""
    reader = PdfFileReader(io.BytesIO(data))
    out = []
    for page in range(int(reader.root["/Pages"]["/Count"])):
        obj = reader.root["/Pages"]["/Kids"][page]
        names = [str(a.get_object().get("/NM")) for a in obj.get("/Annots", [])
                 if a.get_object().get("/Subtype") == "/Stamp"]
        out.append(names)
    return out


def _check_pixels(draft: bytes, sealed: bytes, seal_png: bytes) -> None:
    """Every page shows its own slice of the seal at the right edge and nothing else
    changed (page 1 also carries the seal itself, bottom right)."""
    before, after = render_pages(draft), render_pages(sealed)
    count = len(after)
    assert len(before) == count
    scale = DPI / 72
    strip_px = SIZE / count * scale
    expected = seal_strips(seal_png, round(SIZE * scale), count)
    profiles = []
    for index, (old, new) in enumerate(zip(before, after, strict=True)):
        width, height = new.size
        top, bottom = round(height / 2 - SIZE * scale / 2), round(height / 2 + SIZE * scale / 2)
        strip_x = width - round(strip_px) - 1
        columns = red_columns(new, strip_x, width, top - 2, bottom + 2)
        red = sum(columns)
        assert red >= max(5, expected[index] * 0.5), (index, red, expected)
        assert red <= expected[index] * 1.6 + 20, (index, red, expected)
        profiles.append(columns)
        keep_out = [(strip_x - 2, top - 3, width, bottom + 3)]
        if index == 0:  # the seal itself: 120 pt square, 56 pt from the right and bottom
            x0 = round((612 - 56 - SIZE) * scale) - 3
            keep_out.append((x0, height - round((56 + SIZE) * scale) - 3, x0 + round(
                SIZE * scale) + 6, height))
        assert differing_pixels(old, new, outside=keep_out) == 0, index
        assert sum(red_columns(new, 0, width // 2, 0, height)) == sum(
            red_columns(old, 0, width // 2, 0, height))  # no new red ink on the left
    for a, b in itertools.pairwise(profiles):
        assert a != b  # consecutive pages carry different parts of the seal


# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pages", [2, 3, 5])
def test_paging_seal_is_one_valid_seal_trusted_by_pdfsig_and_pyhanko_split_over_all_pages(
        site: Site, seal_png: bytes, pages: int) -> None:
    draft = make_pdf(pages=pages).data
    filing = site.draft(draft)
    done = site.browser_seal(filing)
    assert done.status_code == 200, done.text
    assert done.json()["receipt"]["pades_level"] == "B-LT"
    sealed = site.sealed(filing)
    assert _slices(sealed) == [[f"eseal paging seal {i}/{pages}"] for i in range(1, pages + 1)]
    assert paging_seal.may_carry_slices(sealed)  # the marker is written literally

    report = verify_pdf(sealed, trust_roots=[site.root])
    assert report.verdict == "valid", report.to_dict()
    assert len(report.seals) == 1
    assert "PAGING_SEAL" in {p.code for p in report.seals[0].problems}  # said, as info
    path = site.work / f"sealed-{pages}.pdf"
    path.write_bytes(sealed)
    judged = pdfsig_check(path, site.root, workdir=site.work)
    assert judged.signatures == 1 and judged.valid == [True] and judged.trusted == [True]
    assert judged.total_document_signed == [True]
    (status,) = _pyhanko_verdicts(sealed, site.root)
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.coverage.name == "ENTIRE_FILE"
    _check_pixels(draft, sealed, seal_png)


def test_eseal_verify_cli_says_valid_for_a_paging_sealed_filing(site: Site) -> None:
    filing = site.draft(make_pdf(pages=3).data)
    assert site.browser_seal(filing).status_code == 200
    path = site.work / "cli-verify.pdf"
    path.write_bytes(site.sealed(filing))
    root = site.work / "root.pem"
    root.write_bytes(site.root.public_bytes(serialization.Encoding.PEM))
    done = eseal_cli("verify", str(path), "--json", "--trust", str(root), home=site.home)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["verdict"] == "valid"


def test_filing_seal_cli_with_paging_seal_flag_gives_a_receipt(site: Site) -> None:
    filing = site.draft(make_pdf(pages=4).data)
    done = eseal_cli("filing", "seal", str(filing), "--token", "zhang", "--pin-stdin",
                     "--paging-seal", "--json", "--server", site.url, home=site.home,
                     stdin=PINS["zhang"] + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["receipt"]["filing_id"] == filing
    assert _slices(site.sealed(filing)) == [[f"eseal paging seal {i}/4"] for i in range(1, 5)]


def test_eseal_sign_paging_seal_flag_seals_a_file_with_one_signature(site: Site) -> None:
    source, out = site.work / "contract.pdf", site.work / "contract-sealed.pdf"
    source.write_bytes(make_pdf(pages=3).data)
    done = eseal_cli("sign", str(source), "-o", str(out), "--token", "zhang", "--pin-stdin",
                     "--paging-seal", "--server", site.url, home=site.home,
                     stdin=PINS["zhang"] + "\n")
    assert done.returncode == 0, done.stdout + done.stderr
    sealed = out.read_bytes()
    assert _slices(sealed) == [[f"eseal paging seal {i}/3"] for i in range(1, 4)]
    report = verify_pdf(sealed, trust_roots=[site.root])
    assert report.verdict == "valid" and len(report.seals) == 1, report.to_dict()
    one = site.work / "one.pdf"
    one.write_bytes(make_pdf(pages=1).data)
    refused = eseal_cli("sign", str(one), "-o", str(site.work / "one-sealed.pdf"), "--token",
                        "zhang", "--pin-stdin", "--paging-seal", "--server", site.url,
                        home=site.home, stdin=PINS["zhang"] + "\n")
    assert refused.returncode == 1
    assert refused.stderr.startswith("error PAGING_SEAL_ONE_PAGE [paging_seal]")
    assert not (site.work / "one-sealed.pdf").exists()


def test_one_page_draft_is_refused_with_a_coded_422_and_stays_a_draft(site: Site) -> None:
    filing = site.draft(make_pdf(pages=1).data)
    refused = site.browser_seal(filing)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "PAGING_SEAL_ONE_PAGE"
    assert refused.json()["field"] == "paging_seal" and refused.json()["message_zh"]
    assert site.http.get(f"/filings/{filing}", headers=site.session("wang")).json()[
        "status"] == "draft"


def test_a_certified_document_gets_no_paging_seal_before_the_token_signs(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    from sitekit import count_token_signatures

    from eseal.errors import Conflict

    with UsbKey.open("zhang", PINS["zhang"]) as usbkey:
        certified = seal_with_usbkey(make_pdf(pages=2).data, usbkey=usbkey, server=site.url,
                                     options=SealOptions(level="B-LT", certify=True)).sealed
    signatures = count_token_signatures(monkeypatch)
    with pytest.raises(Conflict) as refused:
        site.token_seal(certified, field_name="second")
    assert (refused.value.code, refused.value.field) == ("PAGING_SEAL_CERTIFIED", "paging_seal")
    assert signatures == []


def test_token_path_seal_with_paging_is_accepted_by_the_intake(site: Site) -> None:
    draft = make_pdf(pages=2).data
    filing = site.draft(draft)
    accepted = site.upload(filing, site.token_seal(draft))
    assert accepted.status_code == 200, accepted.text


def test_a_draft_with_a_drawn_paging_seal_no_signature_covers_is_refused(
        site: Site, seal_png: bytes) -> None:
    forged = add_slices_later(make_pdf(pages=3).data, seal_png)
    answer = site.http.post("/filings", params={"title": "年度报告"}, content=forged,
                            headers={**site.session("wang"), "Content-Type": "application/pdf"})
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "DRAFT_PAGING_SEAL_UNSIGNED"
    assert answer.json()["field"] == "file"


def test_a_second_paging_seal_is_refused_the_first_stays(site: Site,
                                                        paging_sealed: bytes) -> None:
    filing = site.draft(paging_sealed)  # a sealed document is a draft for the next seal
    refused = site.browser_seal(filing)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "PAGING_SEAL_EXISTS"


# -- the seal's own revision carries something else than exactly the paging seal --------------
def _shifted(geometry: Callable[..., Any]) -> Callable[..., Any]:
    def wrong(box: Any, index: int, count: int, size: float) -> Any:
        rect, content = geometry(box, index, count, size)
        return (rect[0] - 40, rect[1], rect[2] - 40, rect[3]), content  # off the edge
    return wrong


def _texted(geometry: Callable[..., Any]) -> Callable[..., Any]:
    def wrong(box: Any, index: int, count: int, size: float) -> Any:
        rect, content = geometry(box, index, count, size)
        return rect, content + b" BT /Helv 9 Tf 0 0 Td (VOID) Tj ET"
    return wrong


def _swapped(geometry: Callable[..., Any]) -> Callable[..., Any]:
    def wrong(box: Any, index: int, count: int, size: float) -> Any:
        return geometry(box, (index + 1) % count, count, size)
    return wrong


def _other_image(add: Callable[..., Any]) -> Callable[..., Any]:
    from pyhanko.pdf_utils.images import PdfImage

    def wrong(writer: Any, image: Any, size: float) -> Any:
        return add(writer, PdfImage(Image.new("RGBA", (60, 60), (224, 0, 15, 255))), size)
    return wrong


def _extra_annotation(add: Callable[..., Any]) -> Callable[..., Any]:
    def wrong(writer: Any, image: Any, size: float) -> Any:
        count = add(writer, image, size)
        page_ref, _ = writer.find_page_for_modification(1)
        note = writer.add_object(generic.DictionaryObject({
            generic.pdf_name("/Type"): generic.pdf_name("/Annot"),
            generic.pdf_name("/Subtype"): generic.pdf_name("/FreeText"),
            generic.pdf_name("/Rect"): generic.ArrayObject(map(generic.FloatObject,
                                                               (72, 72, 300, 100))),
            generic.pdf_name("/Contents"): generic.TextStringObject("金额改为 1,000,000"),
            generic.pdf_name("/DA"): generic.TextStringObject("/Helv 12 Tf 0 g"),
        }))
        writer.register_annotation(page_ref, note)
        return count
    return wrong


def _missing_page(add: Callable[..., Any]) -> Callable[..., Any]:
    def wrong(writer: Any, image: Any, size: float) -> Any:
        count = add(writer, image, size)
        page_ref, _ = writer.find_page_for_modification(count - 1)
        page = page_ref.get_object()
        page[generic.pdf_name("/Annots")] = generic.ArrayObject(
            a for a in page["/Annots"] if a.get_object().get("/Subtype") != "/Stamp")
        writer.update_container(page)
        return count
    return wrong


@pytest.mark.parametrize(("target", "twist", "why"), [
    ("slice_geometry", _shifted, "not at the page's right edge"),
    ("slice_geometry", _texted, "draws something else"),
    ("slice_geometry", _swapped, "draws something else"),
    ("add_paging_seal", _other_image, "not the seal's own"),
    ("add_paging_seal", _extra_annotation, "not a signature field"),
    ("add_paging_seal", _missing_page, "exactly one slice on every page"),
])
def test_intake_refuses_a_seal_revision_with_anything_but_exactly_the_paging_seal(
        site: Site, monkeypatch: pytest.MonkeyPatch, target: str,
        twist: Callable[..., Any], why: str) -> None:
    """The USB-Key really signs these revisions: only the intake's reading stops them."""
    from eseal.signing import sign

    draft = make_pdf(pages=3).data
    filing = site.draft(draft)
    if target == "add_paging_seal":
        monkeypatch.setattr(sign, "add_paging_seal", twist(paging_seal.add_paging_seal))
    else:
        monkeypatch.setattr(paging_seal, "slice_geometry", twist(paging_seal.slice_geometry))
    sealed = site.token_seal(draft)
    monkeypatch.undo()
    refused = site.upload(filing, sealed)
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "UPDATE_NOT_ONLY_A_SEAL"
    assert why in refused.json()["details"]["change"], refused.json()
    assert site.http.get(f"/filings/{filing}", headers=site.session("wang")).json()[
        "status"] == "draft"


# -- later revisions that touch the paging seal --------------------------------------------
@pytest.fixture(scope="module")
def paging_sealed(site: Site) -> bytes:
    filing = site.draft(make_pdf(pages=3).data)
    assert site.browser_seal(filing).status_code == 200
    return site.sealed(filing)


def test_a_paging_seal_added_in_a_later_revision_is_not_valid(
        site: Site, seal_png: bytes) -> None:
    draft = make_pdf(pages=3).data
    plain = seal_with_plain_token(site, draft)
    assert verify_pdf(plain, trust_roots=[site.root]).verdict == "valid"
    forged = add_slices_later(plain, seal_png)
    report = verify_pdf(forged, trust_roots=[site.root])
    assert report.verdict == "invalid", report.to_dict()
    assert {"MODIFIED_AFTER_SEALING", "PAGING_SEAL_NOT_A_SEAL"} <= {
        p.code for p in report.all_problems()}


def test_a_paging_seal_drawn_before_a_plain_seal_is_not_valid(
        site: Site, seal_png: bytes) -> None:
    """The slices are signed (the seal covers them), but no seal made them: ink that
    presents itself as a seal without being one."""
    drawn = add_slices_later(make_pdf(pages=3).data, seal_png)
    sealed = seal_with_plain_token(site, drawn)
    report = verify_pdf(sealed, trust_roots=[site.root])
    assert report.verdict == "invalid", report.to_dict()
    assert "PAGING_SEAL_NOT_A_SEAL" in {p.code for p in report.all_problems()}
    assert "PAGING_SEAL" not in {p.code for p in report.seals[0].problems}


def seal_with_plain_token(site: Site, pdf: bytes) -> bytes:
    with UsbKey.open("zhang", PINS["zhang"]) as usbkey:
        return seal_with_usbkey(pdf, usbkey=usbkey, server=site.url,
                                options=SealOptions(level="B-LT")).sealed


@pytest.mark.parametrize("change", ["remove", "redraw_text", "redraw_elsewhere"])
def test_a_slice_removed_or_redrawn_after_sealing_is_not_valid(
        site: Site, paging_sealed: bytes, change: str) -> None:
    assert verify_pdf(paging_sealed, trust_roots=[site.root]).verdict == "valid"
    if change == "remove":
        tampered = remove_slice_later(paging_sealed, 1)
    elif change == "redraw_text":
        tampered = redraw_slice_later(paging_sealed, 1, b"BT /Helv 9 Tf 0 0 Td (VOID) Tj ET")
    else:
        tampered = redraw_slice_later(paging_sealed, 1,
                                      b"q 0 0 40 120 re W n 120 0 0 120 0 0 cm /Im0 Do Q")
    report = verify_pdf(tampered, trust_roots=[site.root])
    assert report.verdict == "invalid", report.to_dict()
    codes = {p.code for p in report.all_problems()}
    assert "MODIFIED_AFTER_SEALING" in codes
    assert codes & {"PAGING_SEAL_NOT_A_SEAL", "PAGING_SEAL_INCOMPLETE"}, codes
