"""Freeze, unfreeze and revoke: effective at once in OCSP lookups and both CRLs, checked by
openssl; the freeze window outlives the unfreeze; bad input changes nothing and is audited."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from sitekit import eseal_cli
from sqlalchemy import func, select

from eseal.ca import status
from eseal.ca.authority import Authority
from eseal.errors import EsealError
from eseal.ra import renewal, revocation
from eseal.store.models import AuditEvent, Certificate, CrlRecord, FreezeWindow
from tests.conftest import USCC_A, USCC_B, make_csr

ACTOR = "officer:test"


def issue(auth: Authority, uscc: str = USCC_A, profile: str = "login") -> str:
    return auth.issue(make_csr(), uscc=uscc, profile=profile, holder="王五",
                      actor=ACTOR).serial


def at(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    monkeypatch.setenv("ESEAL_NOW", when.isoformat())


def crl(auth: Authority, role: str = "issuing") -> x509.CertificateRevocationList:
    return x509.load_der_x509_crl(status.current_crl(auth, role))


def entry(auth: Authority, serial: str) -> x509.RevokedCertificate | None:
    return crl(auth).get_revoked_certificate_by_serial_number(int(serial, 16))


def reason_of(revoked: x509.RevokedCertificate) -> x509.ReasonFlags | None:
    try:
        return revoked.extensions.get_extension_for_class(x509.CRLReason).value.reason
    except x509.ExtensionNotFound:
        return None


def soon() -> datetime:
    """A moment shortly after the CA was created (the fixture uses the real clock)."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=1)


def frozen_soon(auth: Authority, monkeypatch: pytest.MonkeyPatch) -> tuple[str, datetime]:
    """A new login certificate, frozen with the clock set to soon() (returned with it)."""
    serial = issue(auth)
    t0 = soon()
    at(monkeypatch, t0)
    revocation.freeze(auth, serial, actor=ACTOR)
    return serial, t0


def renewed(auth: Authority, monkeypatch: pytest.MonkeyPatch) -> tuple[str, renewal.Renewal]:
    """A new login certificate and its same-key renewal, the clock set 30 days before the
    old one expires."""
    old = issue(auth)
    with auth.db.read() as s:
        expiry = s.get_one(Certificate, old).not_after
    at(monkeypatch, expiry - timedelta(days=30))
    renewed_cert = renewal.renew_one(auth, old, actor=ACTOR)
    assert isinstance(renewed_cert, renewal.Renewal)
    return old, renewed_cert


