"""The USB-Key in the browser against the same operations through the CLI, in one run
(``python -m bench browser``).

* click -> session: the login page's button, the consent window (PIN typed by Playwright),
  ``/auth/verify``, until the page shows the account; beside ``eseal login`` (a process that
  starts, opens the token and logs in).
* click -> receipt for a ~1 MB filing: the sealing page's button, the server preparing the
  seal, the consent window, the host's one signature, the server finishing (timestamp, B-LT)
  and the intake, until the page shows the receipt; beside ``eseal filing seal`` (download,
  seal on the holder's machine, upload, intake, receipt).

Real pieces throughout: Debian's chromium with the unpacked extension, the native host (a new
process per message, as Chrome starts it), SoftHSM USB-Keys and ``eseal serve``. One run of
each (the browser start is not counted); figures are wall-clock seconds on a shared machine.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

USCC = "91350100M000100Y43"
NAME = "𠮷野家（福建）餐饮管理有限公司"
PINS = {"zhang": "4913-7720", "wang": "6624-0195"}
AIM = "< 2x the CLI"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _site(home: Path, port: int) -> None:
    from eseal.ca.authority import Authority, init_home
    from eseal.ra.enrollment import enroll_on_token
    from eseal.ra.enterprises import register_enterprise
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
        for label, role, holder in (("zhang", "legal_rep", "张三"), ("wang", "agent", "王五")):
            provision(settings.softhsm_conf_path, label, PINS[label], f"so-{PINS[label]}-x")
            enroll_on_token(auth, label=label, pin=PINS[label], uscc=USCC, role=role,
                            holder=holder, actor="bench")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESEAL_")}
    env.update(ESEAL_ENV="test", ESEAL_HOME=str(home))
    return env


def _serve(home: Path, port: int) -> subprocess.Popen[bytes]:
    import httpx

    env = _env(home)
    env.pop("SOFTHSM2_CONF", None)
    proc = subprocess.Popen([sys.executable, "-m", "eseal", "serve", "--home", str(home),
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("eseal serve did not start")


def _draft(url: str, pdf: bytes) -> int:
    import httpx

    from eseal.holder.client import EsealClient

    with EsealClient(url) as wang:
        wang.login_with_token("wang", PINS["wang"])
        answer = httpx.post(f"{url}/filings", params={"title": "2025 年度报告"}, content=pdf,
                            headers={"Authorization": f"Bearer {wang.session}",
                                     "Content-Type": "application/pdf"}, timeout=120)
    answer.raise_for_status()
    return int(answer.json()["id"])


def _cli(home: Path, *args: str) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "eseal", *args], env=_env(home),
                          input=PINS["zhang"] + "\n", capture_output=True, text=True,
                          timeout=300)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"eseal {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return elapsed


def _consent(context: Any, page: Any, selector: str) -> Any:
    with context.expect_page() as popup:
        page.click(selector)
    consent = popup.value
    consent.wait_for_function("() => document.getElementById('origin').textContent")
    consent.select_option("#token", "zhang")
    return consent


def _browser_runs(home: Path, url: str, filing: int) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright

    from eseal.holder.browser_install import extension_dir, install

    profile = home / "profile"
    install("chromium", target=profile / "NativeMessagingHosts")
    ext = str(extension_dir())
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path="/usr/bin/chromium", headless=True,
            args=["--headless=new", f"--disable-extensions-except={ext}",
                  f"--load-extension={ext}", "--no-first-run"],
            ignore_default_args=["--disable-extensions"])
        context.set_default_timeout(120_000)
        try:
            page = context.new_page()
            page.goto(f"{url}/login")
            page.wait_for_function("() => document.documentElement.dataset.esealExtension")
            started = time.perf_counter()
            consent = _consent(context, page, "#login")
            consent.fill("#pin", PINS["zhang"])
            consent.click("#ok")
            page.wait_for_selector("#account:not([hidden])")
            login = time.perf_counter() - started
            page.goto(f"{url}/seal?filing={filing}")
            page.wait_for_function("() => document.documentElement.dataset.esealExtension")
            started = time.perf_counter()
            consent = _consent(context, page, "#seal")
            consent.wait_for_function("() => !document.getElementById('ok').disabled")
            consent.fill("#pin", PINS["zhang"])
            consent.click("#ok")
            page.wait_for_selector("#receipt:not([hidden])")
            seal = time.perf_counter() - started
        finally:
            context.close()
    return login, seal


def run(quick: bool = False) -> list[dict[str, Any]]:
    from bench.pdf import make_pdf

    os.environ.setdefault("ESEAL_ENV", "test")
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        port = _port()
        url = f"http://127.0.0.1:{port}"
        _site(home, port)
        server = _serve(home, port)
        try:
            pdf = make_pdf(1_000_000, pages=4)
            browser_filing, cli_filing = _draft(url, pdf), _draft(url, pdf)
            login, seal = _browser_runs(home, url, browser_filing)
            cli_login = _cli(home, "login", "--token", "zhang", "--pin-stdin", "--server", url)
            cli_seal = _cli(home, "filing", "seal", str(cli_filing), "--token", "zhang",
                            "--pin-stdin", "--server", url, "--json")
        finally:
            server.terminate()
            server.wait(timeout=15)
    return [
        {"name": "browser click -> session", "value": login, "unit": "s",
         "peer_or_limit": f"eseal login {cli_login:.2f} s", "ratio": login / cli_login,
         "aim": AIM},
        {"name": f"browser click -> receipt ({len(pdf) / 1e6:.1f} MB)", "value": seal,
         "unit": "s", "peer_or_limit": f"eseal filing seal {cli_seal:.2f} s",
         "ratio": seal / cli_seal, "aim": AIM},
    ]


if __name__ == "__main__":
    for row in run("--quick" in sys.argv):
        print(row)
