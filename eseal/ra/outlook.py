"""What lies ahead for a holder's certificates: days left, the renewal window, what happens
next — computed from the RA's own rules, for the portal's home page.

Nothing here decides anew: the window and the renewed certificate's validity come from
:func:`eseal.ra.renewal.renewal_window` and :func:`eseal.ra.renewal.renewal_terms` (90 days
before notAfter to 90 days after, remaining time carried over, the three-year key-age limit,
the issuing CA's own notAfter), the expiry notices' thresholds from the settings
(``notice_days``, as :mod:`eseal.ra.notices` sends them), and the annual report's deadline
and "filed" test from :mod:`eseal.ra.annual_reminders`. Days left are counted as the notices
count them (whole days, rounded up). The page turns each ``phase`` and revocation reason into
plain words; this module only says which applies.

Which certificates: those on the holder's own USB-Key(s) (:func:`eseal.ra.self_freeze.
holder_tokens`) and the enterprise's seal certificates (an agent sees when the seal they
prepare filings for runs out); the latest of each (a renewed certificate's predecessor is
left out), and nothing whose grace period ended over a year ago.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import or_, select

from eseal import clock
from eseal.ca.authority import Authority
from eseal.errors import Conflict
from eseal.ra.annual_reminders import ANNUAL_REPORT, CHINA, THRESHOLDS, deadline
from eseal.ra.renewal import renewal_terms, renewal_window
from eseal.ra.self_freeze import holder_tokens
from eseal.store.models import Certificate, Enterprise, FreezeWindow
from eseal.store.models_filings import Filing

#: how long after its grace period ended a certificate is still shown (as lapsed)
LAPSED_SHOWN_DAYS = 365

Phase = Literal["frozen", "revoked", "before_window", "window_open", "grace", "lapsed"]


@dataclass(frozen=True)
class NextRenewal:
    """What a renewal would give, judged at the moment the window opens (or now, if open):
    the new notAfter, or the refusal code the RA would answer (``REKEY_REQUIRED`` …)."""

    not_after: datetime | None
    carried_over: bool
    capped: bool
    refusal: str | None = None
    refusal_detail: str | None = None


@dataclass(frozen=True)
class CertOutlook:
    serial: str
    profile: str
    holder: str
    token_label: str | None
    mine: bool  # on the viewer's own USB-Key
    status: str  # good | hold | revoked
    reason: str | None
    since: datetime | None  # frozen or revoked at
    not_before: datetime
    not_after: datetime
    days_left: int  # whole days to notAfter, rounded up; negative once expired
    window_opens: datetime
    window_closes: datetime
    phase: Phase
    next: NextRenewal | None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in (
            "serial", "profile", "holder", "token_label", "mine", "status", "reason",
            "days_left", "phase")}
        for k in ("since", "not_before", "not_after", "window_opens", "window_closes"):
            value = getattr(self, k)
            out[k] = value.isoformat() if value is not None else None
        out["next"] = None if self.next is None else {
            "not_after": self.next.not_after.isoformat() if self.next.not_after else None,
            "carried_over": self.next.carried_over, "capped": self.next.capped,
            "refusal": self.next.refusal}
        return out


@dataclass(frozen=True)
class AnnualReport:
    """The annual report (年度报告) for ``report_year`` is due by ``due`` (30 June, China
    time); ``filed_at`` when an accepted annual_report filing stops the reminders."""

    report_year: int
    due: date
    days_left: int  # negative once the deadline passed
    filed_at: datetime | None
    reminder_days: tuple[int, ...]


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until ``not_after``, rounded up (as the expiry notices count them)."""
    return math.ceil((not_after - now) / timedelta(days=1))


def _phase(row: Any, now: datetime, opens: datetime, closes: datetime) -> Phase:
    if row.status == "hold":
        return "frozen"
    if row.status == "revoked":
        return "revoked"
    if now < opens:
        return "before_window"
    if now <= row.not_after:
        return "window_open"
    if now <= closes:
        return "grace"
    return "lapsed"


def _next(auth: Authority, row: Any, now: datetime, opens: datetime,
          phase: Phase) -> NextRenewal | None:
    if phase not in ("before_window", "window_open", "grace"):
        return None
    try:
        terms = renewal_terms(not_after=row.not_after, now=max(now, opens),
                              settings=auth.settings,
                              issuer_not_after=auth.certificate("issuing").not_valid_after_utc,
                              key_certified_at=row.key_certified_at, serial=row.serial)
    except Conflict as refusal:
        return NextRenewal(None, False, False, refusal.code, refusal.message_zh)
    return NextRenewal(terms.not_after, terms.carried_over, terms.capped)


