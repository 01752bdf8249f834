"""Reading a request body under a size limit, straight from the ASGI ``receive`` channel.

The limit is checked twice, before anything is parsed: against ``Content-Length`` when the client
declares one (a 413 before a byte of the body is read), and while the body streams in (a chunked body,
or a client that declared less than it sends), so an oversized body is never held in memory whole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tidal.serve.errors import ApiError

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientGone(Exception):
    """The client disconnected before it finished sending the body."""


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than the limit of {limit} bytes "
                         "(deploy.max_request_bytes); send fewer rows per request")


async def read_body(scope: MutableMapping[str, Any], receive: Receive, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes; raises ApiError 413 (or 400 for a bad Content-Length)."""
    for key, value in scope["headers"]:
        if key == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise ApiError(400, "the Content-Length header is not a number") from None
            if declared > limit:
                raise too_large(limit)
            break
    first = await receive()
    if first["type"] == "http.disconnect":
        raise ClientGone
    body = first.get("body", b"")
    if not first.get("more_body", False):  # the common case: the whole body in one message
        if len(body) > limit:
            raise too_large(limit)
        return bytes(body)
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


__all__ = ["ClientGone", "read_body", "too_large"]
