"""The one signature-verify switch: EC (ECDSA) or RSA (PKCS#1 v1.5) by the key's type.

Why one place: login answers, re-key proofs and token self-checks all ask "did this
certificate's key sign these bytes?". Two hand-written EC/RSA switches drift (one accepted
other key types, one did not); here any other key type is refused outright.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

HASHES: dict[str, hashes.HashAlgorithm] = {
    "sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512()}


def verify_signature(signer: x509.Certificate | Any, signature: bytes, data: bytes, *,
                     hash_name: str = "sha256", prehashed: bool = False) -> None:
    """Check that ``signer`` (a certificate or a public key) signed ``data``.

    ``prehashed=True`` means ``data`` is already the digest (the re-key proof signs a
    SHA-256 digest). Raises ``cryptography.exceptions.InvalidSignature`` when the signature
    does not verify or the key is neither EC nor RSA; ``KeyError`` for an unknown hash name.
    """
    public: Any = signer.public_key() if isinstance(signer, x509.Certificate) else signer
    algorithm: Any = HASHES[hash_name]
    if prehashed:
        algorithm = Prehashed(algorithm)
    if isinstance(public, ec.EllipticCurvePublicKey):
        public.verify(signature, data, ec.ECDSA(algorithm))
    elif isinstance(public, rsa.RSAPublicKey):
        public.verify(signature, data, padding.PKCS1v15(), algorithm)
    else:
        raise InvalidSignature


__all__ = ["HASHES", "verify_signature"]
