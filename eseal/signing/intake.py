"""What the service checks before it accepts a filing: the draft, the sealed upload, the receipt.

Journey 3 of DESIGN.md: an agent uploads a draft, the legal representative seals it on their
own machine and uploads the result. The service must be sure the sealed file is *that* draft
with *that* enterprise's seal and nothing else, because the receipt it signs says so. The
checks here are pure (bytes and facts in, a result or an ``EsealError`` out); the caller
supplies what only the CA's records know — which seal certificates of the enterprise are
current, their status now, and when they were frozen.

A sealed upload is accepted only if

1. it is the stored draft's exact bytes followed by exactly one incremental update (so the
   agent's content cannot have been swapped, and nothing else rode along), and that update
   adds exactly one signature, a seal (not a document timestamp) that covers the whole file;
2. the verifier (:mod:`eseal.signing.verify`) finds nothing *invalid* anywhere in the file:
   the seal is intact, its certificate chains to the CA's root, it is a seal certificate;
3. the seal carries a signature timestamp that validates against the CA's root (the receipt
   relies on a proven signing time, not the signer's claim);
4. the certificate names this enterprise's credit code and is one of its *current* seal
   certificates (a renewed-away or re-keyed certificate is not), good now, and was not frozen
   at the timestamped signing time (give or take ``TIMESTAMP_UNCERTAINTY``: a seal that
   cannot be ordered against a freeze is refused).

Drafts are refused when their form fields would show a relying party something else than
they hold (an appearance that disagrees with the value, /NeedAppearances, XFA): see
:mod:`eseal.signing.draft_forms` for why we refuse rather than flatten.

The only verifier doubt tolerated is ``REVOCATION_UNKNOWN`` (a B-T seal carries no revocation
data): the service is the CA and answers that question from its own records (point 4).
The verifier is given the same records as its live status (``live_status``), as ``POST
/verify`` is; revocation findings that come from them are answered by point 4's refusals.

Receipts: the service answers an accepted filing with a JSON receipt signed by its own
timestamp authority (:mod:`eseal.signing.receipts`, which also verifies one offline).

Where each part lives: the draft checks in :mod:`eseal.signing.draft_check`; that the
upload's update adds only a seal in :mod:`eseal.signing.seal_update`; the acceptance rule
(points 2–4) in :mod:`eseal.signing.sealed_upload`; receipts in :mod:`eseal.signing.receipts`.
This module is the intake's contract and the one name the service imports.
"""

from __future__ import annotations

from eseal.signing.draft_check import DraftInfo, check_draft
from eseal.signing.receipts import (
    RECEIPT_VERSION,
    ReceiptCheck,
    canonical_json,
    receipt_imprint,
    verify_receipt,
)
from eseal.signing.sealed_upload import (
    FROM_RECORDS,
    TIMESTAMP_UNCERTAINTY,
    TOLERATED_DOUBTS,
    AcceptedSeal,
    EnterpriseSeals,
    check_sealed_upload,
)

__all__ = [
    "FROM_RECORDS",
    "RECEIPT_VERSION",
    "TIMESTAMP_UNCERTAINTY",
    "TOLERATED_DOUBTS",
    "AcceptedSeal",
    "DraftInfo",
    "EnterpriseSeals",
    "ReceiptCheck",
    "canonical_json",
    "check_draft",
    "check_sealed_upload",
    "receipt_imprint",
    "verify_receipt",
]
