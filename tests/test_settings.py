"""Settings come from one place, and the clock can be moved only in tests and the demo."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from eseal import clock
from eseal.errors import ConfigError
from eseal.settings import load_settings


def test_eseal_now_moves_the_clock_in_test_and_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ESEAL_NOW", "2028-02-29T12:00:00+08:00")
    for env in ("test", "demo"):
        monkeypatch.setenv("ESEAL_ENV", env)
        assert clock.now() == datetime(2028, 2, 29, 4, 0, tzinfo=UTC)


@pytest.mark.parametrize("env", ["", "production", "TEST"])
def test_eseal_now_is_refused_anywhere_else(monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    monkeypatch.setenv("ESEAL_NOW", "2030-01-01T00:00:00Z")
    monkeypatch.setenv("ESEAL_ENV", env)
    with pytest.raises(ConfigError) as exc:
        clock.now()
    assert exc.value.code == "CLOCK_OVERRIDE_REFUSED"


def test_environment_beats_toml_beats_defaults(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "eseal.toml").write_text('base_url = "https://ca.example.cn"\n'
                                         "renewal_grace_days = 30\nnotice_days = [60, 7]\n")
    monkeypatch.setenv("ESEAL_RENEWAL_GRACE_DAYS", "45")
    s = load_settings(tmp_path)
    assert (s.base_url, s.renewal_grace_days, s.notice_days) == ("https://ca.example.cn", 45,
                                                                 (60, 7))
    assert s.renewal_window_days == 90
    assert load_settings(tmp_path, base_url="http://127.0.0.1:9").base_url == \
        "http://127.0.0.1:9"


@pytest.mark.parametrize(("text", "code"), [
    ("no_such_setting = 1\n", "UNKNOWN_SETTING"),
    ("renewal_grace_days = \"soon\"\n", "BAD_SETTING"),
    ("base_url = \n", "BAD_SETTINGS_FILE"),
])
def test_a_bad_settings_file_names_the_setting(tmp_path: Path, text: str, code: str) -> None:
    (tmp_path / "eseal.toml").write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_settings(tmp_path)
    assert exc.value.code == code
