"""``eseal login``: log in to an eseal service with a USB-Key (challenge signed on the token).

Exit 0 and the account's name on success; on a refusal, one line with the server's code
(``LOGIN_REFUSED`` until the signature proved possession of the key, the exact reason after)
and exit 1. The session is ended again at once (this command proves the key works; scripts
use ``eseal.holder.client``); PINs and session tokens are never printed.
"""

from __future__ import annotations

import click

from eseal.cli.common import echo_json, home_option, read_secret


@click.command("login")
@home_option
@click.option("--token", "label", required=True, help="the USB-Key's label")
@click.option("--pin", default=None, help="the USB-Key's PIN (or --pin-stdin, or a prompt)")
@click.option("--pin-stdin", is_flag=True, help="read the PIN from one line of stdin")
@click.option("--server", required=True, help="the eseal service, e.g. https://ca.example")
@click.option("--origin", default=None,
              help="the public URL the service is known by, if --server is an internal "
                   "address behind it (default: --server)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def command(home: str | None, label: str, pin: str | None, pin_stdin: bool, server: str,
            origin: str | None, as_json: bool) -> None:
    """Log in with the login key on a USB-Key and name the account."""
    from eseal.ca.authority import configure_tokens
    from eseal.holder.client import EsealClient
    from eseal.settings import load_settings

    configure_tokens(load_settings(home))  # this home's PKCS#11 module and SoftHSM configuration
    secret = read_secret(pin, pin_stdin, "PIN")
    with EsealClient(server, origin=origin) as client:
        result = client.login_with_token(label, secret)
        client.logout()
    account = result["account"]
    if as_json:
        echo_json({"account": account, "session_id": result["session_id"],
                   "certificate_serial": result["certificate_serial"],
                   "new_network": result["new_network"], "logged_out": True})
        return
    where = f", {account['enterprise']}" if account.get("enterprise") else ""
    click.echo(f"logged in as {account['name']} ({account['role']}{where})")
    if result.get("new_network"):
        click.echo("  first login from this network: a notice is queued")
    click.echo(f"  session {result['session_id']} opened and ended again")
