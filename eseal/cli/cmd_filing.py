"""``eseal filing``: submit a draft (agent) and seal it (legal representative) over HTTP.

Both commands log in to the service with the holder's USB-Key (``eseal.holder.client``: the login
key signs the service's challenge), so they need no home beyond the token configuration.

* ``eseal filing submit FILE --token L --server URL [--title T] [--type K]`` uploads a draft;
  prints its filing id.
* ``eseal filing seal ID --token L --server URL`` downloads the stored draft, seals it on this
  machine exactly as ``eseal sign`` does (one signature by the seal key, timestamp and
  revocation data from the service over HTTP, B-LT by default), uploads the sealed file and
  prints the service's receipt (``--receipt-out`` keeps it; ``eseal verify --receipt`` checks
  it). The same USB-Key session serves the login and the seal: one PIN entry.

The service accepts only the draft's exact bytes plus one incremental update holding the
seal, so only levels B-T and B-LT are offered here (B-LTA adds a second update).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from eseal.cli.common import echo_json, home_option, read_secret
from eseal.errors import InvalidInput

if TYPE_CHECKING:
    import httpx

    from eseal.holder.client import EsealClient

FILING_LEVELS = ("B-T", "B-LT")


def _http(api: EsealClient) -> httpx.Client:
    import httpx

    headers = {"Authorization": f"Bearer {api.session}"} if api.session else {}
    return httpx.Client(base_url=api.base_url, headers=headers, timeout=300.0)


def _answer(response: httpx.Response) -> Any:
    from eseal.holder.client import ServiceError

    if response.status_code >= 400:
        try:
            body = response.json()
        except ValueError:
            body = {}
        raise ServiceError(response.status_code, body if isinstance(body, dict) else {})
    return response


def _call(api: EsealClient, method: str, path: str, **kwargs: Any) -> httpx.Response:
    import httpx

    from eseal.holder.client import ServiceError

    with _http(api) as http:
        try:
            response = http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ServiceError(0, {"code": "SERVICE_UNREACHABLE",
                                   "message": f"cannot reach {api.base_url}: "
                                              f"{type(exc).__name__}",
                                   "message_zh": f"无法连接 {api.base_url}"}) from exc
    return _answer(response)  # type: ignore[no-any-return]


def submit_draft(api: EsealClient, pdf: bytes, *, title: str | None = None,
                 filing_type: str | None = None) -> dict[str, Any]:
    """``POST /filings`` with the PDF as the body; the new filing."""
    params = {k: v for k, v in (("title", title), ("type", filing_type)) if v} or None
    response = _call(api, "POST", "/filings", content=pdf, params=params,
                     headers={"Content-Type": "application/pdf"})
    return dict(response.json())


def download_draft(api: EsealClient, filing_id: int) -> bytes:
    return _call(api, "GET", f"/filings/{filing_id}/draft").content


def upload_sealed(api: EsealClient, filing_id: int, sealed: bytes) -> dict[str, Any]:
    response = _call(api, "POST", f"/filings/{filing_id}/seal", content=sealed,
                     headers={"Content-Type": "application/pdf"})
    return dict(response.json())


def _server(home: str | None, server: str | None) -> str:
    from eseal.cli.cmd_sign import configure_client_tokens

    settings = configure_client_tokens(home)
    url = server or settings.base_url
    if not url.startswith(("http://", "https://")):
        raise InvalidInput("SERVER_URL_INVALID", f"--server must be an http(s) URL, got {url!r}",
                           f"--server 必须是 http(s) 地址：{url!r}", field="server")
    return str(url).rstrip("/")


token_options = [
    click.option("--token", "label", required=True, help="label of your USB-Key"),
    click.option("--pin", default=None, help="USB-Key PIN (prefer --pin-stdin or the prompt)"),
    click.option("--pin-stdin", is_flag=True, help="read the PIN from one line of stdin"),
    click.option("--server", default=None, help="eseal service (default: the home's base URL)"),
]


def _with_token_options(f: Any) -> Any:
    for decorator in reversed(token_options):
        f = decorator(f)
    return f


@click.group("filing")
def command() -> None:
    """Filings (申报材料): submit a draft, seal it, keep the receipt."""


@command.command("submit")
@home_option
@click.argument("file", metavar="FILE.pdf", type=click.Path(dir_okay=False, path_type=Path))
@_with_token_options
@click.option("--title", default=None, help="what the filing is, e.g. 2025 年度报告")
@click.option("--type", "filing_type", default=None,
              help="the kind of business (GET /filing-types: annual_report, "
                   "change_registration, record_filing, ...; default other)")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def submit(home: str | None, file: Path, label: str, pin: str | None, pin_stdin: bool,
           server: str | None, title: str | None, filing_type: str | None,
           as_json: bool) -> None:
    """Upload FILE.pdf as a draft filing of your enterprise (agents and legal representatives)."""
    from eseal.cli.cmd_sign import read_pdf
    from eseal.holder.client import EsealClient

    pdf = read_pdf(file)
    url = _server(home, server)
    secret = read_secret(pin, pin_stdin, "USB-Key PIN")
    with EsealClient(url) as api:
        api.login_with_token(label, secret)
        filing = submit_draft(api, pdf, title=title, filing_type=filing_type)
        api.logout()
    if as_json:
        echo_json(filing)
        return
    click.echo(f"filing {filing['id']} submitted: {filing['title']} "
               f"({filing['draft']['pages']} page(s), SHA-256 {filing['draft']['sha256']})")


@command.command("seal")
@home_option
@click.argument("filing_id", metavar="ID", type=int)
@_with_token_options
@click.option("--level", default="B-LT", show_default=True, type=click.Choice(FILING_LEVELS),
              help="PAdES level (one incremental update: B-T or B-LT)")
@click.option("--page", default=1, show_default=True, type=int, help="1-based page")
@click.option("--at", default=None, metavar="X,Y", help="lower-left corner in points")
@click.option("--field", "field_name", default=None, help="seal this (empty) signature field")
@click.option("--reason", default="同意", show_default=True, help="reason for the seal")
@click.option("--title", default=None, help="seal title below the star (e.g. 公章)")
@click.option("--paging-seal", "paging", is_flag=True,
              help="also the paging seal (骑缝章) across every page's right edge")
@click.option("-o", "--output", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="also keep the sealed PDF here")
@click.option("--receipt-out", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="write the service's receipt (JSON) here")
@click.option("--json", "as_json", is_flag=True, help="print the receipt as JSON")
def seal(home: str | None, filing_id: int, label: str, pin: str | None, pin_stdin: bool,
         server: str | None, level: str, page: int, at: str | None, field_name: str | None,
         reason: str | None, title: str | None, paging: bool, output: Path | None,
         receipt_out: Path | None, as_json: bool) -> None:
    """Seal filing ID with your USB-Key (legal representatives) and upload it."""
    from eseal.cli.cmd_seal import write_atomically
    from eseal.cli.cmd_sign import build_options, quiet_pyhanko
    from eseal.holder.client import EsealClient
    from eseal.holder.sealing import seal_with_usbkey
    from eseal.token.client import UsbKey

    quiet_pyhanko()
    options = build_options(page=page, at=at, field_name=field_name, reason=reason,
                            location=None, level=level, certify=False, size_pt=120,
                            paging=paging)
    url = _server(home, server)
    secret = read_secret(pin, pin_stdin, "USB-Key PIN")
    with UsbKey.open(label, secret) as usbkey, EsealClient(url) as api:
        api.login(usbkey)
        draft = download_draft(api, filing_id)
        result = seal_with_usbkey(draft, usbkey=usbkey, options=options, server=url,
                                  title=title)
        receipt = upload_sealed(api, filing_id, result.sealed)
        api.logout()
    if output is not None:
        write_atomically(output, result.sealed)
    if receipt_out is not None:
        write_atomically(receipt_out, (json.dumps(receipt, ensure_ascii=False, indent=2)
                                       + "\n").encode("utf-8"))
    if as_json:
        echo_json(receipt)
        return
    body = receipt["receipt"]
    click.echo(f"filing {body['filing_id']} accepted at {body['accepted_at']}: sealed by "
               f"{body['enterprise']['name']} ({body['enterprise']['uscc']}), SHA-256 "
               f"{body['sealed_sha256']}, receipt signed by the service's TSA")
