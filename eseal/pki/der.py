"""The DER toolkit: small, exact encoders and a strict reader for the few ASN.1 shapes the CA
writes by hand (CRLs, OCSP responses, timestamp tokens, the audit-head extension).

Why by hand: these structures are built at high rates from precomputed pieces (see
``eseal.ca.crl``), and parsing requests byte by byte lets OCSP and the TSA refuse malformed
input with a precise reason. Pure functions, no I/O: every room may use them.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from eseal.errors import InvalidInput


def der_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def der_tlv(tag: int, body: bytes) -> bytes:
    """One TLV with a single-octet tag."""
    n = len(body)
    if n < 0x80:
        return bytes((tag, n)) + body
    return bytes((tag,)) + der_length(n) + body


def der_integer(value: int) -> bytes:
    magnitude = value if value >= 0 else ~value
    return der_tlv(0x02, value.to_bytes(magnitude.bit_length() // 8 + 1, "big", signed=True))


class DerError(ValueError):
    """Input that is not DER (callers turn it into their protocol's refusal)."""


def der_read(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the TLV at ``pos``, which must fit in ``end``.

    Strict DER: one-octet tags, definite minimal lengths of at most three octets (the
    protocols here refuse anything near 16 MiB long before parsing).
    """
    if pos + 2 > end:
        raise DerError("truncated")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise DerError("multi-octet tag")
    length = buf[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        if n == 0 or n > 3 or pos + n > end or buf[pos] == 0:
            raise DerError("bad length")
        length = int.from_bytes(buf[pos:pos + n], "big")
        if length < 0x80:
            raise DerError("non-minimal length")
        pos += n
    if pos + length > end:
        raise DerError("truncated")
    return tag, pos, pos + length


def oid_dotted(body: bytes) -> str:
    """The dotted form of an OBJECT IDENTIFIER's value octets."""
    if not body or body[-1] & 0x80:
        raise DerError("bad OID")
    arcs: list[int] = []
    value = 0
    for octet in body:
        if value == 0 and octet == 0x80:
            raise DerError("non-minimal OID arc")
        value = value << 7 | (octet & 0x7F)
        if not octet & 0x80:
            arcs.append(value)
            value = 0
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def utc(when: datetime) -> datetime:
    """An aware UTC datetime; a naive one is taken as UTC (as ``eseal.clock`` does)."""
    if when.tzinfo is None:
        return when.replace(tzinfo=UTC)
    if when.tzinfo is UTC:
        return when
    return when.astimezone(UTC)


def der_generalized_time(when: datetime) -> bytes:
    """GeneralizedTime ``YYYYMMDDHHMMSSZ`` (whole seconds, as RFC 5280 requires)."""
    w = utc(when)
    text = (f"{w.year:04d}{w.month:02d}{w.day:02d}"
            f"{w.hour:02d}{w.minute:02d}{w.second:02d}Z")
    return b"\x18\x0f" + text.encode("ascii")


def der_time(when: datetime) -> bytes:
    """RFC 5280 Time: UTCTime for 1950-2049, GeneralizedTime otherwise."""
    w = utc(when)
    if 1950 <= w.year < 2050:
        text = (f"{w.year % 100:02d}{w.month:02d}{w.day:02d}"
                f"{w.hour:02d}{w.minute:02d}{w.second:02d}Z")
        return b"\x17\x0d" + text.encode("ascii")
    return der_generalized_time(w)


@functools.lru_cache(maxsize=32)
def _cert_parts(cert: x509.Certificate) -> tuple[bytes, bytes]:
    """(subject Name DER exactly as encoded, subjectPublicKey BIT STRING value)."""
    parsed = asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
    tbs = parsed["tbs_certificate"]
    key_bits = tbs["subject_public_key_info"]["public_key"].contents[1:]
    return tbs["subject"].dump(), bytes(key_bits)


def issuer_name_der(cert: x509.Certificate) -> bytes:
    """The certificate's subject Name, byte for byte as it appears in the certificate."""
    return _cert_parts(cert)[0]


def public_key_bits(cert: x509.Certificate) -> bytes:
    """The subjectPublicKey BIT STRING value (what OCSP and RFC 5280 key hashes cover)."""
    return _cert_parts(cert)[1]


_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_ECDSA_SHA384 = bytes.fromhex("300a06082a8648ce3d040303")
_ECDSA_SHA512 = bytes.fromhex("300a06082a8648ce3d040304")
_RSA_SHA256 = bytes.fromhex("300d06092a864886f70d01010b0500")


def signature_algorithm_for(
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> tuple[bytes, Callable[[bytes], bytes]]:
    """(AlgorithmIdentifier DER, sign(data) -> signature) for a CA key.

    ECDSA uses the hash that matches the curve (P-256: SHA-256, P-384: SHA-384); RSA uses
    PKCS#1 v1.5 with SHA-256. A token key is handed the digest through ``sign_digest``
    (its generic ``sign()`` costs ~20 µs more, a third of an OCSP nonce answer).
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        size = key.curve.key_size
        algorithm, name, hash_algorithm = (
            (_ECDSA_SHA256, "sha256", hashes.SHA256()) if size <= 256
            else (_ECDSA_SHA384, "sha384", hashes.SHA384()) if size <= 384
            else (_ECDSA_SHA512, "sha512", hashes.SHA512()))
        sign_digest = getattr(key, "sign_digest", None)
        if sign_digest is not None:
            return algorithm, lambda data: sign_digest(hashlib.new(name, data).digest())
        ecdsa = ec.ECDSA(hash_algorithm)
        return algorithm, lambda data: key.sign(data, ecdsa)
    if isinstance(key, rsa.RSAPrivateKey):
        return _RSA_SHA256, lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    raise InvalidInput("UNSUPPORTED_KEY", "CA keys must be EC or RSA",
                       "CA 密钥必须是 EC 或 RSA", field="key")
