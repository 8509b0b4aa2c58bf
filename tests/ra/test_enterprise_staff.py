"""Sub-accounts' rights per kind of business, emergency contacts and staff who leave, against
a live service with real USB-Keys.

Pins down: an agent holding only 年度报告 rights cannot submit a 变更登记 filing (coded 403);
rights naming an unknown filing type, a 10-digit phone number are coded, field-naming errors
that change nothing; an agent who leaves (``eseal account disable``) loses their session at
once, their certificates answer ``revoked (affiliationChanged)`` in OCSP, and the account is
kept.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator

import pytest
from changekit import PINS, Site, live_site
from pdfkit import make_pdf

from eseal.errors import EsealError
from eseal.holder.client import EsealClient
from tests.conftest import USCC_A

CONTACTS = [
    {"name": "陈财务", "role": "财务负责人", "phone": "13800138000", "email": "cw@example.com"},
    {"name": "林法务", "role": "法务负责人", "phone": "+86 139-0000-1111",
     "email": "fw@example.com"},
]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with live_site(tmp_path_factory.mktemp("staff")) as s:
        yield s


LABELS = {"王五": "wang", "赵六": "zhao"}


def _account(site: Site, name: str, *, login: bool = True) -> dict[str, object]:
    """The account (created at its holder's first login, so log them in once)."""
    if login and name in LABELS and LABELS[name] not in site.sessions:
        site.login(LABELS[name])
    answer = site.call("zhang", "GET", f"/enterprises/{USCC_A}/accounts")
    assert answer.status_code == 200, answer.text
    return next(a for a in answer.json() if a["name"] == name)


def test_filing_types_are_a_table_seeded_by_the_migration(site: Site) -> None:
    answer = site.call("wang", "GET", "/filing-types")
    assert answer.status_code == 200
    names = {t["code"]: t["name_zh"] for t in answer.json()}
    assert names["annual_report"] == "年度报告"
    assert names["change_registration"] == "变更登记"
    assert names["record_filing"] == "备案"


def test_an_agent_with_only_annual_report_rights_cannot_submit_a_change_registration(
        site: Site) -> None:
    wang = _account(site, "王五")
    path = f"/enterprises/{USCC_A}/accounts/{wang['id']}/rights"
    assert site.call("zhang", "GET", path).json()["restricted"] is False
    # an agent cannot grant rights, not even to themself
    answer = site.call("wang", "PUT", path, json={"types": ["change_registration"]})
    assert (answer.status_code, answer.json()["code"]) == (403, "ROLE_FORBIDDEN")

    answer = site.call("zhang", "PUT", path, json={"types": ["annual_report"]})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"account_id": wang["id"], "restricted": True,
                             "types": ["annual_report"]}
    refused = site.submit("wang", kind="change_registration", title="变更登记申请")
    assert (refused.status_code, refused.json()["code"], refused.json()["field"]) == (
        403, "FILING_TYPE_FORBIDDEN", "type")
    assert site.submit("wang", title="未注明类型").json()["code"] == "FILING_TYPE_FORBIDDEN"
    accepted = site.submit("wang", kind="annual_report")
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["type"] == "annual_report"
    # the legal representative holds every type; the certificate was never touched
    assert site.submit("zhang", kind="change_registration").status_code == 201
    assert [e.outcome for e in site.audit("account.rights.set")] == ["ok"]
    assert any(e.details.get("code") == "FILING_TYPE_FORBIDDEN"
               for e in site.audit("filing.create") if e.outcome == "refused")


def test_rights_naming_an_unknown_filing_type_are_refused_and_nothing_changes(
        site: Site) -> None:
    zhao = _account(site, "赵六")
    path = f"/enterprises/{USCC_A}/accounts/{zhao['id']}/rights"
    answer = site.call("zhang", "PUT", path, json={"types": ["annual_report", "lottery"]})
    assert answer.status_code == 422
    assert (answer.json()["code"], answer.json()["field"]) == ("FILING_TYPE_UNKNOWN",
                                                               "types[1]")
    assert site.call("zhang", "GET", path).json()["restricted"] is False
    assert site.submit("zhao", kind="change_registration").status_code == 201
    refused = [e for e in site.audit("account.rights.set") if e.outcome == "refused"]
    assert refused[-1].details["code"] == "FILING_TYPE_UNKNOWN"
    # the same from the console
    done = site.cli("enterprise", "rights", "--account", str(zhao["id"]), "--type", "lottery")
    assert done.returncode == 1 and "FILING_TYPE_UNKNOWN [types[0]]" in done.stderr


