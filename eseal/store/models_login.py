"""Tables of USB-Key login: accounts, challenges, sessions, attempts, throttles, networks.

Core tables (not ORM classes): the login path runs as plain prepared SQL, thousands of times
a second, and never needs identity-mapped objects. They share ``Base.metadata`` with the rest
of the store, so Alembic sees one schema (created by migration 0003).
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, ForeignKey, Integer, String, Table, Text

from eseal.store.models import Base
from eseal.store.models import UTCDateTime as _UTC

metadata = Base.metadata


accounts = Table(
    "accounts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("identity", String(300), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("name", Text, nullable=False),
    Column("enterprise_id", Integer, ForeignKey("enterprises.id"), nullable=True, index=True),
    Column("status", String(16), nullable=False),  # active|disabled
    Column("failures", Integer, nullable=False),  # possession-proving, since last success
    Column("locked_until", _UTC, nullable=True),
    Column("created_at", _UTC, nullable=False),
    Column("last_login_at", _UTC, nullable=True),
)

# Each B-tree a login writes costs a page write and, with two processes, page re-reads: the
# login tables carry only the indexes their queries need.
login_challenges = Table(
    "login_challenges", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # insertion order: purging
    Column("nonce_hash", String(64), nullable=False, unique=True),  # SHA-256: never the nonce
    Column("origin", Text, nullable=False),
    Column("purpose", String(16), nullable=False),
    Column("issued_at", _UTC, nullable=False),
    Column("expires_at", _UTC, nullable=False),
    Column("used_at", _UTC, nullable=True),
    Column("address", Text, nullable=True),
)

# Keyed by the token's SHA-256 (the token itself is never stored); the session's opaque id
# is the first 32 hex digits of that hash, found by a range on the key.
login_sessions = Table(
    "login_sessions", metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("account_id", Integer, ForeignKey("accounts.id"), nullable=False),
    Column("certificate_serial", String(40), nullable=False, index=True),
    Column("created_at", _UTC, nullable=False),
    Column("last_seen_at", _UTC, nullable=False),
    Column("absolute_expires_at", _UTC, nullable=False),
    Column("ended_at", _UTC, nullable=True),
    Column("end_reason", String(32), nullable=True),
    Column("address", Text, nullable=True),
    sqlite_with_rowid=False,
)

login_attempts = Table(
    "login_attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # time order
    Column("at", _UTC, nullable=False),
    Column("account_id", Integer, nullable=True),
    Column("enterprise_id", Integer, nullable=True, index=True),
    Column("certificate_serial", String(40), nullable=True),
    Column("address", Text, nullable=True),
    Column("network", Text, nullable=True),
    Column("user_agent", Text, nullable=True),
    Column("result", String(16), nullable=False),  # ok|refused
    Column("code", String(64), nullable=False),
    Column("possession", Boolean, nullable=False),
    Column("new_network", Boolean, nullable=False),
    Column("session_id", String(32), nullable=True),
)

login_throttles = Table(
    "login_throttles", metadata,
    Column("key", String(200), primary_key=True),  # addr:<ip> | cert:<serial>
    Column("failures", Integer, nullable=False),
    Column("window_start", _UTC, nullable=False),
    Column("blocked_until", _UTC, nullable=True),
)

account_networks = Table(
    "account_networks", metadata,
    Column("account_id", Integer, ForeignKey("accounts.id"), primary_key=True),
    Column("network", String(64), primary_key=True),
    Column("first_seen", _UTC, nullable=False),
)
