"""Freeze, unfreeze, revoke (冻结/解冻/吊销), and the sessions that end with them.

A freeze puts the certificate on hold (``certificateHold`` on the CRL and in OCSP) and opens
a freeze window; unfreezing closes the window and the entry simply leaves the next full CRL
(``removeFromCRL`` belongs only in delta CRLs). A frozen certificate may be revoked; it then
keeps the hold's time as its revocation time, so a seal made while it was frozen stays
invalid. Reasons are the RFC 5280 names (``eseal.ca.crl.REASONS``). Every status change bumps
``status_version`` (the OCSP cache key), ends the login sessions opened with the
certificate *in the same transaction* (whoever calls: API, CLI, enrollment withdrawal,
re-key confirmation), and is followed by fresh CRLs for both CAs
(``eseal.ca.status.publish_crls``). Every change and every refusal is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from eseal.auth.sessions import end_sessions_for_certificate
from eseal.ca.authority import Authority
from eseal.ca.crl import reason_code
from eseal.ca.status import HOLD, publish_crls
from eseal.errors import Conflict, InvalidInput
from eseal.pki import identity
from eseal.pki.serials import normalize_serial
from eseal.ra.cert_checks import check_live, load_certificate, status_now
from eseal.ra.contacts import notify_if_legal_rep
from eseal.store.models import Certificate, FreezeWindow


# --- freeze, unfreeze, revoke ---------------------------------------------------------------
@dataclass(frozen=True)
class StatusChange:
    """A certificate's status right after a change."""

    serial: str
    status: str
    reason: str | None
    revoked_at: datetime | None
    invalidity_date: datetime | None
    status_version: int

    def to_dict(self) -> dict[str, Any]:
        return {"serial": self.serial, "status": self.status, "reason": self.reason,
                "revoked_at": self.revoked_at.isoformat() if self.revoked_at else None,
                "invalidity_date": (self.invalidity_date.isoformat()
                                    if self.invalidity_date else None),
                "status_version": self.status_version}


def _view(row: Certificate) -> StatusChange:
    return StatusChange(row.serial, row.status, row.revocation_reason, row.revoked_at,
                        row.invalidity_date, row.status_version)


def _serial(auth: Authority, serial: str, *, actor: str, action: str,
            details: dict[str, Any] | None = None) -> str:
    return auth.refusing(lambda: normalize_serial(serial), actor=actor, action=action,
                         target=serial, details=details)


def _close_windows(s: Session, serial: str, now: datetime) -> None:
    s.execute(update(FreezeWindow).where(FreezeWindow.serial == serial,
                                         FreezeWindow.unfrozen_at.is_(None))
              .values(unfrozen_at=now))


def _bump(row: Certificate) -> None:
    row.status_version = (row.status_version or 0) + 1


def check_reason(reason: str) -> str:
    """An RFC 5280 reason name a revocation may carry (``certificateHold`` is a freeze;
    ``removeFromCRL`` exists only in delta CRLs)."""
    if reason == HOLD:
        raise InvalidInput("REASON_IS_FREEZE",
                           "certificateHold is a freeze: use `eseal cert freeze`",
                           "certificateHold 表示冻结：请使用 `eseal cert freeze`", field="reason")
    reason_code(reason, field="reason")  # CRL_REASON_UNKNOWN / CRL_REASON_NOT_ALLOWED
    return reason


def same_key(s: Session, row: Certificate, now: datetime, *,
              statuses: tuple[str, ...]) -> list[Certificate]:
    """Other unexpired certificates of the same key and profile in the given states.

    A same-key renewal leaves the older certificate valid until it expires, so the key's
    certificates are one credential: freezing, unfreezing or revoking one acts on all, or a
    lost or compromised key would still seal under the certificate it was renewed from.
    """
    return list(s.execute(select(Certificate).where(
        Certificate.spki_sha256 == row.spki_sha256, Certificate.profile == row.profile,
        Certificate.serial != row.serial, Certificate.status.in_(statuses),
        Certificate.not_after > now).order_by(Certificate.serial)).scalars())


def hold_row(s: Session, row: Certificate, now: datetime) -> None:
    """Put one good certificate on hold inside the caller's transaction: certificateHold,
    a new status version, an open freeze window, and its login sessions ended."""
    row.status, row.revoked_at, row.revocation_reason = "hold", now, HOLD
    _bump(row)
    s.add(FreezeWindow(serial=row.serial, frozen_at=now))
    end_sessions_for_certificate(s, row.serial, reason="certificate_frozen")


def freeze(auth: Authority, serial: str, *, actor: str) -> StatusChange:
    """Put a certificate on hold (certificateHold) and open its freeze window."""
    canonical = _serial(auth, serial, actor=actor, action="cert.freeze")
    now = status_now()
    with auth.change(actor=actor, action="cert.freeze", target=canonical) as s:
        row = load_certificate(s, canonical)
        if row.issuer_role != "issuing":
            raise InvalidInput("CERT_NOT_FREEZABLE",
                               f"certificate {canonical} is a CA certificate; only "
                               "certificates of the issuing CA are frozen",
                               f"证书 {canonical} 为 CA 证书，只有签发 CA 签发的证书可冻结",
                               field="serial")
        if row.status == "hold":
            raise Conflict("CERT_ALREADY_FROZEN", f"certificate {canonical} is already frozen",
                           f"证书 {canonical} 已处于冻结状态", field="serial")
        check_live(row, "frozen", "冻结")
        for target in (row, *same_key(s, row, now, statuses=("good",))):
            hold_row(s, target, now)
            if target is not row:
                auth.audit.append(s, actor=actor, action="cert.freeze", target=target.serial,
                                  details={"via": canonical, "why": "same key"})
        view = _view(row)
    publish_crls(auth)
    return view


