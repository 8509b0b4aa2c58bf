"""Token keys presented as ``cryptography`` private keys.

``cryptography``'s certificate, CSR, CRL and OCSP builders accept any object that subclasses
``ec.EllipticCurvePrivateKey`` / ``rsa.RSAPrivateKey`` and implements ``sign()``. These adapters
hash on the host and ask the token for exactly one raw signature, so the CA signs with keys
that never leave the token. SoftHSM 2.6 has no ``CKM_ECDSA_SHA256``: we hash here and use
``CKM_ECDSA``, then DER-encode r‖s. Everything that would reveal the key raises.
"""

from __future__ import annotations

from typing import Any, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, encode_dss_signature
from pkcs11 import MGF, Mechanism
from pkcs11.exceptions import PKCS11Error

from eseal.errors import InvalidInput, TokenError
from eseal.token import library as lib
from eseal.token.keys import KeyInfo, PublicKey, find_private_key, public_key
from eseal.token.session import TokenSession, blame

_RSA_PKCS1 = {
    "sha256": Mechanism.SHA256_RSA_PKCS,
    "sha384": Mechanism.SHA384_RSA_PKCS,
    "sha512": Mechanism.SHA512_RSA_PKCS,
}
_RSA_PSS = {
    "sha256": (Mechanism.SHA256_RSA_PKCS_PSS, Mechanism.SHA256, MGF.SHA256),
    "sha384": (Mechanism.SHA384_RSA_PKCS_PSS, Mechanism.SHA384, MGF.SHA384),
    "sha512": (Mechanism.SHA512_RSA_PKCS_PSS, Mechanism.SHA512, MGF.SHA512),
}
# DigestInfo prefixes for signing an already-computed digest with CKM_RSA_PKCS.
_DIGEST_INFO = {
    "sha256": bytes.fromhex("3031300d060960864801650304020105000420"),
    "sha384": bytes.fromhex("3041300d060960864801650304020205000430"),
    "sha512": bytes.fromhex("3051300d060960864801650304020305000440"),
}


def _refuse(what: str) -> NoReturn:
    raise TokenError("KEY_NOT_EXTRACTABLE", f"a token key cannot {what}",
                     f"USB-Key 内的私钥不能{what}")


def _digest(data: bytes, algorithm: Any) -> tuple[bytes, str]:
    if isinstance(algorithm, Prehashed):
        return data, algorithm._algorithm.name
    if not isinstance(algorithm, hashes.HashAlgorithm):
        raise InvalidInput("UNSUPPORTED_HASH", "unsupported hash algorithm", "不支持的摘要算法")
    h = hashes.Hash(algorithm)
    h.update(data)
    return h.finalize(), algorithm.name


class _TokenKeyMixin:
    """Shared state: which token session and which CKA_ID to sign with."""

    _ts: TokenSession
    _key_id: bytes
    _public: PublicKey

    def _handle(self) -> Any:
        return self._ts.cached(("private", self._key_id),
                               lambda: find_private_key(self._ts, id=self._key_id))

    def _sign_raw(self, data: bytes, mechanism: Mechanism, param: Any = None) -> bytes:
        with lib.lock():
            try:
                return self._ts.run(lambda _session: self._handle().sign(
                    data, mechanism=mechanism, mechanism_param=param))
            except PKCS11Error as exc:
                raise blame(self._ts, TokenError(
                    "TOKEN_SIGN_FAILED", f"the token refused to sign: {lib.plain_reason(exc)[0]}",
                    f"USB-Key 签名失败：{lib.plain_reason(exc)[1]}")) from exc

    @property
    def key_id(self) -> bytes:
        return self._key_id

    @property
    def token_label(self) -> str:
        return self._ts.label

    def private_bytes(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("be exported")

    def private_numbers(self) -> NoReturn:
        _refuse("reveal its numbers")

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        return self


class TokenECPrivateKey(_TokenKeyMixin, ec.EllipticCurvePrivateKey):
    def __init__(self, ts: TokenSession, key_id: bytes, public: ec.EllipticCurvePublicKey):
        self._ts, self._key_id, self._public = ts, key_id, public

    @property
    def curve(self) -> ec.EllipticCurve:
        return self._public.curve

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> ec.EllipticCurvePublicKey:
        return self._public  # type: ignore[return-value]

    def sign_digest(self, digest: bytes) -> bytes:
        """DER ECDSA signature over a digest computed by the caller."""
        raw = self._sign_raw(digest, Mechanism.ECDSA)
        half = len(raw) // 2
        return encode_dss_signature(int.from_bytes(raw[:half], "big"),
                                    int.from_bytes(raw[half:], "big"))

    def sign(self, data: bytes, signature_algorithm: ec.EllipticCurveSignatureAlgorithm) -> bytes:
        if not isinstance(signature_algorithm, ec.ECDSA):
            raise InvalidInput("UNSUPPORTED_ALGORITHM", "only ECDSA is supported",
                               "仅支持 ECDSA")
        digest, _ = _digest(data, signature_algorithm.algorithm)
        return self.sign_digest(digest)

    def exchange(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("be used for key agreement")


class TokenRSAPrivateKey(_TokenKeyMixin, rsa.RSAPrivateKey):
    def __init__(self, ts: TokenSession, key_id: bytes, public: rsa.RSAPublicKey):
        self._ts, self._key_id, self._public = ts, key_id, public

    @property
    def key_size(self) -> int:
        return self._public.key_size

    def public_key(self) -> rsa.RSAPublicKey:
        return self._public  # type: ignore[return-value]

    def sign_digest(self, digest: bytes, hash_name: str = "sha256") -> bytes:
        """PKCS#1 v1.5 signature over a digest computed by the caller."""
        return self._sign_raw(_DIGEST_INFO[hash_name] + digest, Mechanism.RSA_PKCS)

    def sign(self, data: bytes, padding_: padding.AsymmetricPadding, algorithm: Any) -> bytes:
        if isinstance(algorithm, Prehashed) and isinstance(padding_, padding.PKCS1v15):
            return self.sign_digest(data, algorithm._algorithm.name)
        name = algorithm.name if isinstance(algorithm, hashes.HashAlgorithm) else None
        if isinstance(padding_, padding.PKCS1v15) and name in _RSA_PKCS1:
            return self._sign_raw(data, _RSA_PKCS1[name])
        if isinstance(padding_, padding.PSS) and name in _RSA_PSS:
            mech, hash_mech, mgf = _RSA_PSS[name]
            salt = padding_._salt_length
            if not isinstance(salt, int):
                salt = algorithm.digest_size
            return self._sign_raw(data, mech, (hash_mech, mgf, salt))
        raise InvalidInput("UNSUPPORTED_ALGORITHM", "unsupported RSA padding or hash",
                           "不支持的 RSA 填充或摘要算法")

    def decrypt(self, *args: Any, **kwargs: Any) -> NoReturn:
        _refuse("decrypt")


TokenPrivateKey = TokenECPrivateKey | TokenRSAPrivateKey


def token_private_key(ts: TokenSession, key_id: bytes,
                      public: PublicKey | None = None) -> TokenPrivateKey:
    """Wrap the key with this CKA_ID; the public half is read from the token if not given."""
    pub = public if public is not None else public_key(ts, key_id)
    if isinstance(pub, ec.EllipticCurvePublicKey):
        return TokenECPrivateKey(ts, key_id, pub)
    return TokenRSAPrivateKey(ts, key_id, pub)


def private_key_for(ts: TokenSession, info: KeyInfo) -> TokenPrivateKey:
    return token_private_key(ts, info.id, info.public_key)
