"""Reading an OCSP request (RFC 6960): a strict DER walker, pure and without I/O.

Definite lengths, one-octet tags, at most ``MAX_REQUESTS`` CertIDs and a nonce of 1 to 32
octets (RFC 8954); each CertID is kept byte for byte as the client sent it, because the
response must echo it exactly. Anything else is an :class:`OcspProtocolError` carrying the
OCSP status to answer with (``malformedRequest``), never an exception that escapes as a 5xx.
The responder that answers (``eseal.ca.ocsp``) signs; this module only reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from eseal.errors import InvalidInput
from eseal.pki.der import (
    DerError,
    der_read,
)

MAX_REQUEST_BYTES = 16 * 1024
MAX_REQUESTS = 10  # CertIDs per request; each one costs a status lookup
MAX_NONCE_BYTES = 32  # RFC 8954: Nonce ::= OCTET STRING (SIZE(1..32))


ResponseStatus = Literal["successful", "malformedRequest", "internalError", "tryLater",
                         "sigRequired", "unauthorized"]
RESPONSE_STATUS_CODES: dict[str, int] = {
    "successful": 0, "malformedRequest": 1, "internalError": 2, "tryLater": 3,
    "sigRequired": 5, "unauthorized": 6,
}


OID_NONCE = bytes.fromhex("06092b0601050507300102")  # 1.3.6.1.5.5.7.48.1.2


# CertID hash algorithms by the DER of their OID.
CERT_ID_HASHES: dict[bytes, str] = {
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
    name = CERT_ID_HASHES.get(buf[alg_start:oid_end])
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
        if want_nonce and oid == OID_NONCE:
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
