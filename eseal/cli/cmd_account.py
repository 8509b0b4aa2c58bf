"""``eseal account``: accounts of people, kept for history when they leave."""

from __future__ import annotations

import click

from eseal.cli.common import authority, cli_actor, echo_json, home_option


@click.group("account")
def command() -> None:
    """Accounts (a person in a role: agent, legal representative, officer, auditor)."""


@command.command("disable")
@home_option
@click.option("--id", "account_id", required=True, type=int, help="the account id")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def disable(home: str | None, account_id: int, as_json: bool) -> None:
    """经办人离职: revoke the person's certificates (affiliationChanged), end their sessions,
    keep the account."""
    from eseal.ra.departures import disable_account

    with authority(home) as auth:
        result = disable_account(auth, account_id, actor=cli_actor())
    if as_json:
        echo_json(result)
        return
    click.echo(f"account {account_id} disabled; revoked {len(result['revoked'])} "
               f"certificate(s), ended {result['sessions_ended']} session(s)")


@command.command("list")
@home_option
@click.option("--uscc", default=None, help="one enterprise (default: every account)")
def list_(home: str | None, uscc: str | None) -> None:
    """Accounts as JSON."""
    from eseal.auth.accounts import list_accounts

    with authority(home, read_only=True) as auth:
        if uscc is None:
            items = list_accounts(auth, all_accounts=True)
        else:
            items = list_accounts(auth, enterprise_id=auth.enterprise(uscc).id)
    echo_json([a.to_dict() for a in items])
