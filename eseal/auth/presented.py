"""The certificate a login presents: parsed, chained to our root, and mapped to its account.

Parsing and the chain check are cached per DER (a returning holder costs a dictionary
lookup), and the owner query joins certificate, token record, enterprise and account in one
statement.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from threading import Lock
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from eseal.auth import accounts as acc
from eseal.auth.login_sql import LoginSql, from_db
from eseal.pki.oids import profile_of
from eseal.pki.serials import serial_hex
from eseal.pki.signature import verify_signature

if TYPE_CHECKING:
    from eseal.auth.context import AuthContext


# --- certificates and accounts -------------------------------------------------------------------
@dataclass(frozen=True)
class ParsedCertificate:
    certificate: x509.Certificate
    serial: str
    profile: str | None
    trusted: bool  # directly issued by our issuing CA, which our root issued


_PARSED: OrderedDict[tuple[int, bytes], ParsedCertificate] = OrderedDict()
_PARSED_LOCK = Lock()
_PARSED_MAX = 20000
#: certificate serial -> account identity; fixed once the token record names its holder
_IDENTITIES: dict[tuple[int, str], str] = {}
#: (account id, network) pairs known to be recorded: no query for a returning holder
KNOWN_NETWORKS: set[tuple[int, int, str]] = set()


def parse_certificate(auth: AuthContext, der: bytes) -> ParsedCertificate:
    """Parse a presented certificate and check its chain to our root (cached per DER)."""
    key = (id(auth), hashlib.sha256(der).digest())
    with _PARSED_LOCK:
        hit = _PARSED.get(key)
    if hit is not None:
        return hit
    cert = x509.load_der_x509_certificate(der)
    issuing, root = auth.certificate("issuing"), auth.certificate("root")
    try:
        cert.verify_directly_issued_by(issuing)
        issuing.verify_directly_issued_by(root)
        trusted = True
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        trusted = False
    parsed = ParsedCertificate(cert, serial_hex(cert.serial_number), profile_of(cert), trusted)
    with _PARSED_LOCK:
        _PARSED[key] = parsed
        while len(_PARSED) > _PARSED_MAX:
            _PARSED.popitem(last=False)
    return parsed


def login_signature_ok(cert: x509.Certificate, signature: bytes, message: bytes) -> bool:
    try:
        verify_signature(cert, signature, message)
        return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False


@dataclass(frozen=True)
class LoginAccount:
    id: int
    role: str
    name: str
    enterprise_id: int | None
    status: str
    failures: int
    locked_until: datetime | None
    last_login_at: datetime | None


_OWNER = (
    "SELECT c.serial, c.profile, c.status, c.not_before, c.not_after, c.enterprise_id,"
    " t.role, t.holder, t.enterprise_id, e.uscc, e.status, e.contact_email,"
    " a.id, a.role, a.name, a.enterprise_id, a.status, a.failures, a.locked_until,"
    " a.last_login_at"
    " FROM certificates c"
    " LEFT JOIN tokens t ON t.label = c.token_label"
    " LEFT JOIN enterprises e ON e.id = c.enterprise_id"
    " LEFT JOIN accounts a ON a.identity = :identity"
    " WHERE c.serial = :serial")


def owner_of(auth: AuthContext, sql: LoginSql, serial: str,
           now: datetime) -> tuple[acc.CertOwner | None, LoginAccount | None]:
    """The certificate, its enterprise and its holder's account (created on first use), in
    one query once this process has seen the certificate."""
    cache_key = (id(auth), serial)
    identity = _IDENTITIES.get(cache_key, "")
    row = sql.one(_OWNER, identity=identity, serial=serial)
    if row is None:
        return None, None
    role = row[6] if row[6] is not None and row[8] == row[5] else None
    owner = acc.CertOwner(serial=row[0], profile=row[1], status=row[2],
                          not_before=from_db(row[3]), not_after=from_db(row[4]),  # type: ignore[arg-type]
                          enterprise_id=row[5], enterprise_uscc=row[9], enterprise_status=row[10],
                          contact_email=row[11], role=role,
                          holder=row[7] if role is not None else None)
    if not owner.has_account:
        return owner, None
    assert owner.role is not None and owner.holder is not None
    wanted = acc.account_identity(owner.role, owner.enterprise_id, owner.holder)
    if row[12] is None or identity != wanted:
        account_id = acc.ensure_account(sql.conn, role=owner.role, name=owner.holder,
                                        enterprise_id=owner.enterprise_id, now=now)
        _IDENTITIES[cache_key] = wanted
        again = sql.one(_OWNER, identity=wanted, serial=serial)
        assert again is not None and again[12] == account_id
        row = again
    account = LoginAccount(id=row[12], role=row[13], name=row[14], enterprise_id=row[15],
                       status=row[16], failures=int(row[17]), locked_until=from_db(row[18]),
                       last_login_at=from_db(row[19]))
    return owner, account
