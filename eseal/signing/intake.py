"""What the service checks before it accepts a filing: the draft, the sealed upload, the receipt.

Journey 3 of DESIGN.md: an agent uploads a draft, the legal representative seals it on their
own machine and uploads the result. The service must be sure the sealed file is *that* draft
with *that* enterprise's seal and nothing else, because the receipt it signs says so. The
checks here are pure (bytes and facts in, a result or an ``EsealError`` out); the caller
supplies what only the CA's records know — which seal certificates of the enterprise are
current, their status now, and when they were frozen.

A sealed upload is accepted only if

1. it is the stored draft's exact bytes followed by exactly one incremental update (so the
   agent's content cannot have been swapped, and nothing else rode along), and that update
   adds exactly one signature, a seal (not a document timestamp) that covers the whole file;
2. the verifier (:mod:`eseal.signing.verify`) finds nothing *invalid* anywhere in the file:
   the seal is intact, its certificate chains to the CA's root, it is a seal certificate;
3. the seal carries a signature timestamp that validates against the CA's root (the receipt
   relies on a proven signing time, not the signer's claim);
4. the certificate names this enterprise's credit code and is one of its *current* seal
   certificates (a renewed-away or re-keyed certificate is not), good now, and was not frozen
   at the timestamped signing time (give or take ``TIMESTAMP_UNCERTAINTY``: a seal that
   cannot be ordered against a freeze is refused).

Drafts are refused when their form fields would show a relying party something else than
they hold (an appearance that disagrees with the value, /NeedAppearances, XFA): see
:mod:`eseal.signing.draft_forms` for why we refuse rather than flatten.

The only verifier doubt tolerated is ``REVOCATION_UNKNOWN`` (a B-T seal carries no revocation
data): the service is the CA and answers that question from its own records (point 4).
The verifier is given the same records as its live status (``live_status``), as ``POST
/verify`` is; revocation findings that come from them are answered by point 4's refusals.

Receipts: the service answers an accepted filing with a JSON receipt signed by its own
timestamp authority — an RFC 3161 token over the SHA-256 of the receipt's canonical JSON
(sorted keys, no spaces, UTF-8). :func:`verify_receipt` checks one offline against a trust
root; it lives here, beside the checks, so the CLI can verify without importing the service.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from io import BytesIO
from typing import Any

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eseal import clock
from eseal.errors import Conflict, InvalidInput
from eseal.signing.draft_forms import check_draft_form
from eseal.signing.report import SignatureReport, VerificationReport
from eseal.signing.revocation import LiveStatusLookup
from eseal.signing.structure import StructureError, revision_spans

__all__ = [
    "RECEIPT_VERSION",
    "AcceptedSeal",
    "DraftInfo",
    "EnterpriseSeals",
    "ReceiptCheck",
    "canonical_json",
    "check_draft",
    "check_sealed_upload",
    "receipt_imprint",
    "verify_receipt",
]

RECEIPT_VERSION = "eseal-receipt-v1"
#: Verifier findings of severity "indeterminate" that do not stop an intake (see docstring).
TOLERATED_DOUBTS = frozenset({"REVOCATION_UNKNOWN"})
#: Verifier findings that come from the CA's own records when ``live_status`` is given: the
#: intake's record checks (point 4) answer them with their own, more specific refusal.
FROM_RECORDS = frozenset({"CERT_REVOKED", "CERT_ON_HOLD", "LIVE_REVOKED_NO_POE",
                          "LIVE_ON_HOLD_NO_POE"})
#: How far a timestamp's genTime may be from the moment the seal was made: TSAs write whole
#: seconds with an accuracy (eseal's: 1 s). A seal whose possible moments touch a freeze
#: window cannot be ordered against it, so it is refused (fail closed).
TIMESTAMP_UNCERTAINTY = timedelta(seconds=2)


# ---------------------------------------------------------------------------------------------
# the draft


@dataclass(frozen=True)
class DraftInfo:
    """Facts about an accepted draft, kept with the filing."""

    size: int
    sha256: str
    pages: int
    revisions: int
    signatures: int


def _pdf_error(code: str, en: str, zh: str, field: str) -> InvalidInput:
    return InvalidInput(code, en, zh, field=field)


def _read(data: bytes, field: str) -> Any:
    """A strict pyHanko reader over ``data``, or the reason it cannot be one."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    if not data:
        raise _pdf_error("PDF_EMPTY", "the file is empty", "文件为空", field)
    if not data.startswith(b"%PDF-"):
        raise _pdf_error("PDF_NOT_PDF", "the file is not a PDF (no %PDF- header)",
                         "文件不是 PDF（缺少 %PDF- 文件头）", field)
    try:
        reader = PdfFileReader(BytesIO(data), strict=True)
        encrypted = reader.encrypted
        if not encrypted:
            _ = reader.root["/Pages"]
    except Exception as exc:  # pyHanko raises many types on hostile input
        if b"%%EOF" not in data[-1024:] or b"startxref" not in data[-2048:]:
            raise _pdf_error("PDF_TRUNCATED",
                             "the file is truncated: no startxref/%%EOF at its end",
                             "文件不完整：末尾缺少 startxref/%%EOF", field) from exc
        raise _pdf_error("PDF_BROKEN_XREF",
                         f"the PDF structure cannot be read: {type(exc).__name__}",
                         "PDF 结构（交叉引用表）无法读取", field) from exc
    if encrypted:
        raise _pdf_error("PDF_ENCRYPTED", "encrypted PDFs are not accepted; remove the password",
                         "不接受加密的 PDF，请先移除密码", field)
    return reader


