"""The OCSP responder core, judged by openssl, pkilint and cryptography's OCSP parser."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from asn1crypto import core as asn1_core
from asn1crypto import ocsp as asn1_ocsp
from certkit import TOOLS, hierarchy, issue, pem, token_key
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp

from eseal import clock
from eseal.ca.ocsp import CertStatus, ResponseCache, answer
from eseal.errors import InvalidInput
from eseal.pki.ocsp_request import (
    MAX_REQUEST_BYTES,
    MAX_REQUESTS,
    OcspProtocolError,
    parse_request,
)
from eseal.settings import Settings

LINT_OCSP = TOOLS / "lint_ocsp_response"
NOW = clock.now().replace(microsecond=0)  # openssl checks status times against its own clock
VALIDITY = dt.timedelta(hours=24)
HELD = CertStatus("revoked", NOW - dt.timedelta(days=2), "certificateHold", version=2)
REVOKED = CertStatus("revoked", NOW - dt.timedelta(days=1), "keyCompromise", version=3)


# --- a test hierarchy: root (P-384) -> issuing (P-256) -> OCSP signer and leaves ----------
@dataclass
class Pki:
    dir: Path
    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    responder: x509.Certificate
    responder_key: ec.EllipticCurvePrivateKey
    leaves: list[x509.Certificate]
    other_leaf: x509.Certificate  # issued by another CA under the same root
    statuses: dict[int, CertStatus] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def lookup(self, serial: int) -> CertStatus:
        return self.statuses.get(serial, CertStatus("unknown"))

    def answer(self, request: bytes, *, cache: ResponseCache | None = None,
               now: dt.datetime = NOW,
               lookup: Callable[[int], CertStatus] | None = None) -> bytes:
        return answer(request, issuer_cert=self.issuing, responder_cert=self.responder,
                      responder_key=self.responder_key, lookup=lookup or self.lookup,
                      now=now, validity=VALIDITY, cache=cache)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root, root_key, issuing, issuing_key = hierarchy(NOW)
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = issue("Other Issuing", other_key.public_key(), root, root_key, kind="ca", now=NOW)
    responder_key = ec.generate_private_key(ec.SECP256R1())
    responder = issue("Test OCSP", responder_key.public_key(), issuing, issuing_key,
                      kind="ocsp", now=NOW)

    def leaf(issuer: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
        return issue("leaf", ec.generate_private_key(ec.SECP256R1()).public_key(), issuer,
                     key, kind="leaf", now=NOW)

    p = Pki(tmp_path_factory.mktemp("ocsp"), root, issuing, issuing_key, responder,
            responder_key, [leaf(issuing, issuing_key) for _ in range(4)],
            leaf(other, other_key))
    p.statuses = {p.leaves[0].serial_number: CertStatus("good", version=1),
                  p.leaves[1].serial_number: REVOKED,
                  p.leaves[2].serial_number: HELD}
    for name, data in [("root.pem", pem(root)), ("issuing.pem", pem(issuing)),
                       ("other.pem", pem(other)), ("other-leaf.pem", pem(p.other_leaf))]:
        (p.dir / name).write_bytes(data)
    for i, cert in enumerate(p.leaves):
        (p.dir / f"leaf{i}.pem").write_bytes(pem(cert))
    return p


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "ocsp", *args], capture_output=True, text=True,
                          check=False)


def _openssl_request(pki: Pki, *certs: str, nonce: bool = False, digest: str = "-sha1",
                     issuer: str = "issuing.pem", name: str = "req.der") -> bytes:
    args = ["-issuer", pki.path(issuer), digest]
    for cert in certs:
        args += ["-cert", pki.path(cert)]
    done = _openssl(*args, "-nonce" if nonce else "-no_nonce", "-reqout", pki.path(name))
    assert done.returncode == 0, done.stderr
    return (pki.dir / name).read_bytes()


def _openssl_status(pki: Pki, response: bytes, *certs: str,
                    digest: str = "-sha1") -> subprocess.CompletedProcess[str]:
    """openssl's verdict: signature and chain checked against our root, then each status."""
    (pki.dir / "resp.der").write_bytes(response)
    args = ["-respin", pki.path("resp.der"), "-issuer", pki.path("issuing.pem"),
            "-CAfile", pki.path("root.pem"), "-no_nonce", digest]
    for cert in certs:
        args += ["-cert", pki.path(cert)]
    return _openssl(*args)


def _lint(pki: Pki, response: bytes) -> subprocess.CompletedProcess[str]:
    (pki.dir / "lint.der").write_bytes(response)
    return subprocess.run([str(LINT_OCSP), "lint", "-s", "WARNING", pki.path("lint.der")],
                          capture_output=True, text=True, check=False)


