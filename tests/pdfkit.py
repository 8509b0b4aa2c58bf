"""Test kit for PDF seals: a throw-away PKI, hand-written PDFs, pyHanko signing, pdfsig.

Why a kit and not fixtures: the verifier's tests, the signer's tests and the API tests all need
the same things — a PKI that looks like ours (root P-384 → issuing P-256 → seal / login / TSA
certificates with our policy OIDs), PDFs whose object numbers are known so that an attack can
replace exactly one object, sealed files made by an engine we did not write (pyHanko), CRLs
with the reasons our CA uses (keyCompromise with invalidityDate, certificateHold), and the
independent judge (poppler's ``pdfsig``). Everything is generated at test time in memory;
nothing here touches a token or the network.

Main entry points::

    pki = make_pki()                                  # once per module: EC keys are fast
    doc = make_pdf(pages=2)                            # SamplePdf: bytes + object numbers
    sealed = seal_pdf(doc.data, pki.seal, pki, timestamp=True,
                      dss_crls=[pki.crl(), pki.root_crl()])
    tampered = append_update(sealed, {doc.content_ids[0]: stream_object(b"...")})
    pdfsig_check(path, pki.root.cert)                  # PdfsigResult

The raw writer (``PdfBuilder``, ``append_update``, ``stream_object``) is deliberately
independent of pyHanko: attack files must be built by something other than the parser that
judges them.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import tempfile
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from eseal.pki.oids import (
    DOCUMENT_SIGNING,
    ORGANIZATION_IDENTIFIER,
    POLICY_ENTERPRISE_LOGIN,
    POLICY_ENTERPRISE_SEAL,
    POLICY_ISSUING,
    POLICY_ROOT,
    POLICY_TSA,
)

__all__ = [
    "ALT_TEXT",
    "USCC_ALPHABET",
    "CrlServer",
    "Issued",
    "PdfBuilder",
    "PdfsigResult",
    "SamplePdf",
    "TestPki",
    "add_doc_timestamp",
    "add_dss",
    "append_update",
    "asn1_cert",
    "break_startxref",
    "crl_der",
    "last_startxref",
    "linearized_layout",
    "make_crl",
    "make_form_pdf",
    "make_ocsp_response",
    "make_pdf",
    "make_pki",
    "object_offset",
    "pdfsig_check",
    "pyhanko_signer",
    "rewrite_pdf",
    "seal_pdf",
    "stream_object",
    "timestamper",
    "uscc_with_check",
    "xref_entries",
]

# ---------------------------------------------------------------------------------------------
# identity helpers

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc_with_check(first17: str) -> str:
    """Complete a 17-character USCC body with its GB 32100-2015 check character."""
    total = sum(USCC_ALPHABET.index(ch) * pow(3, i, 31) for i, ch in enumerate(first17))
    check = 31 - total % 31
    return first17 + USCC_ALPHABET[0 if check == 31 else check]


# ---------------------------------------------------------------------------------------------
# the test PKI

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate with its software private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class TestPki:
    """Root P-384 → issuing P-256 → end-entity certificates shaped like eseal's profiles.

    ``seal`` carries the seal policy, ``login`` the login policy, ``tsa`` is an RSA time-stamping
    certificate (pyHanko's test TSA signs with RSA only). ``now`` is the moment the PKI was
    built; certificates are valid from 30 days before it.
    """

    __test__ = False  # not a pytest class

    root: Issued
    issuing: Issued
    seal: Issued
    login: Issued
    tsa: Issued
    now: datetime
    enterprise_name: str
    uscc: str
    crl_url: str
    root_crl_url: str

    def issue_seal(self, *, name: str | None = None, uscc: str | None = None,
                   policy: x509.ObjectIdentifier = POLICY_ENTERPRISE_SEAL,
                   not_before: datetime | None = None,
                   not_after: datetime | None = None) -> Issued:
        """Another seal certificate (e.g. one to revoke) from the same issuing CA."""
        return _issue_enterprise(
            self.issuing, name or self.enterprise_name, uscc or self.uscc, policy=policy,
            now=self.now, crl_url=self.crl_url, not_before=not_before, not_after=not_after)

    def crl(self, revoked: Iterable[tuple[x509.Certificate, datetime, x509.ReasonFlags | None,
                                          datetime | None]] = (),
            *, this_update: datetime | None = None,
            next_update: datetime | None = None, number: int = 1) -> x509.CertificateRevocationList:
        """A CRL from the issuing CA. ``revoked`` holds (cert, revocation date, reason,
        invalidity date); defaults: thisUpdate = now - 1 h, nextUpdate = thisUpdate + 7 days."""
        return make_crl(self.issuing, revoked, this_update=this_update or self.now - _HOUR,
                        next_update=next_update, number=number)

    def root_crl(self, *, this_update: datetime | None = None) -> x509.CertificateRevocationList:
        """An empty CRL from the root, covering the issuing CA certificate."""
        return make_crl(self.root, (), this_update=this_update or self.now - _HOUR)


_HOUR = timedelta(hours=1)


def _name(cn: str, org: str | None = None, uscc: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    if org is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if uscc is not None:
        attrs.append(x509.NameAttribute(ORGANIZATION_IDENTIFIER, f"NTRCN-{uscc}"))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _policies(oid: x509.ObjectIdentifier) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(oid, None)])


def _sign_alg(key: PrivateKey) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()


def _ca_cert(subject: x509.Name, key: PrivateKey, issuer: Issued | None, *, now: datetime,
             policy: x509.ObjectIdentifier, path_length: int | None,
             crl_url: str | None) -> Issued:
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=3650))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(_policies(policy), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
    if crl_url:
        builder = builder.add_extension(_crl_dp(crl_url), critical=False)
    return Issued(builder.sign(signer_key, _sign_alg(signer_key)), key)


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)], relative_name=None, reasons=None,
        crl_issuer=None)])


def _leaf_builder(issuer: Issued, subject: x509.Name, key: PrivateKey, *, now: datetime,
                  crl_url: str, not_before: datetime | None = None,
                  not_after: datetime | None = None) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=30))
        .not_valid_after(not_after or now + timedelta(days=335))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
        .add_extension(_crl_dp(crl_url), critical=False)
        .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP,
            x509.UniformResourceIdentifier(crl_url.rsplit("/", 1)[0] + "/ocsp"))]),
            critical=False)
    )


def _issue_enterprise(issuer: Issued, name: str, uscc: str, *, policy: x509.ObjectIdentifier,
                      now: datetime, crl_url: str, not_before: datetime | None = None,
                      not_after: datetime | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    login = policy == POLICY_ENTERPRISE_LOGIN
    builder = _leaf_builder(issuer, _name(name, name, uscc), key, now=now, crl_url=crl_url,
                            not_before=not_before, not_after=not_after)
    builder = builder.add_extension(x509.KeyUsage(
        digital_signature=True, content_commitment=not login, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False), critical=True)
    ekus = ([ExtendedKeyUsageOID.CLIENT_AUTH] if login
            else [DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION])
    builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    builder = builder.add_extension(_policies(policy), critical=False)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def make_pki(*, now: datetime | None = None, enterprise_name: str = "测试𠮷科技有限公司",
             uscc: str | None = None, crl_base_url: str = "http://127.0.0.1:9/eseal",
             ca_name: str = "eseal Test") -> TestPki:
    """Build the whole test PKI (about 0.1 s: one RSA key for the TSA, EC for the rest).

    Certificates point their CRL distribution points at ``crl_base_url`` + ``/issuing.crl``
    (end entities) and ``/root.crl`` (the issuing CA); the default port 9 refuses connections,
    so nothing is fetched unless a :class:`CrlServer` serves them. ``ca_name`` prefixes the CA
    and TSA names (a second PKI with the same prefix impersonates the first one's names).
    """
    now = now or datetime.now(UTC).replace(microsecond=0)
    uscc = uscc or uscc_with_check("91350100M00010001")
    crl_url, root_crl_url = f"{crl_base_url}/issuing.crl", f"{crl_base_url}/root.crl"
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _ca_cert(_name(f"{ca_name} Root CA", "eseal test"), root_key, None, now=now,
                    policy=POLICY_ROOT, path_length=1, crl_url=None)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = _ca_cert(_name(f"{ca_name} Issuing CA", "eseal test"), issuing_key, root,
                       now=now, policy=POLICY_ISSUING, path_length=0, crl_url=root_crl_url)
    seal = _issue_enterprise(issuing, enterprise_name, uscc, policy=POLICY_ENTERPRISE_SEAL,
                             now=now, crl_url=crl_url)
    login = _issue_enterprise(issuing, enterprise_name, uscc, policy=POLICY_ENTERPRISE_LOGIN,
                              now=now, crl_url=crl_url)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa_cert = (
        _leaf_builder(issuing, _name(f"{ca_name} TSA", "eseal test"), tsa_key, now=now,
                      crl_url=crl_url, not_after=now + timedelta(days=3000))
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                       critical=True)
        .add_extension(_policies(POLICY_TSA), critical=False)
        .sign(issuing_key, hashes.SHA256())
    )
    return TestPki(root=root, issuing=issuing, seal=seal, login=login,
                   tsa=Issued(tsa_cert, tsa_key), now=now, enterprise_name=enterprise_name,
                   uscc=uscc, crl_url=crl_url, root_crl_url=root_crl_url)


def make_crl(issuer: Issued, revoked: Iterable[tuple[x509.Certificate, datetime,
                                                     x509.ReasonFlags | None, datetime | None]],
             *, this_update: datetime, next_update: datetime | None = None,
             number: int = 1) -> x509.CertificateRevocationList:
    """A CRL signed by ``issuer`` listing (cert, revocation date, reason, invalidity date)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(this_update)
        .next_update(next_update or this_update + timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
    )
    for cert, when, reason, invalidity in revoked:
        entry = (x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                 .revocation_date(when))
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        if invalidity is not None:
            entry = entry.add_extension(x509.InvalidityDate(invalidity), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer.key, _sign_alg(issuer.key))


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    """The asn1crypto view pyHanko wants."""
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _asn1_key(key: PrivateKey) -> asn1_keys.PrivateKeyInfo:
    return asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


# ---------------------------------------------------------------------------------------------
# a raw PDF writer (independent of pyHanko on purpose)


def stream_object(data: bytes, extra: str = "", *, compress: bool = False) -> bytes:
    """The body of a stream object (``<< /Length n ... >> stream ... endstream``)."""
    if compress:
        data = zlib.compress(data)
        extra = f"{extra} /Filter /FlateDecode"
    return (f"<< /Length {len(data)}{' ' if extra else ''}{extra.strip()} >>\nstream\n".encode()
            + data + b"\nendstream")


class PdfBuilder:
    """Collect numbered object bodies and write a classic-xref PDF 1.7 file."""

    def __init__(self) -> None:
        self.objects: dict[int, bytes] = {}

    def reserve(self) -> int:
        num = len(self.objects) + 1
        self.objects[num] = b"null"
        return num

    def add(self, body: bytes | str) -> int:
        num = self.reserve()
        self.set(num, body)
        return num

    def set(self, num: int, body: bytes | str) -> None:
        self.objects[num] = body.encode("latin-1") if isinstance(body, str) else body

    def build(self, root: int, info: int | None = None) -> bytes:
        out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        offsets: dict[int, int] = {}
        for num in sorted(self.objects):
            offsets[num] = len(out)
            out += f"{num} 0 obj\n".encode() + self.objects[num] + b"\nendobj\n"
        size = max(self.objects) + 1
        xref_at = len(out)
        out += f"xref\n0 {size}\n".encode() + b"0000000000 65535 f\r\n"
        for num in range(1, size):
            if num in offsets:
                out += f"{offsets[num]:010d} 00000 n\r\n".encode()
            else:
                out += b"0000000000 00000 f\r\n"
        trailer = f"<< /Size {size} /Root {root} 0 R"
        if info is not None:
            trailer += f" /Info {info} 0 R"
        trailer += " /ID [<0123456789abcdef0123456789abcdef> <0123456789abcdef0123456789abcdef>] >>"
        out += f"trailer\n{trailer}\nstartxref\n{xref_at}\n%%EOF\n".encode()
        return bytes(out)


def linearized_layout(data: bytes) -> bytes:
    """Re-lay a single-revision classic-xref PDF (from :class:`PdfBuilder`) the way a
    linearizer does: a linearization dictionary and a first-page xref section at the top
    whose trailer says ``startxref 0`` and points forward (/Prev) to the main xref section at
    the end, which the final ``startxref`` does *not* name. Hint tables are left out: this is
    about the cross-reference layout verifiers must cope with, not about fast web view."""
    offsets = xref_entries(data)
    bodies: dict[int, bytes] = {}
    for num, off in offsets.items():
        start = data.index(b"obj", off) + 3
        bodies[num] = data[start:data.index(b"\nendobj", start)].strip()
    trailer = _trailer_entries(data)
    root_body = bodies[int(trailer["Root"].split()[0])]
    pages_ref = re.search(rb"/Pages\s+(\d+)", root_body)
    count = re.search(rb"/Count\s+(\d+)", bodies[int(pages_ref.group(1))]) if pages_ref else None
    pages = int(count.group(1)) if count else 1
    lin = max(bodies) + 1
    split = (lin + 1) // 2  # objects split..lin in the first-page section, 1..split-1 in main
    first_ids = [n for n in sorted(bodies) if n >= split]
    main_ids = [n for n in sorted(bodies) if n < split]

    def render(main_xref: int, first_xref: int, total_len: int) -> tuple[bytes, int, int]:
        out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
        pos: dict[int, int] = {lin: len(out)}
        # /T: the white-space before the main section's first entry (ISO 32000-1 F.2.2)
        main_entries = main_xref + len(f"xref\n0 {split}") if main_xref else 0
        out += (f"{lin} 0 obj\n<< /Linearized 1 /L {total_len:010d} /N {pages} "
                f"/T {main_entries:010d} >>\nendobj\n").encode()
        first_at = len(out)
        rows = [(lin, None)] + [(n, None) for n in first_ids]
        out += b"xref\n" + f"{split} {lin - split + 1}\n".encode()
        out += b"".join(b"%010d 00000 n\r\n" % 0 for _ in rows)  # patched below
        info = f" /Info {trailer['Info']}" if "Info" in trailer else ""
        out += (f"trailer\n<< /Size {lin + 1} /Root {trailer['Root']}{info} "
                f"/Prev {main_xref:010d} >>\nstartxref\n0\n%%EOF\n").encode()
        for n in first_ids + main_ids:
            pos[n] = len(out)
            out += f"{n} 0 obj\n".encode() + bodies[n] + b"\nendobj\n"
        main_at = len(out)
        out += f"xref\n0 {split}\n".encode() + b"0000000000 65535 f\r\n"
        for n in range(1, split):
            out += (f"{pos[n]:010d} 00000 n\r\n" if n in pos
                    else "0000000000 00000 f\r\n").encode()
        out += f"trailer\n<< /Size {split} >>\nstartxref\n{first_at}\n%%EOF\n".encode()
        # patch the first-page section's entries now that offsets are known
        table = first_at + len(b"xref\n" + f"{split} {lin - split + 1}\n".encode())
        for i, n in enumerate(range(split, lin + 1)):
            entry = (f"{pos[n]:010d} 00000 n\r\n" if n in pos
                     else "0000000000 00000 f\r\n").encode()
            out[table + 20 * i:table + 20 * (i + 1)] = entry
        return bytes(out), main_at, first_at

    first_pass, main_at, first_at = render(0, 0, 0)
    final, main_at2, _ = render(main_at, first_at, len(first_pass))
    assert main_at2 == main_at and len(final) == len(first_pass)
    return final


@dataclass(frozen=True)
class SamplePdf:
    """A generated PDF and the object numbers an attack may want to touch.

    The file is shaped like a "shadow document" (Mainka et al.): besides the visible pages it
    carries objects that are present at signing time but unused or invisible, so that a
    later update could reveal or activate them:

    * ``hidden_overlay_id``: a form XObject painting "PAY 1,000,000 CNY" over the page, drawn
      by page 1 inside optional content whose group is OFF (``ocg_config_id`` is the indirect
      default configuration dictionary that says so);
    * ``unused_content_id`` / ``unused_font_id``: objects reachable from nothing;
    * ``alt_catalog_id``: a complete second catalog + page tree (showing ``ALT_TEXT``) that
      no trailer points to;
    * ``payload_offset``: where, inside an unused stream, the bytes of a complete indirect
      object ``<content_ids[0]> 0 obj`` with other page content sit (an xref entry pointing
      there would swap the page content without adding a byte);
    * ``form_field_id``: a filled text field ("amount: 1,000"), when ``with_form``.

    ``image_id`` is a binary (Flate) image; content streams are Flate-compressed binary too.
    """

    data: bytes
    catalog_id: int
    pages_id: int
    page_ids: list[int]
    content_ids: list[int]
    font_id: int
    image_id: int
    hidden_overlay_id: int
    ocg_id: int
    ocg_config_id: int
    unused_content_id: int
    unused_font_id: int
    alt_catalog_id: int
    payload_offset: int
    info_id: int
    form_field_id: int | None


ALT_TEXT = "Annual report 2025: revenue 9,999,999 CNY"


def _page_text(i: int, text: str) -> bytes:
    body = (f"BT /F1 18 Tf 72 720 Td ({text} - page {i + 1}) Tj ET\n"
            "q 100 0 0 100 72 500 cm /Im1 Do Q\n").encode("latin-1")
    if i == 0:  # the hidden layer: invisible while its optional content group is OFF
        body += b"/OC /oc1 BDC /Ov1 Do EMC\n"
    return body


def make_pdf(pages: int = 1, *, text: str = "Annual report 2025: revenue 1,000 CNY",
             compress: bool = True, kids_per_node: int = 500,
             with_form: bool = False) -> SamplePdf:
    """A small, valid PDF with ``pages`` pages (a balanced page tree beyond ``kids_per_node``).

    Every page shares one font and one 16×16 binary image; each page has its own content
    stream (Flate-compressed when ``compress``), except that above 1,000 pages all pages but
    the first share one content stream so that a 50,000-page file stays under 10 MB.
    """
    b = PdfBuilder()
    catalog = b.reserve()
    pages_root = b.reserve()
    info = b.add("<< /Producer (eseal tests/pdfkit) /Title (Sample filing) >>")
    font = b.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>")
    pixels = bytes((x * 16 + y) % 256 for x in range(16) for y in range(16)) * 3
    image = b.add(stream_object(
        pixels, "/Type /XObject /Subtype /Image /Width 16 /Height 16 /ColorSpace /DeviceRGB "
        "/BitsPerComponent 8", compress=True))
    overlay = b.add(stream_object(
        b"q 1 1 1 rg 0 0 612 792 re f Q BT /F1 36 Tf 72 600 Td (PAY 1,000,000 CNY) Tj ET",
        "/Type /XObject /Subtype /Form /BBox [0 0 612 792] "
        f"/Resources << /Font << /F1 {font} 0 R >> >>"))
    ocg = b.add("<< /Type /OCG /Name (hidden layer) >>")
    ocg_config = b.add(f"<< /Order [{ocg} 0 R] /OFF [{ocg} 0 R] >>")
    unused_content = b.add(stream_object(f"BT /F1 18 Tf 72 720 Td ({ALT_TEXT}) Tj ET".encode(),
                                         compress=compress))
    unused_font = b.add("<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>")
    # a complete alternative document nobody points to (yet)
    alt_catalog = b.reserve()
    alt_pages = b.reserve()
    alt_page = b.reserve()
    b.set(alt_page, f"<< /Type /Page /Parent {alt_pages} 0 R /MediaBox [0 0 612 792] "
                    f"/Resources << /Font << /F1 {font} 0 R >> >> "
                    f"/Contents {unused_content} 0 R >>")
    b.set(alt_pages, f"<< /Type /Pages /Kids [{alt_page} 0 R] /Count 1 >>")
    b.set(alt_catalog, f"<< /Type /Catalog /Pages {alt_pages} 0 R >>")
    form_field = None
    if with_form:
        form_field = b.add("<< /FT /Tx /T (amount) /V (1,000 CNY) /DA (/Helv 12 Tf 0 g) "
                           "/Type /Annot /Subtype /Widget /Rect [72 400 300 420] /F 4 >>")
    shared = pages > 1000
    shared_content = b.add(stream_object(_page_text(1, text), compress=compress)) if shared \
        else None
    page_ids: list[int] = []
    content_ids: list[int] = []
    for i in range(pages):
        page = b.reserve()
        if shared_content is None or i == 0:
            content = b.add(stream_object(_page_text(i, text), compress=compress))
        else:
            content = shared_content
        page_ids.append(page)
        content_ids.append(content)
    # the hidden replacement for page 1's content, as raw object bytes inside a stream
    evil = f"BT /F1 18 Tf 72 720 Td ({ALT_TEXT} - page 1) Tj ET".encode()
    payload = (f"{content_ids[0]} 0 obj\n<< /Length {len(evil)} >>\nstream\n".encode() + evil
               + b"\nendstream\nendobj\n")
    b.add(stream_object(b"% notes\n" + payload))
    # balanced tree: every node holds up to kids_per_node kids
    level: list[tuple[int, int]] = [(p, 1) for p in page_ids]  # (object, page count)
    parent_of: dict[int, int] = {}
    nodes: dict[int, tuple[list[int], int]] = {}
    while len(level) > kids_per_node:
        next_level: list[tuple[int, int]] = []
        for start in range(0, len(level), kids_per_node):
            chunk = level[start:start + kids_per_node]
            node = b.reserve()
            for kid, _ in chunk:
                parent_of[kid] = node
            count = sum(c for _, c in chunk)
            nodes[node] = ([k for k, _ in chunk], count)
            next_level.append((node, count))
        level = next_level
    for kid, _ in level:
        parent_of[kid] = pages_root
    for node, (kids_of, count) in nodes.items():
        kids = " ".join(f"{k} 0 R" for k in kids_of)
        b.set(node, f"<< /Type /Pages /Kids [{kids}] /Count {count} "
                    f"/Parent {parent_of[node]} 0 R >>")
    kids = " ".join(f"{k} 0 R" for k, _ in level)
    b.set(pages_root, f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>")
    for i, page in enumerate(page_ids):
        if i == 0:
            extra = (f" /XObject << /Im1 {image} 0 R /Ov1 {overlay} 0 R >>"
                     f" /Properties << /oc1 {ocg} 0 R >>")
            annots = f" /Annots [{form_field} 0 R]" if form_field else ""
        else:
            extra, annots = f" /XObject << /Im1 {image} 0 R >>", ""
        b.set(page, (f"<< /Type /Page /Parent {parent_of[page]} 0 R /MediaBox [0 0 612 792] "
                     f"/Resources << /Font << /F1 {font} 0 R >>{extra} >> "
                     f"/Contents {content_ids[i]} 0 R{annots} >>"))
        if i == 0 and form_field:
            b.set(form_field, b.objects[form_field].replace(b" >>", f" /P {page} 0 R >>".encode()))
    acroform = (f" /AcroForm << /Fields [{form_field} 0 R] /DR << /Font << /Helv {font} 0 R >> >>"
                f" /DA (/Helv 12 Tf 0 g) >>") if form_field else ""
    b.set(catalog, f"<< /Type /Catalog /Pages {pages_root} 0 R "
                   f"/OCProperties << /OCGs [{ocg} 0 R] /D {ocg_config} 0 R >>{acroform} >>")
    data = b.build(catalog, info)
    payload_offset = data.index(payload)
    return SamplePdf(data=data, catalog_id=catalog, pages_id=pages_root, page_ids=page_ids,
                     content_ids=content_ids, font_id=font, image_id=image,
                     hidden_overlay_id=overlay, ocg_id=ocg, ocg_config_id=ocg_config,
                     unused_content_id=unused_content, unused_font_id=unused_font,
                     alt_catalog_id=alt_catalog, payload_offset=payload_offset, info_id=info,
                     form_field_id=form_field)


def _fill(body: bytes | str, refs: Mapping[str, str]) -> bytes:
    raw = body.encode("latin-1") if isinstance(body, str) else body
    for name, ref in refs.items():
        raw = raw.replace(b"{" + name.encode() + b"}", ref.encode())
    return raw


def make_form_pdf(fields: Sequence[str], *, objects: Mapping[str, bytes | str] | None = None,
                  form_extra: str = "") -> bytes:
    """A one-page PDF whose AcroForm has the top-level ``fields`` (dictionary sources; each
    is also a widget on the page, as are the ``objects`` named ``kid...``; an entry
    ``@name`` lists object ``name`` as a field without making it a widget). In every source,
    ``{page}``, ``{font}`` (Helvetica, WinAnsi; /Helv in the form's /DR) and ``{<name>}`` for
    each of ``objects`` (written as indirect objects) become references. ``form_extra`` is
    added to the /AcroForm dictionary (e.g. ``/NeedAppearances true``)."""
    objects = dict(objects or {})
    b = PdfBuilder()
    catalog, pages, page = b.reserve(), b.reserve(), b.reserve()
    font = b.add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica "
                 "/Encoding /WinAnsiEncoding >>")
    ids = {name: b.reserve() for name in objects}
    field_ids = [ids[f[1:]] if f.startswith("@") else b.reserve() for f in fields]
    refs = {"page": f"{page} 0 R", "font": f"{font} 0 R",
            **{name: f"{num} 0 R" for name, num in ids.items()}}
    for name, body in objects.items():
        b.set(ids[name], _fill(body, refs))
    for num, body in zip(field_ids, fields, strict=True):
        if not body.startswith("@"):
            b.set(num, _fill(body, refs))
    widgets = [num for num, body in zip(field_ids, fields, strict=True)
               if not body.startswith("@")]
    widgets += [num for name, num in ids.items() if name.startswith("kid")]
    content = b.add(stream_object(b"BT /F1 18 Tf 72 720 Td (Annual report 2025) Tj ET"))
    b.set(page, f"<< /Type /Page /Parent {pages} 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 {font} 0 R >> >> /Contents {content} 0 R "
                f"/Annots [{' '.join(f'{n} 0 R' for n in widgets)}] >>")
    b.set(pages, f"<< /Type /Pages /Kids [{page} 0 R] /Count 1 >>")
    fields_src = " ".join(f"{n} 0 R" for n in field_ids)
    b.set(catalog, f"<< /Type /Catalog /Pages {pages} 0 R /AcroForm << /Fields [{fields_src}] "
                   f"/DR << /Font << /Helv {font} 0 R >> >> /DA (/Helv 12 Tf 0 g) "
                   f"{form_extra} >> >>")
    return b.build(catalog)


_STARTXREF = re.compile(rb"startxref\s+(\d+)\s+%%EOF\s*$")
_TRAILER = re.compile(rb"trailer\s*<<(.*?)>>\s*startxref", re.S)


def last_startxref(data: bytes) -> int:
    m = _STARTXREF.search(data[-1024:])
    if not m:
        raise ValueError("no startxref/%%EOF at the end of the data")
    return int(m.group(1))


def break_startxref(data: bytes) -> bytes:
    """``data`` with its last startxref pointing at offset 12, where no xref is."""
    at = data.rindex(b"startxref")
    return data[:at] + b"startxref\n12\n%%EOF\n"


def _trailer_entries(data: bytes) -> dict[str, str]:
    """/Root, /Info, /Size of the last revision (classic trailer or xref stream dict)."""
    xref_at = last_startxref(data)
    tail = data[xref_at:]
    if tail.startswith(b"xref"):
        m = _TRAILER.search(tail)
        if not m:
            raise ValueError("no trailer after the last xref table")
        body = m.group(1)
    else:  # an xref stream object: take its dictionary
        body = tail[:tail.index(b"stream")]
    out: dict[str, str] = {}
    for key in ("Root", "Info"):
        km = re.search(rb"/" + key.encode() + rb"\s+(\d+\s+\d+\s+R)", body)
        if km:
            out[key] = km.group(1).decode()
    sm = re.search(rb"/Size\s+(\d+)", body)
    if not sm:
        raise ValueError("trailer without /Size")
    out["Size"] = sm.group(1).decode()
    return out


def append_update(data: bytes, objects: Mapping[int, bytes | str], *,
                  root: str | None = None, pointers: Mapping[int, int] | None = None,
                  raw_objects: Mapping[int, bytes] | None = None, prev: int | None = None,
                  trailer_from: bytes | None = None, eol: bytes = b"\n") -> bytes:
    """Append a classic incremental update (objects + xref table + trailer with /Prev).

    ``objects`` maps object numbers to new bodies written as ``n 0 obj ... endobj``;
    ``raw_objects`` maps object numbers to bytes written verbatim (whatever header they
    carry) that the xref then points at; ``pointers`` maps object numbers to *existing* byte
    offsets (an xref-only redirection: no new bytes at all). ``root`` overrides the trailer's
    /Root ("12 0 R"); ``prev`` overrides /Prev (default: the last startxref of ``data``) and
    ``trailer_from`` the file whose last trailer supplies /Root, /Info and /Size.
    """
    entries = _trailer_entries(trailer_from if trailer_from is not None else data)
    prev = last_startxref(data) if prev is None else prev
    out = bytearray(data)
    if not out.endswith((b"\n", b"\r")):
        out += eol
    offsets: dict[int, int] = dict(pointers or {})
    for num, raw in sorted((raw_objects or {}).items()):
        offsets[num] = len(out)
        out += raw
    for num, body in sorted(objects.items()):
        offsets[num] = len(out)
        encoded = body.encode("latin-1") if isinstance(body, str) else body
        out += f"{num} 0 obj\n".encode() + encoded + b"\nendobj\n"
    size = max(int(entries["Size"]), max(offsets, default=0) + 1)
    xref_at = len(out)
    out += b"xref\n"
    for num in sorted(offsets):
        out += f"{num} 1\n{offsets[num]:010d} 00000 n\r\n".encode()
    trailer = f"<< /Size {size} /Root {root or entries['Root']}"
    if "Info" in entries:
        trailer += f" /Info {entries['Info']}"
    trailer += f" /Prev {prev} >>"
    out += f"trailer\n{trailer}\nstartxref\n{xref_at}\n%%EOF".encode() + eol
    return bytes(out)


_XREF_SUBSECTION = re.compile(rb"(\d+) (\d+)[ \t]*\r?\n")


def xref_entries(data: bytes) -> dict[int, int]:
    """Object number → offset as the classic xref tables of ``data`` say (newest revision
    wins), following /Prev. Files with xref streams give an empty map."""
    found: dict[int, int] = {}
    at: int | None = last_startxref(data)
    seen: set[int] = set()
    while at is not None and at not in seen and data.startswith(b"xref", at):
        seen.add(at)
        pos = at + 4
        while True:
            while data[pos:pos + 1] in (b" ", b"\r", b"\n"):
                pos += 1
            m = _XREF_SUBSECTION.match(data, pos)
            if m is None:
                break
            first, count = int(m.group(1)), int(m.group(2))
            pos = m.end()
            for i in range(count):
                entry = data[pos:pos + 20]
                pos += 20
                if entry[17:18] == b"n":
                    found.setdefault(first + i, int(entry[:10]))
        trailer = _TRAILER.search(data, at)
        pm = re.search(rb"/Prev\s+(\d+)", trailer.group(1)) if trailer else None
        at = int(pm.group(1)) if pm else None
    return found


def object_offset(data: bytes, num: int) -> int:
    """Offset of object ``num`` as the current xref says (tests use it to aim edits); for
    files with xref streams, the last ``num 0 obj`` header in the bytes."""
    offsets = xref_entries(data)
    if num in offsets:
        return offsets[num]
    hits = [m.start() for m in re.finditer(rb"(?<![0-9])" + str(num).encode() + rb" 0 obj", data)]
    if not hits:
        raise ValueError(f"object {num} not found")
    return hits[-1]


# ---------------------------------------------------------------------------------------------
# signing with pyHanko (the reference engine; our own signer is tested elsewhere)


def timestamper(pki: TestPki, at: datetime | None = None):  # -> DummyTimeStamper
    """pyHanko's in-process test TSA with our TSA certificate, optionally at a fixed time."""
    from pyhanko.sign.timestamps import DummyTimeStamper

    return DummyTimeStamper(tsa_cert=asn1_cert(pki.tsa.cert), tsa_key=_asn1_key(pki.tsa.key),
                            certs_to_embed=[asn1_cert(pki.issuing.cert)], fixed_dt=at)


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def pyhanko_signer(signer: Issued, pki: TestPki):  # -> signers.SimpleSigner
    """pyHanko's software signer for ``signer``, with the issuing and root certificates."""
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    return signers.SimpleSigner(
        signing_cert=asn1_cert(signer.cert), signing_key=_asn1_key(signer.key),
        cert_registry=SimpleCertificateStore.from_certs(
            [asn1_cert(pki.issuing.cert), asn1_cert(pki.root.cert)]))


def seal_pdf(data: bytes, signer: Issued, pki: TestPki, *, field_name: str = "Seal1",
             timestamp: bool | datetime = False, dss_crls: Sequence[
                 x509.CertificateRevocationList] = (),
             embed_validation_info: bool = False, lta: bool = False,
             visible: bool = False, box: tuple[int, int, int, int] | None = None,
             subfilter: str = "pades",
             reason: str | None = "电子签章", dss_in_signed_revision: bool = False,
             certify: int | None = None, dss_ocsps: Sequence[bytes] = ()) -> bytes:
    """Seal ``data`` with pyHanko as an incremental update.

    ``timestamp`` adds a signature timestamp from the test TSA (``True`` = now, or a fixed
    time). ``embed_validation_info`` makes pyHanko validate the chain before signing with
    ``dss_crls`` (default: fresh empty CRLs) and put them in the DSS itself (its B-LT flow: a
    DSS revision after the signature, or inside the signed revision with
    ``dss_in_signed_revision``, as eseal's own signer does); ``lta`` then adds a document
    timestamp. ``dss_crls`` *without* ``embed_validation_info`` appends a DSS update with
    exactly those CRLs after signing, with no pre-signing check (so revoked or held
    certificates can be "sealed" for tests). ``certify`` makes it a certification signature
    with that DocMDP permission level (1 = no changes, 2 = form filling and signing).
    ``dss_ocsps`` (DER OCSP responses) join ``dss_crls`` in pyHanko's pre-signing check, so
    they are embedded too.
    ``visible`` puts the seal's widget on page 1 at ``box`` (default: 400,80 to 560,240).
    """
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.sign.fields import MDPPerm, SigSeedSubFilter
    from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
    from pyhanko_certvalidator import ValidationContext

    simple = pyhanko_signer(signer, pki)
    vc = None
    if embed_validation_info:
        vc = ValidationContext(
            trust_roots=[asn1_cert(pki.root.cert)], allow_fetching=False,
            crls=[crl_der(c) for c in dss_crls] or [crl_der(pki.crl()), crl_der(pki.root_crl())],
            ocsps=list(dss_ocsps), revocation_mode="hard-fail")
    dss_settings = DSSContentSettings()
    if dss_in_signed_revision:
        dss_settings = DSSContentSettings(
            include_vri=False, placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE)
    meta = signers.PdfSignatureMetadata(
        field_name=field_name, reason=reason, md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES if subfilter == "pades"
        else SigSeedSubFilter.ADOBE_PKCS7_DETACHED,
        embed_validation_info=embed_validation_info, validation_context=vc,
        use_pades_lta=lta, dss_settings=dss_settings, certify=certify is not None,
        docmdp_permissions=MDPPerm(certify or 2))
    tsa = None
    if timestamp:
        tsa = timestamper(pki, timestamp if isinstance(timestamp, datetime) else None)
    field_spec = None
    if visible or box is not None:
        field_spec = fields.SigFieldSpec(sig_field_name=field_name, on_page=0,
                                         box=box or (400, 80, 560, 240))
    pdf_signer = signers.PdfSigner(meta, simple, timestamper=tsa, new_field_spec=field_spec)
    w = IncrementalPdfFileWriter(BytesIO(data))
    out = BytesIO()
    _run(pdf_signer.async_sign_pdf(w, output=out))
    sealed = out.getvalue()
    if dss_crls and not embed_validation_info:
        sealed = add_dss(sealed, crls=dss_crls, certs=[pki.issuing.cert])
    return sealed


def add_dss(data: bytes, *, crls: Sequence[x509.CertificateRevocationList] = (),
            ocsps: Sequence[bytes] = (), certs: Sequence[x509.Certificate] = ()) -> bytes:
    """Append an incremental update adding exactly these CRLs/OCSP responses to the DSS."""
    from asn1crypto import crl as asn1_crl
    from asn1crypto import ocsp as asn1_ocsp
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    buf = BytesIO(data)
    DocumentSecurityStore.add_dss(
        buf, sig_contents=None, certs=[asn1_cert(c) for c in certs],
        crls=[asn1_crl.CertificateList.load(crl_der(c)) for c in crls],
        ocsps=[asn1_ocsp.OCSPResponse.load(o) for o in ocsps], force_write=True)
    return buf.getvalue()


def form_update(data: bytes, change: Callable[[Any, Any], None]) -> bytes:
    """A bare incremental update (pyHanko's writer) in which ``change(acroform, writer)``
    edits the /AcroForm dictionary: the attacker's tool for changes after sealing."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    w = IncrementalPdfFileWriter(BytesIO(data))
    raw = w.root.raw_get("/AcroForm")
    change(raw.get_object(), w)
    if isinstance(raw, generic.IndirectObject):
        w.mark_update(raw)
    else:
        w.update_root()
    out = BytesIO()
    w.write(out)
    return out.getvalue()


def add_doc_timestamp(data: bytes, pki: TestPki, at: datetime | None = None,
                      field_name: str = "DocTS1") -> bytes:
    """Append a PAdES document timestamp (the B-LTA step)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers

    ts = signers.PdfTimeStamper(timestamper(pki, at), field_name=field_name)
    out = BytesIO()
    _run(ts.async_timestamp_pdf(IncrementalPdfFileWriter(BytesIO(data)), "sha256",
                                output=out))
    return out.getvalue()


# ---------------------------------------------------------------------------------------------
# a CRL distribution point on 127.0.0.1


class CrlServer:
    """Serve CRLs over HTTP on 127.0.0.1 (an ephemeral port) for fetching tests.

    Start it before :func:`make_pki` and pass ``crl_base_url=server.base_url``; then
    ``publish("issuing.crl", pki.crl(...))``. Use as a context manager or call ``close()``.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        files: dict[str, bytes] = {}
        requests: list[str] = []
        self.files = files
        self.requests = requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                body = files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/eseal"

    def publish(self, name: str, crl: x509.CertificateRevocationList) -> None:
        self.files[name] = crl_der(crl)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CrlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------------------------
# poppler's pdfsig as an independent judge


@dataclass(frozen=True)
class PdfsigResult:
    """What ``pdfsig`` printed, reduced to the facts we compare (it always exits 0)."""

    text: str
    signatures: int
    valid: list[bool] = field(default_factory=list)
    trusted: list[bool] = field(default_factory=list)
    total_document_signed: list[bool] = field(default_factory=list)


def pdfsig_check(pdf: Path, root: x509.Certificate, *, workdir: Path | None = None
                 ) -> PdfsigResult:
    """Run ``pdfsig -nssdir sql:DB -no-ocsp`` with an NSS database trusting only ``root``."""
    if shutil.which("pdfsig") is None or shutil.which("certutil") is None:
        raise RuntimeError("pdfsig/certutil are not installed (poppler-utils, libnss3-tools)")
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        db = Path(tmp) / "nss"
        db.mkdir()
        root_pem = Path(tmp) / "root.pem"
        root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
        subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True,
                       capture_output=True)
        subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "root", "-t", "C,C,C",
                        "-i", str(root_pem)], check=True, capture_output=True)
        proc = subprocess.run(["pdfsig", "-nssdir", f"sql:{db}", "-no-ocsp", str(pdf)],
                              capture_output=True, text=True, timeout=120)
    text = proc.stdout + proc.stderr
    blocks = re.split(r"^Signature #\d+:", text, flags=re.M)[1:]
    return PdfsigResult(
        text=text, signatures=len(blocks),
        valid=["Signature Validation: Signature is Valid" in b for b in blocks],
        trusted=["Certificate Validation: Certificate is Trusted" in b for b in blocks],
        total_document_signed=["Total document signed" in b for b in blocks])


def rewrite_pdf(data: bytes, *, xref_stream: bool = True,
                encrypt_password: str | None = None) -> bytes:
    """Copy ``data`` into a fresh single-revision file written by pyHanko's writer: with an
    xref stream and object streams (``xref_stream``), or encrypted with a password."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    writer = copy_into_new_writer(PdfFileReader(BytesIO(data)))
    writer.stream_xrefs = xref_stream
    if encrypt_password is not None:
        writer.encrypt(encrypt_password, encrypt_password)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def make_ocsp_response(pki: TestPki, cert: x509.Certificate, *, revoked_at: datetime | None = None,
                       reason: x509.ReasonFlags | None = None,
                       this_update: datetime | None = None) -> bytes:
    """A DER OCSP response for ``cert`` signed by the issuing CA itself: good, or revoked
    since ``revoked_at`` (with ``reason``). Valid for 7 days from ``this_update``."""
    from cryptography.x509 import ocsp

    this_update = this_update or pki.now - _HOUR
    status = ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(cert=cert, issuer=pki.issuing.cert, algorithm=hashes.SHA256(),
                      cert_status=status, this_update=this_update,
                      next_update=this_update + timedelta(days=7), revocation_time=revoked_at,
                      revocation_reason=reason)
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.issuing.cert)
    )
    return builder.sign(pki.issuing.key, hashes.SHA256()).public_bytes(
        serialization.Encoding.DER)
