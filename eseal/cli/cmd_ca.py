"""``eseal ca``: the CA's own certificates."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography.hazmat.primitives import serialization

from eseal.cli.common import authority, home_option


@click.group("ca")
def command() -> None:
    """The certificate authority itself."""


@command.command("export")
@home_option
@click.argument("directory", type=click.Path(file_okay=False))
def export(home: str | None, directory: str) -> None:
    """Write root.pem, issuing.pem, ocsp.pem and tsa.pem into DIRECTORY."""
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    with authority(home) as auth:
        for role in ("root", "issuing", "ocsp", "tsa"):
            pem = auth.certificate(role).public_bytes(serialization.Encoding.PEM)
            (out / f"{role}.pem").write_bytes(pem)
            click.echo(str(out / f"{role}.pem"))
