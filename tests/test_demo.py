"""`make demo` is itself a test: the whole story runs in quiet mode and leaves what it says;
it ends by printing the portal's and the console's addresses, stopping the service at once
without a terminal (CI) and serving until Ctrl-C with one."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509

from tests.judgekit import pdfsig_check

PORTAL = re.compile(r"portal:\s+(http://127\.0\.0\.1:(\d+))/portal/login")


@dataclass(frozen=True)
class Ran:
    root: Path
    env: dict[str, str]
    done: subprocess.CompletedProcess[str]
    seconds: float
    elsewhere: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Ran:
    tmp = tmp_path_factory.mktemp("demo")
    root = tmp / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESEAL_")}
    env["ESEAL_HOME"] = str(tmp / "somewhere-else")  # the demo ignores it
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "eseal.demo", "--quiet", "--dir", str(root)],
                          env=env, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)
    return Ran(root, env, done, time.monotonic() - started, tmp / "somewhere-else")


def serving(port: str) -> list[str]:
    """Processes whose command line is an ``eseal serve`` on ``port``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and port.encode() in args and b"eseal" in args:
            found.append(proc.name)
    return found


def test_demo_tells_the_whole_story_and_leaves_verifiable_files(demo: Ran) -> None:
    done = demo.done
    assert done.returncode == 0, done.stdout + done.stderr
    assert "demo finished" in done.stdout
    out = demo.root / "out"
    for name in ("root.pem", "issuing.pem", "annual-report-sealed.pdf", "seal.png",
                 "annual-report-sealed-page1.png", "receipt.json"):
        assert (out / name).stat().st_size > 0, name
    assert not demo.elsewhere.exists()

    # The service is stopped: the sealed filing verifies from its embedded data alone.
    sealed = out / "annual-report-sealed.pdf"
    verify = subprocess.run([sys.executable, "-m", "eseal", "verify", str(sealed), "--trust",
                             str(out / "root.pem")],
                            env={**demo.env, "ESEAL_HOME": str(demo.root.parent)},
                            capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    result = pdfsig_check(sealed, x509.load_pem_x509_certificate((out / "root.pem")
                                                                  .read_bytes()))
    assert result.valid == [True] and result.trusted == [True]
    assert result.total_document_signed == [True]


def test_without_a_terminal_the_demo_prints_the_pages_and_stops_the_service_at_once(
        demo: Ran) -> None:
    done = demo.done
    assert done.returncode == 0, done.stdout + done.stderr
    found = PORTAL.search(done.stdout)
    assert found, done.stdout
    url, port = found.groups()
    assert f"console: {url}/console/" in done.stdout
    assert "eseal browser install --browser chromium --dir" in done.stdout
    assert "--load-extension=" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].startswith("standard input is not a terminal")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=5)
    assert serving(port) == []


def test_on_a_terminal_the_demo_serves_its_pages_until_ctrl_c(demo: Ran) -> None:
    assert demo.done.returncode == 0, demo.done.stdout + demo.done.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "eseal.demo", "--quiet", "--serve",
                             "--dir", str(demo.root)], env=demo.env, stdin=follower,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    os.close(follower)
    assert proc.stdout is not None
    seen = b""
    try:
        deadline = time.monotonic() + 120
        while b"serving until Ctrl-C" not in seen and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            ready, _, _ = select.select([proc.stdout], [], [], 1)
            if ready:
                seen += os.read(proc.stdout.fileno(), 65536)
        text = seen.decode()
        assert "serving until Ctrl-C" in text, text
        found = PORTAL.search(text)
        assert found, text
        url, port = found.groups()
        login = httpx.get(f"{url}/portal/login", timeout=30)
        assert login.status_code == 200 and "USB-Key" in login.text
        assert proc.poll() is None  # still serving after answering
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, text + rest.decode()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=5)
        assert serving(port) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(leader)
