"""Which USB-Keys are plugged in, and what the consent window shows about them — no PIN.

The native host answers ``status`` from here and picks the token an operation uses: the one
the holder chose in the consent window, or the only one holding the key the operation needs
(the login key to log in, the seal key to seal). Certificates are public objects, so all of
this is read without logging in; a key pulled out mid-flow is simply absent next time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.x509.oid import NameOID

from eseal.errors import EsealError, TokenError
from eseal.pki.identity import uscc_of_name
from eseal.settings import default_pkcs11_module
from eseal.token import configure
from eseal.token import library as lib
from eseal.token.keys import list_certificates
from eseal.token.pin import PinPolicy
from eseal.token.session import TokenSession
from eseal.token.usbkey import Purpose, is_ca_certificate, keys_by_purpose


def setup() -> None:
    """Point this process at the PKCS#11 module (``ESEAL_PKCS11_MODULE`` or the default)
    and SoftHSM's configuration (``SOFTHSM2_CONF``), and look at the slots afresh."""
    configure(os.environ.get("ESEAL_PKCS11_MODULE") or default_pkcs11_module(),
              os.environ.get("SOFTHSM2_CONF") or None)
    lib.refresh()


def _name(cert: x509.Certificate, oid: x509.ObjectIdentifier) -> str | None:
    values = cert.subject.get_attributes_for_oid(oid)
    return str(values[0].value) if values else None


@dataclass(frozen=True)
class KeyView:
    """One token as the holder sees it."""

    label: str
    certificates: dict[Purpose, x509.Certificate]
    locked: bool
    tries_left: int
    max_tries: int

    @property
    def holder(self) -> str | None:
        cert = self.certificates.get("login") or self.certificates.get("seal")
        return _name(cert, NameOID.COMMON_NAME) if cert else None

    @property
    def enterprise(self) -> str | None:
        cert = self.certificates.get("seal") or self.certificates.get("login")
        return _name(cert, NameOID.ORGANIZATION_NAME) if cert else None

    @property
    def uscc(self) -> str | None:
        cert = self.certificates.get("seal") or self.certificates.get("login")
        return uscc_of_name(cert.subject) if cert else None

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "holder": self.holder, "enterprise": self.enterprise,
                "uscc": self.uscc, "locked": self.locked, "tries_left": self.tries_left,
                "max_tries": self.max_tries, "keys": sorted(self.certificates),
                "certificates": [
                    {"purpose": p, "serial": format(c.serial_number, "x"),
                     "subject": c.subject.rfc4514_string(),
                     "not_after": c.not_valid_after_utc.isoformat()}
                    for p, c in sorted(self.certificates.items())]}


def view(label: str) -> KeyView:
    """Read one token's holder certificates and PIN state without a PIN."""
    state = PinPolicy().state(label)
    ts = TokenSession(label, None, rw=True)
    try:
        infos = keys_by_purpose(ts)
        stored = list_certificates(ts)
    finally:
        ts.close()
    ids = {info.id: purpose for purpose, info in infos.items()}
    found: dict[Purpose, x509.Certificate] = {}
    for s in stored:
        purpose = ids.get(s.id)
        if purpose is None or is_ca_certificate(s.certificate):
            continue
        current = found.get(purpose)
        if current is None or s.certificate.not_valid_after_utc > current.not_valid_after_utc:
            found[purpose] = s.certificate
    return KeyView(label, found, state.locked, state.tries_left, state.max_tries)


def all_keys() -> list[KeyView]:
    """Every eseal USB-Key present (tokens without eseal keys are left out)."""
    views = []
    for label in lib.token_labels():
        try:
            v = view(label)
        except EsealError:
            continue  # pulled out while we looked, or not readable: not offered
        if v.certificates:
            views.append(v)
    return views


def choose(label: Any, purpose: Purpose) -> KeyView:
    """The token to use for ``purpose``: the one named, or the only one with that key."""
    if label is not None:
        if not isinstance(label, str) or not label or len(label) > 32:
            raise TokenError("TOKEN_LABEL_INVALID", "the token label must be 1-32 characters",
                             "USB-Key 标签应为 1 到 32 个字符", field="token")
        try:
            chosen = view(label)
        except EsealError:
            raise TokenError("TOKEN_NOT_PRESENT",
                             f"USB-Key {label!r} is not plugged in (was it pulled out?)",
                             f"未检测到 USB-Key {label!r}（是否已拔出？）", field="token") from None
        candidates = [chosen] if purpose in chosen.certificates else []
    else:
        candidates = [v for v in all_keys() if purpose in v.certificates]
    what, what_zh = ("seal", "签章") if purpose == "seal" else ("login", "登录")
    if not candidates:
        raise TokenError("KEY_NOT_FOUND",
                         f"no plugged-in USB-Key holds a {what} key and certificate"
                         + (" (only a legal representative's key can seal)"
                            if purpose == "seal" else ""),
                         f"未检测到带有{what_zh}密钥和证书的 USB-Key", field="token")
    if len(candidates) > 1:
        raise TokenError("TOKEN_CHOICE_REQUIRED", "several USB-Keys are plugged in: choose one",
                         "插入了多个 USB-Key，请选择一个", field="token",
                         details={"tokens": [c.label for c in candidates]})
    return candidates[0]
