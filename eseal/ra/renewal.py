"""Renewal (年检/续期): when a certificate may be renewed, and officers renewing the same key.

A certificate may be renewed inside its *window*: from ``renewal_window_days`` (90) before
its notAfter until ``renewal_grace_days`` (90) after it, both ends included. Renewed before
it expires, the new certificate carries the remaining time over (new notAfter = old
notAfter + 1 calendar year; 29 February becomes 28 February); renewed in the grace period,
it runs one year from the renewal. Either way the new notAfter is cut at the issuing CA's
notAfter (``RenewalTerms.capped`` says so). An officer renews the *same key*
(``renew_one``/``renew_many``): the key may be certified that way for at most
``max_key_age_years`` (3) from its first certification, counted to the new notAfter; beyond
that the holder must re-key (``eseal.ra.rekey``). A renewed certificate stays valid until
its own notAfter and is marked ``replaced_by`` its successor, which is what makes a rerun
renew nothing twice. Every change and every refusal is audited.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from eseal import clock
from eseal.ca.authority import Authority
from eseal.ca.issuance import ENTERPRISE_PROFILES, Draft, IssuanceRequest, Issued
from eseal.errors import Conflict, EsealError, InvalidInput
from eseal.pki.dates import add_years
from eseal.pki.serials import normalize_serial
from eseal.ra.cert_checks import (
    CERTS,
    check_cert_enterprise,
    check_enterprise_cert,
    check_live,
    day_text,
    enterprise_of,
    read_certificate,
)
from eseal.settings import Settings
from eseal.store.models import Certificate

_MARK_RENEWED = (update(CERTS).where(CERTS.c.serial == bindparam("old"),
                                      CERTS.c.replaced_by.is_(None))
                 .values(replaced_by=bindparam("new")))


# --- renewal arithmetic ---------------------------------------------------------------------
@dataclass(frozen=True)
class RenewalTerms:
    """When the renewed certificate runs, and why."""

    not_before: datetime
    not_after: datetime
    carried_over: bool  # renewed before expiry: old notAfter + 1 year
    capped: bool  # cut at the issuing CA's notAfter


def renewal_window(not_after: datetime, settings: Settings) -> tuple[datetime, datetime]:
    """(opens, closes) of a certificate's renewal window, both included."""
    return (not_after - timedelta(days=settings.renewal_window_days),
            not_after + timedelta(days=settings.renewal_grace_days))


def renewal_terms(*, not_after: datetime, now: datetime, settings: Settings,
                  issuer_not_after: datetime, key_certified_at: datetime | None = None,
                  serial: str = "") -> RenewalTerms:
    """The validity of a renewal made at ``now``, or the refusal (``Conflict``).

    ``key_certified_at`` (same-key renewal only) enforces the key-age limit: the new
    notAfter may be at most ``max_key_age_years`` after the key's first certification.
    """
    opens, closes = renewal_window(not_after, settings)
    what = f"certificate {serial}" if serial else "the certificate"
    if now < opens:
        raise Conflict("RENEWAL_WINDOW_NOT_OPEN",
                       f"{what} can be renewed from {day_text(opens)} "
                       f"({settings.renewal_window_days} days before it expires)",
                       f"证书 {serial} 自 {day_text(opens)} 起方可续期"
                       f"（到期前 {settings.renewal_window_days} 天）",
                       field="serial", details={"opens": opens.isoformat()})
    if now > closes:
        raise Conflict("RENEWAL_GRACE_EXPIRED",
                       f"{what} expired on {day_text(not_after)} and the "
                       f"{settings.renewal_grace_days}-day grace period ended on "
                       f"{day_text(closes)}: apply for a new certificate",
                       f"证书 {serial} 已于 {day_text(not_after)} 到期，"
                       f"宽限期已于 {day_text(closes)} 结束，请重新申请证书", field="serial",
                       details={"closed": closes.isoformat()})
    start = now.replace(microsecond=0)
    carried = now <= not_after
    end = add_years(not_after, 1) if carried else add_years(start, 1)
    if key_certified_at is not None:
        limit = add_years(key_certified_at.replace(microsecond=0), settings.max_key_age_years)
        if end > limit:
            raise Conflict("REKEY_REQUIRED",
                           f"the key of {what} was first certified on "
                           f"{day_text(key_certified_at)}; a key is renewed without re-key for at "
                           f"most {settings.max_key_age_years} years (until {day_text(limit)}): "
                           "generate a new key (eseal token rekey)",
                           f"证书 {serial} 的密钥已使用满 {settings.max_key_age_years} 年"
                           f"（至 {day_text(limit)}），请更换密钥（eseal token rekey）",
                           field="serial", details={"key_limit": limit.isoformat()})
    capped = end > issuer_not_after
    if capped:
        end = issuer_not_after
    if end <= start:
        raise Conflict("ISSUER_EXPIRING",
                       "the issuing CA's certificate expires before a renewal could start",
                       "签发 CA 证书即将到期，无法续期", field="serial")
    return RenewalTerms(not_before=start, not_after=end, carried_over=carried, capped=capped)


