"""The OCSP responder core (RFC 6960): request bytes in, signed response bytes out.

Why it is built this way:

* **Pure.** ``answer`` takes the request DER, the issuing CA certificate, the delegated
  responder certificate and key, a ``lookup(serial) -> CertStatus`` callback and the time,
  and returns a DER ``OCSPResponse``. The caller (the API) owns the database and HTTP; a
  protocol problem never raises, it becomes an OCSP error status (sent with HTTP 200).
* **Fast.** The request is read by a small strict DER walker and the response is assembled
  from DER pieces, so the only expensive step left is the signature. A request without a
  nonce (what browsers, pyHanko and RFC 5019 clients send) is answered from a
  ``ResponseCache`` of pre-signed responses keyed by the certificate's *status version*:
  the caller looks the status up on every request (one indexed read), so a revocation made
  by another process changes the version and the next request gets a freshly signed
  answer at once. A request with a nonce is always signed afresh and echoes the nonce.
* **Exact.** The CertID is echoed byte for byte as the client sent it (SHA-1 or SHA-2
  hashes, NULL parameters or none), the responderID is byKey, the responder certificate
  rides in ``certs`` and revoked answers carry revocationTime and (unless unspecified)
  revocationReason — ``certificateHold`` for a frozen certificate.

Requests for another CA are answered ``unauthorized`` (see ``answer``).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from eseal.ca.crl import reason_code
from eseal.errors import InvalidInput
from eseal.pki.der import (
    DerError,
    der_generalized_time,
    der_length,
    der_read,
    der_tlv,
    issuer_name_der,
    public_key_bits,
    signature_algorithm_for,
    utc,
)

log = logging.getLogger(__name__)

MAX_REQUEST_BYTES = 16 * 1024
MAX_REQUESTS = 10  # CertIDs per request; each one costs a status lookup
MAX_NONCE_BYTES = 32  # RFC 8954: Nonce ::= OCTET STRING (SIZE(1..32))

ResponseStatus = Literal["successful", "malformedRequest", "internalError", "tryLater",
                         "sigRequired", "unauthorized"]
RESPONSE_STATUS_CODES: dict[str, int] = {
    "successful": 0, "malformedRequest": 1, "internalError": 2, "tryLater": 3,
    "sigRequired": 5, "unauthorized": 6,
}

_OID_NONCE = bytes.fromhex("06092b0601050507300102")  # 1.3.6.1.5.5.7.48.1.2
_OID_BASIC = bytes.fromhex("06092b0601050507300101")  # 1.3.6.1.5.5.7.48.1.1
# CertID hash algorithms by the DER of their OID.
_HASHES: dict[bytes, str] = {
    bytes.fromhex("06052b0e03021a"): "sha1",
    bytes.fromhex("0609608648016503040201"): "sha256",
    bytes.fromhex("0609608648016503040202"): "sha384",
    bytes.fromhex("0609608648016503040203"): "sha512",
}


class OcspProtocolError(InvalidInput):
    """A request the responder cannot answer; ``response_status`` is the OCSP status to send."""

    def __init__(self, response_status: ResponseStatus, message: str = "",
                 message_zh: str = "") -> None:
        code = "OCSP_" + "".join("_" + c if c.isupper() else c.upper()
                                 for c in response_status)
        super().__init__(code, message or f"OCSP request refused: {response_status}",
                         message_zh or f"OCSP 请求被拒绝：{response_status}", field="request")
        self.response_status = response_status


@dataclass(frozen=True)
class CertStatus:
    """What the database says about one serial; ``version`` changes whenever the status does."""

    status: Literal["good", "revoked", "unknown"]
    revoked_at: datetime | None = None
    reason: str | None = None  # RFC 5280 name; certificateHold for a frozen certificate
    version: int = 0

    def __post_init__(self) -> None:
        if self.status not in ("good", "revoked", "unknown"):
            raise InvalidInput("OCSP_BAD_STATUS", f"unknown status {self.status!r}",
                               f"未知状态 {self.status!r}", field="status")
        if self.status == "revoked" and self.revoked_at is None:
            raise InvalidInput("OCSP_REVOKED_WITHOUT_TIME", "a revoked status needs revoked_at",
                               "吊销状态必须带吊销时间", field="revoked_at")
        if self.status == "revoked":
            reason_code(self.reason, field="reason")  # refuses unknown names now, not later


UNKNOWN = CertStatus("unknown")


@dataclass(frozen=True)
class CertRequest:
    """One CertID of a request; ``cert_id`` is its DER exactly as the client sent it."""

    cert_id: bytes
    hash_algorithm: str
    issuer_name_hash: bytes
    issuer_key_hash: bytes
    serial: int | None  # None when not a valid certificate serial (≤ 0 or > 20 octets)


@dataclass(frozen=True)
class ParsedRequest:
    requests: tuple[CertRequest, ...]
    nonce: bytes | None  # the nonce extension's extnValue, echoed verbatim


# --------------------------------------------------------------------------------------
# Reading the request: a strict DER walker (definite lengths, one-octet tags)
# --------------------------------------------------------------------------------------
def _malformed(why: str) -> OcspProtocolError:
    return OcspProtocolError("malformedRequest", f"malformed OCSP request: {why}",
                             f"OCSP 请求格式错误：{why}")


def _tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, start of value, end of value) of the TLV at ``pos``, which must fit in ``end``."""
    try:
        return der_read(buf, pos, end)
    except DerError as exc:
        raise _malformed(str(exc)) from exc


