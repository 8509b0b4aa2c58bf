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
The DER helpers it builds with live in ``eseal.pki.der``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from eseal.errors import InvalidInput
from eseal.pki.der import (
    der_generalized_time,
    der_integer,
    der_length,
    der_time,
    der_tlv,
    issuer_name_der,
    signature_algorithm_for,
    utc,
)


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
    head, ``eseal.audit.anchor``).

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
