"""Reading request bodies with a bound, so no client can make the service buffer more.

A declared Content-Length over the limit is refused before anything is read; a chunked or
lying body is cut as soon as it passes the limit. Protocol routes (OCSP, TSA) answer an
oversized body in their own protocol; upload routes answer 413.
"""

from __future__ import annotations

from fastapi import Request

from eseal.errors import TooLarge


async def read_bounded(request: Request, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of the body: enough to know it is too large, no more."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return b"\x00" * (limit + 1)  # refused by size without reading what it claims
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)[:limit + 1]


async def read_upload(request: Request, limit: int, *, field: str = "file") -> bytes:
    """The whole body, or 413 ``UPLOAD_TOO_LARGE`` as soon as it passes ``limit`` bytes."""
    body = await read_bounded(request, limit)
    if len(body) > limit:
        raise TooLarge("UPLOAD_TOO_LARGE",
                       f"the upload is larger than the limit of {limit:,} bytes",
                       f"上传文件超过 {limit:,} 字节的上限", field=field,
                       details={"limit_bytes": limit})
    return body
