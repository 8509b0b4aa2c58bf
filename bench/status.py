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

* OCSP and timestamps over HTTP: ``eseal serve`` (1 and 2 workers) against ``openssl ocsp
  -index`` (1 process, and ``-multi 2``) serving a software copy of the same hierarchy, with
  and without nonces, all in one run; see ``_http_child``. The load generator is a raw
  HTTP/1.1 keep-alive client in 4 processes (``_http_client``); its ceiling is measured
  against ``GET /healthz`` of the same server in the same run, and bounds every HTTP row.
"""

from __future__ import annotations

import datetime as dt
import functools
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


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # Linux: reset VmHWM, the peak resident set size, to the current RSS
    except OSError:
        pass


def _peak_rss() -> int:
    """Peak resident set size in bytes since the last reset (VmHWM), else ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _crl_child(n: int, out: mp.Queue) -> None:
    """One CRL in a fresh process: seconds, peak RSS, size; then check what was built."""
    from eseal.ca.crl import build_crl

    key = ec.generate_private_key(ec.SECP256R1())
    issuer = _ca(key.public_key(), None, key, "Bench Issuing")
    entries = _entries(n, seed=n)
    now = dt.datetime.now(dt.UTC)
    # ru_maxrss survives fork and exec on Linux, so a child spawned from a bench run that
    # already sealed 50 MB PDFs would report that peak; reset the high-water mark instead.
    _reset_peak_rss()
    started = time.perf_counter()
    der = build_crl(issuer_cert=issuer, issuer_key=key, entries=entries, number=1,
                    this_update=now, next_update=now + dt.timedelta(days=1))
    seconds = time.perf_counter() - started
    peak = _peak_rss()
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


# --- OCSP and timestamps over HTTP ----------------------------------------------------------
def _http_client(port: int, requests: list[bytes], seconds: float, start_at: float,
                 out: mp.Queue) -> None:
    """One load-generating process: raw HTTP/1.1 keep-alive on one connection, closed loop.

    Requests are pre-encoded (headers and body), responses are read by Content-Length and
    only their status line is checked: the client must cost far less than the server, which
    the /healthz ceiling row shows. A server that closes the connection (openssl's
    responder answers HTTP/1.0) is reconnected, and that cost is the server's way of serving.
    """
    import socket

    def connect() -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    while time.time() < start_at:
        time.sleep(0.01)
    sock: socket.socket | None = None
    done = errors = 0
    buf = b""
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        if sock is None:  # connect only to send: openssl waits without limit on idle ones
            sock = connect()
        sock.sendall(requests[done % len(requests)])
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("server closed the connection before answering")
            buf += chunk
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        fields = {k.strip().lower(): v.strip().lower() for k, _, v in
                  (line.partition(b":") for line in lines[1:])}
        length = int(fields.get(b"content-length", b"0"))
        while len(buf) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise RuntimeError("server closed the connection mid-answer")
            buf += chunk
        buf = buf[length:]
        if lines[0].split(b" ", 2)[1] != b"200":
            errors += 1
        done += 1
        connection = fields.get(b"connection", b"")
        if connection == b"close" or (lines[0].startswith(b"HTTP/1.0")
                                      and connection != b"keep-alive"):
            while sock.recv(65536):  # let the server close first: its TIME_WAIT, not ours
                pass
            sock.close()
            sock = None
            buf = b""
    if sock is not None:
        sock.close()
    out.put((done, errors))


def _http_requests(method: str, path: str, bodies: list[bytes], content_type: str) -> list[bytes]:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    if method == "GET":
        return [head.encode() + b"\r\n"]
    return [(head + f"Content-Type: {content_type}\r\nContent-Length: {len(b)}\r\n\r\n").encode()
            + b for b in bodies]


