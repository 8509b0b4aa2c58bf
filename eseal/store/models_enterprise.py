"""Tables of the enterprise's changes over time: its names, its legal representatives, the
kinds of business it files (filing types) and who may file which, its emergency contacts,
and remote unblock requests for its USB-Keys.

Why tables and not columns: the registered name and the legal representative change, and
the CA must still say who the enterprise *was* when an old seal was made; filing types are
data the authority extends without a release; rights belong to the account (not the
certificate), so changing them re-issues nothing. Same conventions as ``eseal.store.models``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from eseal.store.models import Base, UTCDateTime


class EnterpriseName(Base):
    """One registered name the enterprise held, from ``valid_from`` until ``valid_to``."""

    __tablename__ = "enterprise_names"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    changed_by: Mapped[str] = mapped_column(Text)


class LegalRepTerm(Base):
    """One legal representative's term, from ``valid_from`` until ``valid_to``."""

    __tablename__ = "legal_rep_terms"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime)
    valid_to: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    changed_by: Mapped[str] = mapped_column(Text)


class FilingType(Base):
    """A kind of business filed with the authority (年度报告, 变更登记, 备案, ...)."""

    __tablename__ = "filing_types"
    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    name_zh: Mapped[str] = mapped_column(Text)
    name_en: Mapped[str] = mapped_column(Text)


class AccountRightsSet(Base):
    """That an account's rights were set by its legal representative: from then on it holds
    exactly the types in ``account_rights`` (before, an agent holds every type)."""

    __tablename__ = "account_rights_set"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    set_by: Mapped[str] = mapped_column(Text)
    set_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AccountRight(Base):
    """One filing type an account may submit."""

    __tablename__ = "account_rights"
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    filing_type: Mapped[str] = mapped_column(ForeignKey("filing_types.code"), primary_key=True)


class EmergencyContact(Base):
    """Someone to reach when the legal representative cannot be (应急联系人)."""

    __tablename__ = "emergency_contacts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enterprise_id: Mapped[int] = mapped_column(ForeignKey("enterprises.id"), index=True)
    name: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    phone: Mapped[str] = mapped_column(String(16))
    email: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class UnblockRequest(Base):
    """A remote unblock (远程解锁) of a locked USB-Key: asked, approved, redeemed, done.

    The one-time authorisation is stored only as its SHA-256; the SO PIN the holder's side
    sets after unblocking is kept encrypted here until the holder confirms it is on the key.
    """

    __tablename__ = "unblock_requests"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_label: Mapped[str] = mapped_column(ForeignKey("tokens.label"), index=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"),
                                                      nullable=True)
    holder_role: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # requested|approved|redeemed|done
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(Text, nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    authorisation_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    redeemed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_so_pin_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
