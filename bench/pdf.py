"""Sealing time for a ~1 MB and a ~50 MB PDF, as a ratio to SHA-256 over the same bytes
(``python -m bench.pdf``).

A seal has to hash the whole file once, so SHA-256 of the bytes is the floor; the aim is to
stay within 3x of it on big files (each seal also copies the file once: the caller's bytes
are never modified). The seal key is on a SoftHSM token (one real token
signature per seal); the PKI is software and local, the TSA for B-LT is pyHanko's in-process
``DummyTimeStamper`` and the CRLs are handed over in memory, so no network time is counted.
The PDFs carry incompressible image streams, like scanned filings.

Verification: each B-LT sealed file is verified with ``eseal.signing.verify.verify_pdf``
against the bench root (offline: the revocation data is in the file), as a ratio to SHA-256
of the file, beside poppler's ``pdfsig`` on the same file in the same run (NSS database
trusting the bench root, ``-no-ocsp``). Peak memory (max RSS) is measured in a fresh child
process per figure: eseal verifying, eseal sealing (B-B) and pdfsig, each against a child
that only imports the same modules and reads the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

AIM = "<= 3x SHA-256 of the file"
# On small files pyHanko's fixed cost (building the CMS twice: size estimate, then the real
# one) dwarfs hashing, so their aim is a latency, not a ratio.
AIM_SMALL = "< 100 ms (fixed cost dominates)"
PIN = "bench-1234"
DEAD_URL = "http://127.0.0.1:9"  # the discard port: the bench never fetches
SO_PIN = "bench-so-5678"


def make_pdf(total_bytes: int, pages: int) -> bytes:
    """A PDF of about ``total_bytes``: one random RGB image per page."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.writer import PageObject, PdfFileWriter

    writer = PdfFileWriter()
    side = int((total_bytes / pages / 3) ** 0.5)
    name = generic.pdf_name
    for _ in range(pages):
        image = writer.add_object(generic.StreamObject({
            name("/Type"): name("/XObject"), name("/Subtype"): name("/Image"),
            name("/Width"): generic.NumberObject(side),
            name("/Height"): generic.NumberObject(side),
            name("/ColorSpace"): name("/DeviceRGB"),
            name("/BitsPerComponent"): generic.NumberObject(8),
        }, stream_data=os.urandom(side * side * 3)))
        contents = writer.add_object(generic.StreamObject(
            stream_data=b"q 500 0 0 700 50 70 cm /Im0 Do Q"))
        resources = generic.DictionaryObject({name("/XObject"): generic.DictionaryObject(
            {name("/Im0"): image})})
        writer.insert_page(PageObject(contents=contents, media_box=(0, 0, 595, 842),
                                      resources=resources))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pki(seal_public_key: Any) -> dict[str, Any]:
    """Root P-384 -> issuing P-256 -> seal certificate and an RSA TSA certificate."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import CertificatePoliciesOID, ExtendedKeyUsageOID, NameOID

    from eseal.pki.oids import DOCUMENT_SIGNING, POLICY_ENTERPRISE_SEAL

    now = dt.datetime.now(dt.UTC)

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
                          x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def cert(subject: str, issuer: str, public: Any, signer: Any, ca: bool,
             eku: list[Any] | None = None, seal: bool = False) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
            .public_key(public).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                signer.public_key()), critical=False)
            .add_extension(x509.KeyUsage(
                digital_signature=not ca, content_commitment=not ca, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
                encipher_only=False, decipher_only=False), critical=True)
        )
        if subject != issuer:  # NSS (pdfsig) does not trust a chain that names no CRL DP
            url = f"{DEAD_URL}/crl/{issuer.replace(' ', '-')}.crl"
            builder = builder.add_extension(x509.CRLDistributionPoints([x509.DistributionPoint(
                full_name=[x509.UniformResourceIdentifier(url)], relative_name=None,
                reasons=None, crl_issuer=None)]), critical=False)
        if eku:
            builder = builder.add_extension(x509.ExtendedKeyUsage(eku), critical=not seal)
        if seal or ca:  # eseal's seal profile policy; CAs pass any policy down (NSS checks)
            policy = POLICY_ENTERPRISE_SEAL if seal else CertificatePoliciesOID.ANY_POLICY
            builder = builder.add_extension(x509.CertificatePolicies([x509.PolicyInformation(
                policy, None)]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    def crl(issuer: str, key: Any) -> x509.CertificateRevocationList:
        return (x509.CertificateRevocationListBuilder().issuer_name(name(issuer))
                .last_update(now - dt.timedelta(hours=1))
                .next_update(now + dt.timedelta(days=1))
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))

    root_key = ec.generate_private_key(ec.SECP384R1())
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = cert("bench root", "bench root", root_key.public_key(), root_key, True)
    issuing = cert("bench issuing", "bench root", issuing_key.public_key(), root_key, True)
    seal = cert("bench seal", "bench issuing", seal_public_key, issuing_key, False,
                [DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION], seal=True)
    tsa = cert("bench tsa", "bench issuing", tsa_key.public_key(), issuing_key, False,
               [ExtendedKeyUsageOID.TIME_STAMPING])
    return {"root": root, "issuing": issuing, "seal": seal, "tsa": tsa, "tsa_key": tsa_key,
            "crls": [crl("bench root", root_key), crl("bench issuing", issuing_key)]}


def _long_term_kwargs(pki: dict[str, Any]) -> dict[str, Any]:
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko.sign.timestamps import DummyTimeStamper
    from pyhanko_certvalidator import ValidationContext

    def asn1(cert: Any) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    key_der = pki["tsa_key"].private_bytes(serialization.Encoding.DER,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption())
    return {
        "timestamper": DummyTimeStamper(tsa_cert=asn1(pki["tsa"]),
                                        tsa_key=asn1_keys.PrivateKeyInfo.load(key_der)),
        "validation_context": ValidationContext(
            trust_roots=[asn1(pki["root"])], other_certs=[asn1(pki["issuing"])],
            crls=[c.public_bytes(serialization.Encoding.DER) for c in pki["crls"]],
            allow_fetching=False, revocation_mode="require"),
    }


def _median(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm: first-touch page faults and lazy imports are not the steady state
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(quick: bool = False) -> list[dict]:
    os.environ.setdefault("ESEAL_ENV", "test")
    import logging

    logging.getLogger("pyhanko").setLevel(logging.ERROR)  # "fetching not allowed" notice

    from eseal.settings import load_settings
    from eseal.signing.seal_image import SealSpec, render_seal
    from eseal.signing.sign import SealOptions, seal_pdf
    from eseal.token import TokenSession, configure, generate_keypair, private_key_for
    from eseal.token.softhsm import init_token, write_conf

    home = Path(tempfile.mkdtemp(prefix="eseal-bench-pdf-"))
    conf = write_conf(home / "softhsm2.conf", home / "tokens")
    configure(load_settings(home).pkcs11_module, conf)
    init_token(conf, "bench", PIN, SO_PIN)
    token = TokenSession("bench", PIN, rw=True).open()
    try:
        info = generate_keypair(token, "ec-p256", "seal")
        key = private_key_for(token, info)
        pki = _pki(info.public_key)
        png = render_seal(SealSpec("北京堃喆科技有限公司", uscc="91110108551385082Q",
                                   title="公章"))
        chain = [pki["issuing"], pki["root"]]
        cases: list[tuple[str, int, int, str, int]] = (
            [("1 MB", 1 << 20, 4, "B-B", 5), ("10 MB", 10 << 20, 10, "B-B", 3),
             ("10 MB", 10 << 20, 10, "B-LT", 3)] if quick else
            [("1 MB", 1 << 20, 4, "B-B", 9), ("1 MB", 1 << 20, 4, "B-LT", 5),
             ("50 MB", 50 << 20, 50, "B-B", 7), ("50 MB", 50 << 20, 50, "B-LT", 5)])
        rows: list[dict] = []
        pdfs: dict[str, bytes] = {}
        sealed_lt: dict[str, bytes] = {}
        for label, size, pages, level, runs in cases:
            pdf = pdfs.setdefault(label, make_pdf(size, pages))
            extra = _long_term_kwargs(pki) if level == "B-LT" else {}

            def seal(pdf: bytes = pdf, level: str = level,
                     extra: dict[str, Any] = extra) -> bytes:
                return seal_pdf(pdf, key=key, certificate=pki["seal"], chain=chain,
                                options=SealOptions(level=level),  # type: ignore[arg-type]
                                seal_png=png, **extra)

            def digest(pdf: bytes = pdf) -> bytes:
                return hashlib.sha256(pdf).digest()

            seal_s = _median(seal, runs)
            sha_s = _median(digest, runs)
            rows.append({
                "name": f"seal {label} PDF ({len(pdf) / 1e6:.1f} MB), {level}",
                "value": seal_s * 1000, "unit": "ms",
                "peer_or_limit": f"SHA-256 of the file {sha_s * 1000:.1f} ms",
                "ratio": seal_s / sha_s, "aim": AIM if size >= 50 << 20 else AIM_SMALL,
            })
            if level == "B-LT":
                sealed_lt[label] = seal()
        for label, sealed in sealed_lt.items():
            rows.extend(_verify_rows(label, sealed, pki["root"], home, 3 if quick else 5))
        for label in dict.fromkeys(label for label, *_ in cases):
            rows.append(_seal_memory_row(label, pdfs[label], home, conf, pki, chain))
        return rows
    finally:
        token.close()


# -- verification and memory ---------------------------------------------------------------
AIM_VERIFY = "no set limit; pdfsig (C, NSS) is the peer"
_IMPORTS = "import eseal.signing.verify, eseal.signing.sign"


# A child's ru_maxrss on Linux includes the RSS of the process it was forked from (the bench,
# ~270 MB by then), so each figure comes from a small launcher: it forks the measured program
# and reports that grandchild's own maximum (its floor is the launcher's ~10 MB).
_LAUNCHER = """
import os, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
out = proc.stdout.read()
_pid, status, usage = os.wait4(proc.pid, 0)
sys.stdout.write(f"{time.perf_counter() - t} {usage.ru_maxrss} "
                 f"{os.waitstatus_to_exitcode(status)}\\n")
