"""Full CRLs: what cryptography, pkilint and openssl make of the DER that crl.py assembles."""

from __future__ import annotations

import datetime as dt
import random
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from certkit import TOOLS, hierarchy, issue, pem, token_key
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from eseal.ca.crl import MAX_SERIAL, REASONS, RevokedEntry, build_crl
from eseal.errors import InvalidInput
from eseal.settings import Settings

NOW = dt.datetime(2026, 3, 1, 8, 0, 0, tzinfo=dt.UTC)
LINT_CRL = TOOLS / "lint_crl"


# --- a small test hierarchy: root (P-384) -> issuing (P-256) -> leaves -------------------
@dataclass
class Pki:
    dir: Path
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    issuing: x509.Certificate
    issuing_key: ec.EllipticCurvePrivateKey
    leaves: list[x509.Certificate]

    def write(self, name: str, data: bytes) -> Path:
        path = self.dir / name
        path.write_bytes(data)
        return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    root, root_key, issuing, issuing_key = hierarchy(NOW)
    leaves = [issue(f"leaf {i}", ec.generate_private_key(ec.SECP256R1()).public_key(),
                    issuing, issuing_key, kind="leaf", now=NOW) for i in range(3)]
    p = Pki(tmp_path_factory.mktemp("pki"), root, root_key, issuing, issuing_key, leaves)
    p.write("root.pem", pem(root))
    p.write("issuing.pem", pem(issuing))
    for i, leaf in enumerate(leaves):
        p.write(f"leaf{i}.pem", pem(leaf))
    return p


def _crl(pki: Pki, entries: list[RevokedEntry], *, root: bool = False, number: int = 1,
         key: ec.EllipticCurvePrivateKey | None = None,
         issuer: x509.Certificate | None = None) -> bytes:
    return build_crl(issuer_cert=issuer or (pki.root if root else pki.issuing),
                     issuer_key=key or (pki.root_key if root else pki.issuing_key),
                     entries=entries, number=number, this_update=NOW,
                     next_update=NOW + dt.timedelta(hours=24))


def _openssl_verify(pki: Pki, leaf: int, root_crl: bytes, issuing_crl: bytes,
                    issuing: str = "issuing.pem") -> subprocess.CompletedProcess[str]:
    crls = pki.write("crls.pem", b"".join(
        x509.load_der_x509_crl(c).public_bytes(serialization.Encoding.PEM)
        for c in (root_crl, issuing_crl)))
    return subprocess.run(
        ["openssl", "verify", "-attime", str(int((NOW + dt.timedelta(hours=1)).timestamp())),
         "-CAfile", str(pki.dir / "root.pem"), "-untrusted", str(pki.dir / issuing),
         "-crl_check_all", "-CRLfile", str(crls), str(pki.dir / f"leaf{leaf}.pem")],
        capture_output=True, text=True, check=False)


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT_CRL), "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING",
                           str(path)], capture_output=True, text=True, check=False)