def _expect(buf: bytes, pos: int, end: int, tag: int, what: str) -> tuple[int, int]:
    got, start, stop = _tlv(buf, pos, end)
    if got != tag:
        raise _malformed(f"expected {what}")
    return start, stop


def parse_request(der: bytes) -> ParsedRequest:
    """Read an OCSPRequest; raises ``OcspProtocolError("malformedRequest")`` for garbage,
    more than ``MAX_REQUEST_BYTES``, more than ``MAX_REQUESTS`` CertIDs, an unsupported
    CertID hash, a bad nonce or an unknown critical extension.

    A signature on the request (optionalSignature) is not checked: the answers are public.
    """
    if not der:
        raise _malformed("empty")
    if len(der) > MAX_REQUEST_BYTES:
        raise _malformed(f"larger than {MAX_REQUEST_BYTES} bytes")
    buf = bytes(der)
    start, end = _expect(buf, 0, len(buf), 0x30, "OCSPRequest")
    if end != len(buf):
        raise _malformed("trailing data")
    tbs_start, tbs_end = _expect(buf, start, end, 0x30, "TBSRequest")
    if tbs_end != end:
        tag, _, sig_end = _tlv(buf, tbs_end, end)
        if tag != 0xA0 or sig_end != end:
            raise _malformed("unexpected data after tbsRequest")
    pos = tbs_start
    tag, vstart, vend = _tlv(buf, pos, tbs_end)
    if tag == 0xA0:  # version [0] EXPLICIT, must be v1 (0)
        if buf[vstart:vend] != b"\x02\x01\x00":
            raise _malformed("unsupported version")
        pos = vend
        tag, vstart, vend = _tlv(buf, pos, tbs_end)
    if tag == 0xA1:  # requestorName: not used
        pos = vend
        tag, vstart, vend = _tlv(buf, pos, tbs_end)
    if tag != 0x30:
        raise _malformed("expected requestList")
    requests = _read_request_list(buf, vstart, vend)
    pos = vend
    nonce = None
    if pos < tbs_end:
        ext_start, ext_end = _expect(buf, pos, tbs_end, 0xA2, "requestExtensions")
        if ext_end != tbs_end:
            raise _malformed("trailing data in tbsRequest")
        nonce = _read_extensions(buf, ext_start, ext_end, want_nonce=True)
    return ParsedRequest(tuple(requests), nonce)


