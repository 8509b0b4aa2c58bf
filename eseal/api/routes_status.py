"""The status protocols over HTTP: CRLs, CA certificates, OCSP (RFC 6960) and RFC 3161.

These are the URLs eseal's certificates name (``eseal.ca.profiles``: CRL distribution
point ``<base>/crl/<ca>.crl``, AIA caIssuers ``<base>/ca/<ca>.crt`` and OCSP ``<base>/ocsp``),
so relying parties, pyHanko and openssl reach them without configuration.

Rules this module keeps, and why:

* **Protocol errors are protocol answers.** ``/ocsp`` and ``/tsa`` always answer HTTP 200
  with an OCSPResponse / TimeStampResp: garbage, an oversized body or a request for another
  CA becomes malformedRequest / unauthorized (OCSP) or a rejection with its failInfo
  (RFC 3161), and a failure of our own becomes internalError / systemFailure (logged), as
  the protocols say. A client library then reports what happened instead of an HTTP error.
* **Bounded input.** A body is read from the stream up to its protocol's limit plus one
  byte, whatever Content-Length claims; more than the limit is refused by the core parser.
* **Live status.** The OCSP responder consults ``eseal.ca.status.lookup`` on every request
  (one indexed read): a revocation made by the CLI in another process changes the
  certificate's status version and the next request is answered afresh. Nonce-less answers
  come from one ``ResponseCache`` per server process, keyed by that version.
* **Nothing blocks the event loop.** The handlers that touch the CA token or the database
  are plain ``def`` (FastAPI runs them in its threadpool) or await ``run_in_threadpool``
  after reading the body; the token layer serialises PKCS#11 calls with its one lock.
* **Caching as RFC 5019 §6 suggests.** A CRL is cacheable until its nextUpdate; an OCSP
  GET answer for at most ``OCSP_GET_MAX_AGE`` and never beyond its nextUpdate (a revocation
  then reaches clients behind an HTTP cache within that bound); POST answers and errors
  are ``no-store``.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

from asn1crypto import tsp
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp as x509_ocsp
from fastapi import APIRouter, FastAPI, Request, Response
from starlette.concurrency import run_in_threadpool

from eseal import clock
from eseal.api.bodies import read_bounded
from eseal.api.deps import get_authority
from eseal.ca import ocsp, tsa, tsa_serials
from eseal.ca.authority import Authority
from eseal.errors import EsealError
from eseal.pki.der import (
    der_tlv,
)

log = logging.getLogger(__name__)

router = APIRouter(tags=["status"])

OCSP_REQUEST = "application/ocsp-request"
OCSP_RESPONSE = "application/ocsp-response"
TSA_QUERY = "application/timestamp-query"
TSA_REPLY = "application/timestamp-reply"
PKIX_CRL = "application/pkix-crl"
PKIX_CERT = "application/pkix-cert"
PEM_CHAIN = "application/pem-certificate-chain"

OCSP_GET_MAX_AGE = 3600  # seconds; see the module docstring
CA_CERT_MAX_AGE = 86400
NO_STORE = {"Cache-Control": "no-store"}
# A base64 text longer than this cannot decode to a request within the limit.
_MAX_GET_CHARS = 4 * (ocsp.MAX_REQUEST_BYTES // 3 + 2)

CRL_ROLES = ("issuing", "root")
CERT_ROLES = ("root", "issuing", "ocsp", "tsa")


# --------------------------------------------------------------------------------------
# Per-process state: one response cache and one TSA serial source per server process
# --------------------------------------------------------------------------------------
@dataclass
class StatusState:
    ocsp_cache: ocsp.ResponseCache
    tsa_serials: tsa.SerialBlocks


_STATE_LOCK = threading.Lock()


def status_state(app: FastAPI, auth: Authority) -> StatusState:
    """The app's ``StatusState``, created on first use (each uvicorn worker has its own app)."""
    state: StatusState | None = getattr(app.state, "status_protocols", None)
    if state is None:
        with _STATE_LOCK:
            state = getattr(app.state, "status_protocols", None)
            if state is None:
                state = StatusState(ocsp.ResponseCache(),
                                    tsa_serials.serial_blocks(auth.db))
                app.state.status_protocols = state
    return state


def _context(request: Request) -> tuple[Authority, StatusState]:
    """The authority and status state of the app serving ``request``.

    Called directly rather than through ``Depends``: a sync dependency costs the OCSP hot
    path a threadpool round trip of its own.
    """
    auth = get_authority(request)
    return auth, status_state(request.app, auth)


