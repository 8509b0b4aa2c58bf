"""Certificate profiles, judged by tools nobody here wrote: pkilint, OpenSSL, NSS and pyHanko."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import pem as asn1_pem
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    CertificatePoliciesOID,
    ExtendedKeyUsageOID,
    NameOID,
)
from pyhanko.sign.validation.status import PdfSignatureStatus, TimestampSignatureStatus
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator.errors import InvalidCertificateError, PathValidationError
from pyhanko_certvalidator.policy_decl import PKIXValidationParams

from eseal import clock
from eseal.ca.issuer import build_certificate, lint_certificate
from eseal.ca.profiles import (
    PROFILES,
    SubjectInfo,
    add_years,
    subject_name,
    validity_for,
)
from eseal.errors import InvalidInput
from eseal.pki import oids
from eseal.pki.key_policy import check_key_policy
from eseal.pki.oids import profile_of
from eseal.pki.serials import random_serial
from eseal.settings import Settings
from eseal.token import TokenSession, generate_keypair, private_key_for
from eseal.token.softhsm import init_token

BIN = Path(sys.executable).parent
BASE = "http://127.0.0.1:8080"
ORG = "eseal 测试认证中心"
NAME = "𠮷野家（北京）餐饮管理有限公司"
USCC = "91350100M000100Y43"
LEAVES = ("ocsp", "tsa", "login", "seal", "officer")
INFOS = {
    "root": SubjectInfo("eseal Root CA", organization=ORG),
    "issuing": SubjectInfo("eseal Issuing CA", organization=ORG),
    "ocsp": SubjectInfo("eseal OCSP Responder", organization=ORG),
    "tsa": SubjectInfo("eseal Timestamping Authority", organization=ORG),
    "login": SubjectInfo("张三", registered_name=NAME, uscc=USCC),
    "seal": SubjectInfo(NAME, registered_name=NAME, uscc=USCC),
    "officer": SubjectInfo("李四", organization=ORG),
}


@dataclass
class Chain:
    dir: Path
    certs: dict[str, x509.Certificate]
    keys: dict[str, Any]

    def pem(self, name: str) -> str:
        return str(self.dir / f"{name}.pem")


def write_pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def issue(profile: str, key: Any, issuer: str | None, chain: Chain, start: datetime,
          *, public_key: Any = None, info: SubjectInfo | None = None) -> x509.Certificate:
    issuer_cert = chain.certs[issuer] if issuer else None
    nb, na = validity_for(profile, start, issuer_cert)
    pub = public_key if public_key is not None else key.public_key()
    return build_certificate(
        profile, subject=subject_name(profile, info or INFOS[profile]), public_key=pub,
        issuer_cert=issuer_cert, issuer_key=chain.keys[issuer] if issuer else key,
        serial=random_serial(), not_before=nb, not_after=na, base_url=BASE)


def build_chain(out: Path, root_key: Any, issuing_key: Any,
                leaves: tuple[str, ...] = LEAVES) -> Chain:
    out.mkdir(parents=True, exist_ok=True)
    start = clock.now() - timedelta(minutes=1)
    chain = Chain(out, {}, {"root": root_key, "issuing": issuing_key})
    chain.certs["root"] = issue("root", root_key, None, chain, start)
    chain.certs["issuing"] = issue("issuing", issuing_key, "root", chain, start)
    for leaf in leaves:
        chain.keys[leaf] = ec.generate_private_key(ec.SECP256R1())
        chain.certs[leaf] = issue(leaf, chain.keys[leaf], "issuing", chain, start)
    for name, cert in chain.certs.items():
        write_pem(out / f"{name}.pem", cert)
    return chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    return build_chain(tmp_path_factory.mktemp("chain"), ec.generate_private_key(ec.SECP384R1()),
                       ec.generate_private_key(ec.SECP256R1()))


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False, timeout=60)


def issuer_of(profile: str) -> str:
    issuer = PROFILES[profile].issuer_profile
    assert issuer is not None
    return issuer


# --- independent linters and verifiers -----------------------------------------------------

@pytest.mark.parametrize("profile", list(PROFILES))
def test_every_profile_passes_pkilint_at_warning(chain: Chain, profile: str) -> None:
    done = run(str(BIN / "lint_pkix_cert"), "lint", "-s", "WARNING", chain.pem(profile))
    assert done.returncode == 0, done.stdout + done.stderr
    # the in-process lint used for lint-on-issue agrees with the command line
    assert lint_certificate(Path(chain.pem(profile)).read_bytes()) == []


@pytest.mark.parametrize("profile", [p for p in PROFILES if p != "root"])
def test_every_issuer_subject_pair_passes_pkilint_chain_lint(chain: Chain, profile: str) -> None:
    done = run(str(BIN / "lint_pkix_signer_signee_cert_chain"), "lint",
               chain.pem(issuer_of(profile)), chain.pem(profile))
    # default severity is INFO: even the NOTICE for a policy missing in the issuer would count
    assert done.returncode == 0, done.stdout + done.stderr


def test_openssl_verifies_every_leaf_strictly(chain: Chain) -> None:
    done = run("openssl", "verify", "-x509_strict", "-CAfile", chain.pem("root"),
               "-untrusted", chain.pem("issuing"), *(chain.pem(p) for p in LEAVES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count(": OK") == len(LEAVES)


@pytest.mark.parametrize(("profile", "purpose", "accepted"), [
    ("seal", "smimesign", True),
    ("tsa", "timestampsign", True),
    ("login", "sslclient", True),
    ("officer", "sslclient", True),
    ("ocsp", "ocsphelper", True),
    ("login", "smimesign", False),
    ("seal", "sslclient", False),
    ("seal", "timestampsign", False),
])
def test_openssl_purpose_checks_match_the_profile(chain: Chain, profile: str, purpose: str,
                                                  accepted: bool) -> None:
    done = run("openssl", "verify", "-x509_strict", "-purpose", purpose,
               "-CAfile", chain.pem("root"), "-untrusted", chain.pem("issuing"), chain.pem(profile))
    assert (done.returncode == 0) is accepted, done.stdout + done.stderr


def test_ca_chain_signed_with_softhsm_keys_verifies_and_lints(settings: Settings,
                                                              tmp_path: Path) -> None:
    init_token(settings.softhsm_conf_path, "ca", "4913-7720", "so-8812-4401")
    ts = TokenSession("ca", "4913-7720", rw=True).open()
    try:
        root_info = generate_keypair(ts, "ec-p384", "root-ca")
        issuing_info = generate_keypair(ts, "ec-p256", "issuing-ca")
        chain = build_chain(tmp_path / "token-chain", private_key_for(ts, root_info),
                            private_key_for(ts, issuing_info), leaves=("seal", "ocsp"))
    finally:
        ts.close()
    assert isinstance(chain.certs["root"].signature_hash_algorithm, hashes.SHA384)
    assert isinstance(chain.certs["seal"].signature_hash_algorithm, hashes.SHA256)
    done = run("openssl", "verify", "-x509_strict", "-CAfile", chain.pem("root"),
               "-untrusted", chain.pem("issuing"), chain.pem("seal"), chain.pem("ocsp"))
    assert done.returncode == 0, done.stdout + done.stderr
    for issuer, subject in (("root", "issuing"), ("issuing", "seal")):
        done = run(str(BIN / "lint_pkix_signer_signee_cert_chain"), "lint",
                   chain.pem(issuer), chain.pem(subject))
        assert done.returncode == 0, done.stdout + done.stderr
    done = run(str(BIN / "lint_pkix_cert"), "lint", "-s", "WARNING", chain.pem("root"))
    assert done.returncode == 0, done.stdout + done.stderr


# --- names in certificates -------------------------------------------------------------------

def test_registered_name_with_supplementary_character_round_trips_byte_exact(
        chain: Chain) -> None:
    der = chain.certs["seal"].public_bytes(serialization.Encoding.DER)
    subject = asn1_x509.Certificate.load(der)["tbs_certificate"]["subject"]
    values: dict[str, tuple[str, bytes]] = {}
    for rdn in subject.chosen:
        for attr in rdn:
            value = attr["value"]
            # the DirectoryString choice as encoded, and its raw content octets
            inner = value.chosen if hasattr(value, "chosen") else value
            values[attr["type"].dotted] = (type(inner).__name__, inner.contents)
    assert values["2.5.4.10"] == ("UTF8String", NAME.encode("utf-8"))   # O
    assert values["2.5.4.3"] == ("UTF8String", NAME.encode("utf-8"))    # CN
    assert values["2.5.4.97"] == ("UTF8String", f"NTRCN-{USCC}".encode())  # organizationIdentifier
    assert values["2.5.4.6"] == ("PrintableString", b"CN")
    assert NAME.encode("utf-8").startswith(b"\xf0\xa0\xae\xb7")         # 𠮷, four octets
    shown = run("openssl", "x509", "-in", chain.pem("seal"), "-noout", "-subject",
                "-nameopt", "utf8,sep_multiline")
    assert f"O={NAME}" in shown.stdout.replace(" ", "")
    assert f"CN={NAME}" in shown.stdout.replace(" ", "")


def test_login_subject_names_the_holder_inside_the_enterprise(chain: Chain) -> None:
    subject = chain.certs["login"].subject
    assert subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "张三"
    assert subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == NAME
    assert subject.get_attributes_for_oid(oids.ORGANIZATION_IDENTIFIER)[0].value == \
        f"NTRCN-{USCC}"
    officer = chain.certs["officer"].subject
    assert officer.rfc4514_string() == f"CN=李四,O={ORG},C=CN"


# --- relying parties: NSS and pyHanko --------------------------------------------------------

def nss_verdict(chain: Chain, db: Path, cert: Path, usage: str) -> str:
    db.mkdir()
    target = f"sql:{db}"
    assert run("certutil", "-N", "-d", target, "--empty-password").returncode == 0
    for nick, path, trust in (("root", chain.pem("root"), "C,C,C"),
                              ("issuing", chain.pem("issuing"), ",,"),
                              ("leaf", str(cert), ",,")):
        added = run("certutil", "-A", "-d", target, "-n", nick, "-t", trust, "-i", path)
        assert added.returncode == 0, added.stderr
    done = run("certutil", "-V", "-e", "-u", usage, "-d", target, "-n", "leaf")
    return (done.stdout + done.stderr).strip()


def reissue_with_eku(chain: Chain, profile: str, eku: list[x509.ObjectIdentifier]
                     ) -> x509.Certificate:
    """The same certificate with only its EKU changed, signed by the same issuing CA."""
    cert = chain.certs[profile]
    builder = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(cert.issuer)
               .public_key(cert.public_key()).serial_number(random_serial())
               .not_valid_before(cert.not_valid_before_utc)
               .not_valid_after(cert.not_valid_after_utc))
    for ext in cert.extensions:
        value = x509.ExtendedKeyUsage(eku) if ext.oid == x509.ExtendedKeyUsage.oid else ext.value
        builder = builder.add_extension(value, critical=ext.critical)
    return builder.sign(chain.keys["issuing"], hashes.SHA256())


def test_nss_accepts_the_seal_certificate_for_signing(chain: Chain, tmp_path: Path) -> None:
    assert nss_verdict(chain, tmp_path / "db", Path(chain.pem("seal")), "S") == \
        "certutil: certificate is valid"


def test_nss_refuses_login_and_document_signing_only_certificates(chain: Chain,
                                                                  tmp_path: Path) -> None:
    """Why the seal carries emailProtection too: NSS refuses documentSigning alone."""
    login = nss_verdict(chain, tmp_path / "db1", Path(chain.pem("login")), "S")
    assert "certificate is invalid" in login
    doc_only = write_pem(tmp_path / "doc-only.pem",
                         reissue_with_eku(chain, "seal", [oids.DOCUMENT_SIGNING]))
    verdict = nss_verdict(chain, tmp_path / "db2", doc_only, "S")
    assert "certificate is invalid" in verdict, verdict


def asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
    der = cert.public_bytes(serialization.Encoding.PEM)
    return asn1_x509.Certificate.load(asn1_pem.unarmor(der)[2])


def test_pyhanko_default_key_usage_rules_accept_seal_and_tsa(chain: Chain) -> None:
    PdfSignatureStatus.default_usage_constraints().validate(asn1(chain.certs["seal"]))
    TimestampSignatureStatus.default_usage_constraints().validate(asn1(chain.certs["tsa"]))
    with pytest.raises(InvalidCertificateError):
        PdfSignatureStatus.default_usage_constraints().validate(asn1(chain.certs["login"]))
    with pytest.raises(InvalidCertificateError):
        TimestampSignatureStatus.default_usage_constraints().validate(asn1(chain.certs["seal"]))


def test_pyhanko_path_validation_requires_the_seal_policy(chain: Chain) -> None:
    """anyPolicy in the CA certificates lets a leaf's own policy survive RFC 5280 policy
    processing with explicit policy required; a login certificate is not a seal."""
    context = ValidationContext(trust_roots=[asn1(chain.certs["root"])], allow_fetching=False,
                                revocation_mode="soft-fail")
    params = PKIXValidationParams(
        user_initial_policy_set=frozenset({oids.POLICY_ENTERPRISE_SEAL.dotted_string}),
        initial_explicit_policy=True)

    def validate(profile: str) -> Any:
        validator = CertificateValidator(asn1(chain.certs[profile]),
                                         intermediate_certs=[asn1(chain.certs["issuing"])],
                                         validation_context=context, pkix_params=params)
        return asyncio.run(validator.async_validate_usage({"non_repudiation"}))

    assert len(validate("seal")) == 3
    with pytest.raises(PathValidationError):
        validate("login")


# --- what each profile contains --------------------------------------------------------------

def ext(cert: x509.Certificate, cls: type[Any]) -> x509.Extension[Any]:
    return cert.extensions.get_extension_for_class(cls)


EXPECTED_KU = {
    "root": {"key_cert_sign", "crl_sign"},
    "issuing": {"key_cert_sign", "crl_sign"},
    "ocsp": {"digital_signature"},
    "tsa": {"digital_signature", "content_commitment"},
    "login": {"digital_signature"},
    "seal": {"digital_signature", "content_commitment"},
    "officer": {"digital_signature"},
}
EXPECTED_EKU = {
    "ocsp": ([ExtendedKeyUsageOID.OCSP_SIGNING], False),
    "tsa": ([ExtendedKeyUsageOID.TIME_STAMPING], True),
    "login": ([ExtendedKeyUsageOID.CLIENT_AUTH], False),
    "seal": ([oids.DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION], False),
    "officer": ([ExtendedKeyUsageOID.CLIENT_AUTH], False),
}


@pytest.mark.parametrize("profile", list(PROFILES))
def test_profile_extensions(chain: Chain, profile: str) -> None:
    cert = chain.certs[profile]
    ku = ext(cert, x509.KeyUsage)
    assert ku.critical
    flags = {f for f in ("digital_signature", "content_commitment", "key_encipherment",
                         "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign")
             if getattr(ku.value, f)}
    assert flags == EXPECTED_KU[profile]
    if profile in EXPECTED_EKU:
        eku = ext(cert, x509.ExtendedKeyUsage)
        assert (list(eku.value), eku.critical) == EXPECTED_EKU[profile]
    else:
        with pytest.raises(x509.ExtensionNotFound):
            ext(cert, x509.ExtendedKeyUsage)
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints) \
        if profile in ("root", "issuing") else None
    if bc is not None:
        assert bc.critical and bc.value.ca
        assert bc.value.path_length == (0 if profile == "issuing" else None)
    ski = ext(cert, x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    if profile != "root":
        issuer_ski = ext(chain.certs[issuer_of(profile)], x509.SubjectKeyIdentifier).value
        assert ext(cert, x509.AuthorityKeyIdentifier).value.key_identifier == issuer_ski.digest
    policies = [p.policy_identifier for p in ext(cert, x509.CertificatePolicies).value]
    assert policies[0] == PROFILES[profile].policy
    assert (CertificatePoliciesOID.ANY_POLICY in policies) is (profile in ("root", "issuing"))
    assert profile_of(cert) == profile
    has_nocheck = any(e.oid == oids.OCSP_NOCHECK for e in cert.extensions)
    assert has_nocheck is (profile == "ocsp")
    assert cert.serial_number > 0 and cert.version == x509.Version.v3


@pytest.mark.parametrize(("profile", "crl", "ocsp", "ca_issuers"), [
    ("root", None, None, None),
    ("issuing", "/crl/root.crl", None, "/ca/root.crt"),
    ("ocsp", None, None, "/ca/issuing.crt"),
    ("tsa", "/crl/issuing.crl", "/ocsp", "/ca/issuing.crt"),
    ("login", "/crl/issuing.crl", "/ocsp", "/ca/issuing.crt"),
    ("seal", "/crl/issuing.crl", "/ocsp", "/ca/issuing.crt"),
    ("officer", "/crl/issuing.crl", "/ocsp", "/ca/issuing.crt"),
])
def test_revocation_pointers(chain: Chain, profile: str, crl: str | None, ocsp: str | None,
                             ca_issuers: str | None) -> None:
    cert = chain.certs[profile]
    try:
        dps = ext(cert, x509.CRLDistributionPoints).value
        found_crl = [n.value for dp in dps for n in (dp.full_name or [])]
    except x509.ExtensionNotFound:
        found_crl = []
    assert found_crl == ([BASE + crl] if crl else [])
    try:
        aia = list(ext(cert, x509.AuthorityInformationAccess).value)
    except x509.ExtensionNotFound:
        aia = []
    by_method = {(a.access_method, a.access_location.value) for a in aia}
    expected = set()
    if ocsp:
        expected.add((AuthorityInformationAccessOID.OCSP, BASE + ocsp))
    if ca_issuers:
        expected.add((AuthorityInformationAccessOID.CA_ISSUERS, BASE + ca_issuers))
    assert by_method == expected


def test_validity_and_signature_hash_per_profile(chain: Chain) -> None:
    years = {"root": 20, "issuing": 10, "ocsp": 2, "tsa": 5, "login": 1, "seal": 1, "officer": 1}
    for profile, cert in chain.certs.items():
        start = cert.not_valid_before_utc
        assert cert.not_valid_after_utc == add_years(start, years[profile]), profile
        expected = hashes.SHA384 if profile in ("root", "issuing") else hashes.SHA256
        assert isinstance(cert.signature_hash_algorithm, expected), profile


def test_validity_is_cut_at_the_issuers_end(chain: Chain) -> None:
    issuing = chain.certs["issuing"]
    late = issuing.not_valid_after_utc - timedelta(days=100)
    nb, na = validity_for("tsa", late, issuing)
    assert (nb, na) == (late, issuing.not_valid_after_utc)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = build_certificate("tsa", subject=subject_name("tsa", INFOS["tsa"]),
                             public_key=key.public_key(), issuer_cert=issuing,
                             issuer_key=chain.keys["issuing"], serial=random_serial(),
                             not_before=nb, not_after=na, base_url=BASE)
    assert cert.not_valid_after_utc == issuing.not_valid_after_utc
    assert add_years(datetime(2028, 2, 29, 12, tzinfo=UTC), 1) == datetime(2029, 2, 28, 12,
                                                                           tzinfo=UTC)


# --- refusals ----------------------------------------------------------------------------------

def refused(code: str, profile: str, chain: Chain, **overrides: Any) -> InvalidInput:
    key = ec.generate_private_key(ec.SECP256R1())
    issuer = PROFILES[profile].issuer_profile
    start = chain.certs["issuing"].not_valid_before_utc + timedelta(minutes=1)
    args: dict[str, Any] = dict(
        subject=subject_name(profile, INFOS[profile]), public_key=key.public_key(),
        issuer_cert=chain.certs[issuer] if issuer else None,
        issuer_key=chain.keys[issuer] if issuer else key, serial=random_serial(),
        not_before=start, not_after=start + timedelta(days=365), base_url=BASE)
    args.update(overrides)
    with pytest.raises(InvalidInput) as exc:
        build_certificate(profile, **args)
    assert exc.value.code == code, exc.value.message
    return exc.value


def test_validity_beyond_the_issuer_is_refused(chain: Chain) -> None:
    end = chain.certs["issuing"].not_valid_after_utc + timedelta(seconds=1)
    refused("VALIDITY_BEYOND_ISSUER", "seal", chain, not_after=end)
    start = chain.certs["issuing"].not_valid_before_utc - timedelta(seconds=1)
    refused("VALIDITY_BEYOND_ISSUER", "seal", chain, not_before=start)
    now = chain.certs["issuing"].not_valid_before_utc + timedelta(days=1)
    refused("VALIDITY_INVALID", "seal", chain, not_before=now, not_after=now)
    refused("VALIDITY_INVALID", "seal", chain, not_before=now.replace(tzinfo=None))


def test_wrong_issuer_or_issuer_key_is_refused(chain: Chain) -> None:
    refused("WRONG_ISSUER", "seal", chain, issuer_cert=chain.certs["root"],
            issuer_key=chain.keys["root"])
    refused("WRONG_ISSUER", "issuing", chain, issuer_cert=chain.certs["issuing"],
            issuer_key=chain.keys["issuing"])
    refused("ISSUER_KEY_MISMATCH", "seal", chain, issuer_key=chain.keys["root"])
    refused("ISSUER_KEY_MISMATCH", "root", chain, issuer_key=ec.generate_private_key(
        ec.SECP384R1()), public_key=ec.generate_private_key(ec.SECP384R1()).public_key())


def test_ca_profiles_require_their_key_type(chain: Chain) -> None:
    # the root is P-384, the issuing CA P-256; the default test key here is P-256
    refused("KEY_PROFILE_MISMATCH", "root", chain)
    refused("KEY_PROFILE_MISMATCH", "issuing", chain,
            public_key=ec.generate_private_key(ec.SECP384R1()).public_key())


@pytest.mark.parametrize("serial", [0, -1, 2**159, True])
def test_serials_outside_rfc5280_are_refused(chain: Chain, serial: int) -> None:
    refused("SERIAL_INVALID", "seal", chain, serial=serial)


@pytest.mark.parametrize("url", ["127.0.0.1:8080", "ftp://x.example", "http://a b", ""])
def test_base_url_must_be_http(chain: Chain, url: str) -> None:
    refused("BASE_URL_INVALID", "login", chain, base_url=url)


def test_random_serials_are_positive_128_bit_and_fit_rfc5280() -> None:
    serials = [random_serial() for _ in range(2000)]
    assert len(set(serials)) == len(serials)
    assert all(0 < s < 2**128 for s in serials)
    # DER needs a 0x00 octet when the top bit is set: 17 octets, inside the 20 allowed
    assert max((s.bit_length() + 8) // 8 for s in serials) == 17
    assert any(s.bit_length() == 128 for s in serials)


def test_key_policy() -> None:
    for good in (ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP384R1()),
                 rsa.generate_private_key(65537, 2048)):
        check_key_policy(good.public_key())
    cases = [
        (rsa.generate_private_key(65537, 1024), "KEY_TOO_WEAK"),
        (ec.generate_private_key(ec.SECP256K1()), "KEY_CURVE_UNSUPPORTED"),
        (ec.generate_private_key(ec.SECP521R1()), "KEY_CURVE_UNSUPPORTED"),
        (ed25519.Ed25519PrivateKey.generate(), "KEY_TYPE_UNSUPPORTED"),
    ]
    for key, code in cases:
        with pytest.raises(InvalidInput) as exc:
            check_key_policy(key.public_key())
        assert (exc.value.code, exc.value.field) == (code, "public_key")


def test_weak_subject_key_is_refused_before_signing(chain: Chain) -> None:
    weak = rsa.generate_private_key(65537, 1024).public_key()
    refused("KEY_TOO_WEAK", "login", chain, public_key=weak)


def test_rsa_2048_login_certificate_lints_clean(chain: Chain) -> None:
    key = rsa.generate_private_key(65537, 2048)
    start = chain.certs["issuing"].not_valid_before_utc
    cert = issue("login", key, "issuing", chain, start)
    assert lint_certificate(cert.public_bytes(serialization.Encoding.DER)) == []


def test_subject_rules() -> None:
    def refusal(profile: str, info: SubjectInfo) -> str:
        with pytest.raises(InvalidInput) as exc:
            subject_name(profile, info)
        return exc.value.code

    assert refusal("seal", SubjectInfo("吉野家（北京）餐饮管理有限公司", registered_name=NAME,
                                       uscc=USCC)) == "SEAL_NAME_MISMATCH"
    assert refusal("seal", SubjectInfo(NAME, registered_name=NAME)) == "SUBJECT_INCOMPLETE"
    assert refusal("login", SubjectInfo("张三", uscc=USCC)) == "SUBJECT_INCOMPLETE"
    assert refusal("officer", SubjectInfo("李四")) == "SUBJECT_INCOMPLETE"
    assert refusal("login", SubjectInfo("张三", registered_name=NAME,
                                        uscc="91350100M000100Y44")) == "USCC_CHECKSUM"
    assert refusal("login", SubjectInfo(" 张三", registered_name=NAME,
                                        uscc=USCC)) == "NAME_WHITESPACE"
    assert refusal("seal", SubjectInfo("\uf900", registered_name="\uf900",
                                       uscc=USCC)) == "NAME_NOT_NFC"
    long_name = "公" * 65
    assert refusal("seal", SubjectInfo(long_name, registered_name=long_name,
                                       uscc=USCC)) == "NAME_TOO_LONG_FOR_CERTIFICATE"
    assert refusal("nope", SubjectInfo("x")) == "PROFILE_UNKNOWN"


def test_profile_of_is_none_without_an_eseal_policy(chain: Chain) -> None:
    plain = reissue_with_eku(chain, "login", [ExtendedKeyUsageOID.CLIENT_AUTH])
    assert profile_of(plain) == "login"
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "no policy")])
    bare = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
            .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC)).sign(key, hashes.SHA256()))
    assert profile_of(bare) is None


def test_lint_certificate_reports_what_pkilint_finds() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bad CA")])
    bad = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
           .public_key(key.public_key()).serial_number(5)
           .not_valid_before(datetime(2026, 1, 1, tzinfo=UTC))
           .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
           .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
           .sign(key, hashes.SHA256()))
    findings = lint_certificate(bad.public_bytes(serialization.Encoding.PEM))
    assert any("basic_constraints_extension_not_critical" in f for f in findings)
    assert any("ca_certificate_no_ku_extension" in f for f in findings)
    with pytest.raises(InvalidInput) as exc:
        lint_certificate(b"not a certificate")
    assert exc.value.code == "CERTIFICATE_UNPARSEABLE"