def _read_request_list(buf: bytes, pos: int, end: int) -> list[CertRequest]:
    requests: list[CertRequest] = []
    while pos < end:
        if len(requests) == MAX_REQUESTS:
            raise _malformed(f"more than {MAX_REQUESTS} certificates in one request")
        req_start, req_end = _expect(buf, pos, end, 0x30, "Request")
        cid_tag, cid_start, cid_end = _tlv(buf, req_start, req_end)
        if cid_tag != 0x30:
            raise _malformed("expected CertID")
        if cid_end < req_end:  # singleRequestExtensions [0]
            ext_start, ext_end = _expect(buf, cid_end, req_end, 0xA0, "singleRequestExtensions")
            if ext_end != req_end:
                raise _malformed("trailing data in Request")
            _read_extensions(buf, ext_start, ext_end, want_nonce=False)
        requests.append(_read_cert_id(buf, req_start, cid_start, cid_end))
        pos = req_end
    if not requests:
        raise _malformed("no certificates requested")
    return requests


def _read_cert_id(buf: bytes, tlv_start: int, start: int, end: int) -> CertRequest:
    alg_start, alg_end = _expect(buf, start, end, 0x30, "hashAlgorithm")
    oid_tag, _, oid_end = _tlv(buf, alg_start, alg_end)
    if oid_tag != 0x06:
        raise _malformed("expected algorithm OID")
    if oid_end != alg_end and buf[oid_end:alg_end] != b"\x05\x00":
        raise _malformed("unexpected hash parameters")
    name = _HASHES.get(buf[alg_start:oid_end])
    if name is None:
        raise _malformed("unsupported CertID hash algorithm")
    n_start, n_end = _expect(buf, alg_end, end, 0x04, "issuerNameHash")
    k_start, k_end = _expect(buf, n_end, end, 0x04, "issuerKeyHash")
    s_start, s_end = _expect(buf, k_end, end, 0x02, "serialNumber")
    if s_end != end or s_start == s_end:
        raise _malformed("bad CertID")
    raw_serial = buf[s_start:s_end]
    value = int.from_bytes(raw_serial, "big", signed=True)
    # no certificate of ours has a serial ≤ 0 or over 20 octets: unknown, never looked up
    serial = value if value > 0 and len(raw_serial) <= 20 else None
    return CertRequest(buf[tlv_start:end], name, buf[n_start:n_end], buf[k_start:k_end],
                       serial)


def _read_extensions(buf: bytes, start: int, end: int, *, want_nonce: bool) -> bytes | None:
    """Walk ``[n] EXPLICIT Extensions``; return the nonce extnValue if wanted and present."""
    seq_start, seq_end = _expect(buf, start, end, 0x30, "Extensions")
    if seq_end != end:
        raise _malformed("trailing data after Extensions")
    nonce = None
    pos = seq_start
    while pos < seq_end:
        e_start, e_end = _expect(buf, pos, seq_end, 0x30, "Extension")
        oid_tag, _, oid_end = _tlv(buf, e_start, e_end)
        if oid_tag != 0x06:
            raise _malformed("expected extension OID")
        tag, v_start, v_end = _tlv(buf, oid_end, e_end)
        critical = False
        if tag == 0x01:
            critical = buf[v_start:v_end] == b"\xff"
            tag, v_start, v_end = _tlv(buf, v_end, e_end)
        if tag != 0x04 or v_end != e_end:
            raise _malformed("bad extension")
        oid = buf[e_start:oid_end]
        if want_nonce and oid == _OID_NONCE:
            if nonce is not None:
                raise _malformed("two nonces")
            nonce = buf[v_start:v_end]
            _check_nonce(nonce)
        elif critical:
            raise _malformed("unsupported critical extension")
        pos = e_end
    return nonce


