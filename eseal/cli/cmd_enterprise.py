"""``eseal enterprise``: register and list enterprises (officer console)."""

from __future__ import annotations

import click

from eseal.cli.common import authority, cli_actor, echo_json, home_option


@click.group("enterprise")
def command() -> None:
    """Enterprises, identified by unified social credit code (统一社会信用代码)."""


@command.command("add")
@home_option
@click.option("--uscc", required=True, help="18-character unified social credit code")
@click.option("--name", required=True, help="registered name, exactly as on the licence")
@click.option("--legal-rep", required=True, help="legal representative (法定代表人)")
@click.option("--email", default=None, help="contact address for expiry notices")
def add(home: str | None, uscc: str, name: str, legal_rep: str, email: str | None) -> None:
    """Register an enterprise after vetting its licence."""
    from eseal.ra.enterprises import register_enterprise

    with authority(home) as auth:
        ent = register_enterprise(auth, uscc=uscc, name=name, legal_rep=legal_rep,
                                  contact_email=email, actor=cli_actor())
    click.echo(f"registered {ent.uscc} {ent.name}")


@command.command("list")
@home_option
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def list_(home: str | None, as_json: bool) -> None:
    with authority(home) as auth:
        rows = auth.enterprises()
    items = [{"uscc": e.uscc, "name": e.name, "legal_rep": e.legal_rep, "status": e.status}
             for e in rows]
    if as_json:
        echo_json(items)
        return
    for item in items:
        click.echo(f"{item['uscc']}  {item['status']:<12}  {item['name']}  ({item['legal_rep']})")


@command.command("deregister")
@home_option
@click.option("--uscc", required=True)
def deregister(home: str | None, uscc: str) -> None:
    """Mark an enterprise deregistered: nothing new is issued to it."""
    from eseal.ra.enterprises import deregister_enterprise

    with authority(home) as auth:
        deregister_enterprise(auth, uscc, actor=cli_actor())
    click.echo(f"deregistered {uscc}")


@command.command("enroll-code")
@home_option
@click.option("--uscc", default=None,
              help="the enterprise (omit for CA staff: --role officer or auditor)")
@click.option("--role", required=True,
              type=click.Choice(["agent", "legal_rep", "officer", "auditor"]))
@click.option("--holder", required=True, help="the holder's name as registered")
@click.option("--server", default=None,
              help="ask this eseal service, logged in with --token (an officer, or the "
                   "enterprise's legal representative for agents); default: this home's CA")
@click.option("--token", "label", default=None, help="your USB-Key's label (with --server)")
@click.option("--pin", default=None, help="your USB-Key's PIN (or --pin-stdin, or a prompt)")
@click.option("--pin-stdin", is_flag=True, help="read the PIN from one line of stdin")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def enroll_code(home: str | None, uscc: str | None, role: str, holder: str,
                server: str | None, label: str | None, pin: str | None, pin_stdin: bool,
                as_json: bool) -> None:
    """A single-use enrollment code (shown once) for a holder to enroll their own USB-Key
    with `eseal token enroll --server URL --code CODE`."""
    from eseal.errors import InvalidInput

    if server is None:
        if label is not None:
            raise InvalidInput("TOKEN_NEEDS_SERVER", "--token is for --server requests",
                               "--token 仅用于 --server 请求", field="token")
        from eseal.ra.enrollment_codes import create_enrollment_code

        with authority(home) as auth:
            result = create_enrollment_code(auth, role=role, holder=holder, uscc=uscc,
                                            actor=cli_actor()).to_dict()
    else:
        if label is None:
            raise InvalidInput("TOKEN_REQUIRED", "--server needs --token (your USB-Key) to log in",
                               "使用 --server 时须以 --token 指定您的 USB-Key 登录",
                               field="token")
        from eseal.ca.authority import configure_tokens
        from eseal.cli.common import read_secret, settings_for
        from eseal.holder.client import EsealClient

        configure_tokens(settings_for(home))
        secret = read_secret(pin, pin_stdin, "PIN")
        with EsealClient(server) as client:
            client.login_with_token(label, secret)
            try:
                result = client.enrollment_code(role=role, holder=holder, uscc=uscc)
            finally:
                client.logout()
    if as_json:
        echo_json(result)
        return
    where = f" of {result['enterprise']}" if result.get("enterprise") else ""
    click.echo(f"enrollment code for {result['holder']} ({result['role']}{where}), "
               f"valid until {result['expires_at']}, shown once:")
    click.echo(f"  {result['code']}")


