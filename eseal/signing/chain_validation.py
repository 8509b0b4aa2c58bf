"""Certificate path, revocation and timestamp-authority judgement for one signature.

The verifier's policy (:mod:`eseal.signing.verify`, its docstring is the contract) decides
*which* moment a seal is judged at: the timestamp's time when a trusted timestamp proves it,
the validation time when nothing does. This module asks pyHanko's certificate validator the
questions that policy needs at that moment, always on the caller's trust roots only (never
a system store): does the chain hold, what does revocation data valid *at* the moment say
(``mode="require"``), what does data fetched now say, and may this timestamp authority prove
a time at all. What pyHanko cannot answer — revocation evidence of any date, ``invalidityDate``
and the CA's live records, and how they order against the signing time — comes from
:mod:`eseal.signing.revocation`; this module turns both into the chain and revocation parts
of a :class:`~eseal.signing.sig_check.SigCheck`.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from pyhanko_certvalidator import CertificateValidator, ValidationContext
from pyhanko_certvalidator import errors as cv_errors
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.policy_decl import (
    CertRevTrustPolicy,
    RevocationCheckingPolicy,
    RevocationCheckingRule,
)

from eseal.signing.report import Chain, Revocation
from eseal.signing.revocation import (
    COMPROMISE_REASONS,
    LiveStatus,
    LiveStatusLookup,
    RevinfoPool,
    has_revinfo_for,
    judge_evidence,
)
from eseal.signing.sig_check import SigCheck
from eseal.signing.signer_identity import to_crypto

__all__ = ["TOLERANCE", "ChainJudge"]

#: Clock skew accepted between a signing time and the validation time.
TOLERANCE = timedelta(seconds=1)


class ChainJudge:
    """pyHanko's path and revocation checks on the caller's ``asn1_roots`` as of ``now``.

    ``embedded`` is the document's own revocation data (the DSS): data fetched now is
    reported apart from it. ``live_status`` is the CA's own answer about a certificate now.
    """

    def __init__(self, asn1_roots: list[asn1_x509.Certificate], now: datetime,
                 allow_fetching: bool, live_status: LiveStatusLookup | None,
                 embedded: RevinfoPool) -> None:
        self.asn1_roots = asn1_roots
        self.now = now
        self.allow_fetching = allow_fetching
        self.live_status = live_status
        self.embedded = embedded

    def context(self, certs: list[asn1_x509.Certificate], moment: datetime | None, mode: str,
                crls: list[bytes], ocsps: list[bytes], retroactive: bool = False,
                fetch: bool = False) -> ValidationContext:
        """A pyHanko validation context on the caller's roots only. ``mode="require"``: the
        signer's certificate must have revocation data; a CA certificate must if it names a
        CRL distribution point or OCSP responder (one that names none can only be revoked
        on its issuer's CRL, which our own evidence scan reads anyway)."""
        policy = None
        if mode == "require":
            policy = CertRevTrustPolicy(RevocationCheckingPolicy(
                ee_certificate_rule=RevocationCheckingRule.CRL_OR_OCSP_REQUIRED,
                intermediate_ca_cert_rule=RevocationCheckingRule.CHECK_IF_DECLARED),
                retroactive_revinfo=retroactive)
        return ValidationContext(
            trust_roots=self.asn1_roots, other_certs=certs, moment=moment,
            crls=[asn1_crl.CertificateList.load(c) for c in crls],
            ocsps=[asn1_ocsp.OCSPResponse.load(o) for o in ocsps],
            revocation_mode=mode if policy is None else "soft-fail", revinfo_policy=policy,
            allow_fetching=fetch, retroactive_revinfo=retroactive, time_tolerance=TOLERANCE)

    async def path(self, cert: asn1_x509.Certificate, certs: list[asn1_x509.Certificate],
                   moment: datetime) -> tuple[ValidationPath | None, Exception | None]:
        vc = self.context(certs, moment, "soft-fail", [], [])
        try:
            path = await CertificateValidator(cert, certs, vc).async_validate_path()
            return path, None
        except (cv_errors.PathError, cv_errors.ValidationError) as exc:
            return None, exc

    async def _revocation_at(self, cert: asn1_x509.Certificate, certs: list[asn1_x509.Certificate],
                             moment: datetime, crls: list[bytes], ocsps: list[bytes],
                             retroactive: bool = False) -> tuple[str, Exception | None]:
        """pyHanko's view at ``moment``: 'good', 'revoked' or 'unknown'."""
        try:
            vc = self.context(certs, moment, "require", crls, ocsps, retroactive=retroactive)
        except ValueError as exc:  # "require" with no data at all
            return "unknown", exc
        try:
            await CertificateValidator(cert, certs, vc).async_validate_path()
            return "good", None
        except cv_errors.RevokedError as exc:
            return "revoked", exc
        except (cv_errors.PathError, cv_errors.ValidationError) as exc:
            return "unknown", exc

    async def _fetch_now(self, cert: asn1_x509.Certificate, certs: list[asn1_x509.Certificate]
                         ) -> tuple[Revocation, list[bytes], list[bytes]]:
        # only fresh data: pyHanko would otherwise settle for an embedded CRL still in its
        # validity window and never fetch
        vc = self.context(certs, self.now, "hard-fail", [], [], fetch=True)
        status: Revocation
        try:
            await CertificateValidator(cert, certs, vc).async_validate_path()
            status = Revocation("good", "fetched", self.now)
        except cv_errors.RevokedError as exc:
            reason = exc.reason.native if exc.reason is not None else None
            status = Revocation("on_hold" if reason == "certificate_hold" else "revoked",
                                "fetched", self.now, exc.revocation_dt, reason)
        except (cv_errors.PathError, cv_errors.ValidationError):
            status = Revocation("unknown", "fetched", self.now)
        finally:
            fetched_crls = [c.dump() for c in vc.crls]
            fetched_ocsps = [o.dump() for o in vc.ocsps]
            await vc.aclose()
        embedded = set(self.embedded.crls) | set(self.embedded.ocsps)
        return (status, [c for c in fetched_crls if c not in embedded],
                [o for o in fetched_ocsps if o not in embedded])

    def chain_failure(self, check: SigCheck, err: Exception | None, signer: x509.Certificate,
                      moment: datetime) -> None:
        check.chain = Chain(False)
        if isinstance(err, cv_errors.ExpiredError | cv_errors.NotYetValidError):
            if moment < signer.not_valid_before_utc:
                check.add("CERT_NOT_YET_VALID",
                          "the certificate was not yet valid at the signing time",
                          "签章时证书尚未生效")
            else:
                check.add("CERT_EXPIRED_AT_SIGNING",
                          f"a certificate in the chain was not valid at the signing time: {err}",
                          "签章时证书链中的证书不在有效期内")
            return
        check.add("CHAIN_UNTRUSTED",
                  f"the certificate does not chain to a trusted root: {err}",
                  "证书无法链接到可信根证书", "indeterminate")

    async def revocation(self, check: SigCheck, signer_asn1: asn1_x509.Certificate,
                         signer: x509.Certificate, certs: list[asn1_x509.Certificate],
                         path: ValidationPath | None, moment: datetime, proven: bool,
                         crls: list[bytes], ocsps: list[bytes]) -> None:
        """Revocation now, then at the signing time (see :mod:`eseal.signing.verify`; the rules on
        evidence and on claimed times live in :mod:`eseal.signing.revocation`)."""
        # "now" first when fetching is allowed: it also brings current CRLs/OCSP responses
        fetched_crls: list[bytes] = []
        fetched_ocsps: list[bytes] = []
        live = self.live_status(signer) if self.live_status is not None else None
        if self.allow_fetching:
            check.rev_now, fetched_crls, fetched_ocsps = await self._fetch_now(signer_asn1, certs)
        elif live is not None:
            check.rev_now = Revocation(live.state, "live", self.now, live.since, live.reason)
        else:
            check.rev_now = Revocation("not_checked")
            check.add("REVOCATION_NOW_NOT_CHECKED",
                      "current revocation status not checked (fetching not allowed)",
                      "未检查当前吊销状态（未允许联网获取）", "info")
        if check.rev_now.status in ("revoked", "on_hold"):
            check.add("REVOKED_NOW",
                      f"the certificate is {check.rev_now.status.replace('_', ' ')} now "
                      f"({check.rev_now.reason}); this does not affect a seal proven to be "
                      "made before",
                      "证书当前已被吊销或冻结；不影响可证明早于此时做出的签章", "info")
        if path is None:
            check.rev_signing = Revocation("unknown", checked_at=moment)
            return

        # evidence scan over everything we have, of any date, and the CA's live records
        pool = RevinfoPool(crls=crls, ocsps=ocsps, fetched_crls=fetched_crls,
                           fetched_ocsps=fetched_ocsps, live=self.live_status)
        chain_certs = [to_crypto(c) for c in path.iter_certs(include_root=True)]
        judged = judge_evidence(chain_certs, pool, moment, proven)
        check.problems.extend(judged.findings)
        if judged.revocation is not None:
            check.rev_signing = judged.revocation
            return
        if not proven:
            await self._revocation_now(check, signer_asn1, certs, chain_certs, live, crls,
                                       ocsps, fetched_crls, fetched_ocsps)
            return

        state, err = await self._revocation_at(signer_asn1, certs, moment, crls, ocsps)
        if state == "good":
            check.rev_signing = Revocation("good", "embedded", moment)
            return
        if state == "revoked" and isinstance(err, cv_errors.RevokedError):
            reason = err.reason.native if err.reason is not None else None
            check.rev_signing = Revocation("on_hold" if reason == "certificate_hold" else
                                           "revoked", "embedded", moment, err.revocation_dt,
                                           reason)
            check.add("CERT_ON_HOLD" if reason == "certificate_hold" else "CERT_REVOKED",
                      f"revocation data valid at the signing time shows: {err}",
                      "签章时有效的吊销数据显示证书已被吊销或冻结")
            return
        if fetched_crls or fetched_ocsps:
            state2, _err2 = await self._revocation_at(
                signer_asn1, certs, moment, crls + fetched_crls, ocsps + fetched_ocsps,
                retroactive=True)
            if state2 == "good":
                check.rev_signing = Revocation("good", "fetched", moment)
                return
        check.rev_signing = Revocation("unknown", checked_at=moment)
        check.add("REVOCATION_UNKNOWN",
                  f"no revocation data valid at the signing time for the certificate chain "
                  f"({err})",
                  "没有签章时有效的吊销数据，无法确认证书当时未被吊销", "indeterminate")

    async def _revocation_now(self, check: SigCheck, signer_asn1: asn1_x509.Certificate,
                              certs: list[asn1_x509.Certificate],
                              chain_certs: list[x509.Certificate], live: LiveStatus | None,
                              crls: list[bytes], ocsps: list[bytes], fetched_crls: list[bytes],
                              fetched_ocsps: list[bytes]) -> None:
        """No proof of existence: the claimed time proves nothing, so the status must be good
        at the validation time (ETSI EN 319 102-1), from data current now — the CA's live
        records, or CRLs/OCSP responses with thisUpdate <= now <= nextUpdate (pyHanko's
        freshness rule without retroactive use). Evidence of a revocation was already
        ordered by :func:`judge_evidence`."""
        if live is not None and live.state == "good":
            check.rev_signing = Revocation("good", "live", self.now)
            return
        state, err = await self._revocation_at(signer_asn1, certs, self.now, crls, ocsps)
        source: Literal["embedded", "fetched"] = "embedded"
        if state != "good" and (fetched_crls or fetched_ocsps):
            source = "fetched"
            state, err = await self._revocation_at(signer_asn1, certs, self.now,
                                                   crls + fetched_crls, ocsps + fetched_ocsps)
        if state == "good":
            check.rev_signing = Revocation("good", source, self.now)
            return
        check.rev_signing = Revocation("unknown", checked_at=self.now)
        if state == "revoked":  # revoked per data we could not read as evidence: still no POE
            check.add("REVOKED_NO_POE",
                      f"revocation data current now shows the certificate revoked ({err}) and "
                      "no timestamp proves the seal was made before that",
                      "当前吊销数据显示证书已被吊销，且没有时间戳证明签章发生在吊销之前",
                      "indeterminate")
            return
        if len(chain_certs) > 1 and has_revinfo_for(chain_certs[-1], chain_certs[-2],
                                                    crls + fetched_crls, ocsps + fetched_ocsps):
            check.add("REVOCATION_STALE",
                      "the seal has no timestamp, so its revocation status is judged now, and "
                      "the revocation data at hand is not current (past its nextUpdate): it "
                      "cannot show the certificate is not revoked today; retry with --online",
                      "签章没有时间戳，吊销状态须按验证时判断，而现有吊销数据已过期"
                      "（超过 nextUpdate），无法证明证书目前未被吊销；请使用 --online 重试",
                      "indeterminate")
            return
        check.add("REVOCATION_UNKNOWN",
                  f"the seal has no timestamp and there is no revocation data current at the "
                  f"validation time for the certificate chain ({err})",
                  "签章没有时间戳，且没有验证时有效的吊销数据，无法确认证书未被吊销",
                  "indeterminate")

    def tsa_trustworthy(self, check: SigCheck, tsv: Any, crls: list[bytes],
                        ocsps: list[bytes]) -> bool:
        """Whether a timestamp that validated may prove the signing time. A TSA whose key was
        compromised (revoked for a compromise reason, at any date) or whose certificate was
        revoked or on hold at the time it stamped could have stamped any time: then its token
        is no proof of existence and the seal is judged as if it had no timestamp."""
        path = getattr(tsv, "validation_path", None)
        if path is None:
            return True
        chain = [to_crypto(c) for c in path.iter_certs(include_root=True)]
        pool = RevinfoPool(crls=crls, ocsps=ocsps, live=self.live_status)
        for i in range(1, len(chain)):
            for ev in pool.evidence_for(chain[i], chain[i - 1]):
                if ev.reason in COMPROMISE_REASONS or ev.effective <= tsv.timestamp:
                    check.add("TIMESTAMP_AUTHORITY_REVOKED",
                              f"the timestamp authority's chain was revoked ({ev.reason}, "
                              f"effective {ev.effective.isoformat()}): its timestamp proves "
                              "nothing about when the seal was made",
                              "时间戳服务机构的证书链已被吊销，其时间戳不能证明签章时间",
                              "indeterminate")
                    return False
        return True

    async def tsa_revocation_embedded(self, tsv: Any, certs: list[asn1_x509.Certificate],
                                      crls: list[bytes], ocsps: list[bytes]) -> bool:
        if tsv is None or tsv.signing_cert is None:
            return False
        state, _ = await self._revocation_at(tsv.signing_cert, certs, tsv.timestamp, crls, ocsps)
        return state == "good"
