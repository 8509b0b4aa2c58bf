"""The tables of eseal (SQLAlchemy 2 declarative models).

The store room knows nothing of cryptography or HTTP: certificates are kept as DER bytes with
the few fields the CA queries by; serials are lowercase hex strings; times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, hands back aware UTC: SQLite keeps no time zone."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


class Base(DeclarativeBase):
    pass


class CaKey(Base):
    """A key of the authority on the CA token and, where it has one, its certificate."""

    __tablename__ = "ca_keys"
    role: Mapped[str] = mapped_column(String(32), primary_key=True)  # root|issuing|ocsp|tsa|audit
    key_uri: Mapped[str] = mapped_column(Text)
    certificate_der: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Enterprise(Base):
    __tablename__ = "enterprises"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uscc: Mapped[str] = mapped_column(String(18), unique=True)
    name: Mapped[str] = mapped_column(Text)  # exactly as registered, never normalised
    legal_rep: Mapped[str] = mapped_column(Text)
    contact_email: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active|deregistered
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Certificate(Base):
    __tablename__ = "certificates"
    serial: Mapped[str] = mapped_column(String(40), primary_key=True)  # lowercase hex
    issuer_role: Mapped[str] = mapped_column(String(32))  # root|issuing
    enterprise_id: Mapped[int | None] = mapped_column(
        ForeignKey("enterprises.id"), nullable=True, index=True)
    profile: Mapped[str] = mapped_column(String(32))
    holder: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)  # RFC 4514 string, for display
    spki_sha256: Mapped[str] = mapped_column(String(64), index=True)
    key_id: Mapped[str] = mapped_column(String(40))  # SKI hex == CKA_ID on the token
    not_before: Mapped[datetime] = mapped_column(UTCDateTime)
    not_after: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="good")  # good|hold|revoked
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revocation_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    invalidity_date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    status_version: Mapped[int] = mapped_column(Integer, default=0)
    key_certified_at: Mapped[datetime] = mapped_column(UTCDateTime)  # first cert of this key
    renewed_from: Mapped[str | None] = mapped_column(String(40), nullable=True)
    replaced_by: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    token_label: Mapped[str | None] = mapped_column(Text, nullable=True)
    der: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        Index("ix_certificates_enterprise_profile", "enterprise_id", "profile"),
        # the console's orders (eseal.ra.certificate_search; migration 0009): each ends in
        # the serial so keyset pages are stable; (not_after, serial) also serves expiry ranges
        Index("ix_certificates_created_at_serial", "created_at", "serial"),
        Index("ix_certificates_not_after_serial", "not_after", "serial"),
        # a state (status and expiry; and profile) counted from the index alone; replaces
        # the single-column status index
        Index("ix_certificates_status_not_after", "status", "not_after", "profile"),
        # a holder substring is tested on this index, not on the wide rows (DER and all)
        Index("ix_certificates_holder_serial", "holder", "serial"),
    )


class FreezeWindow(Base):
    """When a certificate was on hold: a seal made inside a window stays invalid afterwards."""

    __tablename__ = "freeze_windows"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    serial: Mapped[str] = mapped_column(ForeignKey("certificates.serial"), index=True)
    frozen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    unfrozen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class StatusCounter(Base):
    """Monotonic counters shared by processes: CRL numbers, TSA serials, status epoch."""

    __tablename__ = "counters"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class CrlRecord(Base):
    __tablename__ = "crls"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    issuer_role: Mapped[str] = mapped_column(String(32), index=True)
    number: Mapped[int] = mapped_column(BigInteger)
    this_update: Mapped[datetime] = mapped_column(UTCDateTime)
    next_update: Mapped[datetime] = mapped_column(UTCDateTime)
    der: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (UniqueConstraint("issuer_role", "number"),)


class TokenRecord(Base):
    """A USB-Key the CA handed out: its holder and its SO PIN, encrypted (as CAs keep them)."""

    __tablename__ = "tokens"
    label: Mapped[str] = mapped_column(String(64), primary_key=True)
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"), nullable=True)
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)  # legal_rep|agent|officer
    holder: Mapped[str | None] = mapped_column(Text, nullable=True)
    so_pin_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class EnrollmentCode(Base):
    __tablename__ = "enrollment_codes"
    code_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # staff (officer/auditor) codes name no enterprise; migration 0003 relaxes the column
    enterprise_id: Mapped[int | None] = mapped_column(ForeignKey("enterprises.id"),
                                                      nullable=True)
    role: Mapped[str] = mapped_column(String(16))
    holder: Mapped[str] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(Text)


class AuditEvent(Base):
    """One append-only, hash-chained record of a state change or a refusal."""

    __tablename__ = "audit_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(16))  # ok|refused
    target: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    # the audit search (routes_audit; migration 0009): an enterprise's events by target,
    # an action or its prefix in id order, a time range
    __table_args__ = (
        Index("ix_audit_events_target", "target"),
        Index("ix_audit_events_action_id", "action", "id"),
        Index("ix_audit_events_at", "at"),
    )


class AuditCheckpoint(Base):
    """A signature by the CA token's audit key over the chain head at some event."""

    __tablename__ = "audit_checkpoints"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(Integer)
    event_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    # the checkpoint chain (eseal.audit.head); NULL on checkpoints signed before it
    seq: Mapped[int | None] = mapped_column(Integer, nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Outbox(Base):
    """Mail waiting to be sent; the Message-ID is fixed when the row is written."""

    __tablename__ = "outbox"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(Text, unique=True)
    recipient: Mapped[str] = mapped_column(Text)
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    dedupe_key: Mapped[str] = mapped_column(Text, unique=True)
    sent: Mapped[bool] = mapped_column(Boolean, default=False)
