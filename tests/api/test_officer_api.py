"""The officer API over a real server, from a home made by ``eseal init`` (whose first officer
USB-Key and PIN it provisions): enterprises, enrollment codes redeemed from the holder's
token, issuance, renewal (one and in batches, on a server whose clock is 300 days on),
freeze/unfreeze/revoke, revoke-all, PIN unblock with the kept SO PIN; every call audited
with the officer who made it, and an auditor enrolled with a staff code verifies the log."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pgkit
import pytest

from eseal.holder.client import EsealClient, ServiceError
from eseal.settings import load_settings
from tests.conftest import NAME_A, NAME_B, USCC_A, USCC_B, LiveServer, free_port, make_csr
from tests.sitekit import query_home

PIN = "4913-7720"
NEW_PIN = "5820-1193"
SO_PIN = "so-8812-4401"


def eseal(home: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test")
    env.pop("SOFTHSM2_CONF", None)
    env.pop("ESEAL_NOW", None)
    pgkit.prepare_home(home, args)
    return subprocess.run([sys.executable, "-m", "eseal", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


@dataclass
class Site:
    home: Path
    url: str
    server: LiveServer
    officer_pin: str
    init_output: str
    later: LiveServer | None = None

    def client(self, url: str | None = None, address: str = "10.2.0.1") -> EsealClient:
        return EsealClient(url or self.url, origin=self.url,
                           headers={"X-Forwarded-For": address})

    def officer(self, url: str | None = None) -> EsealClient:
        client = self.client(url, address="10.2.0.250")
        client.login_with_token("eseal-officer", self.officer_pin)
        return client

    def query(self, sql: str, **params: Any) -> list[Any]:
        return query_home(self.home, sql, **params)

    def provision(self, label: str, pin: str = PIN) -> None:
        from eseal.token.usbkey import provision

        provision(self.home / "softhsm2.conf", label, pin, SO_PIN)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    from eseal.store import close_all
    from eseal.token import configure

    home = tmp_path_factory.mktemp("officer") / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    done = eseal(home, "init", "--home", str(home), "--base-url", url,
                 "--officer-name", "周主任")
    assert done.returncode == 0, done.stderr
    pin = done.stdout.strip().splitlines()[-1].strip()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESEAL_HOME", str(home))
        mp.setenv("ESEAL_ENV", "test")
        mp.delenv("ESEAL_NOW", raising=False)
        mp.setenv("SOFTHSM2_CONF", str(home / "softhsm2.conf"))
        settings = load_settings(home)
        configure(settings.pkcs11_module, settings.softhsm_conf_path)
        server = LiveServer(home, port)
        site = Site(home=home, url=url, server=server, officer_pin=pin,
                    init_output=done.stdout)
        try:
            yield site
        finally:
            server.stop()
            if site.later is not None:
                site.later.stop()
            close_all()


def _actors(site: Site, action: str) -> list[str]:
    return [r.actor for r in site.query("SELECT actor FROM audit_events WHERE action = :a "
                                        "ORDER BY id", a=action)]


def _officer_actor(site: Site) -> str:
    account = site.query("SELECT id FROM accounts WHERE role = 'officer'")[0].id
    return f"officer:周主任#{account}"


# --- eseal init and the first officer ----------------------------------------------------------
def test_eseal_init_provisions_the_first_officer_key_and_shows_its_pin_once(site: Site) -> None:
    assert re.fullmatch(r"[0-9a-z]{12}", site.officer_pin)
    assert "first officer:   周主任, USB-Key 'eseal-officer'" in site.init_output
    officer = site.officer()
    me = officer.me()
    assert (me["role"], me["name"], me["enterprise"]) == ("officer", "周主任", None)
    profile = site.query("SELECT profile, token_label FROM certificates WHERE serial = :s",
                         s=me["certificate_serial"])[0]
    assert (profile.profile, profile.token_label) == ("officer", "eseal-officer")
    # the PIN is shown once and kept nowhere in the home
    for path in site.home.rglob("*"):
        if path.is_file() and "tokens" not in path.parts:
            assert site.officer_pin.encode() not in path.read_bytes(), path
    assert _actors(site, "staff.provision")


# --- enterprises, codes, issuance --------------------------------------------------------------
def test_the_officer_registers_an_enterprise_and_enrolls_its_legal_representative(
        site: Site) -> None:
    officer = site.officer()
    made = officer.request("POST", "/officer/enterprises", json={
        "uscc": USCC_A, "name": NAME_A, "legal_rep": "张三", "contact_email": "a@a.example"})
    assert (made["uscc"], made["name"]) == (USCC_A, NAME_A)
    for body, code in (({"uscc": USCC_A, "name": NAME_A, "legal_rep": "张三"}, "ENTERPRISE_EXISTS"),
                       ({"uscc": USCC_A[:-1] + "0", "name": NAME_A, "legal_rep": "张三"},
                        "USCC_CHECKSUM")):
        with pytest.raises(ServiceError) as refused:
            officer.request("POST", "/officer/enterprises", json=body)
        assert refused.value.code == code
    assert [e["uscc"] for e in officer.request("GET", "/officer/enterprises")] == [USCC_A]
    code = officer.request("POST", "/officer/enrollment-codes",
                           json={"role": "legal_rep", "holder": "张三", "uscc": USCC_A})
    site.provision("zhang")
    enrolled = site.client().enroll_token(code=code["code"], label="zhang", pin=PIN)
    assert set(enrolled["certificates"]) == {"login", "seal"}
    rep = site.client(address="10.2.1.1")
    rep.login_with_token("zhang", PIN)
    assert rep.me()["role"] == "legal_rep"
    actor = _officer_actor(site)
    assert _actors(site, "enterprise.register")[-1] == actor
    assert actor in _actors(site, "enroll_code.create")
    assert _actors(site, "officer.read")[-1] == actor  # reads are audited too


def test_the_officer_issues_from_a_csr_and_lists_certificates(site: Site) -> None:
    officer = site.officer()
    _ensure_enterprise(officer, USCC_B, NAME_B, "李四")
    issued = officer.request("POST", "/officer/certificates", json={
        "csr": make_csr(common_name="李四").decode(), "uscc": USCC_B, "profile": "seal",
        "holder": "李四"})
    assert issued["pem"].startswith("-----BEGIN CERTIFICATE")
    listed = officer.request("GET", "/officer/certificates", params={"uscc": USCC_B})
    assert issued["serial"] in [c["serial"] for c in listed]
    assert officer.request("GET", f"/officer/certificates/{issued['serial']}")["enterprise"] \
        == USCC_B
    with pytest.raises(ServiceError) as bad:
        officer.request("POST", "/officer/certificates", json={
            "csr": "not a csr", "uscc": USCC_B, "profile": "login", "holder": "李四"})
    assert bad.value.status == 422
    assert _actors(site, "cert.issue")[-1] == _officer_actor(site)


def _ensure_enterprise(officer: EsealClient, uscc: str, name: str, rep: str) -> None:
    if uscc not in [e["uscc"] for e in officer.request("GET", "/officer/enterprises")]:
        officer.request("POST", "/officer/enterprises",
                        json={"uscc": uscc, "name": name, "legal_rep": rep})


def _issue(officer: EsealClient, uscc: str, holder: str, profile: str = "login") -> str:
    return str(officer.request("POST", "/officer/certificates", json={
        "csr": make_csr(common_name=holder).decode(), "uscc": uscc, "profile": profile,
        "holder": holder})["serial"])


# --- lifecycle ---------------------------------------------------------------------------------
def test_renewal_one_by_one_and_in_a_batch_on_a_server_300_days_on(site: Site) -> None:
    officer = site.officer()
    _ensure_enterprise(officer, USCC_B, NAME_B, "李四")
    one, two, three = (_issue(officer, USCC_B, name) for name in ("甲一", "乙二", "丙三"))
    with pytest.raises(ServiceError) as early:
        officer.request("POST", f"/officer/certificates/{one}/renew")
    assert early.value.code == "RENEWAL_WINDOW_NOT_OPEN"
    if site.later is None:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("ESEAL_NOW", (datetime.now(UTC) + timedelta(days=300)).isoformat())
            site.later = LiveServer(site.home, free_port())
    later = site.officer(site.later.url)
    renewed = later.request("POST", f"/officer/certificates/{one}/renew")["renewed"]
    assert renewed["serial"] == one and renewed["carried_over"] is True
    batch = later.request("POST", "/officer/renewals",
                          json={"serials": [one, two], "expiring_within_days": 90})
    assert {r["serial"] for r in batch["renewed"]} >= {two, three}
    assert [s["serial"] for s in batch["skipped"]] == [one]
    again = later.request("POST", "/officer/renewals", json={"expiring_within_days": 90})
    assert again["renewed"] == []
    assert set(_actors(site, "cert.renew")) == {_officer_actor(site)}


def test_freeze_unfreeze_and_revoke_over_http_are_audited_with_the_officer(site: Site) -> None:
    officer = site.officer()
    _ensure_enterprise(officer, USCC_B, NAME_B, "李四")
    serial = _issue(officer, USCC_B, "丁四")
    assert officer.request("POST", f"/officer/certificates/{serial}/freeze")["status"] == "hold"
    with pytest.raises(ServiceError) as twice:
        officer.request("POST", f"/officer/certificates/{serial}/freeze")
    assert twice.value.code == "CERT_ALREADY_FROZEN"
    assert officer.request("POST", f"/officer/certificates/{serial}/unfreeze")["status"] == "good"
    revoked = officer.request("POST", f"/officer/certificates/{serial}/revoke",
                              json={"reason": "keyCompromise"})
    assert (revoked["status"], revoked["reason"]) == ("revoked", "keyCompromise")
    with pytest.raises(ServiceError) as hold:
        officer.request("POST", f"/officer/certificates/{serial}/revoke",
                        json={"reason": "certificateHold"})
    assert hold.value.code == "REASON_IS_FREEZE"
    actor = _officer_actor(site)
    rows = site.query("SELECT action, outcome, actor FROM audit_events WHERE target = :s "
                      "ORDER BY id", s=serial)
    assert [(r.action, r.outcome) for r in rows if r.action != "cert.issue"] == [
        ("cert.freeze", "ok"), ("cert.freeze", "refused"), ("cert.unfreeze", "ok"),
        ("cert.revoke", "ok"), ("cert.revoke", "refused")]
    assert {r.actor for r in rows} == {actor}


def test_revoke_all_ends_the_enterprise_sessions(site: Site) -> None:
    officer = site.officer()
    from tests.pkikit import uscc_with_check

    uscc, name = uscc_with_check("91440300MA5F0A1B2"), "深圳测试有限公司"
    _ensure_enterprise(officer, uscc, name, "黄五")
    code = officer.request("POST", "/officer/enrollment-codes",
                           json={"role": "agent", "holder": "黄小五", "uscc": uscc})
    site.provision("huang")
    site.client().enroll_token(code=code["code"], label="huang", pin=PIN)
    agent = site.client(address="10.2.3.1")
    agent.login_with_token("huang", PIN)
    assert agent.me()["enterprise"] == uscc
    done = officer.request("POST", f"/officer/enterprises/{uscc}/revoke-all",
                           json={"reason": "cessationOfOperation"})
    assert len(done["revoked"]) == 1
    with pytest.raises(ServiceError) as dead:
        agent.me()
    assert dead.value.code == "SESSION_REVOKED"
    officer.request("POST", f"/officer/enterprises/{uscc}/deregister")
    assert officer.request("GET", f"/officer/enterprises/{uscc}")["status"] == "deregistered"


def test_the_officer_unblocks_a_locked_usb_key_with_the_kept_so_pin(site: Site) -> None:
    from eseal.errors import TokenError
    from eseal.token.client import UsbKey

    done = eseal(site.home, "token", "init", "--label", "locked-key", "--pin-stdin",
                 stdin=PIN + "\n")
    assert done.returncode == 0, done.stderr
    for _ in range(6):
        with pytest.raises(TokenError):
            UsbKey.open("locked-key", "9999-0000").close()
    with pytest.raises(TokenError) as locked:
        UsbKey.open("locked-key", PIN).close()
    assert locked.value.code == "PIN_LOCKED"
    officer = site.officer()
    with pytest.raises(ServiceError) as weak:
        officer.request("POST", "/officer/tokens/locked-key/unblock", json={"new_pin": "123456"})
    assert weak.value.code == "PIN_WEAK"
    officer.request("POST", "/officer/tokens/locked-key/unblock", json={"new_pin": NEW_PIN})
    # a new process (this one's SoftHSM keeps its view of the token): the new PIN works
    status = json.loads(eseal(site.home, "token", "status", "--label", "locked-key",
                              "--json").stdout)
    assert (status["locked"], status["tries_left"]) == (False, 6)
    changed = eseal(site.home, "token", "change-pin", "--label", "locked-key", "--pin", NEW_PIN,
                    "--new-pin", PIN)
    assert changed.returncode == 0, changed.stderr
    assert _actors(site, "token.unblock")[-1] == _officer_actor(site)
    dump = json.dumps([list(map(str, r)) for r in site.query("SELECT * FROM audit_events")])
    assert NEW_PIN not in dump


def test_an_auditor_enrolled_with_a_staff_code_reads_and_verifies_the_log(site: Site) -> None:
    officer = site.officer()
    code = officer.request("POST", "/officer/enrollment-codes",
                           json={"role": "auditor", "holder": "审计员赵"})
    site.provision("auditor-key")
    enrolled = site.client().enroll_token(code=code["code"], label="auditor-key", pin=PIN)
    assert set(enrolled["certificates"]) == {"login"}
    auditor = site.client(address="10.2.4.1")
    auditor.login_with_token("auditor-key", PIN)
    assert auditor.me()["role"] == "auditor"
    report = auditor.request("GET", "/audit/verify")
    # every event on record, however many earlier tests on this worker's site added
    on_record = site.query("SELECT count(*) AS n FROM audit_events")[0].n
    assert report["ok"] is True and report["events"] == on_record >= 10
    events = auditor.request("GET", "/audit/events", params={"limit": 1000,
                                                             "action": "enroll_code.create"})
    assert {e["actor"] for e in events} == {_officer_actor(site)}
    with pytest.raises(ServiceError) as no:
        auditor.request("POST", "/officer/enterprises",
                        json={"uscc": USCC_B, "name": NAME_B, "legal_rep": "李四"})
    assert no.value.code == "ROLE_FORBIDDEN"


def test_unknown_resources_are_clean_404s_and_bad_ids_clean_422s(site: Site) -> None:
    officer = site.officer()
    for method, path, code in (("GET", "/officer/certificates/abc123", "CERT_NOT_FOUND"),
                               ("GET", "/officer/certificates/xyz", "SERIAL_INVALID"),
                               ("POST", "/officer/accounts/99999/unlock", "ACCOUNT_NOT_FOUND"),
                               ("GET", "/officer/enterprises/91110000802100433X",
                                "ENTERPRISE_NOT_REGISTERED")):
        response = httpx.request(method, f"{site.url}{path}",
                                 headers={"Authorization": f"Bearer {officer.session}"})
        assert response.status_code in (404, 422) and response.json()["code"] == code, \
            response.text
