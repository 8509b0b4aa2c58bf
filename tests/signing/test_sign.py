"""Sealing PDFs with a USB-Key: PAdES signatures that pyHanko and poppler's pdfsig accept, one
token signature per seal, several seals on one file, revocation data in the seal's revision,
and bad input refused before the token is asked."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import re
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from asn1crypto import keys as asn1_keys
from asn1crypto import tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, append_signature_field
from pyhanko.sign.timestamps import DummyTimeStamper
from pyhanko.sign.validation import validate_pdf_signature, validate_pdf_timestamp
from pyhanko.sign.validation.status import SignatureCoverageLevel
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore
from sitekit import count_token_signatures

from eseal.errors import Conflict, EsealError, InvalidInput
from eseal.pki import oids
from eseal.settings import Settings
from eseal.signing.seal_image import SealSpec, render_seal
from eseal.signing.sign import SealOptions, SealServiceUnavailable, async_seal_pdf, seal_pdf
from eseal.token import TokenSession, generate_keypair, private_key_for
from eseal.token import signer as token_signer
from eseal.token.softhsm import init_token

PIN = "5521-0937"
SO_PIN = "so-3307-1184"
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DEAD_URL = "http://127.0.0.1:9"  # the discard port: nothing answers there


# -- a software test PKI shaped like eseal's profiles ----------------------------------------
def _name(cn: str, org: str | None = None, uscc: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if uscc:
        attrs.append(x509.NameAttribute(oids.ORGANIZATION_IDENTIFIER, f"NTRCN-{uscc}"))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key, issuer_key,  # type: ignore[no-untyped-def]
             days: int = 365) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer)
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
    )


def _ca_builder(subject: x509.Name, issuer: x509.Name, public_key, issuer_key,  # type: ignore[no-untyped-def]
                days: int, path_length: int) -> x509.CertificateBuilder:
    return (
        _builder(subject, issuer, public_key, issuer_key, days=days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
    )


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)], relative_name=None,
        reasons=None, crl_issuer=None)])


@dataclass
class Pki:
    root_key: ec.EllipticCurvePrivateKey
    root: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    issuing: x509.Certificate
    tsa: x509.Certificate
    tsa_key: rsa.RSAPrivateKey
    base_url: str = DEAD_URL  # where the CRL distribution points point
    crl_cache: dict[tuple[int, ...], list[x509.CertificateRevocationList]] = field(
        default_factory=dict)

    def issue_seal(self, public_key, name: str, uscc: str,  # type: ignore[no-untyped-def]
                   crl_base: str | None = None) -> x509.Certificate:
        return (
            _builder(_name(name, name, uscc), self.issuing.subject, public_key,
                     self.issuing_key)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([oids.DOCUMENT_SIGNING,
                                                  ExtendedKeyUsageOID.EMAIL_PROTECTION]),
                           critical=False)
            .add_extension(x509.CertificatePolicies([x509.PolicyInformation(
                oids.POLICY_ENTERPRISE_SEAL, None)]), critical=False)
            .add_extension(_crl_dp(f"{crl_base or self.base_url}/crl/issuing.crl"),
                           critical=False)
            .sign(self.issuing_key, hashes.SHA256())
        )

    def crls(self, revoked: tuple[int, ...] = ()) -> list[x509.CertificateRevocationList]:
        """The root's CRL and the issuing CA's (listing ``revoked``), made once per set."""
        if revoked in self.crl_cache:
            return self.crl_cache[revoked]

        def crl(issuer: x509.Certificate, key, serials: tuple[int, ...],  # type: ignore[no-untyped-def]
                algorithm: hashes.HashAlgorithm) -> x509.CertificateRevocationList:
            builder = (
                x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
                .last_update(NOW - dt.timedelta(hours=1))
                .next_update(NOW + dt.timedelta(days=1))
                .add_extension(x509.CRLNumber(1), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    key.public_key()), critical=False)
            )
            for serial in serials:
                builder = builder.add_revoked_certificate(
                    x509.RevokedCertificateBuilder().serial_number(serial)
                    .revocation_date(NOW - dt.timedelta(minutes=30)).build())
            return builder.sign(key, algorithm)

        self.crl_cache[revoked] = [crl(self.root, self.root_key, (), hashes.SHA384()),
                                   crl(self.issuing, self.issuing_key, revoked, hashes.SHA256())]
        return self.crl_cache[revoked]

    def validation_context(self, revoked: tuple[int, ...] = ()) -> ValidationContext:
        return ValidationContext(
            trust_roots=[_asn1(self.root)],
            crls=[c.public_bytes(serialization.Encoding.DER) for c in self.crls(revoked)],
            allow_fetching=False, revocation_mode="require")

    def timestamper(self) -> DummyTimeStamper:
        key_der = self.tsa_key.private_bytes(serialization.Encoding.DER,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption())
        return DummyTimeStamper(
            tsa_cert=_asn1(self.tsa), tsa_key=asn1_keys.PrivateKeyInfo.load(key_der),
            certs_to_embed=SimpleCertificateStore.from_certs([_asn1(self.issuing)]))


def _asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def build_pki(base_url: str = DEAD_URL) -> Pki:
    """Root P-384 -> issuing P-256 -> (seal certificates, an RSA TSA for DummyTimeStamper)."""
    root_key = ec.generate_private_key(ec.SECP384R1())
    root_name = _name("eseal Test Root CA", "eseal test")
    root = _ca_builder(root_name, root_name, root_key.public_key(), root_key, days=3650,
                       path_length=1).sign(root_key, hashes.SHA384())
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing_name = _name("eseal Test Issuing CA", "eseal test")
    issuing = (
        _ca_builder(issuing_name, root_name, issuing_key.public_key(), root_key, days=1825,
                    path_length=0)
        .add_extension(_crl_dp(f"{base_url}/crl/root.crl"), critical=False)
        .sign(root_key, hashes.SHA384())
    )
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa = (
        _builder(_name("eseal Test TSA", "eseal test"), issuing_name, tsa_key.public_key(),
                 issuing_key)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False,
            crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                       critical=True)
        .add_extension(_crl_dp(f"{base_url}/crl/issuing.crl"), critical=False)
        .sign(issuing_key, hashes.SHA256())
    )
    return Pki(root_key, root, issuing_key, issuing, tsa, tsa_key, base_url)


class _Services(BaseHTTPRequestHandler):
    """What eseal's service will offer a sealing client: CRLs by GET, RFC 3161 by POST."""

    pki: ClassVar[Pki | None] = None
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        assert self.pki is not None
        self.requests.append(self.path)
        root_crl, issuing_crl = self.pki.crls()
        body = {"/crl/root.crl": root_crl, "/crl/issuing.crl": issuing_crl}.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self._reply(body.public_bytes(serialization.Encoding.DER), "application/pkix-crl")

    def do_POST(self) -> None:
        assert self.pki is not None
        self.requests.append(self.path)
        request = tsp.TimeStampReq.load(self.rfile.read(int(self.headers["Content-Length"])))
        reply = self.pki.timestamper().request_tsa_response(request)
        self._reply(reply.dump(), "application/timestamp-reply")

    def _reply(self, body: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def services() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Services)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def pki(services: ThreadingHTTPServer) -> Pki:
    built = build_pki(f"http://127.0.0.1:{services.server_address[1]}")
    _Services.pki = built
    return built