# --- officer renewal (same key) -------------------------------------------------------------
@dataclass(frozen=True)
class Renewal:
    old_serial: str
    issued: Issued
    terms: RenewalTerms

    @property
    def serial(self) -> str:
        return self.issued.serial

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "serial": self.old_serial, "new_serial": self.issued.serial,
            "not_after": self.terms.not_after.isoformat(),
            "carried_over": self.terms.carried_over, "capped": self.terms.capped}
        if self.terms.capped:
            out["note"] = "notAfter cut at the issuing CA's notAfter"
        return out


@dataclass(frozen=True)
class Skipped:
    serial: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        return {"serial": self.serial, "reason": self.reason}


class _LostRace(Exception):
    """Another process renewed the certificate between our check and our write."""

    def __init__(self, skipped: Skipped) -> None:
        super().__init__(skipped.reason)
        self.skipped = skipped


def renewal_decision(auth: Authority, s: Session,
                     canonical: str) -> tuple[Any, Any, RenewalTerms | None]:
    """Whether the certificate would be renewed now: (row, enterprise, terms), or (row, None,
    None) if it was already renewed; raises the refusal. ``renew_one`` and the batch preview
    both decide here, so a preview says exactly what a renewal would do."""
    row = read_certificate(s, canonical)
    check_enterprise_cert(row)
    if row.status == "revoked" or not row.replaced_by:
        check_live(row, "renewed", "续期")
    if row.replaced_by:
        return row, None, None
    ent = check_cert_enterprise(enterprise_of(s, row), row)
    terms = renewal_terms(not_after=row.not_after, now=clock.now(), settings=auth.settings,
                          issuer_not_after=auth.certificate("issuing").not_valid_after_utc,
                          key_certified_at=row.key_certified_at, serial=canonical)
    return row, ent, terms


def renew_one(auth: Authority, serial: str, *, actor: str) -> Renewal | Skipped:
    """Renew one certificate with its own key; ``Skipped`` if it was already renewed.

    Raises (audited, nothing changed): ``SERIAL_INVALID``, ``CERT_NOT_FOUND``,
    ``CERT_NOT_RENEWABLE``, ``CERT_ALREADY_REVOKED``, ``CERT_ALREADY_FROZEN``,
    ``ENTERPRISE_NOT_ACTIVE``, ``RENEWAL_WINDOW_NOT_OPEN``, ``RENEWAL_GRACE_EXPIRED``,
    ``REKEY_REQUIRED``.
    """
    details: dict[str, Any] = {"serial": serial}

    def vet() -> tuple[Any, Any, RenewalTerms | None]:
        canonical = normalize_serial(serial)
        details["serial"] = canonical
        with auth.db.read() as s:
            return renewal_decision(auth, s, canonical)

    row, ent, terms = auth.refusing(vet, actor=actor, action="cert.renew", target=serial,
                                    details=details)
    if terms is None or ent is None:
        return Skipped(row.serial, f"already renewed as {row.replaced_by}")
    request = IssuanceRequest(
        profile=row.profile, public_key=x509.load_der_x509_certificate(row.der).public_key(),
        holder=row.holder, actor=actor, action="cert.renew", target=row.serial,
        enterprise=ent, token_label=row.token_label, not_after=terms.not_after,
        renewed_from=row.serial, key_certified_at=row.key_certified_at, renewing=True)
    details.update({"not_after": terms.not_after.isoformat(),
                    "carried_over": terms.carried_over, "capped": terms.capped})

    def still_renewable(s: Session, draft: Draft) -> None:
        current = read_certificate(s, row.serial)
        if current.replaced_by:
            raise _LostRace(Skipped(row.serial, f"already renewed as {current.replaced_by}"))
        check_live(current, "renewed", "续期")
        check_cert_enterprise(enterprise_of(s, current), current)
        marked = s.connection().execute(_MARK_RENEWED, {"old": row.serial, "new": draft.serial})
        if marked.rowcount != 1:  # renewed by a concurrent transaction: drop ours
            raise _LostRace(Skipped(row.serial, "already renewed"))

    try:
        issued = auth.certify(request, details=details, serial_field="new_serial",
                              then=still_renewable)
    except _LostRace as lost:
        return lost.skipped
    return Renewal(old_serial=row.serial, issued=issued, terms=terms)


