"""Annual-report reminders (年报提醒): "逾期未年报将被列入经营异常名录".

Every enterprise files its annual report for year Y−1 between 1 January and 30 June of year
Y (China time). The reminders go through the same outbox as the expiry notices, at 30, 7 and
1 days before 30 June (only the tightest due threshold, once each: the dedupe key is
``annual:<USCC>:<Y>:<days>``), to the enterprise's contact addresses and its emergency
contacts, *until* a sealed 年度报告 filing is received: an ``annual_report`` filing accepted
since 1 January of Y stops them. Time comes from the clock (``ESEAL_NOW``), so a test moves
through June without sleeping; ``eseal notify run`` queues them with the expiry notices.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from eseal import clock
from eseal.auth.accounts import queue_notice
from eseal.ca.authority import Authority
from eseal.ra.notices import NOTICE_ACTOR, recipients_of
from eseal.store.models import Enterprise
from eseal.store.models_enterprise import EmergencyContact
from eseal.store.models_filings import Filing

CHINA = ZoneInfo("Asia/Shanghai")
THRESHOLDS = (1, 7, 30)
KIND = "annual_report_reminder"
ANNUAL_REPORT = "annual_report"


def deadline(year: int) -> date:
    """The last day to file the report for ``year - 1``."""
    return date(year, 6, 30)


def due_threshold(now: datetime) -> tuple[int, int, int] | None:
    """(year, days left, threshold) when a reminder is due at ``now``, else None."""
    today = now.astimezone(CHINA).date()
    left = (deadline(today.year) - today).days
    if left < 0 or left > THRESHOLDS[-1]:
        return None
    return today.year, left, next(t for t in THRESHOLDS if left <= t)


def _compose(ent: Any, year: int, left: int) -> tuple[str, str]:
    subject = (f"{year - 1} 年度报告请于 {year}-06-30 前报送 / File your {year - 1} annual report "
               f"by {year}-06-30 ({ent.uscc})")
    body = "\n".join([
        f"{ent.name}：",
        f"贵单位 {year - 1} 年度报告的报送截止日为 {year} 年 6 月 30 日，还剩 {left} 天。"
        "逾期未报送将被列入经营异常名录。请经办人提交年度报告，由法定代表人加盖电子印章。",
        "",
        f"Dear {ent.name},",
        f"the annual report for {year - 1} is due by 30 June {year}, in {left} days. An "
        "enterprise that misses it is listed as operating abnormally. Submit it and have the "
        "legal representative seal it.",
        "",
        f"统一社会信用代码 / Unified social credit code: {ent.uscc}",
        "",
    ])
    return subject, body


def queue_due(auth: Authority) -> list[str]:
    """Queue the reminders due now (at most once per enterprise, year and threshold);
    returns their dedupe keys. Audited as one ``notice.queue`` event when anything is new."""
    now = clock.now()
    due = due_threshold(now)
    if due is None:
        return []
    year, left, threshold = due
    since = datetime(year, 1, 1, tzinfo=CHINA).astimezone(UTC)
    queued: list[str] = []
    with auth.db.write() as s:
        filed = set(s.execute(select(Filing.enterprise_id).where(
            Filing.filing_type == ANNUAL_REPORT, Filing.status == "accepted",
            Filing.accepted_at >= since)).scalars())
        for ent in s.execute(select(Enterprise).where(Enterprise.status == "active")
                             .order_by(Enterprise.id)).scalars():
            if ent.id in filed:
                continue
            to = list(recipients_of(ent.contact_email))
            to += [c for c in s.execute(select(EmergencyContact.email).where(
                EmergencyContact.enterprise_id == ent.id).order_by(EmergencyContact.id))
                .scalars() if c not in to]
            subject, body = _compose(ent, year, left)
            key = f"annual:{ent.uscc}:{year}:{threshold}"
            if queue_notice(s.connection(), recipient=", ".join(to), subject=subject,
                            body=body, kind=KIND, dedupe_key=key, now=now):
                queued.append(key)
        if queued:
            auth.audit.append(s, actor=NOTICE_ACTOR, action="notice.queue",
                              details={"queued": queued, "kind": KIND})
    return queued
