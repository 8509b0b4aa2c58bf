"""The CA token through ``p11-kit server``: what serialisation the remote module needs
(``python -m bench.token_remote [--quick]``; needs Debian's p11-kit, else nothing).

The server forks one ``p11-kit-remote`` per client connection and each loads its own SoftHSM,
so nothing on the server side serialises SoftHSM's logins: a process starting while another
logs in can see a blank token. Measured here, in the same run:

* **start-up race** — eight processes start at the same instant, each opening the token,
  logging in and signing once: with bare python-pkcs11 (no retry), and with eseal's service
  session (log in once, retry start-up with a fresh ``C_Initialize`` and a short backoff);
  the row counts the starts that failed.
* **signing** — P-256 signatures/s through the client module in one process: eseal's token
  layer (one process-wide lock, as for an in-process SoftHSM) beside bare python-pkcs11 with
  two threads and no lock, which the p11-kit client tolerates (DESIGN.md): what dropping the
  lock for a remote module would buy.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

PIN = "bench-4913"
SO_PIN = "bench-so-8812"
LABEL = "eseal-ca"
STARTERS = 8


def _start_once(mode: str, address: str, key_id: bytes, start_at: float, queue: Any) -> None:
    from deploy.cluster import CLIENT_MODULE

    os.environ["P11_KIT_SERVER_ADDRESS"] = address
    digest = hashlib.sha256(b"start").digest()
    while time.time() < start_at:
        time.sleep(0.0005)
    try:
        if mode == "bare":
            import pkcs11

            lib = pkcs11.lib(CLIENT_MODULE)
            session = lib.get_token(token_label=LABEL).open(user_pin=PIN)
            key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=key_id)
            key.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)
        else:
            from eseal.token import TokenSession, configure, token_private_key

            configure(CLIENT_MODULE, None, address)
            ts = TokenSession(LABEL, PIN, rw=True, service=True)
            token_private_key(ts, key_id).sign_digest(digest)  # type: ignore[call-arg]
        queue.put("ok")
    except Exception as exc:  # the measurement is what fails, and how
        queue.put(getattr(exc, "code", type(exc).__name__))


def _race(mode: str, address: str, key_id: bytes, rounds: int) -> dict[str, int]:
    ctx = mp.get_context("spawn")
    outcomes: dict[str, int] = {}
    for _ in range(rounds):
        queue: Any = ctx.Queue()
        start_at = time.time() + 1.5
        procs = [ctx.Process(target=_start_once, args=(mode, address, key_id, start_at, queue))
                 for _ in range(STARTERS)]
        for p in procs:
            p.start()
        for _ in procs:
            got = queue.get(timeout=120)
            outcomes[got] = outcomes.get(got, 0) + 1
        for p in procs:
            p.join()
    return outcomes


def _signing(address: str, key_id: bytes, n: int, queue: Any) -> None:
    import pkcs11
    import pkcs11.exceptions

    from deploy.cluster import CLIENT_MODULE
    from eseal.token import TokenSession, configure, token_private_key

    digest = hashlib.sha256(b"sign").digest()
    configure(CLIENT_MODULE, None, address)
    key = token_private_key(TokenSession(LABEL, PIN, rw=True, service=True), key_id)
    key.sign_digest(digest)  # type: ignore[call-arg]
    started = time.perf_counter()
    for _ in range(n):
        key.sign_digest(digest)  # type: ignore[call-arg]
    eseal_rate = n / (time.perf_counter() - started)
    bare = pkcs11.lib(CLIENT_MODULE)  # a second module instance of its own (p11-kit-client)
    token = bare.get_token(token_label=LABEL)
    try:
        session = token.open(user_pin=PIN)
    except pkcs11.exceptions.UserAlreadyLoggedIn:  # both instances share one connection
        session = token.open()
    bare_key = session.get_key(object_class=pkcs11.ObjectClass.PRIVATE_KEY, id=key_id)

    def loop() -> None:
        for _ in range(n // 2):
            bare_key.sign(digest, mechanism=pkcs11.Mechanism.ECDSA)

    threads = [threading.Thread(target=loop) for _ in range(2)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put((eseal_rate, (n // 2) * 2 / (time.perf_counter() - started)))


def run(quick: bool = False) -> list[dict[str, Any]]:
    from deploy.cluster import CLIENT_MODULE, TokenServer

    if shutil.which("p11-kit") is None or not os.path.exists(CLIENT_MODULE):
        print("bench.token_remote: p11-kit missing; skipped", file=sys.stderr)
        return []
    rounds, n = (2, 1000) if quick else (6, 4000)
    with tempfile.TemporaryDirectory() as tmp:
        from eseal.token import TokenSession, configure, generate_keypair
        from eseal.token.softhsm import write_conf

        conf = write_conf(Path(tmp) / "softhsm2.conf", Path(tmp) / "tokens")
        subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", LABEL,
                        "--pin", PIN, "--so-pin", SO_PIN], env=dict(os.environ,
                       SOFTHSM2_CONF=str(conf)), check=True, capture_output=True)
        configure("/usr/lib/softhsm/libsofthsm2.so", conf)
        with TokenSession(LABEL, PIN, rw=True) as ts:
            key_id = generate_keypair(ts, "ec-p256", "bench").id
        server = TokenServer(conf, Path(tmp) / "ca.sock").start()
        try:
            bare = _race("bare", server.address, key_id, rounds)
            served = _race("eseal", server.address, key_id, rounds)
            ctx = mp.get_context("spawn")
            queue: Any = ctx.Queue()
            proc = ctx.Process(target=_signing, args=(server.address, key_id, n, queue))
            proc.start()
            eseal_rate, bare_rate = queue.get(timeout=300)
            proc.join()
        finally:
            server.stop()
    starts = rounds * STARTERS

    def failed(outcomes: dict[str, int]) -> int:
        return starts - outcomes.get("ok", 0)

    def detail(outcomes: dict[str, int]) -> str:
        return ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items()) if k != "ok") or "none"

    return [
        {"name": f"{STARTERS} processes starting at once against the p11-kit-served token, "
                 f"{rounds} rounds: failed starts with eseal's service session (failures: "
                 f"{detail(served)})",
         "value": failed(served), "unit": f"of {starts}",
         "peer_or_limit": f"bare python-pkcs11, no retry: {failed(bare)} of {starts} failed "
                          f"({detail(bare)})",
         "ratio": None, "aim": "0 failed"},
        {"name": "P-256 signatures/s through p11-kit-client.so, eseal.token (process lock), "
                 "1 process",
         "value": eseal_rate, "unit": "sig/s",
         "peer_or_limit": f"bare python-pkcs11, 2 threads, no lock: {bare_rate:,.0f} sig/s",
         "ratio": eseal_rate / bare_rate, "aim": "≥ 0.8 (else drop the lock when remote)"},
    ]


if __name__ == "__main__":
    for r in run("--quick" in sys.argv):
        ratio = f"{r['ratio']:.2f}" if isinstance(r.get("ratio"), float) else "—"
        print(f"{r['value']:>9,.1f} {r['unit']}  ratio {ratio}  {r['name']}  "
              f"vs {r['peer_or_limit']}")
