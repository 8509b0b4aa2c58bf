"""Enrolling a USB-Key through the local authority (journey 1 of DESIGN.md).

The officer has registered the enterprise; the holder brings a provisioned token and its PIN.
Here the authority checks who is asking for what (a registered, active enterprise; a role of
``legal_rep`` or ``agent``; for the legal representative, exactly the registered name), then
the token generates the login key (both roles) and the seal key (legal representative only),
signs one CSR per key, the authority issues the certificates, and they are written back onto
the token with the CA chain. Everything is checked before anything is created, so bad input
changes nothing; a failure half way destroys what this enrolment put on the token and
withdraws what it had issued. The token is then recorded in the ``tokens`` table.

``refresh_token`` installs certificates the CA renewed for the keys already on a token.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.x509.oid import NameOID

from eseal import clock
from eseal.errors import Conflict, EsealError, InvalidInput, TokenError
from eseal.pki import identity
from eseal.pki.oids import ORGANIZATION_IDENTIFIER
from eseal.ra.revocation import revoke
from eseal.store.models import TokenRecord
from eseal.token import KeySpec, TokenSession, find_token
from eseal.token.keys import KeyInfo
from eseal.token.pin import PinPolicy, check_pin
from eseal.token.usbkey import (
    Purpose,
    build_csr,
    check_label,
    generate_key,
    install_certificate,
    install_chain,
    keys_by_purpose,
    remove_objects,
)

if TYPE_CHECKING:
    from eseal.ca.authority import Authority, Issued

Role = Literal["legal_rep", "agent"]
ROLES: tuple[Role, ...] = ("legal_rep", "agent")
PURPOSES_BY_ROLE: dict[Role, tuple[Purpose, ...]] = {
    "legal_rep": ("login", "seal"),
    "agent": ("login",),
}


@dataclass(frozen=True)
class Enrolment:
    label: str
    uscc: str
    role: Role
    holder: str
    issued: dict[Purpose, Issued] = field(default_factory=dict)
    key_ids: dict[Purpose, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "uscc": self.uscc, "role": self.role,
                "holder": self.holder,
                "certificates": [{"profile": p, "serial": i.serial, "key_id": self.key_ids[p],
                                  "subject": i.certificate.subject.rfc4514_string(),
                                  "not_after": i.certificate.not_valid_after_utc.isoformat()}
                                 for p, i in self.issued.items()]}


def pin_policy(auth: Authority) -> PinPolicy:
    return PinPolicy(auth.settings.pin_max_tries, auth.settings.so_pin_max_tries)


def _subject(purpose: Purpose, ent: Any, holder: str) -> x509.Name:
    common_name = ent.name if purpose == "seal" else holder
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, ent.name),
        x509.NameAttribute(ORGANIZATION_IDENTIFIER, identity.organization_identifier(ent.uscc)),
    ])


def _check_not_enrolled(auth: Authority, label: str) -> None:
    with auth.db.read() as s:
        record = s.get(TokenRecord, label)
    if record is not None and record.enterprise_id is not None:
        raise Conflict("TOKEN_ALREADY_ENROLLED",
                       f"token {label!r} is already enrolled (holder {record.holder}, role "
                       f"{record.role})",
                       f"USB-Key {label!r} 已办理过证书（持有人 {record.holder}）", field="label")
    public = TokenSession(label, None, rw=True)
    try:
        present = keys_by_purpose(public)
    finally:
        public.close()
    if present:
        raise Conflict("TOKEN_ALREADY_ENROLLED",
                       f"token {label!r} already holds eseal keys ({', '.join(sorted(present))})",
                       f"USB-Key {label!r} 上已有 eseal 密钥", field="label")


def enroll_on_token(auth: Authority, *, label: str, pin: str, uscc: str, role: str,
                    holder: str, actor: str, key_spec: KeySpec = "ec-p256") -> Enrolment:
    """Generate keys on the token, have them certified, write certificates and chain back."""
    details: dict[str, Any] = {"uscc": uscc, "role": role, "holder": holder}

    def validate() -> tuple[Any, str]:
        check_label(label)
        if role not in ROLES:
            raise InvalidInput("ROLE_UNKNOWN", f"unknown role {role!r} (legal_rep or agent)",
                               f"未知角色 {role!r}（legal_rep 或 agent）", field="role")
        code = identity.validate_uscc(uscc)
        name = identity.validate_person_name(holder, "holder")
        ent = auth.enterprise(code)
        auth.check_enterprise_active(ent)
        identity.check_holder(role, name, ent.legal_rep)
        find_token(label)  # TOKEN_NOT_FOUND lists the tokens that exist
        _check_not_enrolled(auth, label)
        check_pin(pin, forbidden=[code, label])  # the holder's PIN must not be the code
        return ent, name

    ent, holder_name = auth.refusing(validate, actor=actor, action="token.enroll", target=label,
                                     details=details)
    purposes = PURPOSES_BY_ROLE[role]  # type: ignore[index]
    policy = pin_policy(auth)
    try:
        ts = policy.login(label, pin, rw=True)
    except EsealError as err:
        auth.record_refusal(actor=actor, action="token.enroll", target=label, error=err,
                            details=details)
        raise

    created: list[bytes] = []
    issued: dict[Purpose, Issued] = {}
    infos: dict[Purpose, KeyInfo] = {}
    try:
        for purpose in purposes:
            info = generate_key(ts, purpose, key_spec)
            created.append(info.id)
            infos[purpose] = info
        csrs = {p: build_csr(ts, infos[p], _subject(p, ent, holder_name)) for p in purposes}
        for purpose in purposes:
            issued[purpose] = auth.issue(csrs[purpose], uscc=ent.uscc, profile=purpose,
                                         holder=holder_name, actor=actor, token_label=label)
        for purpose in purposes:
            install_certificate(ts, purpose, issued[purpose].certificate)
        created.extend(install_chain(ts, auth.chain()))
        details["serials"] = {p: i.serial for p, i in issued.items()}
        with auth.change(actor=actor, action="token.enroll", target=label,
                         details=details) as s:
            record = s.get(TokenRecord, label)
            if record is None:
                record = TokenRecord(label=label, created_at=clock.now())
                s.add(record)
            elif record.enterprise_id is not None:
                raise Conflict("TOKEN_ALREADY_ENROLLED", f"token {label!r} is already enrolled",
                               f"USB-Key {label!r} 已办理过证书", field="label")
            record.enterprise_id = ent.id
            record.role = role
            record.holder = holder_name
    except BaseException as exc:
        remove_objects(ts, created)
        withdraw(auth, issued, actor=actor, label=label, cause=exc)
        raise
    finally:
        ts.close()
    return Enrolment(label=label, uscc=ent.uscc, role=role, holder=holder_name,  # type: ignore[arg-type]
                     issued=issued, key_ids={p: i.id_hex for p, i in infos.items()})


def withdraw(auth: Authority, issued: dict[Purpose, Issued], *, actor: str, label: str,
              cause: BaseException) -> None:
    """Certificates issued for an enrolment that failed later never reached a holder and
    their keys are destroyed: revoke them (cessationOfOperation), audited, so no valid
    certificate is left for a key that no longer exists."""
    cause_code = cause.code if isinstance(cause, EsealError) else type(cause).__name__
    for purpose, cert in issued.items():
        details = {"serial": cert.serial, "profile": purpose, "cause": cause_code,
                   "reason": "cessationOfOperation"}
        try:
            revoke(auth, cert.serial, reason="cessationOfOperation", actor=actor)
        except Exception as err:  # the enrolment's own error is what the caller must see
            code = err.code if isinstance(err, EsealError) else type(err).__name__
            with contextlib.suppress(Exception):
                auth.record_refusal(
                    actor=actor, action="token.enroll.withdraw", target=label,
                    error=EsealError(code, "withdrawing an enrolment certificate failed",
                                     "撤回注册证书失败"), details=details)


# --- refresh -----------------------------------------------------------------------------------
def refresh_token(auth: Authority, *, label: str, actor: str) -> list[dict[str, str]]:
    """Install onto the token the current certificates the CA holds for its keys (after a
    renewal). Certificates are public objects: no PIN is needed. Returns what was installed."""
    find_token(label)
    ts = TokenSession(label, None, rw=True)
    installed: list[dict[str, str]] = []
    try:
        keys = keys_by_purpose(ts)
        if not keys:
            raise TokenError("TOKEN_NOT_ENROLLED", f"token {label!r} holds no eseal keys",
                             f"USB-Key {label!r} 上没有 eseal 密钥", field="label")
        for purpose, info in sorted(keys.items()):
            rows = [r for r in auth.certificates_for_key(info.id_hex) if r.profile == purpose]
            if not rows:
                continue
            newest = max(rows, key=lambda r: r.not_after)
            cert = x509.load_der_x509_certificate(newest.der)
            if install_certificate(ts, purpose, cert):
                installed.append({"profile": purpose, "serial": newest.serial})
        install_chain(ts, auth.chain())
    finally:
        ts.close()
    if installed:
        with auth.change(actor=actor, action="token.refresh", target=label,
                         details={"installed": installed}):
            pass
    return installed

