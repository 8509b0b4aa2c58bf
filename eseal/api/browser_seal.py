"""Sealing a filing with a USB-Key in the browser: the server's two halves (journey 5).

``prepare``: the legal representative's page asks for a seal of a stored draft; the server
draws the seal, reserves the signature, embeds the revocation data and computes the CMS
signed attributes (:func:`eseal.signing.interrupted.prepare_seal`), stores that state in
``browser_seals`` (any replica can finish it; single-use; five minutes) and answers what the
USB-Key signs and what its holder is shown: the filing's title, enterprise and SHA-256, the
seal image and the digest the signed attributes carry.

``finish``: the page hands back the id and the one signature; the state is consumed by one
conditional UPDATE (a second finish is ``BROWSER_SEAL_USED``), the signature is checked
against the seal certificate, the CMS is built with a signature timestamp from the CA's own
TSA, and the sealed file goes through *the same* intake and receipt as a CLI seal
(:func:`eseal.api.routes_filings.accept_sealed`). The browser never handles the PDF bytes.

The CRLs, OCSP answers and timestamps come from this process's own services through an
in-process httpx transport, so the holder's revocation fetching (``eseal.holder.revinfo``)
is reused as it is and nothing depends on the server reaching its own public URL.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from cryptography import x509
from sqlalchemy import select, update

from eseal import clock
from eseal.api.deps import Principal
from eseal.ca.authority import Authority
from eseal.errors import Conflict, InvalidInput, NotFound
from eseal.signing import interrupted
from eseal.signing.sign import SealOptions
from eseal.store.models import Certificate, Enterprise
from eseal.store.models_filings import BrowserSeal, Filing, FilingDocument

TTL_SECONDS = 300
SERVICE = "http://eseal.internal"  # the in-process services' base (never on the network)


class _InProcess(httpx.BaseTransport):
    """``/crl/<ca>.crl``, ``/ocsp`` and ``/tsa`` answered by this process's own CA."""

    def __init__(self, auth: Authority, state: Any) -> None:
        self.auth, self.state = auth, state

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        from eseal.api.routes_status import CRL_ROLES, answer_ocsp, answer_tsa
        from eseal.ca import status

        path, method = request.url.path, request.method
        if method == "GET" and path.startswith("/crl/") and path.endswith(".crl") \
                and path[5:-4] in CRL_ROLES:
            return httpx.Response(200, content=status.current_crl(self.auth, path[5:-4]),
                                  headers={"content-type": "application/pkix-crl"})
        if method == "POST" and path == "/ocsp":
            return httpx.Response(200, content=answer_ocsp(self.auth, self.state,
                                                           request.read()),
                                  headers={"content-type": "application/ocsp-response"})
        if method == "POST" and path == "/tsa":
            return httpx.Response(200, content=answer_tsa(self.auth, self.state,
                                                          request.read()),
                                  headers={"content-type": "application/timestamp-reply"})
        return httpx.Response(404)


def _services(auth: Authority, state: Any) -> httpx.Client:
    return httpx.Client(base_url=SERVICE, transport=_InProcess(auth, state))


def _hash(prepared_id: str) -> str:
    return hashlib.sha256(prepared_id.encode("ascii", "replace")).hexdigest()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True)
class Placement:
    page: int = 1
    x: float | None = None
    y: float | None = None
    size_pt: float = 120
    paging: bool = False  # also the 骑缝章 across all pages' right edges


def _seal_certificate(auth: Authority, principal: Principal, ent: Enterprise,
                      serial: str | None) -> x509.Certificate:
    """The enterprise's current seal certificate (the one named, or the only one)."""
    now = clock.now()
    with auth.db.read() as s:
        rows = list(s.execute(select(Certificate).where(
            Certificate.enterprise_id == ent.id, Certificate.profile == "seal",
            Certificate.replaced_by.is_(None), Certificate.status == "good",
            Certificate.not_after > now)).scalars())
    if serial is not None:
        rows = [r for r in rows if r.serial == serial.lower()]
    if len(rows) != 1:
        raise Conflict("SEAL_CERT_NOT_CURRENT" if rows == [] else "SEAL_CERT_AMBIGUOUS",
                       "no single current seal certificate of the enterprise matches"
                       + (f" serial {serial}" if serial else ""),
                       "找不到唯一的本企业现行印章证书", field="certificate_serial")
    return x509.load_der_x509_certificate(rows[0].der)


