"""``eseal audit``: verify the tamper-evident log (auditors) and write checkpoints."""

from __future__ import annotations

import sys

import click

from eseal.cli.common import authority, echo_json, home_option


@click.group("audit")
def command() -> None:
    """The hash-chained, checkpoint-signed audit log."""


@command.command("verify")
@home_option
@click.option("--json", "as_json", is_flag=True)
def verify(home: str | None, as_json: bool) -> None:
    """Check the chain and the signed checkpoints; name the first row that was tampered with."""
    with authority(home, read_only=True) as auth, auth.db.read() as s:
        report = auth.audit.verify(s)
    if as_json:
        echo_json(report.to_dict())
    elif report.ok:
        click.echo(f"audit log intact: {report.events} events, {report.checkpoints} checkpoints")
    else:
        click.echo(f"audit log TAMPERED: {report.findings[0].describe()} "
                   f"({len(report.findings)} problem(s))", err=True)
    if not report.ok:
        sys.exit(1)


@command.command("checkpoint")
@home_option
def checkpoint(home: str | None) -> None:
    """Sign the current head of the log with the CA token's audit key."""
    with authority(home) as auth, auth.db.write() as s:
        event = auth.audit.checkpoint(s)
    click.echo(f"checkpoint at event {event}" if event else "nothing new since last checkpoint")