def check_draft(data: bytes, *, field: str = "file") -> DraftInfo:
    """Refuse a draft the seal flow could not end well with: not a PDF, empty, truncated,
    broken, encrypted, without pages, laid out so the verifier would later reject any seal
    on it (bytes after the last ``%%EOF``, hybrid or misplaced cross-reference sections), or
    with form fields that show something else than they hold (:mod:`.draft_forms`)."""
    reader = _read(data, field)
    try:
        spans, problems = revision_spans(data, reader)
    except StructureError as exc:
        raise _pdf_error(exc.finding.code, exc.finding.message, exc.finding.message_zh,
                         field) from exc
    if problems:
        first = problems[0]
        raise _pdf_error(first.code, first.message, first.message_zh, field)
    try:
        pages = int(reader.root["/Pages"]["/Count"])
        signatures = len(reader.embedded_signatures)
    except Exception as exc:
        raise _pdf_error("PDF_MALFORMED", "the PDF has no readable page tree or form",
                         "PDF 页面结构或表单无法读取", field) from exc
    if pages < 1:
        raise _pdf_error("PDF_NO_PAGES", "the PDF has no pages", "PDF 没有页面", field)
    try:
        check_draft_form(reader.root, field=field)
    except InvalidInput:
        raise
    except Exception as exc:  # a form tree too broken to walk is not a draft we can vouch for
        raise _pdf_error("PDF_MALFORMED", "the PDF's form cannot be read",
                         "PDF 表单无法读取", field) from exc
    return DraftInfo(size=len(data), sha256=hashlib.sha256(data).hexdigest(), pages=pages,
                     revisions=len(spans), signatures=signatures)


# ---------------------------------------------------------------------------------------------
# the sealed upload


@dataclass(frozen=True)
class EnterpriseSeals:
    """What the CA's records say about one enterprise's seal certificates.

    ``current``: serials of its current seal certificates (not replaced by a renewal or a
    re-key, not expired); ``status``: serial → ``good`` | ``hold`` | ``revoked`` for every
    seal certificate of the enterprise; ``frozen``: serial → (frozen_at, unfrozen_at or None)
    windows.
    """

    uscc: str
    current: Collection[str]
    status: Mapping[str, str]
    frozen: Mapping[str, Sequence[tuple[datetime, datetime | None]]] = dataclasses.field(
        default_factory=dict)


@dataclass(frozen=True)
class AcceptedSeal:
    """The facts a receipt states about an accepted seal."""

    sha256: str
    size: int
    certificate_serial: str
    enterprise: str | None
    credit_code: str
    signing_time: datetime
    pades_level: str | None
    field_name: str
    report: VerificationReport


