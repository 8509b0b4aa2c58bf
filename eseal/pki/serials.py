"""Serial numbers as eseal shows them: lowercase hex, no separators, no leading zeros."""

from __future__ import annotations

import secrets

from eseal.errors import InvalidInput


def serial_hex(value: int) -> str:
    return format(value, "x")


def normalize_serial(text: str) -> str:
    """Accept ``0A:1B...``, ``0x0a1b...`` or plain hex; return the canonical lowercase form."""
    raw = text.strip().lower()
    if raw.startswith("0x"):
        raw = raw[2:]
    raw = raw.replace(":", "")
    if not raw or any(c not in "0123456789abcdef" for c in raw) or len(raw) > 42:
        raise InvalidInput("SERIAL_INVALID", f"not a certificate serial number: {text!r}",
                           f"不是有效的证书序列号：{text!r}", field="serial")
    return serial_hex(int(raw, 16))


def random_serial() -> int:
    """A fresh positive serial with 128 random bits.

    RFC 5280 allows at most 20 octets and requires a positive integer. When the top random
    bit is set, DER prepends a 0x00 octet to keep the INTEGER positive, giving 17 octets: still
    far inside the limit, so no bit is sacrificed. Zero (probability 2^-128) is redrawn.
    """
    while True:
        serial = secrets.randbits(128)
        if serial:
            return serial
