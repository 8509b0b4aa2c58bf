"""Full USB-Key logins per second over HTTP with two server processes, beside the requests
per second of a trivial endpoint (``/healthz``) on the same servers in the same run
(``python -m bench.login [--quick]``).

A login is what ``eseal login`` does on the wire: ``POST /auth/challenge``, sign the
domain-separated bytes, ``POST /auth/verify`` — the server checks the signature, the chain to
our root (cached per certificate), the certificate's live status, spends the nonce with one
atomic UPDATE, records the attempt (login history and hash-chained audit log) and stores a
session, all in one SQLite transaction shared by both processes. The holders' signatures
are made with software keys holding login certificates of this CA, so the figure is the
service's; the token's own signing rate (SoftHSM through ``UsbKey``, the client's one
signing path) is reported on its own row. Load comes from client processes with keep-alive
connections spread over the two servers (one selector loop per client process, requests as
bytes: a client heavier than the trivial endpoint would measure itself); rounds alternate
between logins and ``/healthz`` so that a noisy neighbour hurts both alike, and the median
round counts.
Aim: over 1,000 logins/s, and logins/s at least 40 % of the ``/healthz`` requests/s.
"""

from __future__ import annotations

import base64
import http.client
import json
import multiprocessing as mp
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

AIM = "> 1,000 logins/s and >= 0.4 of /healthz req/s"
USCC = "91350100M000100Y43"
PIN = "4913-7720"
SO_PIN = "so-8812-4401"
CLIENT_PROCESSES = 2
CONNECTIONS_PER_PROCESS = 6


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _identities(auth: Any, n: int) -> list[tuple[bytes, str]]:
    """``n`` login certificates of this CA for software keys, each linked to an agent account
    (as a token enrolment would link it): (PKCS#8 key, base64 certificate DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from eseal import clock
    from eseal.store.models import TokenRecord

    ent = auth.enterprise(USCC)
    out = []
    for i in range(n):
        key = ec.generate_private_key(ec.SECP256R1())
        holder = f"基准{i}"
        csr = (x509.CertificateSigningRequestBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, holder)]))
               .sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM))
        label = f"bench-{i}"
        issued = auth.issue(csr, uscc=USCC, profile="login", holder=holder, actor="bench",
                            token_label=label)
        with auth.db.write() as s:
            s.add(TokenRecord(label=label, enterprise_id=ent.id, role="agent", holder=holder,
                              created_at=clock.now()))
        der = issued.certificate.public_bytes(serialization.Encoding.DER)
        pkcs8 = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
        out.append((pkcs8, base64.b64encode(der).decode()))
    return out


def _token_signatures(conf: Path, n: int) -> float:
    """Login signatures/s through ``UsbKey.sign`` (hash on the host, sign on SoftHSM)."""
    from eseal.pki.login_message import login_message
    from eseal.token import TokenSession
    from eseal.token.client import UsbKey
    from eseal.token.usbkey import generate_key, provision

    provision(conf, "bench-usbkey", PIN, SO_PIN)
    setup = TokenSession("bench-usbkey", PIN, rw=True).open()
    generate_key(setup, "login")
    setup.close()
    message = login_message(nonce="A" * 43, origin="https://ca.example",
                            issued_at="2026-01-01T00:00:00Z")
    with UsbKey.open("bench-usbkey", PIN) as key:
        key.sign("login", message)
        started = time.perf_counter()
        for _ in range(n):
            key.sign("login", message)
        return n / (time.perf_counter() - started)


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test")
    env.pop("SOFTHSM2_CONF", None)
    env.pop("ESEAL_NOW", None)
    return subprocess.Popen(
        [sys.executable, "-m", "eseal", "serve", "--home", str(home), "--port", str(port)],
        env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)


def _wait(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("eseal serve exited early")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("eseal serve did not come up")


# --- the load (client processes) ---------------------------------------------------------------
# A lean client: a few keep-alive connections per process driven by one selector loop,
# requests written as bytes and answers parsed by Content-Length. http.client (its header
# parser) and threads cost more CPU per request than the service's trivial endpoint, so with
# them the benchmark would measure its own client on the shared cores.
_LENGTH = re.compile(rb"content-length:[ \t]*(\d+)", re.IGNORECASE)


class _Conn:
    def __init__(self, port: int, address: str, identity: tuple[Any, str]) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = f"Host: 127.0.0.1:{port}\r\nX-Forwarded-For: {address}\r\n".encode()
        self.key, self.cert = identity
        self.buffer = b""
        self.phase = ""

    def send(self, method: str, path: str, body: bytes = b"") -> None:
        extra = b"Content-Type: application/json\r\n" if body else b""
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\n".encode() + self.head + extra
                          + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    def answer(self) -> tuple[int, bytes] | None:
        """One complete answer from the buffer (status, body), or None yet."""
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = self.buffer[:end]
        match = _LENGTH.search(head)
        length = int(match.group(1)) if match else 0
        if len(self.buffer) < end + 4 + length:
            return None
        body = self.buffer[end + 4:end + 4 + length]
        self.buffer = self.buffer[end + 4 + length:]
        return int(head[9:12]), body


def _client_process(ports: list[int], origin: str, mode: str,
                    identities: list[tuple[bytes, str]], index: int, start_at: float,
                    stop_at: float, queue: Any) -> None:
    import selectors

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from eseal.pki.login_message import login_message

    keys = [(serialization.load_der_private_key(k, None), cert) for k, cert in identities]
    selector = selectors.DefaultSelector()
    conns = []
    for c in range(CONNECTIONS_PER_PROCESS):
        n = index * CONNECTIONS_PER_PROCESS + c
        conn = _Conn(ports[n % len(ports)], f"10.{index}.{c}.1", keys[n % len(keys)])
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        conns.append(conn)
    signature = ec.ECDSA(hashes.SHA256())

    def start(conn: _Conn) -> None:
        if mode == "healthz":
            conn.send("GET", "/healthz")
        else:
            conn.phase = "challenge"
            conn.send("POST", "/auth/challenge")

    done = failed = 0
    while time.time() < start_at:
        time.sleep(0.001)
    for conn in conns:
        start(conn)
    while time.time() < stop_at:
        for key, _ in selector.select(timeout=0.05):
            conn = key.data
            data = conn.sock.recv(262144)
            if not data:
                raise RuntimeError("the server closed a connection")
            conn.buffer += data
            got = conn.answer()
            if got is None:
                continue
            status, body = got
            if conn.phase == "challenge" and status == 200:
                challenge = json.loads(body)
                fields = {"nonce": challenge["nonce"], "origin": origin, "purpose": "login",
                          "issued_at": challenge["issued_at"]}
                sig = conn.key.sign(login_message(**fields), signature)
                conn.phase = "verify"
                conn.send("POST", "/auth/verify", json.dumps({
                    **fields, "certificate": conn.cert,
                    "signature": base64.b64encode(sig).decode()}).encode())
                continue
            done += status == 200
            failed += status != 200
            start(conn)
    for conn in conns:
        conn.sock.close()
    queue.put((done, failed))


def _round(ports: list[int], origin: str, mode: str, identities: list[tuple[bytes, str]],
           seconds: float) -> float:
    ctx = mp.get_context("spawn")
    queue: Any = ctx.Queue()
    start_at = time.time() + 2.0  # every client process imported and connected
    stop_at = start_at + seconds
    procs = [ctx.Process(target=_client_process,
                         args=(ports, origin, mode, identities, i, start_at, stop_at, queue))
             for i in range(CLIENT_PROCESSES)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    done, failed = sum(r[0] for r in results), sum(r[1] for r in results)
    if failed:
        raise RuntimeError(f"{failed} {mode} requests failed in the benchmark")
    return done / seconds


def run(quick: bool = False) -> list[dict]:
    os.environ.setdefault("ESEAL_ENV", "test")
    from eseal.ca.authority import Authority, init_home
    from eseal.ra.enterprises import register_enterprise
    from eseal.settings import load_settings
    from eseal.store import close_all

    seconds, rounds, n_ids = (2.0, 1, 32) if quick else (4.0, 3, 64)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.pop("SOFTHSM2_CONF", None)
        home = Path(tmp) / "home"
        ports = [_free_port(), _free_port()]
        origin = f"http://127.0.0.1:{ports[0]}"  # the one configured base URL of both
        settings = load_settings(home, base_url=origin)
        init_home(settings)
        with Authority.open(settings) as auth:
            register_enterprise(auth, uscc=USCC, name="基准测试有限公司", legal_rep="张三",
                                     actor="bench")
            identities = _identities(auth, n_ids)
        token_rate = _token_signatures(settings.softhsm_conf_path, 300 if quick else 2000)
        close_all()
        servers = [_serve(home, port) for port in ports]
        try:
            for port, proc in zip(ports, servers, strict=True):
                _wait(port, proc)
            _round(ports, origin, "login", identities, 1.0)  # warm-up: caches, first logins
            healthz: list[float] = []
            logins: list[float] = []
            for _ in range(rounds):
                healthz.append(_round(ports, origin, "healthz", identities, seconds))
                logins.append(_round(ports, origin, "login", identities, seconds))
        finally:
            for proc in servers:
                proc.terminate()
            for proc in servers:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    login_rate, healthz_rate = statistics.median(logins), statistics.median(healthz)
    return [
        {"name": "full logins/s over HTTP, 2 server processes (challenge + verify)",
         "value": login_rate, "unit": "logins/s",
         "peer_or_limit": f"/healthz {healthz_rate:,.0f} req/s on the same servers",
         "ratio": login_rate / healthz_rate, "aim": AIM},
        {"name": "/healthz requests/s, same 2 servers and clients",
         "value": healthz_rate, "unit": "req/s", "peer_or_limit": "aim: logins > 1,000/s",
         "ratio": login_rate / 1000, "aim": "ratio (logins/1,000) > 1"},
        {"name": "token login signatures/s (SoftHSM P-256 via UsbKey.sign), counted apart",
         "value": token_rate, "unit": "sig/s", "peer_or_limit": f"logins {login_rate:,.0f}/s",
         "ratio": token_rate / login_rate, "aim": "> 1 (the token is not the bottleneck)"},
    ]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(f"{row['name']}: {row['value']:,.0f} {row['unit']}  vs {row['peer_or_limit']}  "
              f"ratio {row['ratio']:.3f}  (aim {row['aim']})")
