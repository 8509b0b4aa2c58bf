"""Sealing a PDF on the holder's machine: one signature by the USB-Key's seal key.

Draws the seal from the registered name and credit code in the seal certificate, fetches
revocation data (``eseal.holder.revinfo``) and timestamps from the service over HTTP, and
asks the token for exactly one signature (``eseal.token.client``). The CA token and database
are never touched, so this works from a "client home" that only holds the user's token.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from eseal.errors import InvalidInput
from eseal.holder.revinfo import HTTP_TIMEOUT, fetch_revinfo, validation_context

if TYPE_CHECKING:
    import httpx
    from cryptography import x509

    from eseal.signing.sign import SealOptions
    from eseal.token.client import UsbKey


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

    check_server(server)
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


def check_server(server: str) -> None:
    if not server.startswith(("http://", "https://")) or any(c.isspace() for c in server):
        raise InvalidInput("SERVER_URL_INVALID",
                           f"--server must be an http(s) URL, got {server!r}",
                           f"--server 必须是 http(s) 地址：{server!r}", field="server")