def _load(port: int, requests: list[bytes], *, seconds: float, clients: int) -> float:
    """Responses/s from ``clients`` client processes against 127.0.0.1:port (errors raise)."""
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start_at = time.time() + 1.5  # let every client process import and connect first
    procs = [ctx.Process(target=_http_client,
                         args=(port, requests[i::clients] or requests, seconds, start_at, out))
             for i in range(clients)]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=seconds + 60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    errors = sum(r[1] for r in results)
    if errors:
        raise RuntimeError(f"{errors} answers were not HTTP 200")
    return sum(r[0] for r in results) / seconds


def _wait_until_up(proc: Any, probe: Any, log: Path | None) -> None:
    """Retry ``probe()`` until it succeeds. The probe must send a whole request: openssl's
    responder serves one connection at a time and waits without limit for a request on a
    connection that was merely opened."""
    import httpx

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            said = log.read_text(errors="replace")[-800:] if log else ""
            raise RuntimeError(f"server {proc.args[:3]} exited early ({proc.returncode}): "
                               f"{said}")
        try:
            probe()
            return
        except (OSError, httpx.TransportError):
            time.sleep(0.1)
    raise RuntimeError(f"server {proc.args[:3]} did not come up")


def _stop(proc: Any) -> None:
    """End a server this bench started (its own process group: workers and children too).

    Servers start with ``process_group=0``, not a new session: ``openssl ocsp -multi``
    calls setpgid(0, 0), which a session leader may not, and then exits silently."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=15)
    except ProcessLookupError:
        return
    except Exception:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ocsp_bodies(certs: list[x509.Certificate], issuer: x509.Certificate,
                 nonce: bool) -> list[bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509 import ocsp

    bodies = []
    for i in range(256 if nonce else len(certs)):
        b = ocsp.OCSPRequestBuilder().add_certificate(certs[i % len(certs)], issuer,
                                                      hashes.SHA1())
        if nonce:
            b = b.add_extension(x509.OCSPNonce(os.urandom(16)), critical=False)
        bodies.append(b.build().public_bytes(serialization.Encoding.DER))
    return bodies


def _check_ocsp(port: int, body: bytes) -> None:
    """One answer checked before timing: successful, and the certificate good."""
    import httpx
    from cryptography.x509 import ocsp

    got = httpx.post(f"http://127.0.0.1:{port}/ocsp", content=body,
                     headers={"Content-Type": "application/ocsp-request"}, timeout=10)
    parsed = ocsp.load_der_ocsp_response(got.content)
    if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL or \
            parsed.certificate_status != ocsp.OCSPCertStatus.GOOD:
        raise RuntimeError(f"port {port} did not answer good: {parsed.response_status}")


def _software_peer_pki(tmp: Path, n: int) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The openssl peer's own PKI, all in software: root, issuing, OCSP responder, n leaves.

    Nothing is exported from eseal's token: openssl needs a software responder key, so the
    peer gets a software copy of the same shape of hierarchy (P-384 root, P-256 issuing and
    responder, P-256 leaves, all good) and an index.txt listing its leaves.
    """
    from cryptography.hazmat.primitives import serialization

    pem = serialization.Encoding.PEM
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _ca(root_key.public_key(), None, root_key, "Peer Root")
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = _ca(issuing_key.public_key(), root, root_key, "Peer Issuing")
    ocsp_key = ec.generate_private_key(ec.SECP256R1())
    responder = _ca(ocsp_key.public_key(), issuing, issuing_key, "Peer OCSP", ca=False,
                    eku=[ExtendedKeyUsageOID.OCSP_SIGNING])
    leaves = [_ca(ec.generate_private_key(ec.SECP256R1()).public_key(), issuing, issuing_key,
                  f"Peer leaf {i}", ca=False, eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
              for i in range(n)]
    (tmp / "issuing.pem").write_bytes(issuing.public_bytes(pem))
    (tmp / "ocsp.pem").write_bytes(responder.public_bytes(pem))
    (tmp / "ocsp.key").write_bytes(ocsp_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    lines = []
    for leaf in leaves:
        serial = format(leaf.serial_number, "X")
        serial = "0" * (len(serial) % 2) + serial
        expiry = leaf.not_valid_after_utc.strftime("%y%m%d%H%M%SZ")
        lines.append(f"V\t{expiry}\t\t{serial}\tunknown\t/O=eseal bench/CN=leaf\n")
    (tmp / "index.txt").write_text("".join(lines))
    (tmp / "index.txt.attr").write_text("unique_subject = no\n")
    return issuing, leaves


def _eseal_pki(home: Path, n: int) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """A fresh eseal home (CA keys on its SoftHSM token) with n login certificates."""
    from cryptography.hazmat.primitives import serialization

    from eseal.ca.authority import Authority, init_home
    from eseal.ra.enterprises import register_enterprise
    from eseal.settings import load_settings

    settings = load_settings(home)
    init_home(settings)
    uscc = "91350100M000100Y43"
    with Authority.open(settings) as auth:
        register_enterprise(auth, uscc=uscc, name="基准测试有限公司", legal_rep="张三",
                                 actor="bench")
        leaves = []
        for _ in range(n):
            key = ec.generate_private_key(ec.SECP256R1())
            csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(
                [x509.NameAttribute(NameOID.COMMON_NAME, "bench")])).sign(
                key, hashes.SHA256())
            issued = auth.issue(csr.public_bytes(serialization.Encoding.PEM), uscc=uscc,
                                profile="login", holder="基准", actor="bench")
            leaves.append(issued.certificate)
        return auth.certificate("issuing"), leaves


def _http_child(quick: bool, out: mp.Queue) -> None:
    """Every HTTP figure, in a process of its own (its own token configuration)."""
    try:
        out.put(_http_figures(quick))
    except BaseException as exc:  # reported by the parent instead of a silent wait
        out.put({"error": f"{type(exc).__name__}: {exc}"})
        raise


def _http_figures(quick: bool) -> dict[str, float]:
    import hashlib
    import subprocess

    from asn1crypto import tsp

    seconds = 2.0 if quick else 5.0
    clients = 4
    n = 50
    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        home = root / "home"
        os.environ.pop("SOFTHSM2_CONF", None)
        os.environ["ESEAL_HOME"] = str(home)
        eseal_issuer, eseal_leaves = _eseal_pki(home, n)
        peer_dir = root / "peer"
        peer_dir.mkdir()
        peer_issuer, peer_leaves = _software_peer_pki(peer_dir, n)
        ts_bodies = [tsp.TimeStampReq({
            "version": "v1",
            "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                "hashed_message": hashlib.sha256(b"%d" % i).digest()},
            "nonce": random.getrandbits(63), "cert_req": True}).dump() for i in range(256)]

        def ocsp_requests(issuer: x509.Certificate, leaves: list[x509.Certificate],
                          nonce: bool) -> list[bytes]:
            return _http_requests("POST", "/ocsp", _ocsp_bodies(leaves, issuer, nonce),
                                  "application/ocsp-request")

        env = dict(os.environ, ESEAL_HOME=str(home))
        for workers in (1, 2):
            port = _free_port()
            log = root / f"eseal-{workers}.log"
            with log.open("wb") as sink:
                server = subprocess.Popen(
                    [sys.executable, "-m", "eseal", "serve", "--home", str(home), "--port",
                     str(port), "--workers", str(workers)],
                    env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink,
                    process_group=0)
            try:
                for nonce in (False, True):
                    requests = ocsp_requests(eseal_issuer, eseal_leaves, nonce)
                    _wait_until_up(server, functools.partial(
                        _check_ocsp, port, requests[0].partition(b"\r\n\r\n")[2]), log)
                    rates[f"eseal{workers}-{nonce}"] = _load(port, requests, seconds=seconds,
                                                             clients=clients)
                rates[f"healthz{workers}"] = _load(
                    port, _http_requests("GET", "/healthz", [], ""), seconds=seconds,
                    clients=clients)
                rates[f"tsa{workers}"] = _load(
                    port, _http_requests("POST", "/tsa", ts_bodies,
                                         "application/timestamp-query"),
                    seconds=seconds, clients=clients)
            finally:
                _stop(server)
        for processes in (1, 2):
            port = _free_port()
            multi = ["-multi", "2"] if processes == 2 else []
            server = subprocess.Popen(  # its per-request log line is not written anywhere
                ["openssl", "ocsp", "-index", "index.txt", "-port", str(port), "-rsigner",
                 "ocsp.pem", "-rkey", "ocsp.key", "-CA", "issuing.pem", "-ndays", "1", *multi],
                cwd=peer_dir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL, process_group=0)
            try:
                for nonce in (False, True):
                    requests = ocsp_requests(peer_issuer, peer_leaves, nonce)
                    _wait_until_up(server, functools.partial(
                        _check_ocsp, port, requests[0].partition(b"\r\n\r\n")[2]), None)
                    rates[f"openssl{processes}-{nonce}"] = _load(
                        port, requests, seconds=seconds, clients=clients)
            finally:
                _stop(server)
    return rates


def http_rows(quick: bool) -> list[dict[str, Any]]:
    r = _in_child(_http_child, quick)
    if "error" in r:
        raise RuntimeError(f"HTTP benchmark failed: {r['error']}")
    best = max(r, key=lambda k: r[k])
    server, _, nonce = best.partition("-")
    label = {"openssl1": "openssl ocsp", "openssl2": "openssl ocsp -multi 2",
             "eseal1": "eseal OCSP, 1 worker", "eseal2": "eseal OCSP, 2 workers",
             "healthz1": "eseal /healthz, 1 worker", "healthz2": "eseal /healthz, 2 workers",
             "tsa1": "eseal /tsa, 1 worker", "tsa2": "eseal /tsa, 2 workers"}[server]
    label += {"True": ", nonce", "False": ", no nonce", "": ""}[nonce]
    rows: list[dict[str, Any]] = [{
        "name": "HTTP load generator (4 raw HTTP/1.1 client processes): most it drew from "
                "any server in this run",
        "value": r[best], "unit": "/s", "peer_or_limit": f"that server: {label}",
        "ratio": None, "aim": "far above the eseal rows"}]
    for workers in (1, 2):
        rows.append({
            "name": f"HTTP ceiling of eseal serve {workers} worker(s): GET /healthz",
            "value": r[f"healthz{workers}"], "unit": "/s",
            "peer_or_limit": "bounds the eseal rows below (same client, same machine)",
            "ratio": None, "aim": "—"})
    for workers in (1, 2):
        for nonce in (False, True):
            peer = r[f"openssl{workers}-{nonce}"]
            value = r[f"eseal{workers}-{nonce}"]
            what = "with nonce (signed per request)" if nonce else "no nonce (pre-signed cache)"
            rows.append({
                "name": f"OCSP responses/s over HTTP POST, eseal serve {workers} worker(s), "
                        f"{what}",
                "value": value, "unit": "/s",
                "peer_or_limit": f"openssl ocsp -index{' -multi 2' if workers == 2 else ''} "
                                 f"(software PKI) {peer:,.0f}/s",
                "ratio": value / peer, "aim": "ratio ≥ 10"})
    for workers in (1, 2):
        value = r[f"tsa{workers}"]
        rows.append({
            "name": f"timestamps/s over HTTP POST /tsa, eseal serve {workers} worker(s) "
                    "(SHA-256, nonce, certReq)",
            "value": value, "unit": "/s",
            "peer_or_limit": f"GET /healthz on the same server {r[f'healthz{workers}']:,.0f}/s",
            "ratio": value / r[f"healthz{workers}"], "aim": "ratio > 0.5"})
    return rows


def run(quick: bool = False) -> list[dict[str, Any]]:
    os.environ.setdefault("ESEAL_ENV", "test")
    return [*crl_rows(quick), *tsa_rows(quick), *http_rows(quick)]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        ratio = "—" if row["ratio"] is None else f"{row['ratio']:.3f}"
        print(f"{row['name']}: {row['value']:,.3f} {row['unit']}  vs {row['peer_or_limit']}  "
              f"ratio {ratio}  (aim {row['aim']})")
