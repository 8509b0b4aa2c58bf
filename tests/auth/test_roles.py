"""Roles and enterprise walls, checked by walking every route of the OpenAPI document of a
live server: another enterprise's resources answer 403/404 to an agent and a legal
representative, an auditor changes nothing, nobody without a session gets anything, and an
agent cannot approve (seal) a filing. Also: the legal representative's enrollment codes for
agents, redeemed from the holder's own machine (``eseal token enroll --server --code``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from eseal.holder.client import ServiceError
from tests.conftest import NAME_B, USCC_A, USCC_B
from tests.worldkit import ENTERPRISE_HOLDERS, PIN, SESSION_ENDING, SO_PIN, World, build_world

PDF = "application/pdf"
SAFE = ("get", "head", "options")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from build_world(tmp_path_factory.mktemp("roles"), dict(ENTERPRISE_HOLDERS))


def minimal_pdf() -> bytes:
    from tests.pdfkit import make_pdf

    return make_pdf(1).data


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """Every operation that needs a session (the public protocol endpoints need none)."""
    return [(path, method, op) for path, ops in spec["paths"].items()
            for method, op in ops.items() if op.get("security")]


def _example(schema: dict[str, Any], spec: dict[str, Any]) -> Any:
    """A value that satisfies the schema's shape, so requests reach the handler."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _example(spec["components"]["schemas"][name], spec)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            return _example(schema[key][0], spec)
    kind = schema.get("type")
    if kind == "object":
        return {name: _example(sub, spec) for name, sub in schema.get("properties", {}).items()
                if name in schema.get("required", [])}
    if kind == "array":
        return []
    if kind == "integer":
        return max(1, int(schema.get("minimum", 1)))
    if kind == "boolean":
        return False
    return "agent" if "role" in str(schema.get("description", "")) else "x1"


def send(client: httpx.Client, method: str, path: str, op: dict[str, Any],
         spec: dict[str, Any], values: dict[str, str], pdf: bytes) -> httpx.Response:
    url = path
    for param in op.get("parameters", []):
        if param["in"] == "path":
            url = url.replace("{" + param["name"] + "}", values.get(param["name"], "1"))
    body = op.get("requestBody", {}).get("content", {})
    if PDF in body:
        return client.request(method, url, content=pdf, headers={"Content-Type": PDF})
    if "application/json" in body:
        return client.request(method, url, json=_example(body["application/json"]["schema"],
                                                          spec))
    return client.request(method, url)


def http(world: World, session: str | None, address: str) -> httpx.Client:
    headers = {"X-Forwarded-For": address}
    if session:
        headers["Authorization"] = f"Bearer {session}"
    return httpx.Client(base_url=world.server.url, headers=headers, timeout=60)


def snapshot(world: World) -> dict[str, list[Any]]:
    """What another enterprise owns, and what an auditor must not change."""
    tables = {"enterprises": "SELECT uscc, name, status, legal_rep FROM enterprises",
              "certificates": "SELECT serial, status, replaced_by FROM certificates",
              "codes": "SELECT code_hash, used_at FROM enrollment_codes",
              "accounts": "SELECT id, status, locked_until FROM accounts",
              "tokens": "SELECT label, role, holder FROM tokens"}
    if world.has_table("filings"):
        tables["filings"] = "SELECT id, status, sealed_sha256 FROM filings"
    return {name: sorted(map(tuple, world.query(sql))) for name, sql in tables.items()}


@pytest.fixture(scope="module")
def spec(world: World) -> dict[str, Any]:
    return dict(httpx.get(f"{world.server.url}/openapi.json").json())


@pytest.fixture(scope="module")
def b_values(world: World, spec: dict[str, Any]) -> dict[str, str]:
    """Identifiers of enterprise B's resources, to be aimed at by A's staff."""
    b = world.login("b-agent", address="10.60.0.2")
    values = {"uscc": USCC_B, "serial": world.holders["b-agent"].serial, "label": "b-agent",
              "account_id": str(b.account["id"] if b.account else 1), "encoded": "AA"}
    if "/filings" in spec["paths"]:
        response = httpx.post(f"{world.server.url}/filings", content=minimal_pdf(),
                              params={"title": "B annual report"},
                              headers={"Content-Type": PDF,
                                       "Authorization": f"Bearer {b.session}"})
        assert response.status_code == 201, response.text
        values["filing_id"] = str(response.json()["id"])
    return values


