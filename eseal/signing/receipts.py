"""Filing receipts: the canonical form the service signs, and their offline verification.

The service answers an accepted filing with a JSON receipt signed by its own timestamp
authority — an RFC 3161 token over the SHA-256 of the receipt's canonical JSON (sorted keys,
no spaces, UTF-8). :func:`verify_receipt` checks one offline against a trust root. It lives
in the signing room, not the service, so the CLI can verify a receipt without importing the
service.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eseal.errors import InvalidInput

__all__ = ["RECEIPT_VERSION", "ReceiptCheck", "canonical_json", "receipt_imprint",
           "verify_receipt"]

RECEIPT_VERSION = "eseal-receipt-v1"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant spaces, UTF-8 (characters outside ASCII kept as they are,
    so a registered name with 𠮷 hashes as its own bytes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def receipt_imprint(body: Mapping[str, Any]) -> bytes:
    """SHA-256 over the receipt body's canonical JSON: what the timestamp token signs."""
    return hashlib.sha256(canonical_json(body)).digest()


@dataclass(frozen=True)
class ReceiptCheck:
    """Whether a receipt is what the service signed: ``valid`` needs the imprint to match the
    body (``intact``), the token's signature (``signature_ok``) and a chain from the TSA
    certificate to a trust root (``trusted``)."""

    valid: bool
    intact: bool
    signature_ok: bool
    trusted: bool
    signed_at: datetime | None
    tsa: str | None
    body: Mapping[str, Any]
    problems: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return 0 if self.valid else 1

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "intact": self.intact, "signature_ok": self.signature_ok,
                "trusted": self.trusted,
                "signed_at": self.signed_at.isoformat() if self.signed_at else None,
                "tsa": self.tsa, "receipt": dict(self.body), "problems": list(self.problems)}


def _bad_receipt(why: str, why_zh: str) -> InvalidInput:
    return InvalidInput("RECEIPT_MALFORMED", f"not an eseal receipt: {why}",
                        f"不是有效的 eseal 回执：{why_zh}", field="receipt")


def _receipt_parts(receipt: Mapping[str, Any]) -> tuple[Mapping[str, Any], cms.SignedData]:
    if not isinstance(receipt, Mapping):
        raise _bad_receipt("expected a JSON object", "应为 JSON 对象")
    body = receipt.get("receipt")
    signature = receipt.get("signature")
    if not isinstance(body, Mapping) or body.get("version") != RECEIPT_VERSION:
        raise _bad_receipt(f"no 'receipt' object of version {RECEIPT_VERSION}",
                           f"缺少版本为 {RECEIPT_VERSION} 的 receipt 对象")
    if not isinstance(signature, Mapping) or signature.get("type") != "rfc3161" \
            or not isinstance(signature.get("token"), str):
        raise _bad_receipt("no RFC 3161 'signature' token", "缺少 RFC 3161 时间戳签名")
    try:
        der = base64.b64decode(signature["token"], validate=True)
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signed = info["content"]
        if not isinstance(signed["encap_content_info"]["content"].parsed, tsp.TSTInfo):
            raise ValueError("not a TSTInfo")
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise _bad_receipt(f"the token cannot be read ({exc})", "时间戳令牌无法解析") from exc
    return body, signed


def verify_receipt(receipt: Mapping[str, Any], *, trust_roots: Sequence[x509.Certificate],
                   ) -> ReceiptCheck:
    """Check a receipt offline: its token is a timestamp over this very body, signed by a
    time-stamping certificate that chains to one of ``trust_roots``."""
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko.sign.validation.status import TimestampSignatureStatus
    from pyhanko_certvalidator import ValidationContext

    if not trust_roots:
        raise InvalidInput("NO_TRUST_ROOTS", "at least one trust root is required",
                           "至少需要一个信任锚证书", field="trust_roots")
    body, signed = _receipt_parts(receipt)
    try:
        content = canonical_json(body)
    except (TypeError, ValueError) as exc:
        raise _bad_receipt("the body is not plain JSON", "回执正文不是规范 JSON") from exc
    roots = [asn1_x509.Certificate.load(r.public_bytes(serialization.Encoding.DER))
             for r in trust_roots]

    async def run() -> dict[str, Any]:
        vc = ValidationContext(trust_roots=roots, allow_fetching=False,
                               revocation_mode="soft-fail")
        return await validate_tst_signed_data(
            signed, vc, lambda algo: hashlib.new(algo, content).digest())

    try:
        from eseal.signing.verify import run_sync

        status = TimestampSignatureStatus(**run_sync(run()))
    except Exception as exc:  # pyHanko: unreadable or unsupported token
        return ReceiptCheck(False, False, False, False, None, None, body,
                            (f"TOKEN_INVALID: {type(exc).__name__}",))
    intact, valid, trusted = bool(status.intact), bool(status.valid), bool(status.trusted)
    problems = []
    if not intact:
        problems.append("RECEIPT_ALTERED")
    if not valid:
        problems.append("SIGNATURE_INVALID")
    if not trusted:
        problems.append("TSA_UNTRUSTED")
    cert = status.signing_cert
    tsa = x509.load_der_x509_certificate(cert.dump()).subject.rfc4514_string() \
        if cert is not None else None
    return ReceiptCheck(valid=intact and valid and trusted, intact=intact, signature_ok=valid,
                        trusted=trusted, signed_at=status.timestamp, tsa=tsa, body=body,
                        problems=tuple(problems))

