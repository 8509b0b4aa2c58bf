"""Installing the native messaging host where each browser looks for it, and saying what is
missing (``eseal browser install`` / ``eseal browser doctor``).

Each browser reads host manifests from its own directories: Debian's chromium
``~/.config/chromium/NativeMessagingHosts`` (per user; it follows ``--user-data-dir``) or
``/etc/chromium/native-messaging-hosts``; Google Chrome ``~/.config/google-chrome/...`` or
``/etc/opt/chrome/native-messaging-hosts``; Firefox ``~/.mozilla/native-messaging-hosts`` or
``/usr/lib/mozilla/native-messaging-hosts``. A manifest names an executable and cannot pass
arguments or environment, so install writes a small wrapper beside it that runs
``python -m eseal.holder.native_host`` with the interpreter, package path, PKCS#11 module and
SoftHSM configuration of the installing shell. Browsers installed as snap or flatpak run in
a sandbox that cannot start native hosts: doctor says so.

The Chromium extension ID is derived from the ``key`` in ``browser/extension/manifest.json``
(SHA-256 of the public key, first 32 hex digits written with a-p), so it is stable; Firefox
gets a variant built from the same sources with a gecko ID.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shlex
import shutil
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import eseal
from eseal.errors import ConfigError

Browser = Literal["chromium", "chrome", "firefox"]
BROWSERS: tuple[Browser, ...] = ("chromium", "chrome", "firefox")
HOST_NAME = "cn.eseal.host"
FIREFOX_ID = "eseal@eseal.cn"
_USER_DIRS = {"chromium": ".config/chromium/NativeMessagingHosts",
              "chrome": ".config/google-chrome/NativeMessagingHosts",
              "firefox": ".mozilla/native-messaging-hosts"}
_SYSTEM_DIRS = {"chromium": "/etc/chromium/native-messaging-hosts",
                "chrome": "/etc/opt/chrome/native-messaging-hosts",
                "firefox": "/usr/lib/mozilla/native-messaging-hosts"}
_BINARIES = {"chromium": ("chromium", "chromium-browser"),
             "chrome": ("google-chrome", "google-chrome-stable"), "firefox": ("firefox",)}


def extension_dir() -> Path:
    """The unpacked extension (``browser/extension`` beside the package's source tree)."""
    return Path(eseal.__file__).resolve().parent.parent / "browser" / "extension"


def extension_id(manifest: Path | None = None) -> str:
    data = json.loads((manifest or extension_dir() / "manifest.json").read_text("utf-8"))
    digest = hashlib.sha256(base64.b64decode(data["key"])).hexdigest()[:32]
    return "".join(chr(ord("a") + int(c, 16)) for c in digest)


def manifest_dir(browser: Browser, scope: str, home: Path | None = None) -> Path:
    if scope == "system":
        return Path(_SYSTEM_DIRS[browser])
    return (home or Path.home()) / _USER_DIRS[browser]


def host_manifest(browser: Browser, wrapper: Path) -> dict[str, Any]:
    body: dict[str, Any] = {"name": HOST_NAME,
                            "description": "eseal USB-Key helper (login and seals)",
                            "path": str(wrapper), "type": "stdio"}
    if browser == "firefox":
        body["allowed_extensions"] = [FIREFOX_ID]
    else:
        body["allowed_origins"] = [f"chrome-extension://{extension_id()}/"]
    return body


def wrapper_text() -> str:
    """The host's launcher: this interpreter, this package, this PKCS#11 configuration."""
    lines = ["#!/bin/sh", "# written by `eseal browser install`: starts the eseal USB-Key helper",
             f"PYTHONPATH={shlex.quote(str(Path(eseal.__file__).resolve().parent.parent))}"
             '${PYTHONPATH:+:$PYTHONPATH}', "export PYTHONPATH"]
    for name in ("SOFTHSM2_CONF", "ESEAL_PKCS11_MODULE", "ESEAL_HOST_JOURNAL"):
        if os.environ.get(name):
            lines.append(f"export {name}={shlex.quote(os.environ[name])}")
    lines.append(f'exec {shlex.quote(sys.executable)} -m eseal.holder.native_host "$@"')
    return "\n".join(lines) + "\n"


def firefox_extension(out: Path) -> Path:
    """The Firefox variant: the same files, a manifest with a background script and an ID."""
    src = extension_dir()
    out.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.is_file() and item.name != "manifest.json":
            shutil.copy2(item, out / item.name)
    manifest = json.loads((src / "manifest.json").read_text("utf-8"))
    manifest.pop("key", None)
    manifest["background"] = {"scripts": ["background.js"]}
    manifest["browser_specific_settings"] = {"gecko": {"id": FIREFOX_ID,
                                                       "strict_min_version": "115.0"}}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False),
                                       "utf-8")
    return out


@dataclass
class Installed:
    browser: Browser
    manifest: Path
    wrapper: Path
    extension: Path
    extension_id: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"browser": self.browser, "manifest": str(self.manifest),
                "wrapper": str(self.wrapper), "extension": str(self.extension),
                "extension_id": self.extension_id, "notes": self.notes}


