"""The CA token over ``p11-kit server``: replicas sign through ``p11-kit-client.so``.

One ``p11-kit server`` serves the CA home's SoftHSM token on a temporary unix socket; two
replica homes made with ``eseal init --join`` (one shared SQLite file stands in for
PostgreSQL) serve HTTP and run CLI commands through the client module, concurrently. Then
the token's server side fails: its forked ``p11-kit-remote`` children are killed (the
service re-initialises and logs in again), and the whole server is stopped (a coded
``TOKEN_UNAVAILABLE``, OCSP ``tryLater``, never a 500) and started again (the same processes
recover, nobody restarts eseal).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from asn1crypto import core as asn1_core
from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp

from deploy.cluster import CLIENT_MODULE, TokenServer
from eseal.ca.authority import Authority
from eseal.ca.home import init_home
from eseal.ra.enterprises import register_enterprise
from eseal.settings import load_settings
from tests.conftest import NAME_A, USCC_A, LiveServer, free_port, make_csr, sqlite_only

pytestmark = sqlite_only("the replica homes share one SQLite file by URL (the PostgreSQL "
                         "shape is make cluster / deploy.load)")


def need_p11_kit() -> None:
    """The token server needs Debian's p11-kit and p11-kit-modules (``make test`` installs
    both); missing either fails loudly instead of skipping."""
    if shutil.which("p11-kit") is None or not os.path.exists(CLIENT_MODULE):
        pytest.fail("p11-kit is not installed: `apt-get install p11-kit p11-kit-modules` "
                    "(make test does)")


@dataclass
class Site:
    base: Path
    ca_home: Path
    token: TokenServer
    replicas: list[Path]
    servers: list[LiveServer]
    issuing: x509.Certificate
    leaf: x509.Certificate


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ESEAL_") and k not in ("SOFTHSM2_CONF",)}
    env.update(extra, ESEAL_ENV="test")
    return env


def _eseal(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "eseal", *args, "--home", str(home)],
                          env=_env(), text=True, capture_output=True,
                          stdin=subprocess.DEVNULL, timeout=120)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    need_p11_kit()
    base = tmp_path_factory.mktemp("remote")
    ca_home = base / "ca"
    url = f"sqlite:///{base / 'shared.db'}"
    journal = str(base / "checkpoints.jsonl")
    port = free_port()
    settings = load_settings(ca_home, database_url=url, audit_journal=journal,
                             base_url=f"http://127.0.0.1:{port}")
    os.environ.pop("SOFTHSM2_CONF", None)
    init_home(settings)
    with Authority.open(load_settings(ca_home)) as auth:
        register_enterprise(auth, uscc=USCC_A, name=NAME_A, legal_rep="张三", actor="test")
        leaf = auth.issue(make_csr(common_name="张三"), uscc=USCC_A, profile="login",
                          holder="张三", actor="test").certificate
        issuing = auth.certificate("issuing")
    token = TokenServer(ca_home / "softhsm2.conf", base / "ca.sock").start()
    replicas = [base / "r1", base / "r2"]
    for replica in replicas:
        done = subprocess.run(
            [sys.executable, "-m", "eseal", "init", "--join", "--home", str(replica),
             "--ca-pin-file", str(ca_home / "secrets" / "ca.pin")],
            env=_env(ESEAL_DATABASE_URL=url, ESEAL_PKCS11_MODULE=CLIENT_MODULE,
                     ESEAL_P11_KIT_SERVER_ADDRESS=token.address, ESEAL_AUDIT_JOURNAL=journal),
            text=True, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
        assert done.returncode == 0, done.stderr
    servers = [LiveServer(r, p, env={"ESEAL_ENV": "test"})
               for r, p in zip(replicas, (port, free_port()), strict=True)]
    yield Site(base, ca_home, token, replicas, servers, issuing, leaf)
    for server in servers:
        server.stop()
    token.stop()


def _ocsp(site: Site, url: str, nonce: bytes) -> str:
    req = (ocsp.OCSPRequestBuilder().add_certificate(site.leaf, site.issuing, hashes.SHA1())
           .add_extension(x509.OCSPNonce(nonce), critical=False).build()
           .public_bytes(serialization.Encoding.DER))
    got = httpx.post(f"{url}/ocsp", content=req, timeout=60,
                     headers={"Content-Type": "application/ocsp-request"})
    assert got.status_code == 200
    resp = ocsp.load_der_ocsp_response(got.content)
    if resp.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return resp.response_status.name
    nonce_ext = resp.extensions.get_extension_for_class(x509.OCSPNonce).value
    assert nonce_ext.nonce == nonce
    assert resp.certificate_status == ocsp.OCSPCertStatus.GOOD
    return "successful"


def _tsa(url: str, data: bytes) -> tuple[str, int | None]:
    req = tsp.TimeStampReq({
        "version": "v1", "cert_req": True,
        "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                            "hashed_message": hashlib.sha256(data).digest()}}).dump()
    got = httpx.post(f"{url}/tsa", content=req, timeout=60,
                     headers={"Content-Type": "application/timestamp-query"})
    assert got.status_code == 200
    outer = asn1_core.Sequence.load(got.content)  # a rejection carries no token
    status = tsp.PKIStatusInfo.load(outer[0].dump())["status"].native
    if status != "granted":
        return status, None
    resp = tsp.TimeStampResp.load(got.content)
    info = resp["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
    return status, int(info["serial_number"].native)


def _issue(site: Site, replica: Path, name: str) -> subprocess.CompletedProcess[str]:
    csr = site.base / f"{name}.csr"
    csr.write_bytes(make_csr(common_name=name))
    return _eseal("cert", "issue", "--csr", str(csr), "--enterprise", USCC_A,
                  "--profile", "login", "--holder", name, home=replica)


def test_two_replicas_sign_crls_ocsp_timestamps_and_certificates_through_p11_kit(
        site: Site) -> None:
    urls = [s.url for s in site.servers]
    with ThreadPoolExecutor(12) as pool:
        ocsps = [pool.submit(_ocsp, site, urls[i % 2], os.urandom(16)) for i in range(60)]
        tsas = [pool.submit(_tsa, urls[i % 2], b"%d" % i) for i in range(60)]
        issues = [pool.submit(_issue, site, site.replicas[i % 2], f"员工{i}") for i in range(4)]
        crls = [pool.submit(_eseal, "crl", "--out", str(site.base / f"crl{i}.der"),
                            home=site.replicas[i]) for i in range(2)]
        assert [f.result() for f in ocsps] == ["successful"] * 60
        granted = [f.result() for f in tsas]
        for done in [f.result() for f in issues + crls]:
            assert done.returncode == 0, done.stderr
    assert {status for status, _ in granted} == {"granted"}
    serials = [serial for _, serial in granted]
    assert len(set(serials)) == len(serials)
    for i in range(2):
        crl = x509.load_der_x509_crl((site.base / f"crl{i}.der").read_bytes())
        assert crl.is_signature_valid(site.issuing.public_key())
    audit = _eseal("audit", "verify", home=site.replicas[0])
    assert audit.returncode == 0, audit.stdout + audit.stderr


def test_killed_p11_kit_remote_children_are_replaced_without_a_failed_request(
        site: Site) -> None:
    urls = [s.url for s in site.servers]
    for url in urls:  # every replica has its connection (one p11-kit-remote each)
        assert _tsa(url, b"warm")[0] == "granted"
    assert len(site.token.kill_children()) >= 2
    # the next call on each replica meets DeviceError, re-initialises, logs in, succeeds
    for url in urls:
        assert _ocsp(site, url, os.urandom(16)) == "successful"
        assert _tsa(url, b"after")[0] == "granted"
    assert _issue(site, site.replicas[1], "重连").returncode == 0


def test_a_stopped_token_server_is_a_coded_503_then_the_same_processes_recover(
        site: Site) -> None:
    url = site.servers[0].url
    site.token.stop()
    try:
        assert _ocsp(site, url, os.urandom(16)) == "TRY_LATER"
        assert _tsa(url, b"down")[0] == "rejection"
        refused = _issue(site, site.replicas[1], "停机")
        assert refused.returncode == 1
        assert refused.stderr.startswith("error TOKEN_UNAVAILABLE"), refused.stderr
        assert "Traceback" not in refused.stderr
        assert all(s.process.poll() is None for s in site.servers)
    finally:
        site.token.start()
    for server in site.servers:  # no restart of eseal
        assert _ocsp(site, server.url, os.urandom(16)) == "successful"
        assert _tsa(server.url, b"back")[0] == "granted"
    assert _issue(site, site.replicas[0], "恢复").returncode == 0
