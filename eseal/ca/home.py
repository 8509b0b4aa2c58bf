"""Creating an eseal home: a new CA (``init``) or one more replica of an existing CA (``join``).

The CA *is* its database and its token; a home only says where they are and holds the
secrets that open them. Several homes — replicas on one host or on many — can therefore
serve one CA. So that a later command finds the same CA without the variables ``init`` ran
with, a home records, in ``eseal.toml``, the settings it was made with: the base URL, the
PKCS#11 module and the ``p11-kit server`` address, the token label, a shared audit journal,
and ``database_url_file`` — the database URL itself goes to ``secrets/database.url`` (mode
0600), never into the TOML, since a PostgreSQL URL may carry a password.

``init`` refuses a database that already holds a CA (``DATABASE_HAS_CA``: use ``--join``);
``join`` refuses a database without one and a token whose keys are not the database's CA
keys (``CA_TOKEN_MISMATCH``). Either way a refusal leaves nothing it created behind: no
half-made home, no orphan token, no secret file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from eseal import clock
from eseal.audit.head import TokenHeadStore
from eseal.audit.log import AuditLog
from eseal.ca import profiles
from eseal.ca.authority import (
    CA_ORGANISATION,
    CA_ROLES,
    Authority,
    InitResult,
    configure_tokens,
)
from eseal.ca.issuance import spki_sha256
from eseal.ca.issuer import build_certificate
from eseal.errors import ConfigError, Conflict, EsealError, NotFound
from eseal.pki.dates import add_years
from eseal.pki.serials import random_serial, serial_hex
from eseal.settings import Settings
from eseal.store import Database, close_all, open_database
from eseal.store.models import AuditEvent, CaKey, Certificate
from eseal.token import (
    Pkcs11Uri,
    TokenSession,
    generate_keypair,
    private_key_for,
    public_key,
)
from eseal.token.softhsm import delete_token, init_token

#: Settings a home records when they differ from the defaults (never a secret).
RECORDED = ("base_url", "database_url_file", "pkcs11_module", "softhsm_conf",
            "p11_kit_server_address", "ca_token_label", "audit_journal")
DATABASE_URL_SECRET = "secrets/database.url"


class _Undo:
    """What a home creation made, removed again (newest first) if it does not finish."""

    def __init__(self) -> None:
        self._steps: list[Callable[[], None]] = []

    def add(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def file(self, path: Path) -> None:
        """Remember a file about to be created (nothing, if it exists already)."""
        if not path.exists():
            self.add(lambda: path.unlink(missing_ok=True))

    def dir(self, path: Path) -> None:
        """Remember a directory about to be created, with all that will be put in it."""
        if not path.exists():
            self.add(lambda: shutil.rmtree(path, ignore_errors=True))

    def sqlite_file(self, url: str) -> None:
        if not url.startswith("sqlite:///"):
            return
        db_file = Path(url[len("sqlite:///"):])
        for suffix in ("", "-wal", "-shm"):
            self.file(Path(f"{db_file}{suffix}"))

    def run(self) -> None:
        close_all()  # an engine on a file about to vanish must not be reused
        for step in reversed(self._steps):
            with contextlib.suppress(OSError, EsealError):
                step()
        self._steps.clear()


def _write_secret(path: Path, value: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")


def _toml_value(value: object) -> str:
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _record_settings(settings: Settings, undo: _Undo) -> Settings:
    """Write the database URL secret and ``eseal.toml``; the settings as recorded."""
    home = settings.home
    if settings.database_url:
        secret = home / DATABASE_URL_SECRET
        undo.dir(secret.parent)
        undo.file(secret)
        _write_secret(secret, settings.database_url)
        settings = settings.replace(database_url_file=DATABASE_URL_SECRET)
    defaults = Settings()
    values = {f.name: getattr(settings, f.name) for f in fields(Settings)}
    toml = home / "eseal.toml"
    before = toml.read_text(encoding="utf-8") if toml.exists() else None
    present = tomllib.loads(before) if before is not None else {}
    lines = [before.rstrip("\n")] if before else []
    lines.append("# recorded by eseal init: where this home's CA lives (no secrets here)")
    for name in RECORDED:
        if name not in present and (name == "base_url"
                                    or values[name] != getattr(defaults, name)):
            lines.append(f"{name} = {_toml_value(values[name])}")
    if before is None:
        undo.file(toml)
    else:
        undo.add(lambda: toml.write_text(before, encoding="utf-8"))
    toml.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return settings


def _ca_rows(db: Database) -> dict[str, CaKey]:
    with db.read() as s:
        return {row.role: row for row in s.execute(select(CaKey)).scalars()}


def _start(settings: Settings, undo: _Undo) -> Database:
    home = settings.home
    if settings.ca_pin_file.exists():
        raise Conflict("HOME_ALREADY_INITIALISED",
                       f"{home} already holds a CA; choose another --home",
                       f"{home} 已有 CA，请选择其他目录", field="home")
    undo.dir(home)
    home.mkdir(parents=True, exist_ok=True)
    url = settings.database
    undo.sqlite_file(url)
    return open_database(url)


def init_home(settings: Settings, *, actor: str = "officer:init") -> InitResult:
    """Create the CA token, its keys, the CA certificates and the database of a new home."""
    undo = _Undo()
    try:
        db = _start(settings, undo)
        existing = _ca_rows(db)
        if existing:
            raise Conflict(
                "DATABASE_HAS_CA",
                "the database already holds a CA; to serve it from this home use "
                "`eseal init --join` with the CA token's PIN",
                "该数据库中已有 CA；如需在此目录提供服务，请使用 `eseal init --join` 并提供 CA "
                "令牌 PIN", field="database_url")
        if settings.token_is_remote:
            raise ConfigError(
                "INIT_NEEDS_LOCAL_TOKEN",
                "a new CA is created on the host that holds its token (SoftHSM); replicas "
                "reaching it through p11-kit use `eseal init --join`",
                "新 CA 须在持有令牌（SoftHSM）的主机上创建；通过 p11-kit 访问的副本请使用 "
                "`eseal init --join`", field="pkcs11_module")
        settings = _record_settings(settings, undo)
        undo.file(settings.softhsm_conf_path)
        undo.dir(settings.token_dir)
        configure_tokens(settings)
        return _create_ca(settings, db, actor, undo)
    except BaseException:
        undo.run()
        raise


def _create_ca(settings: Settings, db: Database, actor: str, undo: _Undo) -> InitResult:
    home = settings.home
    ca_pin = secrets.token_urlsafe(18)
    so_pin = secrets.token_urlsafe(18)
    init_token(settings.softhsm_conf_path, settings.ca_token_label, ca_pin, so_pin)
    undo.add(lambda: delete_token(settings.softhsm_conf_path, settings.ca_token_label))
    undo.dir(settings.secrets_dir)
    undo.file(settings.ca_pin_file)
    _write_secret(settings.ca_pin_file, ca_pin)
    ts = TokenSession(settings.ca_token_label, ca_pin, rw=True, service=True)
    infos = {role: generate_keypair(ts, spec, f"{role}-ca" if role in ("root", "issuing")
                                    else f"{role}-signer" if role != "audit" else "audit")
             for role, spec in CA_ROLES.items()}
    keys = {role: private_key_for(ts, info) for role, info in infos.items()}
    now = clock.now().replace(microsecond=0)
    ca_info = profiles.SubjectInfo(common_name="eseal Root CA", organization=CA_ORGANISATION)
    root = build_certificate(
        "root", subject=profiles.subject_name("root", ca_info),
        public_key=infos["root"].public_key, issuer_cert=None, issuer_key=keys["root"],
        serial=random_serial(), not_before=now, not_after=add_years(now, 20),
        base_url=settings.base_url, lint=settings.lint_on_issue)
    certs: dict[str, tuple[x509.Certificate, str]] = {"root": (root, "root")}
    plan = (("issuing", "eseal Issuing CA", "root", 10),
            ("ocsp", "eseal OCSP Responder", "issuing", 2),
            ("tsa", "eseal Timestamping Authority", "issuing", 5))
    for role, cn, issuer_role, years in plan:
        issuer_cert = certs[issuer_role][0]
        cert = build_certificate(
            role, subject=profiles.subject_name(
                role, profiles.SubjectInfo(common_name=cn, organization=CA_ORGANISATION)),
            public_key=infos[role].public_key, issuer_cert=issuer_cert,
            issuer_key=keys[issuer_role], serial=random_serial(), not_before=now,
            not_after=min(add_years(now, years), issuer_cert.not_valid_after_utc),
            base_url=settings.base_url, lint=settings.lint_on_issue)
        certs[role] = (cert, issuer_role)
    journal = settings.audit_journal_path
    undo.dir(journal.parent)
    audit_log = AuditLog(
        signer=lambda m: keys["audit"].sign(m, ec.ECDSA(hashes.SHA256())),
        public_key=infos["audit"].public_key,  # type: ignore[arg-type]
        checkpoint_every=settings.checkpoint_every, journal=journal,
        head=TokenHeadStore(ts))  # creates the token's audit-head record
    with db.write() as s:
        for role, info in infos.items():
            cert = certs.get(role, (None, ""))[0]
            s.add(CaKey(role=role, key_uri=info.uri, created_at=now,
                        certificate_der=cert.public_bytes(serialization.Encoding.DER)
                        if cert else None))
        for role, (cert, issuer_role) in certs.items():
            s.add(Certificate(
                serial=serial_hex(cert.serial_number), issuer_role=issuer_role,
                enterprise_id=None, profile=role, holder=role,
                subject=cert.subject.rfc4514_string(),
                spki_sha256=spki_sha256(cert.public_key()), key_id=infos[role].id.hex(),
                not_before=now, not_after=cert.not_valid_after_utc, status="good",
                status_version=0, key_certified_at=now,
                der=cert.public_bytes(serialization.Encoding.DER), created_at=now))
        audit_log.append(s, actor=actor, action="ca.init", target=settings.ca_token_label,
                         details={"base_url": settings.base_url,
                                  "root": serial_hex(root.serial_number),
                                  "issuing": serial_hex(certs["issuing"][0].serial_number)})
        audit_log.checkpoint(s)
    ts.close()
    return InitResult(home=home, base_url=settings.base_url, ca_pin_file=settings.ca_pin_file,
                      ca_so_pin=so_pin, root=root, issuing=certs["issuing"][0])


# --- joining an existing CA ---------------------------------------------------------------
@dataclass(frozen=True)
class JoinResult:
    home: Path
    base_url: str
    root: x509.Certificate
    issuing: x509.Certificate
    settings: dict[str, Any]


def _spki(key: Any) -> bytes:
    return bytes(key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo))


def _mismatch(role: str, why: str, why_zh: str) -> Conflict:
    return Conflict("CA_TOKEN_MISMATCH",
                    f"the token is not this database's CA: the {role} key {why}",
                    f"令牌与数据库中的 CA 不符：{role} 密钥{why_zh}", field="ca_token_label",
                    details={"role": role})


def check_token_matches(ts: TokenSession, rows: dict[str, CaKey]) -> None:
    """Every CA key the database names is on the token, with its certificate's public key."""
    for role in CA_ROLES:
        row = rows[role]
        uri = Pkcs11Uri.parse(row.key_uri)
        assert uri.id is not None
        try:
            on_token = public_key(ts, uri.id)
        except EsealError as err:
            if err.code in ("KEY_NOT_FOUND", "KEY_AMBIGUOUS"):
                raise _mismatch(role, "is not on it", "不在该令牌上") from None
            raise
        if row.certificate_der is not None:
            cert = x509.load_der_x509_certificate(row.certificate_der)
            if _spki(cert.public_key()) != _spki(on_token):
                raise _mismatch(role, "differs from the CA certificate's",
                                "与 CA 证书中的公钥不同")


