"""Test kit: seals made by an engine we did not write (pyHanko), and pyHanko's rewrites.

The verifier must accept what a standard PAdES signer produces and judge what it later does
to a file (document timestamps, DSS additions, form edits, full rewrites) — so those files
come from pyHanko, keyed by the in-memory PKI of ``pkikit``.

    sealed = seal_pdf(doc.data, pki.seal, pki, timestamp=True,
                      dss_crls=[pki.crl(), pki.root_crl()])
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from io import BytesIO
from typing import Any

from cryptography import x509
from pkikit import Issued, TestPki, asn1_cert, asn1_key, crl_der

# ---------------------------------------------------------------------------------------------
# signing with pyHanko (the reference engine; our own signer is tested elsewhere)


def timestamper(pki: TestPki, at: datetime | None = None):  # -> DummyTimeStamper
    """pyHanko's in-process test TSA with our TSA certificate, optionally at a fixed time."""
    from pyhanko.sign.timestamps import DummyTimeStamper

    return DummyTimeStamper(tsa_cert=asn1_cert(pki.tsa.cert), tsa_key=asn1_key(pki.tsa.key),
                            certs_to_embed=[asn1_cert(pki.issuing.cert)], fixed_dt=at)


def _run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


def pyhanko_signer(signer: Issued, pki: TestPki):  # -> signers.SimpleSigner
    """pyHanko's software signer for ``signer``, with the issuing and root certificates."""
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    return signers.SimpleSigner(
        signing_cert=asn1_cert(signer.cert), signing_key=asn1_key(signer.key),
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
