"""``eseal init``: create a CA home (token, keys, certificates, database) and the first
officer's USB-Key (an officer login certificate on its own token; its PIN is shown once)."""

from __future__ import annotations

import click

from eseal.cli.common import cli_actor, home_option
from eseal.settings import load_settings


@click.command("init")
@home_option
@click.option("--base-url", default=None,
              help="where the service will be reachable (CRL, OCSP and AIA URLs point here)")
@click.option("--officer-name", default="CA Officer", show_default=True,
              help="the first officer's name (on their login certificate)")
@click.option("--officer-label", default="eseal-officer", show_default=True,
              help="the label of the first officer's USB-Key")
def command(home: str | None, base_url: str | None, officer_name: str,
            officer_label: str) -> None:
    """Create the CA token, the root and issuing CAs, OCSP and TSA certificates, and the
    first officer's USB-Key."""
    from eseal.ca.authority import Authority, init_home
    from eseal.pki.identity import validate_person_name
    from eseal.ra.staff import provision_staff_token
    from eseal.token.usbkey import check_label

    validate_person_name(officer_name, "officer_name")  # refuse before anything is created
    check_label(officer_label)
    settings = load_settings(home, base_url=base_url)
    result = init_home(settings, actor=cli_actor())
    with Authority.open(load_settings(home, base_url=base_url)) as auth:
        officer = provision_staff_token(auth, label=officer_label, name=officer_name,
                                        role="officer", actor=cli_actor())
    click.echo(f"eseal home created: {result.home}")
    click.echo(f"  base URL:        {result.base_url}")
    click.echo(f"  CA token PIN in: {result.ca_pin_file} (mode 0600)")
    click.echo(f"  root CA:         {result.root.subject.rfc4514_string()}")
    click.echo(f"  issuing CA:      {result.issuing.subject.rfc4514_string()}")
    click.echo(f"  first officer:   {officer.name}, USB-Key {officer.label!r}, "
               f"login certificate {officer.serial}")
    click.echo("CA token SO PIN (shown once, keep it offline; needed only to unblock the CA "
               "token):")
    click.echo(f"  {result.ca_so_pin}")
    click.echo(f"PIN of the first officer's USB-Key {officer.label!r} (shown once; log in with "
               f"`eseal login --token {officer.label} --server URL`):")
    click.echo(f"  {officer.pin}")
