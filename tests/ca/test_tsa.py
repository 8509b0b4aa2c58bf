"""The RFC 3161 / RFC 5816 timestamp authority, judged by openssl ts, asn1crypto and pyHanko."""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import pytest
from asn1crypto import cms, core, tsp
from asn1crypto import x509 as asn1_x509
from certkit import hierarchy, issue, pem, token_key
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pyhanko.sign.timestamps.api import TimeStamper
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko_certvalidator import ValidationContext
from threadkit import in_threads

from eseal import clock
from eseal.ca.tsa import SerialBlocks, answer, tsa_serial
from eseal.errors import InvalidInput
from eseal.pki.der import der_tlv
from eseal.pki.oids import TSA_POLICY
from eseal.pki.tsa_request import TsaProtocolError, parse_request
from eseal.settings import Settings

NOW = clock.now().replace(microsecond=0)  # openssl and pyHanko validate against their clocks
DATA = "年度报告 2026".encode()


# --- a test hierarchy: root (P-384) -> issuing (P-256) -> TSA ------------------------------
@dataclass
class Pki:
    dir: Path
    root: x509.Certificate
    issuing: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    tsa: x509.Certificate
    tsa_key: ec.EllipticCurvePrivateKey
    serial: int = 0

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def write(self, name: str, data: bytes) -> str:
        (self.dir / name).write_bytes(data)
        return self.path(name)

    def answer(self, request: bytes, **kwargs: Any) -> bytes:
        self.serial += 1
        args: dict[str, Any] = dict(tsa_cert=self.tsa, tsa_key=self.tsa_key,
                                    chain=[self.issuing], serial=tsa_serial(self.serial),
                                    now=NOW)
        args.update(kwargs)
        return answer(request, **args)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root, _, issuing, issuing_key = hierarchy(NOW)
    tsa_key = ec.generate_private_key(ec.SECP256R1())
    tsa = issue("Test TSA", tsa_key.public_key(), issuing, issuing_key, kind="tsa", now=NOW)
    p = Pki(tmp_path_factory.mktemp("tsa"), root, issuing, issuing_key, tsa, tsa_key)
    p.write("root.pem", pem(root))
    p.write("issuing.pem", pem(issuing))
    p.write("chain.pem", pem(issuing, tsa))
    p.write("data.bin", DATA)
    return p


def _openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", "ts", *args], capture_output=True, text=True,
                          check=False)


def _query(pki: Pki, *options: str, name: str = "req.tsq") -> bytes:
    done = _openssl("-query", "-data", pki.path("data.bin"), *options, "-out", pki.path(name))
    assert done.returncode == 0, done.stderr
    return (pki.dir / name).read_bytes()


def _verify(pki: Pki, response: bytes, query: str = "req.tsq",
            untrusted: str = "issuing.pem") -> subprocess.CompletedProcess[str]:
    return _openssl("-verify", "-in", pki.write("resp.tsr", response),
                    "-queryfile", pki.path(query), "-CAfile", pki.path("root.pem"),
                    "-untrusted", pki.path(untrusted))


def _token(response: bytes) -> cms.SignedData:
    resp = tsp.TimeStampResp.load(response)
    assert resp["status"]["status"].native == "granted"
    return resp["time_stamp_token"]["content"]


