"""The OCSP responder core (RFC 6960): request bytes in, signed response bytes out.

Why it is built this way:

* **Pure.** ``answer`` takes the request DER, the issuing CA certificate, the delegated
  responder certificate and key, a ``lookup(serial) -> CertStatus`` callback and the time,
  and returns a DER ``OCSPResponse``. The caller (the API) owns the database and HTTP; a
  protocol problem never raises, it becomes an OCSP error status (sent with HTTP 200).
* **Fast.** The request is read by a small strict DER walker (``eseal.pki.ocsp_request``)
  and the response is assembled from DER pieces, so the only expensive step left is the
  signature. A request without a nonce (what browsers, pyHanko and RFC 5019 clients send)
  is answered from a
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
from eseal.errors import EsealError, InvalidInput
from eseal.pki.der import (
    der_generalized_time,
    der_length,
    der_tlv,
    issuer_name_der,
    public_key_bits,
    signature_algorithm_for,
    utc,
)
from eseal.pki.ocsp_request import (
    CERT_ID_HASHES,
    OID_NONCE,
    RESPONSE_STATUS_CODES,
    CertRequest,
    OcspProtocolError,
    ResponseStatus,
    parse_request,
)
from eseal.pki.ocsp_request import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES  # the API's limit

log = logging.getLogger(__name__)



_OID_BASIC = bytes.fromhex("06092b0601050507300101")  # 1.3.6.1.5.5.7.48.1.1



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
            for alg in CERT_ID_HASHES.values()}


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
        ext = der_tlv(0x30, OID_NONCE + der_tlv(0x04, nonce))
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
      still answers a well-formed OCSP response; ``tryLater`` when it is our token or
      database being unavailable for now (a coded 503 elsewhere).
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
    except EsealError as exc:
        if exc.status == 503:  # our token or database is unavailable for now (RFC 6960)
            log.warning("OCSP responder unavailable: %s", exc.code)
            return error_response("tryLater")
        log.exception("OCSP responder failed to answer")
        return error_response("internalError")
    except Exception:
        log.exception("OCSP responder failed to answer")
        return error_response("internalError")
