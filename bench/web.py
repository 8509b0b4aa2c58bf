"""The portal's and the console's pages over 100,000 certificates, beside ``GET /healthz`` in
the same run (``python -m bench web [--quick]``).

* **first byte**: httpx on a keep-alive connection, request sent -> first body byte, for the
  portal home (an agent's session), the console's certificate search page (an officer's
  session, plain and with a name filter) and the console search's JSON read behind it
  (``/officer/certificates/search``);
* **full load**: Debian's chromium (Playwright, no extension), the page's own Navigation
  Timing entry: navigation start -> ``loadEventEnd`` (HTML, CSS, scripts, images); ``/healthz``
  loaded the same way is the peer.

The database holds ``bench.seed.seed_certificates`` rows (100,000; ``--quick`` 5,000) beside
a real home: the CA on SoftHSM, one enterprise with an agent's USB-Key, an officer's
USB-Key. Sessions are real page logins (``POST /web/login`` with a challenge signed on the
SoftHSM key; the HttpOnly cookie is handed to the browser context). Rounds alternate over the
targets so a noisy neighbour hurts all alike; the median round counts. A page not served
(a 404: not built yet on this branch) is reported as absent, not timed.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

USCC = "91350100M000100Y43"
NAME = "𠮷野家（福建）餐饮管理有限公司"
PIN = "4913-7720"
AIM = "page first byte <= 10x /healthz; full load < 1 s"
#: (label, path, who): who is the session's USB-Key label, None for no session
NAME_Q = "name=%F0%A0%AE%B7%E9%87%8E%E5%AE%B6"  # 𠮷野家, outside the BMP
TARGETS = [
    ("GET /healthz", "/healthz", None),
    ("portal home", "/portal/home", "wang"),
    ("console certificate search", "/console/certificates", "officer"),
    ("console search, name 𠮷野家", f"/console/certificates?{NAME_Q}", "officer"),
    ("console search, good and expiring within 30 days",
     "/console/certificates?status=good&expiring_within=30", "officer"),
    ("JSON search, name 𠮷野家", f"/officer/certificates/search?{NAME_Q}", "officer"),
]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _site(home: Path, port: int) -> dict[str, str]:
    """An initialised home with an agent's USB-Key and an officer's; label -> PIN."""
    from eseal.ca.authority import Authority, init_home
    from eseal.ra.enrollment import enroll_on_token
    from eseal.ra.enterprises import register_enterprise
    from eseal.ra.staff import provision_staff_token
    from eseal.settings import load_settings
    from eseal.token import configure
    from eseal.token.softhsm import write_conf
    from eseal.token.usbkey import provision

    os.environ["SOFTHSM2_CONF"] = str(write_conf(home / "softhsm2.conf", home / "tokens"))
    settings = load_settings(home, base_url=f"http://127.0.0.1:{port}")
    configure(settings.pkcs11_module, settings.softhsm_conf_path)
    init_home(settings)
    with Authority.open(settings) as auth:
        register_enterprise(auth, uscc=USCC, name=NAME, legal_rep="张三", actor="bench")
        provision(settings.softhsm_conf_path, "wang", PIN, f"so-{PIN}-x")
        enroll_on_token(auth, label="wang", pin=PIN, uscc=USCC, role="agent", holder="王五",
                        actor="bench")
        officer = provision_staff_token(auth, label="officer", name="周主任", role="officer",
                                        actor="bench")
    return {"wang": PIN, "officer": officer.pin}


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    import httpx

    env = {k: v for k, v in os.environ.items() if not k.startswith("ESEAL_")}
    env.update(ESEAL_ENV="test", ESEAL_HOME=str(home))
    env.pop("SOFTHSM2_CONF", None)
    proc = subprocess.Popen([sys.executable, "-m", "eseal", "serve", "--home", str(home),
                             "--port", str(port)], env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError("eseal serve exited early")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("eseal serve did not start")


def _page_session(url: str, label: str, pin: str) -> str:
    """A page login with the USB-Key ``label``: the session cookie's value."""
    import httpx

    from eseal.holder.client import sign_challenge
    from eseal.token.client import UsbKey

    challenge = httpx.post(f"{url}/auth/challenge", timeout=30).json()
    with UsbKey.open(label, pin) as key:
        answer = sign_challenge(challenge, key, origin=url)
    done = httpx.post(f"{url}/web/login", json=answer, timeout=30)
    done.raise_for_status()
    return str(done.cookies["eseal_session"])