# --- tests ---------------------------------------------------------------------------------
def test_crl_is_byte_identical_to_what_cryptographys_builder_signs(pki: Pki) -> None:
    entries = [
        RevokedEntry(0x1234, NOW - dt.timedelta(days=3), "keyCompromise",
                     NOW - dt.timedelta(days=10)),
        RevokedEntry(0x80, NOW - dt.timedelta(days=2), "certificateHold"),
        RevokedEntry(MAX_SERIAL, NOW - dt.timedelta(hours=5, microseconds=12), None),
        RevokedEntry(0x7F, NOW - dt.timedelta(days=1), "unspecified"),
        RevokedEntry(0xABCDEF, dt.datetime(2051, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "superseded"),
    ]
    ours = x509.load_der_x509_crl(_crl(pki, entries, number=42))

    builder = (x509.CertificateRevocationListBuilder().issuer_name(pki.issuing.subject)
               .last_update(NOW).next_update(NOW + dt.timedelta(hours=24))
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
                   pki.issuing.extensions.get_extension_for_class(
                       x509.SubjectKeyIdentifier).value), False)
               .add_extension(x509.CRLNumber(42), False))
    for e in sorted(entries, key=lambda e: e.serial):
        rb = (x509.RevokedCertificateBuilder().serial_number(e.serial)
              .revocation_date(e.revoked_at.replace(microsecond=0)))
        if e.reason not in (None, "unspecified"):
            rb = rb.add_extension(x509.CRLReason(REASONS[e.reason]), False)
        if e.invalidity_date is not None:
            rb = rb.add_extension(x509.InvalidityDate(e.invalidity_date), False)
        builder = builder.add_revoked_certificate(rb.build())
    theirs = builder.sign(pki.issuing_key, hashes.SHA256())

    assert ours.tbs_certlist_bytes == theirs.tbs_certlist_bytes
    assert ours.is_signature_valid(pki.issuing.public_key())
    assert [r.serial_number for r in ours] == sorted(e.serial for e in entries)


def test_crl_entries_carry_reason_and_invalidity_date_and_unspecified_is_left_out(
        pki: Pki) -> None:
    crl = x509.load_der_x509_crl(_crl(pki, [
        RevokedEntry(5, NOW - dt.timedelta(days=1), "unspecified"),
        RevokedEntry(3, NOW - dt.timedelta(days=2), "certificateHold"),
        RevokedEntry(4, NOW - dt.timedelta(days=1), "affiliationChanged",
                     NOW - dt.timedelta(days=4)),
    ], number=9))
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 9
    aki = crl.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = pki.issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    assert crl.issuer == pki.issuing.subject
    hold = crl.get_revoked_certificate_by_serial_number(3)
    assert hold is not None
    assert hold.extensions.get_extension_for_class(x509.CRLReason).value.reason \
        == x509.ReasonFlags.certificate_hold
    changed = crl.get_revoked_certificate_by_serial_number(4)
    assert changed is not None
    assert changed.extensions.get_extension_for_class(
        x509.InvalidityDate).value.invalidity_date_utc == NOW - dt.timedelta(days=4)
    plain = crl.get_revoked_certificate_by_serial_number(5)
    assert plain is not None and len(plain.extensions) == 0


def test_crl_passes_pkilint_pkix_at_warning_empty_and_full(pki: Pki) -> None:
    full = pki.write("full.crl", _crl(pki, [
        RevokedEntry(s, NOW - dt.timedelta(minutes=s), r, NOW - dt.timedelta(days=2))
        for s, r in zip(range(1, 10), REASONS, strict=True)
    ]))
    empty = pki.write("empty.crl", _crl(pki, [], root=True))
    for path in (full, empty):
        done = _lint(path)
        assert done.returncode == 0, done.stdout + done.stderr


def test_openssl_reports_revoked_and_held_leaves_and_accepts_the_others(pki: Pki) -> None:
    root_crl = _crl(pki, [], root=True)
    issuing_crl = _crl(pki, [
        RevokedEntry(pki.leaves[0].serial_number, NOW - dt.timedelta(hours=2), "keyCompromise"),
        RevokedEntry(pki.leaves[1].serial_number, NOW - dt.timedelta(hours=1), "certificateHold"),
    ])
    revoked = _openssl_verify(pki, 0, root_crl, issuing_crl)
    assert revoked.returncode != 0
    assert "certificate revoked" in revoked.stdout + revoked.stderr
    held = _openssl_verify(pki, 1, root_crl, issuing_crl)
    assert "certificate revoked" in held.stdout + held.stderr
    good = _openssl_verify(pki, 2, root_crl, issuing_crl)
    assert good.returncode == 0, good.stdout + good.stderr

    # unfreezing drops the entry from the next full CRL: the held leaf verifies again
    unfrozen = _crl(pki, [RevokedEntry(pki.leaves[0].serial_number,
                                       NOW - dt.timedelta(hours=2), "keyCompromise")], number=2)
    assert _openssl_verify(pki, 1, root_crl, unfrozen).returncode == 0


