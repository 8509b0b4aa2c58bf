"""Filings over HTTP against a live ``eseal serve``: an agent submits a draft, the legal
representative seals it with their USB-Key and uploads it, the service answers a receipt it
signs with its own TSA key.

Everyone logs in with their USB-Key (``eseal.holder.client``). What the service must refuse — a file
that is not the stored draft plus one seal, a seal by another enterprise or with a frozen or
renewed-away certificate, an agent sealing, bad or oversized input — is refused with a code,
audited, and leaves nothing stored. The receipt is checked by ``openssl ts -verify`` as well
as by our own ``verify_receipt``.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hankokit import rewrite_pdf
from pdfkit import break_startxref, make_form_pdf, make_pdf, stream_object
from pkikit import uscc_with_check
from sitekit import Holder, ca_home, eseal_cli, seal_with_token
from sqlalchemy import func, select

from eseal.ca.authority import Authority
from eseal.cli import run
from eseal.errors import EsealError
from eseal.holder.client import EsealClient
from eseal.holder.sealing import http_timestamper
from eseal.settings import Settings
from eseal.signing.receipts import canonical_json, verify_receipt
from eseal.store import open_database
from eseal.store.models import AuditEvent
from eseal.store.models_filings import Filing, FilingDocument, FilingReceipt
from eseal.token.client import UsbKey
from tests.conftest import NAME_A, NAME_B, USCC_A, USCC_B, LiveServer

USCC_C = uscc_with_check("91440300MA5FPXQ12")
NAME_C = "深圳测试印章有限公司"
LIMIT = 12 * 1024 * 1024  # above the 50,000-page sample (9.5 MB)
ACTOR = "officer:test"
PINS = {"zhang": "4913-7720", "wang": "6624-0195", "li": "8802-1536", "chen": "3071-5548"}
HOLDERS = {"zhang": (USCC_A, "legal_rep", "张三"), "wang": (USCC_A, "agent", "王五"),
           "li": (USCC_B, "legal_rep", "李四"), "chen": (USCC_C, "legal_rep", "陈六")}


@dataclass
class Desk:
    home: Path
    settings: Settings
    server: LiveServer
    root: x509.Certificate
    work: Path
    sessions: dict[str, EsealClient] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def login(self, label: str) -> EsealClient:
        if label not in self.sessions:
            api = EsealClient(self.url)
            api.login_with_token(label, PINS[label])
            self.sessions[label] = api
        return self.sessions[label]

    def http(self, label: str | None) -> httpx.Client:
        headers = {}
        if label is not None:
            headers["Authorization"] = f"Bearer {self.login(label).session}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    def post(self, label: str | None, path: str, data: bytes, **params: str) -> httpx.Response:
        with self.http(label) as http:
            return http.post(path, content=data, params=params or None,
                             headers={"Content-Type": "application/pdf"})

    def get(self, label: str | None, path: str) -> httpx.Response:
        with self.http(label) as http:
            return http.get(path)

    def count(self, model: Any, *where: Any) -> int:
        db = open_database(self.settings.database)
        with db.read() as s:
            return int(s.execute(select(func.count()).select_from(model).where(*where))
                       .scalar_one())

    def audit(self, action: str) -> list[AuditEvent]:
        db = open_database(self.settings.database)
        with db.read() as s:
            return list(s.execute(select(AuditEvent).where(AuditEvent.action == action)
                                  .order_by(AuditEvent.id)).scalars())

    def new_draft(self, label: str = "wang", pages: int = 2) -> tuple[int, bytes]:
        data = make_pdf(pages=pages).data
        answer = self.post(label, "/filings", data, title="2025 年度报告")
        assert answer.status_code == 201, answer.text
        return int(answer.json()["id"]), data

    def seal(self, label: str, pdf: bytes, level: str = "B-LT") -> bytes:
        return seal_with_token(pdf, label, PINS[label], server=self.url, level=level,
                               reason="同意")


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    tmp = tmp_path_factory.mktemp("filings")
    with ca_home(tmp / "home",
                 enterprises=[(USCC_A, NAME_A, "张三"), (USCC_B, NAME_B, "李四"),
                              (USCC_C, NAME_C, "陈六")],
                 holders=[Holder(label, PINS[label], uscc, role, holder)
                          for label, (uscc, role, holder) in HOLDERS.items()],
                 toml=f"upload_limit_bytes = {LIMIT}\n") as ca:
        work = tmp / "work"
        work.mkdir()
        server = LiveServer(ca.home, ca.port)
        d = Desk(ca.home, ca.settings, server, ca.root, work)
        try:
            yield d
        finally:
            for api in d.sessions.values():
                api.close()
            server.stop()


def _cli(desk: Desk, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return eseal_cli(*args, home=desk.home, stdin=stdin, cwd=desk.work)


# ---------------------------------------------------------------------------------------------
def test_agent_submits_legal_rep_seals_and_the_service_signs_the_receipt(desk: Desk) -> None:
    draft_path = desk.work / "report.pdf"
    draft_path.write_bytes(make_pdf(pages=3).data)
    done = _cli(desk, "filing", "submit", str(draft_path), "--token", "wang", "--pin-stdin",
                "--server", desk.url, "--title", "2025 年度报告", "--json",
                stdin=PINS["wang"] + "\n")
    assert done.returncode == 0, done.stderr
    filing = json.loads(done.stdout)
    fid = filing["id"]
    assert (filing["status"], filing["title"]) == ("draft", "2025 年度报告")
    assert filing["enterprise"] == {"uscc": USCC_A, "name": NAME_A}
    assert desk.get("zhang", f"/filings/{fid}/draft").content == draft_path.read_bytes()

    receipt_path, sealed_path = desk.work / "receipt.json", desk.work / "sealed.pdf"
    done = _cli(desk, "filing", "seal", str(fid), "--token", "zhang", "--pin", PINS["zhang"],
                "--server", desk.url, "-o", str(sealed_path), "--receipt-out",
                str(receipt_path))
    assert done.returncode == 0, done.stderr
    assert f"filing {fid} accepted" in done.stdout
    receipt = json.loads(receipt_path.read_text(encoding="utf-8"))
    body = receipt["receipt"]
    sealed = sealed_path.read_bytes()
    assert sealed.startswith(draft_path.read_bytes())
    assert body["filing_id"] == fid and body["enterprise"] == {"uscc": USCC_A, "name": NAME_A}
    assert body["sealed_sha256"] == hashlib.sha256(sealed).hexdigest()
    assert body["pades_level"] == "B-LT" and body["sealed_by"].startswith("legal_rep:张三#")
    assert body["submitted_by"].startswith("agent:王五#")

    # the service keeps what it accepted and serves the same receipt again
    assert desk.get("wang", f"/filings/{fid}/sealed").content == sealed
    assert desk.get("wang", f"/filings/{fid}/receipt").json() == receipt
    assert desk.get("wang", f"/filings/{fid}").json()["status"] == "accepted"

    # the receipt: our verifier, the API, openssl (an independent RFC 3161 implementation)
    check = verify_receipt(receipt, trust_roots=[desk.root])
    assert check.valid and check.tsa and "Timestamping" in check.tsa
    assert httpx.post(f"{desk.url}/verify/receipt", json=receipt).json()["valid"] is True
    forged = json.loads(json.dumps(receipt))
    forged["receipt"]["sealed_sha256"] = "0" * 64
    bad = verify_receipt(forged, trust_roots=[desk.root])
    assert not bad.valid and "RECEIPT_ALTERED" in bad.problems
    token = desk.work / "token.der"
    token.write_bytes(base64.b64decode(receipt["signature"]["token"]))
    data = desk.work / "body.json"
    data.write_bytes(canonical_json(body))
    root_pem = desk.work / "root.pem"
    root_pem.write_bytes(desk.root.public_bytes(serialization.Encoding.PEM))
    ossl = subprocess.run(["openssl", "ts", "-verify", "-data", str(data), "-in", str(token),
                           "-token_in", "-CAfile", str(root_pem)], capture_output=True,
                          text=True)
    assert "Verification: OK" in ossl.stdout, ossl.stdout + ossl.stderr
    data.write_bytes(canonical_json(forged["receipt"]))
    ossl = subprocess.run(["openssl", "ts", "-verify", "-data", str(data), "-in", str(token),
                           "-token_in", "-CAfile", str(root_pem)], capture_output=True,
                          text=True)
    assert "Verification: OK" not in ossl.stdout

    # eseal verify FILE --receipt R: the seal, the receipt, and that they belong together
    assert run(["verify", str(sealed_path), "--receipt", str(receipt_path), "--trust",
                str(root_pem)]) == 0
    other = desk.work / "other-sealed.pdf"
    other.write_bytes(desk.seal("zhang", make_pdf().data))
    assert run(["verify", str(other), "--receipt", str(receipt_path), "--trust",
                str(root_pem)]) == 1

    # once accepted, never again; every step is in the audit log
    again = desk.post("zhang", f"/filings/{fid}/seal", sealed)
    assert (again.status_code, again.json()["code"]) == (409, "FILING_ALREADY_SEALED")
    created = [e for e in desk.audit("filing.create") if e.outcome == "ok"]
    assert any(e.details.get("filing_id") == fid and e.actor.startswith("agent:")
               for e in created)
    assert any(e.target == str(fid) and e.actor.startswith("legal_rep:")
               for e in desk.audit("filing.download"))
    seals = [e for e in desk.audit("filing.seal") if e.target == str(fid)]
    assert [e.outcome for e in seals] == ["ok", "refused"]
    assert seals[0].details["sha256"] == body["sealed_sha256"]


def test_an_agent_cannot_seal_and_other_enterprises_see_nothing(desk: Desk) -> None:
    fid, draft = desk.new_draft()
    sealed = desk.seal("zhang", draft)
    refused = desk.post("wang", f"/filings/{fid}/seal", sealed)
    assert (refused.status_code, refused.json()["code"]) == (403, "ROLE_FORBIDDEN")
    assert any(e.outcome == "refused" and e.target == str(fid) and e.actor.startswith("agent:")
               and e.details["code"] == "ROLE_FORBIDDEN" for e in desk.audit("filing.seal"))
    for path in (f"/filings/{fid}", f"/filings/{fid}/draft"):
        assert desk.get("li", path).status_code == 404
    assert desk.post("li", f"/filings/{fid}/seal", sealed).status_code == 404
    assert fid not in [f["id"] for f in desk.get("li", "/filings").json()["filings"]]
    assert fid in [f["id"] for f in desk.get("zhang", "/filings").json()["filings"]]
    assert desk.post(None, "/filings", draft).status_code == 401
    assert desk.get(None, f"/filings/{fid}/draft").status_code == 401
    assert desk.count(FilingDocument, FilingDocument.filing_id == fid) == 1
    assert desk.get("zhang", f"/filings/{fid}").json()["status"] == "draft"


def test_absurd_filing_ids_are_a_422_naming_the_field_not_a_500(desk: Desk) -> None:
    for path in ("/filings/99999999999999999999", "/filings/-99999999999999999999/receipt",
                 "/filings/0/draft"):
        answer = desk.get("wang", path)
        assert answer.status_code == 422, (path, answer.text)
        assert answer.json()["field"].endswith("filing_id")


def _pyhanko_token_seal(desk: Desk, label: str, writer: Any, field_name: str) -> bytes:
    """``writer`` (a pyHanko IncrementalPdfFileWriter) signed by pyHanko's own PdfSigner with
    the USB-Key's seal key and our /tsa: a B-T seal without any of the checks our signer makes
    before it signs."""
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.signers import PdfSignatureMetadata, PdfSigner

    from eseal.signing.sign import TokenSigner

    with UsbKey.open(label, PINS[label]) as usbkey, httpx.Client() as http:
        signer = TokenSigner(usbkey.seal_key(), usbkey.certificate("seal"),  # type: ignore[arg-type]
                             usbkey.chain())
        out = io.BytesIO()
        PdfSigner(PdfSignatureMetadata(field_name=field_name, subfilter=SigSeedSubFilter.PADES),
                  signer, timestamper=http_timestamper(http, f"{desk.url}/tsa")).sign_pdf(
            writer, output=out)
    return out.getvalue()


def _seal_with_extra_change(desk: Desk, label: str, draft: bytes) -> bytes:
    """One update that adds the seal *and* rewrites a page's content stream: signed, intact,
    timestamped, and still not what the agent submitted."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(draft))
    page_ref = writer.root["/Pages"]["/Kids"][0]
    page = page_ref.get_object()
    contents = page.raw_get("/Contents")
    stream = generic.StreamObject(stream_data=b"BT /F1 18 Tf 72 720 Td (PAY 9,999,999) Tj ET")
    writer.mark_update(generic.Reference(contents.idnum, contents.generation, writer))
    writer.objects[(contents.generation, contents.idnum)] = stream
    return _pyhanko_token_seal(desk, label, writer, "Sneaky")