# --- the walls ---------------------------------------------------------------------------------
@pytest.mark.parametrize("label", ["a-agent", "a-rep"])
def test_enterprise_staff_get_403_or_404_on_every_route_aimed_at_another_enterprise(
        world: World, spec: dict[str, Any], b_values: dict[str, str], label: str) -> None:
    me = world.login(label, address="10.60.0.1")
    before = snapshot(world)
    pdf = minimal_pdf()
    checked = 0
    with http(world, me.session, "10.60.0.1") as client:
        for path, method, op in operations(spec):
            if (method.upper(), path) in SESSION_ENDING:
                continue
            response = send(client, method, path, op, spec, b_values, pdf)
            where = f"{method.upper()} {path} -> {response.status_code} {response.text[:200]}"
            if "{" in path or path.startswith(("/officer", "/audit")):
                assert response.status_code in (403, 404), where
            else:
                # the caller's own data: whatever it is, nothing of B's in it
                assert response.status_code < 500, where
                assert USCC_B not in response.text and NAME_B not in response.text, where
                assert b_values["serial"] not in response.text, where
            checked += 1
    assert checked >= 20
    assert _only_own_filings_added(before, snapshot(world), world)


def _only_own_filings_added(before: dict[str, list[Any]], after: dict[str, list[Any]],
                            world: World) -> bool:
    """A's staff may add their own drafts while walking (POST /filings); B's rows and every
    other table stay exactly as they were."""
    if {k: v for k, v in before.items() if k != "filings"} != \
            {k: v for k, v in after.items() if k != "filings"}:
        return False
    added = set(after.get("filings", [])) - set(before.get("filings", []))
    ids = [row[0] for row in added]
    owners = {r[0] for r in world.query(
        "SELECT e.uscc FROM filings f JOIN enterprises e ON e.id = f.enterprise_id "
        f"WHERE f.id IN ({','.join(map(str, ids)) or '0'})")}
    return owners <= {USCC_A} and set(before.get("filings", [])) <= set(after["filings"])


def test_an_auditor_can_read_and_verify_the_audit_log_and_change_nothing(
        world: World, spec: dict[str, Any], b_values: dict[str, str]) -> None:
    auditor = world.login("auditor", address="10.61.0.1")
    assert auditor.request("GET", "/audit/verify")["ok"] is True
    assert auditor.request("GET", "/audit/events", params={"limit": 5})
    before = snapshot(world)
    pdf = minimal_pdf()
    changing = [(p, m, o) for p, m, o in operations(spec)
                if m not in SAFE and (m.upper(), p) not in SESSION_ENDING]
    assert len(changing) >= 15
    with http(world, auditor.session, "10.61.0.1") as client:
        for path, method, op in changing:
            for values in (b_values, {"uscc": USCC_A, "serial": world.holders["a-agent"].serial,
                                      "label": "a-agent"}):
                response = send(client, method, path, op, spec, values, pdf)
                assert response.status_code == 403, f"{method} {path}: {response.text[:200]}"
                assert response.json()["code"] == "ROLE_FORBIDDEN"
    assert snapshot(world) == before
    with pytest.raises(ServiceError) as officer_only:
        auditor.request("GET", "/officer/accounts")
    assert officer_only.value.status == 403


def test_without_a_session_every_protected_route_answers_401(
        world: World, spec: dict[str, Any], b_values: dict[str, str]) -> None:
    pdf = minimal_pdf()
    with http(world, None, "10.62.0.1") as client:
        for path, method, op in operations(spec):
            response = send(client, method, path, op, spec, b_values, pdf)
            assert response.status_code == 401, f"{method} {path}: {response.text[:200]}"
            assert response.json()["code"] == "SESSION_REQUIRED"


def test_an_agent_cannot_approve_a_filing_of_their_own_enterprise(
        world: World, spec: dict[str, Any]) -> None:
    if "/filings/{filing_id}/seal" not in spec["paths"]:
        pytest.fail("the filings API (POST /filings/{filing_id}/seal) is not mounted")
    agent = world.login("a-agent", address="10.63.0.1")
    made = httpx.post(f"{world.server.url}/filings", content=minimal_pdf(),
                      params={"title": "A annual report"},
                      headers={"Content-Type": PDF, "Authorization": f"Bearer {agent.session}"})
    assert made.status_code == 201, made.text
    filing = made.json()["id"]
    sealed = httpx.post(f"{world.server.url}/filings/{filing}/seal", content=minimal_pdf(),
                        headers={"Content-Type": PDF,
                                 "Authorization": f"Bearer {agent.session}"})
    assert sealed.status_code == 403 and sealed.json()["code"] == "ROLE_FORBIDDEN"
    assert agent.request("GET", f"/filings/{filing}")["status"] == "draft"


