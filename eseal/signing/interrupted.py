"""Sealing in two halves, for a key the server cannot reach (the USB-Key in a browser).

:func:`prepare_seal` does everything :func:`eseal.signing.sign.async_seal_pdf` does up to the
token's signature: it draws the seal, reserves the signature container, embeds the revocation
data in the seal's own revision (PAdES B-LT), computes the ``/ByteRange`` digest and builds
the CMS signed attributes over it (pyHanko's interrupted signing:
``digest_tbs_document`` -> ``Signer.signed_attrs``). What it returns is plain data — the
prepared PDF, the reserved region, the digest and the DER signed attributes — so it can be
stored and finished by another process or replica.

:func:`finish_seal` takes one raw signature over those signed attributes, checks it against
the seal certificate *before* anything is built (a wrong key or a tampered attribute set is a
coded error, not a broken PDF), builds the CMS with ``async_sign_prescribed_attributes`` and a
signature timestamp, and fills the reserved region (``PdfTBSDocument.async_finish_signing``).
The key holder's machine never sees the PDF bytes, only what it signs and what it is shown.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import cms
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pyhanko.sign.fields import MDPPerm, SigFieldSpec, SigSeedSubFilter
from pyhanko.sign.signers.pdf_byterange import PreparedByteRangeDigest
from pyhanko.sign.signers.pdf_cms import ExternalSigner, PdfCMSSignedAttributes
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    PdfSignatureMetadata,
    PdfSigner,
    PdfTBSDocument,
    SigDSSPlacementPreference,
)
from pyhanko.sign.timestamps import TimeStamper, TimestampRequestError
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from eseal import clock
from eseal.errors import EsealError, InvalidInput
from eseal.signing import sign as _sign
from eseal.signing.seal_placement import place_seal

DIGEST = "sha256"


@dataclass(frozen=True)
class PreparedSeal:
    """The half-made seal: the PDF with an empty signature container and what the key signs."""

    pdf: bytes                # the draft plus the seal's revision, container still empty
    region_start: int         # the reserved /Contents region, excluded from /ByteRange
    region_end: int
    document_digest: bytes    # SHA-256 over the /ByteRange: the signed messageDigest
    signed_attrs: bytes       # DER of the CMS SignedAttributes (SET OF), what the key signs
    field_name: str


def _signer(certificate: x509.Certificate, chain: Sequence[x509.Certificate],
            signature: bytes | int) -> ExternalSigner:
    store = SimpleCertificateStore.from_certs([_sign._asn1_cert(c) for c in chain])
    return ExternalSigner(_sign._asn1_cert(certificate), store, signature_value=signature,
                          embed_roots=True)


async def prepare_seal(pdf: bytes, *, certificate: x509.Certificate,
                       chain: Sequence[x509.Certificate], options: _sign.SealOptions,
                       seal_png: bytes, timestamper: TimeStamper,
                       validation_context: ValidationContext) -> PreparedSeal:
    """The first half of a B-LT seal: everything but the key's signature."""
    if options.level != "B-LT":
        raise InvalidInput("SEAL_LEVEL_INVALID", "a browser seal is made at level B-LT",
                           "浏览器签章的级别为 B-LT", field="level")
    _sign._check_options(options)
    image = _sign._load_seal_image(seal_png)
    placeholder = _sign._max_signature_size(certificate.public_key())
    signer = _signer(certificate, chain, placeholder)
    buffer, writer = _sign._open_pdf(pdf)
    pages = _sign._page_count(writer)
    if options.page > pages:
        raise InvalidInput("PAGE_OUT_OF_RANGE",
                           f"page {options.page} does not exist: the PDF has {pages} page(s)",
                           f"第 {options.page} 页不存在：文件共 {pages} 页", field="page")
    style = _sign.seal_style(image, writer, options)  # with the paging seal, if asked
    field_name, existing = _sign._resolve_field(writer, options)
    _sign._check_locking(writer, options, new_field=not existing)
    field_spec = None if existing else SigFieldSpec(
        sig_field_name=field_name, on_page=options.page - 1,
        box=place_seal(writer, options.page - 1, options.size_pt, options.position))
    meta = PdfSignatureMetadata(
        field_name=field_name, reason=options.reason, location=options.location,
        docmdp_permissions=MDPPerm.FILL_FORMS, subfilter=SigSeedSubFilter.PADES,
        embed_validation_info=True, validation_context=validation_context,
        dss_settings=DSSContentSettings(
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False))
    pdf_signer = PdfSigner(meta, signer, timestamper=timestamper, stamp_style=style,
                           new_field_spec=field_spec)
    try:
        session = pdf_signer.init_signing_session(writer, existing_fields_only=existing)
        session.system_time = clock.now()
        validation_info = await session.perform_presign_validation(writer)
        reserved = await session.estimate_signature_container_size(validation_info, tight=False)
        tbs = session.prepare_tbs_document(validation_info=validation_info,
                                           bytes_reserved=reserved)
        prepared, output = tbs.digest_tbs_document(in_place=True)
        attrs = await signer.signed_attrs(
            prepared.document_digest, DIGEST,
            attr_settings=PdfCMSSignedAttributes(
                signing_time=session.system_time,
                cades_signed_attrs=meta.cades_signed_attr_spec),
            use_pades=True, timestamper=timestamper)
    except EsealError:
        raise
    except TimestampRequestError as exc:
        raise _sign.SealServiceUnavailable("TSA_UNAVAILABLE",
                                           f"the timestamp authority did not answer: {exc}",
                                           "时间戳服务无响应", field="timestamper") from exc
    except Exception as exc:  # pyHanko's SigningError / PdfError: see async_seal_pdf
        if "could not be validated" in str(exc):
            raise _sign._certificate_error(exc) from exc
        raise InvalidInput("PDF_SIGNING_REFUSED", f"the PDF cannot be sealed: {exc}",
                           "该 PDF 无法签章", field="pdf") from exc
    del output  # in place: the buffer is the output
    return PreparedSeal(pdf=buffer.getvalue(), region_start=prepared.reserved_region_start,
                        region_end=prepared.reserved_region_end,
                        document_digest=prepared.document_digest,
                        signed_attrs=attrs.dump(), field_name=field_name)


