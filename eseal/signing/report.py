"""The verification report of a sealed PDF: what a relying party reads, years later.

A report answers, for every signature in the file: who sealed (enterprise, credit code,
holder, certificate profile), when (and whether a timestamp proves it), whether the bytes are
intact, what the signature covers and what changed after it, whether the chain reaches one of
the given trust roots, the revocation status at signing time (and now, if asked), the PAdES
level reached and its own verdict; then one overall verdict and exit code.

Three verdicts, as in ETSI EN 319 102-1: ``valid`` (TOTAL-PASSED), ``invalid``
(TOTAL-FAILED: something is provably wrong) and ``indeterminate`` (we could not decide, e.g.
no path to a trust root or no revocation data for the signing time). Any *invalid* finding
wins over any *indeterminate* one, so a tampered file is never merely "indeterminate".

Everything is a frozen dataclass; ``to_dict()`` gives JSON-ready data with English keys,
every message in English and Chinese, and a ``labels_zh`` table naming each key in Chinese,
so the CLI, the API and a printed receipt all say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Verdict = Literal["valid", "invalid", "indeterminate"]
Severity = Literal["invalid", "indeterminate", "info"]

VERDICTS: tuple[Verdict, ...] = ("valid", "invalid", "indeterminate")
EXIT_CODES: dict[Verdict, int] = {"valid": 0, "invalid": 1, "indeterminate": 2}

VERDICT_ZH: dict[str, str] = {"valid": "有效", "invalid": "无效", "indeterminate": "无法判定"}

# Chinese names of every key ``to_dict`` emits (one table, so translations stay consistent).
LABELS_ZH: dict[str, str] = {
    "verdict": "验证结论",
    "verdict_zh": "验证结论（中文）",
    "exit_code": "退出码",
    "validated_at": "验证时间",
    "file_size": "文件大小（字节）",
    "file_sha256": "文件 SHA-256",
    "revisions": "文件版本数",
    "trust_anchors": "信任锚",
    "problems": "问题",
    "signatures": "签章",
    "field_name": "签名域名称",
    "kind": "类型",
    "signer": "签章人",
    "enterprise": "企业名称",
    "credit_code": "统一社会信用代码",
    "holder": "证书持有人",
    "profile": "证书用途",
    "certificate_serial": "证书序列号",
    "issuer": "签发机构",
    "not_before": "证书生效时间",
    "not_after": "证书失效时间",
    "signing_time": "签章时间",
    "signing_time_source": "签章时间来源",
    "timestamp_authority": "时间戳服务机构",
    "integrity": "完整性",
    "digest_ok": "摘要一致",
    "signature_ok": "签名值正确",
    "digest_algorithm": "摘要算法",
    "coverage": "签名覆盖范围",
    "scope": "覆盖类型",
    "revision": "所签版本",
    "total_revisions": "总版本数",
    "changes_after": "签章后的改动",
    "status": "状态",
    "details": "详情",
    "chain": "证书链",
    "trusted": "可信",
    "trust_anchor": "信任锚",
    "path": "证书路径",
    "revocation_at_signing": "签章时的吊销状态",
    "revocation_now": "当前吊销状态",
    "source": "数据来源",
    "checked_at": "检查时刻",
    "revoked_at": "吊销生效时间",
    "reason": "原因",
    "pades_level": "PAdES 级别",
    "ades_indication": "AdES 结论",
    "ades_subindication": "AdES 子结论",
    "widget": "签章位置",
    "page": "页码",
    "rect": "矩形（磅）",
    "rect_in_box": "相对可见区域的矩形（磅）",
    "page_rotate": "页面旋转角度",
    "code": "代码",
    "severity": "严重程度",
    "message": "说明",
    "message_zh": "说明（中文）",
}


@dataclass(frozen=True)
class Finding:
    """One thing the verifier noticed. ``invalid`` and ``indeterminate`` findings decide the
    verdict; ``info`` findings only explain (e.g. "revocation now not checked")."""

    code: str
    severity: Severity
    message: str
    message_zh: str

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code, "severity": self.severity, "message": self.message,
                "message_zh": self.message_zh}


@dataclass(frozen=True)
class SignerIdentity:
    """The signer as the certificate names it (subject O / organizationIdentifier / CN)."""

    enterprise: str | None
    credit_code: str | None
    holder: str | None
    profile: str
    certificate_serial: str
    issuer: str
    not_before: datetime
    not_after: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "enterprise": self.enterprise, "credit_code": self.credit_code,
            "holder": self.holder, "profile": self.profile,
            "certificate_serial": self.certificate_serial, "issuer": self.issuer,
            "not_before": _iso(self.not_before), "not_after": _iso(self.not_after),
        }


@dataclass(frozen=True)
class Integrity:
    """``digest_ok``: the signed bytes hash to the signed messageDigest; ``signature_ok``: the
    CMS signature verifies with the signer's public key."""

    digest_ok: bool
    signature_ok: bool
    digest_algorithm: str | None

    def to_dict(self) -> dict[str, Any]:
        return {"digest_ok": self.digest_ok, "signature_ok": self.signature_ok,
                "digest_algorithm": self.digest_algorithm}