def test_enterprise_routes_serve_the_own_enterprise(world: World) -> None:
    agent = world.login("a-agent", address="10.64.0.1")
    assert agent.request("GET", f"/enterprises/{USCC_A}")["uscc"] == USCC_A
    certs = agent.request("GET", f"/enterprises/{USCC_A}/certificates")
    assert {c["enterprise"] for c in certs} == {USCC_A}
    serial = world.holders["a-agent"].serial
    assert agent.request("GET", f"/enterprises/{USCC_A}/certificates/{serial}")["serial"] == serial
    with pytest.raises(ServiceError) as not_ours:  # B's certificate under A's path
        agent.request("GET", f"/enterprises/{USCC_A}/certificates/"
                             f"{world.holders['b-agent'].serial}")
    assert not_ours.value.status == 404
    with pytest.raises(ServiceError) as agents_do_not_list_accounts:
        agent.request("GET", f"/enterprises/{USCC_A}/accounts")
    assert agents_do_not_list_accounts.value.code == "ROLE_FORBIDDEN"
    rep = world.login("a-rep", address="10.64.0.2")
    names = {a["name"] for a in rep.request("GET", f"/enterprises/{USCC_A}/accounts")}
    assert {"王五", "张三"} <= names and "赵六" not in names


# --- enrollment codes -----------------------------------------------------------------------------
def _cli(world: World, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, ESEAL_HOME=str(world.home), ESEAL_ENV="test",
               SOFTHSM2_CONF=str(world.home / "softhsm2.conf"))
    env.pop("ESEAL_NOW", None)
    return subprocess.run([sys.executable, "-m", "eseal", *args], env=env, input=stdin,
                          capture_output=True, text=True, timeout=120)


def test_a_legal_representative_enrolls_an_agent_who_then_logs_in_with_their_own_key(
        world: World) -> None:
    import json

    from eseal.token.usbkey import provision

    done = _cli(world, "enterprise", "enroll-code", "--server", world.server.url,
                "--token", "a-rep", "--pin-stdin", "--uscc", USCC_A, "--role", "agent",
                "--holder", "陈十二", "--json", stdin=PIN + "\n")
    assert done.returncode == 0, done.stderr
    code = json.loads(done.stdout)["code"]
    assert json.loads(done.stdout)["enterprise"] == USCC_A
    stored = world.query("SELECT code_hash, created_by FROM enrollment_codes")
    assert all(code not in row.code_hash for row in stored)
    assert any(row.created_by.startswith("legal_rep:张三#") for row in stored)

    # the agent's own, freshly initialised USB-Key (not known to the CA)
    provision(world.home / "softhsm2.conf", "chen-key", PIN, SO_PIN)
    enrolled = _cli(world, "token", "enroll", "--label", "chen-key", "--pin-stdin",
                    "--server", world.server.url, "--code", code, stdin=PIN + "\n")
    assert enrolled.returncode == 0, enrolled.stderr
    assert "enrolled" in enrolled.stdout and "login" in enrolled.stdout
    chen = world.client(address="10.65.0.1")
    chen.login_with_token("chen-key", PIN)
    me = chen.me()
    assert (me["name"], me["role"], me["enterprise"]) == ("陈十二", "agent", USCC_A)

    again = _cli(world, "token", "enroll", "--label", "chen-key-2", "--pin", PIN,
                 "--server", world.server.url, "--code", code)
    assert again.returncode == 1 and "ENROLL_CODE_INVALID" in again.stderr


def test_who_may_ask_for_which_enrollment_code(world: World) -> None:
    rep = world.login("a-rep", address="10.66.0.1")
    for body, code in (({"role": "legal_rep", "holder": "张三"}, "ROLE_FORBIDDEN"),
                       ({"role": "officer", "holder": "张三"}, "ROLE_UNKNOWN")):
        with pytest.raises(ServiceError) as refused:
            rep.request("POST", f"/enterprises/{USCC_A}/enrollment-codes", json=body)
        assert refused.value.code == code
    with pytest.raises(ServiceError) as other:
        rep.request("POST", f"/enterprises/{USCC_B}/enrollment-codes",
                    json={"role": "agent", "holder": "王八"})
    assert other.value.status == 404
    agent = world.login("a-agent", address="10.66.0.2")
    with pytest.raises(ServiceError) as agents_cannot:
        agent.request("POST", f"/enterprises/{USCC_A}/enrollment-codes",
                      json={"role": "agent", "holder": "王八"})
    assert agents_cannot.value.code == "ROLE_FORBIDDEN"
    officer = world.officer()
    staff = officer.request("POST", "/officer/enrollment-codes",
                            json={"role": "auditor", "holder": "钱审计"})
    assert staff["enterprise"] is None and staff["role"] == "auditor"
    lookup = httpx.post(f"{world.server.url}/enroll/lookup", json={"code": staff["code"]})
    assert lookup.json()["keys"] == {"login": "officer"}
    wrong_rep = httpx.post(f"{world.server.url}/officer/enrollment-codes",
                           json={"role": "legal_rep", "holder": "李四", "uscc": USCC_A},
                           headers={"Authorization": f"Bearer {officer.session}"})
    assert wrong_rep.status_code == 422 and wrong_rep.json()["code"] == "HOLDER_MISMATCH"
