"""How one seal or document timestamp in a PDF is examined, step by step.

The verifier (:mod:`eseal.signing.verify`) finds the signatures and judges the document as a
whole; this module holds what it does for *each* signature, in the order the policy in its
docstring needs: the byte layout (:mod:`eseal.signing.structure`), pyHanko's integrity and
difference analysis (on our stricter policy, :mod:`eseal.signing.modifications`), whether the
certificate may seal at all (:mod:`eseal.signing.signer_identity`), which time the seal is
judged at (a trusted timestamp's, else the signer's unproven claim), then chain and
revocation at that time (:mod:`eseal.signing.chain_validation`) and the PAdES level reached.
Every step writes into the signature's :class:`~eseal.signing.sig_check.SigCheck`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from asn1crypto import pdf as asn1_pdf
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import DiffResult, ModificationLevel, SuspiciousModification
from pyhanko.sign.general import find_unique_cms_attribute
from pyhanko.sign.validation import (
    EmbeddedPdfSignature,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter
from pyhanko.sign.validation.settings import KeyUsageConstraints
from pyhanko.sign.validation.status import SignatureCoverageLevel

from eseal.signing.chain_validation import TOLERANCE, ChainJudge
from eseal.signing.modifications import STRICT_DIFF_POLICY
from eseal.signing.report import Chain, Changes, Coverage, Finding, Integrity, Revocation
from eseal.signing.revocation import RevinfoPool, usable_revinfo
from eseal.signing.sig_check import SigCheck
from eseal.signing.signer_identity import describe, has_non_repudiation, identity, to_crypto
from eseal.signing.structure import RevisionSpan, check_signature_bytes

__all__ = ["SignatureChecks"]

_SUBFILTERS = {"/ETSI.CAdES.detached", "/adbe.pkcs7.detached"}
_TS_SUBFILTERS = {"/ETSI.RFC3161"}


class SignatureChecks:
    """The per-signature steps over one parsed document.

    ``pool`` and ``extra_certs`` are the document security store's revocation data and
    certificates; ``doc_problems`` receives findings about the document rather than one
    signature (unreadable revocation data in a signature's archival attribute).
    """

    def __init__(self, data: bytes, reader: PdfFileReader, spans: list[RevisionSpan] | None,
                 now: datetime, pool: RevinfoPool, extra_certs: list[asn1_x509.Certificate],
                 judge: ChainJudge, doc_problems: list[Finding]) -> None:
        self.data = data
        self.reader = reader
        self.spans = spans
        self.now = now
        self.pool = pool
        self.extra_certs = extra_certs
        self.judge = judge
        self.doc_problems = doc_problems

    # -- a seal --------------------------------------------------------------------------------

    async def check_seal(self, check: SigCheck, emb: EmbeddedPdfSignature) -> None:
        self._structure(check, emb)
        subfilter = emb.sig_object.get("/SubFilter")
        if subfilter not in _SUBFILTERS:
            check.add("UNSUPPORTED_SUBFILTER", f"signature /SubFilter {subfilter} is not accepted",
                      "不支持的签名子过滤器（/SubFilter）")
            return
        try:
            signer_asn1 = emb.signer_cert
        except Exception:
            check.add("NO_SIGNING_CERTIFICATE", "the signer's certificate is not in the signature",
                      "签名中没有签章人证书")
            return
        signer = to_crypto(signer_asn1)
        check.signer = identity(signer)
        certs = self._certs_for(emb)
        arch_crls, arch_ocsps, unusable = usable_revinfo(*self._archival_revinfo(emb))
        self.doc_problems.extend(unusable)
        crls = self.pool.crls + arch_crls
        ocsps = self.pool.ocsps + arch_ocsps

        # timestamp time first (unverified), so the TSA chain is judged at its own time
        tst_time: datetime | None = None
        for tst in extract_tst_data_iter(emb.signer_info, signed=False):
            try:
                tst_time = tst["encap_content_info"]["content"].parsed["gen_time"].native
            except Exception:
                tst_time = None
            break
        claimed = emb.self_reported_timestamp
        ts_vc = self.judge.context(certs, tst_time or self.now, "soft-fail", crls, ocsps)
        sig_vc = self.judge.context(certs, tst_time or claimed or self.now, "soft-fail", crls,
                                    ocsps)
        status = await async_validate_pdf_signature(
            emb, signer_validation_context=sig_vc, ts_validation_context=ts_vc,
            diff_policy=STRICT_DIFF_POLICY,
            key_usage_settings=KeyUsageConstraints(key_usage=set()))
        self._integrity(check, status.intact, status.valid, status.md_algorithm)
        self._modifications(check, status.coverage, status.diff_result)
        if status.docmdp_ok is False and check.changes.status == "allowed":
            check.changes = Changes("disallowed", "forbidden by the certification (DocMDP)")
            check.add("DOCMDP_VIOLATED",
                      f"this certification seal permits changes up to level "
                      f"{emb.docmdp_level.name if emb.docmdp_level else '?'}; later revisions "
                      "go beyond that",
                      "该认证签章（DocMDP）禁止的修改在签章后发生")

        # profile: only a seal certificate seals
        if check.signer.profile != "seal":
            check.add("NOT_A_SEAL_CERTIFICATE",
                      f"the certificate was issued for '{check.signer.profile}', not as an "
                      "enterprise seal; its signature is not a seal",
                      f"该证书用途为“{check.signer.profile}”，不是企业电子印章证书，其签名不构成签章")
        elif not has_non_repudiation(signer):
            check.add("SEAL_KEY_USAGE", "the seal certificate lacks the nonRepudiation key usage",
                      "印章证书缺少 nonRepudiation（不可否认）密钥用法")

        # signing time
        tsv = status.timestamp_validity
        moment: datetime
        if tsv is not None:
            check.tsa = describe(tsv.signing_cert) if tsv.signing_cert is not None else None
            if not (tsv.intact and tsv.valid):
                check.add("TIMESTAMP_INVALID",
                          "the signature timestamp token is present but does not verify",
                          "签名时间戳存在但验证失败")
            elif not tsv.trusted:
                check.add("TIMESTAMP_UNTRUSTED",
                          "the signature timestamp does not chain to a trust root; the signing "
                          "time is only claimed",
                          "签名时间戳的证书链不可信，签章时间仅为签章方声明",
                          "indeterminate")
        if tsv is not None and tsv.intact and tsv.valid and tsv.trusted and \
                self.judge.tsa_trustworthy(check, tsv, crls, ocsps):
            moment, check.time_source = tsv.timestamp, "timestamp"
            if claimed is not None and claimed > tsv.timestamp + timedelta(minutes=10):
                check.add("CLAIMED_TIME_AFTER_TIMESTAMP",
                          "the signer's claimed time is later than the timestamp",
                          "签章方声明的时间晚于时间戳时间", "info")
        elif claimed is not None:
            moment, check.time_source = claimed, "claimed"
        else:
            moment, check.time_source = self.now, None
            check.add("NO_SIGNING_TIME", "the signature states no signing time",
                      "签名未给出签章时间", "indeterminate")
        check.signing_time = moment if check.time_source else None
        if moment > self.now + TOLERANCE:
            check.add("SIGNING_TIME_IN_FUTURE",
                      f"the signing time {moment.isoformat()} is after the validation time",
                      "签章时间晚于验证时间", "indeterminate")
        proven = check.time_source == "timestamp"

        # chain at the signing time
        path, err = await self.judge.path(signer_asn1, certs, moment)
        if path is None:
            self.judge.chain_failure(check, err, signer, moment)
        else:
            check.chain = Chain(True, describe(path.first),
                                tuple(describe(c) for c in path.iter_certs(include_root=True)))
            if not proven and self.now > signer.not_valid_after_utc:
                check.add("EXPIRED_NO_POE",
                          "the certificate has expired and no timestamp proves the seal was "
                          "made while it was valid",
                          "证书已过期，且没有时间戳证明签章发生在有效期内", "indeterminate")

        # revocation at signing time, then now
        await self.judge.revocation(check, signer_asn1, signer, certs, path, moment, proven,
                               crls, ocsps)

        # level
        if check.integrity.digest_ok and check.integrity.signature_ok:
            level: Literal["B-B", "B-T", "B-LT", "B-LTA"] = "B-B"
            if proven:
                level = "B-T"
                ts_embedded = await self.judge.tsa_revocation_embedded(tsv, certs, crls, ocsps)
                if check.rev_signing.status == "good" and \
                        check.rev_signing.source == "embedded" and ts_embedded:
                    level = "B-LT"
            check.level = level

    # -- a document timestamp ------------------------------------------------------------------

    async def check_doc_timestamp(self, check: SigCheck, emb: EmbeddedPdfSignature) -> None:
        self._structure(check, emb)
        subfilter = emb.sig_object.get("/SubFilter")
        if subfilter not in _TS_SUBFILTERS:
            check.add("UNSUPPORTED_SUBFILTER",
                      f"document timestamp /SubFilter {subfilter} is not accepted",
                      "不支持的文档时间戳子过滤器")
            return
        certs = self._certs_for(emb)
        try:
            gen_time = emb.signed_data["encap_content_info"]["content"].parsed["gen_time"].native
        except Exception:
            gen_time = self.now
        vc = self.judge.context(certs, gen_time, "soft-fail", self.pool.crls, self.pool.ocsps)
        status = await async_validate_pdf_timestamp(emb, validation_context=vc,
                                                    diff_policy=STRICT_DIFF_POLICY)
        self._integrity(check, status.intact, status.valid, status.md_algorithm)
        self._modifications(check, status.coverage, status.diff_result)
        check.signing_time, check.time_source = status.timestamp, "timestamp"
        check.tsa = describe(status.signing_cert) if status.signing_cert is not None else None
        if status.trusted:
            path = status.validation_path
            check.chain = Chain(True, describe(path.first) if path is not None else None,
                                tuple(describe(c) for c in path.iter_certs(include_root=True))
                                if path is not None else ())
        else:
            check.chain = Chain(False)
            check.add("TIMESTAMP_UNTRUSTED",
                      "the document timestamp does not chain to a trust root; it proves nothing",
                      "文档时间戳不能链接到可信根证书，不具证明力", "info")
        check.rev_signing = Revocation("not_checked")
        check.rev_now = Revocation("not_checked")
        if status.timestamp > self.now + TOLERANCE:
            check.add("SIGNING_TIME_IN_FUTURE", "the document timestamp is in the future",
                      "文档时间戳晚于验证时间", "indeterminate")

    # -- shared per-signature steps --------------------------------------------------------

    def _structure(self, check: SigCheck, emb: EmbeddedPdfSignature) -> None:
        sig_ref = emb.sig_field.raw_get("/V")
        check.signed_revision = emb.signed_revision
        total = self.reader.xrefs.total_revisions
        sb = check_signature_bytes(self.data, self.reader, sig_ref.reference, emb.byte_range,
                                   emb.pkcs7_content, self.spans, emb.signed_revision)
        check.problems.extend(sb.problems)
        check.byterange_token = sb.byterange_token
        if sb.covered_revision is None:
            check.coverage = Coverage("unclear", None, total)
        elif sb.covered_revision == total - 1:
            check.coverage = Coverage("whole_file", sb.covered_revision + 1, total)
        else:
            check.coverage = Coverage("revision", sb.covered_revision + 1, total)

    def _modifications(self, check: SigCheck, coverage: SignatureCoverageLevel | None,
                       diff: DiffResult | SuspiciousModification | None) -> None:
        if coverage is None or coverage < SignatureCoverageLevel.ENTIRE_REVISION:
            check.changes = Changes("unknown", "the signature does not cover a whole revision")
            check.add("COVERAGE_UNCLEAR",
                      "the signature does not cover a whole revision of the document",
                      "签名未覆盖文档的一个完整版本")
            return
        if isinstance(diff, SuspiciousModification):
            check.changes = Changes("disallowed", str(diff)[:500])
            check.add("MODIFIED_AFTER_SEALING",
                      f"the document was changed after this signature in a way that is not "
                      f"allowed: {str(diff)[:300]}",
                      "签章后文档被以不允许的方式修改（页面内容、注释或表单等）")
        elif diff is None or diff.modification_level == ModificationLevel.NONE:
            check.changes = Changes("none")
        else:
            check.changes = Changes("allowed", "later signatures, DSS/VRI, document "
                                               "timestamps or XMP metadata only")

    def _integrity(self, check: SigCheck, intact: bool, valid: bool, md: str | None) -> None:
        check.integrity = Integrity(digest_ok=bool(intact), signature_ok=bool(valid),
                                    digest_algorithm=md)
        if not intact:
            check.add("DIGEST_MISMATCH", "the signed bytes do not match the signature's digest",
                      "签名所覆盖的字节与签名摘要不一致（文档被篡改）")
        elif not valid:
            check.add("SIGNATURE_INVALID", "the cryptographic signature does not verify",
                      "签名值验证失败")

    def _certs_for(self, emb: EmbeddedPdfSignature) -> list[asn1_x509.Certificate]:
        """Intermediate certificates offered by the file (CMS and DSS). Self-issued ones are
        dropped: trust anchors come only from the caller, and an altered copy of a root
        (the CMS certificate set is not covered by the signature) must not be able to
        derail path building for CRL issuers."""
        return [c for c in list(emb.other_embedded_certs) + list(self.extra_certs)
                if not c.self_issued]

    def _archival_revinfo(self, emb: EmbeddedPdfSignature) -> tuple[list[bytes], list[bytes]]:
        try:
            ria: asn1_pdf.RevocationInfoArchival = find_unique_cms_attribute(
                emb.signer_info["signed_attrs"], "adobe_revocation_info_archival")
        except Exception:
            return [], []
        crls = [c.dump() for c in ria["crl"]] if ria["crl"].native else []
        ocsps = [o.dump() for o in ria["ocsp"]] if ria["ocsp"].native else []
        return crls, ocsps
