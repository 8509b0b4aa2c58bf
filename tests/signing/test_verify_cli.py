"""``eseal verify`` as a relying party runs it: exit 0 valid, 1 invalid, 2 could not be judged.

Seals are made against a live ``eseal serve`` (our signer through the USB-Key, and an
independent signer: pyHanko itself, with a software key our CA certified from a CSR and our
/tsa and CRLs); then the service is stopped and the files are verified with no service and,
given ``--trust``, no home at all: a B-LT seal carries everything needed.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hankokit import rewrite_pdf
from pdfkit import break_startxref, make_pdf
from pkikit import asn1_cert, make_pki
from sitekit import Holder, ca_home, eseal_cli, seal_with_token

from eseal.ca.authority import Authority
from eseal.cli import run
from tests.conftest import NAME_A, USCC_A, LiveServer, make_csr

PIN = "4913-7720"


@dataclass
class Files:
    home: Path
    root: x509.Certificate
    root_pem: Path
    ours: Path          # sealed by eseal's signer (B-LT)
    independent: Path   # sealed by pyHanko directly with a certificate of ours (B-LT)
    work: Path


def _independent_seal(auth: Authority, pdf: bytes, server: str) -> bytes:
    """pyHanko's own signer, a software key, a seal certificate our CA issued from its CSR,
    our /tsa, and the revocation data pyHanko fetches itself from the certificates' URLs."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter
    from pyhanko.sign.timestamps import HTTPTimeStamper
    from pyhanko_certvalidator import ValidationContext
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from eseal.pki.oids import ORGANIZATION_IDENTIFIER

    key = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr(key, common_name=NAME_A, organization=NAME_A, org_id=f"NTRCN-{USCC_A}")
    cert = auth.issue(csr, uscc=USCC_A, profile="seal", holder="张三",
                      actor="officer:test").certificate
    assert cert.subject.get_attributes_for_oid(ORGANIZATION_IDENTIFIER)[0].value.endswith(USCC_A)
    chain = [asn1_cert(c) for c in auth.chain()]
    signer = signers.SimpleSigner(
        signing_cert=asn1_cert(cert),
        signing_key=asn1_keys.PrivateKeyInfo.load(key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption())),
        cert_registry=SimpleCertificateStore.from_certs(chain))
    root: asn1_x509.Certificate = chain[-1]
    meta = signers.PdfSignatureMetadata(
        field_name="ThirdParty", reason="independent signer", subfilter=SigSeedSubFilter.PADES,
        embed_validation_info=True,
        validation_context=ValidationContext(trust_roots=[root], allow_fetching=True,
                                             revocation_mode="require"))
    out = io.BytesIO()
    signers.PdfSigner(meta, signer, timestamper=HTTPTimeStamper(f"{server}/tsa")).sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(pdf)), output=out)
    return out.getvalue()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Files]:
    tmp = tmp_path_factory.mktemp("verify")
    with ca_home(tmp / "home", enterprises=[(USCC_A, NAME_A, "张三")],
                 holders=[Holder("zhang", PIN, USCC_A, "legal_rep", "张三")]) as ca:
        server = LiveServer(ca.home, ca.port)
        try:
            draft = make_pdf(pages=2).data
            ours = seal_with_token(draft, "zhang", PIN, server=server.url)
            with Authority.open(ca.settings) as auth:
                independent = _independent_seal(auth, draft, server.url)
        finally:
            server.stop()  # from here on, no service answers
        root_pem = tmp / "root.pem"
        root_pem.write_bytes(ca.root.public_bytes(serialization.Encoding.PEM))
        (tmp / "ours.pdf").write_bytes(ours)
        (tmp / "independent.pdf").write_bytes(independent)
        yield Files(ca.home, ca.root, root_pem, tmp / "ours.pdf", tmp / "independent.pdf", tmp)


def test_b_lt_seal_verifies_with_neither_a_home_nor_a_service(files: Files) -> None:
    nowhere = files.work / "no-such-home"
    done = eseal_cli("verify", str(files.ours), "--trust", str(files.root_pem), home=nowhere)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verdict 验证结论: VALID 有效" in done.stdout
    assert "Credit code 统一社会信用代码: " + USCC_A in done.stdout
    assert "PAdES level PAdES 级别: B-LT" in done.stdout
    assert not nowhere.exists()  # nothing was created either

    done = eseal_cli("verify", str(files.ours), "--trust", str(files.root_pem), "--json",
                     home=nowhere)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["verdict"], report["verdict_zh"], report["exit_code"]) == ("valid", "有效", 0)
    (seal,) = report["signatures"]
    assert seal["signer"]["enterprise"] == NAME_A
    assert seal["revocation_at_signing"] == {**seal["revocation_at_signing"],
                                             "status": "good", "source": "embedded"}
    assert report["labels_zh"]["revocation_at_signing"] == "签章时的吊销状态"


