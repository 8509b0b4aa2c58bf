"""The authority: the one object that holds the CA token session, the database and the log.

Boulder splits a CA into a registration authority (policy), a signer and a storage
authority; eseal keeps those rooms as modules (``eseal.ra`` decides, ``profiles`` lays a
certificate out, ``issuer`` lints and signs with the token key, ``eseal.store`` keeps) and
this class is the thin hall between them. Every certificate is made through ``certify``
from one ``IssuanceRequest`` (``eseal.ca.issuance``). Every state
change and every refusal goes through ``self.audit`` in the same transaction as the change.
No certificate is handed out before its row and its audit event are committed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from eseal import clock
from eseal.audit.head import TokenHeadStore
from eseal.audit.log import AuditLog
from eseal.ca import profiles
from eseal.ca.issuance import (
    Draft,
    IssuanceRequest,
    Issued,
    check_csr,
    check_enterprise_active,
    enterprise_request,
)
from eseal.ca.issuer import sign_certificate
from eseal.errors import ConfigError, Conflict, EsealError, NotFound, ServiceUnavailable
from eseal.pki.dates import add_years
from eseal.pki.serials import normalize_serial, random_serial, serial_hex
from eseal.settings import Settings
from eseal.store import Database, open_database
from eseal.store.models import CaKey, Certificate, Enterprise
from eseal.token import (
    KeySpec,
    Pkcs11Uri,
    TokenPrivateKey,
    TokenSession,
    configure,
    token_private_key,
)
from eseal.token.softhsm import write_conf

CA_ROLES: dict[str, KeySpec] = {
    "root": "ec-p384",
    "issuing": "ec-p256",
    "ocsp": "ec-p256",
    "tsa": "ec-p256",
    "audit": "ec-p256",
}
CA_ORGANISATION = "eseal Enterprise CA"

T = TypeVar("T")

_CERTS = Certificate.__table__
# Prepared once (see audit.py): the issuance path runs thousands of times a second.
_SAME_KEY = select(_CERTS.c.serial, _CERTS.c.profile, _CERTS.c.status, _CERTS.c.not_after,
                   _CERTS.c.replaced_by).where(_CERTS.c.spki_sha256 == bindparam("spki"))
_INSERT_CERT = insert(_CERTS)
_ENTERPRISES = Enterprise.__table__
_ENTERPRISE_BY_USCC = select(_ENTERPRISES).where(_ENTERPRISES.c.uscc == bindparam("uscc"))


@dataclass(frozen=True)
class InitResult:
    home: Path
    base_url: str
    ca_pin_file: Path
    ca_so_pin: str  # shown once by the CLI, never stored in clear
    root: x509.Certificate
    issuing: x509.Certificate


def configure_tokens(settings: Settings) -> None:
    """Point the PKCS#11 layer at this home's module and SoftHSM configuration (or, for a
    remote module such as ``p11-kit-client.so``, at the ``p11-kit server``'s address).

    An explicit ``SOFTHSM2_CONF`` wins over the home's file, as the issue asks of token
    commands; the home's file is written if missing so a fresh home just works.
    """
    if settings.token_is_remote:  # p11-kit-client.so: the token is another process's
        configure(settings.pkcs11_module, None, settings.p11_kit_server_address or None)
        return
    if settings.softhsm_conf:  # an explicit configuration is used exactly as written
        conf = settings.softhsm_conf
    else:
        conf = os.environ.get("SOFTHSM2_CONF") or str(
            write_conf(settings.softhsm_conf_path, settings.token_dir))
    configure(settings.pkcs11_module, conf)


class Authority:
    """An opened eseal home: CA token session, database and audit log."""

    def __init__(self, settings: Settings, db: Database, ca_session: TokenSession) -> None:
        self.settings = settings
        self.db = db
        self.ca_session = ca_session
        with db.read() as s:
            rows = {row.role: row for row in s.execute(select(CaKey)).scalars()}
        missing = [role for role in CA_ROLES if role not in rows]
        if missing:
            raise ConfigError("HOME_NOT_INITIALISED",
                              f"the eseal home {settings.home} has no CA keys: run `eseal init`",
                              f"eseal 目录 {settings.home} 尚未初始化：请先运行 `eseal init`",
                              field="home")
        self._rows = rows
        self._keys: dict[str, TokenPrivateKey] = {}

    # -- opening ------------------------------------------------------------------------
    @classmethod
    def open(cls, settings: Settings) -> Authority:
        pin_file = settings.ca_pin_file
        if not pin_file.exists():
            raise ConfigError("HOME_NOT_INITIALISED",
                              f"no CA in {settings.home}: run `eseal init --home {settings.home}`",
                              f"{settings.home} 中没有 CA：请先运行 `eseal init`", field="home")
        configure_tokens(settings)
        db = open_database(settings.database)
        try:
            pin = pin_file.read_text().strip()
        except OSError as exc:
            raise ServiceUnavailable("CA_TOKEN_UNAVAILABLE", f"the CA's PIN file cannot be read "
                                     f"({exc.strerror})", "无法读取 CA 的 PIN 文件") from exc
        session = TokenSession(settings.ca_token_label, pin, rw=True, service=True)
        return cls(settings, db, session)

    def close(self, *, checkpoint: bool = True) -> None:
        """End of a unit of work (a CLI command): checkpoint the log, release the token."""
        if checkpoint:
            with self.db.write() as s:
                self.audit.checkpoint(s)
        self.ca_session.close()

    def __enter__(self) -> Authority:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys and certificates of the CA ------------------------------------------------
    def key(self, role: str) -> TokenPrivateKey:
        if role not in self._keys:
            uri = Pkcs11Uri.parse(self._rows[role].key_uri)
            assert uri.id is not None
            self._keys[role] = token_private_key(self.ca_session, uri.id)
        return self._keys[role]

    @cached_property
    def _certs(self) -> dict[str, x509.Certificate]:
        return {role: x509.load_der_x509_certificate(row.certificate_der)
                for role, row in self._rows.items() if row.certificate_der}

    def certificate(self, role: str) -> x509.Certificate:
        return self._certs[role]

    def chain(self) -> list[x509.Certificate]:
        """The CA chain for an end-entity certificate: issuing first, then root."""
        return [self._certs["issuing"], self._certs["root"]]

    @cached_property
    def audit(self) -> AuditLog:
        audit_key = self.key("audit")

        def sign(message: bytes) -> bytes:
            return audit_key.sign(message, ec.ECDSA(hashes.SHA256()))

        public = audit_key.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        return AuditLog(signer=sign, public_key=public,
                        checkpoint_every=self.settings.checkpoint_every,
                        journal=self.settings.audit_journal_path,
                        crl_issuers=[self._certs[r] for r in ("issuing", "root")
                                     if r in self._certs],
                        head=TokenHeadStore(self.ca_session))

    # -- auditing helpers ---------------------------------------------------------------
    @contextmanager
    def change(self, *, actor: str, action: str, target: str | None = None,
               details: dict[str, Any] | None = None) -> Iterator[Session]:
        """A write transaction whose success is audited as ``ok`` and whose refusal
        (an ``EsealError``) is audited as ``refused`` in a transaction of its own."""
        try:
            with self.db.write() as s:
                yield s
                self.audit.append(s, actor=actor, action=action, target=target,
                                  details=details)
        except EsealError as err:
            self.record_refusal(actor=actor, action=action, target=target, error=err,
                                details=details)
            raise

    def record_refusal(self, *, actor: str, action: str, target: str | None,
                       error: EsealError, details: dict[str, Any] | None = None) -> None:
        merged = dict(details or {})
        merged.update({"code": error.code, "field": error.field})
        with self.db.write() as s:
            self.audit.append(s, actor=actor, action=action, outcome="refused", target=target,
                              details=merged)

    def refusing(self, fn: Callable[[], T], *, actor: str, action: str,
                 target: str | None = None, details: dict[str, Any] | None = None) -> T:
        """Run a validation step; an ``EsealError`` is audited as a refusal and re-raised."""
        try:
            return fn()
        except EsealError as err:
            self.record_refusal(actor=actor, action=action, target=target, error=err,
                                details=details)
            raise

    # -- enterprises --------------------------------------------------------------------
    def enterprise(self, uscc: str) -> Any:
        """The enterprise record (id, uscc, name, legal_rep, contact_email, status, ...)."""
        with self.db.read() as s:
            return self.enterprise_row(s, uscc)

    def enterprises(self) -> list[Enterprise]:
        with self.db.read() as s:
            return list(s.execute(select(Enterprise).order_by(Enterprise.id)).scalars())

    @staticmethod
    def enterprise_row(s: Session, uscc: str) -> Any:
        """The enterprise as a plain row (id, uscc, name, legal_rep, status): cheap to read."""
        row = s.connection().execute(_ENTERPRISE_BY_USCC, {"uscc": uscc}).first()
        if row is None:
            raise NotFound("ENTERPRISE_NOT_REGISTERED",
                           f"no enterprise with credit code {uscc} is registered",
                           f"统一社会信用代码 {uscc} 的企业未登记", field="uscc")
        return row

    def _enterprise(self, s: Session, uscc: str) -> Enterprise:
        """The enterprise as an ORM object, for changing it."""
        return s.get_one(Enterprise, self.enterprise_row(s, uscc).id)

    # -- issuance -----------------------------------------------------------------------
    def issue(self, csr_pem: bytes, *, uscc: str, profile: str, holder: str, actor: str,
              token_label: str | None = None) -> Issued:
        """Certify the key in a CSR for an enterprise under a profile (login or seal): the
        officer's door (and the token enrolment's), vetted once, then ``certify``."""
        details: dict[str, Any] = {"uscc": uscc, "profile": profile, "holder": holder}

        def vet() -> IssuanceRequest:
            csr, holder_name = check_csr(csr_pem, profile=profile, holder=holder, uscc=uscc)
            with self.db.read() as s:
                ent = self.enterprise_row(s, uscc)
                request = enterprise_request(csr, enterprise=ent, profile=profile,
                                             holder=holder_name, actor=actor,
                                             token_label=token_label, target=uscc)
                self.check_key_free(s, request.spki_sha256, profile, renewing=False)
            return request

        request = self.refusing(vet, actor=actor, action="cert.issue", target=uscc,
                                details=details)
        return self.certify(request, details=details)

    def certify(self, request: IssuanceRequest, *, details: dict[str, Any] | None = None,
                serial_field: str = "serial",
                then: Callable[[Session, Draft], None] | None = None) -> Issued:
        """The one issuance path: prepare -> lint -> sign with the issuing key on the token,
        then record the row and the audit event (``request.action``) in one transaction.

        Built and signed outside the write lock, so CA processes sign in parallel; under the
        lock the key is checked again, the enterprise the certificate names must be the row
        that was vetted (``ENTERPRISE_CHANGED``), and ``then`` re-checks what the caller
        decided on (it may raise to discard the draft), so a draft that loses a race is
        dropped unseen: nothing is handed out before its row and audit event are committed.
        A lint finding (``CERT_LINT_FAILED``) is refused and audited before the token signs."""
        details = details if details is not None else {}
        draft = self.prepare(request, details)
        details[serial_field] = draft.serial
        with self.change(actor=request.actor, action=request.action, target=request.target,
                         details=details) as s:
            ent = request.enterprise
            if ent is not None and self.enterprise_row(s, ent.uscc) != ent:
                raise Conflict("ENTERPRISE_CHANGED",
                               f"enterprise {ent.uscc} changed during issuance; try again",
                               f"企业 {ent.uscc} 信息在签发过程中发生变化，请重试", field="uscc")
            self.record(s, draft)
            if then is not None:
                then(s, draft)
        return draft.issued

    def prepare(self, request: IssuanceRequest, details: dict[str, Any]) -> Draft:
        """The signing half of :meth:`certify`: prepare -> lint -> sign on the token, outside
        any transaction (a refusal is audited as ``request.action``). For a caller that
        records several certificates in one transaction of its own (a rename), with
        :meth:`record`; everyone else calls :meth:`certify`."""
        details["lint"] = "pkilint" if self.settings.lint_on_issue else "off"
        return self.refusing(lambda: self._draft(request), actor=request.actor,
                             action=request.action, target=request.target, details=details)

    def record(self, s: Session, draft: Draft) -> None:
        """The recording half of :meth:`certify`, inside the caller's write transaction:
        the key is checked free again under the lock, then the row is written."""
        self.check_key_free(s, draft.row["spki_sha256"], draft.request.profile,
                            renewing=draft.request.renewing)
        s.connection().execute(_INSERT_CERT, draft.row)

    check_enterprise_active = staticmethod(check_enterprise_active)

    @staticmethod
    def check_key_free(s: Session, spki: str, profile: str, *, renewing: bool) -> None:
        """One key, one profile; and a key with a valid certificate is renewed, not re-issued."""
        now = clock.now()
        for serial, other_profile, status, expires, replaced in s.connection().execute(
                _SAME_KEY, {"spki": spki}):
            if other_profile != profile:
                raise Conflict("KEY_REUSED_ACROSS_PROFILES",
                               f"this public key is already certified as {other_profile} "
                               f"(serial {serial}); use a separate key per profile",
                               f"该公钥已用于 {other_profile} 证书（序列号 {serial}），"
                               "每种用途须使用独立密钥", field="csr")
            if not renewing and status == "good" and expires > now and not replaced:
                raise Conflict("KEY_ALREADY_CERTIFIED",
                               f"this key already has a valid {profile} certificate "
                               f"(serial {serial}); renew it instead",
                               f"该密钥已有有效的 {profile} 证书（序列号 {serial}），请办理续期",
                               field="csr")

    def _draft(self, request: IssuanceRequest) -> Draft:
        """Prepare, lint and sign the certificate, and the row that will record it (no
        database): only ``certify`` calls this."""
        now = clock.now()
        not_before = now.replace(microsecond=0)
        issuing = self.certificate("issuing")
        # Never outlive the issuing CA (RFC 5280 path validation would fail after it).
        expiry = min(request.not_after or add_years(not_before, 1),
                     issuing.not_valid_after_utc)
        ent = request.enterprise
        info = profiles.SubjectInfo(
            common_name=ent.name if request.profile == "seal" else request.holder,
            registered_name=ent.name if ent else None, uscc=ent.uscc if ent else None,
            organization=None if ent else CA_ORGANISATION)
        serial = random_serial()
        key = self.key("issuing")
        prepared = profiles.prepare_certificate(
            request.profile, subject=profiles.subject_name(request.profile, info),
            public_key=request.public_key, issuer_cert=issuing,
            issuer_public_key=key.public_key(), serial=serial, not_before=not_before,
            not_after=expiry, base_url=self.settings.base_url)
        cert = sign_certificate(prepared, key, lint=self.settings.lint_on_issue)
        row = {
            "serial": serial_hex(serial), "issuer_role": "issuing",
            "enterprise_id": ent.id if ent else None, "profile": request.profile,
            "holder": request.holder, "subject": cert.subject.rfc4514_string(),
            "spki_sha256": request.spki_sha256,
            "key_id": x509.SubjectKeyIdentifier.from_public_key(request.public_key).digest.hex(),
            "not_before": not_before, "not_after": expiry, "status": "good",
            "status_version": 0, "key_certified_at": request.key_certified_at or now,
            "revoked_at": None, "revocation_reason": None, "invalidity_date": None,
            "replaced_by": None, "renewed_from": request.renewed_from,
            "token_label": request.token_label,
            "der": cert.public_bytes(serialization.Encoding.DER), "created_at": now}
        return Draft(Issued(serial=serial_hex(serial), certificate=cert), row, request)

    # -- reading certificates -----------------------------------------------------------
    def certificate_row(self, serial: str) -> Certificate:
        canonical = normalize_serial(serial)
        with self.db.read() as s:
            row = s.get(Certificate, canonical)
        if row is None:
            raise NotFound("CERT_NOT_FOUND", f"no certificate with serial {canonical}",
                           f"找不到序列号为 {canonical} 的证书", field="serial")
        return row

    def list_certificates(self, *, uscc: str | None = None) -> list[tuple[Certificate, str | None]]:
        with self.db.read() as s:
            q = (select(Certificate, Enterprise.uscc)
                 .outerjoin(Enterprise, Enterprise.id == Certificate.enterprise_id)
                 .order_by(Certificate.created_at, Certificate.serial))
            if uscc is not None:
                q = q.where(Enterprise.uscc == uscc)
            return [(row[0], row[1]) for row in s.execute(q).all()]

    def certificates_for_key(self, key_id_hex: str) -> list[Certificate]:
        """Current (not replaced, not revoked) certificates of a token key, newest first."""
        with self.db.read() as s:
            return list(s.execute(
                select(Certificate).where(Certificate.key_id == key_id_hex,
                                          Certificate.replaced_by.is_(None),
                                          Certificate.status != "revoked")
                .order_by(Certificate.not_after.desc())).scalars())


# --- creating a home lives in eseal.ca.home; kept here for existing callers ---------------
def init_home(settings: Settings, *, actor: str = "officer:init") -> InitResult:
    """Create the CA token, its keys, the CA certificates and the database of a new home."""
    from eseal.ca.home import init_home as create

    return create(settings, actor=actor)