# --- when the enterprise changes ---------------------------------------------------------------
@command.command("rename")
@home_option
@click.option("--uscc", required=True)
@click.option("--name", required=True, help="the new registered name, exactly (NFC)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def rename(home: str | None, uscc: str, name: str, as_json: bool) -> None:
    """企业名称变更: new certificates for the same keys, then the old ones superseded."""
    from eseal.ra.rename import rename_enterprise

    with authority(home) as auth:
        result = rename_enterprise(auth, uscc, name, actor=cli_actor()).to_dict()
    if as_json:
        echo_json(result)
        return
    click.echo(f"renamed {uscc}: {result['old_name']} -> {result['new_name']}")
    for pair in result["replaced"]:
        click.echo(f"  {pair['old_serial']} superseded by {pair['new_serial']}")
    for serial in result["left_frozen"]:
        click.echo(f"  {serial} is frozen: left under the old name")
    click.echo("holders: run `eseal token refresh --label LABEL` to install the new certificates")


@command.command("change-legal-rep")
@home_option
@click.option("--uscc", required=True)
@click.option("--legal-rep", required=True, help="the new legal representative (法定代表人)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def change_legal_rep(home: str | None, uscc: str, legal_rep: str, as_json: bool) -> None:
    """法定代表人变更: the old one's keys revoked and sessions ended; a code for the new one."""
    from eseal.ra.legal_rep import change_legal_rep as change

    with authority(home) as auth:
        result = change(auth, uscc, legal_rep, actor=cli_actor())
    if as_json:
        echo_json(result)
        return
    click.echo(f"{uscc}: legal representative {result['old_legal_rep']} -> "
               f"{result['legal_rep']}; revoked {len(result['revoked'])} certificate(s), "
               f"ended {result['sessions_ended']} session(s), flagged "
               f"{len(result['flagged_filings'])} draft(s)")
    code = result["enrollment_code"]
    click.echo(f"enrollment code for {code['holder']}, valid until {code['expires_at']}, "
               f"shown once:\n  {code['code']}")


@command.command("history")
@home_option
@click.option("--uscc", required=True)
def history(home: str | None, uscc: str) -> None:
    """Registered names and legal representatives over time (JSON)."""
    from eseal.ra.legal_rep import legal_rep_history
    from eseal.ra.rename import name_history

    with authority(home, read_only=True) as auth:
        echo_json({"names": name_history(auth, uscc),
                   "legal_reps": legal_rep_history(auth, uscc)})


@command.command("contacts")
@home_option
@click.option("--uscc", required=True)
@click.option("--set", "entries", multiple=True, metavar="NAME,ROLE,PHONE,EMAIL",
              help="an emergency contact (give at least two); omit to list")
def contacts(home: str | None, uscc: str, entries: tuple[str, ...]) -> None:
    """应急联系人: list, or replace with --set (at least two)."""
    from eseal.ra.contacts import list_contacts, set_contacts

    items: list[dict[str, str]] = []
    for entry in entries:
        parts = [p.strip() for p in entry.split(",")]
        if len(parts) != 4:
            from eseal.errors import InvalidInput

            raise InvalidInput("CONTACT_INVALID", f"--set {entry!r}: give NAME,ROLE,PHONE,EMAIL",
                               f"--set {entry!r}：格式应为 姓名,职务,手机,邮箱", field="contacts")
        items.append(dict(zip(("name", "role", "phone", "email"), parts, strict=True)))
    with authority(home, read_only=not entries) as auth:
        if entries:
            echo_json(set_contacts(auth, uscc, items, actor=cli_actor()))
        else:
            echo_json(list_contacts(auth, uscc))


@command.command("rights")
@home_option
@click.option("--account", "account_id", required=True, type=int, help="the agent's account id")
@click.option("--type", "types", multiple=True,
              help="a filing type code the agent may submit (repeat); omit to show")
@click.option("--none", "none_", is_flag=True, help="take every right away")
def rights(home: str | None, account_id: int, types: tuple[str, ...], none_: bool) -> None:
    """分级权限: the filing types an agent may submit."""
    from eseal.ra.rights import rights_of, set_rights

    with authority(home, read_only=not (types or none_)) as auth:
        if types or none_:
            echo_json(set_rights(auth, account_id, list(types), actor=cli_actor()))
        else:
            echo_json(rights_of(auth, account_id))


@command.command("ledger")
@home_option
@click.option("--uscc", required=True)
@click.option("--csv", "as_csv", is_flag=True, help="CSV (UTF-8, header row) instead of JSON")
@click.option("--pdf", "pdf_out", type=click.Path(dir_okay=False), default=None,
              help="write the ledger as a PDF sealed by the CA's own ledger seal")
@click.option("-o", "--out", type=click.Path(dir_okay=False), default=None,
              help="write CSV/JSON here instead of standard output")
@click.option("--operator-uscc", default=None,
              help="the CA operator's credit code (once, when the CA's ledger seal is created)")
@click.option("--operator-name", default=None, help="the CA operator's registered name (once)")
@click.option("--server", default=None,
              help="the eseal service for the timestamp and revocation data (default: base URL)")
def ledger(home: str | None, uscc: str, as_csv: bool, pdf_out: str | None, out: str | None,
           operator_uscc: str | None, operator_name: str | None, server: str | None) -> None:
    """企业数字凭证管理台账: every key, holder and credential event, from the audit log."""
    import json
    from dataclasses import asdict
    from pathlib import Path

    from eseal import clock
    from eseal.ra.ledger import ledger_rows, to_csv

    with authority(home, read_only=pdf_out is None) as auth:
        rows = ledger_rows(auth, uscc)
        if pdf_out is not None:
            data = _sealed_ledger(auth, uscc, rows, operator_uscc=operator_uscc,
                                  operator_name=operator_name,
                                  server=server or auth.settings.base_url)
            Path(pdf_out).write_bytes(data)
            with auth.change(actor=cli_actor(), action="enterprise.ledger.export",
                             target=uscc, details={"rows": len(rows), "format": "pdf"}):
                pass
            click.echo(f"{len(rows)} events; sealed ledger written to {pdf_out}")
            return
    text = to_csv(rows) if as_csv else json.dumps(
        {"uscc": uscc, "generated_at": clock.now().isoformat(),
         "events": [asdict(r) for r in rows]}, ensure_ascii=False, indent=2)
    if out is None:
        click.echo(text, nl=not as_csv)
    else:
        Path(out).write_text(text, encoding="utf-8", newline="")


def _sealed_ledger(auth, uscc: str, rows, *, operator_uscc: str | None,  # type: ignore[no-untyped-def]
                   operator_name: str | None, server: str) -> bytes:
    """Draw the ledger and seal it (B-LT) with the CA's ledger seal key on the CA token."""
    from dataclasses import asdict

    import httpx

    from eseal import clock
    from eseal.cli.cmd_sign import build_options
    from eseal.holder.revinfo import fetch_revinfo, validation_context
    from eseal.holder.sealing import http_timestamper, seal_image_for
    from eseal.ra.ledger_seal import ledger_seal
    from eseal.signing.ledger_pdf import ledger_pdf
    from eseal.signing.sign import seal_pdf

    ent = auth.enterprise(uscc)
    pdf = ledger_pdf(name=ent.name, uscc=ent.uscc, generated_at=clock.now().isoformat(),
                     rows=[asdict(r) for r in rows])
    seal = ledger_seal(auth, operator_uscc=operator_uscc, operator_name=operator_name,
                       actor=cli_actor())
    options = build_options(page=1, at=None, field_name=None, reason="凭证管理台账 ledger",
                            location=None, level="B-LT", certify=False, size_pt=100)
    with httpx.Client(timeout=60, follow_redirects=False) as http:
        revinfo = fetch_revinfo(http, server, seal.certificate, seal.chain)
        return seal_pdf(pdf, key=seal.key, certificate=seal.certificate,  # type: ignore[arg-type]
                        chain=seal.chain, options=options,
                        seal_png=seal_image_for(seal.certificate, title="台账专用章"),
                        timestamper=http_timestamper(http, f"{server.rstrip('/')}/tsa"),
                        validation_context=validation_context(seal.chain, revinfo))
