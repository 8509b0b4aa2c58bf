"""``eseal verify``: judge a sealed PDF (and/or a filing receipt) as a relying party.

Exit status: **0** valid, **1** invalid, **2** could not be judged — which includes input that
is not a signed PDF we could read (not a PDF, empty, encrypted, unreadable, no signature) and a
missing trust root: such a file is not shown to be forged, it is simply not judged.

Trust comes from ``--trust ROOT.pem`` (repeatable; a PEM file may hold several roots) or, by
default, from the eseal home's root certificate, read from its database without opening the
CA token. Nothing is fetched unless ``--online`` is given: a B-LT/B-LTA seal carries its own
revocation data, so verifying it needs neither a home (with ``--trust``) nor a running service.

Output: one block per signature with labels in English and Chinese, or the full report as
JSON (``--json``; keys in English, every message in both languages, ``labels_zh`` naming each
key in Chinese). ``--receipt RECEIPT.json`` checks a filing receipt's timestamp signature; with
a FILE as well, also that the receipt names this very file (its SHA-256).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from eseal.cli.common import echo_json, home_option
from eseal.errors import ConfigError, EsealError, InvalidInput

if TYPE_CHECKING:
    from cryptography import x509

    from eseal.signing.receipts import ReceiptCheck
    from eseal.signing.report import Revocation, SignatureReport, VerificationReport

EXIT_VALID, EXIT_INVALID, EXIT_UNDECIDED = 0, 1, 2

_WORDS_ZH = {
    "valid": "有效", "invalid": "无效", "indeterminate": "无法判定",
    "seal": "电子签章", "document_timestamp": "文档时间戳",
    "timestamp": "时间戳", "claimed": "签章方声明",
    "whole_file": "整个文件", "revision": "部分版本", "unclear": "不明确",
    "none": "无", "allowed": "仅允许的改动", "disallowed": "不允许的改动", "unknown": "未知",
    "good": "正常", "revoked": "已吊销", "on_hold": "已冻结", "not_checked": "未检查",
    "embedded": "文件内嵌", "fetched": "联网获取", "live": "CA 实时记录",
}


def _zh(word: str | None) -> str:
    return _WORDS_ZH.get(word or "", "")


def _both(word: str | None) -> str:
    if word is None:
        return "—"
    zh = _zh(word)
    return f"{word.replace('_', ' ')} {zh}".strip()


# -- trust -------------------------------------------------------------------------------------
def load_trust(paths: tuple[Path, ...]) -> list[x509.Certificate]:
    """Every certificate in the given PEM (or DER) files."""
    from cryptography import x509

    roots: list[x509.Certificate] = []
    for path in paths:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InvalidInput("TRUST_UNREADABLE", f"cannot read {path}: {exc.strerror}",
                               f"无法读取信任锚文件 {path}", field="trust") from exc
        try:
            found = (x509.load_pem_x509_certificates(data) if b"-----BEGIN" in data
                     else [x509.load_der_x509_certificate(data)])
        except ValueError as exc:
            raise InvalidInput("TRUST_NOT_A_CERTIFICATE",
                               f"{path} holds no PEM or DER certificate",
                               f"{path} 中没有 PEM 或 DER 格式的证书", field="trust") from exc
        roots.extend(found)
    return roots


def home_root(home: str | None) -> x509.Certificate:
    """The home's root CA certificate, from its database (the CA token stays closed)."""
    from cryptography import x509
    from sqlalchemy import select

    from eseal.cli.cmd_seal import home_database
    from eseal.settings import load_settings
    from eseal.store.models import CaKey

    settings = load_settings(home)
    try:
        db = home_database(settings)
    except ConfigError as exc:
        raise InvalidInput("TRUST_ROOT_REQUIRED",
                           f"no trust root: pass --trust ROOT.pem ({exc.message})",
                           f"没有信任锚：请用 --trust 指定根证书（{exc.message_zh}）",
                           field="trust") from exc
    with db.read() as s:
        der = s.execute(select(CaKey.certificate_der).where(CaKey.role == "root")).scalar()
    if not der:
        raise InvalidInput("TRUST_ROOT_REQUIRED",
                           f"the home {settings.home} has no root certificate: pass --trust",
                           f"{settings.home} 中没有根证书：请用 --trust 指定", field="trust")
    return x509.load_der_x509_certificate(der)


