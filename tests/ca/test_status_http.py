"""CRLs, CA certificates, OCSP and timestamps over HTTP from a real ``eseal serve``.

Judged by independent tools: ``openssl ocsp`` against the live responder, ``openssl ts``,
``openssl verify -crl_check_all`` and pkilint on what was downloaded. Status changes are
made by the ``eseal`` CLI in another process, as an officer would, to show the server
answers from the database on every request rather than from what it saw at start.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asn1crypto import cms, tsp
from asn1crypto import core as asn1_core
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from eseal.ca import tsa_serials
from eseal.ca.authority import Authority
from eseal.ra.enterprises import register_enterprise
from eseal.settings import Settings, load_settings
from eseal.store import close_all, open_database
from eseal.token import configure
from eseal.token.softhsm import write_conf
from tests.conftest import NAME_A, USCC_A, LiveServer, free_port, make_csr

BIN = Path(sys.executable).parent
OCSP_REQUEST = {"Content-Type": "application/ocsp-request"}
TSA_QUERY = {"Content-Type": "application/timestamp-query"}


@dataclass
class Site:
    """The served home, the CA certificates as downloaded, and a scratch directory."""

    settings: Settings
    server: LiveServer
    dir: Path

    @property
    def url(self) -> str:
        return self.server.url

    def path(self, name: str) -> str:
        return str(self.dir / name)

    def write(self, name: str, data: bytes) -> str:
        (self.dir / name).write_bytes(data)
        return self.path(name)

    def issue_leaf(self, name: str = "leaf") -> x509.Certificate:
        """A login certificate for enterprise A, issued in this (test) process."""
        with Authority.open(self.settings) as auth:
            issued = auth.issue(make_csr(common_name="张三"), uscc=USCC_A, profile="login",
                                holder="张三", actor="officer:test")
        self.write(f"{name}.pem", issued.pem)
        return issued.certificate


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, LiveServer]]:
    """``served_home`` (tests/conftest.py) once for this module: starting a CA home and its
    server costs seconds, and every test here works on certificates of its own."""
    from eseal.ca.authority import init_home

    home = tmp_path_factory.mktemp("status") / "home"
    home.mkdir()
    port = free_port()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESEAL_HOME", str(home))
        mp.setenv("ESEAL_ENV", "test")
        mp.delenv("ESEAL_NOW", raising=False)
        mp.setenv("SOFTHSM2_CONF", str(write_conf(home / "softhsm2.conf", home / "tokens")))
        settings = load_settings(home, base_url=f"http://127.0.0.1:{port}")
        configure(settings.pkcs11_module, settings.softhsm_conf_path)
        init_home(settings)
        with Authority.open(settings) as auth:
            register_enterprise(auth, uscc=USCC_A, name=NAME_A, legal_rep="张三",
                                     actor="officer:test")
        server = LiveServer(home, port)
        try:
            yield load_settings(home), server
        finally:
            server.stop()
            close_all()


@pytest.fixture
def site(served: tuple[Settings, LiveServer], tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Site:
    settings, server = served
    monkeypatch.setenv("ESEAL_HOME", str(settings.home))
    monkeypatch.setenv("SOFTHSM2_CONF", str(settings.softhsm_conf_path))
    monkeypatch.delenv("ESEAL_NOW", raising=False)
    s = Site(settings, server, tmp_path / "work")
    s.dir.mkdir()
    for role in ("root", "issuing", "tsa"):
        got = httpx.get(f"{server.url}/ca/{role}.crt")
        assert got.status_code == 200 and got.headers["content-type"] == "application/pkix-cert"
        cert = x509.load_der_x509_certificate(got.content)
        s.write(f"{role}.pem", cert.public_bytes(serialization.Encoding.PEM))
    chain = httpx.get(f"{server.url}/ca/chain.pem")
    assert chain.headers["content-type"] == "application/pem-certificate-chain"
    s.write("chain.pem", chain.content)
    return s


def eseal_cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m eseal ...`` in its own process on the served home, as an officer runs it."""
    env = dict(os.environ, ESEAL_HOME=str(site.settings.home))
    env.pop("SOFTHSM2_CONF", None)
    done = subprocess.run([sys.executable, "-m", "eseal", *args], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


# --- OCSP helpers ----------------------------------------------------------------------------
def openssl_ocsp(site: Site, cert: str, *, nonce: bool) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["openssl", "ocsp", "-issuer", site.path("issuing.pem"), "-cert", site.path(cert),
         "-url", f"{site.url}/ocsp", "-CAfile", site.path("root.pem"),
         "-nonce" if nonce else "-no_nonce"],
        capture_output=True, text=True, timeout=60, check=False)


