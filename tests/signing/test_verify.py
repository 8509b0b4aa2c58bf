"""verify_pdf: good seals pass at every PAdES level, bad certificates and times do not.

Sealed files are made at test time by pyHanko with a throw-away PKI shaped like eseal's
(tests/pdfkit.py); revocation data is real CRLs, embedded in the DSS or served over HTTP on
127.0.0.1 for the "fetching allowed" cases. The attack corpus lives in test_verify_attacks.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from hankokit import add_doc_timestamp, add_dss, rewrite_pdf, seal_pdf
from judgekit import pdfsig_check
from pdfkit import SamplePdf, append_update, linearized_layout, make_pdf, stream_object
from pkikit import CrlServer, Issued, TestPki, make_ocsp_response, make_pki

from eseal.errors import InvalidInput
from eseal.signing.report import LABELS_ZH, VerificationReport
from eseal.signing.verify import async_verify_pdf, verify_pdf

KC = x509.ReasonFlags.key_compromise
HOLD = x509.ReasonFlags.certificate_hold


@pytest.fixture(autouse=True)
def _real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """The sealed files are made at the real time (pyHanko's signer reads the system clock),
    so the verifier's default "now" must be real too."""
    monkeypatch.delenv("ESEAL_NOW", raising=False)


@pytest.fixture(scope="module")
def crl_server() -> Iterator[CrlServer]:
    with CrlServer() as server:
        yield server


@pytest.fixture(scope="module")
def pki(crl_server: CrlServer) -> TestPki:
    p = make_pki(crl_base_url=crl_server.base_url)
    crl_server.publish("issuing.crl", p.crl())
    crl_server.publish("root.crl", p.root_crl())
    return p


@pytest.fixture(scope="module")
def doc() -> SamplePdf:
    return make_pdf(pages=2)


@pytest.fixture(scope="module")
def lt_seal(pki: TestPki, doc: SamplePdf) -> bytes:
    """B-LT the way eseal's signer makes it: DSS inside the signed revision."""
    return seal_pdf(doc.data, pki.seal, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)


def verify(data: bytes, pki: TestPki, **kwargs: Any) -> VerificationReport:
    return verify_pdf(data, trust_roots=[pki.root.cert], **kwargs)


def codes(report: VerificationReport) -> set[str]:
    return report.problem_codes()


def crls(pki: TestPki, *revoked: tuple[x509.Certificate, datetime, x509.ReasonFlags,
                                       datetime | None]) -> list[x509.CertificateRevocationList]:
    return [pki.crl(list(revoked)), pki.root_crl()]


# ---------------------------------------------------------------------------------------------
# good seals


@pytest.mark.parametrize("level", ["B-B", "B-T", "B-LT", "B-LT-separate-DSS",
                                   "B-LT-adbe-archival", "B-LTA"])
def test_good_seal_is_valid_at_every_pades_level(pki: TestPki, doc: SamplePdf,
                                                 level: str) -> None:
    fetch = False
    if level == "B-B":
        data = seal_pdf(doc.data, pki.seal, pki, dss_crls=crls(pki))
    elif level == "B-T":  # no revocation data in the file: the CRL comes from the CRL DP
        data, fetch = seal_pdf(doc.data, pki.seal, pki, timestamp=True), True
    elif level == "B-LT":
        data = seal_pdf(doc.data, pki.seal, pki, timestamp=True, embed_validation_info=True,
                        dss_in_signed_revision=True)
    elif level == "B-LT-separate-DSS":
        data = seal_pdf(doc.data, pki.seal, pki, timestamp=True, embed_validation_info=True)
    elif level == "B-LT-adbe-archival":  # CRLs inside the CMS (adbe-revocationInfoArchival)
        data = seal_pdf(doc.data, pki.seal, pki, timestamp=True, embed_validation_info=True,
                        subfilter="adbe")
    else:
        data = seal_pdf(doc.data, pki.seal, pki, timestamp=True, embed_validation_info=True,
                        lta=True)
    report = verify(data, pki, allow_fetching=fetch)
    assert report.verdict == "valid", report.all_problems()
    assert report.exit_code == 0
    seal = report.seals[0]
    assert seal.pades_level == level.removesuffix("-separate-DSS").removesuffix(
        "-adbe-archival")
    assert seal.integrity.digest_ok and seal.integrity.signature_ok
    assert seal.chain.trusted and seal.chain.trust_anchor == pki.root.cert.subject.rfc4514_string()
    assert seal.revocation_at_signing.status == "good"
    assert seal.revocation_at_signing.source == ("fetched" if fetch else "embedded")
    assert seal.signing_time_source == ("claimed" if level == "B-B" else "timestamp")
    assert seal.signer is not None
    assert seal.signer.enterprise == pki.enterprise_name
    assert seal.signer.credit_code == pki.uscc
    assert seal.signer.holder == pki.enterprise_name
    assert seal.signer.profile == "seal"
    assert seal.signer.certificate_serial == format(pki.seal.cert.serial_number, "x")
    if level == "B-LTA":
        ts = [s for s in report.signatures if s.kind == "document_timestamp"]
        assert len(ts) == 1 and ts[0].verdict == "valid"


def test_seal_with_revocation_data_in_its_own_revision_covers_the_whole_file(
        pki: TestPki, lt_seal: bytes) -> None:
    seal = verify(lt_seal, pki).seals[0]
    assert (seal.coverage.scope, seal.coverage.revision, seal.coverage.total_revisions) == \
        ("whole_file", 2, 2)
    assert seal.changes_after.status == "none"


def test_timestamped_seal_without_revocation_data_cannot_be_judged_offline(
        pki: TestPki, doc: SamplePdf) -> None:
    data = seal_pdf(doc.data, pki.seal, pki, timestamp=True)
    report = verify(data, pki)
    assert report.verdict == "indeterminate" and report.exit_code == 2
    assert "REVOCATION_UNKNOWN" in codes(report)
    assert report.seals[0].revocation_at_signing.status == "unknown"
    assert report.seals[0].revocation_now.status == "not_checked"


def test_two_seals_one_after_the_other_are_both_valid(pki: TestPki, lt_seal: bytes) -> None:
    second = pki.issue_seal(name="第二测试有限公司")
    data = seal_pdf(lt_seal, second, pki, field_name="Seal2", timestamp=True,
                    embed_validation_info=True, dss_in_signed_revision=True, visible=True)
    report = verify(data, pki)
    assert report.verdict == "valid", report.all_problems()
    first, later = report.seals
    assert (first.field_name, later.field_name) == ("Seal1", "Seal2")
    assert (first.coverage.scope, first.coverage.revision, first.coverage.total_revisions) == \
        ("revision", 2, 3)
    assert first.changes_after.status == "allowed"
    assert later.coverage.scope == "whole_file"
    assert later.signer is not None and later.signer.enterprise == "第二测试有限公司"
    assert {first.pades_level, later.pades_level} == {"B-LT"}


def test_certification_seal_forbids_what_its_docmdp_level_forbids(
        pki: TestPki, doc: SamplePdf, monkeypatch: pytest.MonkeyPatch) -> None:
    """A certification seal with /P 2 accepts a later seal; with /P 1 it does not (pyHanko's
    signer refuses to add one, an attacker's tool would not: we switch that check off)."""
    from pyhanko.sign.signers.pdf_signer import PdfSigner

    def second(first: bytes) -> bytes:
        return seal_pdf(first, pki.seal, pki, field_name="Seal2", timestamp=True,
                        embed_validation_info=True, dss_in_signed_revision=True)

    def certified(level: int) -> bytes:
        return seal_pdf(doc.data, pki.seal, pki, timestamp=True, embed_validation_info=True,
                        dss_in_signed_revision=True, certify=level)

    assert verify(second(certified(2)), pki).verdict == "valid"
    locked = certified(1)
    assert verify(add_doc_timestamp(locked, pki), pki).verdict == "valid"  # LTA is allowed
    monkeypatch.setattr(PdfSigner, "_enforce_certification_constraints", lambda *a: None)
    report = verify(second(locked), pki)
    assert report.verdict == "invalid" and "DOCMDP_VIOLATED" in codes(report)
    assert [s.verdict for s in report.seals] == ["invalid", "valid"]


@pytest.mark.parametrize("layout", ["xref-stream", "linearized"])
def test_seal_on_other_file_layouts_is_valid(pki: TestPki, doc: SamplePdf, layout: str) -> None:
    """Xref streams with object streams (pyHanko's writer), and a linearized original whose
    two xref sections point at each other out of file order."""
    base = rewrite_pdf(doc.data) if layout == "xref-stream" else linearized_layout(doc.data)
    data = seal_pdf(base, pki.seal, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    data = add_doc_timestamp(data, pki)
    report = verify(data, pki)
    assert report.verdict == "valid", report.all_problems()
    assert report.seals[0].pades_level == "B-LTA"


def test_long_term_seal_stays_valid_after_every_certificate_and_crl_expired(
        pki: TestPki, lt_seal: bytes, doc: SamplePdf) -> None:
    """Years later the seal certificate and the CRLs have expired; B-LT is judged at the
    timestamp, so it stays valid. A seal without timestamp cannot prove when it was made."""
    years_later = pki.now + timedelta(days=2 * 365)
    assert years_later > pki.seal.cert.not_valid_after_utc
    report = verify(lt_seal, pki, now=years_later)
    assert report.verdict == "valid", report.all_problems()
    bb = seal_pdf(doc.data, pki.seal, pki, dss_crls=crls(pki))
    old = verify(bb, pki, now=years_later)
    assert old.verdict == "indeterminate" and "EXPIRED_NO_POE" in codes(old)


# ---------------------------------------------------------------------------------------------
# the wrong certificate, or the right one at the wrong time


def test_signature_by_a_login_certificate_is_not_a_seal(pki: TestPki, doc: SamplePdf) -> None:
    # pyHanko's own B-LT flow refuses a certificate without nonRepudiation, so the CRLs go
    # into a DSS update of their own
    data = seal_pdf(doc.data, pki.login, pki, timestamp=True, dss_crls=crls(pki))
    report = verify(data, pki)
    assert report.verdict == "invalid" and report.exit_code == 1
    assert "NOT_A_SEAL_CERTIFICATE" in codes(report)
    seal = report.seals[0]
    assert seal.signer is not None and seal.signer.profile == "login"
    assert seal.integrity.digest_ok and seal.chain.trusted  # only the profile is wrong
    assert seal.ades_indication == "TOTAL-FAILED"


def _fresh_seal_cert(pki: TestPki) -> Issued:
    return pki.issue_seal()


def test_certificate_revoked_after_the_timestamp_still_sealed_validly(
        pki: TestPki, doc: SamplePdf) -> None:
    cert = _fresh_seal_cert(pki)
    data = seal_pdf(doc.data, cert, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    signed_at = verify(data, pki).seals[0].signing_time
    assert signed_at is not None
    revoked = signed_at + timedelta(days=1)
    later_crl = pki.crl([(cert.cert, revoked, KC, None)], this_update=revoked + timedelta(hours=1),
                        number=2)
    data = add_dss(data, crls=[later_crl])  # a verifier added newer data to the DSS
    report = verify(data, pki, now=revoked + timedelta(days=1))
    assert report.verdict == "valid", report.all_problems()
    seal = report.seals[0]
    assert seal.revocation_at_signing.status == "good"
    assert seal.pades_level == "B-LT"


def test_seal_made_after_revocation_is_invalid(pki: TestPki, doc: SamplePdf) -> None:
    cert = _fresh_seal_cert(pki)
    revoked = pki.now - timedelta(hours=2)
    data = seal_pdf(doc.data, cert, pki, timestamp=True,
                    dss_crls=crls(pki, (cert.cert, revoked, KC, None)))
    report = verify(data, pki)
    assert report.verdict == "invalid" and "CERT_REVOKED" in codes(report)
    rev = report.seals[0].revocation_at_signing
    assert (rev.status, rev.reason, rev.revoked_at) == ("revoked", "key_compromise", revoked)
    assert report.seals[0].ades_subindication == "REVOKED"


def test_seal_made_while_on_hold_stays_invalid_after_unfreeze(pki: TestPki,
                                                              doc: SamplePdf) -> None:
    cert = _fresh_seal_cert(pki)
    held = pki.now - timedelta(hours=2)
    data = seal_pdf(doc.data, cert, pki, timestamp=True,
                    dss_crls=crls(pki, (cert.cert, held, HOLD, None)))
    # unfreeze: the entry leaves the next full CRL, which someone adds to the DSS later
    after_unfreeze = pki.crl(this_update=pki.now + timedelta(days=1), number=3)
    data = add_dss(data, crls=[after_unfreeze])
    report = verify(data, pki, now=pki.now + timedelta(days=2))
    assert report.verdict == "invalid" and "CERT_ON_HOLD" in codes(report)
    assert report.seals[0].revocation_at_signing.status == "on_hold"


def test_key_compromise_counts_from_its_invalidity_date(pki: TestPki, doc: SamplePdf) -> None:
    """Revoked a day after sealing, but the key was compromised the day before sealing."""
    cert = _fresh_seal_cert(pki)
    data = seal_pdf(doc.data, cert, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    assert verify(data, pki).verdict == "valid"
    compromised, revoked = pki.now - timedelta(days=1), pki.now + timedelta(days=1)
    later = pki.crl([(cert.cert, revoked, KC, compromised)],
                    this_update=revoked + timedelta(hours=1), number=2)
    report = verify(add_dss(data, crls=[later]), pki, now=revoked + timedelta(days=1))
    assert report.verdict == "invalid" and "CERT_REVOKED" in codes(report)
    assert report.seals[0].revocation_at_signing.revoked_at == compromised


def test_embedded_ocsp_responses_serve_as_revocation_data(pki: TestPki, doc: SamplePdf) -> None:
    data = seal_pdf(doc.data, pki.seal, pki, timestamp=True)
    data = add_dss(data, crls=[pki.root_crl()], ocsps=[
        make_ocsp_response(pki, pki.seal.cert), make_ocsp_response(pki, pki.tsa.cert)])
    report = verify(data, pki)
    assert report.verdict == "valid", report.all_problems()
    assert report.seals[0].pades_level == "B-LT"


def test_a_later_ocsp_response_can_prove_the_certificate_was_revoked_before_sealing(
        pki: TestPki, doc: SamplePdf) -> None:
    """The CRL embedded at sealing was issued before the key compromise was known; an OCSP
    response added later says the certificate was revoked an hour before the seal."""
    cert = _fresh_seal_cert(pki)
    data = seal_pdf(doc.data, cert, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    later = make_ocsp_response(pki, cert.cert, revoked_at=pki.now - timedelta(hours=1),
                               reason=KC, this_update=pki.now + timedelta(days=1))
    report = verify(add_dss(data, ocsps=[later]), pki, now=pki.now + timedelta(days=2))
    assert report.verdict == "invalid" and "CERT_REVOKED" in codes(report)
    assert report.seals[0].revocation_at_signing.reason == "key_compromise"


def test_forged_revocation_data_is_ignored(pki: TestPki, lt_seal: bytes) -> None:
    """Anyone can append to the DSS. A CRL and an OCSP response claiming our CA's name but
    signed by another key must not turn a good seal into an invalid one."""
    impostor = make_pki(ca_name="eseal Test")
    assert impostor.issuing.cert.subject == pki.issuing.cert.subject
    when = pki.now - timedelta(days=1)
    forged_crl = impostor.crl([(pki.seal.cert, when, KC, None)], number=99)
    forged_ocsp = make_ocsp_response(impostor, pki.seal.cert, revoked_at=when, reason=KC)
    report = verify(add_dss(lt_seal, crls=[forged_crl], ocsps=[forged_ocsp]), pki)
    assert report.verdict == "valid", report.all_problems()


def test_garbage_appended_to_the_dss_is_ignored(pki: TestPki, lt_seal: bytes) -> None:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(BytesIO(lt_seal))
    dss = writer.root["/DSS"]
    dss["/CRLs"].append(writer.add_object(generic.StreamObject(stream_data=b"\x30\x03junk")))
    writer.mark_update(writer.root_ref)
    writer.update_container(dss)
    out = BytesIO()
    writer.write(out)
    report = verify(out.getvalue(), pki)
    assert report.verdict == "valid", report.all_problems()
    assert "REVOCATION_DATA_UNUSABLE" in {p.code for p in report.all_problems()}


def test_modification_is_invalid_even_when_the_signer_cannot_be_judged(
        pki: TestPki, doc: SamplePdf) -> None:
    """Exit 1 beats exit 2: a changed page is provable, an unknown root is not."""
    other = make_pki(ca_name="Other")
    data = seal_pdf(doc.data, other.seal, other, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    tampered = append_update(data, {doc.content_ids[0]: stream_object(
        b"BT /F1 18 Tf 72 720 Td (revenue 9,999,999 CNY) Tj ET")})
    report = verify(tampered, pki)
    assert {"CHAIN_UNTRUSTED", "MODIFIED_AFTER_SEALING"} <= codes(report)
    assert report.verdict == "invalid" and report.exit_code == 1


def test_revocation_after_a_claimed_signing_time_cannot_be_ordered(pki: TestPki,
                                                                   doc: SamplePdf) -> None:
    """Without a timestamp the signer's own clock says when it sealed; a later revocation
    (here a key compromise) makes that claim worthless: indeterminate, not valid."""
    cert = _fresh_seal_cert(pki)
    data = seal_pdf(doc.data, cert, pki, dss_crls=crls(pki))
    assert verify(data, pki).verdict == "valid"
    revoked = pki.now + timedelta(days=1)
    later = pki.crl([(cert.cert, revoked, KC, None)], this_update=revoked, number=2)
    report = verify(add_dss(data, crls=[later]), pki, now=revoked + timedelta(hours=1))
    assert report.verdict == "indeterminate" and "REVOKED_NO_POE" in codes(report)
    assert report.seals[0].signing_time_source == "claimed"


def test_revocation_now_is_checked_only_when_fetching_is_allowed(
        pki: TestPki, doc: SamplePdf, crl_server: CrlServer) -> None:
    cert = _fresh_seal_cert(pki)
    data = seal_pdf(doc.data, cert, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    revoked = pki.now + timedelta(hours=3)
    crl_server.publish("issuing.crl", pki.crl([(cert.cert, revoked, KC, None)],
                                              this_update=revoked, number=4))
    try:
        now = revoked + timedelta(hours=1)
        offline = verify(data, pki, now=now)
        online = verify(data, pki, now=now, allow_fetching=True)
    finally:
        crl_server.publish("issuing.crl", pki.crl())
    assert offline.seals[0].revocation_now.status == "not_checked"
    assert "REVOCATION_NOW_NOT_CHECKED" in {p.code for p in offline.all_problems()}
    rev_now = online.seals[0].revocation_now
    assert (rev_now.status, rev_now.source, rev_now.revoked_at) == ("revoked", "fetched", revoked)
    # revoked after sealing: still a valid seal
    assert offline.verdict == online.verdict == "valid"


@pytest.mark.parametrize("impostor", [False, True], ids=["other-root", "same-names"])
def test_untrusted_root_cannot_be_judged(pki: TestPki, doc: SamplePdf, impostor: bool) -> None:
    """Not chaining to our roots does not prove forgery, only that we cannot vouch for the
    signer: exit 2 (ETSI NO_CERTIFICATE_CHAIN_FOUND), also when the impostor copies our
    CA names."""
    other = make_pki(ca_name="eseal Test" if impostor else "Other")
    data = seal_pdf(doc.data, other.seal, other, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    report = verify(data, pki)
    assert report.verdict == "indeterminate" and report.exit_code == 2
    assert "CHAIN_UNTRUSTED" in codes(report)
    assert report.seals[0].chain.trusted is False
    assert report.seals[0].ades_subindication == "NO_CERTIFICATE_CHAIN_FOUND"
    # the same file is valid for a relying party that trusts the other root
    assert verify_pdf(data, trust_roots=[other.root.cert]).verdict == "valid"


# ---------------------------------------------------------------------------------------------
# the report, the API surface, an independent opinion


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        out = set(value)
        for v in value.values():
            out |= _keys(v)
        return out
    if isinstance(value, list):
        return set().union(*(_keys(v) for v in value)) if value else set()
    return set()


def test_report_is_json_ready_with_chinese_labels_and_messages(pki: TestPki,
                                                               lt_seal: bytes) -> None:
    report = verify(lt_seal, pki)
    body = report.to_dict()
    again = json.loads(json.dumps(body, ensure_ascii=False))
    assert again["verdict"] == "valid" and again["verdict_zh"] == "有效"
    assert again["exit_code"] == 0
    keys = _keys({k: v for k, v in again.items() if k != "labels_zh"})
    assert keys <= set(LABELS_ZH), keys - set(LABELS_ZH)
    seal = again["signatures"][0]
    assert seal["signer"]["enterprise"] == "测试𠮷科技有限公司"
    assert seal["signer"]["credit_code"] == pki.uscc
    for problem in seal["problems"]:
        assert problem["message"] and problem["message_zh"] and problem["code"].isupper()
    assert datetime.fromisoformat(seal["signing_time"]) == report.seals[0].signing_time


def test_pdfsig_agrees_that_a_good_seal_is_valid(pki: TestPki, lt_seal: bytes,
                                                 tmp_path: Path) -> None:
    path = tmp_path / "sealed.pdf"
    path.write_bytes(lt_seal)
    poppler = pdfsig_check(path, pki.root.cert, workdir=tmp_path)
    assert poppler.signatures == 1, poppler.text
    assert poppler.valid == [True] and poppler.trusted == [True], poppler.text
    assert poppler.total_document_signed == [True], poppler.text
    assert verify(lt_seal, pki).verdict == "valid"


def test_verify_pdf_works_inside_a_running_event_loop(pki: TestPki, lt_seal: bytes) -> None:
    async def inside() -> tuple[str, str]:
        sync = verify(lt_seal, pki)  # e.g. called from a FastAPI route by mistake
        direct = await async_verify_pdf(lt_seal, trust_roots=[pki.root.cert])
        return sync.verdict, direct.verdict

    assert asyncio.run(inside()) == ("valid", "valid")


# ---------------------------------------------------------------------------------------------
# input that cannot be judged


def _encrypted(doc: SamplePdf) -> bytes:
    return rewrite_pdf(doc.data, xref_stream=False, encrypt_password="secret")


@pytest.mark.parametrize(("make", "code"), [
    (lambda d: b"", "PDF_EMPTY"),
    (lambda d: b"PK\x03\x04 not a pdf at all", "PDF_NOT_PDF"),
    (lambda d: d.data, "PDF_NO_SIGNATURE"),
    (lambda d: d.data[: len(d.data) // 2], "PDF_TRUNCATED"),
    (lambda d: d.data.replace(b"\nxref\n", b"\nxrex\n"), "PDF_BROKEN_XREF"),
    (_encrypted, "PDF_ENCRYPTED"),
], ids=["empty", "not-pdf", "unsigned", "truncated", "broken-xref", "encrypted"])
def test_input_that_is_not_a_signed_pdf_is_refused_with_a_clear_code(
        pki: TestPki, doc: SamplePdf, make: Any, code: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        verify(make(doc), pki)
    assert exc.value.code == code
    assert exc.value.field == "data"
    assert exc.value.message_zh and exc.value.message_zh != exc.value.message


def test_trust_roots_are_required(lt_seal: bytes) -> None:
    with pytest.raises(InvalidInput) as exc:
        verify_pdf(lt_seal, trust_roots=[])
    assert (exc.value.code, exc.value.field) == ("NO_TRUST_ROOTS", "trust_roots")


def test_fifty_thousand_pages_verify_quickly(pki: TestPki) -> None:
    """A 50,000-page filing (9.5 MB) sealed B-LT in one revision: generation, sealing and
    verification each well under a second here; the verifier never walks the page tree when
    the seal covers the whole file."""
    big = make_pdf(pages=50_000)
    data = seal_pdf(big.data, pki.seal, pki, timestamp=True, embed_validation_info=True,
                    dss_in_signed_revision=True)
    started = time.perf_counter()
    report = verify(data, pki)
    elapsed = time.perf_counter() - started
    assert report.verdict == "valid", report.all_problems()
    assert elapsed < 10, elapsed