# -- text output ---------------------------------------------------------------------------------
def _label(key: str, en: str | None = None) -> str:
    from eseal.signing.report import LABELS_ZH

    return f"{en or key.replace('_', ' ').capitalize()} {LABELS_ZH.get(key, '')}".strip()


def _revocation(rev: Revocation) -> str:
    text = _both(rev.status)
    extra = []
    if rev.source:
        extra.append(_both(rev.source))
    if rev.reason:
        extra.append(rev.reason)
    if rev.revoked_at:
        extra.append(f"since {rev.revoked_at.isoformat()}")
    return text + (f" ({', '.join(extra)})" if extra else "")


def _signature_lines(index: int, sig: SignatureReport) -> list[str]:
    lines = [f"{_label('signatures', 'Signature')} #{index}: {sig.field_name} — "
             f"{_both(sig.kind)} — {sig.verdict.upper()} {_zh(sig.verdict)}"]

    def add(key: str, value: str, en: str | None = None) -> None:
        lines.append(f"  {_label(key, en)}: {value}")

    if sig.signer is not None:
        add("enterprise", sig.signer.enterprise or "—")
        add("credit_code", sig.signer.credit_code or "—", "Credit code")
        add("holder", sig.signer.holder or "—")
        add("profile", sig.signer.profile, "Certificate profile")
        add("certificate_serial", sig.signer.certificate_serial)
    if sig.signing_time is not None:
        add("signing_time", f"{sig.signing_time.isoformat()} ({_both(sig.signing_time_source)})")
    if sig.timestamp_authority:
        add("timestamp_authority", sig.timestamp_authority)
    integrity = sig.integrity
    add("integrity", "intact 完整" if integrity.digest_ok and integrity.signature_ok
        else f"digest {'ok' if integrity.digest_ok else 'MISMATCH'}, signature "
             f"{'ok' if integrity.signature_ok else 'INVALID'} 不完整")
    cov = sig.coverage
    scope = _both(cov.scope)
    if cov.scope == "revision":
        scope += f" ({cov.revision}/{cov.total_revisions})"
    add("coverage", scope)
    add("changes_after", _both(sig.changes_after.status), "Changes after signing")
    chain = "trusted 可信" if sig.chain.trusted else "not trusted 不可信"
    if sig.chain.trust_anchor:
        chain += f" → {sig.chain.trust_anchor}"
    add("chain", chain, "Certificate chain")
    if sig.kind == "seal":
        add("revocation_at_signing", _revocation(sig.revocation_at_signing),
            "Revocation at signing")
        add("revocation_now", _revocation(sig.revocation_now))
        add("pades_level", sig.pades_level or "—", "PAdES level")
    add("ades_indication", sig.ades_indication + (f" / {sig.ades_subindication}"
                                                  if sig.ades_subindication else ""),
        "AdES indication")
    for p in sig.problems:
        lines.append(f"  - [{p.severity}] {p.code}: {p.message} / {p.message_zh}")
    return lines


def report_text(report: VerificationReport, path: str) -> str:
    lines = [
        f"File 文件: {path} ({report.file_size:,} bytes, SHA-256 {report.file_sha256})",
        f"{_label('verdict')}: {report.verdict.upper()} {_zh(report.verdict)} "
        f"({_label('exit_code')} {report.exit_code})",
        f"{_label('validated_at')}: {report.validated_at.isoformat()}",
        f"{_label('trust_anchors')}: {'; '.join(report.trust_anchors)}",
    ]
    for p in report.problems:
        lines.append(f"- [{p.severity}] {p.code}: {p.message} / {p.message_zh}")
    for i, sig in enumerate(report.signatures, 1):
        lines.extend(_signature_lines(i, sig))
    return "\n".join(lines)


