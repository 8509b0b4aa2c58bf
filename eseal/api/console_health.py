"""Status health for the console: is what relying parties depend on answering, now?

Each check *exercises* the thing rather than reading a flag: the OCSP check sends a real
request for a certificate on record through the same code ``POST /ocsp`` runs
(:func:`eseal.api.routes_status.answer_ocsp`) and checks the signed answer with the
responder's certificate; the TSA check asks for a real RFC 3161 timestamp
(:func:`~eseal.api.routes_status.answer_tsa`) and checks it is granted over the digest sent.
The CRL check reads the newest stored CRL of each CA (it does not re-sign one: a health
probe changes nothing); the audit check compares the chain head with the newest signed
checkpoint and with the head the CA token remembers (``eseal.audit.head``).

Each answers ``ok``, ``warn`` (working but needs attention soon: a CRL past half its
validity, more unsigned events than the checkpoint cadence) or ``fail`` (relying parties
are being let down now), with the figures behind it; the overall status is the worst.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from asn1crypto import tsp
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509 import ocsp as x509_ocsp
from fastapi import Request
from sqlalchemy import select

from eseal import clock
from eseal.api.routes_status import answer_ocsp, answer_tsa, status_state
from eseal.audit.head import TokenHeadStore, anchor
from eseal.audit.log import chain_head
from eseal.ca.authority import Authority
from eseal.ca.status import newest_crl
from eseal.errors import EsealError
from eseal.store.models import AuditCheckpoint, Certificate

_RANK = {"ok": 0, "warn": 1, "fail": 2}


def _iso(when: datetime | None) -> str | None:
    return when.isoformat() if when is not None else None


def crl_health(auth: Authority, now: datetime) -> dict[str, Any]:
    out: dict[str, Any] = {"status": "ok", "crls": {}}
    for role in ("issuing", "root"):
        info = newest_crl(auth, role)
        if info is None:
            entry = {"status": "fail", "message": "no CRL was ever published"}
        else:
            validity = info.next_update - info.this_update
            age = now - info.this_update
            if now >= info.next_update:
                state, message = "fail", "past its nextUpdate: relying parties reject it"
            elif age >= validity / 2:
                state, message = "warn", "past half its validity: re-signed on the next fetch"
            else:
                state, message = "ok", "current"
            entry = {"status": state, "message": message, "number": info.number,
                     "this_update": _iso(info.this_update),
                     "next_update": _iso(info.next_update),
                     "age_seconds": int(age.total_seconds()),
                     "seconds_to_next_update": int((info.next_update - now).total_seconds())}
        out["crls"][role] = entry
        out["status"] = max(out["status"], entry["status"], key=_RANK.__getitem__)
    return out


def _known_certificate(auth: Authority) -> x509.Certificate | None:
    with auth.db.read() as s:
        der = s.execute(select(Certificate.der).where(Certificate.issuer_role == "issuing")
                        .order_by(Certificate.created_at.desc()).limit(1)).scalar()
    return x509.load_der_x509_certificate(bytes(der)) if der is not None else None


def ocsp_health(request: Request, auth: Authority) -> dict[str, Any]:
    cert = _known_certificate(auth)
    if cert is None:
        return {"status": "warn", "message": "no certificate of the issuing CA to ask about"}
    issuer = auth.certificate("issuing")
    built = (x509_ocsp.OCSPRequestBuilder().add_certificate(cert, issuer, hashes.SHA1())
             .add_extension(x509.OCSPNonce(secrets.token_bytes(16)), critical=False).build())
    serial = format(cert.serial_number, "x")
    der = answer_ocsp(auth, status_state(request.app, auth),
                      built.public_bytes(serialization.Encoding.DER))
    try:
        response = x509_ocsp.load_der_ocsp_response(der)
    except ValueError:
        return {"status": "fail", "serial": serial, "message": "the answer is not OCSP"}
    if response.response_status != x509_ocsp.OCSPResponseStatus.SUCCESSFUL:
        return {"status": "fail", "serial": serial,
                "message": f"answered {response.response_status.name}"}
    responder = auth.certificate("ocsp")
    public = responder.public_key()
    try:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        algorithm = response.signature_hash_algorithm
        assert algorithm is not None
        public.verify(response.signature, response.tbs_response_bytes, ec.ECDSA(algorithm))
    except (AssertionError, InvalidSignature):
        return {"status": "fail", "serial": serial,
                "message": "the answer's signature does not verify"}
    if format(response.serial_number, "x") != serial:
        return {"status": "fail", "serial": serial, "message": "answered another serial"}
    return {"status": "ok", "serial": serial,
            "certificate_status": response.certificate_status.name.lower(),
            "produced_at": _iso(response.produced_at_utc),
            "next_update": _iso(response.next_update_utc)}


def tsa_health(request: Request, auth: Authority) -> dict[str, Any]:
    digest = hashlib.sha256(secrets.token_bytes(32)).digest()
    query = tsp.TimeStampReq({
        "version": "v1", "message_imprint": {"hash_algorithm": {"algorithm": "sha256"},
                                             "hashed_message": digest},
        "nonce": secrets.randbits(63), "cert_req": True})
    der = answer_tsa(auth, status_state(request.app, auth), query.dump())
    try:
        reply = tsp.TimeStampResp.load(der)
        status = reply["status"]["status"].native
        if status not in ("granted", "granted_with_mods"):
            return {"status": "fail", "message": f"answered {status}"}
        info = reply["time_stamp_token"]["content"]["encap_content_info"]["content"].parsed
        if info["message_imprint"]["hashed_message"].native != digest:
            return {"status": "fail", "message": "the token covers another digest"}
        return {"status": "ok", "serial": format(info["serial_number"].native, "x"),
                "gen_time": _iso(info["gen_time"].native)}
    except (ValueError, KeyError, TypeError) as exc:
        return {"status": "fail", "message": f"the answer is not a timestamp ({exc})"}


def audit_health(auth: Authority) -> dict[str, Any]:
    every = auth.settings.checkpoint_every
    with auth.db.read() as s:
        head = chain_head(s)
        newest = s.execute(select(AuditCheckpoint.event_id, AuditCheckpoint.at)
                           .order_by(AuditCheckpoint.id.desc()).limit(1)).first()
        try:
            record = anchor(s, TokenHeadStore(auth.ca_session).read())
        except EsealError as err:
            return {"status": "fail", "code": err.code, "message": err.message}
    head_id = head[0] if head else 0
    signed = int(newest.event_id) if newest else 0
    unsigned = max(0, head_id - signed)
    out: dict[str, Any] = {"head_id": head_id, "head_hash": head[1] if head else None,
                           "checkpoint_event_id": signed,
                           "checkpoint_at": _iso(newest.at) if newest else None,
                           "unsigned_events": unsigned, "checkpoint_every": every,
                           "token_head_seq": record.seq if record else None}
    if unsigned >= every:
        out.update(status="warn", message=f"{unsigned} events since the newest signed "
                                          f"checkpoint (cadence {every})")
    else:
        out.update(status="ok", message="the newest checkpoint is held as the token recorded")
    return out


def health(request: Request, auth: Authority) -> dict[str, Any]:
    """Every check, and the worst of them as ``status``."""
    now = clock.now()
    checks = {"crl": crl_health(auth, now), "ocsp": ocsp_health(request, auth),
              "tsa": tsa_health(request, auth), "audit": audit_health(auth)}
    worst = max((c["status"] for c in checks.values()), key=_RANK.__getitem__)
    return {"status": worst, "checked_at": now.isoformat(), **checks}