# asn1crypto parses a nonce's extnValue as an OCTET STRING; to send any bytes as a nonce the
# request is built with a stand-in OID of the same length, then the OID is swapped.
_STAND_IN = "1.3.6.1.5.5.7.48.1.99"
_STAND_IN_DER = bytes.fromhex("06092b0601050507300163")
_NONCE_DER = bytes.fromhex("06092b0601050507300102")


def _asn1_request(cert_ids: list[asn1_ocsp.CertId],
                  extensions: list[tuple[str, bytes, bool]] | None = None) -> bytes:
    """A request built by asn1crypto; extensions are (oid or "nonce", extnValue, critical)."""
    tbs: dict[str, object] = {"request_list": [{"req_cert": cid} for cid in cert_ids]}
    if extensions:
        tbs["request_extensions"] = [
            asn1_ocsp.TBSRequestExtension({
                "extn_id": _STAND_IN if oid == "nonce" else oid, "critical": critical,
                "extn_value": asn1_core.ParsableOctetString(value)})
            for oid, value, critical in extensions]
    return asn1_ocsp.OCSPRequest({"tbs_request": tbs}).dump().replace(_STAND_IN_DER,
                                                                      _NONCE_DER)


def _cert_id(pki: Pki, serial: int, algorithm: str = "sha1") -> asn1_ocsp.CertId:
    req = ocsp.OCSPRequestBuilder().add_certificate(pki.leaves[0], pki.issuing,
                                                    hashes.SHA1()).build()
    return asn1_ocsp.CertId({
        "hash_algorithm": {"algorithm": algorithm},
        "issuer_name_hash": req.issuer_name_hash,
        "issuer_key_hash": req.issuer_key_hash,
        "serial_number": serial,
    })


# --- tests ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("leaf", "verdict"), [
    (0, "good"), (1, "revoked"), (2, "revoked"), (3, "unknown")])
def test_openssl_verifies_good_revoked_held_and_unknown_answers(pki: Pki, leaf: int,
                                                                verdict: str) -> None:
    response = pki.answer(_openssl_request(pki, f"leaf{leaf}.pem"))
    done = _openssl_status(pki, response, f"leaf{leaf}.pem")
    assert done.returncode == 0, done.stderr
    assert "Response verify OK" in done.stderr
    assert "WARNING" not in done.stdout + done.stderr
    assert f"leaf{leaf}.pem: {verdict}" in done.stdout
    if leaf == 1:
        assert "Reason: keyCompromise" in done.stdout
    if leaf == 2:
        assert "Reason: certificateHold" in done.stdout
    parsed = ocsp.load_der_ocsp_response(response)
    assert parsed.responder_key_hash == x509.SubjectKeyIdentifier.from_public_key(
        pki.responder_key.public_key()).digest
    assert parsed.certificates == [pki.responder]
    assert parsed.produced_at_utc == parsed.this_update_utc == NOW
    assert parsed.next_update_utc == NOW + VALIDITY


def test_responses_pass_pkilint_at_warning(pki: Pki) -> None:
    for leaf in range(4):
        response = pki.answer(_openssl_request(pki, f"leaf{leaf}.pem", nonce=leaf == 0))
        done = _lint(pki, response)
        assert done.returncode == 0, done.stdout + done.stderr


def test_nonce_is_echoed_and_openssl_matches_it_to_the_request(pki: Pki) -> None:
    cache = ResponseCache()
    request = _openssl_request(pki, "leaf0.pem", nonce=True, name="nonce.der")
    response = pki.answer(request, cache=cache)
    (pki.dir / "resp.der").write_bytes(response)
    done = _openssl("-respin", pki.path("resp.der"), "-reqin", pki.path("nonce.der"),
                    "-issuer", pki.path("issuing.pem"), "-CAfile", pki.path("root.pem"))
    assert done.returncode == 0, done.stderr
    assert "Response verify OK" in done.stderr and "Nonce" not in done.stderr
    sent = ocsp.load_der_ocsp_request(request).extensions.get_extension_for_class(
        x509.OCSPNonce).value.nonce
    got = ocsp.load_der_ocsp_response(response).extensions.get_extension_for_class(
        x509.OCSPNonce).value.nonce
    assert got == sent and len(sent) == 16
    # another nonce for the same certificate is a fresh response, never the cached one
    other = pki.answer(_openssl_request(pki, "leaf0.pem", nonce=True, name="nonce2.der"),
                       cache=cache)
    assert ocsp.load_der_ocsp_response(other).extensions.get_extension_for_class(
        x509.OCSPNonce).value.nonce != sent
    assert len(cache) == 0