def assert_ocsp_verdict(site: Site, cert: str, verdict: str, reason: str | None = None) -> None:
    for nonce in (False, True):
        done = openssl_ocsp(site, cert, nonce=nonce)
        assert "Response verify OK" in done.stderr, done.stderr
        assert "WARNING" not in done.stdout + done.stderr
        assert f"{site.path(cert)}: {verdict}" in done.stdout, done.stdout
        if reason:
            assert f"Reason: {reason}" in done.stdout, done.stdout
        else:
            assert "Reason:" not in done.stdout


def ocsp_request(cert: x509.Certificate, issuer: x509.Certificate, *,
                 nonce: bytes | None = None) -> bytes:
    builder = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
    if nonce is not None:
        builder = builder.add_extension(x509.OCSPNonce(nonce), critical=False)
    return builder.build().public_bytes(serialization.Encoding.DER)


def response_status(der: bytes) -> str:
    return ocsp.load_der_ocsp_response(der).response_status.name


def lint_ocsp(site: Site, der: bytes) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / "lint_ocsp_response"), "lint", "-s", "WARNING",
                           site.write("lint.der", der)],
                          capture_output=True, text=True, check=False)


# --- TSA helpers -----------------------------------------------------------------------------
class _TimeStampResp(asn1_core.Sequence):
    """RFC 3161 as written (asn1crypto's own makes the token mandatory)."""

    _fields = [("status", tsp.PKIStatusInfo),  # noqa: RUF012 - asn1crypto's declaration style
               ("time_stamp_token", cms.ContentInfo, {"optional": True})]


def tsa_fail_info(der: bytes) -> set[str]:
    resp = _TimeStampResp.load(der, strict=True)
    assert resp["status"]["status"].native == "rejection"
    assert resp["time_stamp_token"].native is None
    return set(resp["status"]["fail_info"].native)


def tst_serial(der: bytes) -> int:
    resp = tsp.TimeStampResp.load(der)
    assert resp["status"]["status"].native == "granted"
    info = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    return int(info["serial_number"].native)


def post_tsa(url: str, body: bytes) -> httpx.Response:
    got = httpx.post(f"{url}/tsa", content=body, headers=TSA_QUERY, timeout=30)
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/timestamp-reply"
    assert got.headers["cache-control"] == "no-store"
    return got


def ts_request(data: bytes, algorithm: str = "sha256") -> bytes:
    return tsp.TimeStampReq({
        "version": "v1",
        "message_imprint": {"hash_algorithm": {"algorithm": algorithm},
                            "hashed_message": hashlib.new(algorithm, data).digest()},
        "cert_req": True}).dump()


# --- CA certificates ---------------------------------------------------------------------------
def test_ca_certificates_are_served_where_the_certificates_point(site: Site) -> None:
    leaf = site.issue_leaf()
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    ca_issuers = [d.access_location.value for d in aia
                  if d.access_method == x509.AuthorityInformationAccessOID.CA_ISSUERS]
    assert ca_issuers == [f"{site.url}/ca/issuing.crt"]
    got = httpx.get(ca_issuers[0])
    assert x509.load_der_x509_certificate(got.content).subject == leaf.issuer
    assert "max-age=" in got.headers["cache-control"]
    for role in ("ocsp", "tsa"):
        assert httpx.get(f"{site.url}/ca/{role}.crt").status_code == 200
    assert httpx.get(f"{site.url}/ca/audit.crt").status_code == 404


