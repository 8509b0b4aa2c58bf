"""Apply an enterprise's electronic seal to a PDF: a PAdES signature made by its USB-Key.

pyHanko is the engine (ETSI.CAdES.detached signatures, incremental updates, DSS, document
timestamps); this module adapts it to eseal:

* ``TokenSigner`` is a pyHanko ``Signer`` whose raw signature comes from a token key through
  ``eseal.token``. pyHanko sizes the signature container with a dry run first; the dry run
  answers with a placeholder of the right size, so the token signs exactly once per seal
  (a real USB-Key may ask its holder to confirm every signature).
* The visible signature is the seal image, placed on the chosen page, by default in the
  bottom-right area, moved left past seals already there.
* The PAdES level decides what is added: B-B the signature; B-T a signature timestamp; B-LT
  also the revocation data, embedded in the *same* revision as the signature, so the seal
  still covers the whole file; B-LTA also a document timestamp after it.
* Bad input is refused before the token is touched, with a stable code; a refused or failed
  seal leaves the caller's bytes as they were (we only ever return new bytes).

pyHanko's synchronous API calls ``asyncio.run``, which fails inside a running event loop
(the FastAPI service), so the work happens in ``async_seal_pdf`` and ``seal_pdf`` wraps it.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from PIL import Image, UnidentifiedImageError
from pyhanko.pdf_utils import layout
from pyhanko.pdf_utils.images import PdfImage
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.misc import PdfError
from pyhanko.sign.fields import (
    MDPPerm,
    SigFieldSpec,
    SigSeedSubFilter,
    enumerate_sig_fields,
)
from pyhanko.sign.general import SigningError
from pyhanko.sign.signers.pdf_cms import PdfCMSSignedAttributes, Signer
from pyhanko.sign.signers.pdf_signer import (
    DSSContentSettings,
    PdfSignatureMetadata,
    PdfSigner,
    SigDSSPlacementPreference,
)
from pyhanko.sign.timestamps import HTTPTimeStamper, TimeStamper, TimestampRequestError
from pyhanko.sign.validation.pdf_embedded import read_certification_data
from pyhanko.stamp.static import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.errors import (
    ExpiredError,
    InsufficientRevinfoError,
    NotYetValidError,
    PathBuildingError,
    PathValidationError,
    RevokedError,
)
from pyhanko_certvalidator.registry import SimpleCertificateStore

from eseal import clock
from eseal.errors import Conflict, EsealError, InvalidInput
from eseal.signing.paging_seal import add_paging_seal
from eseal.signing.seal_placement import place_seal
from eseal.token import TokenECPrivateKey, TokenRSAPrivateKey

Level = Literal["B-B", "B-T", "B-LT", "B-LTA"]
LEVELS: tuple[Level, ...] = ("B-B", "B-T", "B-LT", "B-LTA")

MIN_SIZE_PT = 24.0
MAX_SIZE_PT = 600.0
MAX_TEXT = 200            # reason / location
_FIELD_NAME = re.compile(r"[^.\x00-\x1f]{1,100}")  # PDF partial names cannot contain '.'
_PDF_HEADER_WINDOW = 1024  # the header may follow some junk (ISO 32000 implementation note)


class SealServiceUnavailable(EsealError):
    """A service the seal depends on (TSA, CRL/OCSP responder) did not answer usefully."""

    status = 503


@dataclass(frozen=True)
class SealOptions:
    """Where the seal goes and what the signature carries."""

    page: int = 1                                   # 1-based
    position: tuple[float, float] | None = None     # lower-left X, Y in PDF points
    field_name: str | None = None                   # an existing empty field, or a new name
    size_pt: float = 120
    reason: str | None = None
    location: str | None = None
    level: Level = "B-LT"
    certify: bool = False                           # DocMDP certification (first seal only)
    paging: bool = False                            # also the 骑缝章 (signing/paging_seal.py)


# -- the token as a pyHanko signer -----------------------------------------------------------
def _asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def _max_signature_size(public_key: Any) -> int:
    """Largest raw signature the key can produce (DER ECDSA varies by a few bytes)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        n = (public_key.curve.key_size + 7) // 8
        # SEQUENCE header (long form for P-521) + two INTEGERs, each with a sign byte
        return 3 + 2 * (n + 3)
    if isinstance(public_key, rsa.RSAPublicKey):
        return (public_key.key_size + 7) // 8
    raise InvalidInput("UNSUPPORTED_KEY", "the seal key must be an EC or RSA key",
                       "印章密钥必须是 EC 或 RSA 密钥", field="key")


