"""Custody of the SO PINs of the USB-Keys the CA hands out.

A real USB-Key that locked itself after too many wrong PINs can only be unblocked with its
security-officer (SO) PIN, and issuing CAs keep those PINs so that an officer can help a
holder who forgot theirs. eseal keeps each one in the ``tokens`` table, encrypted with
AES-256-GCM under ``so-pin-kek``: a key generated on the CA token that never leaves it. The
associated data names the token, so a blob copied onto another row does not open. Every use
of a kept SO PIN is an officer action and is audited; the PIN itself is never logged or shown.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from eseal import clock
from eseal.errors import Conflict, NotFound
from eseal.store.models import TokenRecord
from eseal.token.secret_keys import aes_gcm_decrypt, aes_gcm_encrypt, ensure_aes_key

if TYPE_CHECKING:
    from eseal.ca.authority import Authority

KEK_LABEL = "so-pin-kek"
_AAD_PREFIX = b"eseal-so-pin-v1\x00"


def _aad(label: str) -> bytes:
    return _AAD_PREFIX + label.encode("utf-8")


def encrypt_so_pin(auth: Authority, label: str, so_pin: str) -> bytes:
    """Encrypt an SO PIN for the token ``label`` on the CA token (creating the KEK once)."""
    ts = auth.ca_session
    ensure_aes_key(ts, KEK_LABEL)
    return aes_gcm_encrypt(ts, KEK_LABEL, so_pin.encode("utf-8"), _aad(label))


def decrypt_so_pin(auth: Authority, label: str, blob: bytes) -> str:
    return aes_gcm_decrypt(auth.ca_session, KEK_LABEL, blob, _aad(label)).decode("utf-8")


def token_record(auth: Authority, label: str) -> TokenRecord | None:
    with auth.db.read() as s:
        return s.get(TokenRecord, label)


def check_label_free(auth: Authority, label: str) -> None:
    """Refuse a label the CA's records already hold (a token once handed out under it)."""
    if token_record(auth, label) is not None:
        raise Conflict("TOKEN_LABEL_IN_USE",
                       f"the CA already has a record of a token labelled {label!r}",
                       f"CA 已有标签为 {label!r} 的 USB-Key 记录", field="label")


def keep_so_pin(auth: Authority, label: str, so_pin: str, *, actor: str,
                generated: bool) -> None:
    """Record a new token and its encrypted SO PIN (one audited transaction)."""
    blob = encrypt_so_pin(auth, label, so_pin)
    with auth.change(actor=actor, action="token.provision", target=label,
                     details={"so_pin": "generated" if generated else "given"}) as s:
        if s.get(TokenRecord, label) is not None:
            raise Conflict("TOKEN_LABEL_IN_USE",
                           f"the CA already has a record of a token labelled {label!r}",
                           f"CA 已有标签为 {label!r} 的 USB-Key 记录", field="label")
        s.add(TokenRecord(label=label, so_pin_encrypted=blob, created_at=clock.now()))


def kept_so_pin(auth: Authority, label: str, *, actor: str, purpose: str) -> str:
    """The SO PIN the CA keeps for ``label``; the access is audited (refusals too)."""
    details = {"purpose": purpose}

    def load() -> bytes:
        with auth.db.read() as s:
            blob = s.execute(select(TokenRecord.so_pin_encrypted)
                             .where(TokenRecord.label == label)).scalar_one_or_none()
        if blob is None:
            raise NotFound("SO_PIN_NOT_KEPT",
                           f"the CA keeps no SO PIN for token {label!r}: give --so-pin",
                           f"CA 未保管 USB-Key {label!r} 的管理员 PIN：请使用 --so-pin",
                           field="so_pin")
        return bytes(blob)

    blob = auth.refusing(load, actor=actor, action="token.so_pin.use", target=label,
                         details=details)
    so_pin = auth.refusing(lambda: decrypt_so_pin(auth, label, blob), actor=actor,
                           action="token.so_pin.use", target=label, details=details)
    with auth.change(actor=actor, action="token.so_pin.use", target=label,
                     details=details):
        pass
    return so_pin