sys.stdout.write(out.decode(errors="replace"))
"""


def _peak(argv: list[str]) -> tuple[float, float, str]:
    """Run ``argv`` in a fresh process: (wall seconds, its own max RSS in MB, stdout)."""
    import subprocess

    done = subprocess.run([sys.executable, "-c", _LAUNCHER, *argv], capture_output=True,
                          check=True, env=dict(os.environ))
    head, _, out = done.stdout.decode().partition("\n")
    elapsed, rss_kb, code = head.split()
    if int(code) != 0:
        raise RuntimeError(f"{argv[:4]} exited {code}")
    return float(elapsed), int(rss_kb) / 1024, out


_VERIFY_CHILD = """
import sys, time
from cryptography import x509
{imports}
data = open(sys.argv[1], 'rb').read()
root = x509.load_pem_x509_certificate(open(sys.argv[2], 'rb').read())
if sys.argv[3] == 'verify':
    t = time.perf_counter()
    report = eseal.signing.verify.verify_pdf(data, trust_roots=[root])
    print(report.verdict, time.perf_counter() - t)
else:
    print('baseline', 0.0)
""".replace("{imports}", _IMPORTS)


def _pdfsig_db(root: Any, home: Path) -> str:
    import subprocess

    from cryptography.hazmat.primitives import serialization

    db = home / "nss"
    if not db.exists():
        db.mkdir()
        pem = home / "root.pem"
        pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
        subprocess.run(["certutil", "-N", "-d", f"sql:{db}", "--empty-password"], check=True,
                       capture_output=True)
        subprocess.run(["certutil", "-A", "-d", f"sql:{db}", "-n", "root", "-t", "C,C,C",
                        "-i", str(pem)], check=True, capture_output=True)
    return f"sql:{db}"


def _verify_rows(label: str, sealed: bytes, root: Any, home: Path, runs: int) -> list[dict]:
    """Verification time vs SHA-256 and pdfsig, and peak memory, for one sealed file."""
    import shutil

    from cryptography.hazmat.primitives import serialization

    from eseal.signing.verify import verify_pdf

    path = home / f"sealed-{label.replace(' ', '')}.pdf"
    path.write_bytes(sealed)
    root_pem = home / "root.pem"
    root_pem.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    verdicts: list[str] = []

    def verify() -> None:
        verdicts.append(verify_pdf(sealed, trust_roots=[root]).verdict)

    verify_s = _median(verify, runs)
    sha_s = _median(lambda: hashlib.sha256(sealed).digest(), runs)
    size = f"{len(sealed) / 1e6:.1f} MB"
    pdfsig_s = pdfsig_rss = None
    pdfsig_ok = "pdfsig not installed"
    if shutil.which("pdfsig") and shutil.which("certutil"):
        argv = ["pdfsig", "-nssdir", _pdfsig_db(root, home), "-no-ocsp", str(path)]
        _peak(argv)  # warm the page cache and NSS
        samples = [_peak(argv) for _ in range(runs)]
        pdfsig_s = statistics.median(s[0] for s in samples)
        pdfsig_rss = max(s[1] for s in samples)
        out = samples[0][2]
        pdfsig_ok = "pdfsig: valid" if "Signature is Valid" in out and \
            "Certificate is Trusted" in out else "pdfsig: NOT valid"
    if pdfsig_s is not None:
        rows_cli = _cli_verify_row(label, size, path, root_pem, pdfsig_s, runs)
    else:
        rows_cli = []
    code = _VERIFY_CHILD
    _t, verify_rss, verify_out = _peak([sys.executable, "-c", code, str(path), str(root_pem),
                                        "verify"])
    _t, base_rss, _ = _peak([sys.executable, "-c", code, str(path), str(root_pem), "none"])
    peer = f"SHA-256 {sha_s * 1000:.1f} ms"
    if pdfsig_s is not None:
        peer += f"; pdfsig {pdfsig_s * 1000:.1f} ms ({pdfsig_ok})"
    rows = [{
        "name": f"verify {label} PDF ({size}), B-LT seal: verdict {set(verdicts)}",
        "value": verify_s * 1000, "unit": "ms", "peer_or_limit": peer,
        "ratio": verify_s / sha_s, "aim": AIM_VERIFY,
    }, {
        "name": f"verify {label} PDF ({size}): peak RSS (child: {verify_out.split()[0]})",
        "value": verify_rss, "unit": "MB",
        "peer_or_limit": f"same imports + file read {base_rss:.0f} MB"
                         + (f"; pdfsig {pdfsig_rss:.0f} MB" if pdfsig_rss else ""),
        "ratio": (verify_rss - base_rss) / (len(sealed) / 2**20),
        "aim": "ratio = RSS above baseline per MB of file",
    }, *rows_cli]
    return rows


def _cli_verify_row(label: str, size: str, path: Path, root_pem: Path, pdfsig_s: float,
                    runs: int) -> list[dict]:
    """``eseal verify`` as a whole process (imports included), beside pdfsig's process."""
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith("ESEAL_")}
    argv = [sys.executable, "-m", "eseal", "verify", str(path), "--trust", str(root_pem)]
    codes: list[int] = []

    def run_cli() -> None:
        codes.append(subprocess.run(argv, env=env, capture_output=True,
                                    stdin=subprocess.DEVNULL).returncode)

    cli_s = _median(run_cli, runs)
    return [{
        "name": f"eseal verify {label} PDF ({size}) as a whole process (exit {set(codes)})",
        "value": cli_s * 1000, "unit": "ms",
        "peer_or_limit": f"pdfsig process {pdfsig_s * 1000:.1f} ms",
        "ratio": cli_s / pdfsig_s, "aim": "<= 3x pdfsig",
    }]


