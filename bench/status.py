"""Status and timestamp protocols: CRL generation against its limits, timestamps against the
raw token signing rate measured in the same run (``python -m bench.status [--quick]``).

* CRL: ``build_crl`` over 100,000 and 1,000,000 entries (random 159-bit serials in random
  order, mixed reasons, a quarter with an invalidity date), each in a fresh process so its
  peak RSS (``getrusage``) is the CRL's alone. Entries are created by a generator while the
  clock runs, as rows streamed from the database would be. Limit for 1,000,000: 15 s and
  1.5 GB (the 100,000 limit is the same scaled by ten). A smaller CRL is also built with
  ``cryptography``'s ``CertificateRevocationListBuilder`` as a peer: the reason crl.py
  assembles DER itself (the builder copies its entry list on every add, so its time grows
  faster than linearly: 100,000 entries took 27 s on the 2-core machine).
* TSA: ``tsa.answer`` for requests as pyHanko sends them (SHA-256, nonce, certReq) signed by
  a P-256 key on a SoftHSM token, versus bare ``sign_digest`` calls on the same key.

The lead adds OCSP over HTTP next to these rows.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CRL_LIMIT_SECONDS = 15.0  # for 1,000,000 entries
CRL_LIMIT_BYTES = 1.5e9
REASONS = ["keyCompromise", "certificateHold", None, "superseded", "affiliationChanged",
           "cessationOfOperation"]


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "eseal bench"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _ca(public: Any, issuer: x509.Certificate | None, issuer_key: Any, cn: str, *,
        ca: bool = True, eku: list[x509.ObjectIdentifier] | None = None) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    subject = _name(cn)
    b = (x509.CertificateBuilder().subject_name(subject)
         .issuer_name(issuer.subject if issuer else subject).public_key(public)
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=30))
         .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), True))
    if eku:
        b = b.add_extension(x509.ExtendedKeyUsage(eku), True)
    return b.sign(issuer_key, hashes.SHA256())


# --- CRL ---------------------------------------------------------------------------------
def _entries(n: int, seed: int) -> Any:
    from eseal.ca.crl import RevokedEntry

    rng = random.Random(seed)
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    serials = [rng.getrandbits(158) | 1 << 157 for _ in range(n)]  # "in the database"
    offsets = [rng.randrange(0, 365 * 86400) for _ in range(n)]
    day = dt.timedelta(days=1)

    def stream() -> Any:
        for i, (serial, offset) in enumerate(zip(serials, offsets, strict=True)):
            when = now - dt.timedelta(seconds=offset)
            yield RevokedEntry(serial, when, REASONS[i % len(REASONS)],
                               when - day if i % 4 == 0 else None)

    return stream()


def _crl_child(n: int, out: mp.Queue) -> None:
    """One CRL in a fresh process: seconds, peak RSS, size; then check what was built."""
    from eseal.ca.crl import build_crl

    key = ec.generate_private_key(ec.SECP256R1())
    issuer = _ca(key.public_key(), None, key, "Bench Issuing")
    entries = _entries(n, seed=n)
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    der = build_crl(issuer_cert=issuer, issuer_key=key, entries=entries, number=1,
                    this_update=now, next_update=now + dt.timedelta(days=1))
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    crl = x509.load_der_x509_crl(der)
    ok = len(crl) == n and crl.is_signature_valid(key.public_key())
    out.put({"seconds": seconds, "peak": peak, "size": len(der), "ok": ok})


def _cryptography_peer_child(n: int, out: mp.Queue) -> None:
    """The same entries through cryptography's builder, and through ours, in one process."""
    from eseal.ca.crl import REASONS as FLAGS
    from eseal.ca.crl import build_crl

    key = ec.generate_private_key(ec.SECP256R1())
    issuer = _ca(key.public_key(), None, key, "Bench Issuing")
    now = dt.datetime.now(dt.UTC)
    started = time.perf_counter()
    builder = (x509.CertificateRevocationListBuilder().issuer_name(issuer.subject)
               .last_update(now).next_update(now + dt.timedelta(days=1))
               .add_extension(x509.CRLNumber(1), False))
    for e in _entries(n, seed=1):
        rb = x509.RevokedCertificateBuilder().serial_number(e.serial).revocation_date(
            e.revoked_at)
        if e.reason:
            rb = rb.add_extension(x509.CRLReason(FLAGS[e.reason]), False)
        if e.invalidity_date:
            rb = rb.add_extension(x509.InvalidityDate(e.invalidity_date), False)
        builder = builder.add_revoked_certificate(rb.build())
    builder.sign(key, hashes.SHA256())
    theirs = time.perf_counter() - started
    started = time.perf_counter()
    build_crl(issuer_cert=issuer, issuer_key=key, entries=_entries(n, seed=1), number=1,
              this_update=now, next_update=now + dt.timedelta(days=1))
    ours = time.perf_counter() - started
    out.put({"ours": ours, "theirs": theirs})


