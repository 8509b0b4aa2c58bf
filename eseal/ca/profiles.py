"""Certificate profiles: what each kind of eseal certificate contains, and nothing else.

A profile fixes the key usage, extended key usage, policy OID, revocation pointers, subject
shape and validity of one kind of certificate (root CA, issuing CA, OCSP responder, TSA,
enterprise login, enterprise seal, officer login). Issuance (``eseal.ca.authority``) decides
*whether* to issue; this module decides *what* is issued, so every certificate of a kind looks
the same and can be linted (pkilint) and recognised again (``profile_of``) by its policy OID.

Choices worth knowing (each is pinned by a test against an independent tool):

* Seal certificates carry nonRepudiation + digitalSignature and the EKUs documentSigning
  (RFC 9336) *and* emailProtection: NSS (behind ``pdfsig``) verifies PDF signers for its
  "email signer" usage and rejects a documentSigning-only EKU; pyHanko requires
  nonRepudiation and accepts any EKU by default. The two key usages together are what
  Chinese signing certificates carry (GM/T 0015); ETSI EN 319 412-2 calls the pair "not
  recommended" (pkilint's ETSI lint warns), which we accept for that compatibility.
* CA certificates list their own policy OID plus ``anyPolicy``, so leaves under any eseal
  policy form a valid RFC 5280 policy chain (pkilint's signer/signee lint checks this) while
  ``profile_of`` still recognises the CA by its own OID.
* The OCSP responder certificate has ``id-pkix-ocsp-nocheck`` and therefore no CRL or OCSP
  pointer of its own (clients do not check it); it only points at its issuer.
* The TSA certificate's EKU is timeStamping alone and critical (RFC 3161, 2.3).
* Subjects of enterprise certificates follow ETSI EN 319 412-3 for legal persons:
  ``C=CN, O=<registered name>, organizationIdentifier=NTRCN-<USCC>, CN=...``; the seal's CN
  is the registered name itself. Names are copied byte for byte (UTF8String), never
  normalised (see ``eseal.pki.identity``).
* Signatures use SHA-384 when the issuer key is P-384 (the root), SHA-256 otherwise. This
  module lays a certificate out (``prepare_certificate``) and signs nothing: the issuer
  (``eseal.ca.issuer``) lints it, then signs it with the token key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.name import _ASN1Type
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    CertificatePoliciesOID,
    ExtendedKeyUsageOID,
    NameOID,
)

from eseal.errors import InvalidInput
from eseal.pki import oids
from eseal.pki.dates import add_years
from eseal.pki.identity import (
    organization_identifier,
    validate_person_name,
    validate_registered_name,
)
from eseal.pki.key_policy import key_spec_of
from eseal.pki.oids import profile_of

SubjectKind = Literal["ca", "officer", "enterprise-person", "enterprise-seal"]
Pointers = Literal["none", "issuer-only", "ca", "full"]

# X.520 / RFC 5280 upper bounds (ub-common-name, ub-organization-name), in characters.
UB_COMMON_NAME = 64
UB_ORGANIZATION_NAME = 64


_KEY_USAGE_FLAGS = ("digital_signature", "content_commitment", "key_encipherment",
                    "data_encipherment", "key_agreement", "key_cert_sign", "crl_sign",
                    "encipher_only", "decipher_only")


@dataclass(frozen=True)
class Profile:
    """One kind of certificate. ``key_usage`` uses cryptography's ``KeyUsage`` argument names
    (``content_commitment`` is nonRepudiation)."""

    name: str
    policy: x509.ObjectIdentifier
    issuer_profile: str | None  # None: self-signed
    validity_years: int
    subject_kind: SubjectKind
    key_usage: frozenset[str]
    ca: bool = False
    path_length: int | None = None
    extended_key_usage: tuple[x509.ObjectIdentifier, ...] = ()
    eku_critical: bool = False
    ocsp_nocheck: bool = False
    pointers: Pointers = "full"
    key_specs: tuple[str, ...] | None = None  # required key types; None: any allowed one
    description: str = field(default="", compare=False)


PROFILES: dict[str, Profile] = {
    p.name: p
    for p in (
        Profile("root", oids.POLICY_ROOT, None, 20, "ca",
                frozenset({"key_cert_sign", "crl_sign"}), ca=True, pointers="none",
                key_specs=("ec-p384",), description="self-signed root CA"),
        Profile("issuing", oids.POLICY_ISSUING, "root", 10, "ca",
                frozenset({"key_cert_sign", "crl_sign"}), ca=True, path_length=0,
                pointers="ca", key_specs=("ec-p256",),
                description="issuing CA: signs every end-entity certificate and the CRL"),
        Profile("ocsp", oids.POLICY_OCSP, "issuing", 2, "ca",
                frozenset({"digital_signature"}),
                extended_key_usage=(ExtendedKeyUsageOID.OCSP_SIGNING,), ocsp_nocheck=True,
                pointers="issuer-only", description="delegated OCSP responder"),
        Profile("tsa", oids.POLICY_TSA, "issuing", 5, "ca",
                frozenset({"digital_signature", "content_commitment"}),
                extended_key_usage=(ExtendedKeyUsageOID.TIME_STAMPING,), eku_critical=True,
                description="RFC 3161 time-stamping authority"),
        Profile("login", oids.POLICY_ENTERPRISE_LOGIN, "issuing", 1, "enterprise-person",
                frozenset({"digital_signature"}),
                extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
                description="enterprise staff login (USB-Key challenge signing)"),
        Profile("seal", oids.POLICY_ENTERPRISE_SEAL, "issuing", 1, "enterprise-seal",
                frozenset({"digital_signature", "content_commitment"}),
                extended_key_usage=(oids.DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION),
                description="enterprise electronic seal (PAdES signatures)"),
        Profile("officer", oids.POLICY_OFFICER_LOGIN, "issuing", 1, "officer",
                frozenset({"digital_signature"}),
                extended_key_usage=(ExtendedKeyUsageOID.CLIENT_AUTH,),
                description="CA officer login"),
    )
}


def get_profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InvalidInput("PROFILE_UNKNOWN",
                           f"unknown certificate profile {name!r} (known: {', '.join(PROFILES)})",
                           f"未知的证书模板 {name!r}", field="profile") from None


# ---------------------------------------------------------------------------------------------
# subjects

@dataclass(frozen=True)
class SubjectInfo:
    common_name: str
    registered_name: str | None = None   # enterprise profiles
    uscc: str | None = None              # enterprise profiles
    organization: str | None = None      # CA / officer profiles


def _bounded(value: str, limit: int, field_name: str, what_en: str, what_zh: str) -> str:
    if len(value) > limit:
        raise InvalidInput(
            "NAME_TOO_LONG_FOR_CERTIFICATE",
            f"{what_en} has {len(value)} characters; a certificate allows at most {limit} "
            f"(X.520 upper bound)",
            f"{what_zh}共 {len(value)} 个字符，证书中最多允许 {limit} 个（X.520 上限）",
            field=field_name, details={"length": len(value), "limit": limit},
        )
    return value


def _required(value: str | None, field_name: str, profile: str) -> str:
    if value is None:
        raise InvalidInput("SUBJECT_INCOMPLETE",
                           f"the {profile} profile needs {field_name}",
                           f"{profile} 证书模板缺少 {field_name}", field=field_name)
    return value


def _attr(oid: x509.ObjectIdentifier, value: str) -> x509.NameAttribute:
    if oid == NameOID.COUNTRY_NAME:
        return x509.NameAttribute(oid, value, _ASN1Type.PrintableString)
    return x509.NameAttribute(oid, value, _ASN1Type.UTF8String)


def subject_name(profile: str, info: SubjectInfo) -> x509.Name:
    """The subject DN for ``profile``: validated, bounded, and copied without normalisation."""
    p = get_profile(profile)
    kind = p.subject_kind
    if kind in ("ca", "officer"):
        org = validate_registered_name(_required(info.organization, "organization", profile),
                                       "organization")
        _bounded(org, UB_ORGANIZATION_NAME, "organization", "the organisation name", "机构名称")
        check = validate_person_name if kind == "officer" else validate_registered_name
        cn = _bounded(check(info.common_name, "common_name"), UB_COMMON_NAME, "common_name",
                      "the common name", "通用名称")
        attrs = [_attr(NameOID.COUNTRY_NAME, "CN"), _attr(NameOID.ORGANIZATION_NAME, org),
                 _attr(NameOID.COMMON_NAME, cn)]
        return x509.Name(attrs)
    reg = validate_registered_name(_required(info.registered_name, "registered_name", profile),
                                   "registered_name")
    _bounded(reg, UB_ORGANIZATION_NAME, "registered_name", "the registered name", "登记名称")
    org_id = organization_identifier(_required(info.uscc, "uscc", profile))
    if kind == "enterprise-seal":
        if info.common_name != reg:
            raise InvalidInput(
                "SEAL_NAME_MISMATCH",
                "a seal certificate's common name must be the enterprise's registered name "
                "exactly (ETSI EN 319 412-3)",
                "电子印章证书的通用名称必须与企业登记名称完全一致", field="common_name")
        cn = reg
    else:
        cn = _bounded(validate_person_name(info.common_name, "common_name"), UB_COMMON_NAME,
                      "common_name", "the holder's name", "持有人姓名")
    return x509.Name([
        _attr(NameOID.COUNTRY_NAME, "CN"),
        _attr(NameOID.ORGANIZATION_NAME, reg),
        _attr(oids.ORGANIZATION_IDENTIFIER, org_id),
        _attr(NameOID.COMMON_NAME, cn),
    ])


# ---------------------------------------------------------------------------------------------
# keys, serials, validity

def validity_for(profile: str, not_before: datetime,
                 issuer_cert: x509.Certificate | None = None) -> tuple[datetime, datetime]:
    """The profile's default validity from ``not_before``, cut at the issuer's notAfter."""
    p = get_profile(profile)
    not_after = add_years(not_before, p.validity_years)
    if issuer_cert is not None:
        not_after = min(not_after, issuer_cert.not_valid_after_utc)
    return not_before, not_after


def _check_time(value: datetime, field_name: str) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput("VALIDITY_INVALID", f"{field_name} must be a timezone-aware time",
                           f"{field_name} 必须是带时区的时间", field=field_name)
    # X.509 times have one-second resolution; drop fractions so what we sign is what we meant.
    return value.astimezone(UTC).replace(microsecond=0)


# ---------------------------------------------------------------------------------------------
# building

def _check_base_url(base_url: str) -> str:
    if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")) \
            or any(c.isspace() for c in base_url) or len(base_url) < 9:
        raise InvalidInput("BASE_URL_INVALID",
                           f"the public base URL must be an absolute http(s) URL, got {base_url!r}",
                           f"公开访问地址必须是 http(s) 绝对地址：{base_url!r}", field="base_url")
    return base_url.rstrip("/")


def _signature_hash(issuer_public: Any) -> hashes.HashAlgorithm:
    if isinstance(issuer_public, ec.EllipticCurvePublicKey) and issuer_public.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _same_key(a: Any, b: Any) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return bool(a.public_bytes(*fmt) == b.public_bytes(*fmt))


def _pointer_extensions(p: Profile, base: str) -> list[tuple[x509.ExtensionType, bool]]:
    if p.pointers == "none":
        return []
    ca_name = "root" if p.issuer_profile == "root" else "issuing"
    ca_issuers = x509.AccessDescription(AuthorityInformationAccessOID.CA_ISSUERS,
                                        x509.UniformResourceIdentifier(f"{base}/ca/{ca_name}.crt"))
    if p.pointers == "issuer-only":
        return [(x509.AuthorityInformationAccess([ca_issuers]), False)]
    crl_dp = x509.CRLDistributionPoints([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(f"{base}/crl/{ca_name}.crl")],
        relative_name=None, reasons=None, crl_issuer=None)])
    access = [ca_issuers]
    if p.pointers == "full":
        access.insert(0, x509.AccessDescription(AuthorityInformationAccessOID.OCSP,
                                                x509.UniformResourceIdentifier(f"{base}/ocsp")))
    return [(crl_dp, False), (x509.AuthorityInformationAccess(access), False)]


@dataclass(frozen=True)
class Prepared:
    """A to-be-signed certificate: every field fixed, no signature yet.

    cryptography's builders are immutable, so the issuer (``eseal.ca.issuer``) signs this same
    builder twice, with a throw-away key for the linter and then with the CA's token key, and
    both certificates carry the very same fields."""

    profile: str
    builder: x509.CertificateBuilder
    hash_algorithm: hashes.HashAlgorithm
    issuer_public_key: Any
    self_signed: bool = False


def prepare_certificate(profile: str, *, subject: x509.Name, public_key: Any,
                        issuer_cert: x509.Certificate | None, issuer_public_key: Any,
                        serial: int, not_before: datetime, not_after: datetime,
                        base_url: str) -> Prepared:
    """Lay out one certificate of ``profile``; ``issuer_cert`` None means self-signed.

    Refuses (``InvalidInput``, nothing signed) a key outside the key policy or the profile's key
    type, an issuer certificate of the wrong profile or not matching ``issuer_public_key`` (the
    key that will sign), a serial outside 1..2^159-1, and a validity that is empty or outside
    the issuer's. Times are truncated to whole seconds (X.509 has no fractions): pass whole
    seconds if you store them. Signing is the issuer's (``eseal.ca.issuer.sign_certificate``).
    """
    p = get_profile(profile)
    spec = key_spec_of(public_key)
    if p.key_specs is not None and spec not in p.key_specs:
        raise InvalidInput("KEY_PROFILE_MISMATCH",
                           f"the {profile} profile needs a {' or '.join(p.key_specs)} key, "
                           f"got {spec}",
                           f"{profile} 证书模板要求 {' 或 '.join(p.key_specs)} 密钥，实际为 {spec}",
                           field="public_key")
    if not isinstance(subject, x509.Name) or len(subject) == 0:
        raise InvalidInput("SUBJECT_EMPTY", "the subject name is empty", "证书主体名称为空",
                           field="subject")
    issuer_public = issuer_public_key
    if p.issuer_profile is None:
        if issuer_cert is not None:
            raise InvalidInput("WRONG_ISSUER", f"the {profile} profile is self-signed",
                               f"{profile} 证书为自签名证书", field="issuer_cert")
        if not _same_key(issuer_public, public_key):
            raise InvalidInput("ISSUER_KEY_MISMATCH",
                               "a self-signed certificate must be signed by its own key",
                               "自签名证书必须由其自身密钥签名", field="issuer_key")
        issuer_name = subject
    else:
        if issuer_cert is None or profile_of(issuer_cert) != p.issuer_profile:
            raise InvalidInput("WRONG_ISSUER",
                               f"{profile} certificates are issued by the {p.issuer_profile} CA",
                               f"{profile} 证书须由 {p.issuer_profile} CA 签发",
                               field="issuer_cert")
        if not _same_key(issuer_public, issuer_cert.public_key()):
            raise InvalidInput("ISSUER_KEY_MISMATCH",
                               "the issuer key does not belong to the issuer certificate",
                               "签发密钥与签发者证书不匹配", field="issuer_key")
        issuer_name = issuer_cert.subject
    if not isinstance(serial, int) or isinstance(serial, bool) or not 0 < serial < 2**159:
        raise InvalidInput("SERIAL_INVALID", "the serial must be a positive integer below 2^159",
                           "序列号必须是小于 2^159 的正整数", field="serial")
    start = _check_time(not_before, "not_before")
    end = _check_time(not_after, "not_after")
    if end <= start:
        raise InvalidInput("VALIDITY_INVALID", "notAfter must be later than notBefore",
                           "证书失效时间必须晚于生效时间", field="not_after")
    if issuer_cert is not None and (start < issuer_cert.not_valid_before_utc
                                    or end > issuer_cert.not_valid_after_utc):
        raise InvalidInput(
            "VALIDITY_BEYOND_ISSUER",
            f"the validity {start.isoformat()} .. {end.isoformat()} is not inside the issuer's "
            f"{issuer_cert.not_valid_before_utc.isoformat()} .. "
            f"{issuer_cert.not_valid_after_utc.isoformat()}",
            "证书有效期超出签发者证书的有效期", field="not_after")
    base = _check_base_url(base_url)

    exts: list[tuple[x509.ExtensionType, bool]] = []
    if p.ca:
        exts.append((x509.BasicConstraints(ca=True, path_length=p.path_length), True))
    usage = {flag: flag in p.key_usage for flag in _KEY_USAGE_FLAGS}
    exts.append((x509.KeyUsage(**usage), True))
    if p.extended_key_usage:
        exts.append((x509.ExtendedKeyUsage(list(p.extended_key_usage)), p.eku_critical))
    exts.append((x509.SubjectKeyIdentifier.from_public_key(public_key), False))
    if issuer_cert is not None:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        exts.append((x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), False))
    policies = [x509.PolicyInformation(p.policy, None)]
    if p.ca:
        policies.append(x509.PolicyInformation(CertificatePoliciesOID.ANY_POLICY, None))
    exts.append((x509.CertificatePolicies(policies), False))
    exts.extend(_pointer_extensions(p, base))
    if p.ocsp_nocheck:
        exts.append((x509.OCSPNoCheck(), False))

    builder = (x509.CertificateBuilder()
               .subject_name(subject).issuer_name(issuer_name).public_key(public_key)
               .serial_number(serial).not_valid_before(start).not_valid_after(end))
    for ext, critical in exts:
        builder = builder.add_extension(ext, critical=critical)
    return Prepared(profile, builder, _signature_hash(issuer_public), issuer_public,
                    self_signed=issuer_cert is None)