def _refuse(code: str, en: str, zh: str, *, conflict: bool = False,
            details: dict[str, Any] | None = None) -> InvalidInput | Conflict:
    cls = Conflict if conflict else InvalidInput
    return cls(code, en, zh, field="file", details=details)


def _new_seal(sealed: bytes, draft: DraftInfo) -> Any:
    """The one signature the update added (pyHanko's view), and that the update added nothing
    but that seal (its field and widget, the form entry, DSS and metadata)."""
    reader = _read(sealed, "file")
    if reader.xrefs.total_revisions != draft.revisions + 1:
        added = reader.xrefs.total_revisions - draft.revisions
        raise _refuse("ONE_UPDATE_REQUIRED",
                      f"the upload adds {added} revisions to the draft; exactly one incremental "
                      "update with the seal is accepted (seal at B-T or B-LT, without a "
                      "document timestamp)",
                      f"上传文件在草稿之后追加了 {added} 个版本；只接受一个包含签章的增量更新"
                      "（B-T 或 B-LT 级别，不含文档时间戳）",
                      details={"added_revisions": added})
    signatures = list(reader.embedded_signatures)
    new = [s for s in signatures if s.signed_revision == draft.revisions]
    if len(signatures) != draft.signatures + 1 or len(new) != 1:
        raise _refuse("ONE_SEAL_REQUIRED",
                      f"the update must add exactly one seal (it has {len(new)} new signature(s) "
                      f"and the file {len(signatures)} in all, the draft had {draft.signatures})",
                      "增量更新必须恰好加盖一个签章", details={"new_signatures": len(new)})
    emb = new[0]
    if emb.sig_object_type != "/Sig":
        raise _refuse("ONE_SEAL_REQUIRED", "the update adds a document timestamp, not a seal",
                      "增量更新添加的是文档时间戳而不是签章")
    problem = _only_a_seal(reader, draft.revisions - 1)
    if problem is not None:
        raise _refuse("UPDATE_NOT_ONLY_A_SEAL",
                      f"the update changes the draft besides adding the seal: {problem}",
                      "增量更新除加盖签章外还修改了草稿内容", details={"change": problem})
    return emb


# What the seal's update may touch in objects the draft already had: the catalog gains the
# form, the DSS, extensions and metadata (and a version bump); the document information gets
# a new producer and date; a page gains widget annotations; the form gains signature fields;
# an empty signature field of the draft gets its value and appearance.
_CATALOG_KEYS = frozenset({"/AcroForm", "/DSS", "/Extensions", "/Version", "/Metadata",
                           "/Perms"})
_INFO_KEYS = frozenset({"/Producer", "/ModDate"})
_FORM_KEYS = frozenset({"/Fields", "/SigFlags", "/DR", "/DA"})
_FILLED_FIELD_KEYS = frozenset({"/V", "/AP", "/AS", "/F", "/MK"})


def _plain(value: Any, depth: int = 0) -> Any:
    """A comparable view of a PDF value: references as (number, generation), not followed."""
    from pyhanko.pdf_utils import generic

    if depth > 32:
        return "<deep>"
    if isinstance(value, generic.IndirectObject):
        return ("ref", value.idnum, value.generation)
    if isinstance(value, generic.StreamObject):
        return ({k: _plain(v, depth + 1) for k, v in value.items()}, value.encoded_data)
    if isinstance(value, dict):
        return {k: _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, depth + 1) for v in value]
    return value


def _resolved(mapping: Any, key: str) -> Any:
    """``mapping[key]`` with references followed (pyHanko's ``get`` does not follow them)."""
    if key not in mapping:
        return None
    return mapping[key]


def _changed_keys(old: Any, new: Any) -> set[str]:
    keys = set(old) | set(new)
    return {k for k in keys if _plain(old.raw_get(k) if k in old else None)
            != _plain(new.raw_get(k) if k in new else None)}


