"""The officer console: the fixed command names scripts depend on, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pgkit
import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from tests.conftest import NAME_A, USCC_A, make_csr


def eseal(home: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ESEAL_HOME=str(home))
    env.pop("SOFTHSM2_CONF", None)
    pgkit.prepare_home(home, args)
    done = subprocess.run([sys.executable, "-m", "eseal", *args], env=env, capture_output=True,
                          text=True, stdin=subprocess.DEVNULL, timeout=120)
    if ok:
        assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def cli_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    done = eseal(home, "init", "--home", str(home), "--base-url", "http://127.0.0.1:9")
    assert "CA token PIN in" in done.stdout
    assert oct((home / "secrets" / "ca.pin").stat().st_mode & 0o777) == "0o600"
    return home


def test_enterprise_to_certificate_round_trip_keeps_the_rare_character(
        cli_home: Path, tmp_path: Path) -> None:
    eseal(cli_home, "enterprise", "add", "--uscc", USCC_A, "--name", NAME_A,
          "--legal-rep", "张三")
    csr = tmp_path / "seal.csr"
    csr.write_bytes(make_csr())
    out = tmp_path / "seal.pem"
    eseal(cli_home, "cert", "issue", "--csr", str(csr), "--enterprise", USCC_A,
          "--profile", "seal", "--holder", "张三", "--out", str(out))
    cert = x509.load_pem_x509_certificate(out.read_bytes())
    org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    assert isinstance(org, str) and org.encode("utf-8") == NAME_A.encode("utf-8")

    listing = json.loads(eseal(cli_home, "cert", "list", "--json").stdout)
    mine = [c for c in listing if c["enterprise"] == USCC_A]
    assert len(mine) == 1
    entry = mine[0]
    assert {"serial", "enterprise", "profile", "holder", "status", "not_after"} <= set(entry)
    assert entry["serial"] == format(cert.serial_number, "x")
    assert (entry["profile"], entry["status"]) == ("seal", "good")

    colons = ":".join(f"{b:02X}" for b in cert.serial_number.to_bytes(16, "big"))
    for spelling in (entry["serial"], "0x" + entry["serial"].upper(), colons):
        shown = json.loads(eseal(cli_home, "cert", "show", spelling, "--json").stdout)
        assert shown["serial"] == entry["serial"]

    eseal(cli_home, "ca", "export", str(tmp_path / "ca"))
    for name in ("root.pem", "issuing.pem"):
        assert (tmp_path / "ca" / name).read_bytes().startswith(b"-----BEGIN CERTIFICATE")
    assert "intact" in eseal(cli_home, "audit", "verify").stdout


def test_errors_are_one_line_with_a_stable_code(cli_home: Path, tmp_path: Path) -> None:
    bad = eseal(cli_home, "enterprise", "add", "--uscc", USCC_A[:-1] + "0", "--name", NAME_A,
                "--legal-rep", "张三", ok=False)
    assert bad.returncode == 1
    assert bad.stderr.count("\n") == 1 and "USCC_CHECKSUM" in bad.stderr
    again = eseal(cli_home, "init", "--home", str(cli_home), ok=False)
    assert again.returncode == 1 and "HOME_ALREADY_INITIALISED" in again.stderr
    missing = eseal(tmp_path / "nowhere", "cert", "list", ok=False)
    assert missing.returncode == 1 and "HOME_NOT_INITIALISED" in missing.stderr
