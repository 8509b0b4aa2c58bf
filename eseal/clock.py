"""The one clock of eseal.

Certificates, renewal windows, challenges and notices all ask this module for the time, so
tests and the demo can move time forward with ``ESEAL_NOW`` instead of sleeping. Outside
``ESEAL_ENV=test`` or ``ESEAL_ENV=demo`` an ``ESEAL_NOW`` is refused: a production CA whose
clock can be set from the environment could back-date certificates.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from eseal.errors import ConfigError

ALLOWED_ENVIRONMENTS = frozenset({"test", "demo"})


def parse_time(text: str, *, field: str = "time") -> datetime:
    """Parse an ISO 8601 instant; a naive value is taken as UTC."""
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ConfigError(
            "BAD_TIME",
            f"{field} is not an ISO 8601 time: {text!r}",
            f"{field} 不是 ISO 8601 时间：{text!r}",
            field=field,
        ) from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def now() -> datetime:
    """The current time in UTC, or ``ESEAL_NOW`` in test and demo environments."""
    fake = os.environ.get("ESEAL_NOW")
    if not fake:
        return datetime.now(UTC)
    if os.environ.get("ESEAL_ENV", "") not in ALLOWED_ENVIRONMENTS:
        raise ConfigError(
            "CLOCK_OVERRIDE_REFUSED",
            "ESEAL_NOW is only honoured with ESEAL_ENV=test or ESEAL_ENV=demo",
            "ESEAL_NOW 仅在 ESEAL_ENV=test 或 demo 时有效",
            field="ESEAL_NOW",
        )
    return parse_time(fake, field="ESEAL_NOW")
