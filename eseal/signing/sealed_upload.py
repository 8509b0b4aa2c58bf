"""Accept a sealed upload as the sealed version of a stored draft, or say why not.

The acceptance rule (points 1–4 of :mod:`eseal.signing.intake`, the intake's contract): the
upload is the draft plus one update that adds only a seal (:mod:`.seal_update`); the
verifier finds nothing invalid; a trusted signature timestamp proves when the seal was
made; and the CA's records (:class:`EnterpriseSeals`) show the certificate is this
enterprise's current seal certificate, good now and not frozen at that time. The check is
pure: bytes and records in, an :class:`AcceptedSeal` or a coded refusal out.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from eseal import clock
from eseal.signing.draft_check import check_draft
from eseal.signing.report import SignatureReport, VerificationReport
from eseal.signing.revocation import LiveStatusLookup
from eseal.signing.seal_update import new_seal, refuse

__all__ = [
    "FROM_RECORDS",
    "TIMESTAMP_UNCERTAINTY",
    "TOLERATED_DOUBTS",
    "AcceptedSeal",
    "EnterpriseSeals",
    "check_sealed_upload",
]

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


def _seal_report(report: VerificationReport, field_name: str) -> SignatureReport:
    for sig in report.seals:
        if sig.field_name == field_name:
            return sig
    raise refuse("ONE_SEAL_REQUIRED", "the verifier did not find the new seal",
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
        raise refuse("PDF_EMPTY", "the file is empty", "文件为空")
    if len(sealed) <= len(draft) or sealed[:len(draft)] != draft:
        raise refuse("NOT_THE_DRAFT",
                     "the upload does not begin with the stored draft's exact bytes: seal the "
                     "draft as downloaded, without saving it in another program first",
                     "上传文件不是以所存草稿的原始字节开头：请直接对下载的草稿签章，不要用其他软件另存",
                     details={"draft_bytes": len(draft), "upload_bytes": len(sealed)})
    draft_info = check_draft(draft, field="draft")
    emb = new_seal(sealed, draft_info)

    report = verify_pdf(sealed, trust_roots=trust_roots, now=moment, live_status=live_status)
    from_records = {p.code for sig in report.seals if sig.field_name == emb.field_name
                    and sig.revocation_at_signing.source == "live"
                    for p in sig.problems} & FROM_RECORDS
    invalid = [p for p in report.all_problems()
               if p.severity == "invalid" and p.code not in from_records]
    if invalid:
        first = invalid[0]
        raise refuse("SEAL_INVALID", f"the sealed file is not valid: {first.message}",
                     f"签章文件无效：{first.message_zh}",
                     details={"findings": sorted({p.code for p in invalid}),
                              "verdict": report.verdict})
    seal = _seal_report(report, emb.field_name)
    if seal.signer is None or not seal.chain.trusted:
        raise refuse("SEAL_UNTRUSTED",
                     "the seal's certificate does not chain to this CA's root",
                     "签章证书无法链接到本 CA 的根证书", details={"verdict": report.verdict})
    if seal.signing_time_source != "timestamp" or seal.signing_time is None:
        raise refuse("SEAL_NOT_TIMESTAMPED",
                     "the seal carries no valid signature timestamp; seal at level B-T or B-LT",
                     "签章未包含有效的签名时间戳，请以 B-T 或 B-LT 级别签章")
    doubts = sorted({p.code for p in report.all_problems()
                     if p.severity == "indeterminate"} - TOLERATED_DOUBTS)
    if doubts:
        raise refuse("SEAL_NOT_VERIFIABLE",
                     f"the seal cannot be fully verified ({', '.join(doubts)})",
                     f"签章无法完成验证（{'、'.join(doubts)}）", details={"findings": doubts})

    serial = seal.signer.certificate_serial
    if seal.signer.credit_code != seals.uscc:
        raise refuse("SEAL_WRONG_ENTERPRISE",
                     f"the seal belongs to {seal.signer.credit_code} {seal.signer.enterprise}, "
                     f"not to the filing's enterprise {seals.uscc}",
                     f"签章属于 {seal.signer.credit_code}（{seal.signer.enterprise}），"
                     f"不是本申报企业 {seals.uscc} 的印章", conflict=True,
                     details={"sealed_by": seal.signer.credit_code, "expected": seals.uscc})
    status = seals.status.get(serial)
    if status in ("revoked", "hold"):
        state_en = "revoked" if status == "revoked" else "frozen (on hold)"
        raise refuse("SEAL_CERT_REVOKED",
                     f"the seal certificate {serial} is {state_en}",
                     f"印章证书 {serial} 已{'吊销' if status == 'revoked' else '冻结'}",
                     conflict=True, details={"serial": serial, "status": status})
    if serial not in seals.current or status != "good":
        raise refuse("SEAL_CERT_NOT_CURRENT",
                     f"the seal certificate {serial} is not the enterprise's current seal "
                     "certificate (renewed, re-keyed or unknown); refresh the USB-Key and seal "
                     "again",
                     f"印章证书 {serial} 不是企业当前有效的印章证书，请更新 USB-Key 后重新签章",
                     conflict=True, details={"serial": serial})
    earliest = seal.signing_time - TIMESTAMP_UNCERTAINTY
    latest = seal.signing_time + TIMESTAMP_UNCERTAINTY
    for frozen_at, unfrozen_at in seals.frozen.get(serial, ()):
        if frozen_at <= latest and (unfrozen_at is None or earliest < unfrozen_at):
            raise refuse("SEAL_CERT_FROZEN_AT_SIGNING",
                         f"the seal was made at {seal.signing_time.isoformat()} while its "
                         "certificate was frozen",
                         "签章时印章证书处于冻结状态", conflict=True,
                         details={"serial": serial})
    if from_records:  # the records refused it above; fail closed should they ever not
        raise refuse("SEAL_INVALID", "the CA's records show the seal certificate revoked or "
                     "frozen before the seal can be proven to exist",
                     "本 CA 记录显示印章证书在签章可证明的时间之前已被吊销或冻结",
                     details={"findings": sorted(from_records), "verdict": report.verdict})
    return AcceptedSeal(sha256=report.file_sha256, size=report.file_size,
                        certificate_serial=serial, enterprise=seal.signer.enterprise,
                        credit_code=seals.uscc, signing_time=seal.signing_time,
                        pades_level=seal.pades_level, field_name=seal.field_name,
                        report=report)
