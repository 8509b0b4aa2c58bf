"""What the native host checks before the seal key signs a browser seal's attributes.

The server prepares the seal and sends, through the page and the extension, the DER CMS
signed attributes, the document digest and what the holder is shown (the filing's title,
enterprise and SHA-256). The host signs only if the attributes are exactly what they claim:
``messageDigest`` equals the digest shown, ``contentType`` is ``data``, and the ESS
signing-certificate attribute names the seal certificate on *this* USB-Key. So a page cannot
slip a different document, a login message or another certificate under the consent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eseal.errors import InvalidInput

MAX_ATTRS = 8192
# asn1crypto maps the ESS signing-certificate attributes only once tsp is imported
_ESS = tsp.SigningCertificateV2


def _refuse(code: str, en: str, zh: str, field: str) -> InvalidInput:
    return InvalidInput(code, en, zh, field=field)


def b64_field(message: dict[str, Any], name: str, *, limit: int) -> bytes:
    value = message.get(name)
    if not isinstance(value, str) or not value or len(value) > limit * 2:
        raise _refuse("FIELD_MISSING", f"{name} must be a base64 string",
                      f"{name} 应为 base64 字符串", name)
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise _refuse("FIELD_NOT_BASE64", f"{name} is not base64", f"{name} 不是 base64 编码",
                      name) from None
    if len(data) > limit:
        raise _refuse("FIELD_TOO_LARGE", f"{name} is larger than {limit} bytes",
                      f"{name} 超过 {limit} 字节", name)
    return data


@dataclass(frozen=True)
class SealRequest:
    signed_attrs: bytes
    document_digest: bytes
    title: str
    enterprise: str
    filing_sha256: str


def _text(message: dict[str, Any], name: str, limit: int = 200) -> str:
    value = message.get(name)
    if not isinstance(value, str) or not value or len(value) > limit \
            or any(ord(c) < 32 for c in value):
        raise _refuse("FIELD_MISSING", f"{name} must be 1-{limit} printable characters",
                      f"{name} 应为 1 到 {limit} 个可打印字符", name)
    return value


def parse_request(message: dict[str, Any]) -> SealRequest:
    if message.get("digest_algorithm", "sha256") != "sha256":
        raise _refuse("UNSUPPORTED_HASH", "only sha256 is signed", "仅支持 sha256",
                      "digest_algorithm")
    filing = message.get("filing")
    if not isinstance(filing, dict):
        raise _refuse("FIELD_MISSING", "filing must be an object with title, enterprise and "
                      "sha256", "filing 应包含标题、企业和 sha256", "filing")
    sha = _text(filing, "sha256", 64).lower()
    if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
        raise _refuse("FIELD_MISSING", "filing.sha256 must be 64 hex digits",
                      "filing.sha256 应为 64 位十六进制", "filing.sha256")
    return SealRequest(signed_attrs=b64_field(message, "signed_attrs", limit=MAX_ATTRS),
                       document_digest=b64_field(message, "document_digest", limit=64),
                       title=_text(filing, "title"), enterprise=_text(filing, "enterprise"),
                       filing_sha256=sha)


def check_attributes(request: SealRequest, seal_certificate: x509.Certificate) -> None:
    """Refuse attributes that do not carry the shown digest or name another certificate."""
    try:
        attrs = cms.CMSAttributes.load(request.signed_attrs, strict=True)
        by_type: dict[str, list[Any]] = {}
        for attr in attrs:
            by_type.setdefault(attr["type"].native, []).append(attr["values"])
        digests = by_type.get("message_digest", [])
        types = by_type.get("content_type", [])
        ess = by_type.get("signing_certificate_v2", [])
        digest = bytes(digests[0][0].native) if len(digests) == 1 and len(digests[0]) == 1 \
            else None
        content_type = types[0][0].native if len(types) == 1 and len(types[0]) == 1 else None
        cert_ids = ess[0][0]["certs"] if len(ess) == 1 and len(ess[0]) == 1 else None
        first = cert_ids[0] if cert_ids is not None and len(cert_ids) else None
        algo = first["hash_algorithm"]["algorithm"].native if first is not None else None
        cert_hash = bytes(first["cert_hash"].native) if first is not None else None
    except (ValueError, TypeError, KeyError, IndexError):
        raise _refuse("SIGNED_ATTRS_INVALID", "the signed attributes are not DER CMS "
                      "attributes", "签名属性不是 DER 编码的 CMS 属性", "signed_attrs") from None
    if content_type != "data":
        raise _refuse("SIGNED_ATTRS_INVALID", "the signed attributes must declare content "
                      "type data", "签名属性的内容类型必须为 data", "signed_attrs")
    if digest is None or not hmac.compare_digest(digest, request.document_digest):
        raise _refuse("DIGEST_MISMATCH",
                      "the signed attributes carry another digest than the one shown: "
                      "refusing to seal", "签名属性中的摘要与显示的摘要不一致，拒绝签章",
                      "signed_attrs")
    der = seal_certificate.public_bytes(serialization.Encoding.DER)
    expected = hashlib.new(algo, der).digest() if algo in ("sha256", "sha384", "sha512") \
        else None
    if cert_hash is None or expected is None or not hmac.compare_digest(cert_hash, expected):
        raise _refuse("SIGNING_CERT_MISMATCH",
                      "the signed attributes name another certificate than the seal "
                      "certificate on this USB-Key", "签名属性中指定的证书不是本 USB-Key 上的"
                      "印章证书", "signed_attrs")
