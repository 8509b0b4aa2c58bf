"""Tables for filings (申报材料): the agent's draft, the sealed version, the service's receipt.

A filing row carries only what is listed and queried (who, which enterprise, digests, the
seal's certificate serial, times); the PDF bytes live in ``filing_documents`` so listing
filings never loads documents. A filing moves ``draft`` → ``accepted`` exactly once; refused
uploads leave no row behind (they are in the audit log). The receipt is kept as the exact
canonical JSON that was timestamped plus the RFC 3161 token, so it can be served again byte
for byte. Same conventions as ``eseal.store.models``: serials lowercase hex, times UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from eseal.store.models import Base, UTCDateTime

FILING_STATUSES = ("draft", "accepted")
DOCUMENT_KINDS = ("draft", "sealed")


class Filing(Base):
    __tablename__ = "filings"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    title: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="draft", index=True)
    created_by: Mapped[str] = mapped_column(Text)  # the audit actor of the agent
    created_by_account: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    draft_sha256: Mapped[str] = mapped_column(String(64))
    draft_size: Mapped[int] = mapped_column(BigInteger)
    draft_pages: Mapped[int] = mapped_column(Integer)
    sealed_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    sealed_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    seal_serial: Mapped[str | None] = mapped_column(String(40), nullable=True)
    seal_signing_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sealed_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # the kind of business (eseal.store.models_enterprise.FilingType); NULL before 0007
    filing_type: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    # why a draft needs attention, e.g. legal_rep_changed (its sealer left)
    flag: Mapped[str | None] = mapped_column(String(32), nullable=True)


class FilingDocument(Base):
    """The bytes of a draft or of its sealed version, exactly as uploaded."""

    __tablename__ = "filing_documents"
    filing_id: Mapped[int] = mapped_column(ForeignKey("filings.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)  # draft|sealed
    data: Mapped[bytes] = mapped_column(LargeBinary)


class FilingReceipt(Base):
    """The receipt body (canonical JSON, as timestamped) and the TSA's RFC 3161 token."""

    __tablename__ = "filing_receipts"
    filing_id: Mapped[int] = mapped_column(ForeignKey("filings.id"), primary_key=True)
    body: Mapped[str] = mapped_column(Text)
    token: Mapped[bytes] = mapped_column(LargeBinary)
    tsa_serial: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BrowserSeal(Base):
    """A seal prepared for a USB-Key in a browser, waiting for its one signature.

    Kept in the database (not in one process's memory) so that any replica can finish it;
    single-use (``used_at`` is set by one conditional UPDATE) and short-lived
    (``expires_at``). The id the page holds is never stored, only its SHA-256.
    """

    __tablename__ = "browser_seals"
    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    filing_id: Mapped[int] = mapped_column(ForeignKey("filings.id"), index=True)
    account_id: Mapped[int] = mapped_column(Integer)
    certificate_serial: Mapped[str] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    pdf: Mapped[bytes] = mapped_column(LargeBinary)  # emptied once used
    region_start: Mapped[int] = mapped_column(BigInteger)
    region_end: Mapped[int] = mapped_column(BigInteger)
    document_digest: Mapped[bytes] = mapped_column(LargeBinary)
    signed_attrs: Mapped[bytes] = mapped_column(LargeBinary)
