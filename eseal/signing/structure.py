"""Byte-level checks of a signed PDF, where pyHanko is lenient.

pyHanko's validator is the engine, but a few of its decisions are too forgiving for a seal a
relying party must trust years later, so we look at the raw bytes ourselves:

* **Revision boundaries.** Every revision must end in ``startxref <n> %%EOF`` exactly where
  its cross-reference section says, and the file must end at the last ``%%EOF`` followed by
  at most one end-of-line (``\\n``, ``\\r\\n`` or ``\\r``). pyHanko reads the last 1024 bytes
  backwards and accepts anything after ``%%EOF``; we do not: any other trailing byte is
  unsigned data that some viewer might act on (polyglots, lenient xref recovery).
* **Updates after sealing.** Each incremental update after the first signed revision must be
  exactly its objects (at the offsets its own xref section names) and whitespace, then its
  xref section and trailer. An xref entry pointing outside its own update — back into signed
  bytes (the "hide-and-replace" shadow attack re-activating an unused object) or at bytes no
  update owns — is refused here, before any semantic diff.
* **The signature dictionary.** ``/ByteRange`` must be four non-negative integers
  ``[0 a b c]``; the gap ``[a, b)`` must be exactly one hex string ``<...>`` that *is* the
  dictionary's ``/Contents`` value (signature wrapping moves the signed bytes and hides new
  ones in or around the gap); the dictionary itself must lie in the signed bytes; ``b + c``
  must end exactly at the ``%%EOF`` (optionally plus one EOL) of the revision that holds the
  signature dictionary.
* **Stray signature dictionaries.** Every ``/ByteRange`` token in the file must belong to a
  signature we verify; one that is not attached to a signature field (a one-byte change to
  ``/FT /Sig`` would otherwise turn a sealed file into an "unsigned" one) is a finding.

All functions return :class:`~eseal.signing.report.Finding` objects with stable codes; they
never raise on hostile input except :class:`StructureError` where a whole check cannot run.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from io import BytesIO

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.xref import XRefSectionType

from eseal.signing.report import Finding

__all__ = [
    "RevisionSpan",
    "SignatureBytes",
    "StructureError",
    "check_signature_bytes",
    "check_updates",
    "find_byterange_tokens",
    "finding",
    "object_extent",
    "revision_spans",
]

_WS = b" \t\r\n\f\x00"
_EOL = re.compile(rb"\r\n|\n|\r")
# pyHanko's table parser stops after the ``trailer`` keyword (or before it)
_TABLE_TAIL = re.compile(rb"[ \t\r\n\f\x00]*(?:trailer)?[ \t\r\n\f\x00]*<<.*?>>[ \t\r\n\f\x00]*"
                         rb"startxref[ \t\r\n\f\x00]+(\d+)[ \t\r\n\f\x00]*%%EOF", re.S)
_STREAM_TAIL = re.compile(rb"[ \t\r\n\f\x00]*(?:endobj)?[ \t\r\n\f\x00]*"
                          rb"startxref[ \t\r\n\f\x00]+(\d+)[ \t\r\n\f\x00]*%%EOF")
_OBJ_HEADER = re.compile(rb"(\d+)[ \t\r\n\f\x00]+(\d+)[ \t\r\n\f\x00]+obj")
_HEX_GAP = re.compile(rb"<([0-9A-Fa-f]*)>")
_CONTENTS_KEY = re.compile(rb"/Contents[ \t\r\n\f\x00]*$")
_BYTERANGE_TOKEN = re.compile(rb"/ByteRange(?![A-Za-z0-9])")
_CONTENTS_TOKEN = re.compile(rb"/Contents(?![A-Za-z0-9])")


class StructureError(Exception):
    """A whole structural check could not run (carries the finding that explains why)."""

    def __init__(self, found: Finding) -> None:
        super().__init__(found.message)
        self.finding = found


def finding(code: str, message: str, message_zh: str, severity: str = "invalid") -> Finding:
    return Finding(code=code, severity=severity, message=message,  # type: ignore[arg-type]
                   message_zh=message_zh)


@dataclass(frozen=True)
class RevisionSpan:
    """Where revision ``index`` (0 = original document) sits in the file.

    ``xref_start``: its cross-reference section; ``eof_end``: the byte after its ``%%EOF``;
    ``end``: ``eof_end`` plus the single end-of-line that may follow it.
    """

    index: int
    xref_start: int
    eof_end: int
    end: int


def revision_spans(data: bytes, reader: PdfFileReader) -> tuple[list[RevisionSpan],
                                                                  list[Finding]]:
    """Locate every revision's end and check the file ends exactly at the last one.

    A linearized original is two xref sections that together form one revision: the
    first-page section near the top (its trailer says ``startxref 0`` and its /Prev points
    forward) and the main section at the end, whose ``startxref`` names the first-page
    section. Both get the span of the original file.

    Raises :class:`StructureError` if a revision's ``startxref``/``%%EOF`` cannot be found
    where its xref section ends (the revision layout is then unknown).
    """
    xrefs = reader.xrefs
    tails: list[tuple[int, int, int]] = []  # (declared startxref, number in tail, eof end)
    for rev in range(xrefs.total_revisions):
        meta = xrefs.get_xref_container_info(rev)
        if meta.xref_section_type not in (XRefSectionType.STANDARD, XRefSectionType.STREAM):
            raise StructureError(finding(
                "PDF_HYBRID_XREF",
                f"revision {rev + 1} uses a hybrid cross-reference section; not accepted",
                f"第 {rev + 1} 版使用混合交叉引用表，不予接受"))
        table = meta.xref_section_type == XRefSectionType.STANDARD
        if not (data.startswith(b"xref", meta.declared_startxref) if table
                else meta.declared_startxref == meta.start_location):
            raise StructureError(finding(
                "PDF_BROKEN_XREF",
                f"revision {rev + 1}: startxref {meta.declared_startxref} does not point at its "
                f"cross-reference section ({meta.start_location})",
                f"第 {rev + 1} 版的 startxref 未指向其交叉引用表"))
        m = (_TABLE_TAIL if table else _STREAM_TAIL).match(data, meta.end_location)
        if m is None:
            raise StructureError(finding(
                "PDF_BROKEN_XREF",
                f"revision {rev + 1}: no 'startxref ... %%EOF' right after its "
                "cross-reference section",
                f"第 {rev + 1} 版交叉引用表之后缺少 startxref/%%EOF"))
        tails.append((meta.declared_startxref, int(m.group(1)), m.end()))

    linearized = (len(tails) >= 2 and tails[1][1] == 0 and tails[0][1] == tails[1][0]
                  and tails[1][0] < tails[0][0])
    spans: list[RevisionSpan] = []
    for rev, (declared, named, eof_end) in enumerate(tails):
        if linearized and rev < 2:
            declared, named, eof_end = tails[1][0], tails[1][0], tails[0][2]
        if named != declared:
            raise StructureError(finding(
                "PDF_BROKEN_XREF",
                f"revision {rev + 1}: its trailer says 'startxref {named}', not {declared}",
                f"第 {rev + 1} 版的 startxref 与其交叉引用表位置不符"))
        eol = _EOL.match(data, eof_end)
        spans.append(RevisionSpan(rev, declared, eof_end, eol.end() if eol else eof_end))
    problems: list[Finding] = []
    for prev, cur in itertools.pairwise(spans):
        if cur.xref_start < prev.end and not (linearized and cur.index == 1):
            problems.append(finding(
                "PDF_REVISION_ORDER",
                f"revision {cur.index + 1} does not follow revision {prev.index + 1} in the file",
                f"第 {cur.index + 1} 版未按顺序追加在第 {prev.index + 1} 版之后"))
    last = spans[-1]
    if last.end != len(data):
        extra = len(data) - last.end
        problems.append(finding(
            "TRAILING_BYTES",
            f"{extra} byte(s) after the last %%EOF (only one end-of-line is tolerated); "
            "unsigned data that is not an incremental update",
            f"最后一个 %%EOF 之后有 {extra} 个字节（仅允许一个换行），"
            "属于未签名且不是增量更新的数据"))
    return spans, problems


def object_extent(data: bytes, reader: PdfFileReader, offset: int,
                  expected_id: int | None = None) -> int:
    """The offset just after ``endobj`` of the indirect object starting at ``offset``.

    Raises ``ValueError`` if there is no well-formed ``n g obj ... endobj`` there (or the
    object number differs from ``expected_id``).
    """
    m = _OBJ_HEADER.match(data, offset)
    if m is None:
        raise ValueError(f"no object header at offset {offset}")
    idnum, gen = int(m.group(1)), int(m.group(2))
    if expected_id is not None and idnum != expected_id:
        raise ValueError(f"object {idnum} found at offset {offset}, expected {expected_id}")
    stream = BytesIO(data)
    stream.seek(m.end())
    try:
        generic.read_non_whitespace(stream, seek_back=True)
        generic.read_object(stream, generic.Reference(idnum, gen, reader))
    except Exception as exc:  # pyHanko raises assorted errors on hostile bytes
        raise ValueError(f"object {idnum} at offset {offset} cannot be parsed: {exc}") from exc
    generic.read_non_whitespace(stream, seek_back=True)
    if stream.read(6) != b"endobj":
        raise ValueError(f"object {idnum} at offset {offset} has no endobj")
    return stream.tell()


def _only_whitespace(data: bytes, start: int, end: int) -> bool:
    return start <= end and not data[start:end].strip(_WS)


def check_updates(data: bytes, reader: PdfFileReader, spans: Sequence[RevisionSpan],
                  after_revision: int) -> list[Finding]:
    """Every revision after ``after_revision`` must be a clean incremental update."""
    problems: list[Finding] = []
    xrefs = reader.xrefs
    for rev in range(after_revision + 1, len(spans)):
        seg_start, seg_end = spans[rev - 1].end, spans[rev].xref_start
        section = xrefs.get_xref_data(rev)
        entries = sorted((off, idnum) for idnum, (_gen, off) in section.standard_xrefs.items())
        pos = seg_start
        for off, idnum in entries:
            if off == seg_end and xrefs.get_xref_container_info(rev).stream_ref is not None:
                continue  # the xref stream object listing itself
            if not seg_start <= off < seg_end:
                where = "into signed bytes of an earlier revision" if off < seg_start \
                    else "outside the update"
                problems.append(finding(
                    "XREF_POINTS_OUTSIDE_UPDATE",
                    f"revision {rev + 1} redirects object {idnum} to offset {off}, {where} "
                    "(xref-only update / shadow attack)",
                    f"第 {rev + 1} 版将对象 {idnum} 重定向到偏移 {off}，位于本次更新之外"
                    "（仅改交叉引用表的影子攻击）"))
                continue
            if off < pos or not _only_whitespace(data, pos, off):
                problems.append(finding(
                    "UPDATE_HAS_UNREFERENCED_BYTES",
                    f"revision {rev + 1} contains bytes at {pos}..{off} that belong to no object "
                    "of its cross-reference section",
                    f"第 {rev + 1} 版在 {pos}..{off} 处含有不属于任何对象的字节"))
            try:
                pos = max(pos, object_extent(data, reader, off, idnum))
            except ValueError as exc:
                problems.append(finding(
                    "UPDATE_OBJECT_MALFORMED", f"revision {rev + 1}: {exc}",
                    f"第 {rev + 1} 版中的对象 {idnum} 格式错误"))
        if not _only_whitespace(data, pos, seg_end):
            problems.append(finding(
                "UPDATE_HAS_UNREFERENCED_BYTES",
                f"revision {rev + 1} contains bytes at {pos}..{seg_end} that belong to no object "
                "of its cross-reference section",
                f"第 {rev + 1} 版在 {pos}..{seg_end} 处含有不属于任何对象的字节"))
    return problems


def find_byterange_tokens(data: bytes) -> list[int]:
    """Offsets of every ``/ByteRange`` name in the raw bytes."""
    return [m.start() for m in _BYTERANGE_TOKEN.finditer(data)]


@dataclass(frozen=True)
class SignatureBytes:
    """Result of the byte-level check of one signature dictionary."""

    problems: tuple[Finding, ...]
    covered_revision: int | None  # revision index whose %%EOF the byte range ends at
    byterange_token: int | None   # offset of the dictionary's /ByteRange token
    object_span: tuple[int, int] | None


def _int_or_none(value: object) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return int(value)


def check_signature_bytes(data: bytes, reader: PdfFileReader, sig_ref: generic.Reference,
                          byte_range: object, contents: bytes,
                          spans: Sequence[RevisionSpan] | None,
                          signed_revision: int) -> SignatureBytes:
    """Check one signature dictionary against the raw bytes (see module docstring)."""
    problems: list[Finding] = []

    def bad(code: str, en: str, zh: str) -> SignatureBytes:
        problems.append(finding(code, en, zh))
        return SignatureBytes(tuple(problems), None, None, None)

    if not isinstance(byte_range, generic.ArrayObject) or len(byte_range) != 4:
        return bad("BYTE_RANGE_MALFORMED", "/ByteRange is not an array of four integers",
                   "/ByteRange 不是四个整数组成的数组")
    values = [_int_or_none(v) for v in byte_range]
    if any(v is None for v in values):
        return bad("BYTE_RANGE_MALFORMED", "/ByteRange holds something other than integers",
                   "/ByteRange 含有非整数值")
    start1, len1, start2, len2 = (int(v) for v in values)  # type: ignore[arg-type]
    if min(start1, len1, start2, len2) < 0:
        return bad("BYTE_RANGE_NEGATIVE", "/ByteRange holds a negative number",
                   "/ByteRange 含有负数")
    if start1 != 0 or len1 == 0 or start2 <= len1 or len2 == 0:
        return bad("BYTE_RANGE_MALFORMED",
                   f"/ByteRange [{start1} {len1} {start2} {len2}] does not start at 0 and "
                   "leave exactly one gap",
                   "/ByteRange 未从 0 开始或未恰好留出一个空隙")
    if start2 + len2 > len(data):
        return bad("BYTE_RANGE_OUT_OF_FILE",
                   f"/ByteRange ends at {start2 + len2}, beyond the end of the file ({len(data)})",
                   "/ByteRange 超出文件末尾")
    gap = data[len1:start2]
    m = _HEX_GAP.fullmatch(gap)
    if m is None or len(m.group(1)) % 2:
        return bad("CONTENTS_GAP_NOT_ONE_HEX_STRING",
                   f"the unsigned gap {len1}..{start2} is not exactly one hex string <...> "
                   "(signature wrapping)",
                   "未签名的空隙不是恰好一个十六进制字符串（签名包装攻击）")
    if bytes.fromhex(m.group(1).decode("ascii")) != contents:
        return bad("CONTENTS_NOT_IN_GAP",
                   "the signature's /Contents is not the string in the /ByteRange gap",
                   "签名的 /Contents 不是 /ByteRange 空隙中的字符串")
    if not _CONTENTS_KEY.search(data[max(0, len1 - 64):len1]):
        problems.append(finding("CONTENTS_NOT_IN_GAP",
                                "the /ByteRange gap does not directly follow the /Contents key",
                                "/ByteRange 空隙前面不是 /Contents 键"))
    # the signature dictionary must be one object in the signed bytes around the gap
    marker = reader.xrefs[sig_ref]
    span: tuple[int, int] | None = None
    token: int | None = None
    if not isinstance(marker, int):
        problems.append(finding("SIGNATURE_DICT_NOT_IN_SIGNED_BYTES",
                                "the signature dictionary is inside an object stream",
                                "签名字典位于对象流中"))
    else:
        try:
            end = object_extent(data, reader, marker, sig_ref.idnum)
        except ValueError as exc:
            problems.append(finding("SIGNATURE_DICT_NOT_IN_SIGNED_BYTES", str(exc),
                                    "无法定位签名字典"))
        else:
            span = (marker, end)
            if not (marker < len1 and start2 < end <= start2 + len2):
                problems.append(finding(
                    "SIGNATURE_DICT_NOT_IN_SIGNED_BYTES",
                    f"the signature dictionary ({marker}..{end}) does not enclose the signed gap",
                    "签名字典没有包围已签名范围中的空隙"))
            else:
                body = data[marker:end]
                brs = [marker + t.start() for t in _BYTERANGE_TOKEN.finditer(body)]
                cts = list(_CONTENTS_TOKEN.finditer(body))
                if len(brs) != 1 or len(cts) != 1:
                    problems.append(finding(
                        "SIGNATURE_DICT_DUPLICATE_KEYS",
                        "the signature dictionary names /ByteRange or /Contents more than once",
                        "签名字典中 /ByteRange 或 /Contents 出现多次"))
                token = brs[0] if brs else None
    covered: int | None = None
    if spans is not None:
        range_end = start2 + len2
        rev = spans[signed_revision] if signed_revision < len(spans) else None
        if rev is not None and range_end in (rev.eof_end, rev.end):
            covered = signed_revision
        else:
            problems.append(finding(
                "BYTE_RANGE_NOT_A_REVISION",
                f"/ByteRange ends at {range_end}, not at the %%EOF of the revision holding the "
                "signature",
                "/ByteRange 的终点不是签名所在版本的 %%EOF"))
    return SignatureBytes(tuple(problems), covered, token, span)