def test_openssl_refuses_a_leaf_whose_issuing_ca_is_on_the_root_crl(pki: Pki) -> None:
    root_crl = _crl(pki, [RevokedEntry(pki.issuing.serial_number, NOW - dt.timedelta(hours=3),
                                       "cACompromise")], root=True)
    done = _openssl_verify(pki, 2, root_crl, _crl(pki, []))
    assert done.returncode != 0
    assert "certificate revoked" in done.stdout + done.stderr


def test_unsorted_entries_come_out_sorted_and_all_present(pki: Pki) -> None:
    rng = random.Random(7)
    serials = list({rng.getrandbits(64) | 1 for _ in range(5000)})
    rng.shuffle(serials)
    crl = x509.load_der_x509_crl(_crl(pki, [
        RevokedEntry(s, NOW - dt.timedelta(seconds=i), "superseded" if i % 2 else None)
        for i, s in enumerate(serials)]))
    assert [r.serial_number for r in crl] == sorted(serials)
    assert crl.is_signature_valid(pki.issuing.public_key())


@pytest.mark.parametrize(("entry", "code"), [
    (RevokedEntry(1, NOW, "lostKey"), "CRL_REASON_UNKNOWN"),
    (RevokedEntry(1, NOW, "removeFromCRL"), "CRL_REASON_NOT_ALLOWED"),
    (RevokedEntry(0, NOW, None), "CRL_SERIAL_RANGE"),
    (RevokedEntry(MAX_SERIAL + 1, NOW, None), "CRL_SERIAL_RANGE"),
])
def test_bad_entries_are_refused_with_their_code(pki: Pki, entry: RevokedEntry,
                                                 code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        _crl(pki, [RevokedEntry(7, NOW, None), entry])
    assert exc.value.code == code


def test_duplicate_serial_and_bad_dates_and_numbers_are_refused(pki: Pki) -> None:
    with pytest.raises(InvalidInput) as exc:
        _crl(pki, [RevokedEntry(9, NOW, None), RevokedEntry(2, NOW, None),
                   RevokedEntry(9, NOW, "superseded")])
    assert exc.value.code == "CRL_DUPLICATE_SERIAL"
    with pytest.raises(InvalidInput) as exc:
        build_crl(issuer_cert=pki.issuing, issuer_key=pki.issuing_key, entries=[], number=1,
                  this_update=NOW, next_update=NOW)
    assert exc.value.field == "next_update"
    with pytest.raises(InvalidInput) as exc:
        _crl(pki, [], number=-1)
    assert exc.value.code == "CRL_NUMBER_RANGE"


def test_token_keys_sign_crls_that_openssl_checks(pki: Pki, settings: Settings) -> None:
    with token_key(settings, "crl-ca", "1234-5678") as key:
        issuing = issue("Token Issuing", key.public_key(), pki.root, pki.root_key, kind="ca",
                        now=NOW)
        leaf = issue("token leaf", ec.generate_private_key(ec.SECP256R1()).public_key(),
                     issuing, key, kind="leaf", now=NOW)
        crl_der = _crl(pki, [RevokedEntry(leaf.serial_number, NOW - dt.timedelta(hours=1),
                                          "keyCompromise")], key=key, issuer=issuing)
    assert x509.load_der_x509_crl(crl_der).is_signature_valid(key.public_key())
    pki.write("token-issuing.pem", pem(issuing))
    pki.write("leaf9.pem", pem(leaf))
    done = _openssl_verify(pki, 9, _crl(pki, [], root=True), crl_der,
                           issuing="token-issuing.pem")
    assert "certificate revoked" in done.stdout + done.stderr
    assert _lint(pki.write("token.crl", crl_der)).returncode == 0
