"""Is this file a draft the seal flow can end well with? The checks an uploaded draft passes.

A draft is what the agent uploads and the legal representative later seals; the service
stores its exact bytes, and a sealed upload must begin with them (:mod:`.sealed_upload`).
So a draft is refused up front when no seal on it could later pass the verifier: not a PDF,
truncated, broken, encrypted, without pages, laid out in a way the verifier rejects (bytes
after the last ``%%EOF``, hybrid or misplaced cross-reference sections), or with form fields
that show something else than they hold (:mod:`eseal.signing.draft_forms` says why we refuse
rather than flatten), or with paging-seal slices (骑缝章) no signature of the draft covers: a
paging seal is only ever made together with a seal, so unsigned slices are a drawing of one.
Refusing then costs the agent one upload; refusing after sealing would cost a seal.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from eseal.errors import InvalidInput
from eseal.signing.draft_forms import check_draft_form
from eseal.signing.paging_seal import may_carry_slices
from eseal.signing.structure import StructureError, revision_spans

__all__ = ["DraftInfo", "check_draft", "read_pdf"]


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


def read_pdf(data: bytes, field: str) -> Any:
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


def _unsigned_paging_slices(reader: Any) -> int | None:
    """The first page (1-based) with an annotation marked as a paging-seal slice that was
    added after the draft's last signed revision (or with no signature at all)."""
    from pyhanko.pdf_utils import generic

    from eseal.signing.page_ink import resolved
    from eseal.signing.paging_seal import MARKER, page_list

    signed = max((s.signed_revision for s in reader.embedded_signatures), default=-1)
    for number, (_, page) in enumerate(page_list(reader.root), start=1):
        for raw in resolved(page, "/Annots") or []:
            annot = raw.get_object() if isinstance(raw, generic.IndirectObject) else raw
            name = resolved(annot, "/NM") if isinstance(annot, dict) else None
            if not (isinstance(name, str) and name.startswith(MARKER)):
                continue
            introduced = reader.xrefs.get_introducing_revision(
                generic.Reference(raw.idnum, raw.generation)) \
                if isinstance(raw, generic.IndirectObject) else reader.xrefs.total_revisions
            if introduced > signed:
                return number
    return None


def check_draft(data: bytes, *, field: str = "file") -> DraftInfo:
    """Refuse a draft the seal flow could not end well with: not a PDF, empty, truncated,
    broken, encrypted, without pages, laid out so the verifier would later reject any seal
    on it (bytes after the last ``%%EOF``, hybrid or misplaced cross-reference sections), or
    with form fields that show something else than they hold (:mod:`.draft_forms`)."""
    reader = read_pdf(data, field)
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
        unsigned = _unsigned_paging_slices(reader) if may_carry_slices(data) else None
    except InvalidInput:
        raise
    except Exception as exc:  # a form tree too broken to walk is not a draft we can vouch for
        raise _pdf_error("PDF_MALFORMED", "the PDF's form cannot be read",
                         "PDF 表单无法读取", field) from exc
    if unsigned:
        raise _pdf_error("DRAFT_PAGING_SEAL_UNSIGNED",
                         f"page {unsigned} carries a paging-seal slice (骑缝章) that no signature "
                         "covers; upload the draft without it",
                         f"第 {unsigned} 页带有未被任何签章覆盖的骑缝章切片，"
                         "请上传不含骑缝章的草稿",
                         field)
    return DraftInfo(size=len(data), sha256=hashlib.sha256(data).hexdigest(), pages=pages,
                     revisions=len(spans), signatures=signatures)