@dataclass(frozen=True)
class Coverage:
    """``whole_file``: the signature covers every byte but its own /Contents; ``revision``:
    it covers revision ``revision`` of ``total_revisions`` (1-based) and later revisions were
    appended; ``unclear``: the byte range does not describe a revision (always invalid)."""

    scope: Literal["whole_file", "revision", "unclear"]
    revision: int | None
    total_revisions: int

    def to_dict(self) -> dict[str, Any]:
        return {"scope": self.scope, "revision": self.revision,
                "total_revisions": self.total_revisions}


@dataclass(frozen=True)
class Changes:
    """What happened after the signed revision: ``none``, only ``allowed`` updates (later
    seals, DSS/VRI, document timestamps, document metadata), or ``disallowed`` ones."""

    status: Literal["none", "allowed", "disallowed", "unknown"]
    details: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "details": self.details}


@dataclass(frozen=True)
class Chain:
    """Path from the signer's certificate to one of the caller's trust roots (no system
    store), judged at the signing time."""

    trusted: bool | None
    trust_anchor: str | None = None
    path: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"trusted": self.trusted, "trust_anchor": self.trust_anchor,
                "path": list(self.path)}


RevocationState = Literal["good", "revoked", "on_hold", "unknown", "not_checked"]


@dataclass(frozen=True)
class Revocation:
    """Revocation status of the signer's certificate (and its CA) at one moment.

    ``source``: ``embedded`` (DSS / adbe-revocationInfoArchival in the file), ``fetched``
    (downloaded because the caller allowed fetching) or ``live`` (the issuing CA's own records,
    when the service verifies). ``revoked_at`` is the moment the
    revocation takes effect: the invalidityDate of a keyCompromise entry when earlier than the
    revocation date, else the revocation date.
    """

    status: RevocationState
    source: Literal["embedded", "fetched", "live"] | None = None
    checked_at: datetime | None = None
    revoked_at: datetime | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "source": self.source,
                "checked_at": _iso(self.checked_at), "revoked_at": _iso(self.revoked_at),
                "reason": self.reason}


@dataclass(frozen=True)
class Widget:
    """Where a seal shows: its widget's ``page`` (1-based) and ``rect`` (x0, y0, x1, y1) in
    PDF user space (points); ``rect_in_box`` is the same rectangle relative to the lower-left
    corner of the page's visible box (before the page's ``page_rotate`` turns it)."""

    page: int
    rect: tuple[float, float, float, float]
    rect_in_box: tuple[float, float, float, float]
    page_rotate: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"page": self.page, "rect": [_num(v) for v in self.rect],
                "rect_in_box": [_num(v) for v in self.rect_in_box],
                "page_rotate": self.page_rotate}