def test_sha256_cert_ids_for_several_certificates_are_answered_in_order(pki: Pki) -> None:
    response = pki.answer(_openssl_request(pki, "leaf1.pem", "leaf0.pem", "leaf3.pem",
                                           digest="-sha256"))
    done = _openssl_status(pki, response, "leaf1.pem", "leaf0.pem", "leaf3.pem",
                           digest="-sha256")
    assert "Response verify OK" in done.stderr, done.stderr
    lines = [line.rsplit("/", 1)[-1] for line in done.stdout.splitlines() if ".pem: " in line]
    assert lines == ["leaf1.pem: revoked", "leaf0.pem: good", "leaf3.pem: unknown"]
    singles = list(ocsp.load_der_ocsp_response(response).responses)
    assert [s.hash_algorithm.name for s in singles] == ["sha256"] * 3


@pytest.mark.parametrize("digest", ["-sha1", "-sha256"])
def test_another_issuers_certificate_is_unauthorized(pki: Pki, digest: str) -> None:
    request = _openssl_request(pki, "other-leaf.pem", issuer="other.pem", digest=digest)
    response = pki.answer(request)
    assert ocsp.load_der_ocsp_response(response).response_status \
        == ocsp.OCSPResponseStatus.UNAUTHORIZED
    (pki.dir / "resp.der").write_bytes(response)
    done = _openssl("-respin", pki.path("resp.der"), "-issuer", pki.path("other.pem"),
                    "-cert", pki.path("other-leaf.pem"), "-CAfile", pki.path("root.pem"),
                    "-no_nonce")
    assert "Responder Error: unauthorized (6)" in done.stdout
    # one foreign CertID among ours is enough: the responder cannot vouch for it
    mixed = _openssl_request(pki, "leaf0.pem", digest=digest)
    foreign = asn1_ocsp.OCSPRequest.load(request)["tbs_request"]["request_list"][0]["req_cert"]
    ours = asn1_ocsp.OCSPRequest.load(mixed)["tbs_request"]["request_list"][0]["req_cert"]
    assert ocsp.load_der_ocsp_response(pki.answer(_asn1_request([ours, foreign]))) \
        .response_status == ocsp.OCSPResponseStatus.UNAUTHORIZED


def _malformed_inputs(pki: Pki) -> dict[str, bytes]:
    good = _openssl_request(pki, "leaf0.pem")
    cid = _cert_id(pki, pki.leaves[0].serial_number)
    return {
        "empty": b"",
        "garbage": b"GET / HTTP/1.1\r\n\r\n",
        "truncated": good[:-3],
        "trailing": good + b"\x00",
        "indefinite length": b"\x30\x80" + good[2:] + b"\x00\x00",
        "oversized": _asn1_request([cid], [("1.2.3.4", b"x" * MAX_REQUEST_BYTES, False)]),
        "too many": _asn1_request([cid] * (MAX_REQUESTS + 1)),
        "no certificates": _asn1_request([]),
        "sha224 CertID": _asn1_request([_cert_id(pki, 5, "sha224")]),
        "md5 CertID": _asn1_request([_cert_id(pki, 5, "md5")]),
        "empty nonce": _asn1_request([cid], [("nonce", b"\x04\x00", False)]),
        "33-octet nonce": _asn1_request([cid], [("nonce", b"\x04\x21" + b"n" * 33, False)]),
        "unknown critical": _asn1_request([cid], [("1.2.3.4", b"\x05\x00", True)]),
    }


def test_garbage_oversized_and_unsupported_requests_get_malformed_request(pki: Pki) -> None:
    for what, request in _malformed_inputs(pki).items():
        response = pki.answer(request)
        assert response == b"\x30\x03\x0a\x01\x01", what
        with pytest.raises(OcspProtocolError) as exc:
            parse_request(request)
        assert exc.value.response_status == "malformedRequest", what
        assert exc.value.code == "OCSP_MALFORMED_REQUEST"
    (pki.dir / "resp.der").write_bytes(pki.answer(b"garbage"))
    done = _openssl("-respin", pki.path("resp.der"), "-issuer", pki.path("issuing.pem"),
                    "-cert", pki.path("leaf0.pem"), "-no_nonce")
    assert "Responder Error: malformedrequest (1)" in done.stdout


def test_bare_nonce_and_sixteen_kib_request_are_accepted(pki: Pki) -> None:
    cid = _cert_id(pki, pki.leaves[0].serial_number)
    parsed = parse_request(_asn1_request([cid], [("nonce", b"n" * 20, False)]))
    assert parsed.nonce == b"n" * 20
    assert parsed.requests[0].serial == pki.leaves[0].serial_number
    size = MAX_REQUEST_BYTES - 100
    for _ in range(2):  # the DER length octets grow with the filler: converge in two steps
        exact = _asn1_request([cid], [("1.2.3.4", b"x" * size, False)])
        size -= len(exact) - MAX_REQUEST_BYTES
    assert len(exact) == MAX_REQUEST_BYTES
    assert len(parse_request(exact).requests) == 1


