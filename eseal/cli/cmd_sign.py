"""``eseal sign``: apply the enterprise's electronic seal to a PDF with the holder's USB-Key.

This is the relying party's *client* side: it runs on the legal representative's machine,
where there is a USB-Key but no CA. It opens the token with the holder's PIN (the only
private-key operation is one signature by the seal key, through ``eseal.token.client``),
draws the seal from the registered name and credit code in the seal certificate, and reaches
the service only over HTTP (``--server``, default the home's base URL):

* ``POST {server}/tsa`` for the signature timestamp (B-T and above) and the document
  timestamp (B-LTA);
* ``GET {server}/crl/<ca>.crl`` for every CA in the chain and ``POST {server}/ocsp`` for the
  seal certificate, fetched *before* the token is asked to sign, so a revoked or frozen
  certificate is refused without a signature and the revocation data goes into the seal's own
  revision (B-LT).

The URLs come from the certificates' CRL distribution points and AIA, re-based onto
``--server`` (so a client behind a proxy or port-forward works with certificates that name
the public address). The CA token is never opened: the command does not touch the home's
database or its CA PIN, and works from a "client home" that only holds the user's token.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from eseal.cli.common import echo_json, home_option, read_secret
from eseal.errors import EsealError, InvalidInput

if TYPE_CHECKING:
    import httpx
    from cryptography import x509
    from pyhanko_certvalidator import ValidationContext

    from eseal.signing.sign import SealOptions
    from eseal.token.client import UsbKey

HTTP_TIMEOUT = 20.0
LEVEL_CHOICES = ("B-B", "B-T", "B-LT", "B-LTA")


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


def http_timestamper(client: httpx.Client, url: str) -> Any:
    """A pyHanko ``TimeStamper`` that posts RFC 3161 requests to ``url`` with httpx."""
    import asyncio

    import httpx
    from asn1crypto import tsp
    from pyhanko.sign.timestamps import TimeStamper
    from pyhanko.sign.timestamps.common_utils import TimestampRequestError

    class HttpxTimeStamper(TimeStamper):
        async def async_request_tsa_response(self, req: tsp.TimeStampReq) -> tsp.TimeStampResp:
            def post() -> bytes:
                try:
                    response = client.post(url, content=req.dump(), headers={
                        "Content-Type": "application/timestamp-query"})
                except httpx.HTTPError as exc:
                    raise TimestampRequestError(f"cannot reach {url}: {exc}") from exc
                if response.status_code != 200 or response.headers.get(
                        "content-type", "").split(";")[0] != "application/timestamp-reply":
                    raise TimestampRequestError(
                        f"{url} answered HTTP {response.status_code} "
                        f"({response.headers.get('content-type', 'no content type')})")
                return response.content

            body = await asyncio.to_thread(post)
            try:
                parsed = tsp.TimeStampResp.load(body)
                status = parsed["status"]["status"].native
                has_token = bool(parsed["time_stamp_token"].contents)
            except (ValueError, TypeError, KeyError) as exc:
                raise TimestampRequestError(f"{url} refused the timestamp request") from exc
            if status not in ("granted", "granted_with_mods") or not has_token:
                raise TimestampRequestError(f"{url} refused the timestamp request ({status})")
            # Hand the token on unparsed: a fully parsed asn1crypto tree (``.native``) is
            # deep-copied when pyHanko embeds it, which cost ~0.3 s per timestamp.
            return parsed

    return HttpxTimeStamper()


# -- the seal ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SealResult:
    sealed: bytes
    certificate_serial: str
    enterprise: str | None
    credit_code: str | None
    level: str
    services: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"sha256": hashlib.sha256(self.sealed).hexdigest(), "bytes": len(self.sealed),
                "certificate_serial": self.certificate_serial, "enterprise": self.enterprise,
                "credit_code": self.credit_code, "level": self.level,
                "services": list(self.services)}


def seal_image_for(certificate: x509.Certificate, *, title: str | None = None,
                   size_px: int = 600) -> bytes:
    """The seal drawn from the certificate's registered name (O) and credit code."""
    from cryptography.x509.oid import NameOID

    from eseal.pki.identity import uscc_of_name
    from eseal.signing.seal_image import SealSpec, render_seal

    names = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    if not names:
        raise InvalidInput("SEAL_CERT_NO_NAME",
                           "the seal certificate names no enterprise (subject O)",
                           "印章证书中没有企业名称（O）", field="certificate")
    uscc = uscc_of_name(certificate.subject)
    return render_seal(SealSpec(name=str(names[0].value), uscc=uscc, title=title,
                                size_px=size_px))


def seal_with_usbkey(pdf: bytes, *, usbkey: UsbKey, options: SealOptions, server: str,
                     title: str | None = None, client: httpx.Client | None = None
                     ) -> SealResult:
    """Seal ``pdf`` with the seal key on an opened USB-Key, services reached at ``server``."""
    import httpx
    from cryptography.x509.oid import NameOID

    from eseal.pki.identity import uscc_of_name
    from eseal.signing.sign import seal_pdf

    _check_server(server)
    key = usbkey.seal_key()
    certificate = usbkey.certificate("seal")
    chain = usbkey.chain()
    png = seal_image_for(certificate, title=title)
    owned = client is None
    http = client or httpx.Client(timeout=HTTP_TIMEOUT, follow_redirects=False)
    try:
        used: list[str] = []
        context = None
        stamper = None
        if options.level != "B-B":
            stamper = http_timestamper(http, f"{server.rstrip('/')}/tsa")
            used.append(f"{server.rstrip('/')}/tsa")
        if options.level in ("B-LT", "B-LTA"):
            revinfo = fetch_revinfo(http, server, certificate, chain)
            context = validation_context(chain, revinfo)
            used.extend(revinfo.urls)
        sealed = seal_pdf(pdf, key=key, certificate=certificate, chain=chain,  # type: ignore[arg-type]
                          options=options, seal_png=png, timestamper=stamper,
                          validation_context=context)
    finally:
        if owned:
            http.close()
    org = certificate.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return SealResult(
        sealed=sealed, certificate_serial=format(certificate.serial_number, "x"),
        enterprise=str(org[0].value) if org else None,
        credit_code=uscc_of_name(certificate.subject),
        level=options.level, services=tuple(used))


