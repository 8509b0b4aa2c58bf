"""Renewal and re-key: window edges, grace, 29 February, the key-age limit and the issuing
CA's notAfter, all with ESEAL_NOW; batch renewal of 1,000 certificates that a rerun leaves
alone; the CLI's JSON summary; a holder's re-key on a real SoftHSM token, including runs
that were interrupted half way."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select

from eseal.ca import status
from eseal.ca.authority import Authority
from eseal.ca.issuance import IssuanceRequest
from eseal.cli.cmd_token import LocalRekeyCa
from eseal.errors import EsealError
from eseal.holder.rekey import rekey_on_token
from eseal.pki import rekey_proof
from eseal.pki.signature import verify_signature
from eseal.ra import rekey, renewal, revocation
from eseal.ra.enterprises import deregister_enterprise
from eseal.ra.renewal import Renewal, Skipped
from eseal.store.models import AuditEvent, Certificate
from eseal.token import generate_keypair, list_keys, token_private_key
from eseal.token.client import UsbKey
from eseal.token.pin import PinPolicy, generate_so_pin
from eseal.token.usbkey import KEY_LABELS, build_csr, provision
from tests.conftest import USCC_A, USCC_B, make_csr

ACTOR = "officer:test"
EPOCH = "2030-01-01T00:00:00+00:00"  # the CA is created then: issuing CA until 2040-01-01
PIN = "4913-7720"


def t(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def auth(home: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
         ) -> Authority:
    monkeypatch.setenv("ESEAL_NOW", EPOCH)
    return request.getfixturevalue("authority")  # type: ignore[no-any-return]


def at(monkeypatch: pytest.MonkeyPatch, when: str) -> None:
    monkeypatch.setenv("ESEAL_NOW", when)


def issue(auth: Authority, uscc: str = USCC_A, key: Any = None) -> str:
    return auth.issue(make_csr(key), uscc=uscc, profile="login", holder="王五",
                      actor=ACTOR).serial


def planted(auth: Authority, not_after: str, certified: str | None = None) -> str:
    """A certificate with a chosen notAfter (and key age), made with the authority's own
    one issuance path (certify): how a certificate issued long ago would look."""
    with auth.db.read() as s:
        ent = auth.enterprise_row(s, USCC_A)
    end = t(not_after)
    return auth.certify(IssuanceRequest(
        profile="login", public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        holder="王五", actor=ACTOR, target=USCC_A, enterprise=ent, not_after=end,
        key_certified_at=t(certified) if certified else end - timedelta(days=365))).serial


def row(auth: Authority, serial: str) -> Certificate:
    return auth.certificate_row(serial)


def renewed(outcome: Renewal | Skipped) -> Renewal:
    assert isinstance(outcome, Renewal), outcome
    return outcome


# --- date arithmetic ------------------------------------------------------------------------
EDGES = [  # (renewal time, new notAfter or refusal) for a certificate expiring 2031-01-01
    ("2030-10-02T23:59:59Z", "RENEWAL_WINDOW_NOT_OPEN"),
    ("2030-10-03T00:00:00Z", "2032-01-01T00:00:00Z"),  # exactly 90 days before: open
    ("2031-01-01T00:00:00Z", "2032-01-01T00:00:00Z"),  # last valid second: carried over
    ("2031-01-01T00:00:01Z", "2032-01-01T00:00:01Z"),  # expired: one year from renewal
    ("2031-04-01T00:00:00Z", "2032-04-01T00:00:00Z"),  # last second of the 90-day grace
    ("2031-04-01T00:00:01Z", "RENEWAL_GRACE_EXPIRED"),
]


def test_window_edges_and_grace(auth: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    serials = [issue(auth) for _ in EDGES]
    assert {row(auth, s).not_after for s in serials} == {t("2031-01-01T00:00:00Z")}
    for serial, (when, expected) in zip(serials, EDGES, strict=True):
        at(monkeypatch, when)
        if not expected[0].isdigit():
            with pytest.raises(EsealError) as exc:
                renewal.renew_one(auth, serial, actor=ACTOR)
            assert exc.value.code == expected, when
            assert row(auth, serial).replaced_by is None
            continue
        done = renewed(renewal.renew_one(auth, serial, actor=ACTOR))
        cert = done.issued.certificate
        assert cert.not_valid_after_utc == t(expected), when
        assert cert.not_valid_before_utc == t(when)
        assert done.terms.carried_over == (t(when) <= t("2031-01-01T00:00:00Z"))


def test_same_key_renewal_links_old_and_new(auth: Authority,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    old = issue(auth, key=key)
    at(monkeypatch, "2030-12-01T08:00:00Z")
    done = renewed(renewal.renew_one(auth, old, actor=ACTOR))
    assert done.issued.certificate.public_key() == key.public_key()
    old_row, new_row = row(auth, old), row(auth, done.serial)
    assert (old_row.replaced_by, new_row.renewed_from) == (done.serial, old)
    assert old_row.status == "good"  # a renewed certificate stays valid until it expires
    assert new_row.key_certified_at == t(EPOCH)
    again = renewal.renew_one(auth, old, actor=ACTOR)
    assert isinstance(again, Skipped) and done.serial in again.reason


def test_29_february(auth: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    leap_expiry = planted(auth, "2032-02-29T12:00:00Z")
    expired_before_leap_day = planted(auth, "2032-02-01T08:00:00Z")
    common_expiry = planted(auth, "2031-02-28T10:00:00Z")
    at(monkeypatch, "2032-01-15T00:00:00Z")
    assert renewed(renewal.renew_one(auth, leap_expiry, actor=ACTOR)).terms.not_after \
        == t("2033-02-28T12:00:00Z")  # carried over from a leap day: 28 February
    at(monkeypatch, "2032-02-29T08:00:00Z")
    assert renewed(renewal.renew_one(auth, expired_before_leap_day, actor=ACTOR)
                   ).terms.not_after == t("2033-02-28T08:00:00Z")  # a year from a leap day
    at(monkeypatch, "2031-01-10T00:00:00Z")
    assert renewed(renewal.renew_one(auth, common_expiry, actor=ACTOR)).terms.not_after \
        == t("2032-02-28T10:00:00Z")  # never lengthened to the 29th


def test_a_key_is_renewed_for_three_years_then_rekey_is_required(
        auth: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    serial = issue(auth)  # key first certified 2030-01-01
    for when, until in (("2030-12-01T00:00:00Z", "2032-01-01T00:00:00Z"),
                        ("2031-12-01T00:00:00Z", "2033-01-01T00:00:00Z")):
        at(monkeypatch, when)
        done = renewed(renewal.renew_one(auth, serial, actor=ACTOR))
        assert done.terms.not_after == t(until)
        serial = done.serial
    at(monkeypatch, "2032-12-01T00:00:00Z")
    with pytest.raises(EsealError) as exc:
        renewal.renew_one(auth, serial, actor=ACTOR)
    assert exc.value.code == "REKEY_REQUIRED"
    assert exc.value.details["key_limit"] == "2033-01-01T00:00:00+00:00"
    auth.settings = auth.settings.replace(max_key_age_years=4)  # the limit is a setting
    assert renewed(renewal.renew_one(auth, serial, actor=ACTOR)).terms.not_after \
        == t("2034-01-01T00:00:00Z")


def test_window_and_grace_are_settings(auth: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    auth.settings = auth.settings.replace(renewal_window_days=30, renewal_grace_days=0)
    early, late = issue(auth), issue(auth)
    at(monkeypatch, "2030-12-01T00:00:00Z")  # 31 days before expiry
    with pytest.raises(EsealError) as exc:
        renewal.renew_one(auth, early, actor=ACTOR)
    assert exc.value.code == "RENEWAL_WINDOW_NOT_OPEN"
    at(monkeypatch, "2031-01-01T00:00:01Z")
    with pytest.raises(EsealError) as exc:
        renewal.renew_one(auth, late, actor=ACTOR)
    assert exc.value.code == "RENEWAL_GRACE_EXPIRED"


def test_renewal_is_cut_at_the_issuing_cas_not_after(auth: Authority,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    issuing_end = auth.certificate("issuing").not_valid_after_utc
    assert issuing_end == t("2040-01-01T00:00:00Z")
    serial = planted(auth, "2039-06-01T00:00:00Z")
    at(monkeypatch, "2039-04-01T00:00:00Z")
    summary = renewal.renew_many(auth, [serial], actor=ACTOR).to_dict()
    [item] = summary["renewed"]
    assert item["capped"] is True and "issuing CA" in item["note"]
    assert item["not_after"] == issuing_end.isoformat()
    assert row(auth, item["new_serial"]).not_after == issuing_end


def test_deregistered_enterprises_are_refused(auth: Authority,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    serial = issue(auth, USCC_B)
    deregister_enterprise(auth, USCC_B, actor=ACTOR)
    at(monkeypatch, "2030-12-01T00:00:00Z")
    with pytest.raises(EsealError) as exc:
        renewal.renew_one(auth, serial, actor=ACTOR)
    assert exc.value.code == "ENTERPRISE_NOT_ACTIVE"


# --- batches --------------------------------------------------------------------------------
def _count(auth: Authority) -> int:
    with auth.db.read() as s:
        return int(s.execute(select(func.count()).select_from(Certificate)).scalar_one())


def test_batch_renewal_of_a_thousand_certificates_and_a_rerun_changes_nothing(
        auth: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    started = time.perf_counter()
    serials = [issue(auth) for _ in range(1000)]
    issued_in = time.perf_counter() - started
    frozen, revoked, gone = issue(auth), issue(auth), issue(auth, USCC_B)
    revocation.freeze(auth, frozen, actor=ACTOR)
    revocation.revoke(auth, revoked, reason="keyCompromise", actor=ACTOR)
    deregister_enterprise(auth, USCC_B, actor=ACTOR)
    before = _count(auth)
    at(monkeypatch, "2030-11-15T00:00:00Z")
    todo = renewal.expiring(auth, 90)
    assert sorted(todo) == sorted([*serials, frozen, gone])  # revoked ones are not due
    ticks: list[int] = []
    started = time.perf_counter()
    summary = renewal.renew_many(auth, todo, actor=ACTOR, progress=lambda: ticks.append(1))
    renewed_in = time.perf_counter() - started
    assert len(ticks) == len(todo)
    assert sorted(r.old_serial for r in summary.renewed) == sorted(serials)
    assert {r.terms.not_after for r in summary.renewed} == {t("2032-01-01T00:00:00Z")}
    assert sorted((serial, err.code) for serial, err in summary.refused) == sorted(
        [(frozen, "CERT_ALREADY_FROZEN"), (gone, "ENTERPRISE_NOT_ACTIVE")])
    assert _count(auth) == before + 1000
    print(f"\n1000 issued in {issued_in:.2f} s, renewed in {renewed_in:.2f} s")

    assert set(renewal.expiring(auth, 90)) == {frozen, gone}  # the renewed ones are done
    rerun = renewal.renew_many(auth, [*serials, *renewal.expiring(auth, 90)], actor=ACTOR)
    assert rerun.renewed == [] and len(rerun.skipped) == 1000
    assert _count(auth) == before + 1000
    with auth.db.read() as s:
        assert auth.audit.verify(s).ok


def eseal(home: Path, *args: str, code: int = 0, env: dict[str, str] | None = None
          ) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test", **(env or {}))
    done = subprocess.run([sys.executable, "-m", "eseal", *args], env=full,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == code, done.stdout + done.stderr
    return done


def test_cli_renew_prints_a_json_summary_and_fails_on_refusals(
        auth: Authority, home: Path) -> None:
    good, bad = issue(auth), issue(auth)
    revocation.revoke(auth, bad, reason="keyCompromise", actor=ACTOR)
    when = {"ESEAL_NOW": "2030-12-01T00:00:00Z"}
    first = eseal(home, "cert", "renew", good, bad, "not-hex", code=1, env=when)
    summary = json.loads(first.stdout)
    assert [r["serial"] for r in summary["renewed"]] == [good]
    assert summary["renewed"][0]["not_after"] == "2032-01-01T00:00:00+00:00"
    assert [(r["serial"], r["code"]) for r in summary["refused"]] == [
        (bad, "CERT_ALREADY_REVOKED"), ("not-hex", "SERIAL_INVALID")]
    assert first.stderr.splitlines()[0].startswith(f"error CERT_ALREADY_REVOKED [{bad}]")
    assert "renewing" not in first.stderr  # no progress bar when stderr is not a terminal
    rerun = json.loads(eseal(home, "cert", "renew", "--expiring-within", "90", good,
                             env=when).stdout)
    assert rerun["renewed"] == [] and [s["serial"] for s in rerun["skipped"]] == [good]


def test_cli_renew_shows_a_progress_bar_on_a_terminal(auth: Authority, home: Path) -> None:
    issue(auth)
    master, slave = pty.openpty()
    env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test",
               ESEAL_NOW="2030-12-01T00:00:00Z")
    proc = subprocess.run([sys.executable, "-m", "eseal", "cert", "renew",
                           "--expiring-within", "60"], env=env, stdout=subprocess.PIPE,
                          stderr=slave, timeout=120, text=True)
    os.close(slave)
    seen = b""
    try:
        while chunk := os.read(master, 4096):
            seen += chunk
    except OSError:
        pass
    os.close(master)
    assert proc.returncode == 0
    assert len(json.loads(proc.stdout)["renewed"]) == 1
    assert b"renewing" in seen


# --- holder re-key --------------------------------------------------------------------------
def _enrolled(auth: Authority, label: str) -> tuple[str, bytes]:
    """Provision a SoftHSM token, enroll an agent's login key; (serial, key id)."""
    from eseal.ra.enrollment import enroll_on_token

    provision(auth.settings.softhsm_conf_path, label, PIN, generate_so_pin())
    done = enroll_on_token(auth, label=label, pin=PIN, uscc=USCC_A, role="agent",
                           holder="王五", actor=ACTOR)
    return done.issued["login"].serial, bytes.fromhex(done.key_ids["login"])


