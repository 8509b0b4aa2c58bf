"""Chrome/Firefox native messaging on stdio: a 4-byte native-endian length, then UTF-8 JSON.

The browser starts the host for each ``sendNativeMessage`` and talks to it over the host's
stdin and stdout, so stdout belongs to the protocol: one stray ``print`` or a traceback there
would be read as a (broken) message. :class:`Channel` keeps the real stdout for itself and
points ``sys.stdout`` at stderr; every refusal is a JSON error reply with eseal's code and
both messages. A message the host cannot frame (a length of 0 or over 1 MB, a stream cut
mid-message) is answered once and ends the conversation: after a bad length the stream cannot
be re-synchronised.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import IO, Any

from eseal.errors import EsealError

MAX_MESSAGE = 1024 * 1024  # Chrome's limit host -> browser; we hold the browser to it too
_LENGTH = struct.Struct("=I")


class FramingError(EsealError):
    """The stream itself is unusable: answer once, then stop reading."""


def error_reply(err: EsealError) -> dict[str, Any]:
    return {"ok": False, "error": err.to_dict()}


class Channel:
    """The host's side of one native-messaging connection."""

    def __init__(self, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None) -> None:
        self._in = stdin or sys.stdin.buffer
        self._out = stdout or sys.stdout.buffer
        if stdout is None:
            sys.stdout = sys.stderr  # nothing but replies may reach the browser's pipe

    def _read_exact(self, n: int) -> bytes:
        chunks: list[bytes] = []
        while n:
            chunk = self._in.read(n)
            if not chunk:
                break
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def read(self) -> Any:
        """The next message (parsed JSON); None at a clean end of input."""
        head = self._read_exact(_LENGTH.size)
        if not head:
            return None
        if len(head) < _LENGTH.size:
            raise FramingError("MESSAGE_TRUNCATED", "the length prefix was cut short",
                               "消息长度前缀不完整", field="length")
        (length,) = _LENGTH.unpack(head)
        if length == 0 or length > MAX_MESSAGE:
            raise FramingError("MESSAGE_TOO_LARGE" if length else "MESSAGE_EMPTY",
                               f"a message is 1 to {MAX_MESSAGE} bytes, this one declares "
                               f"{length}", f"消息长度应为 1 到 {MAX_MESSAGE} 字节，实际声明为 "
                               f"{length}", field="length")
        body = self._read_exact(length)
        if len(body) < length:
            raise FramingError("MESSAGE_TRUNCATED",
                               f"the message ended after {len(body)} of {length} bytes",
                               f"消息在 {len(body)}/{length} 字节处中断", field="length")
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise EsealError("MESSAGE_NOT_JSON", "the message is not UTF-8 JSON",
                             "消息不是 UTF-8 编码的 JSON", field="message") from None

    def write(self, message: dict[str, Any]) -> None:
        body = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        if len(body) > MAX_MESSAGE:
            body = json.dumps(error_reply(EsealError(
                "REPLY_TOO_LARGE", "the reply would exceed 1 MB", "回复超过 1 MB"))).encode()
        self._out.write(_LENGTH.pack(len(body)) + body)
        self._out.flush()
