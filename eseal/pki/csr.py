"""Reading certificate signing requests strictly: one PEM (or DER) CSR and nothing else.

A CSR is the holder's proof of possession; a CA that tolerated trailing junk or a broken
signature would certify keys nobody proved to hold.
"""

from __future__ import annotations

import re

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from eseal.errors import InvalidInput

_PEM = re.compile(
    rb"\A\s*-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----\r?\n"
    rb"(?P<body>[A-Za-z0-9+/=\r\n]+)"
    rb"-----END (?:NEW )?CERTIFICATE REQUEST-----\s*\Z"
)


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Parse a CSR; refuse garbage, trailing data and a signature that does not verify."""
    if not data or not data.strip():
        raise InvalidInput("CSR_EMPTY", "the CSR is empty", "证书请求为空", field="csr")
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            if not _PEM.match(data):
                raise InvalidInput(
                    "CSR_TRAILING_DATA",
                    "the CSR file must hold exactly one PEM CSR and nothing else",
                    "证书请求文件只能包含一个 PEM 格式请求，不能有其他内容",
                    field="csr",
                )
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
    except InvalidInput:
        raise
    except ValueError as exc:
        raise InvalidInput("CSR_MALFORMED", "the CSR cannot be parsed",
                           "证书请求无法解析", field="csr") from exc
    try:
        key = csr.public_key()
    except (ValueError, TypeError) as exc:
        raise InvalidInput("KEY_CURVE_UNSUPPORTED",
                           "the CSR's public key uses an unsupported algorithm or curve",
                           "证书请求的公钥算法或曲线不受支持", field="csr") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey):
        raise InvalidInput("KEY_TYPE_UNSUPPORTED", "only EC and RSA keys are accepted",
                           "仅接受 EC 或 RSA 密钥", field="csr")
    try:
        valid = csr.is_signature_valid
    except Exception as exc:  # unsupported signature algorithms raise on access
        raise InvalidInput("CSR_BAD_SIGNATURE", "the CSR signature cannot be checked",
                           "无法验证证书请求的签名", field="csr") from exc
    if not valid:
        raise InvalidInput("CSR_BAD_SIGNATURE",
                           "the CSR signature does not verify (no proof of possession)",
                           "证书请求签名验证失败（无法证明持有私钥）", field="csr")
    return csr
