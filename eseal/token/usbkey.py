"""A holder's USB-Key: provisioning, status, PIN changes, unblocking and the on-token steps of
enrolment (key generation, CSR, certificates, chain, rollback).

An enterprise member's key holds a *login* key and, for the legal representative, a *seal*
key; each has its certificate next to it with the same CKA_ID and the same clear label
(``eseal-login``, ``eseal-seal``), and the CA chain is stored beside them
(``eseal-issuing-ca``, ``eseal-root-ca``), so any PKCS#11 client (``pkcs11-tool -O``, a
browser, OpenSSL's pkcs11 provider) finds the pairs the way it expects. Certificates are
public objects: a status can be read without the PIN.

What this module does not do: decide who may have a certificate (that is ``eseal.ca``), or
count PIN tries (that is ``eseal.token.pin``; every login here goes through it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pkcs11 import Attribute, ObjectClass
from pkcs11.exceptions import PKCS11Error

from eseal.errors import InvalidInput, TokenError
from eseal.pki.identity import uscc_of_organization_identifier
from eseal.token import library as lib
from eseal.token import softhsm
from eseal.token.keys import (
    KeyInfo,
    KeySpec,
    StoredCertificate,
    delete_objects,
    generate_keypair,
    key_id_for,
    list_certificates,
    list_keys,
    write_certificate,
)
from eseal.token.pin import PinPolicy, PinState, check_pin
from eseal.token.session import TokenSession, remember_login
from eseal.token.signer import private_key_for

Purpose = Literal["login", "seal"]
PURPOSES: tuple[Purpose, ...] = ("login", "seal")
KEY_LABELS: dict[Purpose, str] = {"login": "eseal-login", "seal": "eseal-seal"}
CA_LABELS = ("eseal-issuing-ca", "eseal-root-ca")  # chain order: issuing first, then root
LABEL_MAX_BYTES = 32  # CK_TOKEN_INFO.label is 32 bytes, blank padded
_ORGANIZATION_IDENTIFIER = x509.ObjectIdentifier("2.5.4.97")  # ETSI EN 319 412-1


# --- labels ----------------------------------------------------------------------------------
def check_label(label: str) -> str:
    """A token label: 1–32 UTF-8 bytes of printable characters, no outer blanks."""
    if not isinstance(label, str) or not label.strip():
        raise InvalidInput("LABEL_REQUIRED", "a token label is required", "需要 USB-Key 标签",
                           field="label")
    if label != label.strip() or not label.isprintable():
        raise InvalidInput("LABEL_INVALID",
                           "a token label must be printable, without leading or trailing blanks",
                           "USB-Key 标签须为可打印字符，且首尾不能有空格", field="label")
    if len(label.encode("utf-8")) > LABEL_MAX_BYTES:
        raise InvalidInput("LABEL_TOO_LONG",
                           f"a token label has at most {LABEL_MAX_BYTES} bytes in UTF-8",
                           f"USB-Key 标签最长 {LABEL_MAX_BYTES} 字节（UTF-8）", field="label")
    return label


# --- provisioning ----------------------------------------------------------------------------
def provision(conf_path: Path, label: str, pin: str, so_pin: str, *,
              policy: PinPolicy | None = None) -> None:
    """Create a SoftHSM token with a user PIN, an SO PIN and a zero retry counter.

    Hardware USB-Keys are initialised by their vendors' tools, not here.
    """
    policy = policy or PinPolicy()
    check_label(label)
    check_pin(pin, forbidden=[label])
    check_pin(so_pin, field="so_pin", forbidden=[label])
    if pin == so_pin:
        raise InvalidInput("PIN_SAME_AS_SO_PIN", "the user PIN must differ from the SO PIN",
                           "用户 PIN 不能与管理员 PIN 相同", field="pin")
    softhsm.init_token(conf_path, label, pin, so_pin)
    try:
        policy.install_counter(label)
    except BaseException:
        softhsm.delete_token(conf_path, label)
        raise


# --- status ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class CertificateSummary:
    """A certificate on the token, as a holder or an officer wants to see it."""

    label: str
    id: str  # CKA_ID, hex
    serial: str  # lowercase hex
    subject: str
    issuer: str
    profile: str | None
    not_before: datetime
    not_after: datetime
    key_label: str | None  # the key it certifies, when that key is on the token

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "id": self.id, "serial": self.serial,
                "subject": self.subject, "issuer": self.issuer, "profile": self.profile,
                "not_before": self.not_before.isoformat(),
                "not_after": self.not_after.isoformat(), "key_label": self.key_label}


@dataclass(frozen=True)
class KeySummary:
    label: str
    id: str
    algorithm: str

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "id": self.id, "algorithm": self.algorithm}


@dataclass(frozen=True)
class TokenStatus:
    """What ``eseal token status`` shows; read with no PIN."""

    label: str
    serial: str
    manufacturer: str
    model: str
    pin: PinState
    keys: list[KeySummary] = field(default_factory=list)
    certificates: list[CertificateSummary] = field(default_factory=list)
    ca_chain: list[CertificateSummary] = field(default_factory=list)

    @property
    def locked(self) -> bool:
        return self.pin.locked

    @property
    def tries_left(self) -> int:
        return self.pin.tries_left

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "serial": self.serial,
            "manufacturer": self.manufacturer,
            "model": self.model,
            "locked": self.pin.locked,
            "lock_reason": self.pin.lock_reason,
            "tries_left": self.pin.tries_left,
            "max_tries": self.pin.max_tries,
            "so_locked": self.pin.so_locked,
            "so_tries_left": self.pin.so_tries_left,
            "token_enforces_pin_limit": self.pin.self_locking,
            "keys": [k.to_dict() for k in self.keys],
            "certificates": [c.to_dict() for c in self.certificates],
            "ca_chain": [c.to_dict() for c in self.ca_chain],
        }


def is_ca_certificate(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _algorithm(info: KeyInfo) -> str:
    pub = info.public_key
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return f"ec-{pub.curve.name}"
    return f"rsa-{pub.key_size}"


def _summary(stored: StoredCertificate, key_labels: dict[bytes, str],
             profile_of: Callable[[x509.Certificate], str | None]) -> CertificateSummary:
    cert = stored.certificate
    return CertificateSummary(
        label=stored.label, id=stored.id.hex(), serial=format(cert.serial_number, "x"),
        subject=cert.subject.rfc4514_string(), issuer=cert.issuer.rfc4514_string(),
        profile=profile_of(cert), not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc, key_label=key_labels.get(stored.id))


def _profile_by_label(key_labels: dict[bytes, str]) -> Callable[[x509.Certificate], str | None]:
    by_label = {v: k for k, v in KEY_LABELS.items()}

    def profile_of(cert: x509.Certificate) -> str | None:
        label = key_labels.get(key_id_for(cert.public_key()))  # type: ignore[arg-type]
        return by_label.get(label or "")

    return profile_of


def status(label: str, *, policy: PinPolicy | None = None,
           profile_of: Callable[[x509.Certificate], str | None] | None = None) -> TokenStatus:
    """The token, its keys, its certificates and its PIN state, without a PIN.

    ``profile_of`` names a certificate's profile (the CA knows its policy OIDs); without it
    the profile is taken from the label of the key the certificate belongs to.
    """
    policy = policy or PinPolicy()
    pin_state = policy.state(label)
    ts = TokenSession(label, None, rw=True)
    try:
        with lib.lock():
            token = ts.token
            serial = token.serial.decode("ascii", "replace").strip()
            manufacturer, model = token.manufacturer_id.strip(), token.model.strip()
        keys = list_keys(ts)
        stored = list_certificates(ts)
    finally:
        ts.close()
    key_labels = {k.id: k.label for k in keys}
    namer = profile_of or _profile_by_label(key_labels)
    own = [s for s in stored if not is_ca_certificate(s.certificate)]
    chain = [s for s in stored if is_ca_certificate(s.certificate)]
    own.sort(key=lambda s: (s.label, s.certificate.not_valid_after_utc))
    chain.sort(key=lambda s: (s.certificate.issuer == s.certificate.subject, s.label))
    return TokenStatus(
        label=label, serial=serial, manufacturer=manufacturer, model=model, pin=pin_state,
        keys=[KeySummary(k.label, k.id_hex, _algorithm(k)) for k in keys],
        certificates=[_summary(s, key_labels, namer) for s in own],
        ca_chain=[_summary(s, key_labels, namer) for s in chain])


def enterprise_codes(label: str) -> list[str]:
    """Credit codes named in the holder certificates on a token (``organizationIdentifier``
    ``NTRCN-<USCC>``): a PIN taken from them is refused. Read without a PIN."""
    ts = TokenSession(label, None, rw=True)
    try:
        stored = list_certificates(ts)
    finally:
        ts.close()
    codes: set[str] = set()
    for item in stored:
        for attr in item.certificate.subject.get_attributes_for_oid(_ORGANIZATION_IDENTIFIER):
            value = str(attr.value)
            codes.add(uscc_of_organization_identifier(value) or value)
    return sorted(codes)


# --- PINs ------------------------------------------------------------------------------------
def change_pin(label: str, old_pin: str, new_pin: str, *, policy: PinPolicy | None = None,
               forbidden: Iterable[str] = ()) -> None:
    """Change the user PIN; a wrong old PIN counts as a try."""
    policy = policy or PinPolicy()
    check_pin(new_pin, field="new_pin", forbidden=[label, *forbidden])
    ts = policy.login(label, old_pin, rw=True)
    try:
        with lib.lock():
            try:
                ts.session().set_pin(old_pin, new_pin)
                remember_login(label, new_pin)
            except PKCS11Error as exc:
                raise TokenError("PIN_CHANGE_FAILED",
                                 f"token {label!r} refused the new PIN: {lib.plain_reason(exc)[0]}",
                                 f"USB-Key {label!r} 拒绝了新 PIN：{lib.plain_reason(exc)[1]}",
                                 field="new_pin") from exc
    finally:
        ts.close()


def unblock(label: str, so_pin: str, new_pin: str, *, policy: PinPolicy | None = None,
            forbidden: Iterable[str] = ()) -> None:
    """Set a new user PIN as the security officer and clear the retry counter.

    Works on a locked token and on one whose counter went missing. The process must not be
    logged in to this token as the user (PKCS#11 allows one login per token and process).
    """
    policy = policy or PinPolicy()
    check_pin(new_pin, field="new_pin", forbidden=[label, *forbidden])
    so = policy.login_so(label, so_pin)
    try:
        with lib.lock():
            try:
                so.session().init_pin(new_pin)
            except PKCS11Error as exc:
                raise TokenError("UNBLOCK_FAILED",
                                 f"token {label!r} refused the new PIN: {lib.plain_reason(exc)[0]}",
                                 f"USB-Key {label!r} 拒绝设置新 PIN：{lib.plain_reason(exc)[1]}",
                                 field="new_pin") from exc
    finally:
        so.close()
    policy.install_counter(label)


# --- enrolment on the token ------------------------------------------------------------------
def keys_by_purpose(ts: TokenSession) -> dict[Purpose, KeyInfo]:
    """The eseal keys on a token, found by their labels (no PIN needed: public halves)."""
    by_label = {v: k for k, v in KEY_LABELS.items()}
    found: dict[Purpose, KeyInfo] = {}
    for info in list_keys(ts):
        purpose = by_label.get(info.label)
        if purpose is None:
            continue
        if purpose in found:
            raise TokenError("KEY_AMBIGUOUS", f"token {ts.label!r} holds two {purpose} keys",
                             f"USB-Key {ts.label!r} 上有两个 {purpose} 密钥", field="label")
        found[purpose] = info
    return found


def generate_key(ts: TokenSession, purpose: Purpose, spec: KeySpec = "ec-p256") -> KeyInfo:
    """Generate the login or seal key on the token (non-extractable, signing only)."""
    if purpose not in PURPOSES:
        raise InvalidInput("PURPOSE_UNKNOWN", f"unknown key purpose {purpose!r}",
                           f"未知密钥用途 {purpose!r}", field="purpose")
    if purpose in keys_by_purpose(ts):
        raise TokenError("TOKEN_ALREADY_ENROLLED",
                         f"token {ts.label!r} already holds a {purpose} key",
                         f"USB-Key {ts.label!r} 已有 {purpose} 密钥", field="label")
    return generate_keypair(ts, spec, KEY_LABELS[purpose])


def build_csr(ts: TokenSession, info: KeyInfo, subject: x509.Name) -> bytes:
    """A PEM CSR signed on the token by the key it asks to certify (proof of possession)."""
    key = private_key_for(ts, info)
    csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(
        key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def install_certificate(ts: TokenSession, purpose: Purpose, cert: x509.Certificate) -> bool:
    """Store a holder certificate beside its key (same CKA_ID and label) and drop the ones it
    replaces. Returns False when that very certificate was already there."""
    keys = keys_by_purpose(ts)
    info = keys.get(purpose)
    key_id = key_id_for(cert.public_key())  # type: ignore[arg-type]
    if info is None or info.id != key_id:
        raise TokenError("CERT_KEY_MISMATCH",
                         f"the certificate does not belong to the {purpose} key on token "
                         f"{ts.label!r}",
                         f"证书与 USB-Key {ts.label!r} 上的 {purpose} 密钥不匹配",
                         field="certificate")
    der = cert.public_bytes(serialization.Encoding.DER)
    existing = _certificates_with_id(ts, key_id)
    if any(value == der for value, _ in existing):
        return False
    write_certificate(ts, cert, label=KEY_LABELS[purpose], id=key_id)
    with lib.lock():
        for value, obj in existing:
            if value != der:
                obj.destroy()
    return True


def _certificates_with_id(ts: TokenSession, key_id: bytes) -> list[tuple[bytes, Any]]:
    with lib.lock():
        objs = list(ts.session().get_objects({Attribute.CLASS: ObjectClass.CERTIFICATE,
                                              Attribute.ID: key_id}))
        return [(bytes(o[Attribute.VALUE]), o) for o in objs]


def install_chain(ts: TokenSession, chain: list[x509.Certificate]) -> list[bytes]:
    """Store the CA chain (issuing first, root last) under clear labels; returns the CKA_IDs
    of the certificates it added, so a failed enrolment can remove exactly those."""
    added: list[bytes] = []
    for position, cert in enumerate(chain):
        if cert.issuer == cert.subject:
            label = CA_LABELS[-1]
        elif position == 0:
            label = CA_LABELS[0]
        else:
            label = f"eseal-ca-{position}"
        ski = key_id_for(cert.public_key())  # type: ignore[arg-type]
        der = cert.public_bytes(serialization.Encoding.DER)
        existing = _certificates_with_id(ts, ski)
        if any(value == der for value, _ in existing):
            continue
        write_certificate(ts, cert, label=label, id=ski)
        added.append(ski)
    return added


def remove_objects(ts: TokenSession, ids: Iterable[bytes]) -> None:
    """Roll back: destroy every object (key halves, certificates) with these CKA_IDs.

    Best effort by design: it runs while another error is already on its way to the caller.
    """
    for key_id in ids:
        with contextlib.suppress(PKCS11Error, TokenError):
            delete_objects(ts, id=key_id)