def _http_date(when: datetime) -> str:
    return format_datetime(when.astimezone(UTC).replace(microsecond=0), usegmt=True)


def _etag(der: bytes) -> str:
    return '"' + hashlib.sha256(der).hexdigest()[:32] + '"'


# --------------------------------------------------------------------------------------
# CRLs and CA certificates
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _CrlMeta:
    this_update: datetime
    next_update: datetime
    etag: str


_CRL_META: dict[tuple[int, bytes], _CrlMeta] = {}
_CRL_META_LOCK = threading.Lock()


def _crl_meta(der: bytes) -> _CrlMeta:
    """Times and ETag of a CRL, parsed once per CRL (a million entries take ~0.1 s).

    Keyed by length and the trailing signature bytes: an ECDSA signature is never repeated,
    so two different CRLs cannot share a key.
    """
    key = (len(der), der[-96:])
    with _CRL_META_LOCK:
        meta = _CRL_META.get(key)
    if meta is None:
        crl = x509.load_der_x509_crl(der)
        meta = _CrlMeta(crl.last_update_utc, crl.next_update_utc or crl.last_update_utc,
                        _etag(der))
        with _CRL_META_LOCK:
            if len(_CRL_META) >= 8:
                _CRL_META.clear()
            _CRL_META[key] = meta
    return meta


def _crl_response(request: Request, auth: Authority, role: str) -> Response:
    from eseal.ca import status

    der = status.current_crl(auth, role)
    meta = _crl_meta(der)
    max_age = max(0, int((meta.next_update - clock.now()).total_seconds()))
    headers = {"Cache-Control": f"public, max-age={max_age}, no-transform",
               "Last-Modified": _http_date(meta.this_update),
               "Expires": _http_date(meta.next_update), "ETag": meta.etag}
    if meta.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    return Response(der, media_type=PKIX_CRL, headers=headers)


def _add_crl_route(role: str) -> None:
    def crl(request: Request) -> Response:  # plain def: may sign and write, in a thread
        return _crl_response(request, get_authority(request), role)

    crl.__name__ = f"{role}_crl"
    router.add_api_route(
        f"/crl/{role}.crl", crl, methods=["GET"], response_class=Response,
        summary=f"The current full CRL of the {role} CA (DER)",
        responses={200: {"content": {PKIX_CRL: {}}}, 304: {"description": "not modified"}})


for _role in CRL_ROLES:
    _add_crl_route(_role)


@functools.lru_cache(maxsize=16)
def _cert_der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def _add_cert_route(role: str) -> None:
    async def certificate(request: Request) -> Response:
        der = _cert_der(get_authority(request).certificate(role))
        return Response(der, media_type=PKIX_CERT, headers={
            "Cache-Control": f"public, max-age={CA_CERT_MAX_AGE}", "ETag": _etag(der)})

    certificate.__name__ = f"{role}_certificate"
    router.add_api_route(
        f"/ca/{role}.crt", certificate, methods=["GET"], response_class=Response,
        summary=f"The {role} certificate of the CA (DER)",
        responses={200: {"content": {PKIX_CERT: {}}}})


for _role in CERT_ROLES:
    _add_cert_route(_role)


@router.get("/ca/chain.pem", response_class=Response,
            summary="The CA chain for end-entity certificates: issuing, then root (PEM)",
            responses={200: {"content": {PEM_CHAIN: {}}}})
async def chain_pem(request: Request) -> Response:
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM)
                   for c in get_authority(request).chain())
    return Response(pem, media_type=PEM_CHAIN,
                    headers={"Cache-Control": f"public, max-age={CA_CERT_MAX_AGE}"})


# --------------------------------------------------------------------------------------
# OCSP
# --------------------------------------------------------------------------------------
def answer_ocsp(auth: Authority, state: StatusState, der: bytes) -> bytes:
    """The OCSPResponse for ``der``: blocking (database, token); run it in a thread."""
    try:
        from eseal.ca import status

        return ocsp.answer(
            der, issuer_cert=auth.certificate("issuing"),
            responder_cert=auth.certificate("ocsp"), responder_key=auth.key("ocsp"),
            lookup=functools.partial(status.lookup, auth), now=clock.now(),
            validity=timedelta(hours=auth.settings.ocsp_validity_hours),
            cache=state.ocsp_cache)
    except EsealError as exc:  # the responder's own key: our token or database, for now
        if exc.status == 503:
            log.warning("OCSP responder unavailable: %s", exc.code)
            return ocsp.error_response("tryLater")
        log.exception("OCSP responder could not be set up")
        return ocsp.error_response("internalError")
    except Exception:  # ocsp.answer never raises; this is the responder itself failing
        log.exception("OCSP responder could not be set up")
        return ocsp.error_response("internalError")


