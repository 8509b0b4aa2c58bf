"""``eseal sign`` and ``eseal seal image`` as real processes against a live ``eseal serve``.

The sealing client runs from a *client home* that holds nothing but the holders' USB-Keys
(a copy of their SoftHSM token directories): no database, no CA token, no CA PIN, so it can
only reach the timestamp authority, the CRLs and OCSP over HTTP. Its output is judged by tools
we did not write: poppler's ``pdfsig`` with an NSS database trusting only our root, and
pyHanko's validator with ``revocation_mode="require"`` and our root as the only trust anchor
(and its ETSI AdES validation for B-LTA), besides eseal's own verifier.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from hankokit import rewrite_pdf
from judgekit import pdfsig_check
from pdfkit import make_pdf
from PIL import Image
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.validation import validate_pdf_signature
from pyhanko_certvalidator import ValidationContext
from sitekit import Holder, ca_home, count_token_signatures, eseal_cli, seal_with_token

from eseal.settings import Settings
from eseal.signing.seal_image import SealSpec, render_seal
from eseal.signing.verify import verify_pdf
from eseal.token.softhsm import write_conf
from tests.conftest import NAME_A, NAME_B, USCC_A, USCC_B, LiveServer

PIN_A = "4913-7720"
PIN_B = "8802-1536"


@dataclass
class Site:
    """A CA home served on loopback, two enterprises' legal representatives enrolled, and a
    client home holding only their USB-Keys."""

    home: Path
    settings: Settings
    server: LiveServer
    client: Path
    root: x509.Certificate
    root_pem: Path
    work: Path

    def run(self, *args: str, stdin: str | None = None, home: Path | None = None
            ) -> subprocess.CompletedProcess[str]:
        """``eseal ARGS`` as the holder runs it: from the client home unless told otherwise."""
        return eseal_cli(*args, home=home or self.client, stdin=stdin, cwd=self.work)


def _copy_user_tokens(tokens: Path, target: Path, labels: list[str]) -> None:
    """Copy the SoftHSM token directories of ``labels`` (never the CA token) to ``target``."""
    target.mkdir(parents=True)
    copied = []
    for token_dir in tokens.iterdir():
        meta = (token_dir / "token.object").read_bytes()
        if b"eseal-ca" in meta:
            continue
        for label in labels:
            if label.encode() in meta:
                shutil.copytree(token_dir, target / token_dir.name)
                copied.append(label)
    assert sorted(copied) == sorted(labels)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    tmp = tmp_path_factory.mktemp("site")
    with ca_home(tmp / "home",
                 enterprises=[(USCC_A, NAME_A, "张三"), (USCC_B, NAME_B, "李四")],
                 holders=[Holder("zhang", PIN_A, USCC_A, "legal_rep", "张三"),
                          Holder("li", PIN_B, USCC_B, "legal_rep", "李四")]) as ca:
        client = tmp / "client"
        _copy_user_tokens(ca.home / "tokens", client / "tokens", ["zhang", "li"])
        write_conf(client / "softhsm2.conf", client / "tokens")
        (client / "eseal.toml").write_text(f'base_url = "{ca.settings.base_url}"\n')
        root_pem = tmp / "root.pem"
        root_pem.write_bytes(ca.root.public_bytes(serialization.Encoding.PEM))
        work = tmp / "work"
        work.mkdir()
        server = LiveServer(ca.home, ca.port)
        try:
            yield Site(ca.home, ca.settings, server, client, ca.root, root_pem, work)
        finally:
            server.stop()


@pytest.fixture(scope="module")
def draft(site: Site) -> Path:
    path = site.work / "draft.pdf"
    path.write_bytes(make_pdf(pages=2).data)
    return path


def _pyhanko_require(data: bytes, root: x509.Certificate) -> list:  # type: ignore[type-arg]
    """pyHanko's own verdict: revocation data *required*, our root the only anchor, nothing
    fetched: the CRLs, OCSP responses and certificates it may use are the file's DSS."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    anchor = asn1_x509.Certificate.load(root.public_bytes(serialization.Encoding.DER))
    reader = PdfFileReader(io.BytesIO(data))
    dss = DocumentSecurityStore.read_dss(reader)
    crls = [ref.get_object().data for ref in dss.crls]
    ocsps = [ref.get_object().data for ref in dss.ocsps]
    out = []
    for sig in reader.embedded_regular_signatures:
        vc = ValidationContext(trust_roots=[anchor], other_certs=list(dss.load_certs()),
                               crls=crls, ocsps=ocsps, allow_fetching=False,
                               revocation_mode="require")
        out.append(validate_pdf_signature(sig, vc))
    return out


