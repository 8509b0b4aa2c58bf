"""A compromised (or frozen) key must not backdate a seal (issue 13, item 4).

The attack, built from scratch as an attacker would: take CRLs or OCSP responses fetched
*before* the revocation, seal after it without a timestamp (the signer's own clock writes a
signing time from before the revocation) and embed that old data — in a DSS after the seal
(B-B) or inside the signed revision (the B-LT layout, minus the timestamp). Without proof of
existence the claimed time proves nothing (ETSI EN 319 102-1), so revocation is judged at the
validation time: offline, data past its nextUpdate is not fresh (indeterminate, exit 2); data
still inside its validity window is all an offline party can know (valid, the inherent CRL
latency); a verifier that holds the CA's live records (the service) says invalid.

Files are made by pyHanko with the throw-away PKI of tests/pkikit.py; the "sealed after the
revocation" moment is modelled by moving the validation time past the revocation, which is
exactly what a relying party sees.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from cryptography import x509
from hankokit import add_dss, seal_pdf
from pdfkit import SamplePdf, make_pdf
from pkikit import Issued, TestPki, make_ocsp_response, make_pki

from eseal.errors import Conflict, InvalidInput
from eseal.signing.intake import EnterpriseSeals, check_sealed_upload
from eseal.signing.report import VerificationReport
from eseal.signing.revocation import LiveStatus, LiveStatusLookup
from eseal.signing.verify import verify_pdf

KC = x509.ReasonFlags.key_compromise
HOLD = x509.ReasonFlags.certificate_hold
DAY = timedelta(days=1)


@pytest.fixture(autouse=True)
def _real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """pyHanko's signer reads the system clock, so the verifier's default "now" is real too."""
    monkeypatch.delenv("ESEAL_NOW", raising=False)


@pytest.fixture(scope="module")
def pki() -> TestPki:
    return make_pki()


@pytest.fixture(scope="module")
def doc() -> SamplePdf:
    return make_pdf(pages=1)


def verify(data: bytes, pki: TestPki, **kwargs: object) -> VerificationReport:
    return verify_pdf(data, trust_roots=[pki.root.cert], **kwargs)  # type: ignore[arg-type]


def codes(report: VerificationReport) -> set[str]:
    return report.problem_codes()


def live(cert: Issued, state: str, since: datetime | None, reason: str | None
         ) -> LiveStatusLookup:
    """The CA's records as the service passes them: one certificate known, the rest good."""

    def lookup(c: x509.Certificate) -> LiveStatus | None:
        if c.serial_number == cert.cert.serial_number:
            return LiveStatus(state, since, reason)  # type: ignore[arg-type]
        return LiveStatus("good")

    return lookup


def backdated(pki: TestPki, doc: SamplePdf, cert: Issued, *, layout: str,
              evidence: str) -> bytes:
    """A seal with no timestamp whose embedded revocation data predates the revocation.
    ``layout``: ``B-B`` (DSS appended after the seal) or ``B-LT`` (DSS in the signed
    revision, as eseal's signer writes B-LT); ``evidence``: ``crl`` or ``ocsp``."""
    if layout == "B-LT" and evidence == "crl":
        return seal_pdf(doc.data, cert, pki, embed_validation_info=True,
                        dss_in_signed_revision=True,
                        dss_crls=[pki.crl(), pki.root_crl()])
    if layout == "B-LT":  # the seal's own OCSP response, its CA's CRL
        return seal_pdf(doc.data, cert, pki, embed_validation_info=True,
                        dss_in_signed_revision=True, dss_crls=[pki.root_crl()],
                        dss_ocsps=[make_ocsp_response(pki, cert.cert)])
    sealed = seal_pdf(doc.data, cert, pki)
    if evidence == "crl":
        return add_dss(sealed, crls=[pki.crl(), pki.root_crl()], certs=[pki.issuing.cert])
    return add_dss(sealed, crls=[pki.root_crl()], ocsps=[make_ocsp_response(pki, cert.cert)],
                   certs=[pki.issuing.cert])


# the embedded data (CRLs and OCSP alike) is valid from pki.now - 1 h for 7 days
def _within(pki: TestPki) -> datetime:
    return pki.now + 2 * DAY


def _past(pki: TestPki) -> datetime:
    return pki.now - timedelta(hours=1) + 7 * DAY + 30 * DAY


