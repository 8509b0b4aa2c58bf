"""``make demo``: the whole eseal story, narrated, on the embedded defaults.

Every step runs the real ``eseal`` command in its own process, exactly as a newcomer would
type it, against a real ``eseal serve`` on a free loopback port, with SoftHSM tokens and a
SQLite database under ``./var/demo`` (whatever ``ESEAL_HOME`` says). The clock moves with
``ESEAL_NOW`` (``ESEAL_ENV=demo``), never by sleeping. Rerunning starts clean; the story
itself waits for no input. ``--quiet`` prints only failures and the last lines: the test suite
runs it so.

It ends with the service up again and the portal's and the console's addresses printed (with
the two commands that give a browser the USB-Keys): when standard input is a terminal the
service keeps running until Ctrl-C, so a person can open the pages; otherwise (CI, a pipe,
``</dev/null``) it stops at once. ``--serve`` does only that last part, on the home a previous
run left.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

USCC = "91350100M000100Y43"
NAME = "𠮷野家（福建）餐饮管理有限公司"
LEGAL_REP, AGENT = "张三", "李四"
REP_KEY, AGENT_KEY = "zhangsan-key", "lisi-key"
REP_PIN, AGENT_PIN = "Seal-2026-zs", "Agent-2026-ls"


class DemoFailed(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Demo:
    def __init__(self, root: Path, *, quiet: bool) -> None:
        self.root = root.resolve()
        self.home = self.root
        self.out = self.root / "out"
        self.quiet = quiet
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.now = datetime.now(UTC).replace(microsecond=0)
        self.server: subprocess.Popen[bytes] | None = None
        self.step_no = 0
        self.started = time.monotonic()
        self.officer_pin: str | None = None

    # -- narration --------------------------------------------------------------------------
    def say(self, text: str = "") -> None:
        if not self.quiet:
            print(text, flush=True)

    def step(self, zh: str, en: str) -> None:
        self.step_no += 1
        self.say(f"\n\033[1m[{self.step_no}] {zh} — {en}\033[0m")

    # -- running eseal ----------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in ("SOFTHSM2_CONF", "ESEAL_SOFTHSM_CONF", "ESEAL_DATABASE_URL"):
            env.pop(name, None)
        env.update(ESEAL_HOME=str(self.home), ESEAL_ENV="demo",
                   ESEAL_NOW=self.now.isoformat(), PYTHONUNBUFFERED="1")
        return env

    def eseal(self, *args: str, fail: bool = False, show: bool = True,
              stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        shown = " ".join(a if " " not in a else repr(a) for a in args)
        if show:
            self.say(f"  $ eseal {shown}")
        done = subprocess.run([sys.executable, "-m", "eseal", *args], env=self.env(),
                              input=stdin, capture_output=True, text=True, timeout=300,
                              stdin=None if stdin is not None else subprocess.DEVNULL)
        if fail != (done.returncode != 0):
            raise DemoFailed(f"`eseal {shown}` exited {done.returncode} "
                             f"(expected {'failure' if fail else 'success'}):\n"
                             f"{done.stdout}{done.stderr}")
        if show:
            for line in (done.stdout + done.stderr).strip().splitlines():
                self.say(f"    {line}")
        return done

    def serve(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-m", "eseal", "serve", "--port", str(self.port)],
            env=self.env(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise DemoFailed("eseal serve exited: " + self.server.stderr.read().decode()
                                 if self.server.stderr else "")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    self.say(f"  service listening on {self.url} (OpenAPI: {self.url}/docs)")
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise DemoFailed("eseal serve did not come up")

    def stop(self) -> None:
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.server.kill()
        self.server = None

    def cert_of(self, profile: str, holder: str) -> str:
        """The serial of the newest good certificate of a holder under a profile."""
        listing = json.loads(self.eseal("cert", "list", "--json", show=False).stdout)
        mine = [c for c in listing if c["profile"] == profile and c["holder"] == holder
                and c["status"] == "good" and not c.get("replaced_by")]
        if not mine:
            raise DemoFailed(f"no good {profile} certificate for {holder}")
        return str(max(mine, key=lambda c: c["not_after"])["serial"])

    # -- the story --------------------------------------------------------------------------
    def run(self) -> None:
        if self.root.exists():
            shutil.rmtree(self.root)
        self.out.mkdir(parents=True)
        self.say("eseal demo — an enterprise CA, USB-Key login and PDF electronic seals")
        self.say(f"home: {self.home}   service: {self.url}   clock: {self.now:%Y-%m-%d}")
        try:
            self.story()
        finally:
            self.stop()

    def story(self) -> None:
        self.step("CA 初始化", "the officer creates the CA: root and issuing CA keys on a token")
        init = self.eseal("init", "--home", str(self.home), "--base-url", self.url)
        lines = init.stdout.splitlines()
        for at, line in enumerate(lines[:-1]):
            if line.startswith("PIN of the first officer's USB-Key"):
                self.officer_pin = lines[at + 1].strip()
        self.eseal("ca", "export", str(self.out))

        self.step("企业登记", "an enterprise with a rare character (𠮷) in its registered name")
        self.eseal("enterprise", "add", "--uscc", USCC, "--name", NAME,
                   "--legal-rep", LEGAL_REP, "--email", "filing@example.invalid")
        self.serve()

        self.step("发放 USB-Key", "keys are generated on each USB-Key and never leave it")
        for label, pin, role, holder in ((REP_KEY, REP_PIN, "legal_rep", LEGAL_REP),
                                         (AGENT_KEY, AGENT_PIN, "agent", AGENT)):
            self.eseal("token", "init", "--label", label, "--pin", pin)
            self.eseal("token", "enroll", "--label", label, "--pin", pin, "--enterprise", USCC,
                       "--role", role, "--holder", holder)
        self.eseal("token", "status", "--label", REP_KEY)

        self.step("USB-Key 登录", "both log in by signing a one-time challenge with the key")
        self.eseal("login", "--token", REP_KEY, "--pin", REP_PIN, "--server", self.url)
        self.eseal("login", "--token", AGENT_KEY, "--pin", AGENT_PIN, "--server", self.url)

        self.step("经办人提交", "the agent submits the annual report as a draft filing")
        draft = self.out / "annual-report.pdf"
        write_filing_pdf(draft, NAME, USCC, self.now)
        submitted = self.eseal("filing", "submit", str(draft), "--token", AGENT_KEY,
                               "--pin", AGENT_PIN, "--server", self.url,
                               "--title", f"{self.now.year - 1} 年度报告", "--json")
        filing_id = str(json.loads(submitted.stdout)["id"])

        self.step("法定代表人签章", "the legal representative seals it (PAdES B-LT, visible seal)")
        sealed = self.out / "annual-report-sealed.pdf"
        self.eseal("filing", "seal", filing_id, "--token", REP_KEY, "--pin", REP_PIN,
                   "--server", self.url, "--title", "公章", "-o", str(sealed),
                   "--receipt-out", str(self.out / "receipt.json"))
        self.eseal("verify", str(sealed), "--trust", str(self.out / "root.pem"))

        self.step("年检续期", "300 days later the renewal window is open; the officer renews")
        self.stop()
        self.now += timedelta(days=300)
        self.say(f"  (the demo clock moves to {self.now:%Y-%m-%d} with ESEAL_NOW)")
        self.serve()
        self.eseal("cert", "renew", "--expiring-within", "90")
        self.eseal("token", "refresh", "--label", REP_KEY)
        self.eseal("token", "refresh", "--label", AGENT_KEY)

        self.step("冻结与解冻", "the agent reports the key lost: frozen, login refused, unfrozen")
        agent_login = self.cert_of("login", AGENT)
        self.eseal("cert", "freeze", agent_login)
        self.eseal("login", "--token", AGENT_KEY, "--pin", AGENT_PIN, "--server", self.url,
                   fail=True)
        self.eseal("cert", "unfreeze", agent_login)
        self.eseal("login", "--token", AGENT_KEY, "--pin", AGENT_PIN, "--server", self.url)

        self.step("吊销", "the seal key is compromised: revoked, and OCSP says so at once")
        seal_serial = self.cert_of("seal", LEGAL_REP)
        self.eseal("cert", "show", seal_serial, "--pem", show=False)
        (self.out / "seal-cert.pem").write_text(
            self.eseal("cert", "show", seal_serial, "--pem", show=False).stdout)
        self.eseal("cert", "revoke", seal_serial, "--reason", "keyCompromise")
        self.ocsp(self.out / "seal-cert.pem")
        self.say("  the filing sealed before the compromise still verifies (its B-LT data says "
                 "the certificate was good when it was sealed):")
        self.eseal("verify", str(sealed), "--trust", str(self.out / "root.pem"))

        (self.root / "demo-clock").write_text(self.now.isoformat() + "\n", encoding="utf-8")

        self.step("输出", "files left for you")
        self.eseal("seal", "image", "--enterprise", USCC, "--title", "公章", "-o",
                   str(self.out / "seal.png"))
        subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile",
                        str(sealed), str(self.out / "annual-report-sealed-page1")], check=True)
        self.stop()
        for path in sorted(self.out.iterdir()):
            self.say(f"  {path}")

    # -- the pages ---------------------------------------------------------------------------
    def hold(self, *, interactive: bool) -> None:
        """Serve the demo home again and print where its pages are; keep serving until Ctrl-C
        when ``interactive`` (standard input is a terminal), else stop at once."""
        clock_file = self.root / "demo-clock"
        if not clock_file.is_file():
            raise DemoFailed(f"no demo in {self.root}: run `make demo` first")
        self.now = datetime.fromisoformat(clock_file.read_text(encoding="utf-8").strip())
        self.url = self.base_url()
        self.port = int(self.url.rsplit(":", 1)[1].rstrip("/"))
        self.serve()
        profile = self.root / "chromium"
        extension = Path(__file__).resolve().parent.parent / "browser" / "extension"
        conf = self.home / "softhsm2.conf"
        python = shlex.quote(sys.executable)
        print("\nThe portal and the console (网上办事大厅 / 管理控制台):", flush=True)
        print(f"  portal:  {self.url}/portal/login", flush=True)
        print(f"  console: {self.url}/console/", flush=True)
        print("Log in with a demo USB-Key: set up a browser profile once, then open it:")
        print(f"  SOFTHSM2_CONF={shlex.quote(str(conf))} {python} -m eseal browser install "
              f"--browser chromium --dir {shlex.quote(str(profile / 'NativeMessagingHosts'))}")
        print(f"  chromium --user-data-dir={shlex.quote(str(profile))} "
              f"--load-extension={shlex.quote(str(extension))} {self.url}/portal/login")
        officer = f"PIN {self.officer_pin}" if self.officer_pin else "PIN printed by `eseal init`"
        print(f"  USB-Keys: {REP_KEY} (legal representative, PIN {REP_PIN}), {AGENT_KEY} "
              f"(agent, PIN {AGENT_PIN}), eseal-officer (officer, {officer})")
        print(f"  the service's clock stays at the demo's {self.now:%Y-%m-%d} (ESEAL_NOW)")
        if not interactive:
            print("standard input is not a terminal: the service stops now "
                  f"(`{python} -m eseal.demo --serve --dir {shlex.quote(str(self.root))}` "
                  "serves it again)", flush=True)
            self.stop()
            return
        print("serving until Ctrl-C ...", flush=True)
        try:
            assert self.server is not None
            code = self.server.wait()
            raise DemoFailed(f"eseal serve exited by itself ({code})")
        except KeyboardInterrupt:
            print("\nCtrl-C: stopping the service", flush=True)
        finally:
            self.stop()

    def base_url(self) -> str:
        """The base URL the demo home was created with (its port is the one to serve on)."""
        import tomllib

        config = tomllib.loads((self.home / "eseal.toml").read_text(encoding="utf-8"))
        url = config.get("base_url") or config.get("service", {}).get("base_url")
        if not url:
            raise DemoFailed(f"no base_url in {self.home / 'eseal.toml'}")
        return str(url).rstrip("/")

    def ocsp(self, cert_pem: Path) -> None:
        """Ask the service's OCSP responder with openssl, an independent client."""
        args = ["openssl", "ocsp", "-issuer", str(self.out / "issuing.pem"), "-cert",
                str(cert_pem), "-url", f"{self.url}/ocsp", "-CAfile",
                str(self.out / "root.pem"), "-no_nonce",
                # the demo clock runs ahead of the wall clock openssl checks times against
                "-validity_period", str(int((self.now - datetime.now(UTC)).total_seconds())
                                        + 86400)]
        self.say("  $ " + " ".join(args[:-2]))
        done = subprocess.run(args, capture_output=True, text=True, timeout=60)
        for line in (done.stdout + done.stderr).strip().splitlines():
            self.say(f"    {line}")
        if "revoked" not in done.stdout.lower():
            raise DemoFailed(f"OCSP did not report the revoked certificate:\n{done.stdout}"
                             f"{done.stderr}")


