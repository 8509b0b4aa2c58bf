"""Certificate status as relying parties see it: OCSP lookups and the published full CRLs.

Two readers depend on this module and both must see a status change at once:

* The OCSP responder calls ``lookup`` on every request (one indexed read). The answer carries
  the certificate's ``status_version``, which every freeze, unfreeze and revocation bumps, so
  the responder's cache of pre-signed answers notices another process's change immediately.
  A frozen certificate is *revoked* with reason ``certificateHold`` (RFC 6960 §2.2); a serial
  this database does not hold, or one the issuing CA did not issue (the issuing CA's own
  certificate is the root's), is ``unknown``.
* CRL clients fetch ``current_crl``. ``publish_crls`` signs a fresh full CRL for the issuing
  CA and one for the root after every committed status change (``eseal.ra.revocation`` calls
  it); ``current_crl`` also re-signs one that is missing or past half its validity, so the
  CRL served never nears its nextUpdate even when nothing changes.

CRL numbers come from the ``counters`` table and are taken inside a write transaction,
together with the snapshot of entries the CRL will list: a higher number therefore never
lists an older state, across threads and processes (SQLite ``BEGIN IMMEDIATE``; a row lock
on PostgreSQL). The CRL is built and signed outside that transaction, so a large CRL does not
hold the write lock while it is signed. Every signed CRL is recorded in ``crls`` and in the
audit log.

A frozen certificate's hold is also kept as a *freeze window* (``freeze_windows``): after
unfreezing, the CRL no longer lists it, but ``status_at`` still answers "on hold" for any
moment inside the window, so a seal made while frozen stays invalid.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

from eseal import clock
from eseal.audit.anchor import audit_head_extension
from eseal.audit.log import chain_head
from eseal.ca.crl import RevokedEntry, build_crl
from eseal.ca.ocsp import CertStatus
from eseal.errors import InvalidInput
from eseal.pki.serials import normalize_serial, serial_hex
from eseal.store.models import Certificate, CrlRecord, FreezeWindow, StatusCounter

if TYPE_CHECKING:
    from eseal.ca.authority import Authority

CrlRole = Literal["issuing", "root"]
CRL_ROLES: tuple[CrlRole, ...] = ("issuing", "root")
CRL_ACTOR = "system:crl"
HOLD = "certificateHold"

_CERTS = Certificate.__table__
_CRLS = CrlRecord.__table__
_COUNTERS = StatusCounter.__table__
_WINDOWS = FreezeWindow.__table__

# Prepared once: the OCSP responder runs this on every request.
_STATUS = select(_CERTS.c.issuer_role, _CERTS.c.profile, _CERTS.c.status, _CERTS.c.revoked_at,
                 _CERTS.c.revocation_reason, _CERTS.c.status_version
                 ).where(_CERTS.c.serial == bindparam("serial"))
_ENTRIES = (select(_CERTS.c.serial, _CERTS.c.status, _CERTS.c.revoked_at,
                   _CERTS.c.revocation_reason, _CERTS.c.invalidity_date)
            .where(_CERTS.c.issuer_role == bindparam("role"),
                   _CERTS.c.status.in_(("hold", "revoked")),
                   _CERTS.c.profile != "root"))
_NEWEST = (select(_CRLS.c.number, _CRLS.c.this_update, _CRLS.c.next_update, _CRLS.c.der)
           .where(_CRLS.c.issuer_role == bindparam("role"))
           .order_by(_CRLS.c.number.desc()).limit(1))
_WINDOWS_OF = (select(_WINDOWS.c.frozen_at, _WINDOWS.c.unfrozen_at)
               .where(_WINDOWS.c.serial == bindparam("serial")).order_by(_WINDOWS.c.id))

_publish_lock = threading.Lock()  # one re-signing of a stale CRL per process at a time


def _check_role(role: str) -> CrlRole:
    if role not in CRL_ROLES:
        raise InvalidInput("CRL_CA_UNKNOWN", f"no CRL for {role!r}: use issuing or root",
                           f"没有 {role!r} 的 CRL：请使用 issuing 或 root", field="ca")
    return role  # type: ignore[return-value]


# --- OCSP ---------------------------------------------------------------------------------
def lookup(auth: Authority, serial: int) -> CertStatus:
    """The status the issuing CA's OCSP responder reports for ``serial``."""
    if serial <= 0:
        return CertStatus("unknown")
    with auth.db.read() as s:
        row = s.connection().execute(_STATUS, {"serial": serial_hex(serial)}).first()
    if row is None or row.issuer_role != "issuing":
        return CertStatus("unknown")
    version = int(row.status_version or 0)
    if row.status == "good":
        return CertStatus("good", version=version)
    reason = HOLD if row.status == "hold" else row.revocation_reason
    return CertStatus("revoked", revoked_at=row.revoked_at, reason=reason, version=version)


@dataclass(frozen=True)
class FreezeSpan:
    frozen_at: datetime
    unfrozen_at: datetime | None  # None: still on hold; set when unfrozen or revoked

    def covers(self, when: datetime) -> bool:
        return self.frozen_at <= when and (self.unfrozen_at is None or when < self.unfrozen_at)