class TokenSigner(Signer):
    """pyHanko ``Signer`` backed by a token key: one ``sign_digest`` call per real signature."""

    def __init__(self, key: TokenECPrivateKey | TokenRSAPrivateKey,
                 certificate: x509.Certificate, chain: Sequence[x509.Certificate]) -> None:
        if not isinstance(key, TokenECPrivateKey | TokenRSAPrivateKey):
            raise InvalidInput("SEAL_KEY_NOT_TOKEN", "the seal key must be a USB-Key key",
                               "印章私钥必须位于 USB-Key 中", field="key")
        if key.public_key().public_numbers() != certificate.public_key().public_numbers():
            raise InvalidInput("SEAL_KEY_MISMATCH",
                               "the key on the USB-Key does not belong to the seal certificate",
                               "USB-Key 中的私钥与印章证书不匹配", field="certificate")
        self._key = key
        self._placeholder = _max_signature_size(certificate.public_key())
        store = SimpleCertificateStore.from_certs([_asn1_cert(c) for c in chain])
        super().__init__(signing_cert=_asn1_cert(certificate), cert_registry=store,
                         prefer_pss=False, embed_roots=True)

    async def async_sign_raw(self, data: bytes, digest_algorithm: str,
                             dry_run: bool = False) -> bytes:
        if dry_run:
            return bytes(self._placeholder)
        mechanism = self.get_signature_mechanism_for_digest(digest_algorithm).signature_algo
        digest = hashlib.new(digest_algorithm, data).digest()
        if isinstance(self._key, TokenECPrivateKey) and mechanism == "ecdsa":
            return await asyncio.to_thread(self._key.sign_digest, digest)
        if isinstance(self._key, TokenRSAPrivateKey) and mechanism == "rsassa_pkcs1v15" \
                and digest_algorithm in ("sha256", "sha384", "sha512"):
            return await asyncio.to_thread(self._key.sign_digest, digest, digest_algorithm)
        raise InvalidInput("UNSUPPORTED_ALGORITHM",
                           f"cannot seal with {mechanism} over {digest_algorithm}",
                           f"不支持以 {mechanism}/{digest_algorithm} 签章", field="key")


# -- input checks ----------------------------------------------------------------------------
def _check_options(options: SealOptions) -> None:
    if options.level not in LEVELS:
        raise InvalidInput("SEAL_LEVEL_INVALID", f"level must be one of {', '.join(LEVELS)}",
                           f"签章级别应为 {'、'.join(LEVELS)} 之一", field="level")
    if not isinstance(options.page, int) or isinstance(options.page, bool) or options.page < 1:
        raise InvalidInput("PAGE_OUT_OF_RANGE", "page numbers start at 1",
                           "页码从 1 开始", field="page")
    size = options.size_pt
    if not isinstance(size, int | float) or not math.isfinite(size) \
            or not MIN_SIZE_PT <= size <= MAX_SIZE_PT:
        raise InvalidInput("SEAL_SIZE_INVALID",
                           f"size_pt must be between {MIN_SIZE_PT:g} and {MAX_SIZE_PT:g}",
                           f"印章尺寸应在 {MIN_SIZE_PT:g} 到 {MAX_SIZE_PT:g} 磅之间",
                           field="size_pt")
    if options.position is not None and (
            len(options.position) != 2
            or not all(isinstance(v, int | float) and math.isfinite(v)
                       for v in options.position)):
        raise InvalidInput("POSITION_INVALID", "position must be two finite numbers (x, y)",
                           "位置应为两个有限数值 (x, y)", field="position")
    if options.field_name is not None and not _FIELD_NAME.fullmatch(options.field_name):
        raise InvalidInput("FIELD_NAME_INVALID",
                           "a field name is 1-100 characters without '.' or control characters",
                           "签名域名称应为 1 到 100 个字符，且不含“.”和控制字符",
                           field="field_name")
    for name in ("reason", "location"):
        value = getattr(options, name)
        if value is not None and len(value) > MAX_TEXT:
            raise InvalidInput("TEXT_TOO_LONG", f"{name} is longer than {MAX_TEXT} characters",
                               f"{name} 超过 {MAX_TEXT} 个字符", field=name)