def _open(label: str) -> UsbKey:
    return UsbKey(PinPolicy().login(label, PIN, rw=True))


class Watching(LocalRekeyCa):
    """The local CA, checking at confirmation time what the client promised."""

    def __init__(self, auth: Authority, usbkey: UsbKey, old_serial: str) -> None:
        super().__init__(auth, "holder:test")
        self.usbkey, self.old_serial = usbkey, old_serial
        self.confirmed: list[str] = []

    def confirm(self, new_serial: str) -> None:
        on_token = format(self.usbkey.certificate("login").serial_number, "x")
        assert on_token == new_serial  # installed before the CA is told
        assert status.lookup(self.auth, int(self.old_serial, 16)).status == "good"
        self.confirmed.append(new_serial)
        super().confirm(new_serial)


def test_holder_rekey_supersedes_the_old_certificate_once_the_new_one_is_on_the_token(
        auth: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    old_serial, old_id = _enrolled(auth, "wang")
    at(monkeypatch, "2030-11-01T00:00:00Z")
    with _open("wang") as usbkey:
        ca = Watching(auth, usbkey, old_serial)
        result = rekey_on_token(usbkey, "login", ca)
        assert ca.confirmed == [result["new_serial"]]
        assert [k.label for k in list_keys(usbkey.session)] == ["eseal-login"]
        new_cert = usbkey.certificate("login")
        assert usbkey.login_key().key_id != old_id
        challenge = b"eseal-login-v1 challenge"
        verify_signature(new_cert, usbkey.sign("login", challenge), challenge)
    assert (result["old_serial"], result["resumed"]) == (old_serial, False)
    assert new_cert.not_valid_after_utc == t("2032-01-01T00:00:00Z")  # carried over
    gone = status.lookup(auth, int(old_serial, 16))
    assert (gone.status, gone.reason) == ("revoked", "superseded")
    assert row(auth, old_serial).replaced_by == result["new_serial"]
    new_row = row(auth, result["new_serial"])
    assert (new_row.renewed_from, new_row.key_certified_at) == (old_serial,
                                                                t("2030-11-01T00:00:00Z"))
    assert not rekey.rekey_pending(auth, result["new_serial"])
    assert rekey.confirm_rekey(auth, result["new_serial"], "holder:test") == []


def _software_cert(auth: Authority) -> tuple[str, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    return issue(auth, key=key), key


def _proof(key: ec.EllipticCurvePrivateKey, csr_pem: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

    digest = rekey_proof.rekey_digest(rekey_proof.csr_der(csr_pem))
    return key.sign(digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_rekey_refusals_change_nothing_and_are_audited(
        auth: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    serial, key = _software_cert(auth)
    frozen, frozen_key = _software_cert(auth)
    revocation.freeze(auth, frozen, actor=ACTOR)
    fresh = ec.generate_private_key(ec.SECP256R1())
    csr = make_csr(fresh)
    stranger = ec.generate_private_key(ec.SECP256R1())
    same_key = make_csr(key)
    cases = {
        "REKEY_PROOF_INVALID": (serial, csr, _proof(stranger, csr)),
        "REKEY_PROOF_INVALID ": (serial, csr, _proof(key, make_csr())),  # other CSR
        "REKEY_SAME_KEY": (serial, same_key, _proof(key, same_key)),
        "CERT_ALREADY_FROZEN": (frozen, csr, _proof(frozen_key, csr)),
        "CERT_NOT_FOUND": ("abc123", csr, _proof(key, csr)),
        "CSR_MALFORMED": (serial, b"not a csr", b""),
    }
    at(monkeypatch, "2030-11-01T00:00:00Z")
    for code, (old, request, proof) in cases.items():
        before = _count(auth)
        with pytest.raises(EsealError) as exc:
            rekey.rekey(auth, old, request, proof, "holder:test")
        assert exc.value.code == code.strip()
        assert _count(auth) == before
        with auth.db.read() as s:
            last = s.execute(select(AuditEvent).order_by(AuditEvent.id.desc())
                             .limit(1)).scalar_one()
        assert (last.action, last.outcome, last.details["code"]) == ("cert.rekey", "refused",
                                                                     code.strip())
    at(monkeypatch, "2030-06-01T00:00:00Z")
    with pytest.raises(EsealError) as exc:
        rekey.rekey(auth, serial, csr, _proof(key, csr), "holder:test")
    assert exc.value.code == "RENEWAL_WINDOW_NOT_OPEN"
    at(monkeypatch, "2030-11-01T00:00:00Z")
    issued = rekey.rekey(auth, serial, csr, _proof(key, csr), "holder:test")
    assert status.lookup(auth, int(serial, 16)).status == "good"  # not before confirmation
    assert rekey.rekey_pending(auth, issued.serial)


def test_an_interrupted_rekey_is_finished_by_running_it_again(
        auth: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    old_serial, old_id = _enrolled(auth, "li")
    at(monkeypatch, "2030-11-01T00:00:00Z")
    # First run "crashed" after the CA certified the new key, before it reached the token.
    with _open("li") as usbkey:
        ts = usbkey.session
        new = generate_keypair(ts, "ec-p256", KEY_LABELS["login"])
        csr_pem = build_csr(ts, new, x509.load_der_x509_certificate(
            row(auth, old_serial).der).subject)
        digest = rekey_proof.rekey_digest(rekey_proof.csr_der(csr_pem))
        proof = token_private_key(ts, old_id).sign_digest(digest)
        issued = rekey.rekey(auth, old_serial, csr_pem, proof, "holder:test")
    with _open("li") as usbkey:
        result = rekey_on_token(usbkey, "login", LocalRekeyCa(auth, "holder:test"))
        assert [k.id for k in list_keys(usbkey.session)] == [new.id]
        assert format(usbkey.certificate("login").serial_number, "x") == issued.serial
    assert (result["new_serial"], result["resumed"]) == (issued.serial, True)
    assert status.lookup(auth, int(old_serial, 16)).reason == "superseded"

    # Second, a year on: the new certificate was installed, then the CA could not be told.
    at(monkeypatch, "2031-11-01T00:00:00Z")
    class Unreachable(LocalRekeyCa):
        def confirm(self, new_serial: str) -> None:
            raise ConnectionError("CA unreachable")

    with _open("li") as usbkey, pytest.raises(ConnectionError):
        rekey_on_token(usbkey, "login", Unreachable(auth, "holder:test"))
    with _open("li") as usbkey:
        installed = format(usbkey.certificate("login").serial_number, "x")
    assert rekey.rekey_pending(auth, installed)
    assert status.lookup(auth, int(issued.serial, 16)).status == "good"
    with _open("li") as usbkey:
        again = rekey_on_token(usbkey, "login", LocalRekeyCa(auth, "holder:test"))
    assert (again["new_serial"], again["resumed"]) == (installed, True)
    assert status.lookup(auth, int(issued.serial, 16)).reason == "superseded"

    # Third, a year on: only the new key was made, the CA never saw it: dropped, then re-keyed.
    at(monkeypatch, "2032-11-01T00:00:00Z")
    with _open("li") as usbkey:
        stray = generate_keypair(usbkey.session, "ec-p256", KEY_LABELS["login"])
    with _open("li") as usbkey:
        third = rekey_on_token(usbkey, "login", LocalRekeyCa(auth, "holder:test"))
        ids = [k.id for k in list_keys(usbkey.session)]
    assert (third["old_serial"], third["resumed"]) == (installed, False)
    assert len(ids) == 1 and stray.id not in ids
    assert status.lookup(auth, int(installed, 16)).reason == "superseded"


def test_cli_token_rekey(auth: Authority, home: Path) -> None:
    old_serial, _ = _enrolled(auth, "zhao")
    when = {"ESEAL_NOW": "2030-11-01T00:00:00Z"}
    done = json.loads(eseal(home, "token", "rekey", "--label", "zhao", "--pin", PIN,
                            "--json", env=when).stdout)
    assert done["old_serial"] == old_serial and not done["resumed"]
    st = json.loads(eseal(home, "token", "status", "--label", "zhao", "--json").stdout)
    assert [c["serial"] for c in st["certificates"]] == [done["new_serial"]]
    assert status.lookup(auth, int(old_serial, 16)).reason == "superseded"
    early = eseal(home, "token", "rekey", "--label", "zhao", "--pin", PIN, code=1,
                  env={"ESEAL_NOW": "2031-01-02T00:00:00Z"})
    assert early.stderr.startswith("error RENEWAL_WINDOW_NOT_OPEN")
    st = json.loads(eseal(home, "token", "status", "--label", "zhao", "--json").stdout)
    assert len(st["keys"]) == 1  # the refused run left no new key behind
