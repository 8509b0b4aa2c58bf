"""Shared fixtures: every test gets its own eseal home with its own SoftHSM token directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eseal.settings import Settings, load_settings
from eseal.store import close_all
from eseal.token import configure
from eseal.token.softhsm import write_conf

os.environ.setdefault("ESEAL_ENV", "test")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ESEAL_HOME whose softhsm2.conf points at an empty token directory."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("ESEAL_HOME", str(home))
    monkeypatch.setenv("ESEAL_ENV", "test")
    monkeypatch.delenv("ESEAL_NOW", raising=False)
    conf = write_conf(home / "softhsm2.conf", home / "tokens")
    monkeypatch.setenv("SOFTHSM2_CONF", str(conf))
    yield home
    close_all()


@pytest.fixture
def settings(home: Path) -> Settings:
    s = load_settings(home)
    configure(s.pkcs11_module, s.softhsm_conf_path)
    return s
