"""One error hierarchy and one registry of codes for the whole of eseal.

Every refusal a user can meet carries a stable machine-readable ``code`` (scripts and the
API depend on it), an English and a Chinese message, and, where one input is to blame, the
name of that ``field``. Each code is declared once, in :mod:`eseal.error_codes`, with the
HTTP status it answers with and a generic English and Chinese title; a raise site keeps its
own specific message. The status comes from that declaration, never from the place: one
code answers with one status wherever it is raised (``tests/test_error_registry.py`` reads
the whole package to hold every raise site to it, and ``docs/errors.md`` is generated from
it). The API answers ``{code, message, message_zh, field}`` with that status; the CLI prints
one line and exits non-zero. Anything that is *not* an ``EsealError`` reaching a front door
is a bug, except what :func:`service_failure` recognises: the service's own database going
away, which is a coded 503 like every other failure of the CA's own token or configuration.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from eseal.error_codes import DECLARED

#: what each status means, and the class a raise site uses for it
KINDS: dict[int, tuple[str, str]] = {
    400: ("EsealError", "bad request"),
    401: ("Unauthorized", "not authenticated"),
    403: ("Forbidden", "not allowed"),
    404: ("NotFound", "no such thing"),
    405: ("EsealError", "method not allowed"),
    409: ("Conflict", "clashes with the current state"),
    413: ("TooLarge", "too large"),
    422: ("InvalidInput", "invalid input"),
    429: ("RateLimited", "too many attempts"),
    500: ("EsealError", "a bug"),
    503: ("ServiceUnavailable", "the service itself cannot serve (its token, configuration,"
          " database or a service it depends on)"),
}


@dataclass(frozen=True)
class ErrorCode:
    """One declared code: the status it always answers with and its generic titles."""

    code: str
    status: int
    title: str
    title_zh: str

    @property
    def kind(self) -> str:
        """The ``EsealError`` class a raise site uses for this code's status."""
        return KINDS[self.status][0]


def _registry() -> tuple[dict[str, ErrorCode], list[str]]:
    codes: dict[str, ErrorCode] = {}
    twice: list[str] = []
    for code, status, title, title_zh in DECLARED:
        if code in codes:
            twice.append(code)
            continue
        codes[code] = ErrorCode(code, status, title, title_zh)
    return codes, twice


#: every declared code by name; ``DECLARED_TWICE`` must stay empty (a test says so)
REGISTRY, DECLARED_TWICE = _registry()


def declared(code: str) -> ErrorCode | None:
    return REGISTRY.get(code)


class EsealError(Exception):
    """Base of all expected failures.

    ``status`` is the HTTP status the API answers with: the registry's for a declared code.
    ``default_status`` is a class's status for a code nobody declared (a test fails on
    those); ``None`` on the classes whose codes alone decide (``EsealError``,
    ``TokenError``). A subclass may still say ``status = 503``: it becomes its default.
    """

    default_status: ClassVar[int | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("status")
        if isinstance(own, int):
            cls.default_status = own
            delattr(cls, "status")

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
        entry = REGISTRY.get(code)
        self.code = code
        self.message = message or (entry.title if entry else code)
        self.message_zh = message_zh or (entry.title_zh if entry else "") or self.message
        self.field = field
        self.details = dict(details or {})
        self._status: int | None = None

    @property
    def status(self) -> int:
        if self._status is not None:
            return self._status
        entry = REGISTRY.get(self.code)
        if entry is not None:
            return entry.status
        return self.default_status or 400

    @status.setter
    def status(self, value: int) -> None:
        """Only for an answer relayed from elsewhere (a server's, Starlette's own)."""
        self._status = value

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

    default_status = 422


class NotFound(EsealError):
    default_status = 404


class Conflict(EsealError):
    """The request is well formed but clashes with current state (HTTP 409)."""

    default_status = 409


class Forbidden(EsealError):
    default_status = 403


class Unauthorized(EsealError):
    default_status = 401


class TooLarge(EsealError):
    default_status = 413


class RateLimited(EsealError):
    default_status = 429


class ServiceUnavailable(EsealError):
    """The service itself cannot serve: the CA's own token, key, configuration or database,
    or a service it depends on (HTTP 503). Never the caller's fault, never a 400."""

    default_status = 503


class ConfigError(ServiceUnavailable):
    """Settings or the home directory are unusable; fix the configuration, not the input."""


class TokenError(EsealError):
    """A PKCS#11 token refused or failed an operation (wrong PIN, locked, missing, ...).

    The code decides the status: a holder's wrong PIN is a 403, a missing key a 404. The
    CA's own token is opened as the service's (``TokenSession(service=True)``), and its
    failures become ``CA_TOKEN_*`` service errors (503) instead."""


def service_failure(exc: BaseException) -> EsealError | None:
    """The coded 503 for an infrastructure failure that is not an ``EsealError`` (the
    database unreachable or unusable), or None. Both front doors ask before calling
    something a bug."""
    def database(cls: type) -> bool:
        return cls.__module__.split(".")[0] in _DB_MODULES

    unusable = database(type(exc)) and (
        type(exc).__name__ == "DatabaseError"  # e.g. the file is not a database any more
        or any(database(cls) and cls.__name__ in _DB_DOWN for cls in type(exc).__mro__))
    if unusable:
        return ServiceUnavailable("DATABASE_UNAVAILABLE",
                                  f"the CA's database cannot be used: {type(exc).__name__}",
                                  "CA 数据库不可用")
    return None


#: the database errors (SQLAlchemy's, or a driver's where SQL runs on the raw connection) that
#: mean the database cannot be used at all; an integrity error is not among them (that is a
#: conflict or a bug)
_DB_MODULES = frozenset({"sqlalchemy", "sqlite3", "psycopg", "psycopg2"})
_DB_DOWN = frozenset({"OperationalError", "InterfaceError", "DisconnectionError",
                      "TimeoutError"})
