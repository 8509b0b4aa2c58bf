"""Full CRLs (RFC 5280 §5), assembled as DER by hand and signed with a CA key.

Why by hand: a CRL of a million entries is a million tiny SEQUENCEs of the same shape
(serial, revocation time, at most two extensions). ``cryptography``'s builder would create a
``RevokedCertificate`` object per entry and check each again; here each entry is a handful of
byte concatenations with precomputed pieces (the reasonCode extension is one of nine constant
strings), the whole ``tbsCertList`` is one ``bytes.join`` and the CA key signs it once. Small
and large CRLs take the same path, so the path the tests check is the path production runs.

What goes in: a *full* CRL (never a delta) with AKI and CRL number extensions, entries
sorted by serial with reasonCode (absent for ``unspecified``, as RFC 5280 §5.3.1 asks) and
invalidityDate. A frozen certificate is listed with ``certificateHold``; unfreezing simply
leaves it out of the next CRL (``removeFromCRL`` belongs only in delta CRLs, so it is not a
reason this module accepts).

Nothing here touches the database: the caller passes plain entries and a signing key (a
software key in tests, a token key from ``eseal.token`` in production) and gets DER back.
The small DER helpers at the end are shared with ``eseal.ca.ocsp``.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from eseal.errors import InvalidInput


# --------------------------------------------------------------------------------------
# DER helpers shared with eseal.ca.ocsp
# --------------------------------------------------------------------------------------
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


@dataclass(frozen=True, slots=True)
class RevokedEntry:
    """One revoked (or held) certificate as the CRL lists it."""

    serial: int
    revoked_at: datetime
    reason: str | None  # RFC 5280 reason name (see REASONS); None = no reasonCode
    invalidity_date: datetime | None = None


# RFC 5280 §5.3.1 reason names (what the CLI accepts) -> flag. removeFromCRL is absent on
# purpose: it is only meaningful in delta CRLs, which eseal does not issue.
REASONS: dict[str, x509.ReasonFlags] = {
    "unspecified": x509.ReasonFlags.unspecified,
    "keyCompromise": x509.ReasonFlags.key_compromise,
    "cACompromise": x509.ReasonFlags.ca_compromise,
    "affiliationChanged": x509.ReasonFlags.affiliation_changed,
    "superseded": x509.ReasonFlags.superseded,
    "cessationOfOperation": x509.ReasonFlags.cessation_of_operation,
    "certificateHold": x509.ReasonFlags.certificate_hold,
    "privilegeWithdrawn": x509.ReasonFlags.privilege_withdrawn,
    "aACompromise": x509.ReasonFlags.aa_compromise,
}

# CRLReason ENUMERATED values (RFC 5280 §5.3.1; 7 is unused, 8 is removeFromCRL).
REASON_CODES: dict[str, int] = {
    "unspecified": 0,
    "keyCompromise": 1,
    "cACompromise": 2,
    "affiliationChanged": 3,
    "superseded": 4,
    "cessationOfOperation": 5,
    "certificateHold": 6,
    "privilegeWithdrawn": 9,
    "aACompromise": 10,
}

# Largest serial RFC 5280 §4.1.2.2 allows: 20 octets of positive INTEGER content.
MAX_SERIAL = (1 << 159) - 1

_OID_REASON_CODE = b"\x06\x03\x55\x1d\x15"  # 2.5.29.21
_OID_INVALIDITY_DATE = b"\x06\x03\x55\x1d\x18"  # 2.5.29.24
_OID_AKI = b"\x06\x03\x55\x1d\x23"  # 2.5.29.35
_OID_CRL_NUMBER = b"\x06\x03\x55\x1d\x14"  # 2.5.29.20


def reason_code(name: str | None, *, field: str = "reason") -> int | None:
    """The CRLReason value for a reason name; ``None`` when no reasonCode should be written.

    ``unspecified`` also gives ``None``: RFC 5280 §5.3.1 says the extension SHOULD be absent
    rather than carry unspecified (0).
    """
    if name is None or name == "unspecified":
        return None
    code = REASON_CODES.get(name)
    if code is None:
        if name == "removeFromCRL":
            raise InvalidInput(
                "CRL_REASON_NOT_ALLOWED",
                "removeFromCRL is only valid in delta CRLs; to unfreeze, drop the entry",
                "removeFromCRL 仅用于增量 CRL；解冻时直接移除该条目",
                field=field,
            )
        raise InvalidInput(
            "CRL_REASON_UNKNOWN",
            f"unknown revocation reason {name!r}; use one of {', '.join(REASONS)}",
            f"未知的吊销原因 {name!r}；可用：{', '.join(REASONS)}",
            field=field,
        )
    return code


def _reason_extension(code: int) -> bytes:
    inner = der_tlv(0x0A, bytes((code,)))  # ENUMERATED
    return der_tlv(0x30, _OID_REASON_CODE + der_tlv(0x04, inner))


_REASON_EXTENSIONS: dict[str, bytes] = {
    name: _reason_extension(code) for name, code in REASON_CODES.items() if code != 0
}


def build_crl(
    *,
    issuer_cert: x509.Certificate,
    issuer_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    entries: Iterable[RevokedEntry],
    number: int,
    this_update: datetime,
    next_update: datetime,
    extra_extensions: bytes = b"",
) -> bytes:
    """A signed full CRL (DER) listing ``entries``, sorted by serial.

    ``extra_extensions`` are DER ``Extension``s appended after AKI and CRL number (the audit
    head, ``eseal.ca.audit_anchor``).

    ``entries`` is consumed once and may be a generator (rows streamed from the database),
    so the caller never needs a million entry objects in memory at once. Raises
    ``InvalidInput`` for an unknown reason, a duplicate or out-of-range serial, a bad CRL
    number or ``next_update`` not after ``this_update``; nothing is signed then.
    """
    if not 0 <= number <= MAX_SERIAL:
        raise InvalidInput("CRL_NUMBER_RANGE", "CRL number must be 0 … 2^159-1",
                           "CRL 编号必须在 0 … 2^159-1 之间", field="number")
    this_update, next_update = utc(this_update), utc(next_update)
    if next_update <= this_update:
        raise InvalidInput("CRL_NEXT_UPDATE", "nextUpdate must be after thisUpdate",
                           "nextUpdate 必须晚于 thisUpdate", field="next_update")

    encoded = _encode_entries(entries)
    sig_alg, signer = signature_algorithm_for(issuer_key)
    extensions = der_tlv(0xA0, der_tlv(0x30, _aki_extension(issuer_cert)
                                       + _crl_number_extension(number)
                                       + extra_extensions))
    head = (
        b"\x02\x01\x01"  # version v2
        + sig_alg
        + issuer_name_der(issuer_cert)
        + der_time(this_update)
        + der_time(next_update)
    )
    if encoded:
        revoked_len = sum(len(e) for e in encoded)
        revoked_header = b"\x30" + der_length(revoked_len)
        tbs_len = len(head) + len(revoked_header) + revoked_len + len(extensions)
        tbs = b"".join([b"\x30", der_length(tbs_len), head, revoked_header, *encoded,
                        extensions])
    else:  # RFC 5280 §5.1.2.6: no revoked certificates -> the list is absent, not empty
        tbs = der_tlv(0x30, head + extensions)
    del encoded
    signature = b"\x00" + signer(tbs)
    bitstring = b"\x03" + der_length(len(signature)) + signature
    total = len(tbs) + len(sig_alg) + len(bitstring)
    return b"".join([b"\x30", der_length(total), tbs, sig_alg, bitstring])


def _encode_entries(entries: Iterable[RevokedEntry]) -> list[bytes]:
    """Each entry's DER, sorted by serial; duplicates and bad serials refused.

    The hot loop of a million-entry CRL: revocation times are encoded from two small
    per-call caches (the date part per day, the time part per second of the day), and every
    entry is shorter than 128 octets, so its length is a single octet from a table.
    """
    reason_ext = _REASON_EXTENSIONS
    length = _SHORT_LENGTHS
    days: dict[int, bytes] = {}
    seconds: dict[int, bytes] = {}
    serials: list[int] = []
    encoded: list[bytes] = []
    add_serial, add_encoded = serials.append, encoded.append
    previous = -1
    ordered = True
    for entry in entries:
        serial = entry.serial
        if not 0 < serial <= MAX_SERIAL:
            raise InvalidInput("CRL_SERIAL_RANGE",
                               f"serial {serial:x} is outside 1 … 2^159-1",
                               f"序列号 {serial:x} 超出 1 … 2^159-1 范围", field="serial")
        when = entry.revoked_at
        if when.tzinfo is not UTC:
            when = utc(when)
        stamp = int(when.timestamp())
        if stamp >= 0:
            day, second = divmod(stamp, 86400)
            prefix = days.get(day)
            if prefix is None:
                prefix = days[day] = der_time(when)[:-7]  # tag, length, (YY)YYMMDD
            suffix = seconds.get(second)
            if suffix is None:
                suffix = seconds[second] = der_time(when)[-7:]  # HHMMSSZ
            body = prefix + suffix
        else:
            body = der_time(when)
        reason = entry.reason
        if reason is not None and reason != "unspecified":
            ext = reason_ext.get(reason)
            if ext is None:
                reason_code(reason, field="reason")  # raises with the right message
                ext = b""
        else:
            ext = b""
        if entry.invalidity_date is not None:
            ext += _invalidity_extension(entry.invalidity_date)
        if ext:
            body += b"\x30" + length[len(ext)] + ext
        serial_body = serial.to_bytes(serial.bit_length() // 8 + 1, "big")
        body = b"\x02" + length[len(serial_body)] + serial_body + body
        add_encoded(b"\x30" + length[len(body)] + body)
        add_serial(serial)
        if serial <= previous:
            ordered = False
        previous = serial
    if ordered:
        return encoded
    order = sorted(range(len(serials)), key=serials.__getitem__)
    for a, b in itertools.pairwise(order):
        if serials[a] == serials[b]:
            raise InvalidInput("CRL_DUPLICATE_SERIAL", f"serial {serials[a]:x} is listed twice",
                               f"序列号 {serials[a]:x} 重复出现", field="serial")
    return [encoded[i] for i in order]


# Every CRL entry is shorter than 128 octets (serial ≤ 22, time ≤ 17, extensions ≤ 38).
_SHORT_LENGTHS = [bytes((n,)) for n in range(128)]


def _invalidity_extension(when: datetime) -> bytes:
    value = der_generalized_time(when)
    return b"\x30" + der_length(7 + len(value)) + _OID_INVALIDITY_DATE \
        + b"\x04" + der_length(len(value)) + value


def _aki_extension(issuer_cert: x509.Certificate) -> bytes:
    try:
        key_id = issuer_cert.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier).value.digest
    except x509.ExtensionNotFound:
        key_id = x509.SubjectKeyIdentifier.from_public_key(issuer_cert.public_key()).digest
    aki = der_tlv(0x30, der_tlv(0x80, key_id))  # [0] IMPLICIT KeyIdentifier
    return der_tlv(0x30, _OID_AKI + der_tlv(0x04, aki))


def _crl_number_extension(number: int) -> bytes:
    return der_tlv(0x30, _OID_CRL_NUMBER + der_tlv(0x04, der_integer(number)))
