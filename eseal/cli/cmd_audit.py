"""``eseal audit``: verify the tamper-evident log (auditors) and write checkpoints."""

from __future__ import annotations

from pathlib import Path

import click
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eseal.cli.common import authority, echo_json, home_option
from eseal.errors import ServiceUnavailable


@click.group("audit")
def command() -> None:
    """The hash-chained, checkpoint-signed audit log."""


@command.command("verify")
@home_option
@click.option("--crl", "crl_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A CRL this CA published (DER or PEM), e.g. a relying party's copy: the "
                   "audit head it carries must still be in the log. Repeatable.")
@click.option("--json", "as_json", is_flag=True)
def verify(home: str | None, crl_files: tuple[Path, ...], as_json: bool) -> None:
    """Check the chain, the signed checkpoints and their chain, the newest checkpoint the CA
    token recorded, the audit head carried by CRLs and how many events at the end nothing
    signed covers; name the first row that was tampered with."""
    crls = [(str(path), _der(path.read_bytes())) for path in crl_files]
    with authority(home, read_only=True) as auth, auth.db.read() as s:
        report = auth.audit.verify(s, crls=crls)
    coverage = (f"{report.uncovered} events not covered by a signed checkpoint or CRL "
                f"(the checkpoint cadence allows {report.allowed_uncovered})")
    if as_json:
        echo_json(report.to_dict())
    elif report.ok:
        click.echo(f"audit log intact: {report.events} events, {report.checkpoints} "
                   f"checkpoints, {report.anchors} CRL anchors; {coverage}")
    if not report.ok:
        problems = ", ".join(dict.fromkeys(f.problem for f in report.findings))
        first = report.findings[0]
        raise ServiceUnavailable(
            "AUDIT_LOG_TAMPERED",
            f"audit log TAMPERED: {first.describe()} ({len(report.findings)} problem(s): "
            f"{problems}); {coverage}",
            f"审计日志已被篡改：{first.describe_zh()}（共 {len(report.findings)} 处问题；"
            f"{report.uncovered} 条记录未被签名检查点或 CRL 覆盖）")


def _der(data: bytes) -> bytes:
    """A CRL file as DER (PEM accepted); anything unreadable is left for the verifier to
    report as a bad anchor."""
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            return x509.load_pem_x509_crl(data).public_bytes(serialization.Encoding.DER)
        except ValueError:
            return data
    return data


@command.command("checkpoint")
@home_option
def checkpoint(home: str | None) -> None:
    """Sign the current head of the log with the CA token's audit key (refused with
    AUDIT_HISTORY_REWRITTEN if the log no longer holds the checkpoint the token recorded)."""
    with authority(home) as auth, auth.db.write() as s:
        event = auth.audit.checkpoint(s)
    click.echo(f"checkpoint at event {event}" if event else "nothing new since last checkpoint")
