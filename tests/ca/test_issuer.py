"""The one issuance path: every certificate is made from an ``IssuanceRequest`` through
``Authority.certify``, linted with pkilint *before* the CA token signs, and the certificate
the token signed is exactly the one that was linted."""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import func, select

from eseal import clock
from eseal.ca import issuer, profiles
from eseal.ca.authority import Authority
from eseal.ca.issuance import IssuanceRequest
from eseal.errors import EsealError
from eseal.ra import renewal
from eseal.ra.enrollment import enroll_on_token
from eseal.ra.enrollment_codes import create_enrollment_code, redeem_code
from eseal.ra.rekey import rekey
from eseal.ra.staff import provision_staff_token
from eseal.settings import Settings
from eseal.store.models import AuditEvent, Certificate
from eseal.token.signer import _TokenKeyMixin
from tests.conftest import NAME_A, USCC_A, make_csr
from tests.ra.test_renewal import _proof
from tests.token.test_usbkey import PIN, _provision

ESEAL = Path(__file__).resolve().parents[2] / "eseal"
ACTOR = "officer:test"


@pytest.fixture
def token_signatures(authority: Authority,
                     monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bytes]]:
    """The key id of every signature the CA token makes (the real token still signs)."""
    made: list[bytes] = []
    real = _TokenKeyMixin._sign_raw

    def counting(self: Any, data: bytes, mechanism: Any, param: Any = None) -> bytes:
        made.append(self.key_id)
        return real(self, data, mechanism, param)

    monkeypatch.setattr(_TokenKeyMixin, "_sign_raw", counting)
    yield made


def _rows(auth: Authority) -> int:
    with auth.db.read() as s:
        return s.execute(select(func.count()).select_from(Certificate)).scalar_one()


def _events(auth: Authority) -> list[AuditEvent]:
    with auth.db.read() as s:
        return list(s.execute(select(AuditEvent).order_by(AuditEvent.id)).scalars())


def test_lint_runs_on_every_issuance_by_default() -> None:
    assert Settings().lint_on_issue is True


