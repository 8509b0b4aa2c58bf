"""Revocation data for a seal, fetched from the service before the token signs.

CRLs for every CA in the chain (``GET {server}/crl/<ca>.crl``) and OCSP for the seal
certificate (``POST {server}/ocsp``), at the URLs the certificates name (CRL distribution
points, AIA) re-based onto the server the holder talks to, so a client behind a proxy or
port-forward works with certificates that name the public address. Fetching first means a
revoked or frozen certificate is refused without a signature, and the data goes into the
seal's own revision (PAdES B-LT).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eseal.errors import EsealError, InvalidInput

if TYPE_CHECKING:
    import httpx
    from cryptography import x509
    from pyhanko_certvalidator import ValidationContext


HTTP_TIMEOUT = 20.0


def _unavailable(code: str, en: str, zh: str, field: str = "server") -> EsealError:
    from eseal.signing.sign import SealServiceUnavailable

    return SealServiceUnavailable(code, en, zh, field=field)


# -- HTTP: timestamps, CRLs, OCSP ------------------------------------------------------------
def rebase(url: str, server: str, marker: str) -> str:
    """``url`` with everything before ``marker`` (e.g. ``/crl/``) replaced by ``server``;
    unchanged when it has no such part (a certificate from someone else's CA)."""
    at = url.rfind(marker)
    if at < 0:
        return url
    return server.rstrip("/") + url[at:]


def _get(client: httpx.Client, url: str, what: str) -> bytes:
    import httpx

    try:
        response = client.get(url)
    except httpx.HTTPError as exc:
        raise _unavailable("SERVICE_UNREACHABLE", f"cannot reach {url} for the {what}: {exc}",
                           f"无法连接 {url} 获取{what}") from exc
    if response.status_code != 200:
        raise _unavailable("REVOCATION_UNAVAILABLE",
                           f"{url} answered HTTP {response.status_code} for the {what}",
                           f"{url} 返回 HTTP {response.status_code}，无法获取{what}")
    return response.content


def _crl_urls(cert: x509.Certificate) -> list[str]:
    from cryptography import x509

    try:
        points = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    except x509.ExtensionNotFound:
        return []
    return [name.value for point in points for name in (point.full_name or [])
            if isinstance(name, x509.UniformResourceIdentifier)]


def _ocsp_urls(cert: x509.Certificate) -> list[str]:
    from cryptography import x509
    from cryptography.x509.oid import AuthorityInformationAccessOID

    try:
        aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    except x509.ExtensionNotFound:
        return []
    return [d.access_location.value for d in aia
            if d.access_method == AuthorityInformationAccessOID.OCSP
            and isinstance(d.access_location, x509.UniformResourceIdentifier)]


def _issuer_of(cert: x509.Certificate, chain: Sequence[x509.Certificate]) -> x509.Certificate:
    for candidate in chain:
        if candidate.subject == cert.issuer:
            return candidate
    raise InvalidInput("CHAIN_INCOMPLETE",
                       f"the issuer of {cert.subject.rfc4514_string()} is not on the USB-Key",
                       "USB-Key 上缺少证书的签发机构证书", field="chain")


def _ocsp(client: httpx.Client, url: str, cert: x509.Certificate,
          issuer: x509.Certificate) -> bytes | None:
    """One OCSP response for ``cert`` (None when the responder gives no usable answer: the
    CRLs still decide; a *revoked* answer is kept and refuses the seal)."""
    import httpx
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509 import ocsp

    request = ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA256()).build()
    try:
        response = client.post(url, content=request.public_bytes(serialization.Encoding.DER),
                               headers={"Content-Type": "application/ocsp-request"})
    except httpx.HTTPError as exc:
        raise _unavailable("SERVICE_UNREACHABLE", f"cannot reach {url} for OCSP: {exc}",
                           f"无法连接 {url} 查询 OCSP") from exc
    if response.status_code != 200:
        return None
    try:
        parsed = ocsp.load_der_ocsp_response(response.content)
    except ValueError:
        return None
    if parsed.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        return None
    return response.content


@dataclass(frozen=True)
class Revinfo:
    crls: tuple[bytes, ...]
    ocsps: tuple[bytes, ...]
    urls: tuple[str, ...]


def fetch_revinfo(client: httpx.Client, server: str, certificate: x509.Certificate,
                  chain: Sequence[x509.Certificate]) -> Revinfo:
    """CRLs for every certificate below the root (and OCSP for the seal certificate) from
    ``server``. A CRL that cannot be fetched refuses the seal (``REVOCATION_UNAVAILABLE``)."""
    from cryptography import x509

    crls: list[bytes] = []
    ocsps: list[bytes] = []
    urls: list[str] = []
    for cert in [certificate, *chain]:
        if cert.subject == cert.issuer:
            continue
        for url in _crl_urls(cert):
            url = rebase(url, server, "/crl/")
            if url in urls:
                continue
            der = _get(client, url, "CRL")
            try:
                x509.load_der_x509_crl(der)
            except ValueError as exc:
                raise _unavailable("REVOCATION_UNAVAILABLE", f"{url} did not return a DER CRL",
                                   f"{url} 返回的不是 DER 格式的 CRL") from exc
            crls.append(der)
            urls.append(url)
    issuer = _issuer_of(certificate, chain)
    for url in _ocsp_urls(certificate)[:1]:
        url = rebase(url, server, "/ocsp")
        answer = _ocsp(client, url, certificate, issuer)
        if answer is not None:
            ocsps.append(answer)
            urls.append(url)
    return Revinfo(tuple(crls), tuple(ocsps), tuple(urls))


def validation_context(chain: Sequence[x509.Certificate], revinfo: Revinfo
                       ) -> ValidationContext:
    """Trust the chain's root; revocation from what was fetched, nothing fetched later."""
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import serialization
    from pyhanko_certvalidator import ValidationContext

    def asn1(cert: x509.Certificate) -> asn1_x509.Certificate:
        return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))

    roots = [c for c in chain if c.subject == c.issuer]
    if not roots:
        raise InvalidInput("CHAIN_INCOMPLETE", "the USB-Key holds no root certificate",
                           "USB-Key 上没有根证书", field="chain")
    return ValidationContext(
        trust_roots=[asn1(r) for r in roots],
        other_certs=[asn1(c) for c in chain if c.subject != c.issuer],
        crls=list(revinfo.crls), ocsps=list(revinfo.ocsps),
        allow_fetching=False, revocation_mode="hard-fail")
