"""Renaming an enterprise (企业名称变更) against a live service, real USB-Keys and openssl.

Pins down: new certificates for the same keys carry the new name byte for byte (𠮷 included);
OCSP answers ``revoked (superseded)`` for the old ones only after the new ones answer
``good``; the seal image drawn from the refreshed USB-Key shows the new name; a filing sealed
before the rename still verifies VALID; and a bad new name changes nothing.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from typing import Any

import pytest
from changekit import Site, live_site
from cryptography import x509
from cryptography.x509.oid import NameOID

from eseal.holder.sealing import seal_image_for
from eseal.ra.rename import Rename, name_history, rename_enterprise
from eseal.ra.staff import provision_staff_token
from eseal.signing.seal_image import SealSpec, render_seal
from eseal.token.client import UsbKey
from tests.conftest import NAME_A, USCC_A

NEW_NAME = "𠮷野家（厦门）餐饮集团有限公司"
ACTOR = "officer:test"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with live_site(tmp_path_factory.mktemp("rename")) as s:
        yield s


def _current(site: Site, profile: str, holder: str) -> Any:
    rows = [c for c in site.certificates(profile=profile, holder=holder)
            if c.status == "good" and c.replaced_by is None]
    assert len(rows) == 1, rows
    return rows[0]


def test_a_name_not_in_nfc_is_refused_naming_the_field_and_nothing_changes(site: Site) -> None:
    decomposed = unicodedata.normalize("NFD", "Café测试有限公司")
    before = [(c.serial, c.status) for c in site.certificates()]
    done = site.cli("enterprise", "rename", "--uscc", USCC_A, "--name", decomposed)
    assert done.returncode == 1
    assert "NAME_NOT_NFC [name]" in done.stderr, done.stderr
    answer = site.call(None, "POST", f"/officer/enterprises/{USCC_A}/rename",
                       json={"name": decomposed})
    assert answer.status_code == 401  # officers only, and only logged in
    assert [(c.serial, c.status) for c in site.certificates()] == before
    with site.authority() as auth:
        assert auth.enterprise(USCC_A).name == NAME_A
        assert [h["name"] for h in name_history(auth, USCC_A)] == [NAME_A]
    refused = [e for e in site.audit("enterprise.rename") if e.outcome == "refused"]
    assert refused and refused[-1].details["code"] == "NAME_NOT_NFC"

    # an officer over HTTP gets the same coded, field-naming answer
    with site.authority() as auth:
        officer = provision_staff_token(auth, label="officer1", name="周官", actor=ACTOR)
    site.login("officer1", officer.pin)
    answer = site.call("officer1", "POST", f"/officer/enterprises/{USCC_A}/rename",
                       json={"name": decomposed})
    assert answer.status_code == 422
    assert (answer.json()["code"], answer.json()["field"]) == ("NAME_NOT_NFC", "name")
    answer = site.call("officer1", "POST", f"/officer/enterprises/{USCC_A}/rename",
                       json={"name": NAME_A})
    assert (answer.status_code, answer.json()["code"]) == (409, "NAME_UNCHANGED")
    assert [(c.serial, c.status) for c in site.certificates()
            if c.profile != "officer"] == before
    with site.authority() as auth:
        assert auth.enterprise(USCC_A).name == NAME_A


def test_rename_supersedes_the_old_certificates_only_after_the_new_ones_are_good(
        site: Site) -> None:
    # a filing sealed under the old name, accepted before the rename
    fid = site.submit("wang").json()["id"]
    accepted, sealed_before = site.seal_and_upload("zhang", fid)
    assert accepted.status_code == 200, accepted.text
    (site.work / "before.pdf").write_bytes(sealed_before)

    old_seal, old_login = _current(site, "seal", "张三"), _current(site, "login", "张三")
    seen_between: dict[str, str] = {}

    def between(result: Rename) -> None:
        new_seal = result.replaced[old_seal.serial]
        seen_between["old"] = site.ocsp(old_seal.der)
        seen_between["new"] = site.ocsp(next(c.der for c in site.certificates(serial=new_seal)))

    with site.authority() as auth:
        result = rename_enterprise(auth, USCC_A, NEW_NAME, actor=ACTOR, between=between)
    assert seen_between == {"old": "good", "new": "good"}
    assert site.ocsp(old_seal.der) == "revoked (superseded)"
    assert site.ocsp(old_login.der) == "revoked (superseded)"

    new_seal = site.certificates(serial=result.replaced[old_seal.serial])[0]
    assert site.ocsp(new_seal.der) == "good"
    cert = x509.load_der_x509_certificate(new_seal.der)
    old = x509.load_der_x509_certificate(old_seal.der)
    assert cert.public_key() == old.public_key()  # the same key, re-certified
    assert cert.not_valid_after_utc == old.not_valid_after_utc  # a rename is no renewal
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        (attr,) = cert.subject.get_attributes_for_oid(oid)
        assert attr.value == NEW_NAME
    # byte-exact: the UTF-8 of 𠮷 (F0 A0 AE B7) inside the DER subject, once per attribute
    subject_der = cert.subject.public_bytes()
    assert subject_der.count(NEW_NAME.encode("utf-8")) == 2
    assert b"\xf0\xa0\xae\xb7" in subject_der
    login = site.certificates(serial=result.replaced[old_login.serial])[0]
    (org,) = x509.load_der_x509_certificate(login.der).subject.get_attributes_for_oid(
        NameOID.ORGANIZATION_NAME)
    assert org.value == NEW_NAME

    # the audit log has the new certificates on record before the old ones are revoked
    events = [e for e in site.audit() if e.action in ("cert.issue", "cert.revoke")
              and e.details.get("via") == "enterprise.rename"]
    issued_at = max(e.id for e in events if e.action == "cert.issue")
    assert all(e.id > issued_at for e in events if e.action == "cert.revoke")

    # the holder installs the new certificates; the seal image follows the new name
    done = site.cli("token", "refresh", "--label", "zhang")
    assert done.returncode == 0, done.stderr
    with UsbKey.open("zhang", "4913-7720") as key:
        on_token = key.certificate("seal")
    assert on_token.serial_number == cert.serial_number
    image = seal_image_for(on_token)
    assert image == render_seal(SealSpec(name=NEW_NAME, uscc=USCC_A))
    assert image != render_seal(SealSpec(name=NAME_A, uscc=USCC_A))

    # the filing sealed before still verifies VALID; a new one is sealed under the new name
    root = site.pem("root.pem", site.root)
    done = site.cli("verify", str(site.work / "before.pdf"), "--trust", str(root))
    assert done.returncode == 0, done.stdout + done.stderr
    # the old login certificates' sessions ended with them: refresh, log in again
    assert site.submit("wang").json()["code"] == "SESSION_REVOKED"
    assert site.cli("token", "refresh", "--label", "wang").returncode == 0
    site.forget("wang")
    site.forget("zhang")
    fid2 = site.submit("wang").json()["id"]
    accepted, _ = site.seal_and_upload("zhang", fid2)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["receipt"]["seal_certificate_serial"] == new_seal.serial
    assert accepted.json()["receipt"]["enterprise"]["name"] == NEW_NAME

    with site.authority() as auth:
        history = name_history(auth, USCC_A)
    assert [h["name"] for h in history] == [NAME_A, NEW_NAME]
    assert history[0]["valid_to"] == history[1]["valid_from"]