def _recorded_base_url(db: Database) -> str | None:
    with db.read() as s:
        event = s.execute(select(AuditEvent).where(AuditEvent.action == "ca.init")
                          .order_by(AuditEvent.id).limit(1)).scalar_one_or_none()
    url = (event.details or {}).get("base_url") if event is not None else None
    return str(url) if url else None


def join_home(settings: Settings, *, ca_pin: str, actor: str = "officer:join",
              base_url_given: bool = False) -> JoinResult:
    """Make ``settings.home`` a replica home of the CA already in ``settings.database``."""
    undo = _Undo()
    try:
        db = _start(settings, undo)
        rows = _ca_rows(db)
        missing = [role for role in CA_ROLES if role not in rows]
        if missing:
            raise NotFound("DATABASE_HAS_NO_CA",
                           "the database holds no CA to join; create one with `eseal init`",
                           "该数据库中没有可加入的 CA；请先运行 `eseal init`",
                           field="database_url", details={"missing": missing})
        if not base_url_given:
            settings = settings.replace(base_url=_recorded_base_url(db) or settings.base_url)
        configure_tokens(settings)
        ts = TokenSession(settings.ca_token_label, ca_pin, rw=True)  # the operator's PIN: a 4xx
        try:
            check_token_matches(ts, rows)
        finally:
            ts.close()
        recorded = _record_settings(settings, undo)
        undo.dir(recorded.secrets_dir)
        _write_secret(recorded.ca_pin_file, ca_pin)
        with Authority.open(recorded) as auth, auth.change(
                actor=actor, action="ca.join", target=str(recorded.home.resolve()),
                details={"host": socket.gethostname(), "token": recorded.ca_token_label}):
            pass
        certs = {role: x509.load_der_x509_certificate(rows[role].certificate_der or b"")
                 for role in ("root", "issuing")}
        return JoinResult(home=recorded.home, base_url=recorded.base_url,
                          root=certs["root"], issuing=certs["issuing"],
                          settings={n: getattr(recorded, n) for n in RECORDED})
    except BaseException:
        undo.run()
        raise
