"""``eseal enterprise``: register and list enterprises (officer console)."""

from __future__ import annotations

import click

from eseal.cli.common import authority, cli_actor, echo_json, home_option


@click.group("enterprise")
def command() -> None:
    """Enterprises, identified by unified social credit code (统一社会信用代码)."""


@command.command("add")
@home_option
@click.option("--uscc", required=True, help="18-character unified social credit code")
@click.option("--name", required=True, help="registered name, exactly as on the licence")
@click.option("--legal-rep", required=True, help="legal representative (法定代表人)")
@click.option("--email", default=None, help="contact address for expiry notices")
def add(home: str | None, uscc: str, name: str, legal_rep: str, email: str | None) -> None:
    """Register an enterprise after vetting its licence."""
    with authority(home) as auth:
        ent = auth.register_enterprise(uscc=uscc, name=name, legal_rep=legal_rep,
                                       contact_email=email, actor=cli_actor())
    click.echo(f"registered {ent.uscc} {ent.name}")


@command.command("list")
@home_option
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_(home: str | None, as_json: bool) -> None:
    with authority(home) as auth:
        rows = auth.enterprises()
    items = [{"uscc": e.uscc, "name": e.name, "legal_rep": e.legal_rep, "status": e.status}
             for e in rows]
    if as_json:
        echo_json(items)
        return
    for item in items:
        click.echo(f"{item['uscc']}  {item['status']:<12}  {item['name']}  ({item['legal_rep']})")


@command.command("deregister")
@home_option
@click.option("--uscc", required=True)
def deregister(home: str | None, uscc: str) -> None:
    """Mark an enterprise deregistered: nothing new is issued to it."""
    with authority(home) as auth:
        auth.deregister_enterprise(uscc, actor=cli_actor())
    click.echo(f"deregistered {uscc}")