def test_uploads_that_are_not_the_draft_plus_one_current_seal_are_refused_and_not_stored(
        desk: Desk) -> None:
    fid, draft = desk.new_draft()
    good = desk.seal("zhang", draft)
    tampered = bytearray(good)
    tampered[len(draft) + (len(good) - len(draft)) // 2] ^= 0x01  # inside the signed update
    not_the_draft = bytearray(good)
    not_the_draft[len(draft) // 2] ^= 0x01  # one byte of the agent's draft
    cases = [
        ("NOT_THE_DRAFT", bytes(not_the_draft)),
        ("ONE_UPDATE_REQUIRED", desk.seal("zhang", draft, level="B-LTA")),  # two updates
        ("ONE_UPDATE_REQUIRED", good[:len(draft) + 200]),  # cut short: no complete update
        ("SEAL_NOT_TIMESTAMPED", desk.seal("zhang", draft, level="B-B")),
        ("SEAL_WRONG_ENTERPRISE", desk.seal("li", draft)),
        ("UPDATE_NOT_ONLY_A_SEAL", _seal_with_extra_change(desk, "zhang", draft)),
        ("SEAL_INVALID", bytes(tampered)),
        ("PDF_EMPTY", b""),
    ]
    for code, upload in cases:
        answer = desk.post("zhang", f"/filings/{fid}/seal", upload)
        assert 400 <= answer.status_code < 500, (code, answer.status_code, answer.text)
        assert answer.json()["code"] == code, (code, answer.json())
    refusals = [e.details["code"] for e in desk.audit("filing.seal")
                if e.target == str(fid) and e.outcome == "refused"]
    assert refusals == [code for code, _ in cases]
    assert desk.count(FilingDocument, FilingDocument.filing_id == fid) == 1
    assert desk.count(FilingReceipt, FilingReceipt.filing_id == fid) == 0
    assert desk.get("zhang", f"/filings/{fid}").json()["status"] == "draft"
    accepted = desk.post("zhang", f"/filings/{fid}/seal", good)  # the refusals changed nothing
    assert accepted.status_code == 200, accepted.text


def test_bad_drafts_get_clear_errors_no_5xx_and_nothing_is_stored(desk: Desk) -> None:
    sample = make_pdf().data
    bad = {
        "PDF_EMPTY": b"",
        "PDF_NOT_PDF": b"GIF89a\x01\x00 not a pdf",
        "PDF_TRUNCATED": sample[: len(sample) // 2],
        "PDF_ENCRYPTED": rewrite_pdf(sample, xref_stream=False, encrypt_password="pw"),
        "PDF_BROKEN_XREF": break_startxref(sample),
        "TRAILING_BYTES": sample + b"\n<html>not part of the PDF</html>\n",
    }
    before = desk.count(Filing)
    for code, data in bad.items():
        answer = desk.post("wang", "/filings", data)
        assert (answer.status_code, answer.json().get("code")) == (422, code), answer.text
        verified = desk.post(None, "/verify", data)
        expected = "PDF_NO_SIGNATURE" if code == "TRAILING_BYTES" else code
        assert (verified.status_code, verified.json().get("code")) == (422, expected)
    title = desk.post("wang", "/filings", sample, title="\x07bell")
    assert (title.status_code, title.json()["code"]) == (422, "TITLE_INVALID")
    assert desk.count(Filing) == before
    refused = [e.details["code"] for e in desk.audit("filing.create") if e.outcome == "refused"]
    assert set(bad) | {"TITLE_INVALID"} <= set(refused)

    # 50,000 pages: a valid PDF, judged quickly either way (accepted as a draft; not signed)
    huge = make_pdf(pages=50_000).data
    started = time.perf_counter()
    answer = desk.post("wang", "/filings", huge)
    assert answer.status_code == 201 and answer.json()["draft"]["pages"] == 50_000
    verified = desk.post(None, "/verify", huge)
    assert (verified.status_code, verified.json()["code"]) == (422, "PDF_NO_SIGNATURE")
    assert time.perf_counter() - started < 30


def _amount_form(shown: bytes, held: str) -> bytes:
    field = (f"<< /FT /Tx /T (amount) /V ({held}) /DA (/Helv 12 Tf 0 g) /Type /Annot "
             "/Subtype /Widget /Rect [72 400 300 420] /F 4 /P {page} /AP << /N {ap} >> >>")
    ap = stream_object(b"BT /Helv 12 Tf 2 6 Td (" + shown + b") Tj ET",
                       "/Type /XObject /Subtype /Form /BBox [0 0 228 20] "
                       "/Resources << /Font << /Helv {font} >> >>")
    return make_form_pdf([field], objects={"ap": ap})


def test_a_draft_whose_field_shows_another_amount_is_refused_and_not_stored(desk: Desk) -> None:
    """The shadow draft of issue 13: its amount field shows 1,000 CNY and holds 9,999,999
    CNY. Refused at the door (422, the form field named), audited, nothing stored; the same
    form drawn honestly is accepted."""
    before = desk.count(Filing)
    answer = desk.post("wang", "/filings", _amount_form(b"1,000 CNY", "9,999,999 CNY"))
    body = answer.json()
    assert (answer.status_code, body["code"]) == (422, "DRAFT_FIELD_APPEARANCE_MISMATCH")
    assert body["field"] == "file" and "amount" in body["message"] and body["message_zh"]
    assert desk.count(Filing) == before
    refused = [e.details["code"] for e in desk.audit("filing.create") if e.outcome == "refused"]
    assert "DRAFT_FIELD_APPEARANCE_MISMATCH" in refused
    honest = desk.post("wang", "/filings", _amount_form(b"1,000 CNY", "1,000 CNY"))
    assert honest.status_code == 201, honest.text


def test_verify_over_the_api_matches_the_cli(desk: Desk) -> None:
    sealed = desk.seal("li", make_pdf().data)
    report = desk.post(None, "/verify", sealed).json()
    assert (report["verdict"], report["exit_code"]) == ("valid", 0)
    assert report["signatures"][0]["signer"]["credit_code"] == USCC_B
    assert report["labels_zh"]["verdict"] == "验证结论"
    broken = bytearray(sealed)
    broken[200] ^= 0x01
    assert desk.post(None, "/verify", bytes(broken)).json()["verdict"] == "invalid"


def test_upload_limit_is_enforced_while_the_body_streams(desk: Desk) -> None:
    token = desk.login("wang").session
    over = desk.post("wang", "/filings", b"%PDF-1.7\n" + b"0" * LIMIT)
    assert (over.status_code, over.json()["code"]) == (413, "UPLOAD_TOO_LARGE")
    assert desk.post(None, "/verify", b"0" * (LIMIT + 1)).status_code == 413

    # chunked, no length: the answer comes before the body has ended
    host, port = desk.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall((f"POST /filings HTTP/1.1\r\nHost: {host}\r\n"
                      f"Authorization: Bearer {token}\r\nContent-Type: application/pdf\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n").encode())
        chunk = b"%PDF" + b"0" * (256 * 1024 - 4)
        sent = 0
        while sent <= LIMIT + len(chunk):
            sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            sent += len(chunk)
        # the terminating zero-length chunk is never sent
        reply = sock.recv(4096)
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"UPLOAD_TOO_LARGE" in reply or b"content-length" in reply.lower()


def test_only_the_enterprises_current_unfrozen_seal_certificate_is_accepted(
        desk: Desk, monkeypatch: pytest.MonkeyPatch) -> None:
    from eseal.ra import renewal, revocation

    fid, draft = desk.new_draft("chen")
    sealed = desk.seal("chen", draft)
    with UsbKey.open("chen", PINS["chen"]) as usbkey:
        serial = format(usbkey.certificate("seal").serial_number, "x")
    with Authority.open(desk.settings) as auth:
        revocation.freeze(auth, serial, actor=ACTOR)
    frozen = desk.post("chen", f"/filings/{fid}/seal", sealed)
    assert (frozen.status_code, frozen.json()["code"]) == (409, "SEAL_CERT_REVOKED")
    assert frozen.json()["details"]["status"] == "hold"

    # made while frozen (pyHanko with the token key: our signer refuses to) stays refused
    # after unfreezing: the freeze window covers its timestamp
    fid2, draft2 = desk.new_draft("chen")
    made_while_frozen = _seal_b_t_without_checks(desk, "chen", draft2)
    with Authority.open(desk.settings) as auth:
        revocation.unfreeze(auth, serial, actor=ACTOR)
    late = desk.post("chen", f"/filings/{fid2}/seal", made_while_frozen)
    assert (late.status_code, late.json()["code"]) == (409, "SEAL_CERT_FROZEN_AT_SIGNING")
    assert desk.count(FilingDocument, FilingDocument.filing_id == fid2) == 1

    # renewed: the old certificate is no longer the current one
    fid3, draft3 = desk.new_draft("chen")
    old_cert_seal = desk.seal("chen", draft3)
    with Authority.open(desk.settings) as auth:
        row = auth.certificate_row(serial)
        monkeypatch.setenv("ESEAL_NOW", (row.not_after - timedelta(days=30)).isoformat())
        renewed_cert = renewal.renew_one(auth, serial, actor=ACTOR)
        monkeypatch.delenv("ESEAL_NOW")
    assert isinstance(renewed_cert, renewal.Renewal)
    stale = desk.post("chen", f"/filings/{fid3}/seal", old_cert_seal)
    assert (stale.status_code, stale.json()["code"]) == (409, "SEAL_CERT_NOT_CURRENT")
    assert desk.count(FilingDocument, FilingDocument.filing_id == fid3) == 1


def test_a_seal_made_before_a_freeze_is_accepted_after_it_one_inside_is_not(desk: Desk) -> None:
    """The freeze-window rule on its own (pure intake check, windows placed around the
    seal's own timestamp): before the window by more than the timestamp's uncertainty is
    fine, touching it is not."""
    from eseal.signing.intake import (
        TIMESTAMP_UNCERTAINTY,
        EnterpriseSeals,
        check_sealed_upload,
    )

    draft = make_pdf().data
    sealed = desk.seal("li", draft, level="B-T")
    with UsbKey.open("li", PINS["li"]) as usbkey:
        serial = format(usbkey.certificate("seal").serial_number, "x")

    def seals(*windows: tuple[Any, Any]) -> EnterpriseSeals:
        return EnterpriseSeals(uscc=USCC_B, current={serial}, status={serial: "good"},
                               frozen={serial: list(windows)})

    accepted = check_sealed_upload(draft, sealed, seals=seals(), trust_roots=[desk.root])
    t = accepted.signing_time
    assert accepted.certificate_serial == serial and accepted.pades_level == "B-T"
    margin = TIMESTAMP_UNCERTAINTY + timedelta(seconds=1)
    after = seals((t + margin, t + timedelta(hours=1)))
    assert check_sealed_upload(draft, sealed, seals=after, trust_roots=[desk.root])
    before = seals((t - timedelta(hours=1), t - margin))
    assert check_sealed_upload(draft, sealed, seals=before, trust_roots=[desk.root])
    for window in ((t - timedelta(hours=1), None), (t - timedelta(hours=1), t),
                   (t + timedelta(seconds=1), t + timedelta(hours=1))):
        with pytest.raises(EsealError) as exc:
            check_sealed_upload(draft, sealed, seals=seals(window), trust_roots=[desk.root])
        assert exc.value.code == "SEAL_CERT_FROZEN_AT_SIGNING"
    for facts, code in ((EnterpriseSeals(USCC_B, current=set(), status={serial: "good"}),
                         "SEAL_CERT_NOT_CURRENT"),
                        (EnterpriseSeals(USCC_B, current={serial}, status={serial: "revoked"}),
                         "SEAL_CERT_REVOKED"),
                        (EnterpriseSeals(USCC_A, current={serial}, status={serial: "good"}),
                         "SEAL_WRONG_ENTERPRISE")):
        with pytest.raises(EsealError) as exc:
            check_sealed_upload(draft, sealed, seals=facts, trust_roots=[desk.root])
        assert exc.value.code == code


def _seal_b_t_without_checks(desk: Desk, label: str, draft: bytes) -> bytes:
    """A B-T seal made by pyHanko with the token key and our /tsa, without the pre-signing
    revocation check our signer does (so it can be made while the certificate is frozen)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    return _pyhanko_token_seal(desk, label, IncrementalPdfFileWriter(io.BytesIO(draft)),
                               "Frozen")


def _with_empty_field(data: bytes, name: str) -> bytes:
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(data)))
    writer.stream_xrefs = False
    append_signature_field(writer, SigFieldSpec(name, on_page=0, box=(360, 60, 480, 180)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def test_drafts_with_an_empty_field_xref_streams_or_a_counterpartys_seal_take_the_seal(
        desk: Desk) -> None:
    """What real drafts look like: a form with a signature field for the legal
    representative, object streams, a contract the other party has sealed already."""
    sample = make_pdf().data
    drafts = {
        "field": (_with_empty_field(sample, "PartyA"), "PartyA"),
        "xref-streams": (rewrite_pdf(sample, xref_stream=True), None),
        "countersealed": (desk.seal("li", sample), None),
    }
    for name, (data, field_name) in drafts.items():
        answer = desk.post("wang", "/filings", data)
        assert answer.status_code == 201, (name, answer.text)
        fid = answer.json()["id"]
        sealed = seal_with_token(data, "zhang", PINS["zhang"], server=desk.url,
                                 field_name=field_name)
        accepted = desk.post("zhang", f"/filings/{fid}/seal", sealed)
        assert accepted.status_code == 200, (name, accepted.text)
        assert accepted.json()["receipt"]["seal_certificate_serial"]
