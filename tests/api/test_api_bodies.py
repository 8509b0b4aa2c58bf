"""Every request body is bounded before it is parsed (issue 13, item 6).

The limits come from one table (``eseal.api.limits``), enforced by one middleware
(``eseal.api.door``) in front of every route, so the tests walk the app's own route list: a
route added later is covered, or the service refuses to start. Attacks are built from
scratch against a real ``eseal serve``: a declared length over the limit, a length that lies,
chunked bodies that never end, one byte over versus exactly at the limit, and twenty
clients each streaming 400 MB while the server's memory is watched from /proc.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from eseal.api.limits import JSON_LIMIT, NO_BODY_LIMIT
from tests.doorkit import (
    UPLOAD_LIMIT,
    app_routes,
    assert_contract,
    check,
    door_world,
    endless,
    fill,
    json_of_size,
    send_raw,
)
from tests.worldkit import World


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    yield from door_world(tmp_path_factory.mktemp("bodies"))


@pytest.fixture(scope="module")
def routes(world: World) -> list[tuple[str, str, Any, Any]]:
    return app_routes(world)


def _json_routes(routes: list[tuple[str, str, Any, Any]]) -> list[tuple[str, str, int]]:
    return [(m, p, rule.limit) for m, p, _, rule in routes if rule.kind == "json"]


def test_every_route_has_a_body_rule_from_the_one_table(routes: list[Any]) -> None:
    kinds = {(m, p): rule for m, p, _, rule in routes}
    assert len(kinds) > 40
    for (method, path), rule in kinds.items():
        assert rule.kind in ("json", "raw", "none"), (method, path)
        if rule.kind == "json":
            assert 0 < rule.limit <= 1024 * 1024, (method, path, rule)
        if rule.kind == "none":
            assert rule.limit == NO_BODY_LIMIT
    for body_route in (("POST", "/auth/verify"), ("POST", "/enroll"),
                       ("POST", "/verify/receipt"), ("POST", "/officer/enterprises")):
        assert kinds[body_route].kind == "json"
    for upload in (("POST", "/filings"), ("POST", "/verify"),
                   ("POST", "/filings/{filing_id}/seal")):
        assert kinds[upload].kind == "raw" and kinds[upload].limit == UPLOAD_LIMIT
    assert kinds[("POST", "/ocsp")].kind == kinds[("POST", "/tsa")].kind == "raw"


def test_a_body_the_door_cannot_bound_stops_the_service_from_starting(world: World) -> None:
    """A raw-body route missing from the table fails closed when the table is built."""
    from fastapi import FastAPI, Request

    from eseal.api.limits import route_rules

    app = FastAPI()

    @app.post("/new-upload", openapi_extra={"requestBody": {"content": {"text/csv": {}}}})
    async def new_upload(request: Request) -> None:  # pragma: no cover - never called
        await request.body()

    with pytest.raises(RuntimeError, match="no limit"):
        route_rules(app, world.settings)


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_json_body_one_byte_over_its_limit_is_413_on_every_json_route(
        world: World, routes: list[Any], framing: str) -> None:
    for method, path, limit in _json_routes(routes):
        body = json_of_size(limit + 1)
        chunked = framing == "chunked"
        pieces = [body[i:i + 8192] for i in range(0, len(body), 8192)]
        reply = send_raw(world.server.url, method, fill(path), pieces, chunked=chunked,
                         content_length=None if chunked else len(body))
        assert reply.status == 413, (method, path, reply)
        data = assert_contract(413, reply.body, code="BODY_TOO_LARGE", field="body")
        assert data["details"]["limit_bytes"] == limit


def test_a_json_body_exactly_at_its_limit_passes_the_door(world: World,
                                                          routes: list[Any]) -> None:
    for method, path, limit in _json_routes(routes):
        answer = httpx.request(method, world.server.url + fill(path),
                               content=json_of_size(limit),
                               headers={"Content-Type": "application/json"}, timeout=30)
        assert answer.status_code != 413, (method, path, answer.text[:200])
        check(answer)  # 401 or 422: the route judged it, under the contract


def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read(
        world: World, routes: list[Any]) -> None:
    """400 MB announced, nothing sent: the answer comes at once, for every route that does
    not read the body itself."""
    for method, path, _, rule in routes:
        if rule.kind == "raw":
            continue
        reply = send_raw(world.server.url, method, fill(path), [],
                         content_length=400 * 1024 * 1024, timeout=10)
        assert reply.status == 413, (method, path, reply)
        assert_contract(413, reply.body, code="BODY_TOO_LARGE", field="body")


def test_upload_routes_refuse_a_declared_length_over_the_limit_with_their_own_code(
        world: World) -> None:
    agent = world.login("a-agent", address="10.71.0.1")
    bearer = {"Authorization": f"Bearer {agent.session}", "X-Forwarded-For": "10.71.0.1"}
    for path, headers in (("/verify", {}), ("/filings", bearer)):
        reply = send_raw(world.server.url, "POST", path, [b"%PDF"],
                         content_length=UPLOAD_LIMIT + 1, headers=headers, timeout=10)
        assert reply.status == 413, (path, reply)
        assert_contract(413, reply.body, code="UPLOAD_TOO_LARGE", field="file")


@pytest.mark.parametrize("declared", [2, 100, JSON_LIMIT])
def test_a_length_that_lies_under_chunked_framing_is_cut_at_the_limit(
        world: World, declared: int) -> None:
    """Content-Length says small, Transfer-Encoding: chunked sends far more: the count of
    bytes actually received decides, not the header."""
    reply = send_raw(world.server.url, "POST", "/auth/verify",
                     endless(total=4 * 1024 * 1024), content_length=declared, chunked=True,
                     finish=False)
    assert reply.status is not None, reply
    data = assert_contract(reply.status, reply.body)
    assert (reply.status, data["code"]) in ((400, "HTTP_MALFORMED"), (413, "BODY_TOO_LARGE"))
    assert reply.sent < 4 * 1024 * 1024


@pytest.mark.parametrize("path", ["/auth/verify", "/enroll", "/verify/receipt",
                                  "/officer/renewals", "/healthz"])
def test_a_chunked_body_that_never_ends_is_answered_413_before_it_ends(
        world: World, path: str) -> None:
    method = "GET" if path == "/healthz" else "POST"
    reply = send_raw(world.server.url, method, path, endless(chunk=16 * 1024,
                                                             total=8 * 1024 * 1024),
                     chunked=True, finish=False)
    if path == "/healthz":
        assert reply.status == 200  # takes no body and reads none; the rest is discarded
        return
    assert reply.status == 413, (path, reply)
    assert_contract(413, reply.body, code="BODY_TOO_LARGE", field="body")
    assert reply.sent < 4 * 1024 * 1024


def test_a_route_that_reads_past_its_limit_gets_413_instead_of_its_answer(
        world: World) -> None:
    """The door's guard for routes that read their own body: after the chunk that crosses
    the limit, the next read ends the body, and whatever the route answers is replaced."""
    from eseal.api.door import BodyDoor
    from eseal.api.limits import BodyRule

    chunks = [b"x" * 600, b"x" * 600, b"x" * 600]
    reads: list[int] = []

    async def greedy_route(scope: Any, receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            total += len(message["body"])
            reads.append(total)
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"accepted"})

    async def run() -> list[dict[str, Any]]:
        door = BodyDoor(greedy_route, fastapi_app=None, settings=world.settings)
        queue = [{"type": "http.request", "body": c, "more_body": True} for c in chunks]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return queue.pop(0) if queue else {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "POST", "path": "/x", "query_string": b"",
                 "headers": [(b"transfer-encoding", b"chunked")]}
        await door._guarded(scope, receive, send, BodyRule("raw", 1000))
        return sent

    sent = asyncio.run(run())
    assert reads == [600, 1200]  # the crossing chunk, then no more
    assert sent[0]["status"] == 413
    assert b"BODY_TOO_LARGE" in sent[1]["body"]
    assert all(m.get("body") != b"accepted" for m in sent)


def _memory(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def test_twenty_clients_streaming_400_mb_each_leave_the_server_memory_flat(
        world: World) -> None:
    pid = world.server.process.pid
    targets = ["/auth/verify", "/enroll", "/verify/receipt", "/officer/enterprises",
               "/verify"]
    for path in targets:  # warm every route up once, so idle means ready
        httpx.post(world.server.url + path, content=b"{}", timeout=30)
    idle = _memory(pid)["VmRSS"]
    Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
    replies: list[Any] = [None] * 20

    def client(i: int) -> None:
        replies[i] = send_raw(world.server.url, "POST", targets[i % len(targets)],
                              endless(total=400 * 1024 * 1024), chunked=True, finish=False,
                              timeout=20)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    peak = _memory(pid)["VmHWM"]
    assert peak - idle < 50 * 1024 * 1024, (idle, peak)
    for reply in replies:
        assert reply is not None
        assert reply.sent < 64 * 1024 * 1024, reply.sent  # the server stopped reading early
        if reply.status is not None:  # else: reset after the 413, which is allowed
            assert reply.status == 413, reply
            assert_contract(413, reply.body)
    assert sum(r.status == 413 for r in replies) >= 10
    assert httpx.get(world.server.url + "/healthz", timeout=10).status_code == 200
