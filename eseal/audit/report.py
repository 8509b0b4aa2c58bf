"""What an audit-log verification found: each finding's stable code and words in English
and Chinese, and the report ``eseal audit verify`` and ``GET /audit/verify`` print. Kept apart
from the log itself (``eseal.audit.log``) because auditors and relying parties read the report
without writing to the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from eseal.audit.head import HeadRecord

#: every finding's stable code, English and Chinese
PROBLEMS: dict[str, tuple[str, str]] = {
    "changed": ("the row differs from what was hashed or signed", "该行与哈希或签名的内容不一致"),
    "deleted": ("a row is missing", "缺少一行"),
    "reordered": ("rows are out of order", "行顺序被改变"),
    "truncated": ("rows a signature vouches for are missing at the end",
                  "签名所担保的末尾记录缺失"),
    "bad_checkpoint": ("a checkpoint's signature does not verify", "检查点签名无效"),
    "journal_missing": ("a checkpoint in the database is missing from the journal file",
                        "数据库中的检查点在日志文件中缺失"),
    "no_checkpoint": ("the log has events but no valid signed checkpoint",
                      "日志有记录但没有有效的签名检查点"),
    "uncovered": ("more events than the checkpoint cadence allows have no signed checkpoint",
                  "未被签名检查点覆盖的记录数超过检查点间隔所允许的数量"),
    "checkpoint_gap": ("two signed checkpoints are further apart than the cadence allows: the "
                       "ones between were deleted",
                       "两个签名检查点的间隔超过检查点间隔，中间的检查点被删除"),
    "bad_anchor": ("a CRL presented as evidence is not a valid CRL of this CA",
                   "作为证据的 CRL 不是本 CA 签发的有效 CRL"),
    "checkpoint_chain": ("a checkpoint does not follow its predecessor (sequence number or "
                         "predecessor hash): checkpoints were deleted, reordered or inserted",
                         "检查点与其前一个检查点不衔接（序号或前驱哈希），检查点被删除、调换或插入"),
    "head_rewritten": ("the newest checkpoint the CA token recorded is missing from the "
                       "database or no longer matches its event: the log was truncated or "
                       "rewritten",
                       "CA USB-Key 记录的最新检查点在数据库中缺失或与其事件不符：日志被截断或改写"),
}


@dataclass(frozen=True)
class AuditFinding:
    event_id: int | None
    problem: str  # a key of PROBLEMS
    detail: str = ""

    def describe(self) -> str:
        """``row N: problem — what it means (detail)``: the code for scripts, the sentence
        for the auditor reading it."""
        where = f"row {self.event_id}" if self.event_id is not None else "the log"
        text = f"{where}: {self.problem} — {PROBLEMS[self.problem][0]}"
        return f"{text} ({self.detail})" if self.detail else text

    def describe_zh(self) -> str:
        where = f"第 {self.event_id} 行" if self.event_id is not None else "日志"
        return f"{where}：{PROBLEMS[self.problem][1]}"


@dataclass
class AuditReport:
    events: int = 0
    last_event: int = 0  # the id of the last row
    checkpoints: int = 0
    anchors: int = 0  # CRLs carrying the chain head that were checked
    covered_through: int = 0  # the last event a valid signature (checkpoint or CRL) vouches for
    allowed_uncovered: int = 0  # what the checkpoint cadence allows at the end
    findings: list[AuditFinding] = field(default_factory=list)
    checkpointed: set[int] = field(default_factory=set)  # events a valid checkpoint signs
    token_head: HeadRecord | None = None  # the newest checkpoint the CA token recorded
    unanchored_through: int = 0  # events only legacy (unchained) checkpoints vouch for

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def uncovered(self) -> int:
        """Events at the end of the log that no valid signature vouches for."""
        return max(0, self.last_event - self.covered_through)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "anchors": self.anchors,
            "covered_through": self.covered_through,
            "uncovered": self.uncovered,
            "allowed_uncovered": self.allowed_uncovered,
            "token_head": ({"seq": self.token_head.seq, "event_id": self.token_head.event_id}
                           if self.token_head else None),
            "unanchored_through": self.unanchored_through,
            "first_problem": self.findings[0].describe() if self.findings else None,
            "findings": [{"event_id": f.event_id, "problem": f.problem, "detail": f.detail,
                          "message": PROBLEMS[f.problem][0],
                          "message_zh": PROBLEMS[f.problem][1]} for f in self.findings],
        }