def certificates_outlook(auth: Authority, *, enterprise_id: int, role: str,
                         holder: str) -> list[CertOutlook]:
    """The holder's own certificates first (login before seal), then the enterprise's other
    seal certificates; each with its phase and what a renewal would give."""
    now = clock.now()
    # a lapsed certificate stays listed for a year after its grace period ("apply anew")
    horizon = timedelta(days=auth.settings.renewal_grace_days + LAPSED_SHOWN_DAYS)
    c = Certificate
    with auth.db.read() as s:
        labels = holder_tokens(s, enterprise_id=enterprise_id, role=role, holder=holder)
        mine = c.token_label.in_(labels) if labels else c.serial.is_(None)
        rows = s.execute(select(c).where(
            c.enterprise_id == enterprise_id, c.issuer_role == "issuing",
            c.replaced_by.is_(None), c.not_after >= now - horizon,
            or_(mine, c.profile == "seal"))).scalars().all()
        windows = {w.serial: w.frozen_at for w in s.execute(select(FreezeWindow).where(
            FreezeWindow.serial.in_([r.serial for r in rows]),
            FreezeWindow.unfrozen_at.is_(None))).scalars()}
    out = []
    for row in rows:
        opens, closes = renewal_window(row.not_after, auth.settings)
        phase = _phase(row, now, opens, closes)
        since = windows.get(row.serial, row.revoked_at) if row.status != "good" else None
        out.append(CertOutlook(
            serial=row.serial, profile=row.profile, holder=row.holder,
            token_label=row.token_label, mine=row.token_label in labels, status=row.status,
            reason=row.revocation_reason, since=since, not_before=row.not_before,
            not_after=row.not_after, days_left=days_left(row.not_after, now),
            window_opens=opens, window_closes=closes, phase=phase,
            next=_next(auth, row, now, opens, phase)))
    out.sort(key=lambda o: (not o.mine, o.profile != "login", o.not_after, o.serial))
    return out


def annual_report(auth: Authority, enterprise_id: int) -> AnnualReport:
    """This year's annual report: due 30 June (China time) for last year; filed or not."""
    now = clock.now()
    today = now.astimezone(CHINA).date()
    since = datetime(today.year, 1, 1, tzinfo=CHINA).astimezone(UTC)
    with auth.db.read() as s:
        filed = s.execute(select(Filing.accepted_at).where(
            Filing.enterprise_id == enterprise_id, Filing.filing_type == ANNUAL_REPORT,
            Filing.status == "accepted", Filing.accepted_at >= since)
            .order_by(Filing.accepted_at).limit(1)).scalar()
    due = deadline(today.year)
    return AnnualReport(report_year=today.year - 1, due=due, days_left=(due - today).days,
                        filed_at=filed, reminder_days=tuple(sorted(THRESHOLDS, reverse=True)))


def enterprise_of(auth: Authority, enterprise_id: int) -> dict[str, str]:
    """The enterprise as registered: its exact name (never normalised), legal
    representative and status."""
    with auth.db.read() as s:
        ent = s.get(Enterprise, enterprise_id)
        if ent is None:
            from eseal.errors import NotFound

            raise NotFound("ENTERPRISE_NOT_FOUND", f"no enterprise {enterprise_id}",
                           f"找不到企业 {enterprise_id}", field="enterprise")
        return {"uscc": ent.uscc, "name": ent.name, "legal_rep": ent.legal_rep,
                "status": ent.status}


def recent_logins(auth: Authority, *, enterprise_id: int, account_id: int, session_id: str,
                  limit: int = 10) -> list[dict[str, Any]]:
    """The account's latest login attempts (``eseal.auth.accounts.login_history``), each
    marked ``this_session`` when it opened the session asking."""
    from eseal.auth.accounts import login_history
    from eseal.store.models_login import login_attempts

    rows = login_history(auth, enterprise_id=enterprise_id, account_id=account_id,
                         limit=limit)
    with auth.db.engine.connect() as conn:
        ours = set(conn.execute(select(login_attempts.c.id).where(
            login_attempts.c.id.in_([r["id"] for r in rows]),
            login_attempts.c.session_id == session_id)).scalars())
    for row in rows:
        row["this_session"] = row["id"] in ours
    return rows


def is_login_of(auth: Authority, *, account_id: int, login_id: int) -> bool:
    """Whether login attempt ``login_id`` was one of this account's."""
    from eseal.store.models_login import login_attempts

    with auth.db.engine.connect() as conn:
        return conn.execute(select(login_attempts.c.id).where(
            login_attempts.c.id == login_id,
            login_attempts.c.account_id == account_id)).first() is not None
