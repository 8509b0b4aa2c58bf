"""What the auth room needs from the opened CA, named as a protocol.

Why a protocol: login and accounts read the database and settings, check a presented
certificate against the CA's certificates and append to the audit log, but must not import
the CA (``auth -> store, pki`` only). ``eseal.ca.authority.AuthContext`` satisfies this
structurally; nothing here can sign.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from cryptography import x509
from sqlalchemy.orm import Session

from eseal.settings import Settings
from eseal.store import Database


class AuditAppender(Protocol):
    """The audit log's append, inside the caller's write transaction."""

    def append(self, session: Session, *, actor: str, action: str, outcome: str = "ok",
               target: str | None = None, details: dict[str, Any] | None = None) -> int: ...


class AuthContext(Protocol):
    """An opened eseal home as the auth room sees it."""

    settings: Settings
    db: Database

    @property
    def audit(self) -> AuditAppender: ...

    def certificate(self, role: str) -> x509.Certificate: ...

    def change(self, *, actor: str, action: str, target: str | None = None,
               details: dict[str, Any] | None = None) -> AbstractContextManager[Session]: ...


__all__ = ["AuditAppender", "AuthContext"]
