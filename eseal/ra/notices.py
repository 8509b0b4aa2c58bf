"""Expiry notices (到期提醒) by e-mail, through an outbox so that none is ever lost.

At each threshold of ``notice_days`` (90, 30 and 7 days before notAfter by default) the
enterprise's contacts get one bilingual (Chinese and English) mail per certificate. Two
steps, each safe to repeat:

1. ``queue_due`` writes a row per due notice into ``outbox`` in one transaction. The row's
   ``dedupe_key`` (``expiry:<serial>:<days>``) is unique, so a notice is queued once however
   often this runs; the Message-ID (``<expiry-<serial>-<days>d@<host of base_url>>``) and
   the whole message are fixed in the row at that moment.
2. ``send_queued`` sends every unsent row over SMTP (``smtp_host``/``smtp_port``) and marks
   it sent. It counts the attempt *before* sending and marks the row *after* the server
   accepted it, so a crash in between sends the same message, with the same Message-ID,
   again on the next run (receivers drop the duplicate), and a row is marked sent once.
   Each row is claimed while it is sent (``eseal.store.db.RowClaims``), so any number of
   runs of ``eseal notify`` at once, on any hosts, send each message once.

Only the tightest threshold due is queued: a certificate found 20 days before expiry gets
the 30-day notice, not a late 90-day one as well. Certificates already renewed, revoked or
frozen, and those of deregistered enterprises or without a contact address, get none.
"""

from __future__ import annotations

import math
import smtplib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import select, update

from eseal import clock
from eseal.errors import EsealError
from eseal.store.db import OUTBOX_CLAIMS, RowClaims, insert_if_new
from eseal.store.models import Certificate, Enterprise, Outbox

if TYPE_CHECKING:
    from eseal.ca.authority import Authority

NOTICE_ACTOR = "system:notify"
KIND = "expiry"
_OUTBOX = Outbox.__table__
_PROFILE_ZH = {"login": "登录", "seal": "电子签章"}


@dataclass(frozen=True)
class Notice:
    """One due expiry notice, before it is queued."""

    serial: str
    days: int  # the threshold
    recipients: tuple[str, ...]
    subject: str
    body: str
    message_id: str

    @property
    def dedupe_key(self) -> str:
        return f"expiry:{self.serial}:{self.days}"


def recipients_of(contact: str | None) -> tuple[str, ...]:
    """The addresses in an enterprise's contact field (comma or semicolon separated)."""
    if not contact:
        return ()
    parts = contact.replace(";", ",").split(",")
    return tuple(p.strip() for p in parts if p.strip() and "@" in p)


def message_id(serial: str, days: int, base_url: str) -> str:
    host = urlsplit(base_url).hostname or "localhost"
    return f"<expiry-{serial}-{days}d@{host}>"


def _compose(row: Any, ent: Any, days: int, now: datetime, settings: Any) -> tuple[str, str]:
    left = max(0, math.ceil((row.not_after - now) / timedelta(days=1)))
    until = row.not_after.strftime("%Y-%m-%d %H:%M UTC")
    profile_zh = _PROFILE_ZH.get(row.profile, row.profile)
    subject = (f"证书将于 {until} 到期 / Certificate expires on {until} "
               f"({ent.uscc}, {row.serial})")
    body = "\n".join([
        f"{ent.name}：",
        "",
        f"贵单位的{profile_zh}证书（持有人 {row.holder}，序列号 {row.serial}）将于 {until} "
        f"到期，剩余约 {left} 天。",
        f"请在到期前办理续期：续期自到期前 {settings.renewal_window_days} 天开放，"
        f"到期后 {settings.renewal_grace_days} 天内仍可办理。",
        "",
        f"Dear {ent.name},",
        "",
        f"the {row.profile} certificate of your organisation (holder {row.holder}, serial "
        f"{row.serial}) expires on {until}, in about {left} days.",
        f"Please renew it before then: renewal opens {settings.renewal_window_days} days "
        f"before expiry and stays open for {settings.renewal_grace_days} days after it.",
        "",
        f"统一社会信用代码 / Unified social credit code: {ent.uscc}",
        f"— eseal ({settings.base_url})",
        "",
    ])
    return subject, body


def due_notices(auth: Authority) -> list[Notice]:
    """The notices due now (queued or not), one per certificate at most."""
    settings = auth.settings
    thresholds = sorted({d for d in settings.notice_days if d > 0})
    if not thresholds:
        return []
    now = clock.now()
    c, e = Certificate, Enterprise
    with auth.db.read() as s:
        rows = s.execute(
            select(c, e).join(e, e.id == c.enterprise_id).where(
                c.issuer_role == "issuing", c.status == "good", c.replaced_by.is_(None),
                c.not_after > now, c.not_after <= now + timedelta(days=thresholds[-1]),
                e.status == "active")
            .order_by(c.not_after, c.serial)).all()
    notices = []
    for row, ent in rows:
        to = recipients_of(ent.contact_email)
        if not to:
            continue
        days = next(d for d in thresholds if row.not_after - now <= timedelta(days=d))
        subject, body = _compose(row, ent, days, now, settings)
        notices.append(Notice(row.serial, days, to, subject, body,
                              message_id(row.serial, days, settings.base_url)))
    return notices


