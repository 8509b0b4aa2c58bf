"""The audit log's head, carried in every CRL the CA publishes: evidence outside its own files.

Checkpoints (signatures by the audit key) live in the database and in
``audit/checkpoints.jsonl``; someone who can edit both can delete the checkpoints after a
row they rewrite, or truncate the log back to an older checkpoint, and nothing *in those
files* shows it. CRLs are different: every full CRL is signed by a CA key on the token,
published at ``/crl`` and copied by relying parties (browsers, PDF validators, the
enterprises' own archives). So each CRL carries, in a non-critical extension, the audit
log's head at the moment it was signed::

    eseal-audit-head EXTENSION ::= { OID 1.3.6.1.4.1.32473.1.3.1, non-critical }
    AuditHead ::= SEQUENCE { eventId INTEGER, eventHash OCTET STRING (SIZE (32)) }

A relying party ignores a non-critical extension it does not know (RFC 5280 §5.2). An auditor
who holds any CRL the CA published can check that the log still has that event with that
hash (``eseal audit verify --crl FILE``); the CA's own stored CRLs are checked every time.
What this cannot show: events after the newest CRL anyone kept (the CA token's record of the
newest checkpoint, ``audit_head``, covers up to that checkpoint without any copy).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import ClassVar

from asn1crypto import core
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm

from eseal.pki.der import (
    der_tlv,
)
from eseal.pki.oids import ESEAL_ARC

AUDIT_HEAD_OID = x509.ObjectIdentifier(f"{ESEAL_ARC}.3.1")


class _AuditHead(core.Sequence):
    _fields: ClassVar[list[tuple[str, type]]] = [("event_id", core.Integer),
                                                 ("event_hash", core.OctetString)]


@dataclass(frozen=True)
class CrlAnchor:
    """The audit head one CRL vouches for; ``source`` names the CRL for the report."""

    event_id: int
    event_hash: str
    source: str


class AnchorError(ValueError):
    """A CRL that claims to be ours but is not signed by our CA, or whose head is malformed."""


def audit_head_extension(event_id: int, event_hash: str) -> bytes:
    """The DER ``Extension`` (non-critical) to put among a CRL's extensions."""
    value = _AuditHead({"event_id": event_id, "event_hash": bytes.fromhex(event_hash)}).dump()
    oid = core.ObjectIdentifier(AUDIT_HEAD_OID.dotted_string).dump()
    return der_tlv(0x30, oid + der_tlv(0x04, value))


def read_anchor(der: bytes, issuers: Iterable[x509.Certificate], *,
                name: str) -> CrlAnchor | None:
    """The audit head a CRL carries, once its signature is checked against one of
    ``issuers`` (our root and issuing CA); None for a CRL without one (published before the
    head was carried). Raises ``AnchorError`` for anything that is not a CRL of ours."""
    try:
        crl = x509.load_der_x509_crl(der)
    except ValueError as exc:
        raise AnchorError(f"{name} is not a DER CRL") from exc
    issuer = next((c for c in issuers if c.subject == crl.issuer), None)
    if issuer is None:
        raise AnchorError(f"{name} was not issued by this CA")
    try:
        signed = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (InvalidSignature, UnsupportedAlgorithm, TypeError):
        signed = False
    if not signed:
        raise AnchorError(f"{name} is not signed by this CA")
    try:
        ext = crl.extensions.get_extension_for_oid(AUDIT_HEAD_OID)
    except x509.ExtensionNotFound:
        return None
    try:
        raw = ext.value.value  # type: ignore[attr-defined]
        head = _AuditHead.load(raw, strict=True)
        event_id, digest = int(head["event_id"].native), bytes(head["event_hash"].native)
    except (ValueError, TypeError, AttributeError) as exc:
        raise AnchorError(f"{name} carries a malformed audit head") from exc
    if event_id < 1 or len(digest) != 32:
        raise AnchorError(f"{name} carries a malformed audit head")
    number = crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    return CrlAnchor(event_id=event_id, event_hash=digest.hex(), source=f"{name} (#{number})")