def test_cache_reuses_the_signed_response_until_the_status_version_changes(pki: Pki) -> None:
    cache = ResponseCache(max_entries=2)
    request = _openssl_request(pki, "leaf0.pem", name="cached.der")
    status = {"now": CertStatus("good", version=7)}
    calls: list[int] = []

    def lookup(serial: int) -> CertStatus:
        calls.append(serial)
        return status["now"]

    first = pki.answer(request, cache=cache, lookup=lookup)
    later = NOW + dt.timedelta(hours=1)
    assert pki.answer(request, cache=cache, lookup=lookup, now=later) == first
    assert cache.hits == 1 and len(calls) == 2  # the status is still read every time

    # a revocation from another process bumps the version: the next answer says revoked
    status["now"] = CertStatus("revoked", later, "keyCompromise", version=8)
    revoked = pki.answer(request, cache=cache, lookup=lookup, now=later)
    assert revoked != first
    assert ocsp.load_der_ocsp_response(revoked).certificate_status \
        == ocsp.OCSPCertStatus.REVOKED

    # past half the validity the response is re-signed rather than served near nextUpdate
    late = later + VALIDITY / 2 + dt.timedelta(seconds=1)
    fresh = pki.answer(request, cache=cache, lookup=lookup, now=late)
    assert ocsp.load_der_ocsp_response(fresh).this_update_utc == late
    # a clock that went back never gets a response from its future
    assert ocsp.load_der_ocsp_response(
        pki.answer(request, cache=cache, lookup=lookup, now=NOW)).this_update_utc == NOW

    for leaf in ("leaf1.pem", "leaf2.pem", "leaf3.pem"):
        pki.answer(_openssl_request(pki, leaf, name="c.der"), cache=cache)
    assert len(cache) == 2


def test_impossible_serials_are_unknown_without_a_lookup(pki: Pki) -> None:
    def must_not_be_called(serial: int) -> CertStatus:
        raise AssertionError(serial)

    for serial in (0, -5, 1 << 170):
        response = pki.answer(_asn1_request([_cert_id(pki, serial)]),
                              lookup=must_not_be_called)
        assert ocsp.load_der_ocsp_response(response).certificate_status \
            == ocsp.OCSPCertStatus.UNKNOWN


def test_lookup_failure_is_an_internal_error_response(pki: Pki) -> None:
    def broken(serial: int) -> CertStatus:
        raise RuntimeError("database gone")

    response = pki.answer(_openssl_request(pki, "leaf0.pem"), lookup=broken)
    assert ocsp.load_der_ocsp_response(response).response_status \
        == ocsp.OCSPResponseStatus.INTERNAL_ERROR


def test_cert_status_refuses_impossible_states() -> None:
    with pytest.raises(InvalidInput) as exc:
        CertStatus("revoked")
    assert exc.value.code == "OCSP_REVOKED_WITHOUT_TIME"
    with pytest.raises(InvalidInput) as exc:
        CertStatus("revoked", NOW, "removeFromCRL")
    assert exc.value.code == "CRL_REASON_NOT_ALLOWED"
    with pytest.raises(InvalidInput):
        CertStatus("frozen")  # type: ignore[arg-type]


def test_token_responder_key_signs_answers_openssl_accepts(pki: Pki, settings: Settings) -> None:
    with token_key(settings, "ocsp", "2468-1357") as key:
        responder = issue("Token OCSP", key.public_key(), pki.issuing, pki.issuing_key,
                          kind="ocsp", now=NOW)
        response = answer(_openssl_request(pki, "leaf2.pem", nonce=True, name="tok.der"),
                          issuer_cert=pki.issuing, responder_cert=responder,
                          responder_key=key, lookup=pki.lookup, now=NOW, validity=VALIDITY,
                          cache=None)
    done = _openssl("-respin", _write(pki, "tok-resp.der", response),
                    "-reqin", pki.path("tok.der"), "-issuer", pki.path("issuing.pem"),
                    "-CAfile", pki.path("root.pem"))
    assert "Response verify OK" in done.stderr, done.stderr
    assert _lint(pki, response).returncode == 0
    parsed = ocsp.load_der_ocsp_response(response)
    assert parsed.revocation_reason == x509.ReasonFlags.certificate_hold


def _write(pki: Pki, name: str, data: bytes) -> str:
    (pki.dir / name).write_bytes(data)
    return pki.path(name)
