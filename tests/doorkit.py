"""Helpers for the tests of the service's doors: a served world with a small upload limit,
the app's own route table, a raw-socket client that can lie about lengths and stream chunked
bodies that never end, and the one assertion of the error contract."""

from __future__ import annotations

import json
import re
import select
import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import USCC_A
from tests.worldkit import World, build_world

#: the world's upload limit (PDF bodies), small so a test can cross it cheaply
UPLOAD_LIMIT = 1024 * 1024
CODE = re.compile(r"^[A-Z][A-Z0-9_]+$")
PATH_VALUES = {"uscc": USCC_A, "serial": "01", "label": "nokey", "filing_id": "1",
               "account_id": "1", "encoded": "AAAA"}


def door_world(base: Path) -> Iterator[World]:
    """A served CA (officer, auditor, agent A) whose upload limit is :data:`UPLOAD_LIMIT`."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ESEAL_UPLOAD_LIMIT_BYTES", str(UPLOAD_LIMIT))
        yield from build_world(base, {"a-agent": ("王五", "agent", USCC_A)})


def app_routes(world: World) -> list[tuple[str, str, Any, Any]]:
    """(method, path template, route, body rule) for every route the service serves."""
    from eseal.api.app import create_app
    from eseal.api.limits import route_rules

    app = create_app(world.settings)
    return sorted(((method, route.path, route, rule)
                   for route, rules in route_rules(app, world.settings)
                   for method, rule in rules.items()), key=lambda r: (r[1], r[0]))


def fill(template: str, **values: str) -> str:
    """A concrete path for a route template (``{name}`` and ``{name:path}``)."""
    def value(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[0]
        return values.get(name, PATH_VALUES.get(name, "x"))
    return re.sub(r"\{([^}]+)\}", value, template)


def assert_contract(status: int, body: bytes | str | dict[str, Any], *,
                    code: str | None = None, field: str | None = None) -> dict[str, Any]:
    """A non-2xx answer carries ``{code, message, message_zh}`` and ``field`` where one
    input is to blame; returns it."""
    assert status >= 400, status
    assert status < 500, (status, body)
    data = body if isinstance(body, dict) else json.loads(body)
    assert {"code", "message", "message_zh"} <= set(data), data
    assert CODE.match(data["code"]), data
    assert data["message"] and data["message_zh"], data
    assert re.search(r"[\u4e00-\u9fff]", data["message_zh"]), data
    if code is not None:
        assert data["code"] == code, data
    if field is not None:
        assert data.get("field") == field, data
    return dict(data)


def check(response: httpx.Response, **expected: Any) -> dict[str, Any]:
    return assert_contract(response.status_code, response.content, **expected)


@dataclass
class RawReply:
    status: int | None  # None: the connection was reset before an answer could be read
    body: bytes
    sent: int  # body bytes the client managed to send

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


def send_raw(url: str, method: str, path: str, chunks: Iterable[bytes], *,
             content_length: int | None = None, chunked: bool = False, finish: bool = True,
             headers: dict[str, str] | None = None, timeout: float = 20) -> RawReply:
    """Send a request over a bare socket: any Content-Length (a lie too), chunked framing,
    a body from a generator that stops as soon as the server answers or hangs up."""
    host, port = url.removeprefix("http://").split(":")
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if content_length is not None:
        head.append(f"Content-Length: {content_length}")
    if chunked:
        head.append("Transfer-Encoding: chunked")
    sent = 0
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        try:
            for chunk in chunks:
                if select.select([sock], [], [], 0)[0]:
                    break  # the server has answered (or hung up): stop sending
                sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
                             if chunked else chunk)
                sent += len(chunk)
            else:
                if chunked and finish:
                    sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return RawReply(*_read_reply(sock), sent=sent)


def _read_reply(sock: socket.socket) -> tuple[int | None, bytes]:
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            part = sock.recv(65536)
            if not part:
                break
            data += part
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 "):
            return None, b""
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        want = int(length.group(1)) if length else None
        while want is not None and len(body) < want:
            part = sock.recv(65536)
            if not part:
                break
            body += part
        return int(head[9:12]), body
    except (ConnectionResetError, TimeoutError):
        return None, b""


def json_of_size(size: int) -> bytes:
    """A JSON object of exactly ``size`` bytes (``size`` ≥ 10)."""
    return b'{"pad":"' + b"a" * (size - 10) + b'"}'


def endless(chunk: int = 64 * 1024, total: int = 400 * 1024 * 1024) -> Iterator[bytes]:
    """``total`` bytes of a JSON-looking body, one bounded chunk at a time."""
    block = b"a" * chunk
    sent = 0
    yield b'{"pad":"'
    while sent < total:
        yield block
        sent += chunk