def _refs(array: Any) -> list[Any]:
    from pyhanko.pdf_utils import generic

    items = array.get_object() if isinstance(array, generic.IndirectObject) else array
    if not isinstance(items, list):
        return []
    return [_plain(v) for v in items]


def _is_sig_field(obj: Any) -> bool:
    node = obj
    for _ in range(8):
        if not isinstance(node, dict):
            return False
        if node.get("/FT") == "/Sig":
            return True
        if "/Parent" not in node:
            return False
        node = node["/Parent"]
    return False


def _appended_only(old: Any, new: Any, what: str, check: Any, reader: Any) -> str | None:
    """``new`` is ``old`` with entries appended, each passing ``check``."""
    from pyhanko.pdf_utils import generic

    old_refs, new_refs = _refs(old) if old is not None else [], _refs(new)
    if new_refs[:len(old_refs)] != old_refs:
        return f"existing entries of {what} were changed"
    for item in new_refs[len(old_refs):]:
        if not (isinstance(item, tuple) and item[0] == "ref"):
            return f"{what} gained a direct (non-signature) entry"
        if not check(reader.get_object(generic.Reference(item[1], item[2]))):
            return f"{what} gained object {item[1]}, which is not a signature field"
    return None


def _only_a_seal(reader: Any, base: int) -> str | None:
    """Describe the first change the last revision makes to the draft (revision ``base``)
    beyond adding one seal; None if there is none."""
    last = reader.xrefs.total_revisions - 1
    if reader.xrefs.refs_freed_in_revision(last):
        return "objects of the draft were deleted"
    old = reader.get_historical_resolver(base)
    old_trailer, new_trailer = old.trailer_view, reader.trailer_view
    for key in ("/Root", "/Info"):
        if key in old_trailer and _plain(old_trailer.raw_get(key)) != _plain(
                new_trailer.raw_get(key) if key in new_trailer else None):
            return f"the trailer's {key} was replaced"
    root_ref = _plain(new_trailer.raw_get("/Root"))
    info_ref = _plain(old_trailer.raw_get("/Info")) if "/Info" in old_trailer else None
    old_root = old.root
    form_ref = _plain(old_root.raw_get("/AcroForm")) if "/AcroForm" in old_root else None
    old_form = _resolved(old_root, "/AcroForm")
    meta_ref = _plain(old_root.raw_get("/Metadata")) if "/Metadata" in old_root else None
    dss = _resolved(old_root, "/DSS")
    dss_refs: set[Any] = {_plain(old_root.raw_get("/DSS"))} if dss is not None else set()
    if isinstance(dss, dict):
        dss_refs |= {p for p in (_plain(dss.raw_get(k)) for k in dss) if isinstance(p, tuple)}
    form_fields_ref = _plain(old_form.raw_get("/Fields")) if isinstance(old_form, dict) \
        and "/Fields" in old_form else None

    new_root = reader.root
    if "/AcroForm" in new_root:
        problem = _appended_only(old_form.get("/Fields") if isinstance(old_form, dict)
                                 else None, new_root["/AcroForm"].get("/Fields", []),
                                 "the form's /Fields", _is_sig_field, reader)
        if problem:
            return problem
    for ref in sorted(reader.xrefs.explicit_refs_in_revision(last), key=lambda r: r.idnum):
        if reader.xrefs.get_introducing_revision(ref) > base:
            continue  # new objects matter only where an old object points at them
        key = ("ref", ref.idnum, ref.generation)
        try:
            before, after = old(ref), reader.get_object(ref)
        except Exception:
            return f"object {ref.idnum} cannot be read in both versions"
        what = f"object {ref.idnum}"
        if key == root_ref:
            extra = _changed_keys(before, after) - _CATALOG_KEYS
        elif key == info_ref:
            extra = _changed_keys(before, after) - _INFO_KEYS
        elif key == meta_ref or key in dss_refs:
            continue
        elif key == form_ref:
            extra = _changed_keys(before, after) - _FORM_KEYS
        elif key == form_fields_ref:
            problem = _appended_only(before, after, "the form's /Fields", _is_sig_field, reader)
            if problem:
                return problem
            continue
        elif isinstance(before, dict) and before.get("/Type") == "/Page":
            extra = _changed_keys(before, after) - {"/Annots"}
            problem = _appended_only(before.get("/Annots"), after.get("/Annots", []),
                                     f"page object {ref.idnum}'s /Annots",
                                     lambda a: a.get("/Subtype") == "/Widget"
                                     and _is_sig_field(a), reader)
            if problem:
                return problem
        elif isinstance(before, dict) and _is_sig_field(before) and "/V" not in before:
            extra = _changed_keys(before, after) - _FILLED_FIELD_KEYS
        elif isinstance(before, list) and isinstance(after, list):
            problem = _appended_only(before, after, f"array {what}",
                                     lambda a: isinstance(a, dict) and _is_sig_field(a),
                                     reader)
            if problem:
                return problem
            continue
        else:
            kind = before.get("/Type", type(before).__name__) if isinstance(before, dict) \
                else type(before).__name__
            return f"{what} ({kind}) of the draft was rewritten"
        if extra:
            return f"{what} changed {', '.join(sorted(extra))}"
    return None


