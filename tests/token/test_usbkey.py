"""A holder's USB-Key on real SoftHSM: enrolment through the local authority, what an
independent PKCS#11 client sees on the token, signing through the token layer from many
threads and after fork, SO PIN custody, and bad input that changes nothing."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
from pkcs11 import Attribute, ObjectClass
from sqlalchemy import func, select
from threadkit import in_threads

from eseal.ca.authority import Authority, Issued
from eseal.errors import Conflict, EsealError, InvalidInput, NotFound, TokenError
from eseal.pki.signature import verify_signature
from eseal.ra.enrollment import enroll_on_token, refresh_token
from eseal.ra.so_pins import KEK_LABEL, decrypt_so_pin, keep_so_pin, kept_so_pin
from eseal.store.models import AuditEvent, Certificate, TokenRecord
from eseal.token import TokenSession, delete_objects, find_private_key, lock
from eseal.token.client import UsbKey, sign_with
from eseal.token.pin import generate_so_pin
from eseal.token.secret_keys import find_secret_key
from eseal.token.usbkey import KEY_LABELS, provision, status, unblock
from tests.conftest import NAME_A, USCC_A, USCC_B

PIN = "4913-7720"
LABEL = "zhang"
ACTOR = "officer:test"


def _provision(auth: Authority, label: str = LABEL) -> str:
    so_pin = generate_so_pin()
    provision(auth.settings.softhsm_conf_path, label, PIN, so_pin)
    keep_so_pin(auth, label, so_pin, actor=ACTOR, generated=True)
    return so_pin


@pytest.fixture
def enrolled(authority: Authority) -> Authority:
    _provision(authority)
    enroll_on_token(authority, label=LABEL, pin=PIN, uscc=USCC_A, role="legal_rep",
                    holder="张三", actor=ACTOR)
    return authority


def _objects(label: str) -> list[tuple[int, str, str]]:
    """(class, label, id) of every public object: what a token looks like without a PIN."""
    ts = TokenSession(label, None, rw=True)
    try:
        with lock():
            objs = list(ts.session().get_objects())
            return sorted((int(o[Attribute.CLASS]), o[Attribute.LABEL], bytes(
                o[Attribute.ID]).hex() if int(o[Attribute.CLASS]) != ObjectClass.DATA else "")
                for o in objs)
    finally:
        ts.close()


def _count(auth: Authority, model: Any) -> int:
    with auth.db.read() as s:
        return int(s.execute(select(func.count()).select_from(model)).scalar_one())


# --- the enrolled token ---------------------------------------------------------------------
def test_enrolled_keys_are_sensitive_and_never_extractable(enrolled: Authority) -> None:
    with UsbKey.open(LABEL, PIN) as usbkey:
        for purpose in ("login", "seal"):
            key = usbkey.key(purpose)  # type: ignore[arg-type]
            handle = find_private_key(usbkey.session, id=key.key_id)
            with lock():
                assert handle[Attribute.EXTRACTABLE] is False
                assert handle[Attribute.NEVER_EXTRACTABLE] is True
                assert handle[Attribute.SENSITIVE] is True
                assert handle[Attribute.LABEL] == KEY_LABELS[purpose]  # type: ignore[index]
            with pytest.raises(TokenError):
                key.private_bytes()  # type: ignore[call-arg]


def test_each_certificate_sits_beside_its_key_and_chains_to_the_ca(
        enrolled: Authority) -> None:
    with UsbKey.open(LABEL, PIN) as usbkey:
        certs = usbkey.certificates()
        assert set(certs) == {"login", "seal"}
        issuing, root = usbkey.chain()
        assert [c.subject for c in (issuing, root)] == [c.subject for c in enrolled.chain()]
        for purpose, cert in certs.items():
            assert cert.public_key() == usbkey.key(purpose).public_key()
            ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
            assert usbkey.key(purpose).key_id == ski
            cert.verify_directly_issued_by(issuing)
        org = certs["seal"].subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME)
        assert org[0].value == NAME_A
    with enrolled.db.read() as s:
        record = s.get(TokenRecord, LABEL)
        assert record is not None and (record.role, record.holder) == ("legal_rep", "张三")
        rows = s.execute(select(Certificate.profile, Certificate.token_label)
                         .where(Certificate.token_label == LABEL)).all()
    assert sorted(rows) == [("login", LABEL), ("seal", LABEL)]


def _pkcs11_tool(settings: Any, *args: str) -> str:
    done = subprocess.run(
        ["pkcs11-tool", "--module", settings.pkcs11_module, "--token-label", LABEL, *args],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, SOFTHSM2_CONF=str(settings.softhsm_conf_path)))
    assert done.returncode == 0, done.stderr
    return done.stdout


def _parse_objects(listing: str) -> list[dict[str, str]]:
    objects: list[dict[str, str]] = []
    for line in listing.splitlines():
        if line and not line.startswith(" "):
            objects.append({"kind": line.split(";")[0].strip()})
        elif ":" in line and objects:
            key, _, value = line.strip().partition(":")
            objects[-1][key.strip()] = value.strip().strip("'")
    return objects


def test_an_independent_client_sees_the_keys_and_certificates(enrolled: Authority) -> None:
    settings = enrolled.settings
    public = _parse_objects(_pkcs11_tool(settings, "-O"))
    certs = {o["label"]: o["ID"] for o in public if o["kind"].startswith("Certificate")}
    assert set(certs) == {"eseal-login", "eseal-seal", "eseal-issuing-ca", "eseal-root-ca"}
    assert not [o for o in public if o["kind"].startswith("Private")]  # not without the PIN
    logged_in = _parse_objects(_pkcs11_tool(settings, "--login", "--pin", PIN, "-O"))
    private = {o["label"]: o for o in logged_in if o["kind"].startswith("Private Key")}
    assert set(private) == {"eseal-login", "eseal-seal"}
    with UsbKey.open(LABEL, PIN) as usbkey:
        for purpose in ("login", "seal"):
            label = KEY_LABELS[purpose]  # type: ignore[index]
            key_id = usbkey.key(purpose).key_id.hex()  # type: ignore[arg-type]
            assert private[label]["ID"] == key_id == certs[label]
            assert "never extractable" in private[label]["Access"]
            assert "sensitive" in private[label]["Access"]


def test_a_signature_made_by_pkcs11_tool_verifies_against_the_stored_certificate(
        enrolled: Authority, tmp_path: Path) -> None:
    with UsbKey.open(LABEL, PIN) as usbkey:
        cert = usbkey.certificate("seal")
        key_id = usbkey.seal_key().key_id.hex()
    digest = hashlib.sha256(b"annual report 2025").digest()
    (tmp_path / "digest").write_bytes(digest)
    _pkcs11_tool(enrolled.settings, "--login", "--pin", PIN, "--sign", "--id", key_id,
                 "-m", "ECDSA", "--signature-format", "openssl",
                 "--input-file", str(tmp_path / "digest"), "--output-file", str(tmp_path / "sig"))
    public = cert.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify((tmp_path / "sig").read_bytes(), digest, ec.ECDSA(Prehashed(hashes.SHA256())))


def test_status_shows_holder_certificates_and_chain_apart_without_a_pin(
        enrolled: Authority) -> None:
    from eseal.pki.oids import profile_of

    st = status(LABEL, profile_of=profile_of).to_dict()
    assert st["locked"] is False and st["tries_left"] == 6
    assert sorted(c["profile"] for c in st["certificates"]) == ["login", "seal"]
    assert [c["profile"] for c in st["ca_chain"]] == ["issuing", "root"]
    with enrolled.db.read() as s:
        serials = set(s.execute(select(Certificate.serial)
                                .where(Certificate.token_label == LABEL)).scalars())
    assert {c["serial"] for c in st["certificates"]} == serials
    assert all(c["not_after"] and c["subject"] for c in st["certificates"])


def test_an_agent_gets_a_login_key_only(authority: Authority) -> None:
    _provision(authority, "wang")
    result = enroll_on_token(authority, label="wang", pin=PIN, uscc=USCC_A, role="agent",
                             holder="王五", actor=ACTOR)
    assert set(result.issued) == {"login"}
    with UsbKey.open("wang", PIN) as usbkey:
        assert not usbkey.has_key("seal")
        with pytest.raises(TokenError) as exc:
            usbkey.seal_key()
        assert exc.value.code == "KEY_NOT_FOUND"
        signature = usbkey.sign("login", b"challenge")
        verify_signature(usbkey.certificate("login"), signature, b"challenge")


# --- signing through the token layer ---------------------------------------------------------
def test_eight_threads_sign_a_thousand_times_each_and_every_signature_verifies(
        enrolled: Authority) -> None:
    usbkey = UsbKey.open(LABEL, PIN)
    key = usbkey.login_key()
    public = usbkey.certificate("login").public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    results: dict[int, list[tuple[bytes, bytes]]] = {}

    def work(n: int) -> None:
        out = []
        for i in range(1000):
            digest = hashlib.sha256(f"{n}-{i}".encode()).digest()
            out.append((digest, usbkey.sign_digest("login", digest)))
        results[n] = out

    errors = in_threads(work, 8)
    usbkey.close()
    assert not errors
    assert sum(len(v) for v in results.values()) == 8000
    for out in results.values():
        for digest, signature in out:
            public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    assert key.public_key() == public


def test_signing_works_in_a_forked_child_and_in_the_parent_after_it(
        enrolled: Authority) -> None:
    usbkey = UsbKey.open(LABEL, PIN)
    cert = usbkey.certificate("seal")
    verify_signature(cert, usbkey.sign("seal", b"before fork"), b"before fork")
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through its exit status
        code = 1
        try:
            verify_signature(cert, usbkey.sign("seal", b"in child"), b"in child")
            code = 0
        finally:
            os._exit(code)
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0
    verify_signature(cert, usbkey.sign("seal", b"after fork"), b"after fork")
    usbkey.close()


def test_sign_with_opens_signs_and_closes(enrolled: Authority) -> None:
    digest = hashlib.sha256(b"filing").digest()
    signature = sign_with(LABEL, PIN, "seal", digest=digest)
    with UsbKey.open(LABEL, PIN) as usbkey:
        public = usbkey.certificate("seal").public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(signature, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    with pytest.raises(InvalidInput) as exc:
        sign_with(LABEL, PIN, "seal", digest=digest[:20])
    assert exc.value.code == "DIGEST_LENGTH"
    with pytest.raises(TokenError) as wrong:
        sign_with(LABEL, "not-the-pin", "seal", data=b"x")
    assert wrong.value.details["tries_left"] == 5


# --- SO PIN custody ---------------------------------------------------------------------------
def test_the_kept_so_pin_is_encrypted_under_a_key_that_never_leaves_the_ca_token(
        authority: Authority) -> None:
    so_pin = _provision(authority)
    with authority.db.read() as s:
        blob = s.get(TokenRecord, LABEL).so_pin_encrypted  # type: ignore[union-attr]
    assert blob and so_pin.encode() not in blob
    kek = find_secret_key(authority.ca_session, KEK_LABEL)
    assert kek is not None
    with lock():
        assert kek[Attribute.EXTRACTABLE] is False and kek[Attribute.SENSITIVE] is True
        assert kek[Attribute.NEVER_EXTRACTABLE] is True
    assert kept_so_pin(authority, LABEL, actor=ACTOR, purpose="unblock") == so_pin
    with pytest.raises(TokenError) as exc:  # a blob moved to another token's row
        decrypt_so_pin(authority, "other", blob)
    assert exc.value.code == "SECRET_BLOB_INVALID"
    with authority.db.read() as s:
        uses = s.execute(select(AuditEvent.outcome).where(
            AuditEvent.action == "token.so_pin.use", AuditEvent.target == LABEL)).all()
    assert uses == [("ok",)]


def test_the_kept_so_pin_unblocks_a_locked_token(enrolled: Authority) -> None:
    for i in range(6):
        with pytest.raises(TokenError):
            UsbKey.open(LABEL, f"wrong-{i:04d}")
    so_pin = kept_so_pin(enrolled, LABEL, actor=ACTOR, purpose="unblock")
    unblock(LABEL, so_pin, "5820-1193")
    with UsbKey.open(LABEL, "5820-1193") as usbkey:
        verify_signature(usbkey.certificate("login"), usbkey.sign("login", b"x"), b"x")


# --- bad input changes nothing ----------------------------------------------------------------
def _snapshot(auth: Authority, label: str) -> tuple[Any, ...]:
    with auth.db.read() as s:
        record = s.get(TokenRecord, label)
        rec = (record.enterprise_id, record.role, record.holder) if record else None
    return (_objects(label), _count(auth, Certificate), rec)


@pytest.mark.parametrize(("changes", "error", "code"), [
    ({"uscc": USCC_B[:-1] + "0"}, InvalidInput, "USCC_CHECKSUM"),
    ({"role": "boss"}, InvalidInput, "ROLE_UNKNOWN"),
    ({"holder": "Zhang San"}, InvalidInput, "HOLDER_MISMATCH"),
    ({"pin": "100Y43"}, InvalidInput, "PIN_WEAK"),
    ({"pin": "not-the-pin"}, TokenError, "PIN_INCORRECT"),
    ({"label": "nobody"}, TokenError, "TOKEN_NOT_FOUND"),
])
def test_bad_enrolment_input_leaves_token_and_database_as_they_were(
        authority: Authority, changes: dict[str, str], error: type[Exception],
        code: str | None) -> None:
    _provision(authority)
    before = _snapshot(authority, LABEL)
    args = {"label": LABEL, "pin": PIN, "uscc": USCC_A, "role": "legal_rep", "holder": "张三"}
    args.update(changes)
    with pytest.raises(error) as exc:
        enroll_on_token(authority, actor=ACTOR, **args)  # type: ignore[arg-type]
    assert exc.value.code == code
    assert _snapshot(authority, LABEL)[1:] == before[1:]
    assert [o for o in _snapshot(authority, LABEL)[0] if o[0] != ObjectClass.DATA] == \
        [o for o in before[0] if o[0] != ObjectClass.DATA]


def test_a_pin_from_the_enterprise_code_is_refused_at_enrolment(authority: Authority) -> None:
    so_pin = generate_so_pin()
    provision(authority.settings.softhsm_conf_path, LABEL, USCC_A[4:14], so_pin)
    with pytest.raises(InvalidInput) as exc:
        enroll_on_token(authority, label=LABEL, pin=USCC_A[4:14], uscc=USCC_A,
                        role="legal_rep", holder="张三", actor=ACTOR)
    assert exc.value.code == "PIN_WEAK" and exc.value.field == "pin"
    assert exc.value.details["reason"] == "enterprise_code"


def test_enrolling_an_unregistered_enterprise_is_refused(authority: Authority) -> None:
    _provision(authority)
    before = _snapshot(authority, LABEL)
    with pytest.raises(NotFound) as exc:
        enroll_on_token(authority, label=LABEL, pin=PIN, uscc="91310000MA1FL0QG5Y",
                        role="agent", holder="王五", actor=ACTOR)
    assert exc.value.code == "ENTERPRISE_NOT_REGISTERED"
    assert _snapshot(authority, LABEL) == before


def test_enrolling_twice_is_refused_and_changes_nothing(enrolled: Authority) -> None:
    before = _snapshot(enrolled, LABEL)
    with pytest.raises(Conflict) as exc:
        enroll_on_token(enrolled, label=LABEL, pin=PIN, uscc=USCC_A, role="legal_rep",
                        holder="张三", actor=ACTOR)
    assert exc.value.code == "TOKEN_ALREADY_ENROLLED"
    assert _snapshot(enrolled, LABEL) == before


class _SealRefused(Authority):
    """The real authority, except that it refuses the seal certificate (as a lint failure
    would), so that the enrolment fails after the login certificate was issued."""

    def issue(self, csr_pem: bytes, **kwargs: Any) -> Issued:
        if kwargs.get("profile") == "seal":
            raise EsealError("CERT_LINT_FAILED", "refused for the test", "测试拒绝")
        return super().issue(csr_pem, **kwargs)


def test_a_failure_half_way_leaves_no_orphan_key_or_certificate(authority: Authority) -> None:
    _provision(authority)
    before = _snapshot(authority, LABEL)
    refusing = _SealRefused(authority.settings, authority.db, authority.ca_session)
    with pytest.raises(EsealError) as exc:
        enroll_on_token(refusing, label=LABEL, pin=PIN, uscc=USCC_A, role="legal_rep",
                        holder="张三", actor=ACTOR)
    assert exc.value.code == "CERT_LINT_FAILED"
    after = _snapshot(authority, LABEL)
    assert [o for o in after[0] if o[0] != ObjectClass.DATA] == []  # no key, no certificate
    assert after[2] == before[2]  # the token is not recorded as enrolled
    with authority.db.read() as s:
        rows = s.execute(select(Certificate.profile, Certificate.status, Certificate.
                                revocation_reason).where(Certificate.token_label == LABEL)
                         ).all()
    # the login certificate issued before the failure is withdrawn, never left valid
    assert rows == [("login", "revoked", "cessationOfOperation")]
    # and the token is still usable for a clean enrolment
    enroll_on_token(authority, label=LABEL, pin=PIN, uscc=USCC_A, role="legal_rep",
                    holder="张三", actor=ACTOR)


def test_refresh_installs_the_cas_current_certificate_and_is_then_a_no_op(
        enrolled: Authority) -> None:
    assert refresh_token(enrolled, label=LABEL, actor=ACTOR) == []
    with UsbKey.open(LABEL, PIN) as usbkey:
        login_id = usbkey.login_key().key_id
        serial = format(usbkey.certificate("login").serial_number, "x")
    public = TokenSession(LABEL, None, rw=True)
    assert delete_objects(public, id=login_id, object_class=ObjectClass.CERTIFICATE) == 1
    public.close()
    assert refresh_token(enrolled, label=LABEL, actor=ACTOR) == [
        {"profile": "login", "serial": serial}]
    with UsbKey.open(LABEL, PIN) as usbkey:
        assert format(usbkey.certificate("login").serial_number, "x") == serial
    with enrolled.db.read() as s:
        refreshes = s.execute(select(AuditEvent.outcome).where(
            AuditEvent.action == "token.refresh", AuditEvent.target == LABEL)).all()
    assert refreshes == [("ok",)]
    assert refresh_token(enrolled, label=LABEL, actor=ACTOR) == []
    with pytest.raises(TokenError) as exc:
        refresh_token(enrolled, label="nobody", actor=ACTOR)
    assert exc.value.code == "TOKEN_NOT_FOUND"
