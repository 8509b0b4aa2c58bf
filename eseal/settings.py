"""Typed settings: one immutable object built from ``ESEAL_*`` variables and an optional TOML.

Precedence: explicit keyword overrides > environment (``ESEAL_<FIELD>`` upper-cased) >
``$ESEAL_HOME/eseal.toml`` > defaults. The home (``$ESEAL_HOME`` or ``./var``) holds the SQLite
database, the SoftHSM token directory, its ``softhsm2.conf`` and ``secrets/``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from eseal.errors import ConfigError

DEFAULT_PKCS11_MODULES = (
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
)


def default_pkcs11_module() -> str:
    for candidate in DEFAULT_PKCS11_MODULES:
        if os.path.exists(candidate):
            return candidate
    return DEFAULT_PKCS11_MODULES[0]


@dataclass(frozen=True)
class Settings:
    """Everything configurable about one eseal home. Frozen: derive a new one with ``replace``."""

    home: Path = Path("var")
    base_url: str = "http://127.0.0.1:8000"
    database_url: str = ""  # empty: database_url_file, else SQLite file in the home
    database_url_file: str = ""  # a secret file holding the URL (relative: to the home)
    pkcs11_module: str = field(default_factory=default_pkcs11_module)
    softhsm_conf: str = ""  # empty: $SOFTHSM2_CONF if set, else <home>/softhsm2.conf
    p11_kit_server_address: str = ""  # e.g. unix:path=/run/eseal/ca.sock (p11-kit-client.so)
    audit_journal: str = ""  # empty: <home>/audit/checkpoints.jsonl; replicas share one
    ca_token_label: str = "eseal-ca"
    lint_on_issue: bool = True  # pkilint before the token signs (eseal.ca.issuer)
    enterprise_validity_days: int = 365
    renewal_window_days: int = 90
    renewal_grace_days: int = 90
    max_key_age_years: int = 3
    notice_days: tuple[int, ...] = (90, 30, 7)
    crl_validity_hours: int = 24
    ocsp_validity_hours: int = 24
    checkpoint_every: int = 1000
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_sender: str = "eseal@localhost"
    pin_max_tries: int = 6
    so_pin_max_tries: int = 6
    challenge_ttl_seconds: int = 120
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    lockout_threshold: int = 5
    lockout_hours: int = 24
    upload_limit_bytes: int = 100 * 1024 * 1024

    # --- derived paths -----------------------------------------------------------------
    @property
    def database(self) -> str:
        """The SQLAlchemy URL: the setting, else the secret file it names, else SQLite."""
        if self.database_url:
            return self.database_url
        if self.database_url_file:
            return read_database_url_file(self.database_url_path)
        return f"sqlite:///{(self.home / 'eseal.db').resolve()}"

    @property
    def database_url_path(self) -> Path:
        path = Path(self.database_url_file)
        return path if path.is_absolute() else self.home / path

    @property
    def audit_journal_path(self) -> Path:
        if self.audit_journal:
            return Path(self.audit_journal)
        return self.home / "audit" / "checkpoints.jsonl"

    @property
    def token_is_remote(self) -> bool:
        """The PKCS#11 module is a client of a token served elsewhere (p11-kit-client.so),
        not a SoftHSM whose files live on this host: no SoftHSM configuration, no flocks."""
        return bool(self.p11_kit_server_address) or "softhsm" not in Path(
            self.pkcs11_module).name

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    @property
    def token_dir(self) -> Path:
        return self.home / "tokens"

    @property
    def softhsm_conf_path(self) -> Path:
        if self.softhsm_conf:
            return Path(self.softhsm_conf)
        return self.home / "softhsm2.conf"

    @property
    def ca_pin_file(self) -> Path:
        return self.secrets_dir / "ca.pin"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


def read_database_url_file(path: Path) -> str:
    """The first non-empty line of the secret file that holds the database URL."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigError(
            "DATABASE_URL_FILE_UNREADABLE",
            f"cannot read the database URL file {path}: {exc.strerror}",
            f"无法读取数据库地址文件 {path}：{exc.strerror}",
            field="database_url_file",
        ) from exc
    url = next((line.strip() for line in lines if line.strip()), "")
    if not url:
        raise ConfigError(
            "DATABASE_URL_FILE_EMPTY",
            f"the database URL file {path} is empty",
            f"数据库地址文件 {path} 为空",
            field="database_url_file",
        )
    return url


def _coerce(name: str, annotation: Any, raw: Any) -> Any:
    """Turn a TOML value or an environment string into the field's type, naming the field."""
    kind = str(annotation)
    try:
        if kind == "Path":
            return Path(raw)
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            lowered = str(raw).strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind.startswith("tuple"):
            items = raw if isinstance(raw, list | tuple) else str(raw).split(",")
            return tuple(int(str(i).strip()) for i in items if str(i).strip())
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            "BAD_SETTING",
            f"setting {name} has an invalid value: {raw!r}",
            f"配置项 {name} 的值无效：{raw!r}",
            field=name,
        ) from exc


def load_settings(home: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the settings for ``home`` (default ``$ESEAL_HOME`` or ``./var``)."""
    home_path = Path(home or os.environ.get("ESEAL_HOME") or "var")
    values: dict[str, Any] = {}
    toml_file = home_path / "eseal.toml"
    if toml_file.is_file():
        try:
            values.update(tomllib.loads(toml_file.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                "BAD_SETTINGS_FILE",
                f"{toml_file} is not valid TOML: {exc}",
                f"{toml_file} 不是有效的 TOML：{exc}",
                field="eseal.toml",
            ) from exc
    known = {f.name: f for f in fields(Settings)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ConfigError(
            "UNKNOWN_SETTING",
            f"unknown setting(s) in {toml_file}: {', '.join(unknown)}",
            f"{toml_file} 中有未知配置项：{', '.join(unknown)}",
            field=unknown[0],
        )
    for name in known:
        env = os.environ.get(f"ESEAL_{name.upper()}")
        if env is not None and name != "home":
            values[name] = env
    values.update({k: v for k, v in overrides.items() if v is not None})
    values["home"] = home_path
    typed = {name: _coerce(name, known[name].type, raw) for name, raw in values.items()}
    return Settings(**typed)
