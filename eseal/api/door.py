"""The door every request passes before routing: bounded bodies, clean text, sane numbers.

One ASGI middleware, so that no route can forget it:

* **Size.** Each route's limit comes from :mod:`eseal.api.limits`. A declared
  Content-Length over it is refused (413 ``BODY_TOO_LARGE``) before a byte is read; a
  chunked body, or one whose length lies, is cut as soon as it passes the limit. JSON bodies
  are read whole here (they are small) and checked; a raw-body route reads for itself, and
  once it has received more than its limit, the next read ends the body and the answer is
  413 whatever the route would have said.
* **Text.** A JSON body must be UTF-8, valid JSON, at most :data:`MAX_DEPTH` deep, with no
  integer beyond 64 bits (a column's range; ids are bounded tighter by their parameter
  types), no lone surrogate, and no C0 control character other than tab, newline and
  carriage return (PEM has line breaks; nothing has NUL) — in any key or value, so a new
  model field is covered without being declared. Path and query parameters may hold no
  control character at all. These are what PostgreSQL refuses (NUL in text, numbers past
  its columns) and SQLite quietly stores, so they are refused at the door with a 4xx naming
  the field, never as a database error.

A body the door has checked is handed to the route unchanged.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from starlette.routing import BaseRoute, Match

from eseal.api import contract
from eseal.api.limits import BodyRule, route_rules
from eseal.errors import EsealError
from eseal.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: deeper JSON is not a control message; Python's parser would recurse past ~1,000 levels
MAX_DEPTH = 32
#: a JSON integer is at most a signed 64-bit column's value (19 digits and a sign)
MAX_INTEGER = 2**63 - 1
_MAX_DIGITS = 19

_BODY_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_URL_CONTROL = re.compile("[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_RAW_QUERY_CONTROL = re.compile(rb"%(?:[01][0-9a-fA-F]|7[fF])|[\x00-\x1f\x7f]")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")
_NO_BODY = BodyRule("none", 0)

#: Query parameters whose route refuses control characters itself, with its own code and an
#: audited refusal (``TITLE_INVALID`` for a filing's title): the door leaves those to it.
#: Such a route must refuse at least what the door would (:func:`has_url_control`); a
#: test walks this table and sends every control character to each entry.
ROUTE_CHECKED_QUERY: dict[tuple[str, str], frozenset[str]] = {
    ("POST", "/filings"): frozenset({"title"}),
}
_STAND_IN = "\ue000"  # a private-use character no path holds, standing in for a control


class _LongInteger:
    """A JSON integer too long to be any column's value, kept as text until it is named."""

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_int(text: str) -> int | _LongInteger:
    if len(text.lstrip("-")) > _MAX_DIGITS:
        return _LongInteger(text)
    return int(text)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _depth(text: str) -> int:
    """How deeply arrays and objects nest, strings left out (so ``"[[["`` is depth 0)."""
    deepest = depth = 0
    for bracket in _BRACKETS.findall(_JSON_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def has_url_control(text: str) -> bool:
    """Whether ``text`` holds a character the door refuses in a URL parameter."""
    return _URL_CONTROL.search(text) is not None


def _check_text(value: str, field: str, pattern: re.Pattern[str]) -> None:
    if _SURROGATE.search(value):
        raise contract.BODY_NOT_UTF8.error(
            field=field, message=f"{field}: contains a lone surrogate, which is not Unicode text",
            message_zh=f"{field} 含有孤立的代理码位，不是有效的 Unicode 文本")
    found = pattern.search(value)
    if found:
        char = found.group()
        raise contract.CONTROL_CHARACTER.error(
            field=field, message=f"{field}: contains the control character U+{ord(char):04X}",
            message_zh=f"{field} 含有不允许的控制字符 U+{ord(char):04X}",
            details={"character": f"U+{ord(char):04X}"})


def _walk(value: Any, field: str) -> None:
    """Refuse the first string, key or number in ``value`` the database could not take."""
    if isinstance(value, str):
        _check_text(value, field, _BODY_CONTROL)
    elif isinstance(value, _LongInteger) or (
            isinstance(value, int) and not isinstance(value, bool)
            and not -MAX_INTEGER - 1 <= value <= MAX_INTEGER):
        raise contract.VALUE_OUT_OF_RANGE.error(
            field=field, message=f"{field}: the number is out of range (at most 64 bits)",
            message_zh=f"{field} 数值超出范围（最多 64 位）")
    elif isinstance(value, dict):
        for key, item in value.items():
            where = key if field == "body" else f"{field}.{key}"
            _check_text(key, where, _BODY_CONTROL)
            _walk(item, where)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _walk(item, f"{field}.{index}")


def check_json(raw: bytes) -> None:
    """Raise the door's coded error if ``raw`` is not a JSON body a route may be given."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise contract.BODY_NOT_UTF8.error(
            field="body", details={"offset": err.start},
            message=f"the request body is not valid UTF-8 (byte {err.start})",
            message_zh=f"请求体不是有效的 UTF-8 文本（第 {err.start} 字节）") from None
    if _depth(text) > MAX_DEPTH:
        raise contract.BODY_TOO_DEEP.error(
            field="body", message=f"the request body nests more than {MAX_DEPTH} levels",
            message_zh=f"请求体嵌套超过 {MAX_DEPTH} 层", details={"max_depth": MAX_DEPTH})
    try:
        value = json.loads(text, parse_int=_parse_int, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as err:
        raise contract.BODY_NOT_JSON.error(
            field="body", message=f"the request body is not valid JSON: {str(err)[:120]}",
            message_zh="请求体不是有效的 JSON") from None
    _walk(value, "body")


def _check_url(scope: Scope, path_params: dict[str, Any],
               rematch: Callable[[Scope], dict[str, Any]],
               route_checked: frozenset[str] = frozenset()) -> None:
    """No control character in a path or query parameter (all of them, by name)."""
    if _URL_CONTROL.search(scope.get("path", "")):
        named = [k for k, v in path_params.items() if _URL_CONTROL.search(str(v))]
        if not named:
            # a route's pattern may not match across the character itself (a newline in
            # ``{encoded:path}``): match a stand-in to learn which parameter holds it
            stand_in = _URL_CONTROL.sub(_STAND_IN, scope["path"])
            params = rematch({**scope, "path": stand_in})
            named = [k for k, v in params.items() if _STAND_IN in str(v)]
        _check_text(scope["path"], named[0] if named else "path", _URL_CONTROL)
    query: bytes = scope.get("query_string", b"")
    if query and _RAW_QUERY_CONTROL.search(query):
        for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
            if name in route_checked:
                continue
            _check_text(name, name or "query", _URL_CONTROL)
            _check_text(value, name or "query", _URL_CONTROL)


class _TooLarge(Exception):
    """The route asked for more of a body already past its limit."""


class BodyDoor:
    """The ASGI middleware; ``fastapi_app`` is the app whose routes give the limits."""

    def __init__(self, app: ASGIApp, *, fastapi_app: Any, settings: Settings) -> None:
        self.app = app
        self._fastapi_app = fastapi_app
        self._settings = settings
        self._rules: list[tuple[BaseRoute, dict[str, BodyRule]]] | None = None

    def _rule(self, scope: Scope) -> tuple[BodyRule, dict[str, Any], str | None]:
        """The matching route's rule, path parameters and path template (no route: no body
        accepted)."""
        if self._rules is None:
            self._rules = route_rules(self._fastapi_app, self._settings)
        for route, rules in self._rules:
            match, child = route.matches(scope)
            if match is Match.FULL:
                rule = rules.get(scope["method"], _NO_BODY)
                return (rule, dict(child.get("path_params", {})),
                        getattr(route, "path", None))
        return BodyRule("none", 0), {}, None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k: v for k, v in scope.get("headers", ())
                   if k in (b"content-length", b"transfer-encoding")}
        declared = headers.get(b"content-length", b"").strip()
        has_body = b"transfer-encoding" in headers or declared not in (b"", b"0")
        suspicious_url = (_URL_CONTROL.search(scope.get("path", ""))
                          or _RAW_QUERY_CONTROL.search(scope.get("query_string", b"")))
        if not has_body and not suspicious_url:
            await self.app(scope, receive, send)
            return
        rule, path_params, template = self._rule(scope)
        try:
            _check_url(scope, path_params, lambda s: self._rule(s)[1],
                       ROUTE_CHECKED_QUERY.get((scope["method"], template or ""), frozenset()))
            if not has_body:
                await self.app(scope, receive, send)
                return
            if declared.isdigit() and int(declared) > rule.limit and rule.kind != "raw":
                raise self._too_large(rule)
            if rule.kind == "json":
                body = await self._read_json(receive, rule)
                if body is None:
                    return  # the client went away
                check_json(body)
                receive = _replay(body, receive)
        except EsealError as err:
            await contract.response(err)(scope, receive, send)
            return
        await self._guarded(scope, receive, send, rule)

    @staticmethod
    def _too_large(rule: BodyRule) -> EsealError:
        return contract.BODY_TOO_LARGE.error(
            field="body", details={"limit_bytes": rule.limit},
            message=f"the request body is larger than this route's limit of "
                    f"{rule.limit:,} bytes",
            message_zh=f"请求体超过该接口 {rule.limit:,} 字节的上限")

    async def _read_json(self, receive: Receive, rule: BodyRule) -> bytes | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > rule.limit:
                raise self._too_large(rule)
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send,
                       rule: BodyRule) -> None:
        """Run the route; if it reads past its limit, end the body and answer 413."""
        seen = 0
        over = False
        cut = False
        started = False

        async def bounded_receive() -> Message:
            nonlocal seen, over, cut
            if over:
                cut = True
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                over = seen > rule.limit  # deliver this chunk: the route may refuse itself
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if cut and not started:
                return  # the 413 below replaces whatever the route answers
            started = True
            await send(message)

        try:
            await self.app(scope, bounded_receive, guarded_send)
        except Exception:
            if not cut:
                raise
        if cut and not started:
            await contract.response(self._too_large(rule))(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that gives ``body`` once, then what the client does (disconnect)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
