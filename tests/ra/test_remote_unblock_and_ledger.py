"""A scripted year of one enterprise's credentials, against a live service, real USB-Keys
(SO PINs kept by the CA) and the CA's own ledger seal.

Pins down the remote unblock (远程解锁): a locked key becomes usable with a new PIN, the
authorisation replayed is refused, the SO PIN on the token and in the CA's keeping is a new
one, the old SO PIN no longer opens the token, and no user PIN appears in any HTTP body, the
service's log, the database or the audit journal. Then the credential ledger lists the
year's events in order, as CSV that Python's csv module reads and as a PDF that ``eseal
verify`` accepts.
"""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from changekit import Site, live_site

from eseal import clock
from eseal.errors import EsealError
from eseal.holder.client import EsealClient
from eseal.holder.unblock import finish_unblock, request_unblock
from eseal.ra.rename import rename_enterprise
from eseal.ra.renewal import renew_one
from eseal.ra.so_pins import decrypt_so_pin, token_record
from eseal.ra.staff import provision_staff_token
from eseal.token.client import UsbKey
from eseal.token.pin import PinPolicy
from tests.conftest import USCC_A

PIN = {"zhang": "4913-7720", "wang": "6624-0195"}
NEW_PIN = "8051-3926"
LATER_PIN = "3719-5084"
REP_PIN = "2604-9371"
OPERATOR = ("91350100M000100Y43", "厦门电子认证服务有限公司")


class Recorder(httpx.HTTPTransport):
    """A real transport that keeps every request and response body it carried."""

    def __init__(self, seen: list[bytes]) -> None:
        super().__init__()
        self.seen = seen

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request.url.raw_path + b" " + request.read())
        response = super().handle_request(request)
        self.seen.append(response.read())
        return response


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with live_site(tmp_path_factory.mktemp("year"), holders=[]) as s:
        for label, role, holder in (("zhang", "legal_rep", "张三"), ("wang", "agent", "王五")):
            done = s.cli("token", "init", "--label", label, "--pin", PIN[label])
            assert done.returncode == 0, done.stderr
            done = s.cli("token", "enroll", "--label", label, "--pin", PIN[label],
                         "--enterprise", USCC_A, "--role", role, "--holder", holder)
            assert done.returncode == 0, done.stderr
        yield s


def _kept_so_pin(site: Site, label: str) -> str:
    with site.authority() as auth:
        record = token_record(auth, label)
        assert record is not None and record.so_pin_encrypted is not None
        return decrypt_so_pin(auth, label, bytes(record.so_pin_encrypted))


def _lock(site: Site, label: str) -> None:
    policy = PinPolicy(site.settings.pin_max_tries, site.settings.so_pin_max_tries)
    for _ in range(site.settings.pin_max_tries):
        with pytest.raises(EsealError):
            UsbKey.open(label, "0000-0000-x", policy=policy).close()
    assert policy.state(label).locked


