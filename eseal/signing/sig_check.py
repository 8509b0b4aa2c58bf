"""The record of one signature while the verifier examines it, and the report it becomes.

Each step of the verifier (byte layout, integrity, changes after, chain, revocation, level)
writes what it learnt into one :class:`SigCheck`; only at the end is it frozen into a
:class:`~eseal.signing.report.SignatureReport`, whose verdict is the worst finding and whose
ETSI indication comes from :mod:`eseal.signing.ades`. Keeping the scratchpad mutable and the
report immutable means a step can never change a verdict already handed out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from eseal.signing.ades import ades_indication
from eseal.signing.report import (
    Chain,
    Changes,
    Coverage,
    Finding,
    Integrity,
    Revocation,
    SignatureReport,
    SignerIdentity,
    Widget,
    combine,
)
from eseal.signing.structure import finding

__all__ = ["SigCheck"]


@dataclass
class SigCheck:
    """Mutable scratchpad while one signature is examined."""

    field_name: str
    kind: Literal["seal", "document_timestamp"]
    problems: list[Finding] = field(default_factory=list)
    signer: SignerIdentity | None = None
    signing_time: datetime | None = None
    time_source: Literal["timestamp", "claimed"] | None = None
    tsa: str | None = None
    integrity: Integrity = field(default_factory=lambda: Integrity(False, False, None))
    coverage: Coverage | None = None
    changes: Changes = field(default_factory=lambda: Changes("unknown"))
    chain: Chain = field(default_factory=lambda: Chain(None))
    rev_signing: Revocation = field(default_factory=lambda: Revocation("unknown"))
    rev_now: Revocation = field(default_factory=lambda: Revocation("not_checked"))
    level: Literal["B-B", "B-T", "B-LT", "B-LTA"] | None = None
    signed_revision: int | None = None
    byterange_token: int | None = None
    ts_revocation_embedded: bool = False
    widget: Widget | None = None

    def add(self, code: str, en: str, zh: str, severity: str = "invalid") -> None:
        self.problems.append(finding(code, en, zh, severity))

    def report(self, total_revisions: int) -> SignatureReport:
        verdict = combine(self.problems)
        indication, sub = ades_indication(verdict, self.problems)
        return SignatureReport(
            field_name=self.field_name, kind=self.kind, verdict=verdict, signer=self.signer,
            signing_time=self.signing_time, signing_time_source=self.time_source,
            timestamp_authority=self.tsa, integrity=self.integrity,
            coverage=self.coverage or Coverage("unclear", None, total_revisions),
            changes_after=self.changes, chain=self.chain,
            revocation_at_signing=self.rev_signing, revocation_now=self.rev_now,
            pades_level=self.level if verdict != "invalid" else None,
            ades_indication=indication, ades_subindication=sub,
            problems=tuple(self.problems), widget=self.widget)
