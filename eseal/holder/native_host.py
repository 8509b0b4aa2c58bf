"""``eseal-browser-host``: the native messaging host between the eseal extension and a USB-Key.

Messaging name ``cn.eseal.host``. The browser starts it for each message from the extension
(argv[1] is the calling extension's origin) and speaks Chrome's native messaging on stdio
(:mod:`eseal.holder.native_messaging`). Commands:

* ``status`` — the USB-Keys present: holder, enterprise, certificates with expiry, PIN tries
  left, locked. Answered even with no key and no PKCS#11 module (``problem`` says why).
* ``authenticate`` — signs eseal's login message (:func:`eseal.holder.client.sign_challenge`,
  the same bytes as ``eseal login``) with the **login key only**, for the ``origin`` the
  extension took from the browser (never one the page wrote).
* ``check`` / ``sign`` — a browser seal: ``check`` runs every test below without the PIN, so
  the consent window can refuse before the holder types it; ``sign`` then signs the DER
  signed attributes with the **seal key only**, once, after checking that ``messageDigest``
  is the digest shown and that the signing-certificate attribute names this key's seal
  certificate (:mod:`eseal.holder.native_sign`).

Every reply is ``{"ok": true, ...}`` or ``{"ok": false, "error": {code, message,
message_zh, field, details}}``; a wrong PIN carries ``details.tries_left``. The PIN only ever
travels from the consent window to this process and is never written back.

``ESEAL_HOST_JOURNAL`` (a file path, optional) makes the host append one JSON line per
command: time, command, caller, origin, token, outcome code and how many token signatures it
made — never the PIN or what was signed. It lets a holder (and the tests) see what the
browser asked the key to do.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import traceback
from datetime import UTC, datetime
from typing import Any

from eseal.errors import EsealError, InvalidInput
from eseal.holder import native_keys
from eseal.holder.native_messaging import Channel, FramingError, error_reply
from eseal.holder.native_sign import check_attributes, parse_request
from eseal.pki.login_message import normalize_origin

NAME = "cn.eseal.host"
PROTOCOL = 1
SIGNED = [0]  # token signatures made by the command being answered (for the journal)


def journal(message: Any, reply: dict[str, Any], caller: str | None) -> None:
    path = os.environ.get("ESEAL_HOST_JOURNAL")
    if not path:
        return
    entry = {"at": datetime.now(UTC).isoformat(), "caller": caller,
             "command": message.get("command") if isinstance(message, dict) else None,
             "origin": message.get("origin") if isinstance(message, dict) else None,
             "token": reply.get("token"), "ok": reply.get("ok"),
             "code": (reply.get("error") or {}).get("code"), "signatures": SIGNED[0]}
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
    except OSError:
        print(f"eseal-browser-host: cannot write the journal {path}", file=sys.stderr)


def _pin(message: dict[str, Any]) -> str:
    pin = message.get("pin")
    if not isinstance(pin, str) or not 1 <= len(pin) <= 64:
        raise InvalidInput("PIN_REQUIRED", "the USB-Key PIN is required", "请输入 USB-Key PIN 码",
                           field="pin")
    return pin


def _origin(message: dict[str, Any]) -> str:
    origin = message.get("origin")
    if not isinstance(origin, str) or len(origin) > 512:
        raise InvalidInput("ORIGIN_INVALID", "the extension must give the page's origin",
                           "扩展程序必须提供页面来源", field="origin")
    return normalize_origin(origin)


def status(problem: EsealError | None) -> dict[str, Any]:
    reply: dict[str, Any] = {"ok": True, "host": NAME, "protocol": PROTOCOL, "tokens": []}
    if problem is not None:
        reply["problem"] = problem.to_dict()
        return reply
    try:
        reply["tokens"] = [v.to_dict() for v in native_keys.all_keys()]
    except EsealError as err:
        reply["problem"] = err.to_dict()
    return reply


def authenticate(message: dict[str, Any]) -> dict[str, Any]:
    from eseal.holder.client import sign_challenge
    from eseal.token.client import UsbKey

    origin = _origin(message)
    challenge = message.get("challenge")
    if not isinstance(challenge, dict) or not all(
            isinstance(challenge.get(k), str) and 0 < len(challenge[k]) <= 128
            for k in ("nonce", "issued_at")) \
            or challenge.get("purpose", "login") != "login":
        raise InvalidInput("CHALLENGE_INVALID",
                           "the challenge must carry nonce, issued_at and purpose login",
                           "登录挑战应包含 nonce、issued_at，用途为 login", field="challenge")
    key = native_keys.choose(message.get("token"), "login")
    pin = _pin(message)
    with UsbKey.open(key.label, pin) as usbkey:
        answer = sign_challenge(challenge, usbkey, origin=origin)
    SIGNED[0] += 1
    return {"ok": True, "token": key.label, "answer": answer}


def sign(message: dict[str, Any], *, check_only: bool = False) -> dict[str, Any]:
    from eseal.token.client import UsbKey

    _origin(message)
    request = parse_request(message)
    key = native_keys.choose(message.get("token"), "seal")
    certificate = key.certificates["seal"]
    check_attributes(request, certificate)
    serial = format(certificate.serial_number, "x")
    if check_only:
        return {"ok": True, "token": key.label, "certificate_serial": serial}
    pin = _pin(message)
    with UsbKey.open(key.label, pin) as usbkey:
        if usbkey.certificate("seal") != certificate:  # swapped between look and PIN
            raise EsealError("TOKEN_CHANGED", "the USB-Key changed while it was being used",
                             "USB-Key 在使用过程中发生了变化", field="token")
        signature = usbkey.sign("seal", request.signed_attrs)
    SIGNED[0] += 1
    return {"ok": True, "token": key.label, "certificate_serial": serial,
            "signature": base64.b64encode(signature).decode("ascii")}


def handle(message: Any, problem: EsealError | None = None) -> dict[str, Any]:
    """One message's reply (raises EsealError for a refusal)."""
    if not isinstance(message, dict):
        raise InvalidInput("MESSAGE_INVALID", "a message is a JSON object with a command",
                           "消息应为包含 command 的 JSON 对象", field="message")
    command = message.get("command")
    if command == "status":
        return status(problem)
    if command not in ("authenticate", "check", "sign"):
        raise InvalidInput("COMMAND_UNKNOWN",
                           "unknown command (status, authenticate, check or sign)",
                           "未知命令（status、authenticate、check 或 sign）", field="command")
    if problem is not None:
        raise problem
    if command == "authenticate":
        return authenticate(message)
    return sign(message, check_only=command == "check")