class _TimeStampResp(core.Sequence):
    """RFC 3161 as written: asn1crypto's own TimeStampResp wrongly makes the token mandatory."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [
        ("status", tsp.PKIStatusInfo),
        ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def _fail_info(response: bytes) -> set[str]:
    resp = _TimeStampResp.load(response, strict=True)
    assert resp["time_stamp_token"].native is None
    assert resp["status"]["status"].native == "rejection"
    return set(resp["status"]["fail_info"].native)


def _request(algorithm: str, digest: bytes, **fields: Any) -> bytes:
    return tsp.TimeStampReq({
        "version": fields.pop("version", "v1"),
        "message_imprint": {"hash_algorithm": {"algorithm": algorithm},
                            "hashed_message": digest},
        **fields,
    }).dump()


# --- tests ---------------------------------------------------------------------------------
def test_openssl_verifies_a_timestamp_with_nonce_and_certificate(pki: Pki) -> None:
    response = pki.answer(_query(pki, "-sha256", "-cert"))
    done = _verify(pki, response)
    assert done.returncode == 0 and "Verification: OK" in done.stdout, done.stderr
    text = _openssl("-reply", "-in", pki.path("resp.tsr"), "-text").stdout
    assert f"Policy OID: {TSA_POLICY.dotted_string}" in text
    assert "Accuracy: 0x01 seconds" in text
    assert "TSA: DirName:/O=eseal test/CN=Test TSA" in text
    request_nonce = tsp.TimeStampReq.load((pki.dir / "req.tsq").read_bytes())["nonce"].native
    tst = _token(response)["encap_content_info"]["content"].parsed
    assert tst["nonce"].native == request_nonce
    assert f"Nonce: 0x{request_nonce:016X}" in text
    assert tst["gen_time"].native == NOW
    assert tst["serial_number"].native >> 32 == pki.serial


def test_certificate_is_included_only_when_requested(pki: Pki) -> None:
    with_cert = _token(pki.answer(_query(pki, "-sha256", "-cert")))
    assert [c.chosen.dump() for c in with_cert["certificates"]] == sorted(
        c.public_bytes(serialization.Encoding.DER) for c in (pki.tsa, pki.issuing))
    response = pki.answer(_query(pki, "-sha512", "-no_nonce", name="bare.tsq"))
    assert _token(response)["certificates"].native is None
    assert "Verification: OK" not in _verify(pki, response, "bare.tsq").stdout
    done = _verify(pki, response, "bare.tsq", untrusted="chain.pem")
    assert "Verification: OK" in done.stdout, done.stderr


@pytest.mark.parametrize("digest", ["-sha384", "-sha512"])
def test_sha384_and_sha512_imprints_verify_against_the_data(pki: Pki, digest: str) -> None:
    response = pki.answer(_query(pki, digest, "-cert", name="d.tsq"))
    done = _openssl("-verify", "-in", pki.write("d.tsr", response),
                    "-data", pki.path("data.bin"), "-CAfile", pki.path("root.pem"),
                    "-untrusted", pki.path("issuing.pem"))
    assert "Verification: OK" in done.stdout, done.stderr


@pytest.mark.parametrize("digest", ["-md5", "-sha1"])
def test_md5_and_sha1_requests_are_refused_with_bad_alg(pki: Pki, digest: str) -> None:
    response = pki.answer(_query(pki, digest, name="weak.tsq"))
    done = _verify(pki, response, "weak.tsq")
    assert "failure codes: badAlg" in done.stderr
    assert _fail_info(response) == {"bad_alg"}


def test_protocol_problems_get_their_rfc_3161_failure_info(pki: Pki) -> None:
    sha256 = hashlib.sha256(DATA).digest()
    cases = {
        b"garbage": "bad_data_format",
        b"": "bad_data_format",
        _request("sha256", sha256)[:-1]: "bad_data_format",
        _request("sha256", sha256) + b"\x00": "bad_data_format",
        _request("sha256", sha256[:20]): "bad_data_format",
        _request("sha512", sha256): "bad_data_format",
        _request("1.2.3.4", sha256): "bad_alg",
        _request("sha3_256", sha256): "bad_alg",
        _request("sha256", sha256, version=2): "bad_request",
        _request("sha256", sha256, nonce=1 << 600): "bad_data_format",
        _request("sha256", sha256, req_policy="1.2.3.4"): "unaccepted_policy",
        _request("sha256", sha256, extensions=[{"extn_id": "1.2.3.4",
                                                "extn_value": b"\x05\x00"}]):
            "unaccepted_extensions",
    }
    for request, failure in cases.items():
        assert _fail_info(pki.answer(request)) == {failure}, (request, failure)
    with pytest.raises(TsaProtocolError) as exc:
        parse_request(_request("md5", hashlib.md5(DATA).digest()))
    assert exc.value.code == "TSA_BAD_ALG" and exc.value.fail_info == "badAlg"
    # a request naming our own policy is served under it
    ours = pki.answer(_request("sha256", sha256, req_policy=TSA_POLICY.dotted_string))
    tst = _token(ours)["encap_content_info"]["content"].parsed
    assert tst["policy"].dotted == TSA_POLICY.dotted_string
    done = _openssl("-query", "-data", pki.path("data.bin"), "-tspolicy", "1.2.3.4",
                    "-out", pki.path("pol.tsq"))
    assert done.returncode == 0
    assert "failure codes: unacceptedPolicy" in _verify(
        pki, pki.answer((pki.dir / "pol.tsq").read_bytes()), "pol.tsq").stderr


@pytest.mark.parametrize("algorithm", ["sha256", "sha384", "sha512"])
@pytest.mark.parametrize(("nonce", "policy", "cert_req"), [
    (None, None, False), (1, None, True), (-(1 << 70), TSA_POLICY.dotted_string, False),
    ((1 << 511) + 5, "1.2.3.4", True)])
def test_request_walk_reads_what_asn1crypto_reads(algorithm: str, nonce: int | None,
                                                 policy: str | None, cert_req: bool) -> None:
    fields: dict[str, Any] = {"cert_req": cert_req}
    if nonce is not None:
        fields["nonce"] = nonce
    if policy is not None:
        fields["req_policy"] = policy
    der = _request(algorithm, hashlib.new(algorithm, DATA).digest(), **fields)
    theirs = tsp.TimeStampReq.load(der)
    ours = parse_request(der)
    assert ours.hash_algorithm == theirs["message_imprint"]["hash_algorithm"]["algorithm"].native
    assert ours.digest == theirs["message_imprint"]["hashed_message"].native
    assert ours.message_imprint == theirs["message_imprint"].dump()
    assert (ours.nonce, ours.policy, ours.cert_req) == (nonce, policy, cert_req)


def test_request_walk_takes_absent_hash_parameters_and_refuses_disorder(pki: Pki) -> None:
    digest = hashlib.sha256(DATA).digest()
    sha256 = bytes.fromhex("0609608648016503040201")
    imprint = der_tlv(0x30, der_tlv(0x30, sha256) + der_tlv(0x04, digest))
    bare = der_tlv(0x30, b"\x02\x01\x01" + imprint)
    assert parse_request(bare).message_imprint == imprint
    tst = _token(pki.answer(bare))["encap_content_info"]["content"].parsed
    assert tst["message_imprint"].dump() == imprint  # echoed byte for byte, no NULL added
    nonce_then_policy = der_tlv(0x30, b"\x02\x01\x01" + imprint + b"\x02\x01\x07"
                                + core.ObjectIdentifier(TSA_POLICY.dotted_string).dump())
    long_form = b"\x30\x81" + bare[1:]  # a length that is not minimal is not DER
    odd_params = der_tlv(0x30, b"\x02\x01\x01" + der_tlv(0x30, der_tlv(
        0x30, sha256 + b"\x04\x00") + der_tlv(0x04, digest)))
    assert _fail_info(pki.answer(nonce_then_policy)) == {"bad_data_format"}
    assert _fail_info(pki.answer(long_form)) == {"bad_data_format"}
    assert _fail_info(pki.answer(odd_params)) == {"bad_alg"}


def test_signed_attributes_follow_rfc_5816_and_the_signature_verifies(pki: Pki) -> None:
    signed_data = _token(pki.answer(_query(pki, "-sha256", "-cert")))
    assert signed_data["version"].native == "v3"
    # SHA-256 with absent parameters (RFC 5754), not the NULL asn1crypto itself would write
    assert signed_data["digest_algorithms"].dump() == bytes.fromhex(
        "310d300b0609608648016503040201")
    econtent = signed_data["encap_content_info"]
    assert econtent["content_type"].native == "tst_info"
    tst_der = econtent["content"].parsed.dump()
    signer = signed_data["signer_infos"][0]
    attrs = {a["type"].native: a["values"][0] for a in signer["signed_attrs"]}
    assert set(attrs) == {"content_type", "message_digest", "signing_time",
                          "signing_certificate_v2"}
    assert attrs["content_type"].native == "tst_info"
    assert attrs["message_digest"].native == hashlib.sha256(tst_der).digest()
    assert attrs["signing_time"].native == NOW
    ess = attrs["signing_certificate_v2"]["certs"][0]
    tsa_der = pki.tsa.public_bytes(serialization.Encoding.DER)
    assert ess["cert_hash"].native == hashlib.sha256(tsa_der).digest()
    assert b"\x60\x86\x48\x01\x65\x03\x04\x02\x01" not in ess.dump()  # DEFAULT SHA-256 omitted
    assert ess["issuer_serial"]["serial_number"].native == pki.tsa.serial_number
    assert signer["sid"].chosen["serial_number"].native == pki.tsa.serial_number
    # the signature covers the DER of the attributes as a SET OF (tag 0x31)
    signed = cms.CMSAttributes.load(signer["signed_attrs"].untag().dump()).dump()
    assert signed[0] == 0x31
    pki.tsa.public_key().verify(signer["signature"].native, signed,  # type: ignore[union-attr,call-arg]
                                ec.ECDSA(hashes.SHA256()))  # type: ignore[arg-type]
    assert signer["signed_attrs"].untag().dump(force=True) == signer["signed_attrs"].untag().dump()


def test_pyhanko_obtains_and_validates_a_timestamp(pki: Pki) -> None:
    class LocalTsa(TimeStamper):
        async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
            return tsp.TimeStampResp.load(pki.answer(req.dump()))

    digest = hashlib.sha256(DATA).digest()
    token = asyncio.run(LocalTsa().async_timestamp(digest, "sha256"))  # checks nonce, status

    def a(cert: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    context = ValidationContext(trust_roots=[a(pki.root)], other_certs=[a(pki.issuing)],
                                allow_fetching=False, revocation_mode="soft-fail")
    status = asyncio.run(validate_tst_signed_data(token["content"], context,
                                                  lambda algorithm: digest))
    assert status["intact"] and status["valid"]
    assert status["timestamp"] == NOW
    assert status["signing_cert"].dump() == a(pki.tsa).dump()
    assert status["trust_problem_indic"] is None
    tampered = asyncio.run(validate_tst_signed_data(
        token["content"], context, lambda algorithm: hashlib.sha256(b"other").digest()))
    assert not tampered["intact"]


def test_token_key_signs_timestamps_openssl_accepts(pki: Pki, settings: Settings) -> None:
    with token_key(settings, "tsa", "1357-2468") as key:
        cert = issue("Token TSA", key.public_key(), pki.issuing, pki.issuing_key, kind="tsa",
                     now=NOW)
        response = pki.answer(_query(pki, "-sha256", "-cert", name="tok.tsq"), tsa_cert=cert,
                              tsa_key=key)
    done = _verify(pki, response, "tok.tsq")
    assert "Verification: OK" in done.stdout, done.stderr


def test_signing_failure_is_a_system_failure_rejection(pki: Pki,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    class UnpluggedKey(ec.EllipticCurvePrivateKey):
        curve = ec.SECP256R1()
        key_size = 256

        def public_key(self) -> ec.EllipticCurvePublicKey:
            return pki.tsa_key.public_key()

        def sign(self, data: bytes, signature_algorithm: Any) -> NoReturn:
            raise RuntimeError("token removed")

        def exchange(self, *args: Any) -> NoReturn:
            raise NotImplementedError

        def private_numbers(self) -> NoReturn:
            raise NotImplementedError

        def private_bytes(self, *args: Any) -> NoReturn:
            raise NotImplementedError

        def __copy__(self) -> UnpluggedKey:
            return self

        def __deepcopy__(self, memo: dict[int, Any]) -> UnpluggedKey:
            return self

    response = pki.answer(_query(pki, "-sha256"), tsa_key=UnpluggedKey())
    assert _fail_info(response) == {"system_failure"}
    assert "TSA failed to sign" in caplog.text


def test_caller_mistakes_raise_instead_of_answering(pki: Pki) -> None:
    request = _query(pki, "-sha256")
    with pytest.raises(InvalidInput) as exc:
        pki.answer(request, serial=0)
    assert exc.value.code == "TSA_SERIAL_RANGE"
    with pytest.raises(InvalidInput) as exc:
        pki.answer(request, accuracy_seconds=0)
    assert exc.value.field == "accuracy_seconds"


def test_serials_carry_the_counter_and_blocks_never_repeat_across_allocators() -> None:
    assert tsa_serial(7, b"\x00\x00\x00\x2a") == 7 << 32 | 42
    assert tsa_serial(7) >> 32 == 7
    with pytest.raises(InvalidInput):
        tsa_serial(0)
    with pytest.raises(InvalidInput):
        tsa_serial(1, b"\x01")

    counter = {"value": 0, "calls": 0}
    db_lock = threading.Lock()

    def reserve(n: int) -> int:  # what UPDATE ... RETURNING does in one transaction
        with db_lock:
            first = counter["value"] + 1
            counter["value"] += n
            counter["calls"] += 1
            return first

    processes = [SerialBlocks(reserve, block=64), SerialBlocks(reserve, block=64)]
    issued: list[int] = []
    issued_lock = threading.Lock()

    def work(i: int) -> None:
        mine = [processes[i % 2].next_serial() for _ in range(500)]
        with issued_lock:
            issued.extend(mine)

    assert not in_threads(work, 4)
    counters = [s >> 32 for s in issued]
    assert len(set(counters)) == len(issued) == 2000
    assert counter["calls"] <= 2000 // 64 + 2