def test_freeze_is_a_hold_everywhere_and_unfreeze_drops_the_crl_entry(
        authority: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    serial, t0 = frozen_soon(authority, monkeypatch)
    held = entry(authority, serial)
    assert held is not None and reason_of(held) == x509.ReasonFlags.certificate_hold
    assert held.revocation_date_utc == t0
    assert status.lookup(authority, int(serial, 16)).reason == "certificateHold"

    at(monkeypatch, t0 + timedelta(hours=3))
    revocation.unfreeze(authority, serial, actor=ACTOR)
    after = crl(authority)
    assert after.get_revoked_certificate_by_serial_number(int(serial, 16)) is None
    assert len(after) == 0  # no removeFromCRL entry: that belongs to delta CRLs only
    assert status.lookup(authority, int(serial, 16)).status == "good"

    spans = status.freeze_windows(authority, serial)
    assert [(w.frozen_at, w.unfrozen_at) for w in spans] == [(t0, t0 + timedelta(hours=3))]
    inside = status.status_at(authority, int(serial, 16), t0 + timedelta(hours=1))
    assert (inside.status, inside.reason) == ("revoked", "certificateHold")
    assert status.status_at(authority, int(serial, 16), t0 - timedelta(seconds=1)).status \
        == "good"
    assert status.status_at(authority, int(serial, 16), t0 + timedelta(hours=4)).status \
        == "good"


def test_revoking_a_frozen_certificate_keeps_the_hold_as_revocation_time(
        authority: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    serial, t0 = frozen_soon(authority, monkeypatch)
    at(monkeypatch, t0 + timedelta(days=2))
    change = revocation.revoke(authority, serial, reason="keyCompromise", actor=ACTOR)
    assert (change.status, change.reason, change.revoked_at) == ("revoked", "keyCompromise", t0)
    listed = entry(authority, serial)
    assert listed is not None and listed.revocation_date_utc == t0
    assert reason_of(listed) == x509.ReasonFlags.key_compromise
    spans = status.freeze_windows(authority, serial)
    assert spans[0].unfrozen_at == t0 + timedelta(days=2)
    sealed_while_frozen = status.status_at(authority, int(serial, 16), t0 + timedelta(days=1))
    assert (sealed_while_frozen.status, sealed_while_frozen.reason) == ("revoked",
                                                                        "keyCompromise")


def test_reason_and_invalidity_date_are_on_the_crl_entry(authority: Authority) -> None:
    serial = issue(authority)
    compromised = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    revocation.revoke(authority, serial, reason="keyCompromise", actor=ACTOR,
                     invalidity_date=compromised)
    listed = entry(authority, serial)
    assert listed is not None
    assert listed.extensions.get_extension_for_class(x509.InvalidityDate).value \
        .invalidity_date_utc == compromised
    other = issue(authority)
    revocation.revoke(authority, other, reason="unspecified", actor=ACTOR)
    plain = entry(authority, other)
    assert plain is not None and reason_of(plain) is None  # RFC 5280: no unspecified code


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _crl_pem(der: bytes) -> bytes:
    return x509.load_der_x509_crl(der).public_bytes(serialization.Encoding.PEM)


def _openssl_verify(folder: Path, crls: str, cert: str) -> subprocess.CompletedProcess[str]:
    """openssl verify -crl_check_all of ``cert`` against root.pem and issuing.pem, with the
    CRLs in ``crls`` (all files in ``folder``)."""
    return subprocess.run(
        ["openssl", "verify", "-CAfile", folder / "root.pem", "-untrusted",
         folder / "issuing.pem", "-CRLfile", folder / crls, "-crl_check_all", folder / cert],
        capture_output=True, text=True)


def test_openssl_crl_check_all_with_both_crls_reports_the_revoked_certificate(
        authority: Authority, tmp_path: Path) -> None:
    good = authority.issue(make_csr(), uscc=USCC_A, profile="seal", holder="张三",
                           actor=ACTOR)
    bad = authority.issue(make_csr(), uscc=USCC_A, profile="login", holder="王五",
                          actor=ACTOR)
    revocation.revoke(authority, bad.serial, reason="affiliationChanged", actor=ACTOR)
    (tmp_path / "root.pem").write_bytes(_pem(authority.certificate("root")))
    (tmp_path / "issuing.pem").write_bytes(_pem(authority.certificate("issuing")))
    (tmp_path / "crls.pem").write_bytes(
        _crl_pem(status.current_crl(authority, "issuing"))
        + _crl_pem(status.current_crl(authority, "root")))
    results = {}
    for name, issued in (("good", good), ("bad", bad)):
        (tmp_path / f"{name}.pem").write_bytes(issued.pem)
        results[name] = _openssl_verify(tmp_path, "crls.pem", f"{name}.pem")
    assert results["good"].returncode == 0, results["good"].stderr
    assert ": OK" in results["good"].stdout
    assert results["bad"].returncode != 0
    assert "certificate revoked" in results["bad"].stdout + results["bad"].stderr
    # Without the root's CRL openssl cannot check the issuing CA: both CRLs are needed.
    (tmp_path / "only.pem").write_bytes(_crl_pem(status.current_crl(authority, "issuing")))
    partial = _openssl_verify(tmp_path, "only.pem", "good.pem")
    assert partial.returncode != 0 and "unable to get certificate CRL" in partial.stdout \
        + partial.stderr


def snapshot(auth: Authority) -> tuple[Any, ...]:
    with auth.db.read() as s:
        certs = sorted((c.serial, c.status, c.revocation_reason, c.revoked_at, c.status_version,
                        c.replaced_by) for c in s.execute(select(Certificate)).scalars())
        crls = s.execute(select(func.count()).select_from(CrlRecord)).scalar_one()
        windows = s.execute(select(func.count()).select_from(FreezeWindow)).scalar_one()
        events = s.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
    return tuple(certs), crls, windows, events


def _last_event(auth: Authority) -> AuditEvent:
    with auth.db.read() as s:
        return s.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()


Case = Callable[[Authority, dict[str, str]], object]
BAD: dict[str, tuple[Case, str, str]] = {
    "revoke twice": (lambda a, c: revocation.revoke(a, c["revoked"], reason="keyCompromise",
                                                   actor=ACTOR),
                     "CERT_ALREADY_REVOKED", "cert.revoke"),
    "unknown reason": (lambda a, c: revocation.revoke(a, c["good"], reason="lostIt",
                                                     actor=ACTOR),
                       "CRL_REASON_UNKNOWN", "cert.revoke"),
    "removeFromCRL as a reason": (lambda a, c: revocation.revoke(a, c["good"],
                                                                reason="removeFromCRL",
                                                                actor=ACTOR),
                                  "CRL_REASON_NOT_ALLOWED", "cert.revoke"),
    "hold as a revocation reason": (lambda a, c: revocation.revoke(a, c["good"],
                                                                  reason="certificateHold",
                                                                  actor=ACTOR),
                                    "REASON_IS_FREEZE", "cert.revoke"),
    "unknown serial": (lambda a, c: revocation.revoke(a, "0badc0ffee", reason="keyCompromise",
                                                     actor=ACTOR),
                       "CERT_NOT_FOUND", "cert.revoke"),
    "malformed serial": (lambda a, c: revocation.revoke(a, "xyz!", reason="keyCompromise",
                                                       actor=ACTOR),
                         "SERIAL_INVALID", "cert.revoke"),
    "invalidity date in the future": (
        lambda a, c: revocation.revoke(a, c["good"], reason="keyCompromise", actor=ACTOR,
                                      invalidity_date=datetime.now(UTC) + timedelta(days=1)),
        "INVALIDITY_DATE_IN_FUTURE", "cert.revoke"),
    "revoke the root": (lambda a, c: revocation.revoke(a, c["root"], reason="cACompromise",
                                                      actor=ACTOR),
                        "CERT_NOT_REVOCABLE", "cert.revoke"),
    "freeze twice": (lambda a, c: revocation.freeze(a, c["frozen"], actor=ACTOR),
                     "CERT_ALREADY_FROZEN", "cert.freeze"),
    "freeze a revoked certificate": (lambda a, c: revocation.freeze(a, c["revoked"],
                                                                   actor=ACTOR),
                                     "CERT_ALREADY_REVOKED", "cert.freeze"),
    "freeze a CA certificate": (lambda a, c: revocation.freeze(a, c["issuing"], actor=ACTOR),
                                "CERT_NOT_FREEZABLE", "cert.freeze"),
    "unfreeze a good certificate": (lambda a, c: revocation.unfreeze(a, c["good"], actor=ACTOR),
                                    "CERT_NOT_FROZEN", "cert.unfreeze"),
    "unfreeze a revoked certificate": (lambda a, c: revocation.unfreeze(a, c["revoked"],
                                                                       actor=ACTOR),
                                       "CERT_ALREADY_REVOKED", "cert.unfreeze"),
    "renew a revoked certificate": (lambda a, c: renewal.renew_one(a, c["revoked"],
                                                                     actor=ACTOR),
                                    "CERT_ALREADY_REVOKED", "cert.renew"),
    "renew a frozen certificate": (lambda a, c: renewal.renew_one(a, c["frozen"],
                                                                    actor=ACTOR),
                                   "CERT_ALREADY_FROZEN", "cert.renew"),
    "revoke-all with an unknown reason": (
        lambda a, c: revocation.revoke_all(a, USCC_A, reason="oops", actor=ACTOR),
        "CRL_REASON_UNKNOWN", "cert.revoke_all"),
    "revoke-all for an unregistered enterprise": (
        lambda a, c: revocation.revoke_all(a, "91350200MA2XY0123A", reason="keyCompromise",
                                          actor=ACTOR),
        "ENTERPRISE_NOT_REGISTERED", "cert.revoke_all"),
}


@pytest.fixture
def cases(authority: Authority) -> dict[str, str]:
    good, frozen, revoked = issue(authority), issue(authority), issue(authority)
    revocation.freeze(authority, frozen, actor=ACTOR)
    revocation.revoke(authority, revoked, reason="superseded", actor=ACTOR)
    return {"good": good, "frozen": frozen, "revoked": revoked,
            "root": format(authority.certificate("root").serial_number, "x"),
            "issuing": format(authority.certificate("issuing").serial_number, "x")}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_request_changes_nothing_and_its_refusal_is_audited(
        authority: Authority, cases: dict[str, str], case: str) -> None:
    call, code, action = BAD[case]
    certs, crls, windows, events = snapshot(authority)
    with pytest.raises(EsealError) as exc:
        call(authority, cases)
    assert exc.value.code == code, exc.value.message
    assert exc.value.field and exc.value.message_zh != exc.value.message
    assert snapshot(authority) == (certs, crls, windows, events + 1)
    last = _last_event(authority)
    assert (last.action, last.outcome, last.details["code"]) == (action, "refused", code)


def test_revoke_all_revokes_one_enterprise_at_once_and_a_rerun_changes_nothing(
        authority: Authority) -> None:
    mine = [issue(authority), issue(authority, profile="seal"), issue(authority)]
    revocation.freeze(authority, mine[2], actor=ACTOR)
    theirs = issue(authority, USCC_B)
    before = status.newest_crl(authority, "issuing")
    changed = revocation.revoke_all(authority, USCC_A, reason="cessationOfOperation",
                                   actor=ACTOR)
    assert sorted(c.serial for c in changed) == sorted(mine)
    after = status.newest_crl(authority, "issuing")
    assert before is not None and after is not None and after.number == before.number + 1
    listed = x509.load_der_x509_crl(after.der)
    for serial in mine:
        revoked = listed.get_revoked_certificate_by_serial_number(int(serial, 16))
        assert revoked is not None
        assert reason_of(revoked) == x509.ReasonFlags.cessation_of_operation
    assert status.lookup(authority, int(theirs, 16)).status == "good"
    with authority.db.read() as s:
        per_cert = s.execute(select(AuditEvent.target).where(
            AuditEvent.action == "cert.revoke", AuditEvent.outcome == "ok")).scalars().all()
    assert sorted(per_cert) == sorted(mine)
    assert revocation.revoke_all(authority, USCC_A, reason="cessationOfOperation",
                                actor=ACTOR) == []
    assert status.newest_crl(authority, "issuing").number == after.number  # type: ignore[union-attr]


def eseal(home: Path, *args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = eseal_cli(*args, home=home)
    assert done.returncode == code, done.stdout + done.stderr
    return done


def test_cli_freeze_unfreeze_revoke_and_crl(authority: Authority, home: Path,
                                            tmp_path: Path) -> None:
    serial = issue(authority)
    frozen = eseal(home, "cert", "freeze", serial).stdout
    assert frozen.startswith(f"certificate {serial} frozen (certificateHold)")
    assert json.loads(eseal(home, "cert", "unfreeze", serial, "--json").stdout)["status"] == \
        "good"
    revoked = json.loads(eseal(home, "cert", "revoke", serial.upper(), "--reason",
                               "keyCompromise", "--invalidity-date",
                               "2020-01-02T03:04:05Z", "--json").stdout)
    assert (revoked["status"], revoked["reason"], revoked["invalidity_date"]) == (
        "revoked", "keyCompromise", "2020-01-02T03:04:05+00:00")
    again = eseal(home, "cert", "revoke", serial, "--reason", "keyCompromise", code=1)
    assert again.stderr.startswith("error CERT_ALREADY_REVOKED [serial]:")
    assert again.stderr.count("\n") == 1
    out = tmp_path / "issuing.crl"
    info = json.loads(eseal(home, "crl", "--ca", "issuing", "--out", str(out), "--json").stdout)
    listed = x509.load_der_x509_crl(out.read_bytes())
    assert info["number"] == listed.extensions.get_extension_for_class(
        x509.CRLNumber).value.crl_number
    assert listed.get_revoked_certificate_by_serial_number(int(serial, 16)) is not None
    assert json.loads(eseal(home, "cert", "revoke-all", "--enterprise", USCC_B, "--reason",
                            "cessationOfOperation").stdout)["revoked"] == []


@pytest.mark.parametrize("reason", ["keyCompromise", "affiliationChanged"])
def test_revoking_a_renewed_certificate_revokes_the_one_it_was_renewed_from(
        authority: Authority, monkeypatch: pytest.MonkeyPatch, reason: str) -> None:
    """A same-key renewal leaves the old certificate good until it expires; revoking the key's
    current certificate must not leave that older one good (a lost or compromised key would
    still seal under it)."""
    old, renewed_cert = renewed(authority, monkeypatch)
    other = issue(authority)  # another key: untouched
    revocation.revoke(authority, renewed_cert.serial, reason=reason, actor=ACTOR)
    with authority.db.read() as s:
        statuses = {serial: s.get_one(Certificate, serial).status
                    for serial in (old, renewed_cert.serial, other)}
    assert statuses == {old: "revoked", renewed_cert.serial: "revoked", other: "good"}
    assert entry(authority, old) is not None


def test_freezing_a_renewed_certificate_freezes_the_older_one_too(
        authority: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    old, renewed_cert = renewed(authority, monkeypatch)
    revocation.freeze(authority, renewed_cert.serial, actor=ACTOR)
    assert status.lookup(authority, int(old, 16)).reason == "certificateHold"
    revocation.unfreeze(authority, renewed_cert.serial, actor=ACTOR)
    assert status.lookup(authority, int(old, 16)).status == "good"
    with authority.db.read() as s:
        windows = s.execute(select(FreezeWindow).where(FreezeWindow.serial == old)).scalars()
        assert [w.unfrozen_at is not None for w in windows] == [True]