ATTACKS = [pytest.param(layout, evidence, id=f"{layout}-{evidence}")
           for layout in ("B-B", "B-LT") for evidence in ("crl", "ocsp")]
STATES = [pytest.param("revoked", KC, id="revoked-keyCompromise"),
          pytest.param("on_hold", HOLD, id="frozen-certificateHold")]


@pytest.mark.parametrize(("layout", "evidence"), ATTACKS)
@pytest.mark.parametrize(("state", "reason"), STATES)
def test_backdated_seal_past_next_update_cannot_be_judged_offline(
        pki: TestPki, doc: SamplePdf, layout: str, evidence: str, state: str,
        reason: x509.ReasonFlags) -> None:
    cert = pki.issue_seal()
    data = backdated(pki, doc, cert, layout=layout, evidence=evidence)
    report = verify(data, pki, now=_past(pki))
    assert report.verdict == "indeterminate" and report.exit_code == 2, report.all_problems()
    assert "REVOCATION_STALE" in codes(report)
    seal = report.seals[0]
    assert seal.signing_time_source == "claimed"
    assert seal.revocation_at_signing.status == "unknown"
    assert seal.ades_subindication == "TRY_LATER"


@pytest.mark.parametrize(("layout", "evidence"), ATTACKS)
@pytest.mark.parametrize("when", ["within-next-update", "past-next-update"])
@pytest.mark.parametrize(("state", "reason"), STATES)
def test_backdated_seal_is_invalid_where_the_live_status_is_known(
        pki: TestPki, doc: SamplePdf, layout: str, evidence: str, when: str, state: str,
        reason: x509.ReasonFlags) -> None:
    """The service knows the certificate is revoked (or frozen) now; no timestamp proves the
    seal came first: invalid, whatever the embedded data says and however fresh it is."""
    cert = pki.issue_seal()
    data = backdated(pki, doc, cert, layout=layout, evidence=evidence)
    revoked = pki.now + DAY
    now = _within(pki) if when == "within-next-update" else _past(pki)
    report = verify(data, pki, now=now,
                    live_status=live(cert, state, revoked, reason.name))
    code = "LIVE_REVOKED_NO_POE" if state == "revoked" else "LIVE_ON_HOLD_NO_POE"
    assert report.verdict == "invalid" and report.exit_code == 1, report.all_problems()
    assert code in codes(report)
    seal = report.seals[0]
    assert (seal.revocation_at_signing.status, seal.revocation_at_signing.source) == \
        (state, "live")
    assert seal.revocation_at_signing.revoked_at == revoked
    assert (seal.revocation_now.status, seal.revocation_now.source) == (state, "live")
    assert seal.ades_indication == "TOTAL-FAILED" and seal.ades_subindication == "REVOKED"
    finding = next(p for p in report.all_problems() if p.code == code)
    assert finding.message and finding.message_zh and finding.message != finding.message_zh


@pytest.mark.parametrize(("layout", "evidence"), ATTACKS)
def test_backdated_seal_within_next_update_offline_is_what_the_data_still_vouches_for(
        pki: TestPki, doc: SamplePdf, layout: str, evidence: str) -> None:
    """The limit of offline checking: data still inside its validity window is current, and
    an offline party cannot know more (the same CRL latency every relying party lives with).
    Its status is judged *now*, not at the claimed time, and says so."""
    cert = pki.issue_seal()
    data = backdated(pki, doc, cert, layout=layout, evidence=evidence)
    now = _within(pki)
    report = verify(data, pki, now=now)
    assert report.verdict == "valid", report.all_problems()
    rev = report.seals[0].revocation_at_signing
    assert (rev.status, rev.source, rev.checked_at) == ("good", "embedded", now)


@pytest.mark.parametrize("evidence", ["crl", "ocsp"])
def test_untimestamped_seal_by_a_certificate_good_now_is_valid(
        pki: TestPki, doc: SamplePdf, evidence: str) -> None:
    cert = pki.issue_seal()
    data = backdated(pki, doc, cert, layout="B-B", evidence=evidence)
    assert verify(data, pki).verdict == "valid"
    # past nextUpdate the service's live "good" stands in for fresh data
    report = verify(data, pki, now=_past(pki), live_status=live(cert, "good", None, None))
    assert report.verdict == "valid", report.all_problems()
    assert report.seals[0].revocation_at_signing.source == "live"