def test_a_certificate_breaking_rfc5280_is_refused_before_the_token_signs(
        authority: Authority, token_signatures: list[bytes],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A profile bug (an end-entity login certificate with keyCertSign, which would let a
    holder's key sign certificates) is caught by the lint, and the issuing key is never
    used: no row, no issuance event, a refusal in the log."""
    issuing = authority.key("issuing").key_id
    login = profiles.PROFILES["login"]
    monkeypatch.setitem(profiles.PROFILES, "login", dataclasses.replace(
        login, key_usage=frozenset({"digital_signature", "key_cert_sign"})))
    rows, events = _rows(authority), len(_events(authority))
    with pytest.raises(EsealError) as exc:
        authority.issue(make_csr(), uscc=USCC_A, profile="login", holder="王五", actor=ACTOR)
    assert exc.value.code == "CERT_LINT_FAILED"
    assert "ee_certificate_keycertsign_keyusage_set" in exc.value.message
    assert issuing not in token_signatures
    assert _rows(authority) == rows
    new = _events(authority)[events:]
    assert [(e.action, e.outcome) for e in new] == [("cert.issue", "refused")]
    assert new[0].details["code"] == "CERT_LINT_FAILED"

    # The lint is what stopped it: switched off, the same request is signed by the token.
    unlinted = Authority(authority.settings.replace(lint_on_issue=False), authority.db,
                         authority.ca_session)
    issued = unlinted.issue(make_csr(), uscc=USCC_A, profile="login", holder="王五",
                            actor=ACTOR)
    assert token_signatures.count(issuing) == 1
    assert issuer.lint_certificate(issued.pem) != []


def test_a_clean_certificate_costs_exactly_one_token_signature(
        authority: Authority, token_signatures: list[bytes]) -> None:
    issuing = authority.key("issuing").key_id
    issued = authority.issue(make_csr(), uscc=USCC_A, profile="seal", holder="张三",
                             actor=ACTOR)
    assert token_signatures.count(issuing) == 1
    assert issuer.lint_certificate(issued.pem) == []
    issued.certificate.verify_directly_issued_by(authority.certificate("issuing"))
    event = _events(authority)[-1]
    assert (event.action, event.outcome) == ("cert.issue", "ok")
    assert event.details["lint"] == "pkilint"


def test_a_signed_certificate_differing_from_the_linted_one_is_refused(
        authority: Authority) -> None:
    """The guard Boulder keeps between precertificate and certificate: here a lint issuer
    of another algorithm makes the to-be-signed bytes differ (the signature algorithm)."""
    key = authority.key("issuing")
    with authority.db.read() as s:
        ent = authority.enterprise_row(s, USCC_A)
    prepared = profiles.prepare_certificate(
        "login", subject=profiles.subject_name("login", profiles.SubjectInfo(
            common_name="王五", registered_name=ent.name, uscc=ent.uscc)),
        public_key=ec.generate_private_key(ec.SECP256R1()).public_key(),
        issuer_cert=authority.certificate("issuing"), issuer_public_key=key.public_key(),
        serial=12345, not_before=authority.certificate("issuing").not_valid_before_utc,
        not_after=authority.certificate("issuing").not_valid_after_utc,
        base_url=authority.settings.base_url)
    assert issuer.sign_certificate(prepared, key).serial_number == 12345
    with pytest.raises(EsealError) as exc:
        issuer.sign_certificate(prepared, key,
                                lint_key=rsa.generate_private_key(65537, 2048))
    assert exc.value.code == "CERT_TBS_MISMATCH"


def test_every_issuance_path_is_certified_and_linted(
        authority: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    """Officer CSR, enrolment on a token, enrolment by code, a staff token, renewal and
    re-key: each new certificate has one issuance event that says the lint ran."""
    auth = authority
    before = {r for r, in _serials(auth)}
    auth.issue(make_csr(), uscc=USCC_A, profile="login", holder="王五", actor=ACTOR)
    _provision(auth, "zhang")
    enroll_on_token(auth, label="zhang", pin=PIN, uscc=USCC_A, role="legal_rep",
                    holder="张三", actor=ACTOR)
    code = create_enrollment_code(auth, role="agent", holder="赵六", uscc=USCC_A, actor=ACTOR)
    redeem_code(auth, code=code.code, label="zhao", csrs={"login": make_csr()})
    staff = create_enrollment_code(auth, role="auditor", holder="钱七", uscc=None, actor=ACTOR)
    redeem_code(auth, code=staff.code, label="qian", csrs={"login": make_csr()})
    provision_staff_token(auth, label="sun", name="孙八", actor=ACTOR)
    old_key = ec.generate_private_key(ec.SECP256R1())
    old = auth.issue(make_csr(old_key), uscc=USCC_A, profile="seal", holder="张三",
                     actor=ACTOR)
    new_csr = make_csr(common_name=NAME_A)
    issued_at = clock.now()
    _at(monkeypatch, issued_at + timedelta(days=300))  # the seal's renewal window is open
    rekeyed = rekey(auth, old.serial, new_csr, _proof(old_key, new_csr), "holder:test")
    _at(monkeypatch, issued_at + timedelta(days=650))  # and now the re-keyed one's
    renewed = renewal.renew_one(auth, rekeyed.serial, actor=ACTOR)
    assert isinstance(renewed, renewal.Renewal)

    made = {r for r, in _serials(auth)} - before
    assert len(made) == 1 + 2 + 1 + 1 + 1 + 1 + 1 + 1
    events: dict[str, list[str]] = {}
    for e in _events(auth):
        details = e.details
        serial = details.get("new_serial") or details.get("serial")
        if e.outcome == "ok" and e.action in ("cert.issue", "cert.renew", "cert.rekey"):
            events.setdefault(serial, []).append(f"{e.action}:{details['lint']}")
    assert {s: events.get(s) for s in made} == {
        s: [f"{_action(s, rekeyed.serial, renewed.serial)}:pkilint"] for s in made}
    assert issuer.lint_certificate(renewed.issued.pem) == []


def _serials(auth: Authority) -> list[tuple[str]]:
    with auth.db.read() as s:
        return [tuple(r) for r in s.execute(select(Certificate.serial)).all()]


def _at(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    monkeypatch.setenv("ESEAL_NOW", when.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _action(serial: str, rekeyed: str, renewed: str) -> str:
    return {rekeyed: "cert.rekey", renewed: "cert.renew"}.get(serial, "cert.issue")


def _calls(name: str) -> list[tuple[str, str]]:
    """(file, enclosing function) of every call to ``name`` (a function or method) in eseal."""
    found = []
    for path in sorted(ESEAL.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in ast.walk(tree):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    f = node.func
                    called = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", None)
                    if called == name:
                        found.append((str(path.relative_to(ESEAL)), fn.name))
    return sorted(set(found))


def test_certificates_are_laid_out_and_signed_in_one_place_each() -> None:
    """Statically: only profiles builds a certificate, only the issuer signs one, and only
    ``certify`` (every end-entity certificate) and ``ca.home._create_ca`` (the CA's own)
    reach it."""
    assert _calls("CertificateBuilder") == [("ca/profiles.py", "prepare_certificate")]
    assert _calls("prepare_certificate") == [("ca/authority.py", "_draft"),
                                             ("ca/issuer.py", "build_certificate")]
    assert _calls("sign_certificate") == [("ca/authority.py", "_draft"),
                                          ("ca/issuer.py", "build_certificate")]
    assert _calls("build_certificate") == [("ca/home.py", "_create_ca")]
    assert _calls("_draft") == [("ca/authority.py", "prepare")]
    assert _calls("prepare") == [("ca/authority.py", "certify"), ("ra/ledger_seal.py", "_create"),
                                 ("ra/rename.py", "rename_enterprise")]
    # each RA path hands an IssuanceRequest to certify (or, recording several certificates in
    # one transaction of its own, to prepare + record)
    assert {f for f, _ in _calls("certify")} == {
        "ca/authority.py", "ra/enrollment_codes.py", "ra/rekey.py", "ra/renewal.py",
        "ra/staff.py"}
    assert IssuanceRequest.__dataclass_params__.frozen  # type: ignore[attr-defined]


def _pkilint_results(results: list[Any]) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(r.validator.name, r.node.path, tuple(str(d) for d in r.finding_descriptions))
            for r in results]


def test_the_faster_walk_finds_exactly_what_pkilint_finds(authority: Authority) -> None:
    """The issuer's walk only skips validators that cannot match: on the CA's certificates,
    every end-entity profile and certificates with known faults, it returns pkilint's own
    results in pkilint's order."""
    from datetime import UTC

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import NameOID

    ders = [authority.certificate(r).public_bytes(serialization.Encoding.DER)
            for r in ("root", "issuing", "ocsp", "tsa")]
    for profile in ("login", "seal"):
        ders.append(authority.issue(make_csr(), uscc=USCC_A, profile=profile, holder="张三",
                                    actor=ACTOR).certificate.public_bytes(
                                        serialization.Encoding.DER))
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad")])
    base = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(5)
            .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC)))
    faulty = [
        base.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False),
        base.add_extension(x509.KeyUsage(True, False, False, False, False, True, False, False,
                                         False), critical=True),
        base.add_extension(x509.SubjectAlternativeName([x509.DNSName("")]), critical=False),
    ]
    ders += [b.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)
             for b in faulty]
    container, load, _ = issuer._pkix_validator()
    found_any = 0
    for der in ders:
        ours = _pkilint_results(issuer._walker().walk(container, load(der, "c").root, []))
        theirs = _pkilint_results(container.validate(load(der, "c").root))
        assert ours == theirs
        found_any += any(f for _, _, f in ours)
    assert found_any >= len(faulty)