_SEAL_CHILD = """
import sys, time
{imports}
from cryptography import x509
from eseal.token import TokenSession, configure, private_key_for
from eseal.token.keys import list_keys
from eseal.settings import load_settings
from eseal.signing.seal_image import SealSpec, render_seal
data = open(sys.argv[1], 'rb').read()
configure(load_settings(sys.argv[2]).pkcs11_module, sys.argv[3])
certs = x509.load_pem_x509_certificates(open(sys.argv[4], 'rb').read())
png = render_seal(SealSpec("北京堃喆科技有限公司", uscc="91110108551385082Q", title="公章"))
if sys.argv[5] == 'seal':
    token = TokenSession("bench", sys.argv[6], rw=True).open()
    key = private_key_for(token, list_keys(token)[0])
    t = time.perf_counter()
    eseal.signing.sign.seal_pdf(data, key=key, certificate=certs[0], chain=certs[1:],
                                options=eseal.signing.sign.SealOptions(level='B-B'),
                                seal_png=png)
    print('sealed', time.perf_counter() - t)
else:
    print('baseline', 0.0)
""".replace("{imports}", _IMPORTS)


def _seal_memory_row(label: str, pdf: bytes, home: Path, conf: Path, pki: dict[str, Any],
                     chain: list[Any]) -> dict:
    from cryptography.hazmat.primitives import serialization

    path = home / f"plain-{label.replace(' ', '')}.pdf"
    path.write_bytes(pdf)
    certs = home / "seal-chain.pem"
    certs.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM)
                               for c in [pki["seal"], *chain]))
    argv = [sys.executable, "-c", _SEAL_CHILD, str(path), str(home), str(conf), str(certs)]
    _t, seal_rss, _ = _peak([*argv, "seal", PIN])
    _t, base_rss, _ = _peak([*argv, "none", PIN])
    return {
        "name": f"seal {label} PDF ({len(pdf) / 1e6:.1f} MB), B-B: peak RSS",
        "value": seal_rss, "unit": "MB",
        "peer_or_limit": f"same imports + file read {base_rss:.0f} MB",
        "ratio": (seal_rss - base_rss) / (len(pdf) / 2**20),
        "aim": "ratio = RSS above baseline per MB of file",
    }


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(f"{row['name']}: {row['value']:.1f} {row['unit']} | {row['peer_or_limit']} | "
              f"ratio {row['ratio']:.2f} | aim {row['aim']}")