def _first_byte(client: Any, path: str) -> tuple[float, int]:
    started = time.perf_counter()
    with client.stream("GET", path) as answer:
        chunks = answer.iter_raw()
        next(chunks, None)
        elapsed = time.perf_counter() - started
        for _ in chunks:  # drain, so the connection is reused
            pass
        return elapsed, answer.status_code


def _load(page: Any, url: str) -> tuple[float, int]:
    answer = page.goto(url, wait_until="load")
    timing = page.evaluate("() => { const n = performance.getEntriesByType('navigation')[0];"
                           " return n.loadEventEnd - n.startTime; }")
    return float(timing) / 1000, answer.status if answer else 0


def _measure(url: str, cookies: dict[str, str], rounds: int) -> dict[str, dict[str, Any]]:
    import httpx
    from playwright.sync_api import sync_playwright

    found: dict[str, dict[str, Any]] = {label: {"ttfb": [], "load": [], "status": set()}
                                        for label, _, _ in TARGETS}
    clients = {who: httpx.Client(base_url=url, timeout=120,
                                 cookies={"eseal_session": c} if c else None)
               for who, c in [(None, ""), *cookies.items()]}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", headless=True)
        pages = {}
        for who in clients:
            context = browser.new_context(viewport={"width": 1280, "height": 800})
            context.set_default_timeout(120_000)
            if who:
                context.add_cookies([{"name": "eseal_session", "value": cookies[who],
                                      "url": url, "httpOnly": True, "sameSite": "Strict"}])
            pages[who] = context.new_page()
        try:
            for _ in range(2):  # warm: imports, templates, caches, the browser itself
                for _label, path, who in TARGETS:
                    _first_byte(clients[who], path)
                    _load(pages[who], url + path)
            for _ in range(rounds):
                for label, path, who in TARGETS:
                    seconds, status = _first_byte(clients[who], path)
                    found[label]["ttfb"].append(seconds)
                    found[label]["status"].add(status)
                    if not path.startswith("/officer/"):  # a JSON read is not a page
                        seconds, status = _load(pages[who], url + path)
                        found[label]["load"].append(seconds)
                        found[label]["status"].add(status)
        finally:
            browser.close()
            for client in clients.values():
                client.close()
    return found


def run(quick: bool = False) -> list[dict[str, Any]]:
    from bench.seed import seed_certificates

    os.environ.setdefault("ESEAL_ENV", "test")
    n = 5_000 if quick else 100_000
    rounds = 5 if quick else 15
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        port = _port()
        url = f"http://127.0.0.1:{port}"
        pins = _site(home, port)
        seeded = seed_certificates(home, n)
        server = _serve(home, port)
        try:
            cookies = {label: _page_session(url, label, pin) for label, pin in pins.items()}
            found = _measure(url, cookies, rounds)
        finally:
            server.terminate()
            server.wait(timeout=15)
    print(f"  seeded {n:,} certificates: {seeded}", file=sys.stderr)
    health = found["GET /healthz"]
    peer_ttfb = statistics.median(health["ttfb"])
    peer_load = statistics.median(health["load"])
    rows: list[dict[str, Any]] = []
    for label, path, _who in TARGETS:
        got = found[label]
        if got["status"] != {200}:
            rows.append({"name": f"{label} ({n:,} certificates)",
                         "value": f"absent: {path} answered {sorted(got['status'])}",
                         "unit": "", "aim": AIM})
            continue
        ttfb = statistics.median(got["ttfb"])
        rows.append({"name": f"{label}: first byte ({n:,} certificates)", "value": ttfb * 1000,
                     "unit": "ms", "peer_or_limit": f"/healthz {peer_ttfb * 1000:.2f} ms",
                     "ratio": ttfb / peer_ttfb, "aim": AIM})
        if got["load"]:
            load = statistics.median(got["load"])
            rows.append({"name": f"{label}: chromium full load", "value": load * 1000,
                         "unit": "ms", "peer_or_limit": f"/healthz {peer_load * 1000:.1f} ms",
                         "ratio": load / peer_load, "aim": AIM})
    return rows


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