def unfreeze(auth: Authority, serial: str, *, actor: str) -> StatusChange:
    """Lift a hold: the certificate is good again and leaves the next full CRL; its freeze
    window stays recorded."""
    canonical = _serial(auth, serial, actor=actor, action="cert.unfreeze")
    now = status_now()
    with auth.change(actor=actor, action="cert.unfreeze", target=canonical) as s:
        row = load_certificate(s, canonical)
        if row.status == "revoked":
            check_live(row, "unfrozen", "解冻")
        if row.status != "hold":
            raise Conflict("CERT_NOT_FROZEN", f"certificate {canonical} is not frozen",
                           f"证书 {canonical} 未被冻结", field="serial")
        for target in (row, *same_key(s, row, now, statuses=("hold",))):
            target.status, target.revoked_at, target.revocation_reason = "good", None, None
            _bump(target)
            _close_windows(s, target.serial, now)
            if target is not row:
                auth.audit.append(s, actor=actor, action="cert.unfreeze",
                                  target=target.serial,
                                  details={"via": canonical, "why": "same key"})
        view = _view(row)
    publish_crls(auth)
    return view


def revoke_row(s: Session, row: Certificate, reason: str,
                invalidity_date: datetime | None, now: datetime) -> StatusChange:
    if row.profile == "root":
        raise InvalidInput("CERT_NOT_REVOCABLE",
                           "the root certificate is a trust anchor: it is withdrawn from "
                           "relying parties, not revoked on a CRL",
                           "根证书是信任锚，不能通过 CRL 吊销", field="serial")
    if row.status == "revoked":
        when = row.revoked_at.isoformat() if row.revoked_at else "?"
        raise Conflict("CERT_ALREADY_REVOKED",
                       f"certificate {row.serial} was already revoked at {when} "
                       f"({row.revocation_reason})",
                       f"证书 {row.serial} 已于 {when} 吊销（{row.revocation_reason}）",
                       field="serial")
    if row.status == "hold":  # keeps the hold's time: seals made while frozen stay invalid
        _close_windows(s, row.serial, now)
    else:
        row.revoked_at = now
    row.status, row.revocation_reason, row.invalidity_date = "revoked", reason, invalidity_date
    _bump(row)
    end_sessions_for_certificate(s, row.serial, reason="certificate_revoked")
    return _view(row)


def revoke(auth: Authority, serial: str, *, reason: str, actor: str,
           invalidity_date: datetime | None = None) -> StatusChange:
    """Revoke a certificate for an RFC 5280 reason (frozen ones too); CRLs re-issued."""
    details: dict[str, Any] = {"reason": reason}
    if invalidity_date is not None:
        details["invalidity_date"] = str(invalidity_date)
    now = status_now()

    def validate() -> tuple[str, datetime | None]:
        canonical = normalize_serial(serial)
        check_reason(reason)
        when = None
        if invalidity_date is not None:
            if not isinstance(invalidity_date, datetime) or invalidity_date.tzinfo is None:
                raise InvalidInput("INVALIDITY_DATE_INVALID",
                                   "the invalidity date must be a time with a time zone",
                                   "失效日期必须是带时区的时间", field="invalidity_date")
            when = invalidity_date.replace(microsecond=0)
            if when > now:
                raise InvalidInput("INVALIDITY_DATE_IN_FUTURE",
                                   "the invalidity date (when the key was known or suspected "
                                   "compromised) cannot be in the future",
                                   "失效日期不能晚于当前时间", field="invalidity_date")
        return canonical, when

    canonical, when = auth.refusing(validate, actor=actor, action="cert.revoke", target=serial,
                                    details=details)
    with auth.change(actor=actor, action="cert.revoke", target=canonical, details=details) as s:
        row = load_certificate(s, canonical)
        view = revoke_row(s, row, reason, when, now)
        notify_if_legal_rep(s, enterprise_id=row.enterprise_id, holder=row.holder,
                            event="key_revoked", detail=f"{row.serial} ({reason})",
                            dedupe=row.serial)
        siblings = same_key(s, row, now, statuses=("good", "hold"))
        for other in siblings:
            revoke_row(s, other, reason, when, now)
            auth.audit.append(s, actor=actor, action="cert.revoke", target=other.serial,
                              details={"reason": reason, "via": canonical, "why": "same key"})
        details["same_key"] = [other.serial for other in siblings]
    publish_crls(auth)
    return view


def revoke_all(auth: Authority, uscc: str, *, reason: str, actor: str) -> list[StatusChange]:
    """Revoke every certificate of one enterprise not revoked yet, in one transaction with
    one audit event per certificate; a rerun revokes nothing."""
    details: dict[str, Any] = {"uscc": uscc, "reason": reason}

    def validate() -> tuple[str, int]:
        code = identity.validate_uscc(uscc)
        check_reason(reason)
        with auth.db.read() as s:
            return code, int(auth.enterprise_row(s, code).id)

    code, enterprise_id = auth.refusing(validate, actor=actor, action="cert.revoke_all",
                                        target=uscc, details=details)
    now = status_now()
    changed: list[StatusChange] = []
    with auth.change(actor=actor, action="cert.revoke_all", target=code,
                     details=details) as s:
        rows = s.execute(select(Certificate).where(
            Certificate.enterprise_id == enterprise_id, Certificate.status != "revoked")
            .order_by(Certificate.serial)).scalars().all()
        for row in rows:
            changed.append(revoke_row(s, row, reason, None, now))
            auth.audit.append(s, actor=actor, action="cert.revoke", target=row.serial,
                              details={"reason": reason, "via": "cert.revoke_all",
                                       "uscc": code})
        details["serials"] = [c.serial for c in changed]
    if changed:
        publish_crls(auth)
    return changed
