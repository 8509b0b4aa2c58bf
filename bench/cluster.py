"""Scale-out: logins/s, issuance/s and OCSP/s with 1, 2 and 3 ``eseal serve`` replicas on
one PostgreSQL and one ``p11-kit server``-held CA token, beside the embedded default (one
process, SQLite, SoftHSM loaded in process) measured in the same run
(``python -m bench.cluster [--quick]``; needs PostgreSQL and p11-kit binaries, else it
reports nothing; not part of ``make test``).

The shape is ``deploy.cluster`` without the front (clients reach the replicas' own ports:
HAProxy would take a share of the same two cores). What is measured:

* **login** — ``POST /auth/challenge`` + ``POST /auth/verify`` with software keys holding
  this CA's login certificates (the service's work, not a token's);
* **issue** — ``POST /officer/certificates`` with an officer session and a fresh CSR each
  (CSR checked, certificate signed on the CA token, stored, audited);
* **ocsp** — ``POST /ocsp`` with a nonce, so every answer is signed on the CA token (through
  p11-kit in the cluster) after a status read from the database.

Every answer is counted by status class: a 5xx is reported, never hidden (before the
PostgreSQL write fixes land, logins and concurrent audited writes answer 500 there). To say
what bounds the curve, the run reads the CPU time each part used — replicas, PostgreSQL
(postmaster and backends), the token server (``p11-kit server`` and its ``p11-kit-remote``
children) and the load clients — from ``/proc``; "per core" is successful requests per
CPU-second spent by all of them together, the rate one core would give if the work divided
perfectly.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import selectors
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MODES = ("login", "issue", "ocsp")
CLIENT_PROCESSES = 2
CONNECTIONS_PER_PROCESS = 6
_LENGTH = re.compile(rb"content-length:[ \t]*(\d+)", re.IGNORECASE)
_TICK = os.sysconf("SC_CLK_TCK")


# --- CPU accounting -------------------------------------------------------------------------
def _stat(pid: int) -> tuple[int, float] | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # utime + stime, and cutime + cstime: the CPU of children that exited and were reaped
    # (PostgreSQL backends, p11-kit-remote), which would otherwise vanish between readings
    return int(fields[1]), sum(int(f) for f in fields[11:15]) / _TICK


def _machine_busy() -> float:
    """CPU seconds all processes of the machine spent so far (not idle, not iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / _TICK


def _tree_cpu(roots: list[int]) -> float:
    """CPU seconds used so far by ``roots`` and every process below them."""
    table: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            got = _stat(int(entry))
            if got is not None:
                table[int(entry)] = got
    wanted = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, (ppid, _) in table.items():
            if ppid in wanted and pid not in wanted:
                wanted.add(pid)
                grew = True
    return sum(table[p][1] for p in wanted if p in table)


# --- the load client (spawned processes, one selector loop each) ----------------------------
class _Conn:
    def __init__(self, port: int, address: str) -> None:
        self.port, self.address = port, address
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = f"Host: 127.0.0.1:{port}\r\nX-Forwarded-For: {address}\r\n".encode()
        self.buffer = b""
        self.phase = ""
        self.ident = 0

    def send(self, method: str, path: str, body: bytes = b"", ctype: str = "",
             extra: str = "") -> None:
        head = self.head + (f"Content-Type: {ctype}\r\n" if ctype else "").encode()
        self.sock.sendall(f"{method} {path} HTTP/1.1\r\n".encode() + head + extra.encode()
                          + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)

    def answer(self) -> tuple[int, bytes] | None:
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return None
        match = _LENGTH.search(self.buffer[:end])
        length = int(match.group(1)) if match else 0
        if len(self.buffer) < end + 4 + length:
            return None
        status, body = int(self.buffer[9:12]), self.buffer[end + 4:end + 4 + length]
        self.buffer = self.buffer[end + 4 + length:]
        return status, body


def _client(ports: list[int], mode: str, job: dict[str, Any], index: int, start_at: float,
            stop_at: float, queue: Any) -> None:
    import base64

    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from eseal.pki.login_message import login_message

    keys = [(serialization.load_der_private_key(k, None), c) for k, c in job["agents"]]
    bodies: list[bytes] = job["bodies"]
    selector = selectors.DefaultSelector()
    conns = []
    for c in range(CONNECTIONS_PER_PROCESS):
        n = index * CONNECTIONS_PER_PROCESS + c
        conn = _Conn(ports[n % len(ports)], f"10.{index}.{c}.1")
        conn.ident = n
        selector.register(conn.sock, selectors.EVENT_READ, conn)
        conns.append(conn)
    counts = {"ok": 0, "4xx": 0, "5xx": 0, "dropped": 0}
    used = 0
    signature = ec.ECDSA(hashes.SHA256())

    def start(conn: _Conn) -> bool:
        nonlocal used
        if mode == "login":
            conn.phase = "challenge"
            conn.send("POST", "/auth/challenge")
        elif mode == "ocsp":
            conn.send("POST", "/ocsp", _ocsp_with_nonce(job["ocsp"]), "application/ocsp-request")
        else:
            if used >= len(bodies):
                return False
            conn.send("POST", "/officer/certificates", bodies[used], "application/json",
                      f"Authorization: Bearer {job['officer']}\r\n")
            used += 1
        return True

    while time.time() < start_at:
        time.sleep(0.001)
    cpu_before = os.times()
    live = [c for c in conns if start(c)]
    while time.time() < stop_at and live:
        for key, _ in selector.select(timeout=0.05):
            conn = key.data
            try:
                data = conn.sock.recv(262144)
            except OSError:
                data = b""
            if not data:  # the server dropped the connection: count it, connect again
                counts["dropped"] += 1
                selector.unregister(conn.sock)
                conn.sock.close()
                fresh = _Conn(conn.port, conn.address)
                fresh.ident = conn.ident
                selector.register(fresh.sock, selectors.EVENT_READ, fresh)
                live[live.index(conn)] = fresh
                conns.append(fresh)
                if not start(fresh):
                    live.remove(fresh)
                continue
            conn.buffer += data
            got = conn.answer()
            if got is None:
                continue
            status, body = got
            if mode == "login" and conn.phase == "challenge" and status == 200:
                challenge = json.loads(body)
                fields = {"nonce": challenge["nonce"], "origin": job["origin"],
                          "purpose": "login", "issued_at": challenge["issued_at"]}
                key_, cert = keys[conn.ident % len(keys)]
                sig = key_.sign(login_message(**fields), signature)
                conn.phase = "verify"
                conn.send("POST", "/auth/verify", json.dumps({
                    **fields, "certificate": cert,
                    "signature": base64.b64encode(sig).decode()}).encode(), "application/json")
                continue
            counts["ok" if status < 400 else "4xx" if status < 500 else "5xx"] += 1
            if not start(conn):
                live.remove(conn)
    cpu_after = os.times()
    ended = min(time.time(), stop_at)
    for conn in conns:
        conn.sock.close()
    queue.put((counts, (cpu_after.user + cpu_after.system)
               - (cpu_before.user + cpu_before.system), ended))


def _ocsp_with_nonce(template: bytes) -> bytes:
    """The prepared request with a fresh 16-byte nonce (its last 16 bytes)."""
    return template[:-16] + os.urandom(16)


def _measure(ports: list[int], mode: str, job: dict[str, Any], seconds: float,
             groups: dict[str, list[int]]) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    queue: Any = ctx.Queue()
    start_at = time.time() + 2.0
    stop_at = start_at + seconds
    share = len(job["bodies"]) // CLIENT_PROCESSES
    procs = [ctx.Process(target=_client, args=(
        ports, mode, {**job, "bodies": job["bodies"][i * share:(i + 1) * share]}, i, start_at,
        stop_at, queue)) for i in range(CLIENT_PROCESSES)]
    for p in procs:
        p.start()
    while time.time() < start_at:
        time.sleep(0.01)
    before = {name: _tree_cpu(pids) for name, pids in groups.items()}
    machine_before = _machine_busy()
    results = [queue.get(timeout=seconds + 120) for _ in procs]
    machine = _machine_busy() - machine_before
    after = {name: _tree_cpu(pids) for name, pids in groups.items()}
    for p in procs:
        p.join()
    counts = {k: sum(r[0][k] for r in results) for k in ("ok", "4xx", "5xx", "dropped")}
    cpu = {name: after[name] - before[name] for name in groups}
    cpu["clients"] = sum(r[1] for r in results)
    total_cpu = sum(cpu.values())
    elapsed = max(max(r[2] for r in results) - start_at, 0.001)  # issuance may run out early
    return {"rate": counts["ok"] / elapsed, **counts, "cpu": cpu,
            "per_core": counts["ok"] / total_cpu if total_cpu else 0.0,
            "cpu_busy": total_cpu / elapsed,
            "others_busy": max(machine - total_cpu, 0.0) / elapsed}


# --- the sites ------------------------------------------------------------------------------
def _job(home: Path, origin: str, urls: list[str], n_bodies: int) -> dict[str, Any]:
    import httpx
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from deploy.load import USCC, _csr, _login, _ocsp_body, prepare
    from deploy.load import Tally as LoadTally

    prep = prepare(home, agents=48)
    officer = None
    tally = LoadTally()
    with httpx.Client(timeout=60) as client:
        officer, _ = _login(client, urls[0], prep, prep.officer, tally)
    bodies = [json.dumps({"csr": _csr(ec.generate_private_key(ec.SECP256R1()), f"基准{i}")
                          .decode(), "uscc": USCC, "profile": "login",
                          "holder": f"基准{i}"}).encode() for i in range(n_bodies)]
    agents = [(k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption()), c) for k, c in prep.agents]
    return {"origin": origin, "agents": agents, "bodies": bodies, "officer": officer,
            "ocsp": _ocsp_body(prep), "officer_refused": dict(tally.server_errors)}