def _seal_report(report: VerificationReport, field_name: str) -> SignatureReport:
    for sig in report.seals:
        if sig.field_name == field_name:
            return sig
    raise _refuse("ONE_SEAL_REQUIRED", "the verifier did not find the new seal",
                  "验证时未找到新加盖的签章")


def check_sealed_upload(draft: bytes, sealed: bytes, *, seals: EnterpriseSeals,
                        trust_roots: Sequence[x509.Certificate],
                        now: datetime | None = None,
                        live_status: LiveStatusLookup | None = None) -> AcceptedSeal:
    """Accept ``sealed`` as the sealed version of ``draft`` for ``seals.uscc`` (see module
    docstring) or raise an ``EsealError`` naming the first reason it is not. ``live_status``
    is the CA's own status lookup, handed to the verifier (the same rule as ``POST
    /verify``: a seal by a certificate revoked or frozen now needs a timestamp proving it
    came first)."""
    from eseal.signing.verify import verify_pdf

    moment = now or clock.now()
    if not sealed:
        raise _refuse("PDF_EMPTY", "the file is empty", "文件为空")
    if len(sealed) <= len(draft) or sealed[:len(draft)] != draft:
        raise _refuse("NOT_THE_DRAFT",
                      "the upload does not begin with the stored draft's exact bytes: seal the "
                      "draft as downloaded, without saving it in another program first",
                      "上传文件不是以所存草稿的原始字节开头：请直接对下载的草稿签章，不要用其他软件另存",
                      details={"draft_bytes": len(draft), "upload_bytes": len(sealed)})
    draft_info = check_draft(draft, field="draft")
    emb = _new_seal(sealed, draft_info)

    report = verify_pdf(sealed, trust_roots=trust_roots, now=moment, live_status=live_status)
    from_records = {p.code for sig in report.seals if sig.field_name == emb.field_name
                    and sig.revocation_at_signing.source == "live"
                    for p in sig.problems} & FROM_RECORDS
    invalid = [p for p in report.all_problems()
               if p.severity == "invalid" and p.code not in from_records]
    if invalid:
        first = invalid[0]
        raise _refuse("SEAL_INVALID", f"the sealed file is not valid: {first.message}",
                      f"签章文件无效：{first.message_zh}",
                      details={"findings": sorted({p.code for p in invalid}),
                               "verdict": report.verdict})
    seal = _seal_report(report, emb.field_name)
    if seal.signer is None or not seal.chain.trusted:
        raise _refuse("SEAL_UNTRUSTED",
                      "the seal's certificate does not chain to this CA's root",
                      "签章证书无法链接到本 CA 的根证书", details={"verdict": report.verdict})
    if seal.signing_time_source != "timestamp" or seal.signing_time is None:
        raise _refuse("SEAL_NOT_TIMESTAMPED",
                      "the seal carries no valid signature timestamp; seal at level B-T or B-LT",
                      "签章未包含有效的签名时间戳，请以 B-T 或 B-LT 级别签章")
    doubts = sorted({p.code for p in report.all_problems()
                     if p.severity == "indeterminate"} - TOLERATED_DOUBTS)
    if doubts:
        raise _refuse("SEAL_NOT_VERIFIABLE",
                      f"the seal cannot be fully verified ({', '.join(doubts)})",
                      f"签章无法完成验证（{'、'.join(doubts)}）", details={"findings": doubts})

    serial = seal.signer.certificate_serial
    if seal.signer.credit_code != seals.uscc:
        raise _refuse("SEAL_WRONG_ENTERPRISE",
                      f"the seal belongs to {seal.signer.credit_code} {seal.signer.enterprise}, "
                      f"not to the filing's enterprise {seals.uscc}",
                      f"签章属于 {seal.signer.credit_code}（{seal.signer.enterprise}），"
                      f"不是本申报企业 {seals.uscc} 的印章", conflict=True,
                      details={"sealed_by": seal.signer.credit_code, "expected": seals.uscc})
    status = seals.status.get(serial)
    if status in ("revoked", "hold"):
        state_en = "revoked" if status == "revoked" else "frozen (on hold)"
        raise _refuse("SEAL_CERT_REVOKED",
                      f"the seal certificate {serial} is {state_en}",
                      f"印章证书 {serial} 已{'吊销' if status == 'revoked' else '冻结'}",
                      conflict=True, details={"serial": serial, "status": status})
    if serial not in seals.current or status != "good":
        raise _refuse("SEAL_CERT_NOT_CURRENT",
                      f"the seal certificate {serial} is not the enterprise's current seal "
                      "certificate (renewed, re-keyed or unknown); refresh the USB-Key and seal "
                      "again",
                      f"印章证书 {serial} 不是企业当前有效的印章证书，请更新 USB-Key 后重新签章",
                      conflict=True, details={"serial": serial})
    earliest = seal.signing_time - TIMESTAMP_UNCERTAINTY
    latest = seal.signing_time + TIMESTAMP_UNCERTAINTY
    for frozen_at, unfrozen_at in seals.frozen.get(serial, ()):
        if frozen_at <= latest and (unfrozen_at is None or earliest < unfrozen_at):
            raise _refuse("SEAL_CERT_FROZEN_AT_SIGNING",
                          f"the seal was made at {seal.signing_time.isoformat()} while its "
                          "certificate was frozen",
                          "签章时印章证书处于冻结状态", conflict=True,
                          details={"serial": serial})
    if from_records:  # the records refused it above; fail closed should they ever not
        raise _refuse("SEAL_INVALID", "the CA's records show the seal certificate revoked or "
                      "frozen before the seal can be proven to exist",
                      "本 CA 记录显示印章证书在签章可证明的时间之前已被吊销或冻结",
                      details={"findings": sorted(from_records), "verdict": report.verdict})
    return AcceptedSeal(sha256=report.file_sha256, size=report.file_size,
                        certificate_serial=serial, enterprise=seal.signer.enterprise,
                        credit_code=seals.uscc, signing_time=seal.signing_time,
                        pades_level=seal.pades_level, field_name=seal.field_name,
                        report=report)


