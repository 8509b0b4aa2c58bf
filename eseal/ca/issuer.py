"""The issuer: the one place a certificate is signed, and only after the linter passed it.

As in Boulder, the certificate is linted *before* the CA key signs anything: the prepared
certificate (``eseal.ca.profiles.prepare_certificate``: every field fixed, issuer name and
authority key identifier taken from the real issuing certificate) is first signed with a
throw-away software key of the same algorithm (the "lint issuer"), that copy is linted with
pkilint's RFC 5280 validator, and only a clean copy lets the token key sign the same builder.
The real certificate's to-be-signed bytes must then equal the linted copy's (Boulder compares
precertificate and final certificate the same way), so what the token signed is exactly what
was linted; the signature is the only difference. A finding is the coded refusal
``CERT_LINT_FAILED`` and the token is never asked.

Cost (measured on the shared 2-core machine, ``python -m bench.issue``): pkilint's validator
is built once per process (~0.2 s); one eseal certificate then takes a few milliseconds,
about half of it decoding the DER into pkilint's document tree and most of the rest offering
every validator every node, which ``_Walker`` narrows (findings unchanged, tested); the
throw-away keys are made once per process. Linting costs more than the rest of an issuance
together (bench.issue prints ON beside OFF). The setting ``lint_on_issue`` (on by default)
can switch the lint off for a bench or a deployment that accepts the risk; the TBS
comparison is kept either way.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from eseal.ca.profiles import Prepared, prepare_certificate
from eseal.errors import ConfigError, EsealError, InvalidInput, ServiceUnavailable

# pkilint accepts a CA certificate without an authority key identifier only when it is
# self-signed, which it checks by verifying the signature with the certificate's own key: the
# lint copy of a root, signed by the throw-away key, cannot pass that test, so this one finding
# is left out for self-signed profiles and the real certificate's self-signature is verified
# after the token signed it instead.
_SELF_SIGNED_ONLY = "pkix.authority_key_identifier_extension_absent "
_KEYS_LOCK = threading.Lock()
_LINT_KEYS: dict[tuple[str, int], Any] = {}


# --- pkilint, in process ------------------------------------------------------------------
@functools.cache
def _pkix_validator() -> tuple[Any, Callable[[bytes], Any], Any]:
    try:
        from pkilint import loader, validation
        from pkilint.pkix import certificate, extension, name
    except ImportError as exc:  # pragma: no cover - pkilint is a dependency of eseal
        raise ConfigError("PKILINT_MISSING",
                          "certificate linting needs pkilint (pip install pkilint)",
                          "证书检查需要安装 pkilint") from exc
    container = certificate.create_pkix_certificate_validator_container(
        certificate.create_decoding_validators(name.ATTRIBUTE_TYPE_MAPPINGS,
                                               extension.EXTENSION_MAPPINGS),
        [
            certificate.create_issuer_validator_container([]),
            certificate.create_validity_validator_container(),
            certificate.create_subject_validator_container([]),
            certificate.create_extensions_validator_container([]),
            certificate.create_spki_validator_container([]),
        ],
    )
    load = loader.RFC5280CertificateDocumentLoader().load_der_document
    return container, load, validation.ValidationFindingSeverity


class _Walker:
    """pkilint's own tree walk (``ValidatorContainer.validate``), with the matching sped up.

    pkilint offers every validator every node of the document (about 4,700 ``match`` calls
    for one eseal certificate, most of the lint's time). A validator's path, path pattern and
    node class depend only on the node's path and type, which repeat from one certificate to
    the next, so which validators can match a (container, type, path) is worked out once and
    remembered; each of those is still asked ``match`` (its predicate and supertype) and run
    exactly as pkilint would, in pkilint's order. Validators that define their own ``match``
    are always asked. ``tests/ca/test_issuer.py`` checks the findings equal pkilint's own walk."""

    def __init__(self, node_visitor: Any, container_class: Any) -> None:
        self._base_match = node_visitor.match
        self._container = container_class
        self._memo: dict[tuple[int, type, str], list[tuple[Any, bool]]] = {}

    def _may_match(self, v: Any, pdu_type: type, path: str) -> bool:
        if type(v).match is not self._base_match:
            return True
        return ((v._path is None or v._path == path)
                and (v._path_re is None or v._path_re.match(path) is not None)
                and (v._pdu_class is None or issubclass(pdu_type, v._pdu_class)))

    def walk(self, container: Any, node: Any, results: list[Any]) -> list[Any]:
        key = (id(container), type(node.pdu), node.path)
        candidates = self._memo.get(key)
        if candidates is None:
            candidates = self._memo[key] = [
                (v, isinstance(v, self._container)
                 and type(v).validate is self._container.validate)
                for v in container.validators if self._may_match(v, type(node.pdu), node.path)]
        for v, nested in candidates:
            if v.match(node):
                if nested:
                    self.walk(v, node, results)
                else:
                    result = v.validate_wrapper(node)
                    if isinstance(result, list):
                        results.extend(result)
                    else:
                        results.append(result)
        for child in node.children.values():
            self.walk(container, child, results)
        return results


@functools.cache
def _walker() -> _Walker:
    from pkilint import document, validation

    return _Walker(document.NodeVisitor, validation.ValidatorContainer)


def lint_der(der: bytes, severity: str = "WARNING") -> list[str]:
    """pkilint's RFC 5280 lint of one DER certificate: one line per finding at ``severity``
    or worse (empty: clean). The validator is built once per process."""
    container, load, levels = _pkix_validator()
    try:
        threshold = levels[severity]
    except KeyError:
        raise InvalidInput("SEVERITY_UNKNOWN", f"unknown lint severity {severity!r}",
                           f"未知的检查级别 {severity!r}", field="severity") from None
    try:
        doc = load(der, "certificate")
    except ValueError as exc:
        raise InvalidInput("CERTIFICATE_UNPARSEABLE", f"not a certificate: {exc}",
                           "无法解析证书", field="certificate") from exc
    findings = []
    for result in _walker().walk(container, doc.root, []):
        for desc in result.finding_descriptions:
            if desc.finding.severity <= threshold:
                findings.append(f"{desc} @ {result.node.path}")
    return findings


def lint_certificate(cert: bytes, severity: str = "WARNING") -> list[str]:
    """What ``lint_pkix_cert lint -s WARNING cert.pem`` reports, in process; PEM or DER."""
    try:
        der = (x509.load_pem_x509_certificate(cert) if cert.lstrip().startswith(b"-----")
               else x509.load_der_x509_certificate(cert)).public_bytes(serialization.Encoding.DER)
    except ValueError as exc:
        raise InvalidInput("CERTIFICATE_UNPARSEABLE", f"not a certificate: {exc}",
                           "无法解析证书", field="certificate") from exc
    return lint_der(der, severity)


# --- the lint issuer ------------------------------------------------------------------------
def lint_key_for(issuer_public_key: Any) -> Any:
    """A throw-away software key of the issuer key's algorithm and size, made once per
    process: it signs only the copies that are linted, never anything handed out."""
    if isinstance(issuer_public_key, ec.EllipticCurvePublicKey):
        kind = (issuer_public_key.curve.name, 0)
    elif isinstance(issuer_public_key, rsa.RSAPublicKey):
        kind = ("rsa", issuer_public_key.key_size)
    else:
        raise ConfigError("ISSUER_KEY_UNSUPPORTED",
                          f"the CA cannot sign with a {type(issuer_public_key).__name__} key",
                          "CA 签发密钥类型不受支持", field="issuer_key")
    with _KEYS_LOCK:
        if kind not in _LINT_KEYS:
            _LINT_KEYS[kind] = (ec.generate_private_key(issuer_public_key.curve)
                                if kind[1] == 0 else
                                rsa.generate_private_key(65537, issuer_public_key.key_size))
        return _LINT_KEYS[kind]


# --- signing ----------------------------------------------------------------------------------
def sign_certificate(prepared: Prepared, issuer_key: Any, *, lint: bool = True,
                     lint_key: Any = None) -> x509.Certificate:
    """Lint ``prepared`` as signed by the lint issuer, then sign it with ``issuer_key``.

    Refuses ``CERT_LINT_FAILED`` (the issuer key is not used) when pkilint finds anything at
    WARNING or worse, and ``CERT_TBS_MISMATCH`` when the real certificate's to-be-signed part
    differs from the linted one (it is then discarded, never returned)."""
    throwaway = lint_key if lint_key is not None else lint_key_for(prepared.issuer_public_key)
    linted = prepared.builder.sign(throwaway, prepared.hash_algorithm)
    if lint:
        findings = lint_der(linted.public_bytes(serialization.Encoding.DER))
        if prepared.self_signed:  # see _SELF_SIGNED_ONLY; the self-signature is checked below
            findings = [f for f in findings if not f.startswith(_SELF_SIGNED_ONLY)]
        if findings:
            raise EsealError("CERT_LINT_FAILED",
                             f"the {prepared.profile} certificate failed linting, nothing was "
                             f"signed: {findings[0]}" + (f" (+{len(findings) - 1} more)"
                                                         if len(findings) > 1 else ""),
                             f"{prepared.profile} 证书未通过检查，未签发：{findings[0]}",
                             field="profile", details={"findings": findings})
    cert = prepared.builder.sign(issuer_key, prepared.hash_algorithm)
    if prepared.self_signed:
        try:
            cert.verify_directly_issued_by(cert)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise ServiceUnavailable("CERT_SELF_SIGNATURE_INVALID",
                             "the self-signed certificate does not verify with its own key; "
                             "it was discarded", "自签名证书无法用其自身公钥验证，已作废",
                             field="issuer_key") from exc
    if cert.tbs_certificate_bytes != linted.tbs_certificate_bytes:
        raise ServiceUnavailable("CERT_TBS_MISMATCH",
                         "the signed certificate differs from the one that was linted; "
                         "it was discarded",
                         "签发的证书与检查过的证书不一致，已作废", field="profile")
    return cert


def build_certificate(profile: str, *, subject: x509.Name, public_key: Any,
                      issuer_cert: x509.Certificate | None, issuer_key: Any, serial: int,
                      not_before: datetime, not_after: datetime, base_url: str,
                      lint: bool = True) -> x509.Certificate:
    """Prepare, lint and sign one certificate of ``profile`` (``issuer_cert`` None:
    self-signed): ``prepare_certificate`` then ``sign_certificate``."""
    prepared = prepare_certificate(profile, subject=subject, public_key=public_key,
                                   issuer_cert=issuer_cert,
                                   issuer_public_key=issuer_key.public_key(), serial=serial,
                                   not_before=not_before, not_after=not_after,
                                   base_url=base_url)
    return sign_certificate(prepared, issuer_key, lint=lint)
