"""The CA's own records as the verifier's live status: what ``POST /verify`` and the filing
intake know that an offline relying party does not.

A seal without a trusted timestamp is judged at the validation time (ETSI EN 319 102-1); an
offline verifier can only read the CRLs in the file, which a compromised key's holder chose
from before the revocation. The service *is* the CA, so it answers from its database instead
— a revoked or frozen certificate is known the moment the officer acts, before any CRL is
published. This module turns the ``certificates`` table into the typed
:data:`~eseal.signing.revocation.LiveStatusLookup` the verifier consults; it lives in ``api``
because it needs both the store (``ca``'s records) and the verifier's types (``signing``).
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from eseal.ca.authority import Authority
from eseal.signing.revocation import LiveStatus, LiveStatusLookup, effective
from eseal.store.models import Certificate

__all__ = ["live_status_lookup"]

_STATES = {"good": "good", "hold": "on_hold", "revoked": "revoked"}


def _reason(name: str | None, state: str) -> str:
    """The RFC 5280 reason as ``cryptography`` spells it (``keyCompromise``: ``key_compromise``)."""
    if name is None:
        return "certificate_hold" if state == "on_hold" else "unspecified"
    try:
        return x509.ReasonFlags(name).name
    except ValueError:
        return "unspecified"


def live_status_lookup(auth: Authority) -> LiveStatusLookup:
    """A lookup answering for the certificates this CA issued — the very certificate, byte
    for byte, not merely its serial — and ``None`` for any other."""

    def lookup(cert: x509.Certificate) -> LiveStatus | None:
        serial = format(cert.serial_number, "x")
        with auth.db.read() as s:
            row = s.get(Certificate, serial)
            if row is None or bytes(row.der) != cert.public_bytes(serialization.Encoding.DER):
                return None
            status, revoked_at = row.status, row.revoked_at
            reason_name, invalidity = row.revocation_reason, row.invalidity_date
        state = _STATES.get(status)
        if state is None:  # a state this code does not know: fail closed
            state = "revoked"
        if state == "good":
            return LiveStatus("good")
        reason = _reason(reason_name, state)
        since = effective(revoked_at, reason, invalidity) if revoked_at is not None else None
        return LiveStatus(state, since, reason)  # type: ignore[arg-type]

    return lookup
