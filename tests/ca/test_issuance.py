"""Issuance: CA keys stay on the token, certificates pass independent linting, and every
refusal is clear, changes nothing and is audited."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from certkit import TOOLS
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute
from sqlalchemy import func, select
from threadkit import in_threads

from eseal.ca.authority import Authority
from eseal.errors import EsealError
from eseal.ra.enterprises import deregister_enterprise
from eseal.store.models import AuditEvent, Certificate, Enterprise
from eseal.token import find_private_key, lock
from eseal.token.keys import key_id_for
from tests.conftest import NAME_A, NAME_B, USCC_A, USCC_B, make_csr

BIN = TOOLS


def pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def counts(auth: Authority) -> tuple[int, int, int]:
    with auth.db.read() as s:
        return (s.execute(select(func.count()).select_from(Certificate)).scalar_one(),
                s.execute(select(func.count()).select_from(Enterprise)).scalar_one(),
                s.execute(select(func.count()).select_from(AuditEvent)).scalar_one())


def test_ca_keys_never_leave_the_token(authority: Authority) -> None:
    for role in ("root", "issuing", "ocsp", "tsa", "audit"):
        key = authority.key(role)
        handle = find_private_key(authority.ca_session, id=key.key_id)
        with lock():
            assert handle[Attribute.EXTRACTABLE] is False
            assert handle[Attribute.NEVER_EXTRACTABLE] is True
            assert handle[Attribute.SENSITIVE] is True
            with pytest.raises(Exception):  # noqa: B017 - the token refuses, any way it likes
                handle[Attribute.VALUE]
        if role != "audit":
            assert key.key_id == key_id_for(authority.certificate(role).public_key())


def test_issued_chain_passes_pkilint_and_openssl(authority: Authority, tmp_path: Path) -> None:
    login = authority.issue(make_csr(), uscc=USCC_A, profile="login", holder="王五",
                            actor="officer:test")
    seal = authority.issue(make_csr(), uscc=USCC_A, profile="seal", holder="张三",
                           actor="officer:test")
    root, issuing = authority.certificate("root"), authority.certificate("issuing")
    (tmp_path / "root.pem").write_bytes(pem(root))
    (tmp_path / "issuing.pem").write_bytes(pem(issuing))
    leaves = {"login": login.certificate, "seal": seal.certificate,
              "ocsp": authority.certificate("ocsp"), "tsa": authority.certificate("tsa")}
    for name, cert in {"root": root, "issuing": issuing, **leaves}.items():
        path = tmp_path / f"{name}.pem"
        path.write_bytes(pem(cert))
        lint = subprocess.run([BIN / "lint_pkix_cert", "lint", "-s", "WARNING", path],
                              capture_output=True, text=True)
        assert lint.returncode == 0, (name, lint.stdout, lint.stderr)
    for name in leaves:
        chain = subprocess.run([BIN / "lint_pkix_signer_signee_cert_chain", "lint",
                                tmp_path / "issuing.pem", tmp_path / f"{name}.pem"],
                               capture_output=True, text=True)
        assert chain.returncode == 0, (name, chain.stdout, chain.stderr)
        verify = subprocess.run(["openssl", "verify", "-CAfile", tmp_path / "root.pem",
                                 "-untrusted", tmp_path / "issuing.pem",
                                 tmp_path / f"{name}.pem"], capture_output=True, text=True)
        assert verify.returncode == 0 and ": OK" in verify.stdout, verify.stderr


def test_rare_character_name_round_trips_byte_exact(authority: Authority) -> None:
    seal = authority.issue(make_csr(), uscc=USCC_A, profile="seal", holder="张三",
                           actor="officer:test")
    parsed = x509.load_der_x509_certificate(seal.certificate.public_bytes(
        serialization.Encoding.DER))
    org = parsed.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value
    cn = parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert isinstance(org, str) and org.encode() == NAME_A.encode() == cn.encode()
    assert "\U00020bb7".encode() in parsed.public_bytes(serialization.Encoding.DER)
    assert authority.enterprise(USCC_A).name == NAME_A


def _bad_signature_csr() -> bytes:
    der = bytearray(x509.load_pem_x509_csr(make_csr()).public_bytes(serialization.Encoding.DER))
    der[-5] ^= 0x01  # inside the signature value
    return bytes(der)


def _csr_with_key(key: object) -> bytes:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(
        key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)  # type: ignore[arg-type]


REUSED_KEY = ec.generate_private_key(ec.SECP256R1())
USCC_UNREGISTERED = "91350200MA2XY0123A"  # valid check character, never registered

BAD_REQUESTS = {
    "garbage": (lambda: b"\x00garbage\xff", USCC_A, "login", "CSR_MALFORMED"),
    "trailing junk": (lambda: make_csr() + b"junk after the PEM\n", USCC_A, "login",
                      "CSR_TRAILING_DATA"),
    "broken signature": (_bad_signature_csr, USCC_A, "login", "CSR_BAD_SIGNATURE"),
    "rsa-1024": (lambda: _csr_with_key(rsa.generate_private_key(65537, 1024)), USCC_A,
                 "login", "KEY_TOO_WEAK"),
    "unknown curve": (lambda: _csr_with_key(ec.generate_private_key(ec.SECP256K1())), USCC_A,
                      "login", "KEY_CURVE_UNSUPPORTED"),
    "key certified under another profile": (lambda: make_csr(REUSED_KEY), USCC_A, "seal",
                                            "KEY_REUSED_ACROSS_PROFILES"),
    "bad credit code": (lambda: make_csr(), USCC_A[:-1] + "0", "login", "USCC_CHECKSUM"),
    "unregistered enterprise": (lambda: make_csr(), USCC_UNREGISTERED, "login",
                                "ENTERPRISE_NOT_REGISTERED"),
    "pinyin name": (lambda: make_csr(organization="Jiyejia (Fujian) Canyin Guanli Youxian Gongsi"),
                    USCC_A, "login", "NAME_MISMATCH"),
    "other enterprise's name": (lambda: make_csr(organization=NAME_B), USCC_A, "login",
                                "NAME_MISMATCH"),
    "other enterprise's code": (lambda: make_csr(org_id=f"NTRCN-{USCC_B}"), USCC_A, "login",
                                "USCC_MISMATCH"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_bad_request_is_refused_with_its_own_code_and_audited(authority: Authority,
                                                              case: str) -> None:
    authority.issue(make_csr(REUSED_KEY), uscc=USCC_A, profile="login", holder="王五",
                    actor="officer:test")
    make, uscc, profile, code = BAD_REQUESTS[case]
    csr = make()
    certs, ents, events = counts(authority)
    with pytest.raises(EsealError) as exc:
        authority.issue(csr, uscc=uscc, profile=profile, holder="王五", actor="officer:test")
    assert exc.value.code == code, exc.value.message
    assert exc.value.field
    assert counts(authority) == (certs, ents, events + 1)
    with authority.db.read() as s:
        last = s.execute(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).scalar_one()
    assert (last.action, last.outcome, last.details["code"]) == ("cert.issue", "refused", code)


def test_deregistered_enterprise_gets_nothing_new(authority: Authority) -> None:
    deregister_enterprise(authority, USCC_B, actor="officer:test")
    with pytest.raises(EsealError) as exc:
        authority.issue(make_csr(), uscc=USCC_B, profile="login", holder="李四",
                        actor="officer:test")
    assert exc.value.code == "ENTERPRISE_NOT_ACTIVE"


def test_four_threads_issue_two_thousand_distinct_stored_certificates(
        authority: Authority) -> None:
    csrs = [[make_csr() for _ in range(500)] for _ in range(4)]
    serials: list[list[str]] = [[] for _ in range(4)]

    def work(i: int) -> None:
        for csr in csrs[i]:
            serials[i].append(authority.issue(csr, uscc=USCC_B, profile="login",
                                              holder=f"员工{i}", actor="officer:test").serial)

    errors = in_threads(work, 4)
    assert not errors
    everything = [s for chunk in serials for s in chunk]
    assert len(everything) == len(set(everything)) == 2000
    with authority.db.read() as s:
        stored = s.execute(select(func.count()).select_from(Certificate)
                           .where(Certificate.profile == "login")).scalar_one()
        report = authority.audit.verify(s)
    assert stored == 2000
    assert report.ok, report.findings


def test_lint_on_issue_setting_lints_every_certificate_inside_the_ca(
        authority: Authority, monkeypatch: pytest.MonkeyPatch) -> None:
    from eseal.ca import issuer

    linted: list[list[str]] = []
    real = issuer.lint_der

    def spy(der: bytes, severity: str = "WARNING") -> list[str]:  # the real pkilint
        linted.append(real(der, severity))
        return linted[-1]

    monkeypatch.setattr(issuer, "lint_der", spy)
    authority.issue(make_csr(), uscc=USCC_A, profile="login", holder="王五",
                    actor="officer:test")
    assert linted == [[]]  # on by default (~2 ms a certificate), before the token signs
    unlinted = Authority(authority.settings.replace(lint_on_issue=False), authority.db,
                         authority.ca_session)
    unlinted.issue(make_csr(), uscc=USCC_A, profile="seal", holder="张三",
                   actor="officer:test")
    assert linted == [[]]  # switched off: not linted