def queue_due(auth: Authority) -> list[str]:
    """Queue every due notice not queued before, in one transaction; returns dedupe keys."""
    notices = due_notices(auth)
    if not notices:
        return []
    queued: list[str] = []
    details: dict[str, Any] = {"queued": queued}
    now = clock.now()
    try:
        _queue(auth, notices, queued, details, now)
    except _NothingNew:
        return []
    return queued


class _NothingNew(Exception):
    """Everything due was queued already: roll back, write nothing, not even an event."""


def _queue(auth: Authority, notices: list[Notice], queued: list[str], details: dict[str, Any],
           now: datetime) -> None:
    with auth.change(actor=NOTICE_ACTOR, action="notice.queue", details=details) as s:
        conn = s.connection()
        known = set(conn.execute(select(_OUTBOX.c.dedupe_key).where(
            _OUTBOX.c.dedupe_key.in_([n.dedupe_key for n in notices]))).scalars())
        for n in notices:
            if n.dedupe_key in known:
                continue
            if insert_if_new(conn, _OUTBOX, ("dedupe_key",), {
                    "message_id": n.message_id, "recipient": ", ".join(n.recipients),
                    "subject": n.subject, "body": n.body, "kind": KIND, "created_at": now,
                    "sent_at": None, "attempts": 0, "last_error": None,
                    "dedupe_key": n.dedupe_key, "sent": False}):  # else queued by another run
                queued.append(n.dedupe_key)
        if not queued:
            raise _NothingNew


def build_message(row: Any, sender: str) -> EmailMessage:
    """The mail of an outbox row; everything in it comes from the row, so a resend is the
    same message with the same Message-ID."""
    msg = EmailMessage()
    msg["Message-ID"] = row.message_id
    msg["Date"] = format_datetime(row.created_at)
    msg["From"] = sender
    msg["To"] = row.recipient
    msg["Subject"] = row.subject
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(row.body, charset="utf-8")
    return msg


@dataclass
class SendReport:
    sent: list[str] = field(default_factory=list)  # Message-IDs
    failed: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "failed": self.failed}


def send_queued(auth: Authority, *, host: str | None = None, port: int | None = None,
                after_send: Callable[[str], None] | None = None,
                timeout: float = 30.0) -> SendReport:
    """Send every unsent outbox row; ``after_send(message_id)`` runs between the server's
    acceptance and marking the row (tests inject a crash there)."""
    settings = auth.settings
    report = SendReport()
    with auth.db.read() as s:
        rows = s.execute(select(_OUTBOX).where(_OUTBOX.c.sent.is_(False))
                         .order_by(_OUTBOX.c.id)).all()
    if not rows:
        return report
    try:
        smtp = smtplib.SMTP(host or settings.smtp_host, port or settings.smtp_port,
                            timeout=timeout)
    except OSError as exc:
        raise EsealError("SMTP_UNAVAILABLE",
                         f"cannot reach the SMTP server {host or settings.smtp_host}:"
                         f"{port or settings.smtp_port}: {exc}; {len(rows)} notice(s) stay "
                         "queued",
                         f"无法连接邮件服务器，{len(rows)} 条提醒仍在待发队列中",
                         field="smtp_host") from exc
    with smtp, RowClaims(auth.db, OUTBOX_CLAIMS) as claims:
        for row in rows:
            # claimed while it is being sent, so a racing `notify run` skips it; counted
            # only while still unsent (the other run may have finished it meanwhile)
            if not claims.take(row.id):
                continue
            try:
                if not _send_one(auth, smtp, row, report, after_send):
                    break
            finally:
                claims.release(row.id)
    return report


def _send_one(auth: Authority, smtp: smtplib.SMTP, row: Any, report: SendReport,
              after_send: Callable[[str], None] | None) -> bool:
    """Send one claimed row; False when the SMTP connection is gone (stop the run)."""
    with auth.db.write() as s:
        counted = s.execute(update(_OUTBOX).where(_OUTBOX.c.id == row.id,
                                                  _OUTBOX.c.sent.is_(False))
                            .values(attempts=_OUTBOX.c.attempts + 1)).rowcount
    if not counted:
        return True
    try:
        smtp.send_message(build_message(row, auth.settings.smtp_sender))
    except (smtplib.SMTPException, OSError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        with auth.db.write() as s:
            s.execute(update(_OUTBOX).where(_OUTBOX.c.id == row.id).values(last_error=error))
        report.failed.append({"message_id": row.message_id, "error": error})
        return not isinstance(exc, smtplib.SMTPServerDisconnected | OSError)
    if after_send is not None:
        after_send(row.message_id)
    with auth.change(actor=NOTICE_ACTOR, action="notice.send", target=row.recipient,
                     details={"message_id": row.message_id,
                              "dedupe_key": row.dedupe_key}) as s:
        s.execute(update(_OUTBOX).where(_OUTBOX.c.id == row.id, _OUTBOX.c.sent.is_(False))
                  .values(sent=True, sent_at=clock.now(), last_error=None))
    report.sent.append(row.message_id)
    return True


def run(auth: Authority, *, host: str | None = None, port: int | None = None,
        after_send: Callable[[str], None] | None = None) -> dict[str, Any]:
    """What ``eseal notify run`` does: queue what is due (expiry notices and annual-report
    reminders), then send everything unsent."""
    from eseal.ra import annual_reminders

    queued = queue_due(auth) + annual_reminders.queue_due(auth)
    report = send_queued(auth, host=host, port=port, after_send=after_send)
    return {"queued": queued, **report.to_dict()}