def _in_child(target: Any, *args: Any) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, out))
    proc.start()
    result = out.get(timeout=900)
    proc.join()
    return result  # type: ignore[no-any-return]


def crl_rows(quick: bool) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for n in ((20_000, 100_000) if quick else (100_000, 1_000_000)):
        r = _in_child(_crl_child, n)
        if not r["ok"]:
            raise RuntimeError(f"the {n:,}-entry CRL did not parse or verify")
        scale = n / 1_000_000
        rows.append({
            "name": f"CRL of {n:,} entries: build + sign ({r['size'] / 1e6:.0f} MB DER)",
            "value": r["seconds"], "unit": "s",
            "peer_or_limit": f"limit {CRL_LIMIT_SECONDS * scale:g} s",
            "ratio": r["seconds"] / (CRL_LIMIT_SECONDS * scale), "aim": "ratio < 1"})
        rows.append({
            "name": f"CRL of {n:,} entries: peak memory of the process",
            "value": r["peak"] / 1e6, "unit": "MB",
            "peer_or_limit": f"limit {CRL_LIMIT_BYTES / 1e6:,.0f} MB",
            "ratio": r["peak"] / CRL_LIMIT_BYTES, "aim": "ratio < 1"})
    n = 5_000 if quick else 50_000  # the builder grows faster than linearly: keep it modest
    peer = _in_child(_cryptography_peer_child, n)
    rows.append({
        "name": f"CRL of {n:,} entries: crl.build_crl",
        "value": peer["ours"], "unit": "s",
        "peer_or_limit": f"cryptography CertificateRevocationListBuilder {peer['theirs']:.1f} s",
        "ratio": peer["ours"] / peer["theirs"], "aim": "ratio < 1"})
    return rows


# --- TSA ---------------------------------------------------------------------------------
def tsa_rows(quick: bool) -> list[dict[str, Any]]:
    import hashlib

    from asn1crypto import tsp

    from eseal.ca import tsa
    from eseal.settings import load_settings
    from eseal.token import TokenSession, configure, generate_keypair, private_key_for
    from eseal.token.softhsm import init_token, write_conf

    n = 1_000 if quick else 5_000
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        conf = write_conf(home / "softhsm2.conf", home / "tokens")
        os.environ["SOFTHSM2_CONF"] = str(conf)
        configure(load_settings(home).pkcs11_module, conf)
        init_token(conf, "bench-tsa", "8642-1357", "so-8642-1357")
        with TokenSession("bench-tsa", "8642-1357", rw=True) as ts:
            info = generate_keypair(ts, "ec-p256", "tsa")
            key = private_key_for(ts, info)
            root_key = ec.generate_private_key(ec.SECP256R1())
            root = _ca(root_key.public_key(), None, root_key, "Bench Root")
            cert = _ca(info.public_key, root, root_key, "Bench TSA", ca=False,
                       eku=[ExtendedKeyUsageOID.TIME_STAMPING])
            requests = [tsp.TimeStampReq({
                "version": "v1",
                "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                    "hashed_message": hashlib.sha256(b"%d" % i).digest()},
                "nonce": random.getrandbits(63), "cert_req": True}).dump() for i in range(n)]
            digest = hashlib.sha256(b"bench").digest()
            for _ in range(50):  # warm up the session and the handle cache
                key.sign_digest(digest)
            started = time.perf_counter()
            for _ in range(n):
                key.sign_digest(digest)
            raw = n / (time.perf_counter() - started)
            now = dt.datetime.now(dt.UTC)
            started = time.perf_counter()
            for i, request in enumerate(requests):
                tsa.answer(request, tsa_cert=cert, tsa_key=key, chain=[root],
                           serial=tsa.tsa_serial(i + 1), now=now)
            rate = n / (time.perf_counter() - started)
    return [{
        "name": "timestamps/s through tsa.answer (SHA-256, nonce, certReq; SoftHSM P-256)",
        "value": rate, "unit": "/s",
        "peer_or_limit": f"raw token ECDSA P-256 signatures {raw:,.0f}/s",
        "ratio": rate / raw, "aim": "ratio > 0.5"}]


def run(quick: bool = False) -> list[dict[str, Any]]:
    os.environ.setdefault("ESEAL_ENV", "test")
    return [*crl_rows(quick), *tsa_rows(quick)]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(f"{row['name']}: {row['value']:,.3f} {row['unit']}  vs {row['peer_or_limit']}  "
              f"ratio {row['ratio']:.3f}  (aim {row['aim']})")
