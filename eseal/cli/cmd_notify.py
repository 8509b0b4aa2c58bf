"""``eseal notify``: expiry notices (90/30/7 days by default) through the outbox by SMTP.

Run it from cron or a timer as often as you like: what was queued is never queued twice, and
what was sent is never marked twice (see ``eseal.ra.notices``).
"""

from __future__ import annotations

import click

from eseal.cli.common import authority, echo_json, home_option
from eseal.errors import ServiceUnavailable


@click.group("notify")
def command() -> None:
    """Expiry notices to enterprise contacts (SMTP host and port are settings)."""


@command.command("run")
@home_option
@click.option("--smtp-host", default=None, help="override the smtp_host setting")
@click.option("--smtp-port", type=int, default=None, help="override the smtp_port setting")
def run(home: str | None, smtp_host: str | None, smtp_port: int | None) -> None:
    """Queue the notices that are due and send every unsent one; prints a JSON summary.

    Exit status 1 if a message could not be sent (it stays queued for the next run).
    """
    from eseal.ra import notices

    with authority(home) as auth:
        result = notices.run(auth, host=smtp_host, port=smtp_port)
    echo_json(result)
    if result["failed"]:
        for item in result["failed"]:
            click.echo(ServiceUnavailable("SMTP_SEND_FAILED", str(item["error"]),
                                          "邮件发送失败", field=str(item["message_id"])
                                          ).one_line(), err=True)
        failed = len(result["failed"])
        raise ServiceUnavailable("NOTICES_NOT_SENT",
                                 f"{failed} notice(s) could not be sent; they stay queued for "
                                 "the next run", f"{failed} 条提醒未能发送，仍在待发队列中")


@command.command("list")
@home_option
@click.option("--pending", is_flag=True, help="only the messages not sent yet")
def list_(home: str | None, pending: bool) -> None:
    """The outbox: one line per message (JSON)."""
    from sqlalchemy import select

    from eseal.store.models import Outbox

    with authority(home, read_only=True) as auth, auth.db.read() as s:
        q = select(Outbox).order_by(Outbox.id)
        if pending:
            q = q.where(Outbox.sent.is_(False))
        rows = [{"message_id": r.message_id, "recipient": r.recipient, "kind": r.kind,
                 "dedupe_key": r.dedupe_key, "created_at": r.created_at.isoformat(),
                 "sent": r.sent, "sent_at": r.sent_at.isoformat() if r.sent_at else None,
                 "attempts": r.attempts, "last_error": r.last_error}
                for r in s.execute(q).scalars()]
    echo_json(rows)
