"""One error hierarchy for the whole of eseal.

Every refusal a user can meet carries a stable machine-readable ``code`` (scripts and the
API depend on it), an English message and a Chinese message, and, where one input is to
blame, the name of that ``field``. The API maps the class to an HTTP status; the CLI prints
one line and exits non-zero. Anything that is *not* an ``EsealError`` reaching a front door
is a bug.
"""

from __future__ import annotations

from typing import Any


class EsealError(Exception):
    """Base of all expected failures. ``status`` is the HTTP status the API answers with."""

    status: int = 400

    def __init__(
        self,
        code: str,
        message: str,
        message_zh: str = "",
        *,
        field: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.message_zh = message_zh or message
        self.field = field
        self.details = dict(details or {})

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the API sends and ``--json`` CLI output prints."""
        body: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "message_zh": self.message_zh,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body

    def one_line(self) -> str:
        """The single line the CLI prints: code, English, Chinese."""
        where = f" [{self.field}]" if self.field else ""
        return f"error {self.code}{where}: {self.message} / {self.message_zh}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class InvalidInput(EsealError):
    """The caller sent something malformed or against policy (HTTP 422)."""

    status = 422


class NotFound(EsealError):
    status = 404


class Conflict(EsealError):
    """The request is well formed but clashes with current state (HTTP 409)."""

    status = 409


class Forbidden(EsealError):
    status = 403


class Unauthorized(EsealError):
    status = 401


class TooLarge(EsealError):
    status = 413


class RateLimited(EsealError):
    status = 429


class ConfigError(EsealError):
    """Settings or the home directory are unusable; fix the configuration, not the input."""

    status = 400


class TokenError(EsealError):
    """A PKCS#11 token refused or failed an operation (wrong PIN, locked, missing, ...)."""

    status = 400
