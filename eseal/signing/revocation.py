"""Revocation evidence for the verifier: what the CRLs, OCSP responses and the CA's own
records say about a certificate, and how that is ordered against a seal's signing time.

Why a module of its own: a seal is only as good as the moment we can prove it was made. A
key holder whose key was compromised (or frozen) can still sign, and can write any signing
time into the signature and embed CRLs fetched *before* the revocation. Only a trusted
signature timestamp proves when a seal existed (ETSI EN 319 102-1 calls it proof of
existence, POE); without one the claimed time proves nothing, so revocation is judged at the
*validation* time, from revocation data that is current then (thisUpdate ≤ now ≤ nextUpdate,
or the OCSP equivalent) — data past its nextUpdate is not fresh. The verifier runs pyHanko
for path and freshness checks (:mod:`eseal.signing.chain_validation`); this module holds the
parts pyHanko does not do for us:

* :class:`Evidence` read with ``cryptography`` from every CRL/OCSP response of any date (and
  the CA's live records), honouring ``invalidityDate``, which pyHanko ignores; evidence counts
  only if it is signed by the issuer in the validated path;
* :class:`LiveStatus` / :data:`LiveStatusLookup`: the status *now* from a party that knows
  it first-hand (the service's own database), a typed input to the verifier rather than a
  special case in a route, so ``POST /verify`` and the filing intake use the same rule;
* :func:`judge_evidence`: the ordering rule — revoked or on hold at or before the signing
  time is invalid; revoked after a time nobody proves is indeterminate from a CRL/OCSP
  (ETSI REVOKED_NO_POE), and invalid when the CA's own live records say so (the service
  knows the certificate is revoked now and nothing shows the seal was made earlier).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509 import ocsp as crypto_ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID

from eseal.signing.report import Finding, Revocation
from eseal.signing.structure import finding

__all__ = [
    "COMPROMISE_REASONS",
    "Evidence",
    "EvidenceJudgement",
    "LiveStatus",
    "LiveStatusLookup",
    "RevinfoPool",
    "crl_evidence",
    "effective",
    "has_revinfo_for",
    "judge_evidence",
    "ocsp_evidence",
    "usable_revinfo",
]

EvidenceSource = Literal["embedded", "fetched", "live"]

#: Reasons after which nothing the key signed can be trusted, whenever it claims to be from
#: (RFC 5280 reason names as ``cryptography`` spells them; an unknown reason counts).
COMPROMISE_REASONS = frozenset({"key_compromise", "ca_compromise", "aa_compromise",
                                "unspecified", "privilege_withdrawn"})


@dataclass(frozen=True)
class LiveStatus:
    """A certificate's status now, as the issuing CA's own records state it.

    ``state``: ``good``, ``on_hold`` (frozen, certificateHold) or ``revoked``; ``since``: when
    the hold or revocation took effect (the invalidity date of a key compromise if earlier);
    ``reason``: the RFC 5280 reason name in ``cryptography``'s spelling (``key_compromise``).
    """

    state: Literal["good", "on_hold", "revoked"]
    since: datetime | None = None
    reason: str | None = None


#: Asked for every certificate of a validated path below the root; ``None`` means "not one
#: of mine" (the verifier then relies on CRLs/OCSP alone).
LiveStatusLookup = Callable[[x509.Certificate], LiveStatus | None]


@dataclass(frozen=True)
class Evidence:
    """A signed (or first-hand) statement that ``serial`` is revoked from ``effective``."""

    serial: int
    effective: datetime
    reason: str
    source: EvidenceSource


@dataclass
class RevinfoPool:
    """Revocation data available to the verifier, with where each item came from."""

    crls: list[bytes] = field(default_factory=list)
    ocsps: list[bytes] = field(default_factory=list)
    fetched_crls: list[bytes] = field(default_factory=list)
    fetched_ocsps: list[bytes] = field(default_factory=list)
    live: LiveStatusLookup | None = None

    def evidence_for(self, cert: x509.Certificate, issuer: x509.Certificate) -> list[Evidence]:
        out: list[Evidence] = []
        sources: tuple[tuple[EvidenceSource, list[bytes], list[bytes]], ...] = (
            ("embedded", self.crls, self.ocsps),
            ("fetched", self.fetched_crls, self.fetched_ocsps))
        for source, crls, ocsps in sources:
            for der in crls:
                ev = crl_evidence(der, cert, issuer, source)
                if ev is not None:
                    out.append(ev)
            for der in ocsps:
                ev = ocsp_evidence(der, cert, issuer, source)
                if ev is not None:
                    out.append(ev)
        live = self.live(cert) if self.live is not None else None
        if live is not None and live.state != "good":
            reason = live.reason or ("certificate_hold" if live.state == "on_hold"
                                     else "unspecified")
            # a record without a time cannot be ordered after anything: fail closed
            since = live.since or datetime.min.replace(tzinfo=UTC)
            out.append(Evidence(cert.serial_number, since, reason, "live"))
        return out


def effective(revoked_at: datetime, reason: str, invalidity: datetime | None) -> datetime:
    """When a revocation takes effect: an earlier invalidityDate counts, except for a hold."""
    if invalidity is not None and reason != "certificate_hold" and invalidity < revoked_at:
        return invalidity
    return revoked_at


def _crl_signed_by(der: bytes, issuer: x509.Certificate) -> x509.CertificateRevocationList | None:
    try:
        crl = x509.load_der_x509_crl(der)
        if crl.issuer != issuer.subject or not crl.is_signature_valid(
                issuer.public_key()):  # type: ignore[arg-type]
            return None
        return crl
    except Exception:  # malformed or foreign CRL: not evidence of anything
        return None


def crl_evidence(der: bytes, cert: x509.Certificate, issuer: x509.Certificate,
                 source: EvidenceSource) -> Evidence | None:
    crl = _crl_signed_by(der, issuer) if cert.issuer == issuer.subject else None
    if crl is None:
        return None
    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    if entry is None:
        return None
    reason = "unspecified"
    invalidity: datetime | None = None
    for ext in entry.extensions:
        if isinstance(ext.value, x509.CRLReason):
            reason = ext.value.reason.name
        elif isinstance(ext.value, x509.InvalidityDate):
            invalidity = ext.value.invalidity_date_utc
    if reason == "remove_from_crl":
        return None
    return Evidence(cert.serial_number, effective(entry.revocation_date_utc, reason, invalidity),
                    reason, source)


def _ocsp_single(der: bytes, cert: x509.Certificate, issuer: x509.Certificate
                 ) -> crypto_ocsp.OCSPSingleResponse | None:
    """The single response about ``cert`` in an OCSP response signed by ``issuer`` or by a
    responder it delegated to; None if there is none we can trust."""
    try:
        resp = crypto_ocsp.load_der_ocsp_response(der)
        if resp.response_status != crypto_ocsp.OCSPResponseStatus.SUCCESSFUL:
            return None
        responder = issuer
        for candidate in resp.certificates or ():
            if candidate.subject == issuer.subject:
                continue
            try:
                candidate.verify_directly_issued_by(issuer)
                eku = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
            except Exception:
                continue
            if ExtendedKeyUsageOID.OCSP_SIGNING in eku:
                responder = candidate
        key = responder.public_key()
        if isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(resp.signature, resp.tbs_response_bytes,
                       ec.ECDSA(resp.signature_hash_algorithm))  # type: ignore[arg-type]
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(resp.signature, resp.tbs_response_bytes, padding.PKCS1v15(),
                       resp.signature_hash_algorithm)  # type: ignore[arg-type]
        else:
            return None
        issuer_info = asn1_x509.Certificate.load(issuer.public_bytes(serialization.Encoding.DER))
        spki_bits = bytes(issuer_info.public_key["public_key"])
        for single in resp.responses:
            if single.serial_number != cert.serial_number:
                continue
            algo = single.hash_algorithm.name.replace("-", "")
            if (single.issuer_name_hash == hashlib.new(algo, issuer_info.subject.dump()).digest()
                    and single.issuer_key_hash == hashlib.new(algo, spki_bits).digest()):
                return single
    except Exception:  # malformed, wrongly signed or foreign: not evidence
        return None
    return None


def ocsp_evidence(der: bytes, cert: x509.Certificate, issuer: x509.Certificate,
                  source: EvidenceSource) -> Evidence | None:
    single = _ocsp_single(der, cert, issuer)
    if single is None or single.certificate_status != crypto_ocsp.OCSPCertStatus.REVOKED:
        return None
    revoked_at = single.revocation_time_utc
    if revoked_at is None:
        return None
    reason = single.revocation_reason.name if single.revocation_reason else "unspecified"
    return Evidence(cert.serial_number, revoked_at, reason, source)


def has_revinfo_for(cert: x509.Certificate, issuer: x509.Certificate, crls: Sequence[bytes],
                    ocsps: Sequence[bytes]) -> bool:
    """Whether any CRL of ``issuer`` or OCSP response about ``cert`` is at hand, of any date:
    tells "the data is stale" (REVOCATION_STALE) from "there is no data" (REVOCATION_UNKNOWN)."""
    return any(_crl_signed_by(d, issuer) is not None for d in crls) or \
        any(_ocsp_single(d, cert, issuer) is not None for d in ocsps)


def _strict_der(der: bytes, load: Callable[[bytes], object],
                load_asn1: Callable[[bytes], Any]) -> bool:
    """Whether ``der`` parses with ``cryptography`` and fully with asn1crypto."""
    try:
        load(der)
        load_asn1(der).native  # noqa: B018 - force a full parse
        return True
    except Exception:
        return False


def usable_revinfo(crls: list[bytes], ocsps: list[bytes]
                   ) -> tuple[list[bytes], list[bytes], list[Finding]]:
    """Keep the CRLs and OCSP responses that parse as strict DER. Anyone can append to
    the DSS; garbage there must not crash path validation (and make a good seal look
    invalid) — it is skipped and mentioned (the returned finding)."""
    good_crls = [der for der in crls
                 if _strict_der(der, x509.load_der_x509_crl, asn1_crl.CertificateList.load)]
    good_ocsps = [der for der in ocsps if _strict_der(der, crypto_ocsp.load_der_ocsp_response,
                                                      asn1_ocsp.OCSPResponse.load)]
    dropped = len(crls) - len(good_crls) + len(ocsps) - len(good_ocsps)
    found: list[Finding] = []
    if dropped:
        found.append(finding(
            "REVOCATION_DATA_UNUSABLE", f"{dropped} unreadable CRL/OCSP item(s) ignored",
            f"已忽略 {dropped} 项无法解析的吊销数据", "info"))
    return good_crls, good_ocsps, found


@dataclass(frozen=True)
class EvidenceJudgement:
    """What the evidence scan settled: ``revocation`` is None when it settled nothing and the
    verifier must go on to check status from revocation data (at the signing time when a
    timestamp proves it, else at the validation time)."""

    revocation: Revocation | None
    findings: tuple[Finding, ...] = ()


def judge_evidence(chain: Sequence[x509.Certificate], pool: RevinfoPool, moment: datetime,
                   proven: bool) -> EvidenceJudgement:
    """Order every revocation of the path (``chain``: root first) against ``moment``.

    Effective at or before ``moment``: invalid, revoked or on hold (a CA's revocation is
    ``CA_REVOKED``). Effective later and ``moment`` only claimed: a CRL/OCSP cannot order the
    two (indeterminate ``REVOKED_NO_POE``); the CA's own live records make it invalid
    (``LIVE_REVOKED_NO_POE`` / ``LIVE_ON_HOLD_NO_POE``) — the service knows the certificate
    is revoked or frozen now and nothing proves the seal came first.
    """
    before: list[tuple[Evidence, bool]] = []
    after: list[tuple[Evidence, bool]] = []
    for i in range(1, len(chain)):
        issuer, cert = chain[i - 1], chain[i]
        is_leaf = i == len(chain) - 1
        for ev in pool.evidence_for(cert, issuer):
            (before if ev.effective <= moment else after).append((ev, is_leaf))
    if before:
        ev, is_leaf = min(before, key=lambda p: p[0].effective)
        hold = ev.reason == "certificate_hold"
        state: Literal["on_hold", "revoked"] = "on_hold" if hold else "revoked"
        rev = Revocation(state, ev.source, moment, ev.effective, ev.reason)
        if not is_leaf:
            return EvidenceJudgement(rev, (finding(
                "CA_REVOKED", "a CA certificate in the chain was revoked before the signing time",
                "签章时证书链中的 CA 证书已被吊销"),))
        if hold:
            return EvidenceJudgement(rev, (finding(
                "CERT_ON_HOLD", f"the certificate was on hold (frozen) at the signing time "
                f"(since {ev.effective.isoformat()})", "签章时证书处于冻结（暂停）状态"),))
        return EvidenceJudgement(rev, (finding(
            "CERT_REVOKED", f"the certificate was revoked ({ev.reason}) effective "
            f"{ev.effective.isoformat()}, before the signing time", "签章时证书已被吊销"),))
    if not after or proven:
        return EvidenceJudgement(None)
    live = [(ev, leaf) for ev, leaf in after if ev.source == "live"]
    if live:
        ev, _leaf = min(live, key=lambda p: p[0].effective)
        hold = ev.reason == "certificate_hold"
        rev = Revocation("on_hold" if hold else "revoked", "live", moment, ev.effective,
                         ev.reason)
        if hold:
            return EvidenceJudgement(rev, (finding(
                "LIVE_ON_HOLD_NO_POE",
                f"this CA's records show the certificate frozen (on hold) since "
                f"{ev.effective.isoformat()}, and no timestamp proves the seal was made "
                "before that: its claimed signing time proves nothing",
                f"本 CA 记录显示该证书自 {ev.effective.isoformat()} 起处于冻结状态，且没有时间戳"
                "证明签章早于冻结；签章方声明的时间不具证明力"),))
        return EvidenceJudgement(rev, (finding(
            "LIVE_REVOKED_NO_POE",
            f"this CA's records show the certificate revoked ({ev.reason}) since "
            f"{ev.effective.isoformat()}, and no timestamp proves the seal was made before "
            "that: its claimed signing time proves nothing",
            f"本 CA 记录显示该证书已于 {ev.effective.isoformat()} 被吊销，且没有时间戳证明签章"
            "早于吊销；签章方声明的时间不具证明力"),))
    ev, _leaf = min(after, key=lambda p: p[0].effective)
    return EvidenceJudgement(Revocation("unknown", checked_at=moment), (finding(
        "REVOKED_NO_POE",
        f"the certificate was revoked ({ev.reason}) on {ev.effective.isoformat()} and no "
        "timestamp proves the seal was made before that",
        "证书已被吊销，且没有时间戳证明签章发生在吊销之前", "indeterminate"),))