def receipt_text(check: ReceiptCheck, matches: bool | None) -> str:
    body = check.body
    verdict = "valid" if check.valid and matches is not False else "invalid"
    lines = [f"Receipt 回执: {verdict.upper()} {_zh(verdict)}",
             f"  Filing 申报编号: {body.get('filing_id')}",
             f"  Enterprise 企业: {(body.get('enterprise') or {}).get('uscc')} "
             f"{(body.get('enterprise') or {}).get('name')}",
             f"  Sealed file SHA-256 签章文件摘要: {body.get('sealed_sha256')}",
             f"  Seal certificate 印章证书序列号: {body.get('seal_certificate_serial')}",
             f"  Accepted at 受理时间: {body.get('accepted_at')}",
             f"  Signed by 回执签发: {check.tsa or '—'} at "
             f"{check.signed_at.isoformat() if check.signed_at else '—'}"]
    if matches is not None:
        lines.append(f"  Matches the file 与文件一致: {'yes 是' if matches else 'NO 否'}")
    for code in check.problems:
        lines.append(f"  - {code}")
    return "\n".join(lines)


# -- the command -------------------------------------------------------------------------------
def _read_receipt(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput("FILE_UNREADABLE", f"cannot read {path}: {exc.strerror}",
                           f"无法读取文件 {path}", field="receipt") from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("RECEIPT_MALFORMED", f"{path} is not JSON",
                           f"{path} 不是 JSON 文件", field="receipt") from exc
    if not isinstance(value, dict):
        raise InvalidInput("RECEIPT_MALFORMED", f"{path} is not a JSON object",
                           f"{path} 不是 JSON 对象", field="receipt")
    return value


def _fail(exc: EsealError, as_json: bool) -> int:
    if as_json:
        echo_json({"verdict": "indeterminate", "exit_code": EXIT_UNDECIDED,
                   "error": exc.to_dict()})
    else:
        click.echo(exc.one_line(), err=True)
    return EXIT_UNDECIDED


@click.command("verify")
@home_option
@click.argument("file", metavar="FILE.pdf", required=False,
                type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trust", "trust", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="trusted root certificate(s), PEM or DER (default: the home's root)")
@click.option("--json", "as_json", is_flag=True, help="print the full report as JSON")
@click.option("--online", is_flag=True,
              help="fetch CRLs/OCSP named by the certificates (current status; missing data)")
@click.option("--receipt", "receipt_path", default=None,
              type=click.Path(dir_okay=False, path_type=Path),
              help="a filing receipt (JSON) to verify; with FILE, also that it names FILE")
def command(home: str | None, file: Path | None, trust: tuple[Path, ...], as_json: bool,
            online: bool, receipt_path: Path | None) -> int:
    """Verify the seals in FILE.pdf: exit 0 valid, 1 invalid, 2 could not be judged."""
    try:
        if file is None and receipt_path is None:
            raise InvalidInput("FILE_REQUIRED", "give FILE.pdf, --receipt RECEIPT.json or both",
                               "请指定 FILE.pdf、--receipt 回执文件或两者", field="file")
        roots = load_trust(trust) if trust else [home_root(home)]
        report = None
        if file is not None:
            from eseal.cli.cmd_sign import quiet_pyhanko, read_pdf
            from eseal.signing.verify import verify_pdf

            quiet_pyhanko()
            report = verify_pdf(read_pdf(file), trust_roots=roots, allow_fetching=online)
        check = None
        matches: bool | None = None
        if receipt_path is not None:
            from eseal.signing.receipts import verify_receipt

            check = verify_receipt(_read_receipt(receipt_path), trust_roots=roots)
            if report is not None:
                matches = check.body.get("sealed_sha256") == report.file_sha256
    except EsealError as exc:
        return _fail(exc, as_json)

    codes = []
    if report is not None:
        codes.append(report.exit_code)
    if check is not None:
        codes.append(EXIT_VALID if check.valid and matches is not False else EXIT_INVALID)
    code = EXIT_INVALID if EXIT_INVALID in codes else max(codes)
    if as_json:
        if check is None and report is not None:
            echo_json({"file": str(file), **report.to_dict()})
        else:
            echo_json({"exit_code": code,
                       "document": report.to_dict() if report is not None else None,
                       "receipt": check.to_dict() if check is not None else None,
                       "receipt_matches_file": matches})
    else:
        if report is not None:
            click.echo(report_text(report, str(file)))
        if check is not None:
            click.echo(receipt_text(check, matches))
    sys.stdout.flush()
    return code
