"""``eseal crl``: write the current full CRL of the issuing CA or the root to a file.

The same bytes the service serves at the CRL distribution point URLs
(``<base_url>/crl/issuing.crl``, ``<base_url>/crl/root.crl``): the newest stored CRL, signed
afresh first if there is none or it is past half its validity (``--fresh`` always signs a
new one, as every status change does).
"""

from __future__ import annotations

from pathlib import Path

import click

from eseal.cli.common import authority, echo_json, home_option


@click.command("crl")
@home_option
@click.option("--ca", "role", type=click.Choice(["issuing", "root"]), default="issuing",
              show_default=True, help="whose CRL")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="file to write (DER unless --pem)")
@click.option("--pem", "as_pem", is_flag=True, help="write PEM instead of DER")
@click.option("--fresh", is_flag=True, help="sign and publish a new CRL now")
@click.option("--json", "as_json", is_flag=True, help="describe the CRL as JSON")
def command(home: str | None, role: str, out: str, as_pem: bool, fresh: bool,
            as_json: bool) -> None:
    """Write the CA's current full CRL (monotonic CRL number, thisUpdate/nextUpdate)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from eseal.ca import status

    with authority(home) as auth:
        der = status.publish(auth, role) if fresh else status.current_crl(auth, role)
    crl = x509.load_der_x509_crl(der)
    data = crl.public_bytes(serialization.Encoding.PEM) if as_pem else der
    Path(out).write_bytes(data)
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    info = {"ca": role, "number": number, "this_update": crl.last_update_utc.isoformat(),
            "next_update": crl.next_update_utc.isoformat() if crl.next_update_utc else None,
            "entries": len(crl), "out": out}
    if as_json:
        echo_json(info)
    else:
        click.echo(f"CRL {number} of the {role} CA ({info['entries']} entries, next update "
                   f"{info['next_update']}) -> {out}")
