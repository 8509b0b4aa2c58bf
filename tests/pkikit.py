"""Test kit: a throw-away PKI that looks like ours, built in memory.

Root P-384 -> issuing P-256 -> seal / login / TSA certificates with our policy OIDs, CRLs
with the reasons our CA uses (keyCompromise with invalidityDate, certificateHold), OCSP
answers, and a CRL distribution point on 127.0.0.1. Nothing here touches a token: the
verifier's tests need certificates whose every field an attack can choose.

    pki = make_pki()          # once per module: EC keys are fast
    pki.seal, pki.crl(), make_ocsp_response(pki, pki.seal.cert)
"""


from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from eseal.pki.oids import (
    DOCUMENT_SIGNING,
    ORGANIZATION_IDENTIFIER,
    POLICY_ENTERPRISE_LOGIN,
    POLICY_ENTERPRISE_SEAL,
    POLICY_ISSUING,
    POLICY_ROOT,
    POLICY_TSA,
)

# ---------------------------------------------------------------------------------------------
# identity helpers

USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def uscc_with_check(first17: str) -> str:
    """Complete a 17-character USCC body with its GB 32100-2015 check character."""
    total = sum(USCC_ALPHABET.index(ch) * pow(3, i, 31) for i, ch in enumerate(first17))
    check = 31 - total % 31
    return first17 + USCC_ALPHABET[0 if check == 31 else check]


# ---------------------------------------------------------------------------------------------
# the test PKI

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