def install(browser: Browser, *, scope: str = "user", target: Path | None = None,
            home: Path | None = None) -> Installed:
    """Write the wrapper and the host manifest for ``browser`` (``target``: an explicit
    manifest directory, e.g. ``<user-data-dir>/NativeMessagingHosts``)."""
    if browser not in BROWSERS:
        raise ConfigError("BROWSER_UNKNOWN", f"unknown browser {browser!r}",
                          f"未知浏览器 {browser!r}", field="browser")
    directory = target or manifest_dir(browser, scope, home)
    if target is not None:
        wrapper_home = target
    elif scope == "system":
        wrapper_home = Path("/usr/local/lib/eseal")
    else:
        wrapper_home = (home or Path.home()) / ".local/share/eseal"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        wrapper_home.mkdir(parents=True, exist_ok=True)
        wrapper = wrapper_home / "eseal-browser-host"
        wrapper.write_text(wrapper_text(), "utf-8")
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        manifest = directory / f"{HOST_NAME}.json"
        manifest.write_text(json.dumps(host_manifest(browser, wrapper), indent=2), "utf-8")
        ext = firefox_extension(wrapper_home / "firefox-extension") if browser == "firefox" \
            else extension_dir()
    except PermissionError as exc:
        raise ConfigError("INSTALL_PERMISSION", f"cannot write {exc.filename}: run --system "
                          "as root, or use --user", f"无法写入 {exc.filename}：--system 需以 root "
                          "运行，或改用 --user", field="scope") from exc
    result = Installed(browser, manifest, wrapper, ext,
                       FIREFOX_ID if browser == "firefox" else extension_id())
    result.notes.append(
        f"load the extension unpacked from {ext} (chrome://extensions, developer mode)"
        if browser != "firefox" else
        f"load {ext}/manifest.json in about:debugging (This Firefox -> Load Temporary Add-on)")
    if sandboxed(browser):
        result.notes.append(f"{browser} is a snap/flatpak here: it cannot run native hosts")
    return result


def sandboxed(browser: Browser) -> bool:
    """True when the browser found on PATH is a snap or flatpak (no native hosts)."""
    for name in _BINARIES[browser]:
        found = shutil.which(name)
        if found and ("/snap/" in os.path.realpath(found) or "flatpak" in found):
            return True
    return bool(browser != "firefox" and Path(f"/var/lib/flatpak/app/{_flatpak(browser)}")
                .exists() and not any(shutil.which(n) for n in _BINARIES[browser]))


def _flatpak(browser: Browser) -> str:
    return {"chromium": "org.chromium.Chromium", "chrome": "com.google.Chrome",
            "firefox": "org.mozilla.firefox"}[browser]


def ask_host(wrapper: Path, timeout: float = 15) -> dict[str, Any]:
    """Send ``status`` to a host executable as a browser would; its reply."""
    body = b'{"command":"status"}'
    done = subprocess.run([str(wrapper), "chrome-extension://doctor/"],
                          input=struct.pack("=I", len(body)) + body, capture_output=True,
                          timeout=timeout)
    (n,) = struct.unpack("=I", done.stdout[:4])
    return dict(json.loads(done.stdout[4:4 + n]))


@dataclass(frozen=True)
class Check:
    ok: bool
    what: str
    what_zh: str

    def line(self) -> str:
        return f"{'ok     ' if self.ok else 'MISSING'} {self.what} / {self.what_zh}"


def diagnose(browser: Browser, *, target: Path | None = None,
             home: Path | None = None) -> list[Check]:
    """What a holder needs for ``browser``, each item present or not, in order."""
    checks: list[Check] = []
    binary = next((shutil.which(n) for n in _BINARIES[browser] if shutil.which(n)), None)
    checks.append(Check(binary is not None, f"{browser} found ({binary or 'not on PATH'})",
                        f"已找到 {browser}" if binary else f"未找到 {browser}"))
    if sandboxed(browser):
        checks.append(Check(False, f"{browser} is a snap/flatpak: it cannot run native hosts; "
                            "install the .deb", f"{browser} 为 snap/flatpak 版，无法运行本地主机"
                            "程序，请改装 deb 版"))
    dirs = [target] if target else [manifest_dir(browser, "user", home),
                                    manifest_dir(browser, "system")]
    manifests = [d / f"{HOST_NAME}.json" for d in dirs if (d / f"{HOST_NAME}.json").exists()]
    checks.append(Check(bool(manifests), "host manifest: " + (
        str(manifests[0]) if manifests else f"none in {', '.join(map(str, dirs))}"
        " (run `eseal browser install`)"),
        "本地消息主机清单" + ("已安装" if manifests else "未安装（请运行 eseal browser install）")))
    if not manifests:
        return checks
    try:
        body = json.loads(manifests[0].read_text("utf-8"))
    except (OSError, ValueError):
        checks.append(Check(False, f"{manifests[0]} is not valid JSON", "主机清单不是有效 JSON"))
        return checks
    allowed = body.get("allowed_extensions") if browser == "firefox" \
        else body.get("allowed_origins")
    expected = FIREFOX_ID if browser == "firefox" else f"chrome-extension://{extension_id()}/"
    checks.append(Check(isinstance(allowed, list) and expected in allowed,
                        f"the manifest allows the eseal extension ({expected})",
                        "清单允许 eseal 扩展程序"))
    wrapper = Path(str(body.get("path", "")))
    runnable = wrapper.is_file() and os.access(wrapper, os.X_OK)
    checks.append(Check(runnable, f"host program {wrapper} is executable",
                        f"主机程序 {wrapper} 可执行"))
    if runnable:
        try:
            reply = ask_host(wrapper)
            tokens = [t.get("label") for t in reply.get("tokens", [])]
            problem = reply.get("problem")
            checks.append(Check(bool(reply.get("ok")) and problem is None,
                                f"the host answers; USB-Keys: {', '.join(tokens) or 'none'}"
                                + (f" ({problem.get('code')})" if problem else ""),
                                f"主机程序有响应；USB-Key：{'、'.join(tokens) or '无'}"))
        except (OSError, ValueError, struct.error, subprocess.SubprocessError):
            checks.append(Check(False, "the host did not answer a status message",
                                "主机程序未响应 status 消息"))
    ext = extension_dir()
    checks.append(Check((ext / "manifest.json").exists(), f"unpacked extension at {ext}",
                        f"扩展程序目录 {ext}"))
    return checks