def _ocsp_get_headers(der: bytes) -> dict[str, str]:
    """RFC 5019 §6.2 caching headers for a successful response; ``no-store`` otherwise."""
    try:
        response = x509_ocsp.load_der_ocsp_response(der)
        if response.response_status != x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
            return dict(NO_STORE)
        next_updates = [r.next_update_utc for r in response.responses]
        produced = response.produced_at_utc
    except ValueError:
        return dict(NO_STORE)
    if not next_updates or any(n is None for n in next_updates):
        return dict(NO_STORE)
    now = clock.now()
    expires = min(min(n for n in next_updates if n is not None),
                  now + timedelta(seconds=OCSP_GET_MAX_AGE))
    max_age = max(0, int((expires - now).total_seconds()))
    return {"Cache-Control": f"public, max-age={max_age}, no-transform",
            "Last-Modified": _http_date(produced), "Expires": _http_date(expires),
            "ETag": _etag(der)}


def decode_get_request(text: str) -> bytes | None:
    """The DER of a GET request path (RFC 6960 A.1): base64 or base64url, padded or not.

    The server hands the path over already %-decoded, so ``%2B``/``%2F``/``%3D`` arrive as
    ``+``/``/``/``=``. ``None`` for anything that is not base64 or is too long.
    """
    if not text or len(text) > _MAX_GET_CHARS:
        return None
    normal = text.replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(normal + "=" * (-len(normal) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


@router.post("/ocsp", response_class=Response,
             summary="OCSP over POST (RFC 6960 A.1); always HTTP 200 with an OCSPResponse",
             openapi_extra={"requestBody": {"required": True,
                                            "content": {OCSP_REQUEST: {}}}},
             responses={200: {"content": {OCSP_RESPONSE: {}}}})
async def ocsp_post(request: Request) -> Response:
    body = await read_bounded(request, ocsp.MAX_REQUEST_BYTES)
    der = await run_in_threadpool(answer_ocsp, *_context(request), body)
    return Response(der, media_type=OCSP_RESPONSE, headers=NO_STORE)


@router.get("/ocsp/{encoded:path}", response_class=Response,
            summary="OCSP over GET: the base64 (url-safe or %-escaped) DER request in the path",
            responses={200: {"content": {OCSP_RESPONSE: {}}}})
async def ocsp_get(encoded: str, request: Request) -> Response:
    body = decode_get_request(encoded)
    if body is None:
        return Response(ocsp.error_response("malformedRequest"), media_type=OCSP_RESPONSE,
                        headers=NO_STORE)

    def work(auth: Authority, state: StatusState) -> tuple[bytes, dict[str, str]]:
        der = answer_ocsp(auth, state, body)
        return der, _ocsp_get_headers(der)

    der, headers = await run_in_threadpool(work, *_context(request))
    return Response(der, media_type=OCSP_RESPONSE, headers=headers)


# --------------------------------------------------------------------------------------
# RFC 3161 timestamps
# --------------------------------------------------------------------------------------
def _rejection(fail_info: str, text: str) -> bytes:
    status_info = tsp.PKIStatusInfo({"status": "rejection", "status_string": [text],
                                     "fail_info": tsp.PKIFailureInfo({tsa.FAILURES[fail_info]})})
    return der_tlv(0x30, status_info.dump())


def answer_tsa(auth: Authority, state: StatusState, der: bytes) -> bytes:
    """The TimeStampResp for ``der``: blocking (token, sometimes the database)."""
    try:
        serial = state.tsa_serials.next_serial()
        return tsa.answer(der, tsa_cert=auth.certificate("tsa"), tsa_key=auth.key("tsa"),
                          chain=auth.chain(), serial=serial, now=clock.now())
    except Exception:  # tsa.answer never raises for requests; this is our own failure
        log.exception("TSA could not answer")
        return _rejection("systemFailure", "the TSA could not answer")


@router.post("/tsa", response_class=Response,
             summary="RFC 3161 timestamps; always HTTP 200 with a TimeStampResp",
             openapi_extra={"requestBody": {"required": True, "content": {TSA_QUERY: {}}}},
             responses={200: {"content": {TSA_REPLY: {}}}})
async def tsa_post(request: Request) -> Response:
    body = await read_bounded(request, tsa.MAX_REQUEST_BYTES)
    der = await run_in_threadpool(answer_tsa, *_context(request), body)
    return Response(der, media_type=TSA_REPLY, headers=NO_STORE)