def prepare(auth: Authority, state: Any, principal: Principal, filing_id: int, *,
            placement: Placement, certificate_serial: str | None) -> dict[str, Any]:
    """Prepare a browser seal of a stored draft (audited ``filing.seal_prepare``)."""
    import asyncio

    from eseal.api.routes_filings import _visible
    from eseal.holder.revinfo import fetch_revinfo, validation_context
    from eseal.holder.sealing import http_timestamper, seal_image_for

    action, target = "filing.seal_prepare", str(filing_id)

    def load() -> tuple[Filing, Enterprise, bytes, x509.Certificate]:
        row, ent = _visible(auth, principal, filing_id)
        if row.status != "draft":
            raise Conflict("FILING_ALREADY_SEALED", f"filing {filing_id} is already sealed",
                           f"申报材料 {filing_id} 已签章", field="id")
        with auth.db.read() as s:
            draft = s.get_one(FilingDocument, (filing_id, "draft")).data
        return row, ent, draft, _seal_certificate(auth, principal, ent, certificate_serial)

    row, ent, draft, cert = auth.refusing(load, actor=principal.actor, action=action,
                                          target=target)
    chain = auth.chain()
    position = None if placement.x is None or placement.y is None \
        else (placement.x, placement.y)
    options = SealOptions(page=placement.page, position=position, size_pt=placement.size_pt,
                          level="B-LT", paging=placement.paging)
    png = seal_image_for(cert)

    def make() -> interrupted.PreparedSeal:
        with _services(auth, state) as http:
            context = validation_context(chain, fetch_revinfo(http, SERVICE, cert, chain))
            stamper = http_timestamper(http, f"{SERVICE}/tsa")
            return asyncio.run(interrupted.prepare_seal(
                draft, certificate=cert, chain=chain, options=options, seal_png=png,
                timestamper=stamper, validation_context=context))

    prepared = auth.refusing(make, actor=principal.actor, action=action, target=target)
    prepared_id = secrets.token_urlsafe(32)
    now = clock.now()
    expires = now + timedelta(seconds=TTL_SECONDS)
    serial = format(cert.serial_number, "x")
    with auth.change(actor=principal.actor, action=action, target=target,
                     details={"seal_serial": serial,
                              "digest": prepared.document_digest.hex()}) as s:
        # expired half-made PDFs are dropped as new ones arrive (the rows stay: an old id is
        # then answered EXPIRED rather than UNKNOWN)
        s.execute(update(BrowserSeal).where(BrowserSeal.expires_at <= now,
                                            BrowserSeal.used_at.is_(None))
                  .values(pdf=b""))
        s.add(BrowserSeal(id_hash=_hash(prepared_id), filing_id=filing_id,
                          account_id=principal.account_id, certificate_serial=serial,
                          created_at=now, expires_at=expires, used_at=None, pdf=prepared.pdf,
                          region_start=prepared.region_start, region_end=prepared.region_end,
                          document_digest=prepared.document_digest,
                          signed_attrs=prepared.signed_attrs))
    return {
        "id": prepared_id, "expires_at": expires.isoformat(), "digest_algorithm": "sha256",
        "signed_attrs": _b64(prepared.signed_attrs),
        "document_digest": _b64(prepared.document_digest),
        "certificate_serial": serial,
        "filing": {"id": row.id, "title": row.title, "sha256": row.draft_sha256,
                   "enterprise": ent.name, "uscc": ent.uscc},
        "seal_png": _b64(png),
    }


def _consume(auth: Authority, principal: Principal, filing_id: int,
             prepared_id: str) -> tuple[interrupted.PreparedSeal, str]:
    """Spend the prepared state once (one conditional UPDATE), or say why not."""
    now = clock.now()
    key = _hash(prepared_id)
    with auth.db.write() as s:
        row = s.get(BrowserSeal, key)
        if row is None or row.filing_id != filing_id or row.account_id != principal.account_id:
            raise NotFound("BROWSER_SEAL_UNKNOWN",
                           "no seal was prepared under this id for this filing and account",
                           "没有为此申报材料和账户准备过该签章", field="prepared_id")
        if row.used_at is not None:
            raise Conflict("BROWSER_SEAL_USED", "this prepared seal was already used",
                           "该待签章已使用过，请重新发起签章", field="prepared_id")
        if now >= row.expires_at:
            raise Conflict("BROWSER_SEAL_EXPIRED",
                           f"the prepared seal expired (after {TTL_SECONDS} s); start again",
                           f"待签章已过期（{TTL_SECONDS} 秒），请重新发起", field="prepared_id")
        prepared = interrupted.PreparedSeal(
            pdf=row.pdf, region_start=row.region_start, region_end=row.region_end,
            document_digest=row.document_digest, signed_attrs=row.signed_attrs,
            field_name="")
        serial = row.certificate_serial
        done = s.execute(update(BrowserSeal)
                         .where(BrowserSeal.id_hash == key, BrowserSeal.used_at.is_(None))
                         .values(used_at=now, pdf=b"")).rowcount
        if done != 1:  # another replica finished it between the read and the update
            raise Conflict("BROWSER_SEAL_USED", "this prepared seal was already used",
                           "该待签章已使用过，请重新发起签章", field="prepared_id")
    return prepared, serial


def finish(auth: Authority, state: Any, principal: Principal, filing_id: int, *,
           prepared_id: str, signature_b64: str, base_url: str) -> dict[str, Any]:
    """Finish a prepared seal with the key's signature; intake; the receipt."""
    import asyncio

    from eseal.api.routes_filings import _visible, accept_sealed
    from eseal.holder.sealing import http_timestamper

    action, target = "filing.seal", str(filing_id)

    def spend() -> tuple[interrupted.PreparedSeal, bytes, x509.Certificate]:
        _visible(auth, principal, filing_id)  # another enterprise's filing: 404 before all
        try:
            signature = base64.b64decode(signature_b64, validate=True)
        except ValueError:
            raise InvalidInput("SIGNATURE_NOT_BASE64", "the signature is not base64",
                               "签名不是 base64 编码", field="signature") from None
        prepared, serial = _consume(auth, principal, filing_id, prepared_id)
        with auth.db.read() as s:
            der = s.get_one(Certificate, serial).der
        return prepared, signature, x509.load_der_x509_certificate(der)

    prepared, signature, cert = auth.refusing(spend, actor=principal.actor, action=action,
                                              target=target, details={"browser": True})

    def build() -> bytes:
        with _services(auth, state) as http:
            stamper = http_timestamper(http, f"{SERVICE}/tsa")
            return asyncio.run(interrupted.finish_seal(
                prepared, signature=signature, certificate=cert, chain=auth.chain(),
                timestamper=stamper))

    sealed = auth.refusing(build, actor=principal.actor, action=action, target=target,
                           details={"browser": True})
    serial = state.tsa_serials.next_serial()
    return accept_sealed(auth, principal, filing_id, sealed, serial=serial, base_url=base_url)
