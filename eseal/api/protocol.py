"""uvicorn's HTTP protocol with eseal's error contract for requests it refuses itself.

A request that is not valid HTTP/1.1 — both Content-Length and Transfer-Encoding, a broken
chunk, a malformed header — never reaches the app: uvicorn answers it with a plain-text 400.
This subclass answers the same 400 (and still closes the connection) with the contract's
JSON, ``HTTP_MALFORMED``, so even errors raised before routing carry a code and Chinese text.
"""

from __future__ import annotations

import json

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from eseal.api.contract import HTTP_MALFORMED


class ContractHttpToolsProtocol(HttpToolsProtocol):
    """``eseal serve``'s protocol class (``uvicorn.Config(http=...)``)."""

    def send_400_response(self, msg: str) -> None:
        body = json.dumps({"code": HTTP_MALFORMED.code,
                           "message": f"{HTTP_MALFORMED.message}: {msg}",
                           "message_zh": HTTP_MALFORMED.message_zh},
                          ensure_ascii=False).encode()
        content = [STATUS_LINE[400]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend([b"content-type: application/json\r\n",
                        b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
                        b"connection: close\r\n", b"\r\n", body])
        self.transport.write(b"".join(content))
        self.transport.close()