# --- timestamps ----------------------------------------------------------------------------
def test_openssl_verifies_a_timestamp_obtained_over_http(site: Site) -> None:
    site.write("data.bin", "年度报告 2026".encode() * 100)
    query = subprocess.run(["openssl", "ts", "-query", "-data", site.path("data.bin"),
                            "-sha256", "-cert", "-out", site.path("req.tsq")],
                           capture_output=True, text=True, check=False)
    assert query.returncode == 0, query.stderr
    got = post_tsa(site.url, (site.dir / "req.tsq").read_bytes())
    site.write("resp.tsr", got.content)
    done = subprocess.run(["openssl", "ts", "-verify", "-in", site.path("resp.tsr"),
                           "-queryfile", site.path("req.tsq"), "-CAfile", site.path("root.pem"),
                           "-untrusted", site.path("chain.pem")],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Verification: OK" in done.stdout


def test_tsa_refusals_are_rfc_3161_rejections_sent_with_http_200(site: Site) -> None:
    assert tsa_fail_info(post_tsa(site.url, ts_request(b"x", "sha1")).content) == {"bad_alg"}
    unknown_alg = ts_request(b"x").replace(  # SHA-256's OID turned into an unassigned one
        bytes.fromhex("0609608648016503040201"), bytes.fromhex("060960864801650304027f"))
    assert tsa_fail_info(post_tsa(site.url, unknown_alg).content) == {"bad_alg"}
    assert tsa_fail_info(post_tsa(site.url, b"\x00garbage").content) == {"bad_data_format"}
    assert tsa_fail_info(post_tsa(site.url, b"").content) == {"bad_data_format"}
    oversized = post_tsa(site.url, b"\x30" * 1_000_000)
    assert tsa_fail_info(oversized.content) == {"bad_data_format"}

    def chunks() -> Iterator[bytes]:  # no Content-Length: the stream itself is cut short
        for _ in range(64):
            yield b"\x30" * 1024

    streamed = httpx.post(f"{site.url}/tsa", content=chunks(), headers=TSA_QUERY, timeout=30)
    assert streamed.status_code == 200
    assert tsa_fail_info(streamed.content) == {"bad_data_format"}
    assert tst_serial(post_tsa(site.url, ts_request(b"still serving")).content) > 0


def test_tsa_serials_are_unique_across_two_server_processes(site: Site) -> None:
    second = LiveServer(site.settings.home, free_port())
    try:
        urls = [site.url, second.url] * 60
        with ThreadPoolExecutor(8) as pool:
            serials = list(pool.map(
                lambda iu: (iu[1], tst_serial(post_tsa(iu[1], ts_request(b"%d" % iu[0])).content)),
                enumerate(urls)))
    finally:
        second.stop()
    assert len(serials) == 120
    # the counter part alone (the low 32 bits are random) must already be unique
    counters = {serial >> 32 for _, serial in serials}
    assert len(counters) == 120
    # each process drew from its own reserved block
    first = {serial >> 32 for url, serial in serials if url == site.url}
    other = {serial >> 32 for url, serial in serials if url == second.url}
    assert max(first) < min(other) or max(other) < min(first)


def test_counter_blocks_never_overlap_and_start_at_one(site: Site) -> None:
    db = open_database(site.settings.database)
    a = tsa_serials.reserve(db, 10, name="test-counter")
    b = tsa_serials.reserve(db, 5, name="test-counter")
    c = tsa_serials.reserve(db, 1, name="test-counter")
    assert (a, b, c) == (1, 11, 16)
    blocks = tsa_serials.serial_blocks(db, block=3)
    drawn = [blocks.next_serial() >> 32 for _ in range(7)]
    assert len(set(drawn)) == 7 and drawn == sorted(drawn)


# --- OCSP ----------------------------------------------------------------------------------
def test_openssl_ocsp_sees_a_cli_revocation_at_once(site: Site) -> None:
    leaf = site.issue_leaf()
    assert_ocsp_verdict(site, "leaf.pem", "good")
    eseal_cli(site, "cert", "revoke", format(leaf.serial_number, "x"),
              "--reason", "keyCompromise")
    assert_ocsp_verdict(site, "leaf.pem", "revoked", "keyCompromise")


def test_openssl_ocsp_follows_freeze_and_unfreeze(site: Site) -> None:
    leaf = site.issue_leaf()
    serial = format(leaf.serial_number, "x")
    assert_ocsp_verdict(site, "leaf.pem", "good")
    eseal_cli(site, "cert", "freeze", serial)
    assert_ocsp_verdict(site, "leaf.pem", "revoked", "certificateHold")
    eseal_cli(site, "cert", "unfreeze", serial)
    assert_ocsp_verdict(site, "leaf.pem", "good")


def test_ocsp_refusals_are_ocsp_responses_sent_with_http_200(site: Site) -> None:
    root = x509.load_pem_x509_certificate((site.dir / "root.pem").read_bytes())
    issuing = x509.load_pem_x509_certificate((site.dir / "issuing.pem").read_bytes())

    def post(body: bytes | Iterator[bytes]) -> bytes:
        got = httpx.post(f"{site.url}/ocsp", content=body, headers=OCSP_REQUEST, timeout=30)
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/ocsp-response"
        assert got.headers["cache-control"] == "no-store"
        return got.content

    assert response_status(post(b"garbage")) == "MALFORMED_REQUEST"
    assert response_status(post(b"")) == "MALFORMED_REQUEST"
    # the issuing CA certificate is the root's to answer for, not this responder's
    assert response_status(post(ocsp_request(issuing, root))) == "UNAUTHORIZED"
    leaf = site.issue_leaf()
    good = ocsp_request(leaf, issuing)
    padded = good + b"\x00" * (17 * 1024)  # a valid request followed by too much
    assert response_status(post(padded)) == "MALFORMED_REQUEST"

    def chunks() -> Iterator[bytes]:
        yield good
        for _ in range(40):
            yield b"\x00" * 1024

    assert response_status(post(chunks())) == "MALFORMED_REQUEST"
    assert response_status(post(good)) == "SUCCESSFUL"


def test_ocsp_get_answers_base64url_and_escaped_base64_with_cache_headers(site: Site) -> None:
    leaf = site.issue_leaf()
    issuing = x509.load_pem_x509_certificate((site.dir / "issuing.pem").read_bytes())
    der = ocsp_request(leaf, issuing)
    url_safe = base64.urlsafe_b64encode(der).decode().rstrip("=")
    escaped = urllib.parse.quote(base64.b64encode(der).decode(), safe="")
    answers = []
    for encoded in (url_safe, escaped):
        got = httpx.get(f"{site.url}/ocsp/{encoded}")
        assert got.status_code == 200
        assert got.headers["content-type"] == "application/ocsp-response"
        parsed = ocsp.load_der_ocsp_response(got.content)
        assert parsed.response_status == ocsp.OCSPResponseStatus.SUCCESSFUL
        assert parsed.certificate_status == ocsp.OCSPCertStatus.GOOD
        assert parsed.serial_number == leaf.serial_number
        cache = got.headers["cache-control"]
        max_age = int(cache.split("max-age=")[1].split(",")[0])
        assert "public" in cache and 0 < max_age <= 3600
        assert parsed.next_update_utc is not None and parsed.this_update_utc is not None
        assert max_age <= (parsed.next_update_utc - parsed.this_update_utc).total_seconds()
        assert got.headers["etag"] and got.headers["last-modified"]
        answers.append(got.content)
    assert answers[0] == answers[1]  # the second came from the responder's cache
    assert lint_ocsp(site, answers[0]).returncode == 0
    for bad in ("", "not*base64", "A" * 40_000):
        got = httpx.get(f"{site.url}/ocsp/{bad}")
        assert got.status_code == 200
        assert response_status(got.content) == "MALFORMED_REQUEST"
        assert got.headers["cache-control"] == "no-store"


def test_ocsp_answers_over_http_pass_pkilint_at_warning(site: Site) -> None:
    leaf = site.issue_leaf()
    issuing = x509.load_pem_x509_certificate((site.dir / "issuing.pem").read_bytes())
    with_nonce = ocsp_request(leaf, issuing, nonce=os.urandom(16))
    eseal_cli(site, "cert", "revoke", format(leaf.serial_number, "x"),
              "--reason", "affiliationChanged")
    for body in (ocsp_request(leaf, issuing), with_nonce):
        got = httpx.post(f"{site.url}/ocsp", content=body, headers=OCSP_REQUEST)
        parsed = ocsp.load_der_ocsp_response(got.content)
        assert parsed.certificate_status == ocsp.OCSPCertStatus.REVOKED
        done = lint_ocsp(site, got.content)
        assert done.returncode == 0, done.stdout + done.stderr


# --- CRLs ----------------------------------------------------------------------------------
def test_crls_over_http_pass_pkilint_and_openssl_rejects_a_revoked_certificate(
        site: Site) -> None:
    leaf = site.issue_leaf()
    survivor = site.issue_leaf("survivor")
    eseal_cli(site, "cert", "revoke", format(leaf.serial_number, "x"),
              "--reason", "keyCompromise")
    dp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [p.full_name[0].value for p in dp] == [f"{site.url}/crl/issuing.crl"]
    for role in ("issuing", "root"):
        got = httpx.get(f"{site.url}/crl/{role}.crl")
        assert got.status_code == 200 and got.headers["content-type"] == "application/pkix-crl"
        crl = x509.load_der_x509_crl(got.content)
        assert crl.next_update_utc is not None
        max_age = int(got.headers["cache-control"].split("max-age=")[1].split(",")[0])
        assert 0 < max_age <= (crl.next_update_utc - crl.last_update_utc).total_seconds()
        again = httpx.get(f"{site.url}/crl/{role}.crl",
                          headers={"If-None-Match": got.headers["etag"]})
        assert again.status_code == 304
        site.write(f"{role}.crl", got.content)
        lint = subprocess.run([str(BIN / "lint_crl"), "lint", "-t", "CRL", "-p", "PKIX",
                               site.path(f"{role}.crl")],
                              capture_output=True, text=True, check=False)
        assert lint.returncode == 0, lint.stdout + lint.stderr
    issuing_crl = x509.load_der_x509_crl((site.dir / "issuing.crl").read_bytes())
    assert issuing_crl.get_revoked_certificate_by_serial_number(leaf.serial_number)

    def verify(cert: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["openssl", "verify", "-crl_check_all", "-CAfile", site.path("root.pem"),
             "-untrusted", site.path("issuing.pem"), "-CRLfile", site.path("root.crl"),
             "-CRLfile", site.path("issuing.crl"), site.path(cert)],
            capture_output=True, text=True, check=False)

    for name in ("root.crl", "issuing.crl"):  # openssl reads -CRLfile as PEM by default
        der = (site.dir / name).read_bytes()
        site.write(name, x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM))
    revoked = verify("leaf.pem")
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr
    assert verify("survivor.pem").returncode == 0, verify("survivor.pem").stderr
    assert survivor.serial_number != leaf.serial_number