def _load_seal_image(seal_png: bytes) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(seal_png))
        if image.format != "PNG":
            raise UnidentifiedImageError("not a PNG")
        image.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InvalidInput("SEAL_IMAGE_INVALID", "the seal image must be a PNG",
                           "印章图片必须是 PNG 格式", field="seal_png") from exc
    return image.convert("RGBA")


def _open_pdf(pdf: bytes) -> tuple[io.BytesIO, IncrementalPdfFileWriter]:
    if not isinstance(pdf, bytes | bytearray | memoryview) \
            or b"%PDF-" not in bytes(pdf[:_PDF_HEADER_WINDOW]):
        raise InvalidInput("PDF_NOT_PDF", "the file is not a PDF", "文件不是 PDF",
                           field="pdf")
    buffer = io.BytesIO()
    buffer.write(pdf)
    buffer.seek(0)
    try:
        writer = IncrementalPdfFileWriter(buffer)
    except (PdfError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InvalidInput("PDF_MALFORMED", f"the PDF cannot be read: {exc}",
                           "PDF 文件已损坏或无法读取", field="pdf") from exc
    if writer.prev.encrypted:
        raise InvalidInput("PDF_ENCRYPTED", "encrypted PDFs cannot be sealed; remove the "
                           "password first", "加密的 PDF 不能签章，请先移除密码", field="pdf")
    return buffer, writer


def _page_count(writer: IncrementalPdfFileWriter) -> int:
    try:
        return int(writer.prev.root["/Pages"]["/Count"])
    except (KeyError, TypeError, ValueError, PdfError) as exc:
        raise InvalidInput("PDF_MALFORMED", "the PDF has no readable page tree",
                           "PDF 页面结构无法读取", field="pdf") from exc


def _resolve_field(writer: IncrementalPdfFileWriter, options: SealOptions) -> tuple[str, bool]:
    """(field name, whether it already exists as an empty signature field)."""
    fields = {name: value for name, value, _ in enumerate_sig_fields(writer.prev)}
    if options.field_name is not None:
        if options.field_name in fields:
            if fields[options.field_name] is not None:
                raise InvalidInput("FIELD_NOT_EMPTY",
                                   f"signature field {options.field_name!r} is already signed",
                                   f"签名域 {options.field_name!r} 已有签章",
                                   field="field_name")
            return options.field_name, True
        return options.field_name, False
    n = len(fields) + 1
    while f"eseal-{n}" in fields:
        n += 1
    return f"eseal-{n}", False


def _check_locking(writer: IncrementalPdfFileWriter, options: SealOptions,
                   new_field: bool) -> None:
    """Refuse a seal the document's own certification (DocMDP) would make invalid."""
    signed = [name for name, value, _ in enumerate_sig_fields(writer.prev) if value is not None]
    if options.certify and signed:
        raise InvalidInput("CERTIFY_NOT_FIRST",
                           "only the first seal on a document can certify it",
                           "只有文档上的第一个签章可以进行认证签章", field="certify")
    try:
        certification = read_certification_data(writer.prev)
    except (PdfError, KeyError, TypeError, ValueError):  # SignatureValidationError too
        certification = None
    if certification is None:
        return
    if certification.permission == MDPPerm.NO_CHANGES:
        raise Conflict("PDF_LOCKED",
                       "the document is certified with no changes allowed; another seal "
                       "would invalidate it", "文档已认证且禁止修改，不能再加签章", field="pdf")
    if new_field:
        # A certified document allows filling in its signature fields, not adding new
        # visible ones (a new widget is an annotation): validators flag such a seal.
        empty = [name for name, value, _ in enumerate_sig_fields(writer.prev)
                 if value is None]
        raise InvalidInput(
            "FIELD_REQUIRED",
            "the document is certified: seal one of its empty signature fields"
            + (f" ({', '.join(empty)})" if empty else " (it has none left)"),
            "文档已认证：只能在已有的空签名域中签章"
            + (f"（{'、'.join(empty)}）" if empty else "（已无空签名域）"),
            field="field_name", details={"empty_fields": empty})


def _default_validation_context(certificate: x509.Certificate,
                                chain: Sequence[x509.Certificate]) -> ValidationContext:
    """Production context: trust the chain's root, fetch CRLs/OCSP from the certificates'
    CRL distribution points and AIA (our own /crl and /ocsp)."""
    roots = [c for c in chain if c.subject == c.issuer]
    if not roots:
        raise InvalidInput("CHAIN_INCOMPLETE",
                           "the certificate chain must end with its root for B-LT and B-LTA",
                           "B-LT/B-LTA 签章需要包含根证书的完整证书链", field="chain")
    others = [c for c in chain if c.subject != c.issuer]
    return ValidationContext(trust_roots=[_asn1_cert(r) for r in roots],
                             other_certs=[_asn1_cert(c) for c in others],
                             allow_fetching=True, revocation_mode="hard-fail")


def _timestamper(timestamper: TimeStamper | str | None) -> TimeStamper | None:
    if isinstance(timestamper, str):
        return HTTPTimeStamper(timestamper)
    return timestamper


def seal_style(image: Image.Image, writer: IncrementalPdfFileWriter,
               options: SealOptions) -> StaticStampStyle:
    """The seal widget's appearance: the seal image, edge to edge. With ``options.paging``
    the paging seal's slices go into the same revision first, drawing the *same* image
    XObject (:mod:`eseal.signing.paging_seal`)."""
    background = PdfImage(image)
    if options.paging:
        add_paging_seal(writer, background, options.size_pt)
    return StaticStampStyle(
        background=background,
        background_opacity=1.0,
        border_width=0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID, y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(0)),
    )


