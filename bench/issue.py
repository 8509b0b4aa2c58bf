"""Certificates issued per second with the issuing key on the token, stored and audited,
with the pkilint lint before signing ON (the default) beside OFF, and the raw token signing
rate, all measured in the same run (``python -m bench.issue``).

Each issuance parses and checks a CSR (proof of possession), lays the certificate out,
signs a copy with a throw-away key and lints it (lint ON), signs it on the SoftHSM token,
compares the two, stores it and appends a hash-chained audit event in one SQLite
transaction. CSRs are prepared before the clock starts. ON and OFF run in alternating
chunks on one authority so the machine's noise falls on both alike.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

AIM = "> 1,000/s (EJBCA tuned: ~100/s)"


def _csrs(n: int) -> list[bytes]:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bench")])
    out = []
    for _ in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key,
                                                                             hashes.SHA256())
        out.append(csr.public_bytes(serialization.Encoding.PEM))
    return out


def _newest(auth: object, n: int) -> list:
    from sqlalchemy import select

    from eseal.store.models import Certificate

    with auth.db.read() as s:  # type: ignore[attr-defined]
        return list(s.execute(select(Certificate).where(Certificate.profile == "login")
                              .order_by(Certificate.created_at.desc()).limit(n)).scalars())


def _worker(home: str, uscc: str, csrs: list[bytes], start_at: float, out: mp.Queue) -> None:
    """One CA process: open the same home and issue its share once everyone is ready."""
    from eseal.ca.authority import Authority
    from eseal.settings import load_settings

    auth = Authority.open(load_settings(home))
    while time.time() < start_at:
        time.sleep(0.001)
    began = time.perf_counter()
    for csr in csrs:
        auth.issue(csr, uscc=uscc, profile="login", holder="基准", actor="bench")
    out.put((began, time.perf_counter(), len(csrs)))
    auth.close()


def run(quick: bool = False) -> list[dict]:
    os.environ.setdefault("ESEAL_ENV", "test")
    from eseal.ca.authority import Authority, init_home
    from eseal.ca.issuer import lint_der
    from eseal.ra.enterprises import register_enterprise
    from eseal.settings import load_settings

    n = 500 if quick else 3000
    uscc = "91350100M000100Y43"
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.pop("SOFTHSM2_CONF", None)
        home = Path(tmp) / "home"
        settings = load_settings(home)
        init_home(settings)
        auth = Authority.open(settings)
        register_enterprise(auth, uscc=uscc, name="基准测试有限公司", legal_rep="张三",
                                 actor="bench")
        csrs = _csrs(n)
        key = auth.key("issuing")
        digest = b"\x01" * 32
        started = time.perf_counter()
        for _ in range(n):
            key.sign_digest(digest)  # type: ignore[union-attr]
        raw_rate = n / (time.perf_counter() - started)
        unlinted = Authority(settings.replace(lint_on_issue=False), auth.db, auth.ca_session)
        more_csrs = _csrs(n)
        took = {True: 0.0, False: 0.0}
        chunk = 100
        for i in range(0, n, chunk):
            for lint, who, batch in ((True, auth, csrs), (False, unlinted, more_csrs)):
                started = time.perf_counter()
                for csr in batch[i:i + chunk]:
                    who.issue(csr, uscc=uscc, profile="login", holder="基准", actor="bench")
                took[lint] += time.perf_counter() - started
        lint_on, lint_off = n / took[True], n / took[False]
        ders = [c.der for c in _newest(auth, 200)]
        started = time.perf_counter()
        for der in ders:
            assert lint_der(der) == []
        lint_ms = (time.perf_counter() - started) / len(ders) * 1000
        auth.close()

        # Two CA processes on the same database, as the service runs on a 2-core machine.
        more = _csrs(n)
        ctx = mp.get_context("spawn")
        out: mp.Queue = ctx.Queue()
        start_at = time.time() + 3.0
        procs = [ctx.Process(target=_worker, args=(str(home), uscc, more[i::2], start_at, out))
                 for i in range(2)]
        for p in procs:
            p.start()
        results = [out.get(timeout=600) for _ in procs]
        for p in procs:
            p.join()
        two_process = sum(r[2] for r in results) / (max(r[1] for r in results)
                                                    - min(r[0] for r in results))
    return [
        {"name": "certificates issued/s, 1 process, lint ON (linted, token-signed, stored, "
                 "audited)",
         "value": lint_on, "unit": "/s",
         "peer_or_limit": f"raw token ECDSA P-256 signatures {raw_rate:,.0f}/s",
         "ratio": lint_on / raw_rate, "aim": AIM},
        {"name": "certificates issued/s, 1 process, lint OFF", "value": lint_off, "unit": "/s",
         "peer_or_limit": f"raw token ECDSA P-256 signatures {raw_rate:,.0f}/s",
         "ratio": lint_off / raw_rate, "aim": AIM},
        {"name": "issuance rate lint ON / lint OFF", "value": lint_on / lint_off, "unit": "",
         "peer_or_limit": f"lint OFF {lint_off:,.0f}/s",
         "ratio": lint_on / lint_off, "aim": "the price of linting before signing"},
        {"name": "pkilint alone, ms per certificate (validator built once per process)",
         "value": lint_ms, "unit": "ms",
         "peer_or_limit": f"one issuance with lint OFF {1000 / lint_off:.2f} ms",
         "ratio": lint_ms / (1000 / lint_off), "aim": "—"},
        {"name": "certificates issued/s, 2 processes sharing the database, lint ON",
         "value": two_process, "unit": "/s", "peer_or_limit": "aim 1,000/s",
         "ratio": two_process / 1000, "aim": "ratio > 1"},
    ]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(f"{row['name']}: {row['value']:,.2f}{row['unit']}  vs {row['peer_or_limit']}  "
              f"ratio {row['ratio']:.3f}  (aim {row['aim']})")
