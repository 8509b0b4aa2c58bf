"""The ETSI EN 319 102-1 indication and sub-indication a signature's findings amount to.

Our findings have their own stable codes (they say more than ETSI's vocabulary), but a
relying party's tooling speaks ETSI: TOTAL-PASSED, TOTAL-FAILED or INDETERMINATE with a
sub-indication such as HASH_FAILURE or REVOKED_NO_POE. This is the one table from our codes
to theirs, and the rule that picks the most fundamental finding when several lead to the
verdict.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESSubIndic

from eseal.signing.report import Finding

__all__ = ["ADES_BY_CODE", "ades_indication"]

# The ETSI sub-indication each of our finding codes corresponds to.
ADES_BY_CODE: dict[str, AdESSubIndic] = {
    "DIGEST_MISMATCH": AdESFailure.HASH_FAILURE,
    "SIGNATURE_INVALID": AdESFailure.SIG_CRYPTO_FAILURE,
    "CERT_REVOKED": AdESFailure.REVOKED,
    "CERT_ON_HOLD": AdESFailure.REVOKED,
    "CA_REVOKED": AdESFailure.REVOKED,
    "CERT_NOT_YET_VALID": AdESFailure.NOT_YET_VALID,
    "CERT_EXPIRED_AT_SIGNING": AdESIndeterminate.OUT_OF_BOUNDS_NOT_REVOKED,
    "NOT_A_SEAL_CERTIFICATE": AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE,
    "SEAL_KEY_USAGE": AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE,
    "CHAIN_UNTRUSTED": AdESIndeterminate.NO_CERTIFICATE_CHAIN_FOUND,
    "REVOCATION_UNKNOWN": AdESIndeterminate.TRY_LATER,
    "REVOKED_NO_POE": AdESIndeterminate.REVOKED_NO_POE,
    "LIVE_REVOKED_NO_POE": AdESFailure.REVOKED,
    "LIVE_ON_HOLD_NO_POE": AdESFailure.REVOKED,
    "REVOCATION_STALE": AdESIndeterminate.TRY_LATER,
    "TIMESTAMP_AUTHORITY_REVOKED": AdESIndeterminate.NO_POE,
    "EXPIRED_NO_POE": AdESIndeterminate.OUT_OF_BOUNDS_NO_POE,
    "TIMESTAMP_UNTRUSTED": AdESIndeterminate.NO_POE,
    "TIMESTAMP_INVALID": AdESFailure.HASH_FAILURE,
    "SIGNING_TIME_IN_FUTURE": AdESIndeterminate.TIMESTAMP_ORDER_FAILURE,
    "NO_SIGNING_CERTIFICATE": AdESIndeterminate.NO_SIGNING_CERTIFICATE_FOUND,
}

# When several findings lead to the verdict, the sub-indication names the most fundamental.
_ADES_PRIORITY = [
    "DIGEST_MISMATCH", "SIGNATURE_INVALID", "CERT_REVOKED", "CA_REVOKED", "CERT_ON_HOLD",
    "LIVE_REVOKED_NO_POE", "LIVE_ON_HOLD_NO_POE",
    "NO_SIGNING_CERTIFICATE", "CHAIN_UNTRUSTED", "NOT_A_SEAL_CERTIFICATE", "SEAL_KEY_USAGE",
]


def ades_indication(verdict: str, problems: Sequence[Finding]) -> tuple[str, str | None]:
    """(indication, sub-indication) for a signature with ``verdict`` and ``problems``."""
    if verdict == "valid":
        return "TOTAL-PASSED", None
    wanted = "invalid" if verdict == "invalid" else "indeterminate"
    rank = {code: i for i, code in enumerate(_ADES_PRIORITY)}
    ordered = sorted(problems, key=lambda p: rank.get(p.code, len(rank)))
    for p in ordered:
        if p.severity == wanted:
            sub = ADES_BY_CODE.get(p.code)
            if sub is None:
                sub = AdESFailure.FORMAT_FAILURE if wanted == "invalid" \
                    else AdESIndeterminate.GENERIC
            label = "TOTAL-FAILED" if verdict == "invalid" else "INDETERMINATE"
            return label, sub.standard_name
    return ("TOTAL-FAILED" if verdict == "invalid" else "INDETERMINATE"), None
