"""SoftHSM2, the stand-in for hardware: its configuration file and token provisioning.

python-pkcs11 has no ``C_InitToken``, so tokens are created with ``softhsm2-util`` (hardware
USB-Keys are initialised by their vendors' tools instead). Every token of an eseal home lives
in ``<home>/tokens`` under the one ``<home>/softhsm2.conf``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from eseal.errors import ConfigError, TokenError
from eseal.token import library as lib

CONF_TEMPLATE = """\
# SoftHSM2 configuration written by eseal for this home.
directories.tokendir = {token_dir}
objectstore.backend = file
log.level = ERROR
slots.removable = false
slots.mechanisms = ALL
library.reset_on_fork = true
"""


def write_conf(conf_path: Path, token_dir: Path) -> Path:
    """Create the token directory and a configuration pointing at it (idempotent)."""
    token_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf_path.parent.mkdir(parents=True, exist_ok=True)
    text = CONF_TEMPLATE.format(token_dir=token_dir.resolve())
    if not conf_path.exists() or conf_path.read_text() != text:
        conf_path.write_text(text)
    return conf_path


def softhsm_util() -> str:
    tool = shutil.which("softhsm2-util")
    if tool is None:
        raise ConfigError("SOFTHSM_MISSING",
                          "softhsm2-util not found: install the softhsm2 package (make setup)",
                          "找不到 softhsm2-util：请安装 softhsm2（make setup）")
    return tool


def init_token(conf_path: Path, label: str, pin: str, so_pin: str) -> None:
    """Initialise a new token in the first free slot, then make this process see it."""
    if label in lib.token_labels():
        raise TokenError("TOKEN_EXISTS", f"a token labelled {label!r} already exists",
                         f"标签为 {label!r} 的 USB-Key 已存在", field="label")
    env = dict(os.environ, SOFTHSM2_CONF=str(conf_path))
    done = subprocess.run(
        [softhsm_util(), "--init-token", "--free", "--label", label,
         "--pin", pin, "--so-pin", so_pin],
        env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )
    if done.returncode != 0:
        # softhsm2-util echoes its arguments only on usage errors; PINs never reach our logs.
        reason = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "unknown"
        raise TokenError("TOKEN_INIT_FAILED", f"softhsm2-util could not create the token: {reason}",
                         f"创建 USB-Key 失败：{reason}", field="label")
    lib.refresh()


def delete_token(conf_path: Path, label: str) -> None:
    env = dict(os.environ, SOFTHSM2_CONF=str(conf_path))
    subprocess.run([softhsm_util(), "--delete-token", "--token", label], env=env,
                   capture_output=True, stdin=subprocess.DEVNULL, check=False)
    lib.refresh()
