"""``eseal seal image``: draw an enterprise's round red seal as a PNG.

The name on a seal must be the enterprise's *registered* name, character for character (a
rare character such as 𠮷 typed as 吉 is the classic "信息不一致"), so the command takes only the
credit code and reads the name from the local home's database. It needs neither the CA token
nor a running service: the drawing is not what binds a document (the signature is), it only
has to be faithful.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import click

from eseal.cli.common import echo_json, home_option
from eseal.errors import ConfigError
from eseal.settings import Settings, load_settings


def home_database(settings: Settings) -> Any:
    """The home's database, opened without the CA token; refuses a home never initialised
    (opening would otherwise create an empty database in a mistyped directory)."""
    from eseal.store import open_database

    if not settings.database_url and not (settings.home / "eseal.db").is_file():
        raise ConfigError("HOME_NOT_INITIALISED",
                          f"the eseal home {settings.home} has no database: run `eseal init` "
                          "or pass --home",
                          f"eseal 目录 {settings.home} 中没有数据库："
                          "请先运行 `eseal init` 或指定 --home",
                          field="home")
    return open_database(settings.database)


def registered_enterprise(settings: Settings, uscc: str) -> Any:
    """The enterprise row for a credit code (``ENTERPRISE_NOT_REGISTERED`` if unknown)."""
    from eseal.ca.authority import Authority
    from eseal.pki.identity import validate_uscc

    code = validate_uscc(uscc)
    db = home_database(settings)
    with db.read() as s:
        return Authority.enterprise_row(s, code)


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same directory, so a
    failure never leaves half a file (or destroys the input when both are the same path)."""
    directory = path.resolve().parent
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@click.group("seal")
def command() -> None:
    """Company seal images (印章图片)."""


@command.command("image")
@home_option
@click.option("--enterprise", "uscc", required=True,
              help="unified social credit code; the registered name comes from the home")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write")
@click.option("--title", default=None, help="seal title below the star, e.g. 合同专用章")
@click.option("--size", "size_px", default=600, show_default=True, type=int,
              help="width and height in pixels")
@click.option("--no-code", is_flag=True, help="leave the credit code off the lower arc")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def image(home: str | None, uscc: str, output: Path, title: str | None, size_px: int,
          no_code: bool, as_json: bool) -> None:
    """Draw the seal of a registered enterprise as a transparent PNG."""
    from eseal.signing.seal_image import SealSpec, render_seal

    ent = registered_enterprise(load_settings(home), uscc)
    png = render_seal(SealSpec(name=ent.name, uscc=None if no_code else ent.uscc, title=title,
                               size_px=size_px))
    write_atomically(output, png)
    info = {"file": str(output), "uscc": ent.uscc, "name": ent.name, "title": title,
            "size_px": size_px, "bytes": len(png)}
    if as_json:
        echo_json(info)
    else:
        click.echo(f"seal image for {ent.uscc} {ent.name} written to {output} "
                   f"({size_px}x{size_px} px)")
