"""The holder's side of a USB-Key: open it with the PIN, sign with the login or the seal key.

The login client (signing a server challenge) and PDF sealing (one signature per seal) both
come through here, so every private-key operation on a holder's token has one code path: one
PIN check that counts wrong tries on the token (``eseal.token.pin``), one process-wide lock
around every PKCS#11 call, and keys handed out as ``cryptography`` private keys
(``TokenECPrivateKey`` / ``TokenRSAPrivateKey``) that pyHanko and cryptography's builders
accept as they are. A ``UsbKey`` may be shared by threads; its keys never leave the token.
"""

from __future__ import annotations

import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from eseal.errors import InvalidInput, TokenError
from eseal.pki.signature import HASHES
from eseal.token import library as lib
from eseal.token.keys import KeyInfo, list_certificates
from eseal.token.pin import PinPolicy
from eseal.token.session import TokenSession
from eseal.token.signer import TokenECPrivateKey, TokenPrivateKey, private_key_for
from eseal.token.usbkey import (
    KEY_LABELS,
    PURPOSES,
    Purpose,
    is_ca_certificate,
    keys_by_purpose,
)

_DIGEST_SIZES = {"sha256": 32, "sha384": 48, "sha512": 64}
_HASHES = HASHES


def _check_purpose(purpose: str) -> Purpose:
    if purpose not in PURPOSES:
        raise InvalidInput("PURPOSE_UNKNOWN", f"unknown key purpose {purpose!r} (login or seal)",
                           f"未知密钥用途 {purpose!r}（login 或 seal）", field="purpose")
    return purpose  # type: ignore[return-value]


