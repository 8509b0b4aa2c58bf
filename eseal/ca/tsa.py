"""The timestamp authority core (RFC 3161 with RFC 5816): TimeStampReq in, TimeStampResp out.

A seal (PAdES B-T and up) carries a timestamp from this TSA proving the signature existed at
``genTime``. ``answer`` is pure: it takes the request DER, the TSA certificate and key (a
token key in production), the chain to hand out, the policy, a serial the caller made
unique, and the time; it returns DER and never raises for protocol problems — those become
a ``rejection`` status with the RFC 3161 failInfo bit (sent with HTTP 200 by the API).

What the token says (TSTInfo): version 1, our policy (``eseal.pki.oids.TSA_POLICY`` unless
the caller configures another; a request naming a different one is ``unacceptedPolicy``),
the messageImprint byte for byte as sent, the serial, genTime in whole seconds, accuracy,
the nonce echoed, and the TSA's name. It is wrapped in CMS SignedData (eContentType
id-ct-TSTInfo, version 3) signed by the TSA key with signed attributes contentType,
signingTime, messageDigest and signingCertificateV2 (ESSCertIDv2, SHA-256 over the TSA
certificate, with issuerSerial) as RFC 5816 asks. The TSA certificate, followed by
``chain``, is included only when the request sets certReq.

Hash algorithms: SHA-256, SHA-384 and SHA-512. SHA-1 is refused (badAlg) on purpose: a
timestamp over a SHA-1 imprint would vouch for every document with a colliding digest, and
SHA-1 collisions are practical (chosen-prefix since 2020); NIST SP 800-131A disallows it
for new signatures. SHA-2 AlgorithmIdentifiers are written with absent parameters (RFC 5754).

How: the request is read by a strict DER walk (``eseal.pki.tsa_request``) and the response
is assembled from DER pieces (``parse_request`` and ``_token`` say why: asn1crypto objects
cost many times the signature); asn1crypto still builds the per-certificate pieces once,
and the tests check every response with asn1crypto, ``openssl ts -verify`` and pyHanko.
Note for clients: asn1crypto's ``tsp.TimeStampResp`` makes timeStampToken mandatory, so
asn1crypto-based clients (pyHanko) raise a parse error on a rejection instead of reporting
its failInfo; the rejection itself is what RFC 3161 prescribes (no token).

Serial numbers must be unique across processes: the caller passes ``serial``; see
``tsa_serial`` and ``SerialBlocks`` for the proposed scheme (a database counter reserved in
blocks, plus 32 random bits).
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from eseal.errors import InvalidInput
from eseal.pki.der import (
    der_generalized_time,
    der_integer,
    der_time,
    der_tlv,
)
from eseal.pki.oids import TSA_POLICY
from eseal.pki.tsa_request import MAX_REQUEST_BYTES as MAX_REQUEST_BYTES  # the API's limit
from eseal.pki.tsa_request import TimestampRequest, TsaProtocolError, parse_request

log = logging.getLogger(__name__)



# RFC 3161 PKIFailureInfo names -> asn1crypto's names for the same bits.
FAILURES: dict[str, str] = {
    "badAlg": "bad_alg",
    "badRequest": "bad_request",
    "badDataFormat": "bad_data_format",
    "timeNotAvailable": "time_not_available",
    "unacceptedPolicy": "unaccepted_policy",
    "unacceptedExtension": "unaccepted_extensions",
    "addInfoNotAvailable": "add_info_not_available",
    "systemFailure": "system_failure",
}

# SHA-2 AlgorithmIdentifiers with absent parameters (RFC 5754 §2); asn1crypto would add NULL.
_DIGEST_ALGORITHMS = {
    "sha256": bytes.fromhex("300b0609608648016503040201"),
    "sha384": bytes.fromhex("300b0609608648016503040202"),
    "sha512": bytes.fromhex("300b0609608648016503040203"),
}










# --------------------------------------------------------------------------------------
# Serial numbers
# --------------------------------------------------------------------------------------
def tsa_serial(counter_value: int, node: bytes | None = None) -> int:
    """A TSTInfo serial: ``counter_value`` (1 … 2^63-1) ‖ 32 low bits.

    Uniqueness comes from the counter alone (a database counter shared by every process);
    the low 32 bits are random (or a fixed 4-byte ``node`` id for deployments whose nodes
    keep separate counters), so serials do not reveal the exact issuance rate and a
    verifier cannot guess the next one. At most 95 bits: well inside RFC 3161's 160.
    """
    if not 0 < counter_value < 1 << 63:
        raise InvalidInput("TSA_COUNTER_RANGE", "TSA counter must be 1 … 2^63-1",
                           "时间戳计数器必须在 1 … 2^63-1 之间", field="counter_value")
    if node is not None and len(node) != 4:
        raise InvalidInput("TSA_NODE_ID", "node id must be 4 bytes", "节点标识必须为 4 字节",
                           field="node")
    low = int.from_bytes(node, "big") if node is not None else secrets.randbits(32)
    return counter_value << 32 | low


class SerialBlocks:
    """Hands out TSA serials from counter blocks reserved ``block`` at a time.

    ``reserve(n)`` must atomically advance a shared counter by ``n`` and return the first
    value of the reserved range, e.g. ``UPDATE counters SET value = value + :n WHERE
    name = 'tsa' RETURNING value - :n + 1`` (SQLite ≥ 3.35, PostgreSQL) or a PostgreSQL
    sequence with ``INCREMENT BY n``. One database round trip per ``block`` timestamps;
    values of a block a crashed process did not use are simply skipped. Thread-safe.
    """

    def __init__(self, reserve: Callable[[int], int], block: int = 1024,
                 node: bytes | None = None) -> None:
        self._reserve = reserve
        self._block = block
        self._node = node
        self._next = 0
        self._end = 0
        self._lock = threading.Lock()

    def next_serial(self) -> int:
        with self._lock:
            if self._next >= self._end:
                first = self._reserve(self._block)
                self._next, self._end = first, first + self._block
            value = self._next
            self._next += 1
        return tsa_serial(value, self._node)


# --------------------------------------------------------------------------------------
# Building the response
# --------------------------------------------------------------------------------------
def _rejection(fail_info: str, text: str) -> bytes:
    status = tsp.PKIStatusInfo({
        "status": "rejection",
        "status_string": [text],
        "fail_info": tsp.PKIFailureInfo({FAILURES[fail_info]}),
    })
    return der_tlv(0x30, status.dump())  # no timeStampToken


@dataclass(frozen=True)
class _SignerParts:
    """DER pieces that depend only on the TSA certificate, computed once per certificate."""

    certificate: bytes
    sid: bytes  # IssuerAndSerialNumber
    tsa_name: bytes  # [0] EXPLICIT GeneralName (directoryName)
    signing_certificate_v2: bytes  # the whole signed attribute


@functools.lru_cache(maxsize=8)
def _signer_parts(tsa_cert: x509.Certificate) -> _SignerParts:
    der = tsa_cert.public_bytes(serialization.Encoding.DER)
    tbs = asn1_x509.Certificate.load(der)["tbs_certificate"]
    ess = tsp.ESSCertIDv2({  # hashAlgorithm left at its DEFAULT (SHA-256), so not encoded
        "cert_hash": hashlib.sha256(der).digest(),
        "issuer_serial": {
            "issuer": [asn1_x509.GeneralName(name="directory_name", value=tbs["issuer"])],
            "serial_number": tbs["serial_number"],
        },
    })
    attribute = cms.CMSAttribute({"type": "signing_certificate_v2",
                                  "values": [tsp.SigningCertificateV2({"certs": [ess]})]})
    sid = cms.IssuerAndSerialNumber({"issuer": tbs["issuer"],
                                     "serial_number": tbs["serial_number"]})
    name = asn1_x509.GeneralName(name="directory_name", value=tbs["subject"]).dump()
    return _SignerParts(certificate=der, sid=sid.dump(), tsa_name=der_tlv(0xA0, name),
                        signing_certificate_v2=attribute.dump())


@functools.lru_cache(maxsize=32)
def _certificate_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


_ECDSA_SHA256 = bytes.fromhex("300a06082a8648ce3d040302")
_ECDSA_SHA384 = bytes.fromhex("300a06082a8648ce3d040303")
_RSA_SHA256 = bytes.fromhex("300d06092a864886f70d01010b0500")


_PREHASHED = {"sha256": Prehashed(hashes.SHA256()), "sha384": Prehashed(hashes.SHA384())}


def _signature_scheme(
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
) -> tuple[str, bytes, Callable[[bytes], bytes]]:
    """(digest name, signatureAlgorithm DER, sign(digest)) for the TSA key.

    The caller hashes the signed attributes itself (it needs no other digest), and token keys
    get the digest through ``sign_digest``: the generic ``sign()`` of the token adapter costs
    ~20 µs more per call.
    """
    if isinstance(key, ec.EllipticCurvePrivateKey):
        name, algorithm = ("sha384", _ECDSA_SHA384) if key.curve.key_size > 256 \
            else ("sha256", _ECDSA_SHA256)
        sign_digest = getattr(key, "sign_digest", None)
        if sign_digest is not None:
            return name, algorithm, sign_digest
        prehashed = ec.ECDSA(_PREHASHED[name])
        return name, algorithm, lambda digest: key.sign(digest, prehashed)
    if isinstance(key, rsa.RSAPrivateKey):
        prehashed_sha256 = _PREHASHED["sha256"]
        return "sha256", _RSA_SHA256, \
            lambda digest: key.sign(digest, padding.PKCS1v15(), prehashed_sha256)
    raise InvalidInput("UNSUPPORTED_KEY", "TSA keys must be EC or RSA",
                       "时间戳密钥必须是 EC 或 RSA", field="tsa_key")


_OID_ATTR_CONTENT_TYPE = bytes.fromhex("06092a864886f70d010903")
_OID_ATTR_MESSAGE_DIGEST = bytes.fromhex("06092a864886f70d010904")
_OID_ATTR_SIGNING_TIME = bytes.fromhex("06092a864886f70d010905")
_OID_TST_INFO = bytes.fromhex("060b2a864886f70d0109100104")
_OID_SIGNED_DATA = bytes.fromhex("06092a864886f70d010702")
_GRANTED = b"\x30\x03\x02\x01\x00"  # PKIStatusInfo { status granted }
_CONTENT_TYPE_ATTRIBUTE = der_tlv(0x30, _OID_ATTR_CONTENT_TYPE + der_tlv(0x31, _OID_TST_INFO))


@functools.lru_cache(maxsize=8)
def _oid_der(dotted: str) -> bytes:
    return core.ObjectIdentifier(dotted).dump()


def _token(request: TimestampRequest, *, tsa_cert: x509.Certificate,
           tsa_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
           chain: Sequence[x509.Certificate], policy: str, serial: int, now: datetime,
           accuracy_seconds: int) -> bytes:
    """The granted TimeStampResp, assembled from DER pieces.

    Only the request is parsed with asn1crypto; the response is a handful of byte joins
    around pieces cached per TSA certificate. Building it with asn1crypto objects cost
    ~0.7 ms per timestamp (it copies and re-encodes embedded certificates), thirty times
    the signature itself; the tests check the result with asn1crypto, openssl and pyHanko.
    """
    parts = _signer_parts(tsa_cert)
    tst = (b"\x02\x01\x01"  # version v1
           + _oid_der(policy)
           + request.message_imprint
           + der_integer(serial)
           + der_generalized_time(now)
           + der_tlv(0x30, der_integer(accuracy_seconds)))
    if request.nonce is not None:
        tst += der_integer(request.nonce)
    tst = der_tlv(0x30, tst + parts.tsa_name)

    digest_name, signature_algorithm, sign = _signature_scheme(tsa_key)
    digest_algorithm = _DIGEST_ALGORITHMS[digest_name]
    attributes = sorted([  # DER SET OF: members in ascending order of their encodings
        _CONTENT_TYPE_ATTRIBUTE,
        der_tlv(0x30, _OID_ATTR_SIGNING_TIME + der_tlv(0x31, der_time(now))),
        der_tlv(0x30, _OID_ATTR_MESSAGE_DIGEST + der_tlv(0x31, der_tlv(
            0x04, hashlib.new(digest_name, tst).digest()))),
        parts.signing_certificate_v2,
    ])
    signed_attrs = b"".join(attributes)
    # signed as the DER of a SET OF (RFC 5652 §5.4), not as the [0] it is sent in
    signature = sign(hashlib.new(digest_name, der_tlv(0x31, signed_attrs)).digest())
    signer_info = der_tlv(0x30, b"\x02\x01\x01" + parts.sid + digest_algorithm
                          + der_tlv(0xA0, signed_attrs) + signature_algorithm
                          + der_tlv(0x04, signature))
    body = (b"\x02\x01\x03"  # SignedData version 3: eContentType is not id-data
            + der_tlv(0x31, digest_algorithm)
            + der_tlv(0x30, _OID_TST_INFO + der_tlv(0xA0, der_tlv(0x04, tst))))
    if request.cert_req:
        certificates = sorted([parts.certificate, *(_certificate_der(c) for c in chain)])
        body += der_tlv(0xA0, b"".join(certificates))
    body += der_tlv(0x31, signer_info)
    content_info = der_tlv(0x30, _OID_SIGNED_DATA + der_tlv(0xA0, der_tlv(0x30, body)))
    return der_tlv(0x30, _GRANTED + content_info)


def answer(
    der: bytes,
    *,
    tsa_cert: x509.Certificate,
    tsa_key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    chain: Sequence[x509.Certificate] = (),
    policy: str = TSA_POLICY.dotted_string,
    serial: int,
    now: datetime,
    accuracy_seconds: int = 1,
) -> bytes:
    """The DER TimeStampResp for request ``der``; never raises for protocol problems.

    Garbage → badDataFormat; an unsupported hash (MD5, SHA-1, unknown OIDs) → badAlg; a
    digest of the wrong length → badDataFormat; another policy → unacceptedPolicy; request
    extensions → unacceptedExtension; a signing failure → systemFailure (logged). The
    caller's own mistakes (a serial ≤ 0, accuracy < 1) raise ``InvalidInput``.
    """
    if serial <= 0 or serial.bit_length() > 160:
        raise InvalidInput("TSA_SERIAL_RANGE", "TSA serial must be 1 … 2^160-1",
                           "时间戳序列号必须在 1 … 2^160-1 之间", field="serial")
    if accuracy_seconds < 1:
        raise InvalidInput("TSA_ACCURACY", "accuracy must be at least one second",
                           "精度至少为 1 秒", field="accuracy_seconds")
    try:
        request = parse_request(der)
        if request.policy is not None and request.policy != policy:
            raise TsaProtocolError("unacceptedPolicy",
                                   f"policy {request.policy} is not offered; use {policy}",
                                   f"不提供策略 {request.policy}；请使用 {policy}")
    except TsaProtocolError as exc:
        return _rejection(exc.fail_info, exc.message)
    try:
        return _token(request, tsa_cert=tsa_cert, tsa_key=tsa_key, chain=chain, policy=policy,
                      serial=serial, now=now, accuracy_seconds=accuracy_seconds)
    except Exception:
        log.exception("TSA failed to sign a timestamp")
        return _rejection("systemFailure", "the TSA could not sign the timestamp")