# ---------------------------------------------------------------------------------------------
# receipts


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant spaces, UTF-8 (characters outside ASCII kept as they are,
    so a registered name with 𠮷 hashes as its own bytes)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def receipt_imprint(body: Mapping[str, Any]) -> bytes:
    """SHA-256 over the receipt body's canonical JSON: what the timestamp token signs."""
    return hashlib.sha256(canonical_json(body)).digest()


@dataclass(frozen=True)
class ReceiptCheck:
    """Whether a receipt is what the service signed: ``valid`` needs the imprint to match the
    body (``intact``), the token's signature (``signature_ok``) and a chain from the TSA
    certificate to a trust root (``trusted``)."""

    valid: bool
    intact: bool
    signature_ok: bool
    trusted: bool
    signed_at: datetime | None
    tsa: str | None
    body: Mapping[str, Any]
    problems: tuple[str, ...] = ()

    @property
    def exit_code(self) -> int:
        return 0 if self.valid else 1

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "intact": self.intact, "signature_ok": self.signature_ok,
                "trusted": self.trusted,
                "signed_at": self.signed_at.isoformat() if self.signed_at else None,
                "tsa": self.tsa, "receipt": dict(self.body), "problems": list(self.problems)}


def _bad_receipt(why: str, why_zh: str) -> InvalidInput:
    return InvalidInput("RECEIPT_MALFORMED", f"not an eseal receipt: {why}",
                        f"不是有效的 eseal 回执：{why_zh}", field="receipt")


