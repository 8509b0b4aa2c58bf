"""The re-key proof: the bytes a holder's *old* key signs to ask for a certificate of a new
key, shared by the holder (``eseal.holder``) and the RA (``eseal.ra.rekey``).

SHA-256 over ``b"eseal-rekey-v1\\x00" ‖ CSR DER``: the label separates it from login
challenges and seals, so none can be replayed as a re-key proof, nor the reverse.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from eseal.errors import InvalidInput
from eseal.pki.csr import load_csr
from eseal.pki.signature import verify_signature

REKEY_LABEL = b"eseal-rekey-v1\x00"


def rekey_message(csr_der: bytes) -> bytes:
    """The bytes whose SHA-256 the *old* key signs to ask for a certificate of the CSR's key:
    a domain-separation label (so no login challenge or seal can be replayed as a re-key
    proof, nor the reverse) followed by the CSR exactly as DER."""
    return REKEY_LABEL + csr_der


def rekey_digest(csr_der: bytes) -> bytes:
    """SHA-256 of ``rekey_message``: what the client's old key signs, and what is checked."""
    return hashlib.sha256(rekey_message(csr_der)).digest()


def csr_der(csr_pem_or_der: bytes) -> bytes:
    """The CSR as DER (the re-key proof covers DER, whatever the transport carried)."""
    return load_csr(csr_pem_or_der).public_bytes(serialization.Encoding.DER)


def verify_rekey_proof(old_certificate: x509.Certificate, csr_der_bytes: bytes,
                       proof: bytes) -> None:
    """Check that the old certificate's key signed ``rekey_digest(csr_der_bytes)``
    (ECDSA, or RSA PKCS#1 v1.5, over the SHA-256 digest)."""
    digest = rekey_digest(csr_der_bytes)
    try:
        verify_signature(old_certificate, proof, digest, prehashed=True)
    except (InvalidSignature, ValueError, TypeError):
        raise InvalidInput("REKEY_PROOF_INVALID",
                           "the re-key proof is not a signature by the current certificate's "
                           "key over this CSR",
                           "换密钥证明无效：不是当前证书密钥对该证书请求的签名",
                           field="proof") from None