class UsbKey:
    """A holder's token opened with the user PIN."""

    def __init__(self, session: TokenSession) -> None:
        self._ts = session
        self._keys: dict[Purpose, TokenPrivateKey] = {}
        self._infos: dict[Purpose, KeyInfo] | None = None
        self._pid = os.getpid()

    @classmethod
    def open(cls, label: str, pin: str, *, policy: PinPolicy | None = None) -> UsbKey:
        """Log in (a wrong PIN counts on the token) and return the opened key."""
        return cls((policy or PinPolicy()).login(label, pin))

    @property
    def label(self) -> str:
        return self._ts.label

    def _after_fork(self) -> None:
        """In a forked child, re-initialise the module before touching a session: the
        inherited sessions are dead, and re-initialising moves the generation on so that
        ours reopens (and logs in again) instead of failing with "not initialized"."""
        if os.getpid() != self._pid:
            lib.library()
            self._pid = os.getpid()

    @property
    def session(self) -> TokenSession:
        return self._ts

    # -- keys -----------------------------------------------------------------------------
    def _key_infos(self) -> dict[Purpose, KeyInfo]:
        self._after_fork()
        if self._infos is None:
            self._infos = keys_by_purpose(self._ts)
        return self._infos

    def has_key(self, purpose: Purpose) -> bool:
        return _check_purpose(purpose) in self._key_infos()

    def key(self, purpose: Purpose) -> TokenPrivateKey:
        """The login or seal key as a ``cryptography`` private key."""
        purpose = _check_purpose(purpose)
        if purpose not in self._keys:
            info = self._key_infos().get(purpose)
            if info is None:
                hint = " (only a legal representative's key holds one)" if purpose == "seal" \
                    else " (is the token enrolled?)"
                what_zh = "签章" if purpose == "seal" else "登录"
                raise TokenError("KEY_NOT_FOUND",
                                 f"token {self.label!r} holds no {purpose} key{hint}",
                                 f"USB-Key {self.label!r} 上没有{what_zh}密钥", field="purpose")
            self._keys[purpose] = private_key_for(self._ts, info)
        return self._keys[purpose]

    def login_key(self) -> TokenPrivateKey:
        return self.key("login")

    def seal_key(self) -> TokenPrivateKey:
        return self.key("seal")

    # -- certificates ---------------------------------------------------------------------
    def certificates(self) -> dict[Purpose, x509.Certificate]:
        """The holder's current certificate for each key on the token."""
        infos = self._key_infos()
        ids = {info.id: purpose for purpose, info in infos.items()}
        found: dict[Purpose, x509.Certificate] = {}
        for stored in list_certificates(self._ts):
            purpose = ids.get(stored.id)
            if purpose is None or is_ca_certificate(stored.certificate):
                continue
            current = found.get(purpose)
            if current is None or (stored.certificate.not_valid_after_utc
                                   > current.not_valid_after_utc):
                found[purpose] = stored.certificate
        return found

    def certificate(self, purpose: Purpose) -> x509.Certificate:
        purpose = _check_purpose(purpose)
        cert = self.certificates().get(purpose)
        if cert is None:
            raise TokenError("CERT_NOT_FOUND",
                             f"token {self.label!r} holds no {purpose} certificate",
                             f"USB-Key {self.label!r} 上没有 {purpose} 证书", field="purpose")
        return cert

    def chain(self) -> list[x509.Certificate]:
        """The CA certificates stored on the token, issuing CA first, root last."""
        self._after_fork()
        cas = [s.certificate for s in list_certificates(self._ts)
               if is_ca_certificate(s.certificate)]
        return sorted(cas, key=lambda c: c.issuer == c.subject)

    # -- signing --------------------------------------------------------------------------
    def sign_digest(self, purpose: Purpose, digest: bytes, *, hash_name: str = "sha256") -> bytes:
        """Sign a digest the caller computed: DER ECDSA, or PKCS#1 v1.5 for RSA keys."""
        if hash_name not in _DIGEST_SIZES:
            raise InvalidInput("UNSUPPORTED_HASH", f"unsupported hash {hash_name!r}",
                               f"不支持的摘要算法 {hash_name!r}", field="hash")
        if len(digest) != _DIGEST_SIZES[hash_name]:
            raise InvalidInput("DIGEST_LENGTH",
                               f"a {hash_name} digest has {_DIGEST_SIZES[hash_name]} bytes, "
                               f"not {len(digest)}",
                               f"{hash_name} 摘要应为 {_DIGEST_SIZES[hash_name]} 字节",
                               field="digest")
        self._after_fork()
        key = self.key(purpose)
        if isinstance(key, TokenECPrivateKey):
            return key.sign_digest(digest)
        return key.sign_digest(digest, hash_name)

    def sign(self, purpose: Purpose, data: bytes, *, hash_name: str = "sha256") -> bytes:
        """Hash ``data`` on the host and sign the digest with the token key."""
        if hash_name not in _HASHES:
            raise InvalidInput("UNSUPPORTED_HASH", f"unsupported hash {hash_name!r}",
                               f"不支持的摘要算法 {hash_name!r}", field="hash")
        h = hashes.Hash(_HASHES[hash_name])
        h.update(data)
        return self.sign_digest(purpose, h.finalize(), hash_name=hash_name)

    # -- lifecycle ------------------------------------------------------------------------
    def close(self) -> None:
        self._keys.clear()
        self._infos = None
        self._ts.close()

    def __enter__(self) -> UsbKey:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sign_with(label: str, pin: str, purpose: Purpose, *, digest: bytes | None = None,
              data: bytes | None = None, hash_name: str = "sha256",
              policy: PinPolicy | None = None) -> bytes:
    """One signature with the login or seal key of a token: open, sign, close."""
    if (digest is None) == (data is None):
        raise InvalidInput("SIGN_INPUT", "give exactly one of digest or data",
                           "digest 与 data 须且只能给出一个", field="digest")
    with UsbKey.open(label, pin, policy=policy) as usbkey:
        if digest is not None:
            return usbkey.sign_digest(purpose, digest, hash_name=hash_name)
        assert data is not None
        return usbkey.sign(purpose, data, hash_name=hash_name)


__all__ = ["KEY_LABELS", "PURPOSES", "Purpose", "UsbKey", "sign_with"]
