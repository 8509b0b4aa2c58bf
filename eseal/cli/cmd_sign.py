"""``eseal sign``: apply the enterprise's electronic seal to a PDF with the holder's USB-Key.

This is the relying party's *client* side: it runs on the legal representative's machine,
where there is a USB-Key but no CA. It opens the token with the holder's PIN (the only
private-key operation is one signature by the seal key, through ``eseal.token.client``),
draws the seal from the registered name and credit code in the seal certificate, and reaches
the service only over HTTP (``--server``, default the home's base URL):

* ``POST {server}/tsa`` for the signature timestamp (B-T and above) and the document
  timestamp (B-LTA);
* ``GET {server}/crl/<ca>.crl`` for every CA in the chain and ``POST {server}/ocsp`` for the
  seal certificate, fetched *before* the token is asked to sign, so a revoked or frozen
  certificate is refused without a signature and the revocation data goes into the seal's own
  revision (B-LT).

The URLs come from the certificates' CRL distribution points and AIA, re-based onto
``--server`` (so a client behind a proxy or port-forward works with certificates that name
the public address). The CA token is never opened: the command does not touch the home's
database or its CA PIN, and works from a "client home" that only holds the user's token.
The work itself is the holder library's (``eseal.holder.sealing``, ``eseal.holder.revinfo``),
shared with the browser helper; this module only parses options and prints.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from eseal.cli.common import echo_json, home_option, read_secret
from eseal.errors import InvalidInput
from eseal.holder.sealing import check_server, seal_with_usbkey

if TYPE_CHECKING:
    from eseal.signing.sign import SealOptions

LEVEL_CHOICES = ("B-B", "B-T", "B-LT", "B-LTA")


def parse_position(text: str | None) -> tuple[float, float] | None:
    """``--at X,Y`` in PDF points (lower-left corner of the seal)."""
    if text is None:
        return None
    parts = text.replace(" ", "").split(",")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        x, y = (float(p) for p in parts)
    except ValueError as exc:
        raise InvalidInput("POSITION_INVALID", f"--at takes X,Y in points, got {text!r}",
                           f"--at 应为“X,Y”（单位：磅）：{text!r}", field="position") from exc
    return x, y


def build_options(*, page: int, at: str | None, field_name: str | None, reason: str | None,
                  location: str | None, level: str, certify: bool, size_pt: float,
                  paging: bool = False) -> SealOptions:
    from eseal.signing.sign import SealOptions

    if at is not None and field_name is not None:
        raise InvalidInput("PLACEMENT_CONFLICT", "give either --at or --field, not both",
                           "--at 与 --field 只能指定其一", field="position")
    return SealOptions(page=page, position=parse_position(at), field_name=field_name,
                       size_pt=size_pt, reason=reason, location=location,
                       level=level, certify=certify, paging=paging)  # type: ignore[arg-type]


def read_pdf(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InvalidInput("FILE_UNREADABLE", f"cannot read {path}: {exc.strerror}",
                           f"无法读取文件 {path}", field="file") from exc


def quiet_pyhanko() -> None:
    """pyHanko warns (to stderr, through logging's last resort) that revocation data is
    embedded "but fetching is not allowed": here that is the design (everything was fetched
    from --server first), not news for the user."""
    import logging

    for name in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(name).addHandler(logging.NullHandler())


def configure_client_tokens(home: str | None) -> Any:
    """Settings of the (client) home, with the PKCS#11 layer pointed at its tokens."""
    from eseal.ca.authority import configure_tokens
    from eseal.settings import load_settings

    settings = load_settings(home)
    configure_tokens(settings)
    return settings


def seal_options(f: Any) -> Any:
    """The placement and level options shared by ``eseal sign`` and ``eseal filing seal``."""
    for decorator in reversed([
        click.option("--token", "label", required=True, help="label of the holder's USB-Key"),
        click.option("--pin", default=None, help="USB-Key PIN (prefer --pin-stdin or the prompt)"),
        click.option("--pin-stdin", is_flag=True, help="read the PIN from one line of stdin"),
        click.option("--page", default=1, show_default=True, type=int, help="1-based page"),
        click.option("--at", default=None, metavar="X,Y",
                     help="lower-left corner of the seal in points (default: bottom right)"),
        click.option("--field", "field_name", default=None,
                     help="seal this (empty) signature field, or create it"),
        click.option("--reason", default=None, help="reason, e.g. 同意"),
        click.option("--location", default=None, help="where the seal was applied"),
        click.option("--level", default="B-LT", show_default=True,
                     type=click.Choice(LEVEL_CHOICES), help="PAdES baseline level"),
        click.option("--certify", is_flag=True,
                     help="certify the document (first seal only; later seals stay allowed)"),
        click.option("--size", "size_pt", default=120.0, show_default=True, type=float,
                     help="seal size in points"),
        click.option("--title", default=None, help="seal title below the star (e.g. 合同专用章)"),
        click.option("--paging-seal", "paging", is_flag=True,
                     help="also the paging seal (骑缝章): a slice of the seal at every page's "
                          "right edge, in the same signature"),
        click.option("--server", default=None,
                     help="eseal service for /tsa, CRLs and OCSP (default: the home's base URL)"),
    ]):
        f = decorator(f)
    return f


@click.command("sign")
@home_option
@click.argument("input_pdf", metavar="IN.pdf", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="sealed PDF to write")
@seal_options
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def command(home: str | None, input_pdf: Path, output: Path, label: str, pin: str | None,
            pin_stdin: bool, page: int, at: str | None, field_name: str | None,
            reason: str | None, location: str | None, level: str, certify: bool,
            size_pt: float, title: str | None, paging: bool, server: str | None,
            as_json: bool) -> None:
    """Seal IN.pdf with the USB-Key's seal key (PAdES, default B-LT) and write OUT.pdf."""
    from eseal.cli.cmd_seal import write_atomically
    from eseal.token.client import UsbKey

    quiet_pyhanko()
    options = build_options(page=page, at=at, field_name=field_name, reason=reason,
                            location=location, level=level, certify=certify, size_pt=size_pt,
                            paging=paging)
    pdf = read_pdf(input_pdf)
    settings = configure_client_tokens(home)
    base = server or settings.base_url
    check_server(base)
    secret = read_secret(pin, pin_stdin, "USB-Key PIN")
    with UsbKey.open(label, secret) as usbkey:
        result = seal_with_usbkey(pdf, usbkey=usbkey, options=options, server=base,
                                  title=title)
    write_atomically(output, result.sealed)
    if as_json:
        echo_json({"file": str(output), **result.to_dict()})
        return
    click.echo(f"sealed {input_pdf} -> {output}: {result.level}, seal of "
               f"{result.enterprise} ({result.credit_code}), certificate "
               f"{result.certificate_serial}")
    if result.services:
        click.echo(f"  services: {', '.join(result.services)}", file=sys.stdout)
