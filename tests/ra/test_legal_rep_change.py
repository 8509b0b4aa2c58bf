"""A new legal representative (法定代表人变更) against a live service, real USB-Keys, openssl
and a real SMTP server on loopback.

Pins down: the old representative's live session ends at once and they cannot log in again;
their certificates answer ``revoked (affiliationChanged)``; the intake refuses their seal on a
new filing; the draft that awaited them is flagged; the emergency contacts are mailed; the
new representative enrols with the code they were given and seals. An empty name changes
nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from changekit import Site, live_site
from sitekit import seal_with_token
from test_notices import Sink, smtp  # noqa: F401 - the real SMTP server fixture

from eseal.errors import EsealError
from eseal.holder.client import EsealClient
from eseal.ra import notices
from tests.conftest import USCC_A

QIAN_PIN = "2846-1937"
CONTACTS = [
    {"name": "陈财务", "role": "财务负责人", "phone": "13800138000", "email": "cw@example.com"},
    {"name": "林法务", "role": "法务负责人", "phone": "13900001111", "email": "fw@example.com"},
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with live_site(tmp_path_factory.mktemp("legal-rep")) as s:
        yield s


def test_an_empty_legal_representative_is_refused_and_nothing_changes(site: Site) -> None:
    before = [(c.serial, c.status) for c in site.certificates()]
    done = site.cli("enterprise", "change-legal-rep", "--uscc", USCC_A, "--legal-rep", "")
    assert done.returncode == 1 and "NAME_EMPTY [legal_rep]" in done.stderr, done.stderr
    assert [(c.serial, c.status) for c in site.certificates()] == before
    with site.authority() as auth:
        assert auth.enterprise(USCC_A).legal_rep == "张三"
    history = json.loads(site.cli("enterprise", "history", "--uscc", USCC_A).stdout)
    assert [t["name"] for t in history["legal_reps"]] == ["张三"]
    assert site.call("zhang", "GET", "/auth/me").status_code == 200


def test_the_old_legal_rep_is_cut_off_and_the_new_one_enrols_and_seals(
        site: Site, smtp: tuple[int, Sink]) -> None:  # noqa: F811
    port, sink = smtp
    assert site.call("zhang", "PUT", f"/enterprises/{USCC_A}/contacts",
                     json={"contacts": CONTACTS}).status_code == 200
    pending = site.submit("wang").json()["id"]
    assert site.call("zhang", "GET", "/auth/me").status_code == 200
    seal_cert = next(c for c in site.certificates(profile="seal") if c.status == "good")

    done = site.cli("enterprise", "change-legal-rep", "--uscc", USCC_A, "--legal-rep", "钱七",
                    "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["old_legal_rep"] == "张三" and result["sessions_ended"] == 1
    assert result["flagged_filings"] == [pending]
    assert len(result["revoked"]) == 2  # login and seal

    # at once: the live session, a new login, OCSP
    me = site.call("zhang", "GET", "/auth/me")
    assert (me.status_code, me.json()["code"]) == (401, "SESSION_REVOKED")
    with EsealClient(site.url) as again, pytest.raises(EsealError):
        again.login_with_token("zhang", "4913-7720")
    site.forget("zhang")
    assert site.ocsp(seal_cert.der) == "revoked (affiliationChanged)"
    assert site.call("wang", "GET", f"/filings/{pending}").json()["flag"] == "legal_rep_changed"

    # the emergency contacts are told, through the outbox and a real SMTP server
    with site.authority() as auth:
        notices.send_queued(auth, host="127.0.0.1", port=port)
    told = {rcpt[0]: str(msg["Subject"]) for rcpt, msg in sink.received}
    assert set(told) == {"cw@example.com", "fw@example.com"}
    assert all("legal representative changed" in subject for subject in told.values())

    # the new legal representative enrols their own USB-Key with the code and seals
    code = result["enrollment_code"]["code"]
    assert site.cli("token", "init", "--label", "qian", "--pin", QIAN_PIN).returncode == 0
    done = site.cli("token", "enroll", "--label", "qian", "--pin", QIAN_PIN, "--server",
                    site.url, "--code", code)
    assert done.returncode == 0, done.stderr
    site.login("qian", QIAN_PIN)
    draft = site.call("qian", "GET", f"/filings/{pending}/draft").content
    sealed = seal_with_token(draft, "qian", QIAN_PIN, server=site.url)
    accepted = site.call("qian", "POST", f"/filings/{pending}/seal", content=sealed,
                         headers={"Content-Type": "application/pdf"})
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["receipt"]["sealed_by"].startswith("legal_rep:钱七#")

    # the old representative's seal on a new filing is refused by the intake
    fresh = site.submit("wang").json()["id"]
    draft = site.call("qian", "GET", f"/filings/{fresh}/draft").content
    with pytest.raises(EsealError) as own_side:  # their own sealing client already says no
        seal_with_token(draft, "zhang", "4913-7720", server=site.url)
    assert own_side.value.code == "CERT_REVOKED" or "revoked" in own_side.value.message
    # B-T embeds no revocation data, so the key still signs: the intake must refuse it
    old_sealed = seal_with_token(draft, "zhang", "4913-7720", server=site.url, level="B-T")
    refused = site.call("qian", "POST", f"/filings/{fresh}/seal", content=old_sealed,
                        headers={"Content-Type": "application/pdf"})
    assert refused.status_code in (400, 409, 422), refused.text
    assert refused.json()["code"] in ("SEAL_CERT_REVOKED", "SEAL_CERT_NOT_CURRENT",
                                      "SEAL_INVALID"), refused.text
    assert site.call("qian", "GET", f"/filings/{fresh}").json()["status"] == "draft"
    history = json.loads(site.cli("enterprise", "history", "--uscc", USCC_A).stdout)
    assert [t["name"] for t in history["legal_reps"]] == ["张三", "钱七"]


def test_contacts_are_told_when_the_legal_reps_key_is_revoked(
        site: Site, smtp: tuple[int, Sink]) -> None:  # noqa: F811
    port, sink = smtp
    login = next(c for c in site.certificates(holder="钱七", profile="login")
                 if c.status == "good")
    done = site.cli("cert", "revoke", login.serial, "--reason", "keyCompromise")
    assert done.returncode == 0, done.stderr
    agent = next(c for c in site.certificates(holder="王五") if c.status == "good")
    assert site.cli("cert", "revoke", agent.serial, "--reason", "keyCompromise").returncode == 0
    with site.authority() as auth:
        notices.send_queued(auth, host="127.0.0.1", port=port)
    subjects = sorted((rcpt[0], str(msg["Subject"])) for rcpt, msg in sink.received)
    assert [r for r, _ in subjects] == ["cw@example.com", "fw@example.com"]  # not the agent's
    assert all("certificate of the legal representative was revoked" in s for _, s in subjects)
    assert all(login.serial in msg.get_content() for _, msg in sink.received)