# ---------------------------------------------------------------------------------------------
def test_seal_image_takes_the_registered_name_from_the_home(site: Site) -> None:
    out = site.work / "seal.png"
    done = site.run("seal", "image", "--enterprise", USCC_A, "-o", str(out), "--title",
                    "合同专用章", home=site.home)
    assert done.returncode == 0, done.stderr
    assert NAME_A in done.stdout
    image = Image.open(out)
    assert (image.format, image.mode, image.size) == ("PNG", "RGBA", (600, 600))
    # the exact registered name (with 𠮷) and code were drawn, not something typed
    assert out.read_bytes() == render_seal(SealSpec(NAME_A, uscc=USCC_A, title="合同专用章"))

    unknown = site.run("seal", "image", "--enterprise", "91110108551385082Q", "-o",
                       str(site.work / "x.png"), home=site.home)
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error ENTERPRISE_NOT_REGISTERED [uscc]")
    bad = site.run("seal", "image", "--enterprise", USCC_A[:-1] + "0", "-o",
                   str(site.work / "x.png"), home=site.home)
    assert bad.returncode == 1 and "[uscc]" in bad.stderr
    assert not (site.work / "x.png").exists()


def test_b_lt_seal_from_a_client_without_the_ca_is_valid_for_pdfsig_pyhanko_and_eseal(
        site: Site, draft: Path) -> None:
    out = site.work / "a.pdf"
    # --server spelled differently from the base URL in the certificates: every service URL is
    # re-based onto it, and the PIN comes from stdin
    server = site.server.url.replace("127.0.0.1", "localhost")
    done = site.run("sign", str(draft), "-o", str(out), "--token", "zhang", "--pin-stdin",
                    "--reason", "同意", "--location", "北京", "--server", server, "--json",
                    stdin=PIN_A + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    import json

    info = json.loads(done.stdout)
    assert info["level"] == "B-LT" and info["credit_code"] == USCC_A
    assert {f"{server}/tsa", f"{server}/crl/issuing.crl", f"{server}/crl/root.crl",
            f"{server}/ocsp"} <= set(info["services"])
    sealed = out.read_bytes()
    assert sealed.startswith(draft.read_bytes())

    # revocation data (CRLs and OCSP) in the seal's own revision: one update, no DSS-only one
    reader = PdfFileReader(io.BytesIO(sealed))
    assert reader.xrefs.total_revisions == 2
    dss = reader.root["/DSS"]
    assert len(dss["/CRLs"]) >= 2 and len(dss["/OCSPs"]) >= 1

    result = pdfsig_check(out, site.root, workdir=site.work)
    assert result.valid == [True], result.text
    assert result.trusted == [True], result.text
    assert result.total_document_signed == [True], result.text

    (status,) = _pyhanko_require(sealed, site.root)
    assert status.bottom_line, status.pretty_print_details()
    assert status.timestamp_validity is not None and status.timestamp_validity.trusted

    report = verify_pdf(sealed, trust_roots=[site.root])
    assert report.verdict == "valid", report.all_problems()
    assert report.seals[0].pades_level == "B-LT"
    assert report.seals[0].signer.enterprise == NAME_A  # type: ignore[union-attr]


def test_a_second_enterprise_seals_the_same_file_and_every_seal_stays_valid(
        site: Site, draft: Path) -> None:
    first, both = site.work / "a1.pdf", site.work / "ab.pdf"
    done = site.run("sign", str(draft), "-o", str(first), "--token", "zhang", "--pin", PIN_A)
    assert done.returncode == 0, done.stderr
    done = site.run("sign", str(first), "-o", str(both), "--token", "li", "--pin", PIN_B,
                    "--level", "B-LT", "--page", "2")
    assert done.returncode == 0, done.stderr
    sealed = both.read_bytes()
    assert sealed.startswith(first.read_bytes())

    result = pdfsig_check(both, site.root, workdir=site.work)
    assert result.valid == [True, True], result.text
    assert result.trusted == [True, True], result.text
    assert result.total_document_signed == [False, True], result.text
    assert all(s.bottom_line for s in _pyhanko_require(sealed, site.root))
    report = verify_pdf(sealed, trust_roots=[site.root])
    assert report.verdict == "valid", report.all_problems()
    assert [s.signer.credit_code for s in report.seals] == [USCC_A, USCC_B]  # type: ignore[union-attr]
    assert [s.coverage.scope for s in report.seals] == ["revision", "whole_file"]


def test_b_lta_seal_makes_one_token_signature_and_passes_pyhanko_ades_lta_validation(
        site: Site, draft: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, to count what the token is asked: exactly one signature per seal."""
    import asyncio

    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.ades.report import AdESPassed
    from pyhanko.sign.validation.ades import ades_lta_validation
    from pyhanko.sign.validation.policy_decl import (
        PdfSignatureValidationSpec,
        RevinfoOnlineFetchingRule,
        RevocationInfoGatheringSpec,
        SignatureValidationSpec,
    )
    from pyhanko_certvalidator.context import CertValidationPolicySpec
    from pyhanko_certvalidator.policy_decl import REQUIRE_REVINFO, CertRevTrustPolicy
    from pyhanko_certvalidator.registry import SimpleTrustManager

    calls = count_token_signatures(monkeypatch)
    sealed = seal_with_token(draft.read_bytes(), "zhang", PIN_A, server=site.server.url,
                             level="B-LTA", at="72,72", size_pt=100)
    assert len(calls) == 1
    reader = PdfFileReader(io.BytesIO(sealed))
    assert len(reader.embedded_timestamp_signatures) == 1

    anchor = asn1_x509.Certificate.load(site.root.public_bytes(serialization.Encoding.DER))
    policy = CertValidationPolicySpec(
        trust_manager=SimpleTrustManager.build(trust_roots=[anchor]),
        revinfo_policy=CertRevTrustPolicy(REQUIRE_REVINFO))
    spec = PdfSignatureValidationSpec(SignatureValidationSpec(
        cert_validation_policy=policy,
        revinfo_gathering_policy=RevocationInfoGatheringSpec(
            online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY)))
    (sig,) = reader.embedded_regular_signatures
    ades = asyncio.run(ades_lta_validation(sig, spec))
    assert ades.ades_subindic == AdESPassed.OK, ades.failure_msg
    assert ades.oldest_evidence_record_timestamp is not None

    report = verify_pdf(sealed, trust_roots=[site.root])
    assert report.verdict == "valid", report.all_problems()
    assert report.seals[0].pades_level == "B-LTA"


def test_bad_input_wrong_pin_and_a_dead_service_fail_with_one_line_and_write_nothing(
        site: Site, draft: Path) -> None:
    out = site.work / "never.pdf"
    not_pdf = site.work / "notes.txt"
    not_pdf.write_text("hello")
    encrypted = site.work / "locked.pdf"
    encrypted.write_bytes(rewrite_pdf(make_pdf().data, xref_stream=False,
                                      encrypt_password="secret"))
    cases = [
        ([str(not_pdf), "--pin", PIN_A], "PDF_NOT_PDF"),
        ([str(encrypted), "--pin", PIN_A], "PDF_ENCRYPTED"),
        ([str(draft), "--pin", "0000-9999"], "PIN_INCORRECT"),
        ([str(draft), "--pin", PIN_A, "--at", "10,10", "--field", "S"], "PLACEMENT_CONFLICT"),
        ([str(draft), "--pin", PIN_A, "--server", "http://127.0.0.1:9"], "SERVICE_UNREACHABLE"),
    ]
    for args, code in cases:
        done = site.run("sign", *args, "-o", str(out), "--token", "zhang")
        assert done.returncode == 1, (code, done.stderr)
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error {code}"), (code, done.stderr)
        assert not out.exists()