# -- signing ---------------------------------------------------------------------------------
def _certificate_error(exc: BaseException) -> EsealError:
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, PathValidationError | PathBuildingError):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, RevokedError):
        return Conflict("SEAL_CERT_REVOKED", "the seal certificate is revoked or frozen",
                        "印章证书已吊销或冻结", field="certificate")
    if isinstance(cause, ExpiredError | NotYetValidError):
        return Conflict("SEAL_CERT_EXPIRED", "the seal certificate is not valid at this time",
                        "印章证书不在有效期内", field="certificate")
    if isinstance(cause, InsufficientRevinfoError):
        return SealServiceUnavailable(
            "REVOCATION_UNAVAILABLE",
            "the seal certificate's revocation status could not be established",
            "无法获取印章证书的吊销状态", field="certificate")
    if isinstance(cause, PathBuildingError):
        return Conflict("SEAL_CERT_UNTRUSTED",
                        "the seal certificate does not chain to a trusted root",
                        "印章证书无法链接到受信任的根证书", field="certificate")
    return Conflict("SEAL_CERT_NOT_VALID", f"the seal certificate is not valid: {exc}",
                    "印章证书无效", field="certificate")


async def _run_signer(pdf_signer: PdfSigner, writer: IncrementalPdfFileWriter,
                      existing_field: bool) -> None:
    """pyHanko's ``async_sign_pdf``, step by step, so the signing time comes from our clock
    and the signature is appended to the caller's copy in place (no second copy)."""
    session = pdf_signer.init_signing_session(writer, existing_fields_only=existing_field)
    session.system_time = clock.now()
    validation_info = await session.perform_presign_validation(writer)
    reserved = await session.estimate_signature_container_size(
        validation_info, tight=pdf_signer.signature_meta.tight_size_estimates)
    tbs = session.prepare_tbs_document(validation_info=validation_info,
                                       bytes_reserved=reserved)
    prepared, output = tbs.digest_tbs_document(in_place=True)
    post_sign = await tbs.perform_signature(
        document_digest=prepared.document_digest,
        pdf_cms_signed_attrs=PdfCMSSignedAttributes(
            signing_time=session.system_time,
            adobe_revinfo_attr=None if validation_info is None
            else validation_info.adobe_revinfo_attr,
            cades_signed_attrs=pdf_signer.signature_meta.cades_signed_attr_spec,
        ),
    )
    await post_sign.post_signature_processing(output)


