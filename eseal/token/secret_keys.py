"""Secret (symmetric) keys on a token, and AES-GCM sealing of small secrets with them.

The CA keeps secrets it must be able to read again later (the SO PINs of the USB-Keys it hands
out) encrypted under an AES-256 key that lives on the CA token: generated there as TOKEN,
PRIVATE, SENSITIVE and never EXTRACTABLE, usable only to encrypt and decrypt. A copied
database is then useless without the CA token and its PIN. Blobs carry a version byte and a
random 96-bit nonce; the associated data binds each blob to what it protects, so a blob cannot
be moved to another row.
"""

from __future__ import annotations

import os

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass
from pkcs11.exceptions import PKCS11Error
from pkcs11.mechanisms import GCMParams

from eseal.errors import InvalidInput, TokenError
from eseal.token import library as lib
from eseal.token.session import TokenSession

BLOB_VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16

_SECRET_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.ENCRYPT: True,
    Attribute.DECRYPT: True,
    Attribute.WRAP: False,
    Attribute.UNWRAP: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
    Attribute.DERIVE: False,
}


def _find(ts: TokenSession, label: str) -> list[pkcs11.SecretKey]:
    with lib.lock():
        return list(ts.session().get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY,
                                              Attribute.LABEL: label}))


def find_secret_key(ts: TokenSession, label: str) -> pkcs11.SecretKey | None:
    """The secret key with this label, ``None`` if there is none; several is an error."""
    found = _find(ts, label)
    if len(found) > 1:
        raise TokenError("KEY_AMBIGUOUS", f"more than one secret key labelled {label!r}",
                         f"有多个标签为 {label!r} 的对称密钥", field="key")
    return found[0] if found else None


def ensure_aes_key(ts: TokenSession, label: str, *, bits: int = 256) -> pkcs11.SecretKey:
    """The AES key with this label, generated on the token (never extractable) if missing.

    ``ts`` must be a read-write session logged in as the user.
    """
    if bits not in (128, 192, 256):
        raise InvalidInput("UNSUPPORTED_KEY_SPEC", f"AES keys have 128, 192 or 256 bits, not "
                           f"{bits}", f"AES 密钥长度须为 128/192/256 位，不能为 {bits}",
                           field="bits")
    with lib.lock():
        key = find_secret_key(ts, label)
        if key is not None:
            return key
        try:
            return ts.session().generate_key(
                KeyType.AES, bits, label=label, id=os.urandom(16), store=True,
                capabilities=MechanismFlag.ENCRYPT | MechanismFlag.DECRYPT,
                template=dict(_SECRET_TEMPLATE))
        except PKCS11Error as exc:
            en, zh = lib.plain_reason(exc)
            raise TokenError("SECRET_KEY_GENERATION_FAILED",
                             f"cannot generate AES key {label!r} on token {ts.label!r}: {en}",
                             f"无法在 {ts.label!r} 上生成对称密钥 {label!r}：{zh}",
                             field="key") from exc


def _key(ts: TokenSession, label: str) -> pkcs11.SecretKey:
    key = find_secret_key(ts, label)  # looked up each time: sealing a secret is rare
    if key is None:
        raise TokenError("KEY_NOT_FOUND", f"no secret key labelled {label!r} on token "
                         f"{ts.label!r}", f"USB-Key {ts.label!r} 上没有对称密钥 {label!r}",
                         field="key")
    return key


def aes_gcm_encrypt(ts: TokenSession, label: str, plaintext: bytes, aad: bytes) -> bytes:
    """``version ‖ nonce ‖ ciphertext ‖ tag`` under the token's AES key ``label``."""
    nonce = os.urandom(NONCE_BYTES)
    with lib.lock():
        key = _key(ts, label)
        try:
            sealed = key.encrypt(plaintext, mechanism=Mechanism.AES_GCM,
                                 mechanism_param=GCMParams(nonce, aad, TAG_BYTES * 8))
        except PKCS11Error as exc:
            en, zh = lib.plain_reason(exc)
            raise TokenError("TOKEN_ENCRYPT_FAILED", f"the token refused to encrypt: {en}",
                             f"USB-Key 加密失败：{zh}") from exc
    return bytes([BLOB_VERSION]) + nonce + bytes(sealed)


def aes_gcm_decrypt(ts: TokenSession, label: str, blob: bytes, aad: bytes) -> bytes:
    """Open a blob made by :func:`aes_gcm_encrypt`; a tampered or moved blob is refused."""
    if len(blob) < 1 + NONCE_BYTES + TAG_BYTES or blob[0] != BLOB_VERSION:
        raise TokenError("SECRET_BLOB_MALFORMED", "the encrypted secret is malformed",
                         "加密数据格式错误", field="blob")
    nonce, sealed = blob[1:1 + NONCE_BYTES], blob[1 + NONCE_BYTES:]
    with lib.lock():
        key = _key(ts, label)
        try:
            return bytes(key.decrypt(sealed, mechanism=Mechanism.AES_GCM,
                                     mechanism_param=GCMParams(nonce, aad, TAG_BYTES * 8)))
        except PKCS11Error as exc:
            raise TokenError("SECRET_BLOB_INVALID",
                             "the encrypted secret does not open with this key (tampered, moved "
                             "or from another CA)",
                             "加密数据无法解开（被篡改、被挪用或来自其他 CA）",
                             field="blob") from exc