@dataclass(frozen=True)
class Issued:
    """A certificate with its software private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class TestPki:
    """Root P-384 → issuing P-256 → end-entity certificates shaped like eseal's profiles.

    ``seal`` carries the seal policy, ``login`` the login policy, ``tsa`` is an RSA time-stamping
    certificate (pyHanko's test TSA signs with RSA only). ``now`` is the moment the PKI was
    built; certificates are valid from 30 days before it.
    """

    __test__ = False  # not a pytest class

    root: Issued
    issuing: Issued
    seal: Issued
    login: Issued
    tsa: Issued
    now: datetime
    enterprise_name: str
    uscc: str
    crl_url: str
    root_crl_url: str

    def issue_seal(self, *, name: str | None = None, uscc: str | None = None,
                   policy: x509.ObjectIdentifier = POLICY_ENTERPRISE_SEAL,
                   not_before: datetime | None = None,
                   not_after: datetime | None = None) -> Issued:
        """Another seal certificate (e.g. one to revoke) from the same issuing CA."""
        return _issue_enterprise(
            self.issuing, name or self.enterprise_name, uscc or self.uscc, policy=policy,
            now=self.now, crl_url=self.crl_url, not_before=not_before, not_after=not_after)

    def crl(self, revoked: Iterable[tuple[x509.Certificate, datetime, x509.ReasonFlags | None,
                                          datetime | None]] = (),
            *, this_update: datetime | None = None,
            next_update: datetime | None = None, number: int = 1) -> x509.CertificateRevocationList:
        """A CRL from the issuing CA. ``revoked`` holds (cert, revocation date, reason,
        invalidity date); defaults: thisUpdate = now - 1 h, nextUpdate = thisUpdate + 7 days."""
        return make_crl(self.issuing, revoked, this_update=this_update or self.now - _HOUR,
                        next_update=next_update, number=number)

    def root_crl(self, *, this_update: datetime | None = None) -> x509.CertificateRevocationList:
        """An empty CRL from the root, covering the issuing CA certificate."""
        return make_crl(self.root, (), this_update=this_update or self.now - _HOUR)


_HOUR = timedelta(hours=1)


def _name(cn: str, org: str | None = None, uscc: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    if org is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    if uscc is not None:
        attrs.append(x509.NameAttribute(ORGANIZATION_IDENTIFIER, f"NTRCN-{uscc}"))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _policies(oid: x509.ObjectIdentifier) -> x509.CertificatePolicies:
    return x509.CertificatePolicies([x509.PolicyInformation(oid, None)])


def _sign_alg(key: PrivateKey) -> hashes.HashAlgorithm:
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return hashes.SHA384()
    return hashes.SHA256()


def _ca_cert(subject: x509.Name, key: PrivateKey, issuer: Issued | None, *, now: datetime,
             policy: x509.ObjectIdentifier, path_length: int | None,
             crl_url: str | None) -> Issued:
    signer_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=3650))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=False, content_commitment=False, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(_policies(policy), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False)
    if crl_url:
        builder = builder.add_extension(_crl_dp(crl_url), critical=False)
    return Issued(builder.sign(signer_key, _sign_alg(signer_key)), key)


def _crl_dp(url: str) -> x509.CRLDistributionPoints:
    return x509.CRLDistributionPoints([x509.DistributionPoint(
        full_name=[x509.UniformResourceIdentifier(url)], relative_name=None, reasons=None,
        crl_issuer=None)])


def _leaf_builder(issuer: Issued, subject: x509.Name, key: PrivateKey, *, now: datetime,
                  crl_url: str, not_before: datetime | None = None,
                  not_after: datetime | None = None) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - timedelta(days=30))
        .not_valid_after(not_after or now + timedelta(days=335))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
        .add_extension(_crl_dp(crl_url), critical=False)
        .add_extension(x509.AuthorityInformationAccess([x509.AccessDescription(
            AuthorityInformationAccessOID.OCSP,
            x509.UniformResourceIdentifier(crl_url.rsplit("/", 1)[0] + "/ocsp"))]),
            critical=False)
    )


def _issue_enterprise(issuer: Issued, name: str, uscc: str, *, policy: x509.ObjectIdentifier,
                      now: datetime, crl_url: str, not_before: datetime | None = None,
                      not_after: datetime | None = None) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    login = policy == POLICY_ENTERPRISE_LOGIN
    builder = _leaf_builder(issuer, _name(name, name, uscc), key, now=now, crl_url=crl_url,
                            not_before=not_before, not_after=not_after)
    builder = builder.add_extension(x509.KeyUsage(
        digital_signature=True, content_commitment=not login, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
        encipher_only=False, decipher_only=False), critical=True)
    ekus = ([ExtendedKeyUsageOID.CLIENT_AUTH] if login
            else [DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION])
    builder = builder.add_extension(x509.ExtendedKeyUsage(ekus), critical=False)
    builder = builder.add_extension(_policies(policy), critical=False)
    return Issued(builder.sign(issuer.key, hashes.SHA256()), key)


def make_pki(*, now: datetime | None = None, enterprise_name: str = "测试𠮷科技有限公司",
             uscc: str | None = None, crl_base_url: str = "http://127.0.0.1:9/eseal",
             ca_name: str = "eseal Test") -> TestPki:
    """Build the whole test PKI (about 0.1 s: one RSA key for the TSA, EC for the rest).

    Certificates point their CRL distribution points at ``crl_base_url`` + ``/issuing.crl``
    (end entities) and ``/root.crl`` (the issuing CA); the default port 9 refuses connections,
    so nothing is fetched unless a :class:`CrlServer` serves them. ``ca_name`` prefixes the CA
    and TSA names (a second PKI with the same prefix impersonates the first one's names).
    """
    now = now or datetime.now(UTC).replace(microsecond=0)
    uscc = uscc or uscc_with_check("91350100M00010001")
    crl_url, root_crl_url = f"{crl_base_url}/issuing.crl", f"{crl_base_url}/root.crl"
    root_key = ec.generate_private_key(ec.SECP384R1())
    root = _ca_cert(_name(f"{ca_name} Root CA", "eseal test"), root_key, None, now=now,
                    policy=POLICY_ROOT, path_length=1, crl_url=None)
    issuing_key = ec.generate_private_key(ec.SECP256R1())
    issuing = _ca_cert(_name(f"{ca_name} Issuing CA", "eseal test"), issuing_key, root,
                       now=now, policy=POLICY_ISSUING, path_length=0, crl_url=root_crl_url)
    seal = _issue_enterprise(issuing, enterprise_name, uscc, policy=POLICY_ENTERPRISE_SEAL,
                             now=now, crl_url=crl_url)
    login = _issue_enterprise(issuing, enterprise_name, uscc, policy=POLICY_ENTERPRISE_LOGIN,
                              now=now, crl_url=crl_url)
    tsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tsa_cert = (
        _leaf_builder(issuing, _name(f"{ca_name} TSA", "eseal test"), tsa_key, now=now,
                      crl_url=crl_url, not_after=now + timedelta(days=3000))
        .add_extension(x509.KeyUsage(
            digital_signature=True, content_commitment=True, key_encipherment=False,
            data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
            encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                       critical=True)
        .add_extension(_policies(POLICY_TSA), critical=False)
        .sign(issuing_key, hashes.SHA256())
    )
    return TestPki(root=root, issuing=issuing, seal=seal, login=login,
                   tsa=Issued(tsa_cert, tsa_key), now=now, enterprise_name=enterprise_name,
                   uscc=uscc, crl_url=crl_url, root_crl_url=root_crl_url)


def make_crl(issuer: Issued, revoked: Iterable[tuple[x509.Certificate, datetime,
                                                     x509.ReasonFlags | None, datetime | None]],
             *, this_update: datetime, next_update: datetime | None = None,
             number: int = 1) -> x509.CertificateRevocationList:
    """A CRL signed by ``issuer`` listing (cert, revocation date, reason, invalidity date)."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.cert.subject)
        .last_update(this_update)
        .next_update(next_update or this_update + timedelta(days=7))
        .add_extension(x509.CRLNumber(number), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.key.public_key()), critical=False)
    )
    for cert, when, reason, invalidity in revoked:
        entry = (x509.RevokedCertificateBuilder().serial_number(cert.serial_number)
                 .revocation_date(when))
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), critical=False)
        if invalidity is not None:
            entry = entry.add_extension(x509.InvalidityDate(invalidity), critical=False)
        builder = builder.add_revoked_certificate(entry.build())
    return builder.sign(issuer.key, _sign_alg(issuer.key))