def _receipt_parts(receipt: Mapping[str, Any]) -> tuple[Mapping[str, Any], cms.SignedData]:
    if not isinstance(receipt, Mapping):
        raise _bad_receipt("expected a JSON object", "应为 JSON 对象")
    body = receipt.get("receipt")
    signature = receipt.get("signature")
    if not isinstance(body, Mapping) or body.get("version") != RECEIPT_VERSION:
        raise _bad_receipt(f"no 'receipt' object of version {RECEIPT_VERSION}",
                           f"缺少版本为 {RECEIPT_VERSION} 的 receipt 对象")
    if not isinstance(signature, Mapping) or signature.get("type") != "rfc3161" \
            or not isinstance(signature.get("token"), str):
        raise _bad_receipt("no RFC 3161 'signature' token", "缺少 RFC 3161 时间戳签名")
    try:
        der = base64.b64decode(signature["token"], validate=True)
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise ValueError("not SignedData")
        signed = info["content"]
        if not isinstance(signed["encap_content_info"]["content"].parsed, tsp.TSTInfo):
            raise ValueError("not a TSTInfo")
    except (binascii.Error, ValueError, TypeError, KeyError) as exc:
        raise _bad_receipt(f"the token cannot be read ({exc})", "时间戳令牌无法解析") from exc
    return body, signed


def verify_receipt(receipt: Mapping[str, Any], *, trust_roots: Sequence[x509.Certificate],
                   ) -> ReceiptCheck:
    """Check a receipt offline: its token is a timestamp over this very body, signed by a
    time-stamping certificate that chains to one of ``trust_roots``."""
    from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
    from pyhanko.sign.validation.status import TimestampSignatureStatus
    from pyhanko_certvalidator import ValidationContext

    if not trust_roots:
        raise InvalidInput("NO_TRUST_ROOTS", "at least one trust root is required",
                           "至少需要一个信任锚证书", field="trust_roots")
    body, signed = _receipt_parts(receipt)
    try:
        content = canonical_json(body)
    except (TypeError, ValueError) as exc:
        raise _bad_receipt("the body is not plain JSON", "回执正文不是规范 JSON") from exc
    roots = [asn1_x509.Certificate.load(r.public_bytes(serialization.Encoding.DER))
             for r in trust_roots]

    async def run() -> dict[str, Any]:
        vc = ValidationContext(trust_roots=roots, allow_fetching=False,
                               revocation_mode="soft-fail")
        return await validate_tst_signed_data(
            signed, vc, lambda algo: hashlib.new(algo, content).digest())

    try:
        from eseal.signing.verify import run_sync

        status = TimestampSignatureStatus(**run_sync(run()))
    except Exception as exc:  # pyHanko: unreadable or unsupported token
        return ReceiptCheck(False, False, False, False, None, None, body,
                            (f"TOKEN_INVALID: {type(exc).__name__}",))
    intact, valid, trusted = bool(status.intact), bool(status.valid), bool(status.trusted)
    problems = []
    if not intact:
        problems.append("RECEIPT_ALTERED")
    if not valid:
        problems.append("SIGNATURE_INVALID")
    if not trusted:
        problems.append("TSA_UNTRUSTED")
    cert = status.signing_cert
    tsa = x509.load_der_x509_certificate(cert.dump()).subject.rfc4514_string() \
        if cert is not None else None
    return ReceiptCheck(valid=intact and valid and trusted, intact=intact, signature_ok=valid,
                        trusted=trusted, signed_at=status.timestamp, tsa=tsa, body=body,
                        problems=tuple(problems))