def _check_nonce(value: bytes) -> None:
    """RFC 8954: the nonce is an OCTET STRING of 1 … 32 octets inside extnValue.

    A bare nonce (extnValue not an OCTET STRING, as some old clients send) is measured as is.
    """
    inner = value
    if len(value) >= 2 and value[0] == 0x04:
        try:
            _, start, stop = _tlv(value, 0, len(value))
        except OcspProtocolError:
            start, stop = 0, -1
        if stop == len(value):
            inner = value[start:stop]
    if not 1 <= len(inner) <= MAX_NONCE_BYTES:
        raise _malformed(f"nonce must be 1 … {MAX_NONCE_BYTES} octets")


# --------------------------------------------------------------------------------------
# Pre-signed responses
# --------------------------------------------------------------------------------------
class ResponseCache:
    """A thread-safe LRU of signed responses to nonce-less single-certificate requests.

    Key: (CertID DER as sent, status version, responder key hash). The CertID carries the
    serial, the hash algorithm and the issuer; the version is what the database reports
    for the serial, so a status change makes the old entry unreachable. An entry is served
    until ``refresh_fraction`` of its validity has passed (then re-signed, so clients never
    get a response close to its nextUpdate), and never before its thisUpdate.
    """

    def __init__(self, max_entries: int = 100_000, refresh_fraction: float = 0.5) -> None:
        if max_entries < 1 or not 0 < refresh_fraction <= 1:
            raise InvalidInput("OCSP_CACHE_CONFIG", "cache needs ≥ 1 entry and 0 < fraction ≤ 1",
                               "缓存至少 1 项，比例须在 0 与 1 之间", field="max_entries")
        self.max_entries = max_entries
        self.refresh_fraction = refresh_fraction
        self._items: OrderedDict[tuple[bytes, int, bytes], tuple[bytes, datetime, datetime]] = \
            OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[bytes, int, bytes], now: datetime) -> bytes | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                der, this_update, refresh_at = item
                if this_update <= now < refresh_at:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return der
                del self._items[key]
            self.misses += 1
            return None

    def put(self, key: tuple[bytes, int, bytes], der: bytes, this_update: datetime,
            next_update: datetime) -> None:
        refresh_at = this_update + (next_update - this_update) * self.refresh_fraction
        with self._lock:
            self._items[key] = (der, this_update, refresh_at)
            self._items.move_to_end(key)
            while len(self._items) > self.max_entries:
                self._items.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


# --------------------------------------------------------------------------------------
# Answering
# --------------------------------------------------------------------------------------
def error_response(status: ResponseStatus) -> bytes:
    """An unsigned OCSPResponse carrying only an error status."""
    return b"\x30\x03\x0a\x01" + bytes((RESPONSE_STATUS_CODES[status],))


@functools.lru_cache(maxsize=16)
def _issuer_hashes(issuer_cert: x509.Certificate) -> dict[str, tuple[bytes, bytes]]:
    name, key = issuer_name_der(issuer_cert), public_key_bits(issuer_cert)
    return {alg: (hashlib.new(alg, name).digest(), hashlib.new(alg, key).digest())
            for alg in _HASHES.values()}


@functools.lru_cache(maxsize=16)
def _responder_parts(responder_cert: x509.Certificate) -> tuple[bytes, bytes]:
    """(responderID byKey DER, certs [0] field DER) for a responder certificate."""
    key_hash = hashlib.sha1(public_key_bits(responder_cert), usedforsecurity=False).digest()
    responder_id = der_tlv(0xA2, der_tlv(0x04, key_hash))
    certs = der_tlv(0xA0, der_tlv(0x30, responder_cert.public_bytes(
        serialization.Encoding.DER)))
    return responder_id, certs


def _single_response(req: CertRequest, status: CertStatus, this_update: bytes,
                     next_update: bytes) -> bytes:
    if status.status == "good":
        cert_status = b"\x80\x00"
    elif status.status == "revoked":
        assert status.revoked_at is not None
        info = der_generalized_time(status.revoked_at)
        code = reason_code(status.reason)
        if code is not None:
            info += b"\xa0\x03\x0a\x01" + bytes((code,))
        cert_status = der_tlv(0xA1, info)
    else:
        cert_status = b"\x82\x00"
    return der_tlv(0x30, req.cert_id + cert_status + this_update + next_update)


