"""The server's half of a browser seal, without a browser: prepare, the key's one signature,
finish -> the same intake and receipt as a CLI seal; the prepared state is single-use,
short-lived and bound to its filing and account, and every refusal stores nothing.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from eseal.api.app import create_app
from eseal.api.browser_seal import TTL_SECONDS
from eseal.holder.client import sign_challenge
from eseal.signing.receipts import verify_receipt
from eseal.token.client import UsbKey
from tests.conftest import NAME_A, USCC_A
from tests.pdfkit import make_pdf
from tests.sitekit import CaHome, Holder, ca_home, query_home

PINS = {"zhang": "4913-7720", "wang": "6624-0195"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[CaHome, TestClient]]:
    tmp = tmp_path_factory.mktemp("bseal")
    with ca_home(tmp / "home", enterprises=[(USCC_A, NAME_A, "张三")],
                 holders=[Holder("zhang", PINS["zhang"], USCC_A, "legal_rep", "张三"),
                          Holder("wang", PINS["wang"], USCC_A, "agent", "王五")]) as ca, \
            TestClient(create_app(ca.settings), base_url=ca.settings.base_url) as client:
        yield ca, client


def _session(site: tuple[CaHome, TestClient], label: str) -> dict[str, str]:
    ca, client = site
    challenge = client.post("/auth/challenge").json()
    with UsbKey.open(label, PINS[label]) as key:
        answer = sign_challenge(challenge, key, origin=ca.settings.base_url)
    verified = client.post("/auth/verify", json=answer)
    assert verified.status_code == 200, verified.text
    return {"Authorization": f"Bearer {verified.json()['session']}"}


def _draft(site: tuple[CaHome, TestClient]) -> int:
    _, client = site
    answer = client.post("/filings", params={"title": "变更登记申请"},
                         content=make_pdf(pages=1).data,
                         headers={**_session(site, "wang"), "Content-Type": "application/pdf"})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def _sign(prepared: dict[str, Any], data: bytes | None = None) -> str:
    with UsbKey.open("zhang", PINS["zhang"]) as key:
        signature = key.sign("seal", data or base64.b64decode(prepared["signed_attrs"]))
    return base64.b64encode(signature).decode()


def _status(ca: CaHome, filing: int) -> str:
    return str(query_home(ca.home, "SELECT status FROM filings WHERE id = :i", i=filing)[0][0])


def test_prepare_sign_finish_gives_the_intakes_receipt_once(
        site: tuple[CaHome, TestClient]) -> None:
    ca, client = site
    filing, rep = _draft(site), _session(site, "zhang")
    prepared = client.post(f"/filings/{filing}/browser-seal", json={"page": 1}, headers=rep)
    assert prepared.status_code == 200, prepared.text
    body = prepared.json()
    assert body["filing"]["title"] == "变更登记申请" and body["filing"]["enterprise"] == NAME_A
    assert "pdf" not in body  # the browser never handles the signed PDF bytes
    finish = {"prepared_id": body["id"], "signature": _sign(body)}
    done = client.post(f"/filings/{filing}/browser-seal/finish", json=finish, headers=rep)
    assert done.status_code == 200, done.text
    receipt = done.json()
    assert receipt["receipt"]["pades_level"] == "B-LT"
    assert receipt["receipt"]["seal_certificate_serial"] == body["certificate_serial"]
    verify_receipt(receipt, trust_roots=[ca.root])
    assert _status(ca, filing) == "accepted"
    again = client.post(f"/filings/{filing}/browser-seal/finish", json=finish, headers=rep)
    assert again.status_code == 409 and again.json()["code"] == "BROWSER_SEAL_USED"
    leftover = query_home(ca.home, "SELECT length(pdf), used_at IS NOT NULL FROM browser_seals"
                          " WHERE filing_id = :i", i=filing)
    assert leftover == [(0, 1)]  # the half-made PDF is not kept once used


def test_an_expired_prepared_seal_is_refused_and_nothing_is_stored(
        site: tuple[CaHome, TestClient], monkeypatch: pytest.MonkeyPatch) -> None:
    ca, client = site
    filing, rep = _draft(site), _session(site, "zhang")
    start = datetime.now(UTC).replace(microsecond=0)
    monkeypatch.setenv("ESEAL_NOW", start.isoformat())
    body = client.post(f"/filings/{filing}/browser-seal", json={}, headers=rep).json()
    monkeypatch.setenv("ESEAL_NOW", (start + timedelta(seconds=TTL_SECONDS)).isoformat())
    late = client.post(f"/filings/{filing}/browser-seal/finish", headers=rep,
                       json={"prepared_id": body["id"], "signature": _sign(body)})
    assert late.status_code == 409 and late.json()["code"] == "BROWSER_SEAL_EXPIRED"
    assert late.json()["field"] == "prepared_id" and late.json()["message_zh"]
    assert _status(ca, filing) == "draft"
    fresh = client.post(f"/filings/{filing}/browser-seal", json={}, headers=rep)
    assert fresh.status_code == 200, fresh.text
    kept = query_home(ca.home, "SELECT count(*) FROM browser_seals WHERE filing_id = :i AND"
                      " used_at IS NULL AND length(pdf) > 0", i=filing)
    assert kept == [(1,)]  # the fresh one; the expired half-made PDF is gone


def test_a_signature_over_anything_else_is_refused_and_spends_the_prepared_seal(
        site: tuple[CaHome, TestClient]) -> None:
    ca, client = site
    filing, rep = _draft(site), _session(site, "zhang")
    body = client.post(f"/filings/{filing}/browser-seal", json={}, headers=rep).json()
    wrong = client.post(f"/filings/{filing}/browser-seal/finish", headers=rep,
                        json={"prepared_id": body["id"], "signature": _sign(body, b"other")})
    assert wrong.status_code == 422 and wrong.json()["code"] == "SEAL_SIGNATURE_INVALID"
    retry = client.post(f"/filings/{filing}/browser-seal/finish", headers=rep,
                        json={"prepared_id": body["id"], "signature": _sign(body)})
    assert retry.json()["code"] == "BROWSER_SEAL_USED"
    assert _status(ca, filing) == "draft"
    refusals = query_home(ca.home, "SELECT count(*) FROM audit_events WHERE action = "
                          "'filing.seal' AND outcome = 'refused' AND target = :t", t=str(filing))
    assert refusals[0][0] >= 2


def test_unknown_ids_other_filings_agents_and_bad_bodies_get_coded_4xx(
        site: tuple[CaHome, TestClient]) -> None:
    _, client = site
    filing, other, rep = _draft(site), _draft(site), _session(site, "zhang")
    body = client.post(f"/filings/{filing}/browser-seal", json={}, headers=rep).json()
    cases = [
        (client.post(f"/filings/{filing}/browser-seal/finish", headers=rep,
                     json={"prepared_id": "nope", "signature": "AA=="}),
         404, "BROWSER_SEAL_UNKNOWN"),
        (client.post(f"/filings/{other}/browser-seal/finish", headers=rep,
                     json={"prepared_id": body["id"], "signature": "AA=="}),
         404, "BROWSER_SEAL_UNKNOWN"),
        (client.post(f"/filings/{filing}/browser-seal", json={}, headers=_session(site, "wang")),
         403, "ROLE_FORBIDDEN"),
        (client.post(f"/filings/{filing}/browser-seal/finish", headers=rep,
                     json={"prepared_id": body["id"], "signature": "%%%"}),
         422, "SIGNATURE_NOT_BASE64"),
        (client.post(f"/filings/{filing}/browser-seal", json={"size_pt": 1}, headers=rep),
         422, None),
        (client.post(f"/filings/{filing}/browser-seal", json={"page": 9}, headers=rep),
         422, "PAGE_OUT_OF_RANGE"),
        (client.post(f"/filings/{filing}/browser-seal", json={}), 401, None),
    ]
    for answer, status, code in cases:
        assert answer.status_code == status, answer.text
        assert answer.json()["message_zh"]
        if code:
            assert answer.json()["code"] == code
    # the unknown-id refusals did not spend the real one
    done = client.post(f"/filings/{filing}/browser-seal/finish", headers=rep,
                       json={"prepared_id": body["id"], "signature": _sign(body)})
    assert done.status_code == 200, done.text


def test_the_pages_are_served_under_a_strict_csp_with_no_inline_script(
        site: tuple[CaHome, TestClient]) -> None:
    _, client = site
    for path in ("/login", "/seal"):
        page = client.get(path)
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert "<script>" not in page.text and "<script src=\"/static/eseal.js\">" in page.text
    assert client.get("/static/eseal.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/nothing.js").json()["code"] == "NOT_FOUND"
