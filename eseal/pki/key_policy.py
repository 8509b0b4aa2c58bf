"""Key policy: which subject keys eseal certifies, and the token key spec of each.

RSA of at least 2048 bits, EC on P-256 or P-384; everything else (Ed25519, DSA, other
curves) is refused with a code naming why. Pure: the CA checks CSRs with it before
issuing, and the holder uses ``key_spec_of`` to make a new key of the old key's type.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, rsa

from eseal.errors import InvalidInput

RSA_MIN_BITS = 2048
ALLOWED_CURVES = {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}


def check_key_policy(public_key: Any) -> None:
    """Refuse subject keys eseal will not certify: RSA below 2048 bits, curves other than
    P-256/P-384, and every other key type (Ed25519, DSA, ...)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < RSA_MIN_BITS:
            raise InvalidInput(
                "KEY_TOO_WEAK",
                f"RSA keys must have at least {RSA_MIN_BITS} bits, this one has "
                f"{public_key.key_size}",
                f"RSA 密钥至少需要 {RSA_MIN_BITS} 位，当前为 {public_key.key_size} 位",
                field="public_key", details={"key_size": public_key.key_size})
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in ALLOWED_CURVES:
            raise InvalidInput(
                "KEY_CURVE_UNSUPPORTED",
                f"elliptic curve {public_key.curve.name} is not supported (only P-256 and P-384)",
                f"不支持椭圆曲线 {public_key.curve.name}（仅支持 P-256 与 P-384）",
                field="public_key", details={"curve": public_key.curve.name})
        return
    raise InvalidInput("KEY_TYPE_UNSUPPORTED",
                       f"key type {type(public_key).__name__} is not supported (EC P-256/P-384 or "
                       f"RSA of at least {RSA_MIN_BITS} bits)",
                       "不支持该密钥类型（仅支持 EC P-256/P-384 或至少 2048 位的 RSA）",
                       field="public_key")


def key_spec_of(public_key: Any) -> str:
    """``ec-p256``, ``ec-p384`` or ``rsa-<bits>`` for an allowed key (after the key policy)."""
    check_key_policy(public_key)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return ALLOWED_CURVES[public_key.curve.name]
    return f"rsa-{public_key.key_size}"
