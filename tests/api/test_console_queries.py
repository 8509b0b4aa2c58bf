"""The officer console's JSON over a real ``eseal serve`` (routes_console, routes_audit): the
certificate search by each filter, a certificate's history and freeze windows after freeze,
unfreeze, revoke and renew, the PEM download, the renewal preview (which changes nothing)
and chunked batch renewals that renew each certificate once, the status health check, the
audit search, coded 422s naming each bad parameter, and who may do what."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509

from eseal.holder.client import EsealClient
from tests.conftest import NAME_A, USCC_A, USCC_B, make_csr
from tests.worldkit import ENTERPRISE_HOLDERS, World, build_world

LATER = timedelta(days=300)  # inside the renewal window of certificates issued now


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("console"), dict(ENTERPRISE_HOLDERS))


@pytest.fixture(scope="module")
def officer(world: World) -> EsealClient:
    return world.officer()


def issue(officer: EsealClient, uscc: str, holder: str, profile: str = "login") -> str:
    done = officer.request("POST", "/officer/certificates", json={
        "csr": make_csr(common_name=holder).decode(), "uscc": uscc, "profile": profile,
        "holder": holder})
    return str(done["serial"])


def get(world: World, client: EsealClient | None, path: str, **params: Any) -> httpx.Response:
    headers = {"X-Forwarded-For": "10.70.0.1"}
    if client is not None and client.session:
        headers["Authorization"] = f"Bearer {client.session}"
    return httpx.get(f"{world.server.url}{path}", params=params, headers=headers, timeout=60)


def search(world: World, client: EsealClient, **params: Any) -> dict[str, Any]:
    answer = get(world, client, "/officer/certificates/search", **params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def audit_head(world: World) -> tuple[int, str]:
    row = world.query("SELECT id, hash FROM audit_events ORDER BY id DESC LIMIT 1")[0]
    return int(row.id), str(row.hash)


def counts(world: World) -> dict[str, int]:
    return {t: int(world.query(f"SELECT count(*) AS n FROM {t}")[0].n)
            for t in ("certificates", "audit_events", "freeze_windows", "crls")}


# --- who may ---------------------------------------------------------------------------------
READS = ["/officer/certificates/search", "/status/health", "/audit/events"]


@pytest.mark.parametrize("label", ["a-agent", "a-rep"])
def test_enterprise_staff_are_refused_every_console_query(world: World, label: str) -> None:
    me = world.login(label, address="10.70.1.1")
    serial = world.holders[label].serial
    for path in [*READS, f"/officer/certificates/{serial}/history",
                 f"/officer/certificates/{serial}/pem"]:
        answer = get(world, me, path)
        assert answer.status_code == 403 and answer.json()["code"] == "ROLE_FORBIDDEN", path
    preview = httpx.post(f"{world.server.url}/officer/renewals/preview",
                         json={"serials": [serial]},
                         headers={"Authorization": f"Bearer {me.session}"}, timeout=60)
    assert preview.status_code == 403 and preview.json()["code"] == "ROLE_FORBIDDEN"


def test_an_auditor_reads_search_history_and_health_but_may_not_preview(world: World) -> None:
    auditor = world.login("auditor", address="10.70.2.1")
    serial = world.holders["a-agent"].serial
    assert search(world, auditor, serial=serial)["rows"][0]["serial"] == serial
    assert get(world, auditor, f"/officer/certificates/{serial}/history").status_code == 200
    assert get(world, auditor, "/status/health").status_code == 200
    preview = httpx.post(f"{world.server.url}/officer/renewals/preview",
                         json={"serials": [serial]},
                         headers={"Authorization": f"Bearer {auditor.session}"}, timeout=60)
    assert preview.status_code == 403 and preview.json()["code"] == "ROLE_FORBIDDEN"


# --- search ----------------------------------------------------------------------------------
def test_search_by_each_filter_over_http(world: World, officer: EsealClient) -> None:
    a_agent, b_agent = world.holders["a-agent"].serial, world.holders["b-agent"].serial
    by_code = search(world, officer, uscc=USCC_A)
    assert by_code["rows"] and {r["enterprise"] for r in by_code["rows"]} == {USCC_A}
    assert {r["enterprise_name"] for r in by_code["rows"]} == {NAME_A}
    assert by_code["total"] == len(by_code["rows"]) and by_code["total_exact"]
    assert {r["enterprise"] for r in search(world, officer, uscc=USCC_A[:8])["rows"]} == {USCC_A}
    assert {r["enterprise"] for r in search(world, officer, name="𠮷")["rows"]} == {USCC_A}
    assert search(world, officer, name="吉")["rows"] == []  # 𠮷 is not 吉
    assert a_agent in {r["serial"] for r in search(world, officer, holder="王五")["rows"]}
    got = search(world, officer, serial=b_agent[:6].upper())["rows"]
    assert b_agent in {r["serial"] for r in got}
    assert all(r["serial"].startswith(b_agent[:6]) for r in got)
    seals = search(world, officer, profile="seal", uscc=USCC_B)["rows"]
    assert seals and {r["profile"] for r in seals} == {"seal"}
    assert search(world, officer, status="expired")["rows"] == []
    soon = search(world, officer, expiring_within=400, limit=2)
    assert len(soon["rows"]) == 2 and soon["next_cursor"] and soon["sort"] == "expiry"
    rest = search(world, officer, expiring_within=400, limit=200, cursor=soon["next_cursor"])
    assert not {r["serial"] for r in soon["rows"]} & {r["serial"] for r in rest["rows"]}
    assert len(soon["rows"]) + len(rest["rows"]) == soon["total"]


@pytest.mark.parametrize(("params", "code", "field"), [
    ({"serial": "xyz"}, "SERIAL_INVALID", "serial"),
    ({"uscc": "9135I"}, "USCC_CHARACTER", "uscc"),
    ({"status": "valid"}, "SEARCH_STATUS_UNKNOWN", "status"),
    ({"profile": "root"}, "SEARCH_PROFILE_UNKNOWN", "profile"),
    ({"sort": "holder"}, "SEARCH_SORT_UNKNOWN", "sort"),
    ({"expiring_within": "-1"}, "VALUE_OUT_OF_RANGE", "expiring_within"),
    ({"expiring_within": "5000"}, "VALUE_OUT_OF_RANGE", "expiring_within"),
    ({"expiring_within": "ten"}, "REQUEST_INVALID", "expiring_within"),
    ({"limit": "201"}, "VALUE_OUT_OF_RANGE", "limit"),
    ({"offset": "10001"}, "VALUE_OUT_OF_RANGE", "offset"),
    ({"cursor": "bm90IGEgY3Vyc29y"}, "SEARCH_CURSOR_INVALID", "cursor"),
    ({"name": "x\u0000y"}, "CONTROL_CHARACTER", "name"),
])
def test_a_bad_search_parameter_is_a_422_naming_it(world: World, officer: EsealClient,
                                                   params: dict[str, str], code: str,
                                                   field: str) -> None:
    answer = get(world, officer, "/officer/certificates/search", **params)
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["code"] == code and body["field"] == field and body["message_zh"]


# --- history and PEM -------------------------------------------------------------------------
def test_history_shows_freezes_unfreeze_and_revocation_with_their_windows(
        world: World, officer: EsealClient) -> None:
    serial = issue(officer, USCC_B, "历史甲")
    for step in ("freeze", "unfreeze", "freeze"):
        officer.request("POST", f"/officer/certificates/{serial}/{step}")
    officer.request("POST", f"/officer/certificates/{serial}/revoke",
                    json={"reason": "keyCompromise"})
    history = officer.request("GET", f"/officer/certificates/{serial}/history")
    kinds = [e["kind"] for e in history["events"]]
    assert kinds == ["issued", "frozen", "unfrozen", "frozen", "revoked"], history["events"]
    assert history["events"][-1]["reason"] == "keyCompromise"
    assert all(e["actor"].startswith("officer:周主任") for e in history["events"])
    windows = history["freeze_windows"]
    assert len(windows) == 2 and not any(w["open"] for w in windows)
    assert windows[0]["from"] <= windows[0]["to"] <= windows[1]["from"] <= windows[1]["to"]
    assert history["certificate"]["state"] == "revoked"
    assert history["certificate"]["enterprise"] == USCC_B
    frozen = issue(officer, USCC_B, "历史乙")
    officer.request("POST", f"/officer/certificates/{frozen}/freeze")
    open_window = officer.request("GET", f"/officer/certificates/{frozen}/history")
    assert open_window["freeze_windows"][0]["open"] is True
    assert open_window["freeze_windows"][0]["to"] is None


def test_history_of_unknown_or_malformed_serials(world: World, officer: EsealClient) -> None:
    unknown = get(world, officer, "/officer/certificates/abc123/history")
    assert unknown.status_code == 404 and unknown.json()["code"] == "CERT_NOT_FOUND"
    bad = get(world, officer, "/officer/certificates/xyz/history")
    assert bad.status_code == 422 and bad.json()["field"] == "serial"
    assert get(world, officer, "/officer/certificates/xyz/pem").status_code == 422


def test_pem_download_is_an_attachment_of_the_recorded_certificate(
        world: World, officer: EsealClient) -> None:
    serial = world.holders["a-rep"].serial
    answer = get(world, officer, f"/officer/certificates/{serial.upper()}/pem")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("application/x-pem-file")
    assert answer.headers["content-disposition"] == f'attachment; filename="{serial}.pem"'
    cert = x509.load_pem_x509_certificate(answer.content)
    assert format(cert.serial_number, "x") == serial
    der = world.query("SELECT der FROM certificates WHERE serial = :s", s=serial)[0].der
    from cryptography.hazmat.primitives.serialization import Encoding

    assert cert.public_bytes(Encoding.DER) == bytes(der)


# --- renewals: preview and chunks ------------------------------------------------------------
def test_preview_changes_nothing_and_chunked_renewals_renew_each_certificate_once(
        world: World, officer: EsealClient) -> None:
    batch = [issue(officer, USCC_A, f"续期{i}") for i in range(22)]
    revoked = issue(officer, USCC_A, "已吊销")
    officer.request("POST", f"/officer/certificates/{revoked}/revoke",
                    json={"reason": "superseded"})
    later = world.start("later", now=datetime.now(UTC) + LATER)
    boss = world.login("officer", url=later.url, address="10.70.3.1")
    asked = [*batch, revoked, "zz-not-hex", batch[0].upper()]

    before, head = counts(world), audit_head(world)
    preview = boss.request("POST", "/officer/renewals/preview", json={"serials": asked})
    assert counts(world) == before and audit_head(world) == head  # nothing changed
    assert [r["serial"] for r in preview["renew"]] == batch  # the duplicate counted once
    assert all(r["carried_over"] and r["new_not_after"] > r["not_after"]
               for r in preview["renew"])
    refused = {r["serial"]: r["code"] for r in preview["refused"]}
    assert refused == {revoked: "CERT_ALREADY_REVOKED", "zz-not-hex": "SERIAL_INVALID"}
    assert preview["counts"] == {"renew": 22, "skipped": 0, "refused": 2}

    first = boss.request("POST", "/officer/renewals", json={"serials": batch[:20]})
    # the second chunk repeats three of the first (a page retrying after a lost answer)
    second = boss.request("POST", "/officer/renewals", json={"serials": batch[17:]})
    assert [r["serial"] for r in first["renewed"]] == batch[:20]
    assert [r["serial"] for r in second["renewed"]] == batch[20:]
    assert [s["serial"] for s in second["skipped"]] == batch[17:20]
    new = {r["serial"]: r["new_serial"] for r in first["renewed"] + second["renewed"]}
    # renewal_decision's preview of what was just renewed: skipped, naming the successor
    again = boss.request("POST", "/officer/renewals/preview", json={"serials": batch})
    assert again["renew"] == [] and {s["serial"] for s in again["skipped"]} == set(batch)
    for serial in batch:
        rows = world.query("SELECT serial FROM certificates WHERE renewed_from = :s", s=serial)
        assert [r.serial for r in rows] == [new[serial]]  # exactly one successor each

    # the renewed certificate's history names both ends
    old = boss.request("GET", f"/officer/certificates/{batch[0]}/history")
    assert old["events"][-1]["kind"] == "renewed_to"
    assert old["events"][-1]["new_serial"] == new[batch[0]]
    successor = boss.request("GET", f"/officer/certificates/{new[batch[0]]}/history")
    assert successor["events"][0]["kind"] == "renewed_from"
    assert successor["events"][0]["from"] == batch[0]
    assert successor["certificate"]["renewed_from"] == batch[0]


def test_a_preview_with_nothing_to_renew_is_refused_naming_the_field(
        world: World, officer: EsealClient) -> None:
    answer = httpx.post(f"{world.server.url}/officer/renewals/preview", json={"serials": []},
                        headers={"Authorization": f"Bearer {officer.session}"}, timeout=60)
    assert answer.status_code == 422 and answer.json()["code"] == "NOTHING_TO_RENEW"
    assert answer.json()["field"] == "serials"


# --- status health ---------------------------------------------------------------------------
def test_status_health_asks_ocsp_and_the_tsa_for_real(world: World,
                                                      officer: EsealClient) -> None:
    for role in ("issuing", "root"):  # published on demand, as relying parties fetch them
        assert httpx.get(f"{world.server.url}/crl/{role}.crl", timeout=60).status_code == 200
    before = int(world.query("SELECT count(*) AS n FROM audit_events")[0].n)
    health = officer.request("GET", "/status/health")
    assert health["status"] in ("ok", "warn"), health
    assert health["crl"]["crls"]["issuing"]["status"] == "ok"
    assert health["crl"]["crls"]["issuing"]["seconds_to_next_update"] > 0
    assert health["ocsp"]["status"] == "ok"
    assert health["ocsp"]["certificate_status"] in ("good", "revoked")
    assert health["tsa"]["status"] == "ok" and health["tsa"]["gen_time"]
    assert health["audit"]["status"] in ("ok", "warn")
    assert health["audit"]["head_id"] >= before
    assert int(world.query("SELECT count(*) AS n FROM audit_events")[0].n) == before


def test_status_health_fails_a_crl_past_its_next_update(world: World) -> None:
    stale = world.start("stale", now=datetime.now(UTC) + timedelta(days=30))
    boss = world.login("officer", url=stale.url, address="10.70.4.1")
    health = boss.request("GET", "/status/health")
    assert health["crl"]["crls"]["issuing"]["status"] == "fail"
    assert health["status"] == "fail"


# --- audit search ----------------------------------------------------------------------------
def test_audit_search_by_enterprise_actor_action_and_time(world: World,
                                                          officer: EsealClient) -> None:
    auditor = world.login("auditor", address="10.70.5.1")
    issue(officer, USCC_B, "审计乙")
    a_events = auditor.request("GET", "/audit/events",
                               params={"enterprise": USCC_A, "limit": 1000})
    b_serials = {r.serial for r in world.query(
        "SELECT c.serial FROM certificates c JOIN enterprises e ON e.id = c.enterprise_id "
        "WHERE e.uscc = :u", u=USCC_B)}
    assert a_events and not {e["target"] for e in a_events} & (b_serials | {USCC_B, "b-agent",
                                                                           "b-rep"})
    assert USCC_A in {e["target"] for e in a_events}
    assert "a-agent" in {e["target"] for e in a_events}  # its USB-Key's enrolment
    certs = auditor.request("GET", "/audit/events", params={"action": "cert.", "limit": 1000})
    assert certs and all(e["action"].startswith("cert.") for e in certs)
    assert {e["action"] for e in certs} >= {"cert.issue", "cert.freeze"}
    exact = auditor.request("GET", "/audit/events", params={"action": "cert.freeze"})
    assert exact and {e["action"] for e in exact} == {"cert.freeze"}
    mine = auditor.request("GET", "/audit/events", params={"actor": "周主任", "limit": 1000})
    assert mine and all("周主任" in e["actor"] for e in mine)
    newest = auditor.request("GET", "/audit/events", params={"before_id": 2**31 - 1,
                                                             "limit": 3})
    assert [e["id"] for e in newest] == sorted((e["id"] for e in newest), reverse=True)
    older = auditor.request("GET", "/audit/events", params={"before_id": newest[-1]["id"],
                                                            "limit": 3})
    assert older[0]["id"] == newest[-1]["id"] - 1
    past = auditor.request("GET", "/audit/events", params={"to": "2020-01-01"})
    assert past == []
    window = auditor.request("GET", "/audit/events", params={
        "from": (datetime.now(UTC) - timedelta(hours=2)).isoformat(),
        "to": (datetime.now(UTC) + timedelta(hours=2)).isoformat(), "action": "cert.issue"})
    assert window


@pytest.mark.parametrize(("params", "code", "field"), [
    ({"enterprise": USCC_A[:17] + "0"}, "USCC_CHECKSUM", "enterprise"),
    ({"enterprise": "91350100M000100Y4"}, "USCC_LENGTH", "enterprise"),
    ({"enterprise": "91350100M000200Y4T"}, "ENTERPRISE_NOT_REGISTERED", "enterprise"),
    ({"action": "CERT!"}, "AUDIT_ACTION_INVALID", "action"),
    ({"outcome": "maybe"}, "AUDIT_OUTCOME_UNKNOWN", "outcome"),
    ({"from": "yesterday"}, "AUDIT_TIME_INVALID", "from"),
    ({"from": "2026-02-01", "to": "2026-01-01"}, "AUDIT_TIME_INVALID", "to"),
    ({"after_id": "5", "before_id": "9"}, "VALUE_OUT_OF_RANGE", "before_id"),
    ({"limit": "1001"}, "VALUE_OUT_OF_RANGE", "limit"),
    ({"actor": "x" * 201}, "REQUEST_INVALID", "actor"),
])
def test_a_bad_audit_search_parameter_is_refused_naming_it(
        world: World, officer: EsealClient, params: dict[str, str], code: str,
        field: str) -> None:
    answer = get(world, officer, "/audit/events", **params)
    assert answer.status_code in (404, 422), answer.text
    assert answer.json()["code"] == code and answer.json()["field"] == field