def test_default_trust_is_the_homes_root_and_another_root_cannot_judge(files: Files) -> None:
    assert eseal_cli("verify", str(files.ours), home=files.home).returncode == 0
    stranger = files.work / "stranger.pem"
    stranger.write_bytes(make_pki(ca_name="Other").root.pem)
    done = eseal_cli("verify", str(files.ours), "--trust", str(stranger), home=files.home)
    assert done.returncode == 2, done.stdout
    assert "CHAIN_UNTRUSTED" in done.stdout and "INDETERMINATE" in done.stdout


def test_independent_signer_with_our_certificate_is_judged_like_our_own(
        files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["verify", str(files.independent), "--trust", str(files.root_pem), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0, report
    assert run(["verify", str(files.ours), "--trust", str(files.root_pem), "--json"]) == 0
    ours = json.loads(capsys.readouterr().out)
    theirs, mine = report["signatures"][0], ours["signatures"][0]
    for key in ("verdict", "pades_level", "signing_time_source", "ades_indication"):
        assert theirs[key] == mine[key], key
    for key in ("enterprise", "credit_code", "profile"):
        assert theirs["signer"][key] == mine["signer"][key], key
    assert theirs["revocation_at_signing"]["status"] == "good"
    assert theirs["chain"]["trusted"] is True


def test_a_tampered_seal_is_invalid(files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    data = bytearray(files.ours.read_bytes())
    at = data.index(b"Annual report 2025")
    data[at] ^= 0x20  # one byte of the signed page content
    tampered = files.work / "tampered.pdf"
    tampered.write_bytes(bytes(data))
    code = run(["verify", str(tampered), "--trust", str(files.root_pem)])
    out = capsys.readouterr().out
    assert code == 1, out
    assert "INVALID 无效" in out


@pytest.mark.parametrize(("name", "make", "code"), [
    ("empty", lambda: b"", "PDF_EMPTY"),
    ("not-a-pdf", lambda: b"PK\x03\x04 a zip, not a pdf", "PDF_NOT_PDF"),
    ("truncated", lambda: make_pdf().data[:900], "PDF_TRUNCATED"),
    ("encrypted", lambda: rewrite_pdf(make_pdf().data, xref_stream=False,
                                      encrypt_password="pw"), "PDF_ENCRYPTED"),
    ("broken-xref", lambda: break_startxref(make_pdf().data), "PDF_BROKEN_XREF"),
    ("unsigned", lambda: make_pdf().data, "PDF_NO_SIGNATURE"),
])
def test_input_that_is_not_a_signed_pdf_cannot_be_judged(
        name: str, make: object, code: str, files: Files,
        capsys: pytest.CaptureFixture[str]) -> None:
    path = files.work / f"{name}.pdf"
    path.write_bytes(make())  # type: ignore[operator]
    assert run(["verify", str(path), "--trust", str(files.root_pem)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error {code} "), err
    assert run(["verify", str(path), "--trust", str(files.root_pem), "--json"]) == 2
    body = json.loads(capsys.readouterr().out)
    assert body["error"]["code"] == code and body["exit_code"] == 2


def test_fifty_thousand_pages_are_refused_quickly_as_unsigned(
        files: Files, capsys: pytest.CaptureFixture[str]) -> None:
    import time

    path = files.work / "big.pdf"
    path.write_bytes(make_pdf(pages=50_000).data)
    started = time.perf_counter()
    assert run(["verify", str(path), "--trust", str(files.root_pem)]) == 2
    assert time.perf_counter() - started < 20
    assert "PDF_NO_SIGNATURE" in capsys.readouterr().err


def test_missing_trust_and_unreadable_files_are_clear_errors(
        files: Files, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESEAL_HOME", str(tmp_path / "nowhere"))
    assert run(["verify", str(files.ours)]) == 2
    assert capsys.readouterr().err.startswith("error TRUST_ROOT_REQUIRED [trust]")
    assert run(["verify", str(tmp_path / "missing.pdf"), "--trust", str(files.root_pem)]) == 2
    assert capsys.readouterr().err.startswith("error FILE_UNREADABLE [file]")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    assert run(["verify", str(files.ours), "--trust", str(junk)]) == 2
    assert capsys.readouterr().err.startswith("error TRUST_NOT_A_CERTIFICATE [trust]")
    assert not (tmp_path / "nowhere").exists()


def test_every_revocation_status_and_source_has_a_chinese_word() -> None:
    """The bilingual report names each revocation status and where it came from; a value
    added to the report (``live``: the CA's own records) must not print blank in Chinese."""
    import typing

    from eseal.cli.cmd_verify import _WORDS_ZH
    from eseal.signing.report import Revocation

    hints = typing.get_type_hints(Revocation)
    words = set(typing.get_args(hints["status"]))
    words |= {w for w in typing.get_args(hints["source"]) if isinstance(w, str)}
    for arg in typing.get_args(hints["source"]):  # Literal[...] | None
        words |= {w for w in typing.get_args(arg) if isinstance(w, str)}
    assert words >= {"good", "embedded", "live"}
    assert {w for w in words if not _WORDS_ZH.get(w)} == set()