def test_a_year_of_credentials_remote_unblock_and_the_sealed_ledger(
        site: Site, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bytes] = []

    def client() -> EsealClient:
        return EsealClient(site.url, transport=Recorder(seen))

    # --- the agent's key locks; the legal representative approves a remote unblock ---------
    _lock(site, "wang")
    so_before = _kept_so_pin(site, "wang")
    with client() as holder:
        asked = request_unblock(holder, "wang")
        with pytest.raises(EsealError) as twice:
            request_unblock(holder, "wang")
        assert twice.value.code == "UNBLOCK_ALREADY_REQUESTED"
    with site.authority() as auth:
        officer = provision_staff_token(auth, label="officer1", name="周官", actor="officer:test")
    with client() as desk:  # an agent's key is the legal representative's to approve
        desk.login_with_token("officer1", officer.pin)
        with pytest.raises(EsealError) as not_officers:
            desk.request("POST", f"/unblock-requests/{asked['id']}/approve")
        assert (not_officers.value.code, not_officers.value.field) == (
            "UNBLOCK_APPROVER_FORBIDDEN", "role")
    with client() as agent_side, client() as rep:
        rep.login_with_token("zhang", PIN["zhang"])
        listed = rep.request("GET", f"/enterprises/{USCC_A}/unblock-requests")
        assert [r["id"] for r in listed] == [asked["id"]]
        with pytest.raises(EsealError) as no_session:
            agent_side.request("POST", f"/unblock-requests/{asked['id']}/approve")
        assert no_session.value.code == "SESSION_REQUIRED"
        approval = rep.request("POST", f"/unblock-requests/{asked['id']}/approve")
    authorisation = approval["authorisation"]
    with client() as holder:
        with pytest.raises(EsealError) as weak:  # a bad new PIN spends nothing
            finish_unblock(holder, request_id=asked["id"], authorisation=authorisation,
                           label="wang", new_pin="111111")
        assert weak.value.field == "new_pin"
        done = finish_unblock(holder, request_id=asked["id"], authorisation=authorisation,
                              label="wang", new_pin=NEW_PIN)
        assert done["status"] == "done"
        with pytest.raises(EsealError) as replay:
            holder.request("POST", f"/unblock-requests/{asked['id']}/redeem",
                           json={"authorisation": authorisation})
        assert replay.value.code == "UNBLOCK_AUTHORISATION_USED"
        with pytest.raises(EsealError) as forged:
            holder.request("POST", f"/unblock-requests/{asked['id']}/complete",
                           json={"authorisation": "x" + authorisation[1:]})
        assert forged.value.code == "UNBLOCK_AUTHORISATION_INVALID"

    # the key works with its new PIN, not the old; the SO PIN is a new one everywhere
    with client() as agent:
        agent.login_with_token("wang", NEW_PIN)
        assert agent.request("GET", "/auth/me")["name"] == "王五"
        agent.logout()
    with pytest.raises(EsealError):
        UsbKey.open("wang", PIN["wang"]).close()
    so_after = _kept_so_pin(site, "wang")
    assert so_after != so_before
    policy = PinPolicy()
    with pytest.raises(EsealError) as old_so:
        policy.login_so("wang", so_before)
    assert old_so.value.code == "SO_PIN_INCORRECT"
    policy.login_so("wang", so_after).close()

    # the legal representative's own key: the legal representative cannot approve it
    _lock(site, "zhang")
    with client() as holder:
        own = request_unblock(holder, "zhang")
    with client() as agent:
        agent.login_with_token("wang", NEW_PIN)
        with pytest.raises(EsealError) as agent_tries:
            agent.request("POST", f"/unblock-requests/{own['id']}/approve")
        assert agent_tries.value.code == "ROLE_FORBIDDEN"
    with client() as desk:
        desk.login_with_token("officer1", officer.pin)
        own_approval = desk.request("POST", f"/unblock-requests/{own['id']}/approve")
    with client() as holder:
        finish_unblock(holder, request_id=own["id"], authorisation=own_approval["authorisation"],
                       label="zhang", new_pin=REP_PIN)
    UsbKey.open("zhang", REP_PIN).close()

    # --- a PIN change at the console, a rename, a new legal representative, a renewal ------
    done = site.cli("token", "change-pin", "--label", "wang", "--pin", NEW_PIN, "--new-pin",
                    LATER_PIN)
    assert done.returncode == 0, done.stderr
    with site.authority() as auth:
        rename_enterprise(auth, USCC_A, "𠮷野家（厦门）餐饮集团有限公司", actor="officer:test")
    done = site.cli("enterprise", "change-legal-rep", "--uscc", USCC_A, "--legal-rep", "钱七")
    assert done.returncode == 0, done.stderr
    agent_login = next(c for c in site.certificates(holder="王五") if c.status == "good")
    monkeypatch.setenv("ESEAL_NOW", (clock.now() + timedelta(days=300)).isoformat())
    with site.authority() as auth:
        renewed = renew_one(auth, agent_login.serial, actor="officer:test")
    monkeypatch.delenv("ESEAL_NOW")

    # --- the ledger: CSV through Python's csv module, in order -----------------------------
    done = site.cli("enterprise", "ledger", "--uscc", USCC_A, "--csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert [int(r["seq"]) for r in rows] == list(range(1, len(rows) + 1))
    assert [int(r["audit_id"]) for r in rows] == sorted(int(r["audit_id"]) for r in rows)
    story = [(r["event"], r["holder"], r["reason"]) for r in rows]
    script = [("enterprise registered", "", ""),
              ("USB-Key enrolled", "张三", ""), ("USB-Key enrolled", "王五", ""),
              ("USB-Key locked: remote unblock asked", "王五", ""),
              ("remote unblock approved", "王五", ""),
              ("USB-Key unblocked remotely: new PIN set, SO PIN rotated", "王五", ""),
              ("USB-Key locked: remote unblock asked", "张三", ""),
              ("remote unblock approved", "张三", ""),
              ("USB-Key unblocked remotely: new PIN set, SO PIN rotated", "张三", ""),
              ("PIN changed", "王五", ""),
              ("enterprise renamed", "", ""),
              ("certificate revoked", "张三", "superseded"),
              # one transaction: its revocations are recorded just before the change itself
              ("certificate revoked", "张三", "affiliationChanged"),
              ("legal representative changed", "", ""),
              ("certificate renewed", "王五", "")]
    positions = [story.index(step) if step in story else -1 for step in script]
    assert -1 not in positions, [s for s, p in zip(script, positions, strict=True) if p < 0]
    assert positions == sorted(positions), story
    issued = [r for r in rows if r["event"] == "certificate issued"]
    assert {r["profile"] for r in issued} == {"login", "seal"}
    assert any(r["certificate"] == renewed.serial or renewed.serial in r["detail"]  # type: ignore[union-attr]
               for r in rows if r["event"] == "certificate renewed")

    # --- the ledger as a PDF sealed by the CA itself, accepted by eseal verify -------------
    pdf = site.work / "ledger.pdf"
    done = site.cli("enterprise", "ledger", "--uscc", USCC_A, "--pdf", str(pdf),
                    "--operator-uscc", OPERATOR[0], "--operator-name", OPERATOR[1])
    assert done.returncode == 0, done.stderr
    root = site.pem("root.pem", site.root)
    verified = site.cli("verify", str(pdf), "--trust", str(root), "--json")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert OPERATOR[1] in verified.stdout

    # --- no user PIN anywhere: HTTP bodies, the service's log, the database, the journal ----
    site.server.stop()
    server_log = site.server.process.stdout.read() if site.server.process.stdout else b""
    db = sqlite3.connect(site.home / "eseal.db")
    dump = "\n".join(db.iterdump()).encode("utf-8", "surrogateescape")
    db.close()
    journal = b"".join(p.read_bytes() for p in (site.home / "audit").rglob("*") if p.is_file())
    assert len(seen) > 20 and dump and journal  # the service logs only problems: may be empty
    for pin in (PIN["wang"], PIN["zhang"], NEW_PIN, LATER_PIN, REP_PIN, officer.pin):
        for where, blob in (("http", b"\n".join(seen)), ("log", server_log), ("db", dump),
                            ("journal", journal)):
            assert pin.encode() not in blob, f"a user PIN in the {where}"