def _signed_response(requests: tuple[CertRequest, ...], statuses: list[CertStatus],
                     nonce: bytes | None, responder_cert: x509.Certificate,
                     responder_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
                     now: datetime, next_update: datetime) -> bytes:
    responder_id, certs = _responder_parts(responder_cert)
    produced = der_generalized_time(now)
    nxt = der_tlv(0xA0, der_generalized_time(next_update))
    singles = b"".join(_single_response(r, s, produced, nxt)
                       for r, s in zip(requests, statuses, strict=True))
    body = responder_id + produced + der_tlv(0x30, singles)
    if nonce is not None:
        ext = der_tlv(0x30, _OID_NONCE + der_tlv(0x04, nonce))
        body += der_tlv(0xA1, der_tlv(0x30, ext))
    tbs = der_tlv(0x30, body)
    sig_alg, sign = signature_algorithm_for(responder_key)
    signature = b"\x00" + sign(tbs)
    basic = der_tlv(0x30, tbs + sig_alg + b"\x03" + der_length(len(signature)) + signature
                    + certs)
    response_bytes = der_tlv(0x30, _OID_BASIC + der_tlv(0x04, basic))
    return der_tlv(0x30, b"\x0a\x01\x00" + der_tlv(0xA0, response_bytes))


def answer(
    der: bytes,
    *,
    issuer_cert: x509.Certificate,
    responder_cert: x509.Certificate,
    responder_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    lookup: Callable[[int], CertStatus],
    now: datetime,
    validity: timedelta,
    cache: ResponseCache | None = None,
) -> bytes:
    """The DER OCSPResponse for request ``der``; never raises for protocol problems.

    * garbage, oversized, too many CertIDs, unsupported hash, bad nonce → malformedRequest;
    * a CertID naming another issuer → ``unauthorized`` (the whole request). Why not a
      signed per-certificate ``unknown`` (what ``openssl ocsp -index`` does): RFC 6960 §2.3
      (after RFC 5019 §2.2.3) reserves ``unauthorized`` for a server "not capable of
      responding authoritatively", which is exactly the case: our delegated responder is
      authorised only by our issuing CA (RFC 6960 §4.2.2.2), so a signature of ours about
      another CA's certificate could not be validated by any client anyway, and not signing
      means a stranger cannot make the token sign for free. ``openssl ocsp`` reports it as
      "Responder Error: unauthorized (6)";
    * a failure in ``lookup`` or in signing → ``internalError`` (logged), so the HTTP layer
      still answers a well-formed OCSP response.
    """
    now = utc(now).replace(microsecond=0)
    try:
        request = parse_request(der)
    except OcspProtocolError as exc:
        return error_response(exc.response_status)
    except Exception:  # the walker raises only OcspProtocolError; anything else is garbage too
        return error_response("malformedRequest")
    ours = _issuer_hashes(issuer_cert)
    for req in request.requests:
        if ours[req.hash_algorithm] != (req.issuer_name_hash, req.issuer_key_hash):
            return error_response("unauthorized")
    try:
        statuses = [lookup(req.serial) if req.serial is not None else UNKNOWN
                    for req in request.requests]
        next_update = now + validity
        cacheable = cache is not None and request.nonce is None and len(request.requests) == 1
        if cacheable:
            assert cache is not None
            key = (request.requests[0].cert_id, statuses[0].version,
                   _responder_parts(responder_cert)[0])
            cached = cache.get(key, now)
            if cached is not None:
                return cached
        response = _signed_response(request.requests, statuses, request.nonce, responder_cert,
                                    responder_key, now, next_update)
        if cacheable:
            assert cache is not None
            cache.put(key, response, now, next_update)
        return response
    except Exception:
        log.exception("OCSP responder failed to answer")
        return error_response("internalError")