def _sqlite_site(root: Path) -> tuple[Any, list[int], dict[str, list[int]]]:
    """The embedded default: one home, SQLite, SoftHSM in process, one ``eseal serve``."""
    import subprocess

    from deploy.cluster import clean_env, eseal, free_port, wait_http

    port = free_port()
    home = root / "single"
    eseal("init", "--home", str(home), "--base-url", f"http://127.0.0.1:{port}",
          env=clean_env())
    proc = subprocess.Popen([sys.executable, "-m", "eseal", "serve", "--home", str(home),
                             "--port", str(port)], env=clean_env(ESEAL_HOME=str(home)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    return proc, [port], {"replicas": [proc.pid]}


def _stop(proc: Any) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except Exception:
        proc.kill()


def _row(mode: str, label: str, got: dict[str, Any], peer: dict[str, Any] | None,
         peer_label: str) -> dict[str, Any]:
    cpu = ", ".join(f"{k} {v / max(got['ok'], 1) * 1000:.1f}" for k, v in got["cpu"].items())
    row: dict[str, Any] = {
        "name": f"{mode}/s, {label} (5xx: {got['5xx']}, 4xx: {got['4xx']}, connections "
                f"dropped: {got['dropped']}; CPU ms per "
                f"request: {cpu}; {got['per_core']:,.0f}/s per core, "
                f"{got['cpu_busy']:.2f} cores busy with this, "
                f"{got['others_busy']:.2f} with other work on the machine)",
        "value": got["rate"], "unit": "/s"}
    if peer is not None and peer["rate"]:
        row.update(peer_or_limit=f"{peer_label} {peer['rate']:,.0f}/s",
                   ratio=got["rate"] / peer["rate"])
    else:
        row.update(peer_or_limit=f"{peer_label}: no successful requests", ratio=None)
    row["aim"] = "zero 5xx; scaling ends where the 2 cores are busy"
    return row


def run(quick: bool = False) -> list[dict[str, Any]]:
    from deploy.cluster import CLIENT_MODULE, Cluster, postgres_bin

    if postgres_bin() is None or shutil.which("p11-kit") is None \
            or not os.path.exists(CLIENT_MODULE):
        print("bench.cluster: PostgreSQL or p11-kit missing; skipped", file=sys.stderr)
        return []
    os.environ.setdefault("ESEAL_ENV", "test")
    seconds = 2.0 if quick else 4.0
    n_bodies = 1500 if quick else 4000
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        os.chmod(root, 0o711)  # PostgreSQL runs as its own user and must reach its directory
        proc, ports, groups = _sqlite_site(root)
        try:
            job = _job(root / "single", f"http://127.0.0.1:{ports[0]}",
                       [f"http://127.0.0.1:{ports[0]}"], n_bodies)
            _measure(ports, "ocsp", job, 1.0, groups)  # warm-up
            single = {mode: _measure(ports, mode, _fresh(job, mode, 0), seconds, groups)
                      for mode in MODES}
        finally:
            _stop(proc)
        from eseal.store import close_all

        close_all()
        cluster = Cluster(root / "cluster", replicas=3, front=False).up()
        try:
            assert cluster.pg is not None and cluster.token is not None
            assert cluster.token.process is not None
            pg_pid = int((cluster.pg.root / "data" / "postmaster.pid").read_text().split()[0])
            groups = {"replicas": [p.pid for p in cluster.serves], "postgres": [pg_pid],
                      "p11-kit": [cluster.token.process.pid]}
            origin = f"http://127.0.0.1:{cluster.front_port}"
            job = _job(cluster.ca_home, origin, cluster.urls, n_bodies * 3)
            if job["officer"] is None:
                print(f"bench.cluster: the officer could not log in on PostgreSQL "
                      f"({job['officer_refused']}); issuance rows count those answers",
                      file=sys.stderr)
            _measure(cluster.ports, "ocsp", job, 1.0, groups)  # warm-up: every connection
            for mode in MODES:
                rows.append(_row(mode, "SQLite, 1 process (embedded default)", single[mode],
                                 None, "itself"))
                for n in (1, 2, 3):
                    got = _measure(cluster.ports[:n], mode, _fresh(job, mode, n), seconds,
                                   groups)
                    rows.append(_row(mode, f"PostgreSQL + p11-kit token, {n} "
                                     f"replica{'s' if n > 1 else ''}", got, single[mode],
                                     "SQLite 1 process"))
        finally:
            cluster.down()
    return rows


def _fresh(job: dict[str, Any], mode: str, n: int) -> dict[str, Any]:
    """Issuance needs CSRs never used before: each measurement takes its own slice."""
    if mode != "issue":
        return {**job, "bodies": []}
    size = len(job["bodies"]) // 4
    return {**job, "bodies": job["bodies"][n * size:(n + 1) * size]}


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        ratio = f"{r['ratio']:.2f}" if isinstance(r.get("ratio"), float) else "—"
        print(f"{r['value']:>9,.0f}/s  ratio {ratio:>5}  {r['name']}")