def test_emergency_contacts_need_two_valid_mobiles_and_a_bad_one_changes_nothing(
        site: Site) -> None:
    path = f"/enterprises/{USCC_A}/contacts"
    answer = site.call("zhang", "PUT", path, json={"contacts": CONTACTS})
    assert answer.status_code == 200, answer.text
    assert [c["phone"] for c in answer.json()] == ["13800138000", "13900001111"]

    ten_digits = [CONTACTS[0], {**CONTACTS[1], "phone": "1390000111"}]
    answer = site.call("zhang", "PUT", path, json={"contacts": ten_digits})
    assert answer.status_code == 422
    assert (answer.json()["code"], answer.json()["field"]) == ("PHONE_INVALID",
                                                               "contacts[1].phone")
    answer = site.call("zhang", "PUT", path, json={"contacts": CONTACTS[:1]})
    assert (answer.json()["code"], answer.json()["field"]) == ("CONTACTS_TOO_FEW", "contacts")
    assert [c["phone"] for c in site.call("zhang", "GET", path).json()] == [
        "13800138000", "13900001111"]
    assert site.call("wang", "GET", path).status_code == 403  # agents do not manage contacts
    done = site.cli("enterprise", "contacts", "--uscc", USCC_A, "--set",
                    "甲,财务,13800138000,a@example.com",
                    "--set", "乙,法务,1380013800,b@example.com")
    assert done.returncode == 1 and "PHONE_INVALID [contacts[1].phone]" in done.stderr
    assert [c["name"] for c in json.loads(site.cli("enterprise", "contacts", "--uscc",
                                                    USCC_A).stdout)] == ["陈财务", "林法务"]


def test_an_agent_who_leaves_loses_session_login_and_certificates_but_the_account_stays(
        site: Site) -> None:
    zhao = _account(site, "赵六")
    live = site.login("zhao")
    assert site.call("zhao", "GET", "/auth/me").status_code == 200
    login_cert = next(c for c in site.certificates(holder="赵六") if c.status == "good")
    assert site.ocsp(login_cert.der) == "good"

    done = site.cli("account", "disable", "--id", str(zhao["id"]), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["revoked"] == [login_cert.serial] and result["sessions_ended"] >= 1

    me = site.call("zhao", "GET", "/auth/me")
    assert (me.status_code, me.json()["code"]) == (401, "SESSION_REVOKED")
    assert site.ocsp(login_cert.der) == "revoked (affiliationChanged)"
    with EsealClient(site.url) as again, pytest.raises(EsealError) as refused:
        again.login_with_token("zhao", PINS["zhao"])
    assert refused.value.code in ("LOGIN_REFUSED", "CERT_REVOKED", "ACCOUNT_DISABLED")
    site.forget("zhao")
    kept = _account(site, "赵六", login=False)
    assert kept["status"] == "disabled" and kept["id"] == zhao["id"]
    again_done = site.cli("account", "disable", "--id", str(zhao["id"]))
    assert again_done.returncode == 1 and "ACCOUNT_ALREADY_DISABLED" in again_done.stderr
    del live


def test_the_cli_submits_with_a_type_and_the_ledger_lists_rights_contacts_and_departures(
        site: Site) -> None:
    pdf = site.work / "change.pdf"
    pdf.write_bytes(make_pdf(pages=1).data)
    done = site.cli("filing", "submit", str(pdf), "--token", "wang", "--pin-stdin", "--server",
                    site.url, "--type", "change_registration", stdin=PINS["wang"] + "\n")
    assert done.returncode == 1 and "FILING_TYPE_FORBIDDEN [type]" in done.stderr, done.stderr
    done = site.cli("filing", "submit", str(pdf), "--token", "wang", "--pin-stdin", "--server",
                    site.url, "--type", "annual_report", "--json", stdin=PINS["wang"] + "\n")
    assert done.returncode == 0 and json.loads(done.stdout)["type"] == "annual_report"

    assert site.call("wang", "GET", f"/enterprises/{USCC_A}/ledger").status_code == 403
    answer = site.call("zhang", "GET", f"/enterprises/{USCC_A}/ledger", params={"format": "csv"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    events = [(r["event"], r["holder"]) for r in rows]
    assert ("rights changed", "王五") in events
    assert ("emergency contacts changed", "") in events
    assert ("account disabled", "赵六") in events
    revoked = [r for r in rows if r["event"] == "certificate revoked"]
    assert [(r["holder"], r["reason"]) for r in revoked] == [("赵六", "affiliationChanged")]
    assert events.index(("rights changed", "王五")) < events.index(("account disabled", "赵六"))