async def async_seal_pdf(pdf: bytes, *, key: TokenECPrivateKey | TokenRSAPrivateKey,
                         certificate: x509.Certificate, chain: Sequence[x509.Certificate],
                         options: SealOptions, seal_png: bytes,
                         timestamper: TimeStamper | str | None = None,
                         validation_context: ValidationContext | None = None) -> bytes:
    """Seal ``pdf`` and return the sealed bytes (the input plus one incremental update, and a
    document timestamp revision for B-LTA). ``timestamper`` may be a TSA URL."""
    _check_options(options)
    image = _load_seal_image(seal_png)
    signer = TokenSigner(key, certificate, chain)
    buffer, writer = _open_pdf(pdf)
    pages = _page_count(writer)
    if options.page > pages:
        raise InvalidInput("PAGE_OUT_OF_RANGE",
                           f"page {options.page} does not exist: the PDF has {pages} page(s)",
                           f"第 {options.page} 页不存在：文件共 {pages} 页", field="page")
    style = seal_style(image, writer, options)  # the paging seal's refusals come first
    field_name, existing = _resolve_field(writer, options)
    _check_locking(writer, options, new_field=not existing)
    field_spec = None if existing else SigFieldSpec(
        sig_field_name=field_name, on_page=options.page - 1,
        box=place_seal(writer, options.page - 1, options.size_pt, options.position))

    level = options.level
    tsa = _timestamper(timestamper) if level != "B-B" else None
    if level != "B-B" and tsa is None:
        raise InvalidInput("TIMESTAMPER_REQUIRED", f"level {level} needs a timestamp authority",
                           f"{level} 级别签章需要时间戳服务", field="level")
    long_term = level in ("B-LT", "B-LTA")
    owned_context = None
    if validation_context is None and long_term:
        validation_context = owned_context = _default_validation_context(certificate, chain)

    meta = PdfSignatureMetadata(
        field_name=field_name,
        reason=options.reason,
        location=options.location,
        certify=options.certify,
        docmdp_permissions=MDPPerm.FILL_FORMS,  # later seals and form filling stay allowed
        subfilter=SigSeedSubFilter.PADES,
        embed_validation_info=long_term,
        use_pades_lta=level == "B-LTA",
        validation_context=validation_context,
        # B-LT: revocation data goes into the signature's own revision (no VRI, which could
        # only be written after signing). B-B/B-T embed none, even with a context to check.
        dss_settings=DSSContentSettings(
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False)
        if long_term else DSSContentSettings(),
    )
    pdf_signer = PdfSigner(meta, signer, timestamper=tsa, stamp_style=style,
                           new_field_spec=field_spec)
    try:
        await _run_signer(pdf_signer, writer, existing)
    except EsealError:
        raise
    except TimestampRequestError as exc:
        raise SealServiceUnavailable("TSA_UNAVAILABLE",
                                     f"the timestamp authority did not answer: {exc}",
                                     "时间戳服务无响应", field="timestamper") from exc
    except SigningError as exc:
        if "could not be validated" in str(exc):
            raise _certificate_error(exc) from exc
        raise InvalidInput("PDF_SIGNING_REFUSED", f"the PDF cannot be sealed: {exc}",
                           "该 PDF 无法签章", field="pdf") from exc
    except PdfError as exc:
        raise InvalidInput("PDF_MALFORMED", f"the PDF cannot be sealed: {exc}",
                           "PDF 文件已损坏，无法签章", field="pdf") from exc
    finally:
        if owned_context is not None:
            await owned_context.aclose()
    return buffer.getvalue()


def seal_pdf(pdf: bytes, *, key: TokenECPrivateKey | TokenRSAPrivateKey,
             certificate: x509.Certificate, chain: Sequence[x509.Certificate],
             options: SealOptions, seal_png: bytes,
             timestamper: TimeStamper | str | None = None,
             validation_context: ValidationContext | None = None) -> bytes:
    """Synchronous ``async_seal_pdf`` (CLI, scripts). Inside an event loop, await that one."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        raise RuntimeError("seal_pdf cannot run inside an event loop: await async_seal_pdf")
    sealed: list[bytes] = []

    async def run() -> None:
        # The main task must not *return* the bytes: on Python 3.11, asyncio.run restoring
        # the SIGINT handler formats the task's repr, result included - a full repr() of a
        # 50 MB PDF, which cost more than the whole seal.
        sealed.append(await async_seal_pdf(
            pdf, key=key, certificate=certificate, chain=chain, options=options,
            seal_png=seal_png, timestamper=timestamper, validation_context=validation_context))

    asyncio.run(run())
    return sealed[0]
