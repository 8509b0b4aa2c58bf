"""``eseal token`` as real processes: every command is a new process, so the retry counter
on the token is seen surviving restarts; errors are one line with a stable code."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pgkit
import pytest

from tests.conftest import NAME_A, USCC_A
from tests.sitekit import query_home

PIN = "4913-7720"
NEW_PIN = "5820-1193"


def eseal(home: Path, *args: str, ok: bool = True, stdin: str | None = None,
          env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test")
    full_env.pop("SOFTHSM2_CONF", None)
    pgkit.prepare_home(home, args)
    full_env.update(env or {})
    done = subprocess.run([sys.executable, "-m", "eseal", *args], env=full_env,
                          capture_output=True, text=True, timeout=120,
                          input=stdin if stdin is not None else "")
    if ok:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stderr.count("\n") == 1, done.stderr  # one clear line
    return done


@pytest.fixture
def ca_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    eseal(home, "init", "--home", str(home))
    eseal(home, "enterprise", "add", "--uscc", USCC_A, "--name", NAME_A, "--legal-rep", "张三")
    return home


def _audit(home: Path, action: str) -> list[tuple[str, str]]:
    rows = query_home(home, "SELECT outcome, target FROM audit_events WHERE action = :a "
                            "ORDER BY id", a=action)
    return [(r[0], r[1]) for r in rows]


def test_a_token_from_provisioning_to_lock_and_unblock(ca_home: Path) -> None:
    done = eseal(ca_home, "token", "init", "--label", "zhang", "--pin-stdin", stdin=PIN + "\n")
    assert "kept" in done.stdout and PIN not in done.stdout + done.stderr

    enrolled = json.loads(eseal(ca_home, "token", "enroll", "--label", "zhang", "--pin", PIN,
                                "--enterprise", USCC_A, "--role", "legal_rep",
                                "--holder", "张三", "--json").stdout)
    issued = {c["profile"]: c["serial"] for c in enrolled["certificates"]}
    assert set(issued) == {"login", "seal"}

    st = json.loads(eseal(ca_home, "token", "status", "--label", "zhang", "--json").stdout)
    assert (st["locked"], st["tries_left"]) == (False, 6)
    assert {c["profile"]: c["serial"] for c in st["certificates"]} == issued
    for cert in st["certificates"]:
        assert {"serial", "profile", "subject", "not_after"} <= set(cert)
        assert "NTRCN-" + USCC_A in cert["subject"]
    assert [c["profile"] for c in st["ca_chain"]] == ["issuing", "root"]

    lines = [eseal(ca_home, "token", "change-pin", "--label", "zhang", "--pin", f"wrong-{i:04d}",
                   "--new-pin", NEW_PIN, ok=False).stderr for i in range(6)]
    for i, line in enumerate(lines[:5]):
        assert "PIN_INCORRECT" in line and f"{5 - i} tries left" in line
    assert "PIN_LOCKED" in lines[5] and "0 tries left" in lines[5]
    st = json.loads(eseal(ca_home, "token", "status", "--label", "zhang", "--json").stdout)
    assert (st["locked"], st["tries_left"]) == (True, 0)
    refused = eseal(ca_home, "token", "change-pin", "--label", "zhang", "--pin", PIN,
                    "--new-pin", NEW_PIN, ok=False)
    assert "PIN_LOCKED" in refused.stderr  # the right PIN is refused too

    eseal(ca_home, "token", "unblock", "--label", "zhang", "--new-pin", NEW_PIN)
    st = json.loads(eseal(ca_home, "token", "status", "--label", "zhang", "--json").stdout)
    assert (st["locked"], st["tries_left"]) == (False, 6)
    eseal(ca_home, "token", "change-pin", "--label", "zhang", "--pin-stdin",
          stdin=f"{NEW_PIN}\n{PIN}\n")
    assert _audit(ca_home, "token.so_pin.use") == [("ok", "zhang")]
    assert _audit(ca_home, "token.unblock") == [("ok", "zhang")]
    assert ("ok", "zhang") in _audit(ca_home, "token.enroll")


def test_bad_token_input_is_one_clear_line_and_changes_nothing(ca_home: Path) -> None:
    eseal(ca_home, "token", "init", "--label", "li", "--pin", PIN, "--so-pin", "so-8812-4401")
    weak = eseal(ca_home, "token", "init", "--label", "weak", "--pin", "123456", ok=False)
    assert "PIN_WEAK" in weak.stderr
    assert json.loads(eseal(ca_home, "token", "list", "--json").stdout) == [
        "eseal-ca", "eseal-officer", "li"]  # eseal init also provisions the first officer key

    unknown = eseal(ca_home, "token", "status", "--label", "nobody", ok=False)
    assert "TOKEN_NOT_FOUND" in unknown.stderr and "li" in unknown.stderr

    wrong_so = eseal(ca_home, "token", "unblock", "--label", "li", "--so-pin", "so-wrong-9999",
                     "--new-pin", NEW_PIN, ok=False)
    assert "SO_PIN_INCORRECT" in wrong_so.stderr and "5 tries left" in wrong_so.stderr
    assert _audit(ca_home, "token.unblock") == [("refused", "li")]

    unregistered = eseal(ca_home, "token", "enroll", "--label", "li", "--pin", PIN,
                         "--enterprise", "91310000MA1FL0QG5Y", "--role", "agent",
                         "--holder", "李四", ok=False)
    assert "ENTERPRISE_NOT_REGISTERED" in unregistered.stderr
    eseal(ca_home, "token", "enroll", "--label", "li", "--pin", PIN, "--enterprise", USCC_A,
          "--role", "agent", "--holder", "李四")
    twice = eseal(ca_home, "token", "enroll", "--label", "li", "--pin", PIN, "--enterprise",
                  USCC_A, "--role", "agent", "--holder", "李四", ok=False)
    assert "TOKEN_ALREADY_ENROLLED" in twice.stderr
    st = json.loads(eseal(ca_home, "token", "status", "--label", "li", "--json").stdout)
    assert [c["profile"] for c in st["certificates"]] == ["login"]
    assert st["tries_left"] == 6

    no_pin = eseal(ca_home, "token", "enroll", "--label", "li", "--enterprise", USCC_A,
                   "--role", "agent", "--holder", "李四", ok=False)
    assert "PIN_REQUIRED" in no_pin.stderr


def test_token_commands_follow_softhsm2_conf_and_module_overrides(tmp_path: Path) -> None:
    home = tmp_path / "bare"  # no CA here: tokens can still be provisioned with a given SO PIN
    refused = eseal(home, "token", "init", "--label", "solo", "--pin", PIN, ok=False)
    assert "HOME_NOT_INITIALISED" in refused.stderr
    other = tmp_path / "other"
    (other / "tokens").mkdir(parents=True)
    conf = other / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {other / 'tokens'}\nobjectstore.backend = file\n")
    env = {"SOFTHSM2_CONF": str(conf)}
    done = eseal(home, "token", "init", "--label", "solo", "--pin", PIN,
                 "--so-pin", "so-8812-4401", env=env)
    assert "NOT kept" in done.stdout
    assert json.loads(eseal(home, "token", "list", "--json", env=env).stdout) == ["solo"]
    assert json.loads(eseal(home, "token", "list", "--json").stdout) == []  # home's own conf
    missing = eseal(home, "token", "list", "--module", str(tmp_path / "nope.so"), ok=False)
    assert "PKCS11_MODULE_MISSING" in missing.stderr


def test_init_help_says_hardware_keys_are_initialised_by_vendor_tools(tmp_path: Path) -> None:
    help_text = eseal(tmp_path, "token", "init", "--help").stdout
    assert "vendor" in help_text and "--so-pin" in help_text


def test_pins_can_be_typed_at_a_terminal_prompt(tmp_path: Path) -> None:
    home = tmp_path / "home"
    eseal(home, "token", "init", "--label", "solo", "--pin", PIN, "--so-pin", "so-8812-4401")
    master, slave = pty.openpty()
    env = dict(os.environ, ESEAL_HOME=str(home), ESEAL_ENV="test")
    env.pop("SOFTHSM2_CONF", None)
    # A new session has no controlling terminal, so getpass reads the pty on stdin and
    # writes its prompts to stderr.
    proc = subprocess.Popen([sys.executable, "-m", "eseal", "token", "change-pin", "--label",
                             "solo"], stdin=slave, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, start_new_session=True)
    os.close(slave)
    seen = b""
    try:
        for answer in (PIN, NEW_PIN, NEW_PIN):  # current, new, confirmation
            prompts = seen.count(b": ")
            deadline = time.monotonic() + 30
            while seen.count(b": ") == prompts and time.monotonic() < deadline:
                if select.select([proc.stderr], [], [], 0.5)[0]:
                    seen += os.read(proc.stderr.fileno(), 4096)  # type: ignore[union-attr]
            os.write(master, answer.encode() + b"\n")
        out, err = proc.communicate(timeout=60)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, seen + err
    assert b"current PIN" in seen and b"confirmation" in seen + err
    assert PIN.encode() not in seen + err + out  # typed PINs are not echoed
    eseal(home, "token", "change-pin", "--label", "solo", "--pin", NEW_PIN, "--new-pin", PIN)