@dataclass(frozen=True)
class SignatureReport:
    """Everything about one signature (an e-seal or a document timestamp)."""

    field_name: str
    kind: Literal["seal", "document_timestamp"]
    verdict: Verdict
    signer: SignerIdentity | None
    signing_time: datetime | None
    signing_time_source: Literal["timestamp", "claimed"] | None
    timestamp_authority: str | None
    integrity: Integrity
    coverage: Coverage
    changes_after: Changes
    chain: Chain
    revocation_at_signing: Revocation
    revocation_now: Revocation
    pades_level: Literal["B-B", "B-T", "B-LT", "B-LTA"] | None
    ades_indication: str
    ades_subindication: str | None
    problems: tuple[Finding, ...] = ()
    #: where the seal shows on the page; ``None`` for an invisible seal
    widget: Widget | None = None

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    def to_dict(self) -> dict[str, Any]:
        return {
            "field_name": self.field_name,
            "kind": self.kind,
            "verdict": self.verdict,
            "verdict_zh": VERDICT_ZH[self.verdict],
            "signer": self.signer.to_dict() if self.signer else None,
            "signing_time": _iso(self.signing_time),
            "signing_time_source": self.signing_time_source,
            "timestamp_authority": self.timestamp_authority,
            "integrity": self.integrity.to_dict(),
            "coverage": self.coverage.to_dict(),
            "changes_after": self.changes_after.to_dict(),
            "chain": self.chain.to_dict(),
            "revocation_at_signing": self.revocation_at_signing.to_dict(),
            "revocation_now": self.revocation_now.to_dict(),
            "pades_level": self.pades_level,
            "ades_indication": self.ades_indication,
            "ades_subindication": self.ades_subindication,
            "problems": [p.to_dict() for p in self.problems],
            "widget": self.widget.to_dict() if self.widget else None,
        }


@dataclass(frozen=True)
class VerificationReport:
    """The whole file: every signature, document-level problems, one verdict."""

    verdict: Verdict
    signatures: tuple[SignatureReport, ...]
    problems: tuple[Finding, ...]
    validated_at: datetime
    file_size: int
    file_sha256: str
    revisions: int
    trust_anchors: tuple[str, ...] = field(default=())

    @property
    def exit_code(self) -> int:
        """0 valid, 1 invalid, 2 could not be judged."""
        return EXIT_CODES[self.verdict]

    @property
    def seals(self) -> tuple[SignatureReport, ...]:
        return tuple(s for s in self.signatures if s.kind == "seal")

    def all_problems(self) -> list[Finding]:
        """Document-level problems followed by every signature's problems."""
        out = list(self.problems)
        for sig in self.signatures:
            out.extend(sig.problems)
        return out

    def problem_codes(self) -> set[str]:
        return {p.code for p in self.all_problems() if p.severity != "info"}

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "verdict_zh": VERDICT_ZH[self.verdict],
            "exit_code": self.exit_code,
            "validated_at": _iso(self.validated_at),
            "file_size": self.file_size,
            "file_sha256": self.file_sha256,
            "revisions": self.revisions,
            "trust_anchors": list(self.trust_anchors),
            "problems": [p.to_dict() for p in self.problems],
            "signatures": [s.to_dict() for s in self.signatures],
            "labels_zh": dict(LABELS_ZH),
        }


def combine(findings: list[Finding] | tuple[Finding, ...]) -> Verdict:
    """The verdict a list of findings leads to: invalid beats indeterminate beats valid."""
    severities = {f.severity for f in findings}
    if "invalid" in severities:
        return "invalid"
    if "indeterminate" in severities:
        return "indeterminate"
    return "valid"


def _num(value: float) -> float | int:
    rounded = round(value, 3)
    return int(rounded) if rounded == int(rounded) else rounded


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