def _check_server(server: str) -> None:
    if not server.startswith(("http://", "https://")) or any(c.isspace() for c in server):
        raise InvalidInput("SERVER_URL_INVALID",
                           f"--server must be an http(s) URL, got {server!r}",
                           f"--server 必须是 http(s) 地址：{server!r}", field="server")


def parse_position(text: str | None) -> tuple[float, float] | None:
    """``--at X,Y`` in PDF points (lower-left corner of the seal)."""
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        x, y = (float(p) for p in parts)
    except ValueError as exc:
        raise InvalidInput("POSITION_INVALID", f"--at takes X,Y in points, got {text!r}",
                           f"--at 应为“X,Y”（单位：磅）：{text!r}", field="position") from exc
    return x, y


def build_options(*, page: int, at: str | None, field_name: str | None, reason: str | None,
                  location: str | None, level: str, certify: bool, size_pt: float
                  ) -> SealOptions:
    from eseal.signing.sign import SealOptions

    if at is not None and field_name is not None:
        raise InvalidInput("PLACEMENT_CONFLICT", "give either --at or --field, not both",
                           "--at 与 --field 只能指定其一", field="position")
    return SealOptions(page=page, position=parse_position(at), field_name=field_name,
                       size_pt=size_pt, reason=reason, location=location,
                       level=level, certify=certify)  # type: ignore[arg-type]


def read_pdf(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput("FILE_UNREADABLE", f"cannot read {path}: {exc.strerror}",
                           f"无法读取文件 {path}", field="file") from exc


def quiet_pyhanko() -> None:
    """pyHanko warns (to stderr, through logging's last resort) that revocation data is
    embedded "but fetching is not allowed": here that is the design (everything was fetched
    from --server first), not news for the user."""
    import logging

    for name in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).addHandler(logging.NullHandler())


def configure_client_tokens(home: str | None) -> Any:
    """Settings of the (client) home, with the PKCS#11 layer pointed at its tokens."""
    from eseal.ca.authority import configure_tokens
    from eseal.settings import load_settings

    settings = load_settings(home)
    configure_tokens(settings)
    return settings


def seal_options(f: Any) -> Any:
    """The placement and level options shared by ``eseal sign`` and ``eseal filing seal``."""
    for decorator in reversed([
        click.option("--token", "label", required=True, help="label of the holder's USB-Key"),
        click.option("--pin", default=None, help="USB-Key PIN (prefer --pin-stdin or the prompt)"),
        click.option("--pin-stdin", is_flag=True, help="read the PIN from one line of stdin"),
        click.option("--page", default=1, show_default=True, type=int, help="1-based page"),
        click.option("--at", default=None, metavar="X,Y",
                     help="lower-left corner of the seal in points (default: bottom right)"),
        click.option("--field", "field_name", default=None,
                     help="seal this (empty) signature field, or create it"),
        click.option("--reason", default=None, help="reason, e.g. 同意"),
        click.option("--location", default=None, help="where the seal was applied"),
        click.option("--level", default="B-LT", show_default=True,
                     type=click.Choice(LEVEL_CHOICES), help="PAdES baseline level"),
        click.option("--certify", is_flag=True,
                     help="certify the document (first seal only; later seals stay allowed)"),
        click.option("--size", "size_pt", default=120.0, show_default=True, type=float,
                     help="seal size in points"),
        click.option("--title", default=None, help="seal title below the star (e.g. 合同专用章)"),
        click.option("--server", default=None,
                     help="eseal service for /tsa, CRLs and OCSP (default: the home's base URL)"),
    ]):
        f = decorator(f)
    return f


@click.command("sign")
@home_option
@click.argument("input_pdf", metavar="IN.pdf", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="sealed PDF to write")
@seal_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def command(home: str | None, input_pdf: Path, output: Path, label: str, pin: str | None,
            pin_stdin: bool, page: int, at: str | None, field_name: str | None,
            reason: str | None, location: str | None, level: str, certify: bool,
            size_pt: float, title: str | None, server: str | None, as_json: bool) -> None:
    """Seal IN.pdf with the USB-Key's seal key (PAdES, default B-LT) and write OUT.pdf."""
    from eseal.cli.cmd_seal import write_atomically
    from eseal.token.client import UsbKey

    quiet_pyhanko()
    options = build_options(page=page, at=at, field_name=field_name, reason=reason,
                            location=location, level=level, certify=certify, size_pt=size_pt)
    pdf = read_pdf(input_pdf)
    settings = configure_client_tokens(home)
    base = server or settings.base_url
    _check_server(base)
    secret = read_secret(pin, pin_stdin, "USB-Key PIN")
    with UsbKey.open(label, secret) as usbkey:
        result = seal_with_usbkey(pdf, usbkey=usbkey, options=options, server=base,
                                  title=title)
    write_atomically(output, result.sealed)
    if as_json:
        echo_json({"file": str(output), **result.to_dict()})
        return
    click.echo(f"sealed {input_pdf} -> {output}: {result.level}, seal of "
               f"{result.enterprise} ({result.credit_code}), certificate "
               f"{result.certificate_serial}")
    if result.services:
        click.echo(f"  services: {', '.join(result.services)}", file=sys.stdout)