def write_filing_pdf(path: Path, name: str, uscc: str, when: datetime) -> None:
    """A one-page annual report drawn with Pillow in a CJK font (so Chinese renders anywhere)."""
    from PIL import Image, ImageDraw, ImageFont

    from eseal.signing.fonts import font_for

    page = Image.new("RGB", (1240, 1754), "white")  # A4 at 150 dpi
    draw = ImageDraw.Draw(page)

    def text(xy: tuple[int, int], value: str, size: int) -> None:
        x, y = xy
        for ch in value:  # per character, so a rare character falls back to HanaMin
            choice = font_for(ch)
            f = ImageFont.truetype(str(choice.path), size, index=choice.index)
            draw.text((x, y), ch, fill="black", font=f)
            x += int(f.getlength(ch))

    text((140, 160), "企业年度报告书", 64)
    text((140, 260), f"Annual report {when.year - 1}", 32)
    draw.line((140, 320, 1100, 320), fill="black", width=2)
    rows = [("企业名称", name), ("统一社会信用代码", uscc), ("报告年度", str(when.year - 1)),
            ("经营状态", "存续（在营、开业、在册）"), ("从业人数", "128"),
            ("资产总额", "人民币 3,250 万元")]
    y = 380
    for label, value in rows:
        text((140, y), label, 30)
        text((520, y), value, 30)
        y += 70
    text((140, 1300), "本企业保证本报告内容真实、准确、完整。", 28)
    text((140, 1360), "(sealed electronically with eseal)", 24)
    # Pillow writes a free-list entry with generation 65536 (PDF allows at most 65535), which
    # strict readers rightly refuse; a pass through pyHanko's writer gives a clean file.
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.pdf_utils.writer import copy_into_new_writer

    raw = io.BytesIO()
    page.save(raw, "PDF", resolution=150.0)
    writer = copy_into_new_writer(PdfFileReader(io.BytesIO(raw.getvalue()), strict=False))
    with path.open("wb") as fh:
        writer.write(fh)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", default="var/demo", help="where the demo lives (default "
                        "./var/demo, whatever ESEAL_HOME says)")
    parser.add_argument("--quiet", action="store_true", help="print only the result")
    parser.add_argument("--serve", action="store_true", help="skip the story: serve the demo "
                        "a previous run left and print the pages' addresses")
    args = parser.parse_args(argv)
    demo = Demo(Path(args.dir), quiet=args.quiet)
    # Ctrl-C reaches the whole foreground process group; the service is stopped by us, once
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if not args.serve:
            demo.run()
            elapsed = time.monotonic() - demo.started
            print(f"demo finished in {elapsed:.0f} s; files in {demo.out} "
                  f"(root.pem, annual-report-sealed.pdf, its first page as PNG, seal.png)",
                  flush=True)
        demo.hold(interactive=sys.stdin.isatty())
    except DemoFailed as exc:
        print(f"demo FAILED: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("demo interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
