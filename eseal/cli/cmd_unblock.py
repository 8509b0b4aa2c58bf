"""``eseal unblock``: remote unblock (远程解锁) of a locked USB-Key through the service.

``request`` (on the holder's machine, no PIN), ``approve`` (the legal representative with
their own USB-Key, or an officer), ``complete`` (on the holder's machine: the new PIN is typed
here and set on the token; it is never sent).
"""

from __future__ import annotations

import click

from eseal.cli.common import echo_json, home_option, read_secret

server_option = click.option("--server", required=True, help="the eseal service URL")


def _client(home: str | None, server: str):  # type: ignore[no-untyped-def]
    from eseal.ca.authority import configure_tokens
    from eseal.cli.common import settings_for
    from eseal.holder.client import EsealClient

    configure_tokens(settings_for(home))
    return EsealClient(server)


@click.group("unblock")
def command() -> None:
    """Remote unblock of a locked USB-Key (远程解锁)."""


@command.command("request")
@home_option
@server_option
@click.option("--label", required=True, help="the locked USB-Key's label")
def request(home: str | None, server: str, label: str) -> None:
    """Ask for an unblock of a locked USB-Key."""
    from eseal.holder.unblock import request_unblock

    with _client(home, server) as client:
        echo_json(request_unblock(client, label))


@command.command("approve")
@home_option
@server_option
@click.option("--id", "request_id", required=True, type=int)
@click.option("--token", "label", required=True, help="your own USB-Key (you log in with it)")
@click.option("--pin", default=None, help="your PIN (or --pin-stdin, or a prompt)")
@click.option("--pin-stdin", is_flag=True)
def approve(home: str | None, server: str, request_id: int, label: str, pin: str | None,
            pin_stdin: bool) -> None:
    """Approve a request; prints the one-time authorisation to hand to the holder."""
    secret = read_secret(pin, pin_stdin, "PIN")
    with _client(home, server) as client:
        client.login_with_token(label, secret)
        echo_json(client.request("POST", f"/unblock-requests/{request_id}/approve"))


@command.command("complete")
@home_option
@server_option
@click.option("--id", "request_id", required=True, type=int)
@click.option("--label", required=True, help="the locked USB-Key's label")
@click.option("--authorisation", required=True, help="the one-time authorisation")
@click.option("--new-pin", default=None, help="the new PIN (or --pin-stdin, or a prompt)")
@click.option("--pin-stdin", is_flag=True)
def complete(home: str | None, server: str, request_id: int, label: str, authorisation: str,
             new_pin: str | None, pin_stdin: bool) -> None:
    """Unblock the key with the authorisation and set a new PIN on it."""
    from eseal.holder.unblock import finish_unblock

    secret = read_secret(new_pin, pin_stdin, "new PIN")
    with _client(home, server) as client:
        finish_unblock(client, request_id=request_id, authorisation=authorisation,
                       label=label, new_pin=secret)
    click.echo(f"token {label!r} unblocked with its new PIN; its SO PIN was rotated")
