"""Status for relying parties: OCSP lookups see every change at once, CRLs are re-issued on
every change with monotonic numbers (also across processes), re-signed when half stale, and
pass pkilint's CRL lint."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from certkit import TOOLS
from cryptography import x509
from sqlalchemy import select

from eseal.ca import status
from eseal.ca.authority import Authority
from eseal.ra import revocation
from eseal.store.models import CrlRecord
from tests.conftest import USCC_A, make_csr

ACTOR = "officer:test"
LINT_CRL = TOOLS / "lint_crl"


def issue(auth: Authority) -> str:
    return auth.issue(make_csr(), uscc=USCC_A, profile="login", holder="王五",
                      actor=ACTOR).serial


def crl_of(auth: Authority, role: str) -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(status.current_crl(auth, role))


def number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def stored(auth: Authority, role: str) -> list[tuple[int, datetime]]:
    with auth.db.read() as s:
        return [(r.number, r.this_update) for r in s.execute(
            select(CrlRecord).where(CrlRecord.issuer_role == role)
            .order_by(CrlRecord.number)).scalars()]


def test_lookup_follows_every_status_change_with_a_new_version(authority: Authority) -> None:
    serial = issue(authority)
    as_int = int(serial, 16)
    seen = [status.lookup(authority, as_int)]
    revocation.freeze(authority, serial, actor=ACTOR)
    seen.append(status.lookup(authority, as_int))
    revocation.unfreeze(authority, serial, actor=ACTOR)
    seen.append(status.lookup(authority, as_int))
    revocation.revoke(authority, serial, reason="keyCompromise", actor=ACTOR)
    seen.append(status.lookup(authority, as_int))
    assert [(s.status, s.reason) for s in seen] == [
        ("good", None), ("revoked", "certificateHold"), ("good", None),
        ("revoked", "keyCompromise")]
    assert [s.version for s in seen] == [0, 1, 2, 3]
    assert seen[1].revoked_at is not None and seen[3].revoked_at is not None


def test_serials_the_issuing_ca_did_not_issue_are_unknown(authority: Authority) -> None:
    for role in ("issuing", "root"):  # the issuing CA's own certificate is the root's
        serial = authority.certificate(role).serial_number
        assert status.lookup(authority, serial).status == "unknown"
    assert status.lookup(authority, 0xDEADBEEF).status == "unknown"
    assert status.lookup(authority, int(authority.certificate("ocsp").serial_number)
                         ).status == "good"


def test_every_status_change_reissues_both_crls_with_higher_numbers(
        authority: Authority) -> None:
    serial = issue(authority)
    before = {role: number(crl_of(authority, role)) for role in status.CRL_ROLES}
    revocation.freeze(authority, serial, actor=ACTOR)
    after = {role: status.newest_crl(authority, role) for role in status.CRL_ROLES}
    for role in status.CRL_ROLES:
        info = after[role]
        assert info is not None and info.number == before[role] + 1
    held = x509.load_der_x509_crl(after["issuing"].der)  # type: ignore[union-attr]
    entry = held.get_revoked_certificate_by_serial_number(int(serial, 16))
    assert entry is not None
    assert entry.extensions.get_extension_for_class(x509.CRLReason).value.reason \
        == x509.ReasonFlags.certificate_hold
    assert len(x509.load_der_x509_crl(after["root"].der)) == 0  # type: ignore[union-attr]


def _eseal(home: Path, *args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test")
    return subprocess.Popen([sys.executable, "-m", "eseal", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_crl_numbers_are_unique_and_monotonic_across_threads_and_processes(
        authority: Authority, home: Path, tmp_path: Path) -> None:
    issue(authority)
    procs = [_eseal(home, "crl", "--fresh", "--ca", "issuing", "--out", str(tmp_path / f"{i}"))
             for i in range(2)]
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                status.publish_crls(authority)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    assert not errors
    issuing = stored(authority, "issuing")
    numbers = [n for n, _ in issuing]
    assert numbers == list(range(1, 18))  # 15 from threads, 2 from the processes
    times = [t for _, t in issuing]
    assert times == sorted(times)  # a higher number never carries an older thisUpdate
    assert [n for n, _ in stored(authority, "root")] == list(range(1, 16))


def test_current_crl_is_reused_until_half_its_validity_then_resigned(
        authority: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    monkeypatch.setenv("ESEAL_NOW", start.isoformat())
    first = crl_of(authority, "issuing")
    assert first.last_update_utc == start
    assert first.next_update_utc == start + timedelta(hours=24)
    monkeypatch.setenv("ESEAL_NOW", (start + timedelta(hours=11, minutes=59)).isoformat())
    assert number(crl_of(authority, "issuing")) == number(first)
    monkeypatch.setenv("ESEAL_NOW", (start + timedelta(hours=12)).isoformat())
    second = crl_of(authority, "issuing")
    assert number(second) == number(first) + 1
    assert second.last_update_utc == start + timedelta(hours=12)
    authority.settings = authority.settings.replace(crl_validity_hours=6)
    status.publish_crls(authority)
    third = crl_of(authority, "root")
    assert third.next_update_utc - third.last_update_utc == timedelta(hours=6)  # type: ignore[operator]


def test_crls_pass_pkilint_with_every_kind_of_entry(authority: Authority,
                                                   tmp_path: Path) -> None:
    serials = [issue(authority) for _ in range(4)]
    revocation.freeze(authority, serials[0], actor=ACTOR)
    revocation.revoke(authority, serials[1], reason="keyCompromise", actor=ACTOR,
                     invalidity_date=datetime.now(UTC) - timedelta(days=2))
    revocation.revoke(authority, serials[2], reason="unspecified", actor=ACTOR)
    revocation.revoke(authority, serials[3], reason="affiliationChanged", actor=ACTOR)
    issuing = crl_of(authority, "issuing")
    assert len(issuing) == 4
    for role in status.CRL_ROLES:
        path = tmp_path / f"{role}.crl"
        path.write_bytes(status.current_crl(authority, role))
        lint = subprocess.run([LINT_CRL, "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING",
                               path], capture_output=True, text=True)
        assert lint.returncode == 0, (role, lint.stdout, lint.stderr)
        crl = x509.load_der_x509_crl(path.read_bytes())
        assert crl.is_signature_valid(authority.certificate(role).public_key())  # type: ignore[arg-type]


def test_unknown_crl_ca_is_refused(authority: Authority) -> None:
    from eseal.errors import InvalidInput

    with pytest.raises(InvalidInput) as exc:
        status.current_crl(authority, "ocsp")
    assert exc.value.code == "CRL_CA_UNKNOWN"
