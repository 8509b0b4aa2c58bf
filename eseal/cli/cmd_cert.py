"""``eseal cert``: issue and inspect certificates (officer console)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eseal.cli.common import authority, cli_actor, echo_json, home_option
from eseal.errors import Conflict, EsealError, InvalidInput


@click.group("cert")
def command() -> None:
    """Enterprise certificates: issue, list, show, renew, freeze, unfreeze, revoke."""


@command.command("issue")
@home_option
@click.option("--csr", "csr_file", required=True, type=click.Path(dir_okay=False))
@click.option("--enterprise", "uscc", required=True, help="unified social credit code")
@click.option("--profile", type=click.Choice(["login", "seal"]), required=True)
@click.option("--holder", required=True, help="the person (login) or seal keeper (seal)")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="write the PEM here (default: stdout)")
def issue(home: str | None, csr_file: str, uscc: str, profile: str, holder: str,
          out: str | None) -> None:
    """Issue a certificate from a CSR for a registered enterprise."""
    try:
        data = Path(csr_file).read_bytes()
    except OSError as exc:
        raise InvalidInput("CSR_UNREADABLE", f"cannot read {csr_file}: {exc.strerror}",
                           f"无法读取 {csr_file}", field="csr") from exc
    with authority(home) as auth:
        issued = auth.issue(data, uscc=uscc, profile=profile, holder=holder, actor=cli_actor())
    if out:
        Path(out).write_bytes(issued.pem)
        click.echo(f"issued {issued.serial} -> {out}")
    else:
        click.echo(issued.pem.decode(), nl=False)


def _row_dict(row: Any, uscc: str | None) -> dict[str, Any]:
    return {
        "serial": row.serial,
        "enterprise": uscc,
        "profile": row.profile,
        "holder": row.holder,
        "subject": row.subject,
        "status": row.status,
        "not_before": row.not_before.isoformat(),
        "not_after": row.not_after.isoformat(),
        "revocation_reason": row.revocation_reason,
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        "replaced_by": row.replaced_by,
        "renewed_from": row.renewed_from,
    }


@command.command("list")
@home_option
@click.option("--enterprise", "uscc", default=None, help="only this enterprise")
@click.option("--json", "as_json", is_flag=True, help="print a JSON list")
def list_(home: str | None, uscc: str | None, as_json: bool) -> None:
    """List certificates (CA certificates included)."""
    with authority(home, read_only=True) as auth:
        rows = [_row_dict(row, code) for row, code in auth.list_certificates(uscc=uscc)]
    if as_json:
        echo_json(rows)
        return
    for r in rows:
        click.echo(f"{r['serial']:<34} {r['profile']:<8} {r['status']:<8} "
                   f"{r['not_after'][:10]}  {r['enterprise'] or '-':<18}  {r['holder']}")


@command.command("show")
@home_option
@click.argument("serial")
@click.option("--json", "as_json", is_flag=True)
@click.option("--pem", "as_pem", is_flag=True, help="print the certificate as PEM")
def show(home: str | None, serial: str, as_json: bool, as_pem: bool) -> None:
    """Show one certificate (SERIAL may use colons or a 0x prefix)."""
    with authority(home, read_only=True) as auth:
        row = auth.certificate_row(serial)
        uscc = None
        if row.enterprise_id is not None:
            uscc = next((e.uscc for e in auth.enterprises() if e.id == row.enterprise_id), None)
    if as_pem:
        cert = x509.load_der_x509_certificate(row.der)
        click.echo(cert.public_bytes(serialization.Encoding.PEM).decode(), nl=False)
        return
    info = _row_dict(row, uscc)
    if as_json:
        echo_json(info)
        return
    for key, value in info.items():
        if value is not None:
            click.echo(f"{key:<18} {value}")



# --- lifecycle: renew, freeze, unfreeze, revoke, revoke-all ------------------------------------
def _refusal_lines(refused: list[dict[str, Any]]) -> None:
    for item in refused:
        click.echo(EsealError(item["code"], item["message"], item["message_zh"],
                              field=item["serial"]).one_line(), err=True)


@command.command("renew")
@home_option
@click.argument("serials", nargs=-1)
@click.option("--expiring-within", "within", type=click.IntRange(min=0), default=None,
              metavar="DAYS", help="renew every certificate expiring within DAYS days "
              "(and those expired less than the grace period ago)")
def renew(home: str | None, serials: tuple[str, ...], within: int | None) -> None:
    """Renew certificates with their own keys; prints a JSON summary.

    Inside the window (from 90 days before expiry) the remaining time carries over; in the
    grace period after expiry the new certificate runs one year from now. Idempotent: a
    certificate already renewed is skipped. Exit status 1 if any was refused.
    """
    import sys

    from eseal.ra import renewal

    if not serials and within is None:
        raise InvalidInput("NOTHING_TO_RENEW", "give SERIAL... or --expiring-within DAYS",
                           "请给出序列号或 --expiring-within 天数", field="serials")
    with authority(home) as auth:
        todo = list(serials)
        if within is not None:
            todo += renewal.expiring(auth, within)
        actor = cli_actor()
        if sys.stderr.isatty() and todo:
            with click.progressbar(length=len(todo), label="renewing", file=sys.stderr) as bar:
                summary = renewal.renew_many(auth, todo, actor=actor,
                                               progress=lambda: bar.update(1))
        else:
            summary = renewal.renew_many(auth, todo, actor=actor)
    result = summary.to_dict()
    echo_json(result)
    if result["refused"]:
        _refusal_lines(result["refused"])
        refused = len(result["refused"])
        raise Conflict("RENEWALS_REFUSED", f"{refused} certificate(s) could not be renewed",
                       f"{refused} 张证书未能续期")


json_option = click.option("--json", "as_json", is_flag=True, help="print JSON")

_STATUS_TEXT = {
    "hold": ("frozen (certificateHold) at {at}: OCSP and the CRLs say so now",
             "已冻结"),
    "good": ("unfrozen: good again; the freeze window stays on record", "已解冻"),
    "revoked": ("revoked ({reason}) at {at}: OCSP and the CRLs say so now", "已吊销"),
}


def _status_line(change: Any, as_json: bool) -> None:
    """What an officer reads after a status change (JSON for scripts with --json)."""
    if as_json:
        echo_json(change.to_dict())
        return
    en, zh = _STATUS_TEXT[change.status]
    at = change.revoked_at.isoformat() if change.revoked_at else "?"
    click.echo(f"certificate {change.serial} " + en.format(at=at, reason=change.reason)
               + f" / 证书{zh}")


@command.command("freeze")
@home_option
@click.argument("serial")
@json_option
def freeze(home: str | None, serial: str, as_json: bool) -> None:
    """Freeze a certificate (certificateHold): it fails at once, and may be unfrozen."""
    from eseal.ra import revocation

    with authority(home) as auth:
        _status_line(revocation.freeze(auth, serial, actor=cli_actor()), as_json)


@command.command("unfreeze")
@home_option
@click.argument("serial")
@json_option
def unfreeze(home: str | None, serial: str, as_json: bool) -> None:
    """Unfreeze a certificate: it leaves the full CRL; its freeze window stays recorded."""
    from eseal.ra import revocation

    with authority(home) as auth:
        _status_line(revocation.unfreeze(auth, serial, actor=cli_actor()), as_json)


def _reason_help() -> str:
    return ("RFC 5280 reason: unspecified, keyCompromise, cACompromise, affiliationChanged, "
            "superseded, cessationOfOperation, privilegeWithdrawn, aACompromise")


@command.command("revoke")
@home_option
@click.argument("serial")
@click.option("--reason", required=True, help=_reason_help())
@click.option("--invalidity-date", default=None, metavar="TIME",
              help="ISO 8601 time the key was known or suspected compromised")
@json_option
def revoke(home: str | None, serial: str, reason: str, invalidity_date: str | None,
           as_json: bool) -> None:
    """Revoke a certificate (a frozen one too); effective at once, CRLs re-issued."""
    from eseal.clock import parse_time
    from eseal.errors import EsealError
    from eseal.ra import revocation

    when = None
    if invalidity_date is not None:
        try:
            when = parse_time(invalidity_date, field="invalidity_date")
        except EsealError as exc:
            raise InvalidInput("INVALIDITY_DATE_INVALID", exc.message, exc.message_zh,
                               field="invalidity_date") from exc
    with authority(home) as auth:
        _status_line(revocation.revoke(auth, serial, reason=reason, actor=cli_actor(),
                                      invalidity_date=when), as_json)


@command.command("revoke-all")
@home_option
@click.option("--enterprise", "uscc", required=True, help="unified social credit code")
@click.option("--reason", required=True, help=_reason_help())
def revoke_all(home: str | None, uscc: str, reason: str) -> None:
    """Revoke every certificate of one enterprise that is not revoked yet."""
    from eseal.ra import revocation

    with authority(home) as auth:
        changed = revocation.revoke_all(auth, uscc, reason=reason, actor=cli_actor())
    echo_json({"enterprise": uscc, "reason": reason, "revoked": [c.serial for c in changed]})
