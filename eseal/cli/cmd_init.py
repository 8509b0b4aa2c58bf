"""``eseal init``: create a CA home (token, keys, certificates, database) and the first
officer's USB-Key (an officer login certificate on its own token; its PIN is shown once);
``eseal init --join``: make a replica home for a CA that already exists (its database and
its token, perhaps served by ``p11-kit server``), creating no keys.

Either way the home records where its CA lives (``eseal.toml``, the database URL in
``secrets/database.url``), so later commands need no environment variables.
"""

from __future__ import annotations

import sys

import click

from eseal.cli.common import cli_actor, home_option, read_secret
from eseal.settings import load_settings


@click.command("init")
@home_option
@click.option("--base-url", default=None,
              help="where the service will be reachable (CRL, OCSP and AIA URLs point here); "
                   "a joined home takes the CA's own unless given")
@click.option("--officer-name", default="CA Officer", show_default=True,
              help="the first officer's name (on their login certificate)")
@click.option("--officer-label", default="eseal-officer", show_default=True,
              help="the label of the first officer's USB-Key")
@click.option("--join", "join", is_flag=True,
              help="join the CA already in the database (ESEAL_DATABASE_URL or "
                   "ESEAL_DATABASE_URL_FILE) as a replica home: no new keys")
@click.option("--ca-pin-file", type=click.Path(dir_okay=False, exists=True), default=None,
              help="with --join: a file holding the CA token's PIN (e.g. the first home's "
                   "secrets/ca.pin)")
@click.option("--ca-pin-stdin", is_flag=True, help="with --join: read the CA token PIN from stdin")
def command(home: str | None, base_url: str | None, officer_name: str,
            officer_label: str, join: bool, ca_pin_file: str | None,
            ca_pin_stdin: bool) -> None:
    """Create the CA token, the root and issuing CAs, OCSP and TSA certificates, and the
    first officer's USB-Key; or, with --join, a replica home of an existing CA."""
    if join:
        _join(home, base_url, ca_pin_file, ca_pin_stdin)
        return
    from eseal.ca.authority import Authority
    from eseal.ca.home import init_home
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


def _join(home: str | None, base_url: str | None, ca_pin_file: str | None,
          ca_pin_stdin: bool) -> None:
    from pathlib import Path

    from eseal.ca.home import join_home

    if ca_pin_file is not None:
        pin = Path(ca_pin_file).read_text(encoding="utf-8").strip()
    else:
        pin = read_secret(None, ca_pin_stdin or not sys.stdin.isatty(), "CA token PIN")
    settings = load_settings(home, base_url=base_url)
    result = join_home(settings, ca_pin=pin, actor=cli_actor(),
                       base_url_given=base_url is not None)
    click.echo(f"eseal replica home created: {result.home}")
    click.echo(f"  base URL:        {result.base_url}")
    click.echo(f"  root CA:         {result.root.subject.rfc4514_string()}")
    click.echo(f"  issuing CA:      {result.issuing.subject.rfc4514_string()}")
    for name, value in result.settings.items():
        if value and name != "base_url":
            click.echo(f"  {name + ':':<24}{value}")