@pytest.fixture(scope="module")
def nss_db(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An NSS database trusting only the test root, for pdfsig."""
    db = tmp_path_factory.mktemp("nss")
    root_pem = db / "root.pem"
    root_pem.write_bytes(pki.root.public_bytes(serialization.Encoding.PEM))
    subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True,
                   capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "root", "-t", "C,C,C",
                    "-i", str(root_pem)], check=True, capture_output=True)
    return f"sql:{db}"


# -- enterprises with seal keys on a SoftHSM token -------------------------------------------
@dataclass
class Enterprise:
    name: str
    key: token_signer.TokenPrivateKey
    cert: x509.Certificate
    chain: list[x509.Certificate]
    png: bytes


@pytest.fixture
def token(settings: Settings) -> Iterator[TokenSession]:
    init_token(settings.softhsm_conf_path, "ukey", PIN, SO_PIN)
    ts = TokenSession("ukey", PIN, rw=True).open()
    yield ts
    ts.close()


_PNG_CACHE: dict[str, bytes] = {}


def _enterprise(token: TokenSession, pki: Pki, name: str, uscc: str,
                spec: str = "ec-p256") -> Enterprise:
    info = generate_keypair(token, spec, f"seal-{uscc}")  # type: ignore[arg-type]
    cert = pki.issue_seal(info.public_key, name, uscc)
    if name not in _PNG_CACHE:
        _PNG_CACHE[name] = render_seal(SealSpec(name, uscc=uscc, title="合同专用章",
                                                size_px=300))
    return Enterprise(name, private_key_for(token, info), cert, [pki.issuing, pki.root],
                      _PNG_CACHE[name])


@pytest.fixture
def party_a(token: TokenSession, pki: Pki) -> Enterprise:
    return _enterprise(token, pki, "𠮷野家（北京）餐饮管理有限公司", "91110105MA01ABCD2X")


@pytest.fixture
def party_b(token: TokenSession, pki: Pki) -> Enterprise:
    return _enterprise(token, pki, "北京堃喆科技有限公司", "91110108551385082Q")


@pytest.fixture
def token_signatures(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every raw signature the token makes (the lowest level, below sign/sign_digest)."""
    return count_token_signatures(monkeypatch)


# -- PDFs to seal ----------------------------------------------------------------------------
def make_pdf(pages: int = 2, *, empty_field: str | None = None,
             password: str | None = None) -> bytes:
    writer = PdfFileWriter()
    font = writer.add_object(generic.DictionaryObject({
        generic.pdf_name("/Type"): generic.pdf_name("/Font"),
        generic.pdf_name("/Subtype"): generic.pdf_name("/Type1"),
        generic.pdf_name("/BaseFont"): generic.pdf_name("/Helvetica"),
    }))
    for number in range(1, pages + 1):
        lines = [f"Service contract 2025-001, page {number} of {pages}",
                 "Party A: Yoshinoya (Beijing) Catering Management Co., Ltd.",
                 "Party B: Beijing Kunzhe Technology Co., Ltd.", "",
                 "Both parties agree to the terms set out in this contract."]
        text = b"BT /F1 12 Tf 72 770 Td 16 TL " + b" ".join(
            b"(" + line.encode() + b") '" for line in lines) + b" ET"
        text += b" BT /F1 11 Tf 72 200 Td (Party A \\(seal\\)) Tj 300 0 Td " \
                b"(Party B \\(seal\\)) Tj ET"
        resources = generic.DictionaryObject({generic.pdf_name("/Font"): generic.DictionaryObject(
            {generic.pdf_name("/F1"): font})})
        contents = writer.add_object(generic.StreamObject(stream_data=text))
        writer.insert_page(PageObject(contents=contents, media_box=(0, 0, 595, 842),
                                      resources=resources))
    if empty_field:
        append_signature_field(writer, SigFieldSpec(empty_field, on_page=0,
                                                    box=(100, 60, 220, 180)))
    if password:
        writer.encrypt(password, password)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _seal(party: Enterprise, pdf: bytes, pki: Pki, **options) -> bytes:  # type: ignore[no-untyped-def]
    level = options.get("level", "B-LT")
    return seal_pdf(pdf, key=party.key, certificate=party.cert, chain=party.chain,
                    options=SealOptions(**options), seal_png=party.png,
                    timestamper=None if level == "B-B" else pki.timestamper(),
                    validation_context=pki.validation_context())


def _statuses(sealed: bytes, pki: Pki) -> list:  # type: ignore[type-arg]
    reader = PdfFileReader(io.BytesIO(sealed))
    return [validate_pdf_signature(sig, pki.validation_context())
            for sig in reader.embedded_regular_signatures]


def pdfsig(sealed: bytes, nss_db: str, tmp_path: Path) -> list[str]:
    """pdfsig's report, one text block per signature (it always exits 0: read the text)."""
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    out = subprocess.run(["pdfsig", "-nssdir", nss_db, "-no-ocsp", str(path)],
                         capture_output=True, text=True, check=False).stdout
    return re.split(r"^Signature #\d+:", out, flags=re.MULTILINE)[1:]


# -- the tests -------------------------------------------------------------------------------
def test_sealed_pdf_is_intact_valid_and_trusted_pades_with_one_token_signature(
        party_a: Enterprise, pki: Pki, token_signatures: list[bytes]) -> None:
    original = make_pdf()
    sealed = _seal(party_a, original, pki, reason="同意", location="北京")
    assert len(token_signatures) == 1
    assert sealed.startswith(original)  # an incremental update: the original bytes untouched

    reader = PdfFileReader(io.BytesIO(sealed))
    (sig,) = reader.embedded_regular_signatures
    assert sig.sig_object["/SubFilter"] == "/ETSI.CAdES.detached"
    assert sig.sig_object["/Reason"] == "同意"
    status = validate_pdf_signature(sig, pki.validation_context())
    assert status.intact and status.valid and status.trusted, status.pretty_print_details()
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert status.bottom_line
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted
    assert status.signing_cert.subject == _asn1(party_a.cert).subject


def test_b_lt_revocation_data_is_in_the_seals_own_revision(
        party_a: Enterprise, pki: Pki) -> None:
    original = make_pdf()
    sealed = _seal(party_a, original, pki, level="B-LT")
    reader = PdfFileReader(io.BytesIO(sealed))
    assert reader.xrefs.total_revisions == 2  # the original + one seal revision, no DSS-only one
    (sig,) = reader.embedded_regular_signatures
    assert sig.signed_revision == 1
    start, _, second_start, second_len = (int(v) for v in sig.sig_object["/ByteRange"])
    assert start == 0 and second_start + second_len == len(sealed)  # covers the whole file
    dss = reader.root["/DSS"]
    embedded_crls = {bytes(ref.get_object().data) for ref in dss["/CRLs"]}
    expected = {crl.public_bytes(serialization.Encoding.DER) for crl in pki.crls()}
    assert expected <= embedded_crls
    embedded_certs = {bytes(ref.get_object().data) for ref in dss["/Certs"]}
    assert pki.issuing.public_bytes(serialization.Encoding.DER) in embedded_certs
    assert "/DSS" not in reader.get_historical_root(0)


def test_pdfsig_reports_the_seal_valid_trusted_and_covering_the_whole_document(
        party_a: Enterprise, pki: Pki, nss_db: str, tmp_path: Path) -> None:
    sealed = _seal(party_a, make_pdf(), pki)
    (report,) = pdfsig(sealed, nss_db, tmp_path)
    assert "Signature Validation: Signature is Valid." in report, report
    assert "Certificate Validation: Certificate is Trusted." in report, report
    assert "Total document signed" in report, report
    assert "ETSI.CAdES.detached" in report, report


def test_second_enterprise_seals_after_the_first_and_both_stay_valid(
        party_a: Enterprise, party_b: Enterprise, pki: Pki, nss_db: str, tmp_path: Path,
        token_signatures: list[bytes]) -> None:
    once = _seal(party_a, make_pdf(), pki)
    twice = _seal(party_b, once, pki)
    assert len(token_signatures) == 2
    assert twice.startswith(once)
    first, second = _statuses(twice, pki)
    assert first.bottom_line and second.bottom_line
    assert first.coverage == SignatureCoverageLevel.ENTIRE_REVISION
    assert second.coverage == SignatureCoverageLevel.ENTIRE_FILE
    assert first.signing_cert.subject == _asn1(party_a.cert).subject
    assert second.signing_cert.subject == _asn1(party_b.cert).subject
    reports = pdfsig(twice, nss_db, tmp_path)
    assert len(reports) == 2
    for report in reports:
        assert "Signature is Valid." in report and "Certificate is Trusted." in report, report
    assert "Total document signed" in reports[1]
    # default placement put the second seal beside the first, not on top of it
    reader = PdfFileReader(io.BytesIO(twice))
    rects = [[float(v) for v in s.sig_field["/Rect"]] for s in reader.embedded_signatures]
    assert rects[0][0] >= rects[1][2] or rects[1][0] >= rects[0][2]


@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LTA"])
def test_each_pades_level_adds_what_it_promises(
        level: str, party_a: Enterprise, pki: Pki, token_signatures: list[bytes]) -> None:
    sealed = _seal(party_a, make_pdf(), pki, level=level)
    assert len(token_signatures) == 1
    reader = PdfFileReader(io.BytesIO(sealed))
    (sig,) = reader.embedded_regular_signatures
    status = validate_pdf_signature(sig, pki.validation_context())
    assert status.bottom_line, status.pretty_print_details()
    has_ts = status.timestamp_validity is not None
    assert has_ts == (level != "B-B")
    assert ("/DSS" in reader.root) == (level == "B-LTA")
    doc_timestamps = reader.embedded_timestamp_signatures
    assert len(doc_timestamps) == (1 if level == "B-LTA" else 0)
    if level == "B-LTA":
        ts_status = validate_pdf_timestamp(doc_timestamps[0], pki.validation_context())
        assert ts_status.valid and ts_status.trusted
        assert ts_status.coverage == SignatureCoverageLevel.ENTIRE_FILE
        assert sig.signed_revision < doc_timestamps[0].signed_revision


def test_rsa_seal_key_on_the_token_signs_too(token: TokenSession, pki: Pki,
                                              token_signatures: list[bytes]) -> None:
    party = _enterprise(token, pki, "北京堃喆科技有限公司", "91110108551385082Q", "rsa-2048")
    sealed = _seal(party, make_pdf(), pki, level="B-B")
    assert len(token_signatures) == 1
    (status,) = _statuses(sealed, pki)
    assert status.bottom_line


def test_seal_image_is_drawn_where_asked_on_the_page(
        party_a: Enterprise, pki: Pki, tmp_path: Path) -> None:
    sealed = _seal(party_a, make_pdf(pages=2), pki, page=2, position=(380, 120),
                   size_pt=144, level="B-B")
    path = tmp_path / "sealed.pdf"
    path.write_bytes(sealed)
    subprocess.run(["pdftoppm", "-png", "-r", "60", "-f", "2", "-l", "2", str(path),
                    str(tmp_path / "page")], check=True, capture_output=True)
    (png,) = tmp_path.glob("page*.png")
    page = Image.open(png).convert("RGB")
    scale = 60 / 72

    def red(x_pt: float, y_pt: float) -> bool:
        r, g, b = page.getpixel((round(x_pt * scale), round((842 - y_pt) * scale)))
        return r > 180 and g < 90 and b < 90

    centre = (380 + 72, 120 + 72)
    assert red(*centre)  # the star
    assert red(380 + 72, 120 + 144 - 3)  # the top of the ring
    assert not red(380 - 10, 120 + 72) and not red(380 + 144 + 10, 120 + 72)
    assert not red(72, 770)  # the page's text stays black


def test_certified_document_takes_further_seals_in_its_empty_fields_only(
        party_a: Enterprise, party_b: Enterprise, pki: Pki) -> None:
    certified = _seal(party_a, make_pdf(empty_field="PartyB"), pki, certify=True, level="B-T")
    reader = PdfFileReader(io.BytesIO(certified))
    assert "/DocMDP" in reader.root["/Perms"]
    with pytest.raises(InvalidInput) as exc:  # a new visible field would break certification
        _seal(party_b, certified, pki, level="B-T")
    assert exc.value.code == "FIELD_REQUIRED"
    assert exc.value.details["empty_fields"] == ["PartyB"]
    with pytest.raises(InvalidInput) as exc:
        _seal(party_b, certified, pki, certify=True, field_name="PartyB")
    assert exc.value.code == "CERTIFY_NOT_FIRST"
    both = _seal(party_b, certified, pki, field_name="PartyB", level="B-T")
    first, second = _statuses(both, pki)
    assert first.bottom_line and first.docmdp_ok, first.pretty_print_details()
    assert second.bottom_line, second.pretty_print_details()


def test_an_existing_empty_field_is_sealed_and_cannot_be_sealed_twice(
        party_b: Enterprise, pki: Pki) -> None:
    sealed = _seal(party_b, make_pdf(empty_field="PartyB"), pki, field_name="PartyB",
                   level="B-T")
    reader = PdfFileReader(io.BytesIO(sealed))
    (sig,) = reader.embedded_regular_signatures
    assert sig.field_name == "PartyB"
    assert [round(float(v)) for v in sig.sig_field["/Rect"]] == [100, 60, 220, 180]
    with pytest.raises(InvalidInput) as exc:
        _seal(party_b, sealed, pki, field_name="PartyB", level="B-T")
    assert (exc.value.code, exc.value.field) == ("FIELD_NOT_EMPTY", "field_name")


def test_revoked_seal_certificate_is_refused_before_the_token_signs(
        party_a: Enterprise, pki: Pki, token_signatures: list[bytes]) -> None:
    with pytest.raises(Conflict) as exc:
        seal_pdf(make_pdf(), key=party_a.key, certificate=party_a.cert, chain=party_a.chain,
                 options=SealOptions(), seal_png=party_a.png, timestamper=pki.timestamper(),
                 validation_context=pki.validation_context(revoked=(party_a.cert.serial_number,)))
    assert exc.value.code == "SEAL_CERT_REVOKED"
    assert token_signatures == []


@pytest.mark.parametrize(("make", "options", "code", "field"), [
    (lambda: b"hello, not a pdf", {}, "PDF_NOT_PDF", "pdf"),
    (lambda: b"%PDF-1.7\n% truncated\n", {}, "PDF_MALFORMED", "pdf"),
    (lambda: make_pdf(password="secret"), {}, "PDF_ENCRYPTED", "pdf"),
    (lambda: make_pdf(pages=2), {"page": 3}, "PAGE_OUT_OF_RANGE", "page"),
    (lambda: make_pdf(pages=2), {"page": 0}, "PAGE_OUT_OF_RANGE", "page"),
    (lambda: make_pdf(), {"position": (550, 10)}, "POSITION_OFF_PAGE", "position"),
    (lambda: make_pdf(), {"size_pt": 5}, "SEAL_SIZE_INVALID", "size_pt"),
    (lambda: make_pdf(), {"field_name": "a.b"}, "FIELD_NAME_INVALID", "field_name"),
    (lambda: make_pdf(), {"level": "B-X"}, "SEAL_LEVEL_INVALID", "level"),
])
def test_bad_input_is_refused_with_a_code_before_the_token_is_asked(
        make: Callable[[], bytes], options: dict, code: str, field: str,  # type: ignore[type-arg]
        party_a: Enterprise, pki: Pki, token_signatures: list[bytes]) -> None:
    with pytest.raises(InvalidInput) as exc:
        _seal(party_a, make(), pki, **options)
    assert (exc.value.code, exc.value.field) == (code, field)
    assert token_signatures == []


def test_timestamped_levels_need_a_timestamp_authority(party_a: Enterprise, pki: Pki) -> None:
    with pytest.raises(InvalidInput) as exc:
        seal_pdf(make_pdf(), key=party_a.key, certificate=party_a.cert, chain=party_a.chain,
                 options=SealOptions(level="B-T"), seal_png=party_a.png)
    assert exc.value.code == "TIMESTAMPER_REQUIRED"
    with pytest.raises(InvalidInput) as exc:
        seal_pdf(make_pdf(), key=party_a.key, certificate=party_a.cert, chain=party_a.chain,
                 options=SealOptions(level="B-B"), seal_png=b"GIF89a not a png")
    assert exc.value.code == "SEAL_IMAGE_INVALID"


def test_async_seal_works_inside_a_running_event_loop(party_a: Enterprise, pki: Pki) -> None:
    async def inside_a_service() -> bytes:
        with pytest.raises(RuntimeError):  # what the sync API does in a running loop
            seal_pdf(make_pdf(), key=party_a.key, certificate=party_a.cert,
                     chain=party_a.chain, options=SealOptions(level="B-B"),
                     seal_png=party_a.png)
        return await async_seal_pdf(make_pdf(), key=party_a.key, certificate=party_a.cert,
                                    chain=party_a.chain, options=SealOptions(level="B-T"),
                                    seal_png=party_a.png, timestamper=pki.timestamper(),
                                    validation_context=pki.validation_context())

    sealed = asyncio.run(inside_a_service())
    (status,) = _statuses(sealed, pki)
    assert status.bottom_line


def test_a_refused_seal_raises_an_eseal_error_not_a_library_error(
        party_a: Enterprise, pki: Pki) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    stranger = pki.issue_seal(other.public_key(), party_a.name, "91110105MA01ABCD2X")
    with pytest.raises(EsealError) as exc:
        seal_pdf(make_pdf(), key=party_a.key, certificate=stranger, chain=party_a.chain,
                 options=SealOptions(level="B-B"), seal_png=party_a.png)
    assert exc.value.code == "SEAL_KEY_MISMATCH"


def test_production_b_lt_fetches_crls_and_the_timestamp_over_http(
        party_a: Enterprise, pki: Pki, services: ThreadingHTTPServer,
        token_signatures: list[bytes]) -> None:
    _Services.requests.clear()
    sealed = seal_pdf(make_pdf(), key=party_a.key, certificate=party_a.cert,
                      chain=party_a.chain, options=SealOptions(level="B-LT"),
                      seal_png=party_a.png, timestamper=f"{pki.base_url}/tsa")
    assert len(token_signatures) == 1
    assert {"/tsa", "/crl/issuing.crl", "/crl/root.crl"} <= set(_Services.requests)
    reader = PdfFileReader(io.BytesIO(sealed))
    embedded = {bytes(ref.get_object().data) for ref in reader.root["/DSS"]["/CRLs"]}
    assert {c.public_bytes(serialization.Encoding.DER) for c in pki.crls()} <= embedded
    assert reader.xrefs.total_revisions == 2
    (status,) = _statuses(sealed, pki)
    assert status.bottom_line and status.timestamp_validity is not None


def test_unreachable_revocation_service_refuses_b_lt_before_the_token_signs(
        token: TokenSession, pki: Pki, token_signatures: list[bytes]) -> None:
    party = _enterprise(token, pki, "北京堃喆科技有限公司", "91110108551385082Q")
    orphan = pki.issue_seal(party.key.public_key(), party.name, "91110108551385082Q",
                            crl_base=DEAD_URL)
    with pytest.raises(SealServiceUnavailable) as exc:
        seal_pdf(make_pdf(), key=party.key, certificate=orphan, chain=party.chain,
                 options=SealOptions(level="B-LT"), seal_png=party.png,
                 timestamper=f"{pki.base_url}/tsa")
    assert exc.value.code == "REVOCATION_UNAVAILABLE"
    assert token_signatures == []


def test_document_certified_against_any_change_is_not_sealed(
        party_b: Enterprise, pki: Pki) -> None:
    software_key = ec.generate_private_key(ec.SECP256R1())
    author = pki.issue_seal(software_key.public_key(), "作者有限公司", "91110000802100433B")
    key_info = asn1_keys.PrivateKeyInfo.load(software_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    signer = signers.SimpleSigner(
        signing_cert=_asn1(author), signing_key=key_info,
        cert_registry=SimpleCertificateStore.from_certs([_asn1(pki.issuing)]))
    locked = signers.sign_pdf(
        IncrementalPdfFileWriter(io.BytesIO(make_pdf(empty_field="PartyB"))),
        signers.PdfSignatureMetadata(field_name="Author", certify=True,
                                     docmdp_permissions=MDPPerm.NO_CHANGES),
        signer=signer).getvalue()
    with pytest.raises(Conflict) as exc:
        _seal(party_b, locked, pki, field_name="PartyB", level="B-B")
    assert exc.value.code == "PDF_LOCKED"
