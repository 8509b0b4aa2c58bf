"""The backdating attack against the real service: ``POST /verify`` knows, ``eseal verify``
offline does not pretend to.

A real CA home, real USB-Keys (SoftHSM), a live ``eseal serve``. The attacker seals with the
legal representative's USB-Key at level B-B (no timestamp; the token's holder controls the
claimed time), and embeds the CA's own CRLs or an OCSP response fetched *before* the officer
revokes (key compromise) or freezes the certificate. Then:

* ``POST /verify`` answers INVALID — the service consults its database (live status), the
  seal has no proof it was made before the revocation;
* ``eseal verify --trust root.pem`` offline, once the embedded data is past its nextUpdate
  (24 h here), exits 2 (REVOCATION_STALE): it cannot know, and does not say valid.

The honest seal (B-LT, timestamped by the CA's /tsa before the revocation) stays valid in
both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from hankokit import add_dss
from pdfkit import make_pdf
from sitekit import Holder, ca_home, seal_with_token

from eseal.ca.authority import Authority
from eseal.ra import revocation
from tests.conftest import NAME_A, NAME_B, USCC_A, USCC_B, LiveServer

PINS = {"zhang": "4913-7720", "li": "8802-1536"}
ACTOR = "officer:test"


@dataclass(frozen=True)
class Sealed:
    attack_crl: bytes    # B-B + the CA's CRLs from before the status change
    attack_ocsp: bytes   # B-B + an OCSP response from before, and the root's CRL
    honest: bytes        # B-LT, timestamped by the CA before the status change
    changed_at: datetime


@dataclass
class Site:
    home: Path
    server: LiveServer
    root_pem: Path
    work: Path
    sealed: dict[str, Sealed]  # "revoked" (zhang, keyCompromise) / "on_hold" (li, frozen)


def _seal_cert(auth: Authority, uscc: str) -> x509.Certificate:
    rows = [row for row, _u in auth.list_certificates(uscc=uscc) if row.profile == "seal"]
    return x509.load_der_x509_certificate(rows[-1].der)


def _ocsp(url: str, cert: x509.Certificate, issuer: x509.Certificate) -> bytes:
    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1()).build()
    answer = httpx.post(f"{url}/ocsp", content=request.public_bytes(serialization.Encoding.DER),
                        headers={"Content-Type": "application/ocsp-request"}, timeout=30)
    answer.raise_for_status()
    return answer.content


def _crls(url: str) -> list[x509.CertificateRevocationList]:
    return [x509.load_der_x509_crl(httpx.get(f"{url}/crl/{name}.crl", timeout=30).content)
            for name in ("issuing", "root")]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("backdating")
    with ca_home(tmp / "home", enterprises=[(USCC_A, NAME_A, "张三"), (USCC_B, NAME_B, "李四")],
                 holders=[Holder("zhang", PINS["zhang"], USCC_A, "legal_rep", "张三"),
                          Holder("li", PINS["li"], USCC_B, "legal_rep", "李四")]) as ca:
        server = LiveServer(ca.home, ca.port)
        try:
            draft = make_pdf(pages=1).data
            sealed: dict[str, Sealed] = {}
            with Authority.open(ca.settings) as auth:
                issuing = auth.certificate("issuing")
                made: dict[str, tuple[str, bytes, bytes, bytes]] = {}
                for state, label, uscc in (("revoked", "zhang", USCC_A),
                                           ("on_hold", "li", USCC_B)):
                    cert = _seal_cert(auth, uscc)
                    bb = seal_with_token(draft, label, PINS[label], server=server.url,
                                         level="B-B")
                    crls = _crls(server.url)
                    attack_crl = add_dss(bb, crls=crls, certs=[issuing])
                    attack_ocsp = add_dss(bb, crls=crls[1:], certs=[issuing],
                                          ocsps=[_ocsp(server.url, cert, issuing)])
                    honest = seal_with_token(draft, label, PINS[label], server=server.url)
                    made[state] = (format(cert.serial_number, "x"), attack_crl, attack_ocsp,
                                   honest)
                # the CA records status times in whole seconds: let the next second begin,
                # so the seals' claimed times are strictly before the officer acts
                time.sleep(1.1)
                for state, (serial, attack_crl, attack_ocsp, honest) in made.items():
                    if state == "revoked":
                        revocation.revoke(auth, serial, reason="keyCompromise", actor=ACTOR)
                    else:
                        revocation.freeze(auth, serial, actor=ACTOR)
                    changed_at = auth.certificate_row(serial).revoked_at
                    assert changed_at is not None
                    sealed[state] = Sealed(attack_crl, attack_ocsp, honest, changed_at)
            root_pem = tmp / "root.pem"
            root_pem.write_bytes(ca.root.public_bytes(serialization.Encoding.PEM))
            yield Site(ca.home, server, root_pem, tmp, sealed)
        finally:
            server.stop()


def _post_verify(site: Site, data: bytes) -> dict[str, object]:
    answer = httpx.post(f"{site.server.url}/verify", content=data,
                        headers={"Content-Type": "application/pdf"}, timeout=120)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def _codes(report: dict[str, object]) -> set[str]:
    found = {p["code"] for p in report["problems"]}  # type: ignore[index, union-attr]
    for sig in report["signatures"]:  # type: ignore[union-attr]
        found |= {p["code"] for p in sig["problems"]}  # type: ignore[index]
    return found


STATES = [pytest.param("revoked", "LIVE_REVOKED_NO_POE", id="revoked-keyCompromise"),
          pytest.param("on_hold", "LIVE_ON_HOLD_NO_POE", id="frozen")]


@pytest.mark.parametrize("evidence", ["crl", "ocsp"])
@pytest.mark.parametrize(("state", "code"), STATES)
def test_post_verify_says_invalid_for_a_backdated_seal_by_a_revoked_or_frozen_key(
        site: Site, state: str, code: str, evidence: str) -> None:
    sealed = site.sealed[state]
    report = _post_verify(site, sealed.attack_crl if evidence == "crl" else sealed.attack_ocsp)
    assert report["verdict"] == "invalid" and report["exit_code"] == 1, _codes(report)
    assert code in _codes(report)
    seal = report["signatures"][0]  # type: ignore[index]
    assert seal["signing_time_source"] == "claimed"
    assert seal["revocation_at_signing"]["status"] == state
    assert seal["revocation_at_signing"]["source"] == "live"


@pytest.mark.parametrize(("state", "code"), STATES)
def test_post_verify_keeps_a_timestamped_seal_made_before_the_change_valid(
        site: Site, state: str, code: str) -> None:
    report = _post_verify(site, site.sealed[state].honest)
    assert report["verdict"] == "valid", _codes(report)
    seal = report["signatures"][0]  # type: ignore[index]
    assert seal["pades_level"] == "B-LT"
    assert (seal["revocation_now"]["status"], seal["revocation_now"]["source"]) == \
        (state, "live")


def _offline_verify(site: Site, data: bytes, name: str, at: datetime
                    ) -> subprocess.CompletedProcess[str]:
    path = site.work / name
    path.write_bytes(data)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("ESEAL_") and k != "SOFTHSM2_CONF"}
    env.update(ESEAL_ENV="test", ESEAL_HOME=str(site.work / "no-home"),
               ESEAL_NOW=at.isoformat())
    return subprocess.run([sys.executable, "-m", "eseal", "verify", str(path), "--trust",
                           str(site.root_pem), "--json"], env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("evidence", ["crl", "ocsp"])
@pytest.mark.parametrize(("state", "code"), STATES)
def test_offline_cli_cannot_judge_a_backdated_seal_once_its_data_is_stale(
        site: Site, state: str, code: str, evidence: str) -> None:
    sealed = site.sealed[state]
    data = sealed.attack_crl if evidence == "crl" else sealed.attack_ocsp
    done = _offline_verify(site, data, f"attack-{state}-{evidence}.pdf",
                           sealed.changed_at + timedelta(days=30))
    assert done.returncode == 2, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["verdict"] == "indeterminate"
    assert "REVOCATION_STALE" in _codes(report)
    # the honest seal, same day, same machine: its timestamp and B-LT data still prove it
    done = _offline_verify(site, sealed.honest, f"honest-{state}.pdf",
                           sealed.changed_at + timedelta(days=30))
    assert done.returncode == 0, done.stdout + done.stderr