def test_untimestamped_seal_without_any_revocation_data_is_unknown_not_stale(
        pki: TestPki, doc: SamplePdf) -> None:
    report = verify(seal_pdf(doc.data, pki.issue_seal(), pki), pki)
    assert report.verdict == "indeterminate"
    assert "REVOCATION_UNKNOWN" in codes(report) and "REVOCATION_STALE" not in codes(report)


# ---------------------------------------------------------------------------------------------
# the honest cases: a timestamp proves the signing time


@pytest.mark.parametrize("when", ["within-next-update", "past-next-update"])
@pytest.mark.parametrize(("state", "reason"), STATES)
def test_timestamped_seal_made_before_a_later_revocation_stays_valid(
        pki: TestPki, doc: SamplePdf, when: str, state: str, reason: x509.ReasonFlags) -> None:
    cert = pki.issue_seal()
    data = seal_pdf(doc.data, cert, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    revoked = pki.now + DAY
    now = _within(pki) if when == "within-next-update" else _past(pki)
    offline = verify(data, pki, now=now)
    assert offline.verdict == "valid", offline.all_problems()
    assert offline.seals[0].pades_level == "B-LT"
    served = verify(data, pki, now=now, live_status=live(cert, state, revoked, reason.name))
    assert served.verdict == "valid", served.all_problems()
    assert served.seals[0].revocation_now.status == state
    assert "REVOKED_NOW" in {p.code for p in served.all_problems()}


@pytest.mark.parametrize(("state", "reason"), STATES)
def test_timestamped_seal_made_after_the_revocation_is_invalid(
        pki: TestPki, doc: SamplePdf, state: str, reason: x509.ReasonFlags) -> None:
    cert = pki.issue_seal()
    revoked = pki.now + DAY
    stamped = revoked + timedelta(hours=1)
    later_crl = pki.crl([(cert.cert, revoked, reason, None)], this_update=revoked, number=2)
    data = seal_pdf(doc.data, cert, pki, timestamp=stamped,
                    dss_crls=[later_crl, pki.root_crl()])
    code = "CERT_REVOKED" if state == "revoked" else "CERT_ON_HOLD"
    offline = verify(data, pki, now=stamped + DAY)
    assert offline.verdict == "invalid" and code in codes(offline)
    # the attacker's variant: only the old CRL in the file; the service still knows
    old = seal_pdf(doc.data, cert, pki, timestamp=stamped, dss_crls=[pki.crl(), pki.root_crl()])
    served = verify(old, pki, now=stamped + DAY,
                    live_status=live(cert, state, revoked, reason.name))
    assert served.verdict == "invalid" and code in codes(served)
    assert served.seals[0].revocation_at_signing.source == "live"


@pytest.mark.parametrize("reason", [KC, x509.ReasonFlags.unspecified],
                         ids=["keyCompromise", "unspecified"])
@pytest.mark.parametrize("where", ["embedded-crl", "live"])
def test_a_timestamp_from_a_compromised_tsa_proves_no_signing_time(
        pki: TestPki, doc: SamplePdf, reason: x509.ReasonFlags, where: str) -> None:
    """A TSA key that leaked can stamp any time: its revocation (for a compromise, at any
    date) takes away the proof, and the seal is judged as if it had no timestamp."""
    other = make_pki()
    cert = other.issue_seal()
    compromised = other.now + 10 * DAY
    data = seal_pdf(doc.data, cert, other, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    now = other.now + 11 * DAY
    kwargs: dict[str, object] = {}
    if where == "embedded-crl":
        data = add_dss(data, crls=[other.crl([(other.tsa.cert, compromised, reason, None)],
                                             this_update=compromised, number=3)])
    else:
        kwargs["live_status"] = live(other.tsa, "revoked", compromised, reason.name)
    report = verify_pdf(data, trust_roots=[other.root.cert], now=now,
                        **kwargs)  # type: ignore[arg-type]
    assert report.verdict == "indeterminate", report.all_problems()
    assert "TIMESTAMP_AUTHORITY_REVOKED" in codes(report)
    assert report.seals[0].signing_time_source == "claimed"


def test_a_tsa_retired_after_stamping_still_proves_the_time(pki: TestPki,
                                                           doc: SamplePdf) -> None:
    """cessationOfOperation after the stamp says nothing against the stamp."""
    cert = pki.issue_seal()
    data = seal_pdf(doc.data, cert, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    retired = pki.now + DAY
    data = add_dss(data, crls=[pki.crl([(pki.tsa.cert, retired,
                                         x509.ReasonFlags.cessation_of_operation, None)],
                                       this_update=retired, number=5)])
    report = verify(data, pki, now=retired + DAY)
    assert report.verdict == "valid", report.all_problems()
    assert report.seals[0].signing_time_source == "timestamp"


# ---------------------------------------------------------------------------------------------
# the filing intake uses the same live status


def _intake(pki: TestPki, doc: SamplePdf, cert: Issued, sealed: bytes, state: str,
            reason: x509.ReasonFlags, now: datetime) -> None:
    serial = format(cert.cert.serial_number, "x")
    seals = EnterpriseSeals(uscc=pki.uscc, current={serial},
                            status={serial: "revoked" if state == "revoked" else "hold"})
    lookup: Callable[[x509.Certificate], LiveStatus | None] = live(
        cert, state, pki.now + DAY, reason.name)
    check_sealed_upload(doc.data, sealed, seals=seals, trust_roots=[pki.root.cert], now=now,
                        live_status=lookup)


@pytest.mark.parametrize(("state", "reason"), STATES)
def test_filing_intake_refuses_a_backdated_seal_by_a_revoked_or_frozen_certificate(
        pki: TestPki, doc: SamplePdf, state: str, reason: x509.ReasonFlags) -> None:
    """The intake demands a proven signing time before it even looks at the records."""
    cert = pki.issue_seal()
    sealed = backdated(pki, doc, cert, layout="B-LT", evidence="crl")
    with pytest.raises(InvalidInput) as caught:
        _intake(pki, doc, cert, sealed, state, reason, _within(pki))
    assert (caught.value.code, caught.value.field) == ("SEAL_NOT_TIMESTAMPED", "file")


@pytest.mark.parametrize(("state", "reason"), STATES)
def test_filing_intake_refuses_a_seal_timestamped_after_the_change_despite_old_crls(
        pki: TestPki, doc: SamplePdf, state: str, reason: x509.ReasonFlags) -> None:
    """The file carries only pre-revocation CRLs; the CA's records (given to the verifier as
    live status, and checked by the intake itself) answer with the specific 409."""
    cert = pki.issue_seal()
    stamped = pki.now + DAY + timedelta(hours=1)
    sealed = seal_pdf(doc.data, cert, pki, timestamp=stamped, embed_validation_info=True,
                      dss_in_signed_revision=True)
    with pytest.raises(Conflict) as caught:
        _intake(pki, doc, cert, sealed, state, reason, stamped + timedelta(hours=1))
    assert caught.value.code == "SEAL_CERT_REVOKED"
    assert (caught.value.details or {})["status"] == ("revoked" if state == "revoked"
                                                      else "hold")

def test_the_b_lt_ocsp_attack_really_carries_only_ocsp_for_the_seal(pki: TestPki,
                                                                    doc: SamplePdf) -> None:
    """Guard for the variant above: the seal's status comes from the OCSP response alone (no
    CRL of the issuing CA in the file), inside the signed revision."""
    from io import BytesIO

    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    data = backdated(pki, doc, pki.issue_seal(), layout="B-LT", evidence="ocsp")
    reader = PdfFileReader(BytesIO(data))
    dss = DocumentSecurityStore.read_dss(reader)
    assert reader.xrefs.total_revisions == 2 and len(dss.ocsps) == 1
    issuers = {x509.load_der_x509_crl(ref.get_object().data).issuer for ref in dss.crls}
    assert issuers == {pki.root.cert.subject}


@pytest.mark.parametrize("state", ["revoked", "on_hold"])
def test_a_live_record_without_a_time_is_taken_as_always_revoked(
        pki: TestPki, doc: SamplePdf, state: str) -> None:
    """Fail closed: a revocation the records cannot date cannot be ordered after the seal,
    even a timestamped one."""
    cert = pki.issue_seal()
    data = seal_pdf(doc.data, cert, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    report = verify(data, pki, live_status=live(cert, state, None, None))
    assert report.verdict == "invalid"
    assert ("CERT_REVOKED" if state == "revoked" else "CERT_ON_HOLD") in codes(report)
