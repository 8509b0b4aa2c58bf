"""A certificate's life for the console: issued, frozen and unfrozen (by whom, why), revoked,
renewed from and to, and the windows it spent on hold.

Like the credential ledger (:mod:`eseal.ra.ledger`) this is a view of records the CA already
keeps, not a second record that could disagree: the audit log says who did what and when
(events whose target is the certificate, and the issuing event, which names it in its
details), the certificate row says where it stands now and what it was renewed from and to,
and ``freeze_windows`` holds each hold's from–to (a window still open has no end). A change
made to this certificate *through* another one of the same key (``via``) is shown with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from eseal import clock
from eseal.ca.authority import Authority
from eseal.pki.serials import normalize_serial
from eseal.ra.cert_checks import read_certificate
from eseal.ra.certificate_search import state_of
from eseal.store.models import AuditEvent, Enterprise, FreezeWindow

#: audit action -> the history's word for it
KINDS = {"cert.issue": "issued", "token.enroll": "enrolled", "enroll_code.redeem": "enrolled",
         "cert.rekey": "issued", "cert.freeze": "frozen", "cert.unfreeze": "unfrozen",
         "cert.revoke": "revoked", "cert.revoke_all": "revoked", "cert.renew": "renewed",
         "cert.rekey.confirm": "rekey_confirmed"}


def _names(value: Any, serial: str) -> bool:
    """Whether an audit event's details name the serial anywhere (lists included)."""
    if isinstance(value, str):
        return value == serial
    if isinstance(value, dict):
        return any(_names(v, serial) for v in value.values())
    if isinstance(value, list):
        return any(_names(v, serial) for v in value)
    return False


@dataclass(frozen=True)
class History:
    certificate: dict[str, Any]
    events: list[dict[str, Any]]
    freeze_windows: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"certificate": self.certificate, "events": self.events,
                "freeze_windows": self.freeze_windows}


def certificate_history(auth: Authority, serial: str) -> History:
    """The history of one certificate (``SERIAL_INVALID`` 422, ``CERT_NOT_FOUND`` 404)."""
    canonical = normalize_serial(serial)
    now = clock.now()
    with auth.db.read() as s:
        row = read_certificate(s, canonical)
        ent = s.get(Enterprise, row.enterprise_id) if row.enterprise_id is not None else None
        # the events that may concern it: aimed at it, at its predecessor (whose renewal made
        # it), at its enterprise or USB-Key (issuance names the serial in its details)
        targets = [t for t in (canonical, row.renewed_from, ent.uscc if ent else None,
                               row.token_label) if t]
        events = list(s.execute(select(AuditEvent).where(
            AuditEvent.target.in_(targets), AuditEvent.outcome == "ok",
            AuditEvent.action.in_(KINDS)).order_by(AuditEvent.id)).scalars())
        windows = list(s.execute(select(FreezeWindow).where(FreezeWindow.serial == canonical)
                                 .order_by(FreezeWindow.id)).scalars())
    out: list[dict[str, Any]] = []
    for e in events:
        d = dict(e.details or {})
        if e.target == canonical:
            kind = {"renewed": "renewed_to", "issued": "rekeyed_to"}.get(
                KINDS[e.action], KINDS[e.action])  # cert.rekey targets the old certificate
        elif e.action == "cert.renew" and d.get("new_serial") == canonical:
            kind = "renewed_from"
        elif e.action in ("cert.issue", "token.enroll", "enroll_code.redeem",
                          "cert.rekey") and _names(d, canonical):
            kind = "issued" if e.action == "cert.rekey" else KINDS[e.action]  # or enrolled
        else:
            continue
        item: dict[str, Any] = {"at": e.at.isoformat(), "kind": kind, "action": e.action,
                                "actor": e.actor, "audit_id": e.id}
        for key in ("reason", "via", "why", "new_serial", "not_after", "invalidity_date"):
            if d.get(key) is not None:
                item[key] = d[key]
        if kind == "renewed_from":
            item["from"] = e.target
        out.append(item)
    state = state_of(row.status, row.not_after, now)
    cert = {"serial": row.serial, "profile": row.profile, "holder": row.holder,
            "status": row.status, "state": state, "not_before": row.not_before.isoformat(),
            "not_after": row.not_after.isoformat(), "created_at": row.created_at.isoformat(),
            "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
            "reason": row.revocation_reason, "renewed_from": row.renewed_from,
            "replaced_by": row.replaced_by, "token_label": row.token_label,
            "enterprise": ent.uscc if ent else None,
            "enterprise_name": ent.name if ent else None}
    frozen = [{"from": w.frozen_at.isoformat(),
               "to": w.unfrozen_at.isoformat() if w.unfrozen_at else None,
               "open": w.unfrozen_at is None} for w in windows]
    return History(certificate=cert, events=out, freeze_windows=frozen)


def certificate_pem(auth: Authority, serial: str) -> tuple[str, bytes]:
    """(canonical serial, PEM) of one certificate, for download."""
    import base64

    canonical = normalize_serial(serial)
    with auth.db.read() as s:
        der = bytes(read_certificate(s, canonical).der)
    body = base64.encodebytes(der).decode("ascii").replace("\n", "")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    pem = "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"
    return canonical, pem.encode("ascii")