def _with_id(reply: dict[str, Any], message: Any) -> dict[str, Any]:
    ident = message.get("id") if isinstance(message, dict) else None
    if isinstance(ident, int | str) and not isinstance(ident, bool) and len(str(ident)) <= 64:
        reply["id"] = ident
    return reply


def serve(channel: Channel, caller: str | None = None) -> int:
    """Answer messages until the browser closes the pipe; the exit status."""
    problem: EsealError | None = None
    try:
        native_keys.setup()
    except EsealError as err:
        problem = err
    while True:
        try:
            message = channel.read()
        except FramingError as err:
            channel.write(error_reply(err))
            return 1
        except EsealError as err:
            channel.write(error_reply(err))
            continue
        if message is None:
            return 0
        SIGNED[0] = 0
        try:
            reply = handle(message, problem)
        except EsealError as err:
            reply = error_reply(err)
        except Exception:  # a bug: its traceback to stderr (the browser's log), never stdout
            traceback.print_exc(file=sys.stderr)
            reply = error_reply(EsealError("HOST_INTERNAL_ERROR",
                                           "the USB-Key helper failed unexpectedly",
                                           "USB-Key 助手程序发生意外错误"))
        journal(message, reply, caller)
        channel.write(_with_id(reply, message))


def main() -> None:
    sys.exit(serve(Channel(), sys.argv[1][:200] if len(sys.argv) > 1 else None))


if __name__ == "__main__":
    main()
