"""``eseal browser install`` and ``eseal browser doctor``: the host manifest where each browser
looks, a launcher that answers a status message, the Firefox variant of the extension, and a
doctor that names what is missing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eseal.holder.browser_install import extension_dir, extension_id
from tests.sitekit import eseal_cli


def _cli(*args: str, home: Path, env_home: Path) -> tuple[int, str]:
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(env_home)  # eseal_cli copies this process's environment
    try:
        done = eseal_cli(*args, home=home)
    finally:
        if old is not None:
            os.environ["HOME"] = old
    return done.returncode, done.stdout + done.stderr


def test_the_extension_id_is_fixed_by_the_key_in_its_manifest() -> None:
    manifest = json.loads((extension_dir() / "manifest.json").read_text("utf-8"))
    assert manifest["manifest_version"] == 3 and manifest["key"]
    assert extension_id() == "mphlfckmeefogbocgbmmkgkmkibpioem"


def test_install_per_user_writes_each_browsers_manifest_and_a_host_that_answers(
        tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    for browser, where in (("chromium", ".config/chromium/NativeMessagingHosts"),
                           ("chrome", ".config/google-chrome/NativeMessagingHosts"),
                           ("firefox", ".mozilla/native-messaging-hosts")):
        code, out = _cli("browser", "install", "--browser", browser, "--json",
                         home=tmp_path, env_home=user)
        assert code == 0, out
        done = json.loads(out)
        manifest = json.loads((user / where / "cn.eseal.host.json").read_text("utf-8"))
        assert manifest["name"] == "cn.eseal.host" and manifest["type"] == "stdio"
        assert Path(manifest["path"]) == Path(done["wrapper"])
        if browser == "firefox":
            assert manifest["allowed_extensions"] == ["eseal@eseal.cn"]
            ff = json.loads((Path(done["extension"]) / "manifest.json").read_text("utf-8"))
            assert ff["background"] == {"scripts": ["background.js"]} and "key" not in ff
            assert ff["browser_specific_settings"]["gecko"]["id"] == "eseal@eseal.cn"
            assert (Path(done["extension"]) / "consent.js").exists()
        else:
            assert manifest["allowed_origins"] == [
                "chrome-extension://mphlfckmeefogbocgbmmkgkmkibpioem/"]
    code, out = _cli("browser", "doctor", "--browser", "chromium", home=tmp_path,
                     env_home=user)
    assert "host manifest" in out and "the host answers" in out, out
    assert "MISSING the host" not in out


def test_doctor_names_what_is_missing_and_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "nmh"
    code, out = _cli("browser", "doctor", "--dir", str(empty), home=tmp_path, env_home=tmp_path)
    assert code == 1
    assert "MISSING host manifest" in out and "eseal browser install" in out and "未安装" in out
    empty.mkdir()
    (empty / "cn.eseal.host.json").write_text(json.dumps(
        {"name": "cn.eseal.host", "path": str(tmp_path / "gone"), "type": "stdio",
         "allowed_origins": ["chrome-extension://someone-else/"]}))
    code, out = _cli("browser", "doctor", "--dir", str(empty), home=tmp_path, env_home=tmp_path)
    assert code == 1
    assert "MISSING the manifest allows the eseal extension" in out
    assert "is executable" in out and "MISSING host program" in out