def crl_der(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.DER)


def asn1_cert(cert: x509.Certificate) -> asn1_x509.Certificate:
    """The asn1crypto view pyHanko wants."""
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


def asn1_key(key: PrivateKey) -> asn1_keys.PrivateKeyInfo:
    return asn1_keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))


# ---------------------------------------------------------------------------------------------
# a CRL distribution point on 127.0.0.1


class CrlServer:
    """Serve CRLs over HTTP on 127.0.0.1 (an ephemeral port) for fetching tests.

    Start it before :func:`make_pki` and pass ``crl_base_url=server.base_url``; then
    ``publish("issuing.crl", pki.crl(...))``. Use as a context manager or call ``close()``.
    """

    def __init__(self) -> None:
        import http.server
        import threading

        files: dict[str, bytes] = {}
        requests: list[str] = []
        self.files = files
        self.requests = requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(self.path)
                body = files.get(self.path.rsplit("/", 1)[-1])
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/eseal"

    def publish(self, name: str, crl: x509.CertificateRevocationList) -> None:
        self.files[name] = crl_der(crl)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> CrlServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()



def make_ocsp_response(pki: TestPki, cert: x509.Certificate, *, revoked_at: datetime | None = None,
                       reason: x509.ReasonFlags | None = None,
                       this_update: datetime | None = None) -> bytes:
    """A DER OCSP response for ``cert`` signed by the issuing CA itself: good, or revoked
    since ``revoked_at`` (with ``reason``). Valid for 7 days from ``this_update``."""
    from cryptography.x509 import ocsp

    this_update = this_update or pki.now - _HOUR
    status = ocsp.OCSPCertStatus.REVOKED if revoked_at else ocsp.OCSPCertStatus.GOOD
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(cert=cert, issuer=pki.issuing.cert, algorithm=hashes.SHA256(),
                      cert_status=status, this_update=this_update,
                      next_update=this_update + timedelta(days=7), revocation_time=revoked_at,
                      revocation_reason=reason)
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki.issuing.cert)
    )
    return builder.sign(pki.issuing.key, hashes.SHA256()).public_bytes(
        serialization.Encoding.DER)
