"""``eseal init``: create a CA home (token, keys, certificates, database)."""

from __future__ import annotations

import click

from eseal.cli.common import cli_actor, home_option
from eseal.settings import load_settings


@click.command("init")
@home_option
@click.option("--base-url", default=None,
              help="where the service will be reachable (CRL, OCSP and AIA URLs point here)")
def command(home: str | None, base_url: str | None) -> None:
    """Create the CA token, the root and issuing CAs, OCSP and TSA certificates."""
    from eseal.ca.authority import init_home

    settings = load_settings(home, base_url=base_url)
    result = init_home(settings, actor=cli_actor())
    click.echo(f"eseal home created: {result.home}")
    click.echo(f"  base URL:        {result.base_url}")
    click.echo(f"  CA token PIN in: {result.ca_pin_file} (mode 0600)")
    click.echo(f"  root CA:         {result.root.subject.rfc4514_string()}")
    click.echo(f"  issuing CA:      {result.issuing.subject.rfc4514_string()}")
    click.echo("CA token SO PIN (shown once, keep it offline; needed only to unblock the CA "
               "token):")
    click.echo(f"  {result.ca_so_pin}")