def freeze_windows(auth: Authority, serial: str) -> list[FreezeSpan]:
    """Every hold a certificate went through, oldest first."""
    canonical = normalize_serial(serial)
    with auth.db.read() as s:
        rows = s.connection().execute(_WINDOWS_OF, {"serial": canonical}).all()
    return [FreezeSpan(r.frozen_at, r.unfrozen_at) for r in rows]


def status_at(auth: Authority, serial: int, when: datetime) -> CertStatus:
    """The status ``serial`` had at ``when``: what a seal made then must be judged by.

    Revoked from ``revoked_at`` on; on hold inside any recorded freeze window (also after it
    was unfrozen); good otherwise. ``unknown`` as in ``lookup``.
    """
    now_status = lookup(auth, serial)
    if now_status.status == "unknown":
        return now_status
    if (now_status.status == "revoked" and now_status.reason != HOLD
            and now_status.revoked_at is not None and now_status.revoked_at <= when):
        return now_status
    for span in freeze_windows(auth, serial_hex(serial)):
        if span.covers(when):
            return CertStatus("revoked", revoked_at=span.frozen_at, reason=HOLD,
                              version=now_status.version)
    return CertStatus("good", version=now_status.version)


# --- CRLs ---------------------------------------------------------------------------------
def _next_number(s: Session, role: CrlRole) -> int:
    """The next CRL number of ``role``; the caller's write transaction serialises it."""
    conn = s.connection()
    name = f"crl_number:{role}"
    bumped = conn.execute(update(_COUNTERS).where(_COUNTERS.c.name == name)
                          .values(value=_COUNTERS.c.value + 1))
    if bumped.rowcount == 0:
        conn.execute(insert(_COUNTERS).values(name=name, value=1))
        return 1
    return int(conn.execute(select(_COUNTERS.c.value).where(_COUNTERS.c.name == name))
               .scalar_one())


def _entry(row: object, now: datetime) -> RevokedEntry:
    serial, status, revoked_at, reason, invalidity = row  # type: ignore[misc]
    return RevokedEntry(serial=int(serial, 16), revoked_at=revoked_at or now,
                        reason=HOLD if status == "hold" else reason,
                        invalidity_date=invalidity if status == "revoked" else None)


def publish(auth: Authority, role: str) -> bytes:
    """Sign, store and return (DER) a fresh full CRL for one CA."""
    ca = _check_role(role)
    with auth.db.write() as s:  # number, time and snapshot together: see the docstring
        now = clock.now().replace(microsecond=0)
        number = _next_number(s, ca)
        rows = s.connection().execute(_ENTRIES, {"role": ca}).all()
        # the audit log's head rides along: published CRLs are evidence of it outside our files
        head = chain_head(s)
    next_update = now + timedelta(hours=auth.settings.crl_validity_hours)
    der = build_crl(issuer_cert=auth.certificate(ca), issuer_key=auth.key(ca),
                    entries=(_entry(r, now) for r in rows), number=number, this_update=now,
                    next_update=next_update,
                    extra_extensions=audit_head_extension(*head) if head else b"")
    with auth.change(actor=CRL_ACTOR, action="crl.publish", target=ca,
                     details={"number": number, "entries": len(rows),
                              "next_update": next_update.isoformat()}) as s:
        s.connection().execute(insert(_CRLS).values(
            issuer_role=ca, number=number, this_update=now, next_update=next_update, der=der))
    return der


def publish_crls(auth: Authority) -> None:
    """Fresh CRLs for both CAs (called after every committed status change)."""
    for role in CRL_ROLES:
        publish(auth, role)


def _stale(this_update: datetime, next_update: datetime, now: datetime) -> bool:
    return now < this_update or now >= this_update + (next_update - this_update) / 2


def current_crl(auth: Authority, role: str) -> bytes:
    """DER of the newest CRL of ``issuing`` or ``root``; re-signed first when there is none
    or the newest is past half its validity (or from the future: a clock set back)."""
    ca = _check_role(role)
    with auth.db.read() as s:
        row = s.connection().execute(_NEWEST, {"role": ca}).first()
    if row is not None and not _stale(row.this_update, row.next_update, clock.now()):
        return bytes(row.der)
    with _publish_lock:  # many service threads may find it stale at the same moment
        with auth.db.read() as s:
            row = s.connection().execute(_NEWEST, {"role": ca}).first()
        if row is not None and not _stale(row.this_update, row.next_update, clock.now()):
            return bytes(row.der)
        return publish(auth, ca)


@dataclass(frozen=True)
class CrlInfo:
    role: str
    number: int
    this_update: datetime
    next_update: datetime
    der: bytes


def newest_crl(auth: Authority, role: str) -> CrlInfo | None:
    """The newest stored CRL of a CA with its number and times (no re-signing)."""
    ca = _check_role(role)
    with auth.db.read() as s:
        row = s.connection().execute(_NEWEST, {"role": ca}).first()
    if row is None:
        return None
    return CrlInfo(ca, int(row.number), row.this_update, row.next_update, bytes(row.der))