def check_signature(certificate: x509.Certificate, signed_attrs: bytes,
                    signature: bytes) -> None:
    """Refuse a signature the seal certificate's key did not make over these attributes."""
    public = certificate.public_key()
    try:
        if isinstance(public, ec.EllipticCurvePublicKey):
            public.verify(signature, signed_attrs, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(signature, signed_attrs, padding.PKCS1v15(), hashes.SHA256())
        else:
            raise InvalidSignature
    except (InvalidSignature, ValueError) as exc:
        raise InvalidInput("SEAL_SIGNATURE_INVALID",
                           "the signature was not made by the seal key over the prepared "
                           "seal's signed attributes",
                           "签名不是由印章密钥对所准备的签名属性作出的",
                           field="signature") from exc


async def finish_seal(prepared: PreparedSeal, *, signature: bytes,
                      certificate: x509.Certificate, chain: Sequence[x509.Certificate],
                      timestamper: TimeStamper) -> bytes:
    """The second half: the CMS around ``signature`` with a signature timestamp, written
    into the prepared PDF. Returns the sealed bytes."""
    check_signature(certificate, prepared.signed_attrs, signature)
    attrs = cms.CMSAttributes.load(prepared.signed_attrs)
    signer = _signer(certificate, chain, signature)
    try:
        content = await signer.async_sign_prescribed_attributes(
            DIGEST, attrs, timestamper=timestamper)
    except TimestampRequestError as exc:
        raise _sign.SealServiceUnavailable("TSA_UNAVAILABLE",
                                           f"the timestamp authority did not answer: {exc}",
                                           "时间戳服务无响应", field="timestamper") from exc
    if len(content.dump()) * 2 > prepared.region_end - prepared.region_start - 2:
        raise EsealError("SEAL_CONTAINER_TOO_SMALL",
                         "the signature container does not fit the reserved space",
                         "签名容器超出预留空间")
    output = io.BytesIO(prepared.pdf)
    digest = PreparedByteRangeDigest(document_digest=prepared.document_digest,
                                     reserved_region_start=prepared.region_start,
                                     reserved_region_end=prepared.region_end)
    await PdfTBSDocument.async_finish_signing(output, digest, content)
    return output.getvalue()


def short_digest(data: bytes) -> str:
    """The first 8 bytes of a SHA-256 as hex, grouped, for people to compare."""
    h = hashlib.sha256(data).hexdigest()[:16]
    return " ".join(h[i:i + 4] for i in range(0, 16, 4))


def certificate_der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)
