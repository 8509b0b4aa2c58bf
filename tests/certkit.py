"""Bare test certificates for the CA service cores' tests (CRL, OCSP, TSA), and a token key.

Why this and not ``pkikit.make_pki``: the CRL, OCSP and TSA tests judge what our code signs,
so they want the least certificate that openssl, pkilint and pyHanko accept — no policies,
no CRL distribution points, EC keys throughout (the TSA signs with P-256, as ours does) — and
they issue extra certificates under their own hierarchy (a second issuing CA, an OCSP
responder, a certificate for a key on a token). ``pkikit.make_pki`` builds certificates shaped
like eseal's profiles for the PDF tests instead.

    root, root_key, issuing, issuing_key = hierarchy(NOW)        # P-384 -> P-256
    responder = issue("Test OCSP", key.public_key(), issuing, issuing_key, kind="ocsp", now=NOW)
    with token_key(settings, "ocsp", "2468-1357") as key:       # P-256 on a fresh SoftHSM token
        ...

Names are ``O=eseal test, CN=<cn>``. CA certificates are valid 10 years, the others 1 year,
both from 30 days before ``now``.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from eseal.settings import Settings
from eseal.token import TokenSession, generate_keypair, private_key_for
from eseal.token.softhsm import init_token

#: Where the console scripts of the Python running the tests live (pkilint's lint_* tools):
#: the virtualenv's bin, wherever the checkout is, not a path guessed from the test file.
TOOLS = Path(sys.executable).parent

Kind = Literal["ca", "leaf", "ocsp", "tsa"]

# What each kind of end-entity certificate is for: (extended key usage, critical).
_EKU: dict[str, tuple[x509.ObjectIdentifier, bool]] = {
    "leaf": (ExtendedKeyUsageOID.CLIENT_AUTH, False),
    "ocsp": (ExtendedKeyUsageOID.OCSP_SIGNING, False),
    "tsa": (ExtendedKeyUsageOID.TIME_STAMPING, True),  # RFC 3161 2.3: critical
}


def name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eseal test"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def issue(cn: str, public: ec.EllipticCurvePublicKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey, *, kind: Kind,
          now: dt.datetime) -> x509.Certificate:
    """A certificate for ``public`` signed by ``issuer_key`` (self-signed when ``issuer`` is
    None): a CA (keyCertSign, cRLSign), a client-auth leaf, an OCSP responder (with
    id-pkix-ocsp-nocheck) or a TSA. SHA-384 from a P-384 issuer, SHA-256 otherwise."""
    subject = name(cn)
    ca = kind == "ca"
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer.subject if issuer else subject).public_key(public)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=30))
         .not_valid_after(now + dt.timedelta(days=365 * (10 if ca else 1)))
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
         .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
             issuer_key.public_key()), False)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
    if ca:
        b = b.add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                          False), True)
    else:
        eku, critical = _EKU[kind]
        b = (b.add_extension(x509.KeyUsage(True, False, False, False, False, False, False,
                                           False, False), True)
             .add_extension(x509.ExtendedKeyUsage([eku]), critical))
    if kind == "ocsp":
        b = b.add_extension(x509.OCSPNoCheck(), False)
    algorithm = hashes.SHA384() if issuer_key.curve.key_size == 384 else hashes.SHA256()
    return b.sign(issuer_key, algorithm)


def hierarchy(now: dt.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey,
                                         x509.Certificate, ec.EllipticCurvePrivateKey]:
    """(root, root key, issuing, issuing key): "Test Root" on P-384 over "Test Issuing" on
    P-256, software keys."""
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = issue("Test Root", root_key.public_key(), None, root_key, kind="ca", now=now)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = issue("Test Issuing", issuing_key.public_key(), root, root_key, kind="ca",
                    now=now)
    return root, root_key, issuing, issuing_key


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


@contextmanager
def token_key(settings: Settings, label: str, pin: str) -> Iterator[ec.EllipticCurvePrivateKey]:
    """A P-256 key generated on a fresh SoftHSM token ``label`` (SO PIN ``so-<pin>``), usable
    as a ``cryptography`` key while the block runs (the token session closes after it)."""
    init_token(settings.softhsm_conf_path, label, pin, f"so-{pin}")
    with TokenSession(label, pin, rw=True) as ts:
        key = private_key_for(ts, generate_keypair(ts, "ec-p256", label))
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        yield key