@dataclass
class RenewalSummary:
    """What a batch did, as ``eseal cert renew`` prints it."""

    renewed: list[Renewal] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    refused: list[tuple[str, EsealError]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "renewed": [r.to_dict() for r in self.renewed],
            "skipped": [s.to_dict() for s in self.skipped],
            "refused": [{"serial": serial, "code": err.code, "message": err.message,
                         "message_zh": err.message_zh} for serial, err in self.refused],
        }


def renew_many(auth: Authority, serials: Iterable[str], *, actor: str,
               progress: Callable[[], None] | None = None) -> RenewalSummary:
    """Renew each serial once (duplicates ignored); refusals are collected, not raised."""
    summary = RenewalSummary()
    seen: set[str] = set()
    for serial in serials:
        try:
            key = normalize_serial(serial)
        except EsealError:
            key = serial
        if key in seen:
            if progress is not None:
                progress()
            continue
        seen.add(key)
        try:
            outcome = renew_one(auth, serial, actor=actor)
        except EsealError as err:
            summary.refused.append((key, err))
        else:
            if isinstance(outcome, Renewal):
                summary.renewed.append(outcome)
            else:
                summary.skipped.append(outcome)
        if progress is not None:
            progress()
    return summary


def batch_serials(auth: Authority, serials: list[str],
                  expiring_within_days: int | None) -> list[str]:
    """What a batch (``POST /officer/renewals`` and its preview) works on: the serials given,
    then those expiring within the days given; ``NOTHING_TO_RENEW`` if neither is."""
    todo = list(serials)
    if expiring_within_days is not None:
        todo += expiring(auth, expiring_within_days)
    elif not todo:
        raise InvalidInput("NOTHING_TO_RENEW", "give serials or expiring_within_days",
                           "请给出序列号或 expiring_within_days", field="serials")
    return todo


def preview_many(auth: Authority, serials: Iterable[str]) -> dict[str, Any]:
    """What ``renew_many`` would do with these serials now, changing nothing (no row, no
    audit event): ``renew`` with the new notAfter, ``skipped`` (already renewed) and
    ``refused`` with the code and message the renewal would answer. Decided by
    :func:`renewal_decision`, as ``renew_one`` decides; one read transaction."""
    renew: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    refused: list[dict[str, Any]] = []
    seen: set[str] = set()
    with auth.db.read() as s:
        for serial in serials:
            try:
                key = normalize_serial(serial)
            except EsealError as err:
                if serial not in seen:
                    seen.add(serial)
                    refused.append(_refusal(serial, err))
                continue
            if key in seen:
                continue
            seen.add(key)
            try:
                row, _ent, terms = renewal_decision(auth, s, key)
            except EsealError as err:
                refused.append(_refusal(key, err))
                continue
            if terms is None:
                skipped.append(Skipped(key, f"already renewed as {row.replaced_by}").to_dict())
                continue
            renew.append({"serial": key, "holder": row.holder, "profile": row.profile,
                          "not_after": row.not_after.isoformat(),
                          "new_not_after": terms.not_after.isoformat(),
                          "carried_over": terms.carried_over, "capped": terms.capped})
    return {"renew": renew, "skipped": skipped, "refused": refused,
            "counts": {"renew": len(renew), "skipped": len(skipped), "refused": len(refused)}}


def _refusal(serial: str, err: EsealError) -> dict[str, Any]:
    return {"serial": serial, "code": err.code, "message": err.message,
            "message_zh": err.message_zh}


def expiring(auth: Authority, within_days: int) -> list[str]:
    """Serials of current enterprise certificates whose notAfter is at most ``within_days``
    away or passed less than the grace period ago (revoked and renewed ones left out;
    frozen ones included, so the officer sees them refused)."""
    if within_days < 0:
        raise InvalidInput("DAYS_INVALID", "--expiring-within needs a number of days >= 0",
                           "--expiring-within 须为不小于 0 的天数", field="expiring_within")
    now = clock.now()
    c = Certificate
    with auth.db.read() as s:
        return list(s.execute(
            select(c.serial).where(
                c.issuer_role == "issuing", c.enterprise_id.is_not(None),
                c.profile.in_(ENTERPRISE_PROFILES), c.status != "revoked",
                c.replaced_by.is_(None),
                c.not_after <= now + timedelta(days=within_days),
                c.not_after >= now - timedelta(days=auth.settings.renewal_grace_days))
            .order_by(c.not_after, c.serial)).scalars())
