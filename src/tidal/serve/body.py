"""Reading a request body under a size limit, straight from the ASGI ``receive`` channel.

The limit is checked twice, before anything is parsed: against ``Content-Length`` when the client
declares one (a 413 before a byte of the body is read), and while the body streams in (a chunked body,
or a client that declared less than it sends), so an oversized body is never held in memory whole.

The body must be declared JSON (``Content-Type: application/json``, with parameters such as ``charset``,
or an ``application/*+json`` type); anything else, or no type, is a 415 before a byte is read. A web page
can make a visitor's browser POST ``text/plain``, a form or multipart to any address, a local server's
included, without asking it first; a JSON POST from another origin needs the server's consent (a CORS
preflight), which tidal never gives, so such a request never reaches the endpoint.

An error answered before the whole body was read closes the connection (``ApiError.close``): the rest of
the body is not waited for. How long a body may take to arrive is the connection guard's business
(:mod:`tidal.serve.connections`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from tidal.predict.errors import ApiError

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class ClientGone(Exception):
    """The client disconnected before it finished sending the body."""


def too_large(limit: int) -> ApiError:
    return ApiError(413, f"the request body is larger than the limit of {limit} bytes "
                         "(deploy.max_request_bytes); send fewer rows per request", close=True)


def not_json() -> ApiError:
    return ApiError(415, "the body must be JSON, sent with Content-Type: application/json (or another "
                         "application/*+json type); this request declared another type, or none", close=True)


def is_json(content_type: bytes) -> bool:
    """Whether a Content-Type header value declares JSON: ``application/json`` or ``application/*+json``,
    with any parameters, in any case."""
    if content_type == b"application/json":
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


async def read_body(scope: MutableMapping[str, Any], receive: Receive, limit: int, *,
                    check_type: bool = True) -> bytes:
    """The whole body, at most ``limit`` bytes, declared JSON; raises ApiError 415 (not declared JSON), 413
    (too large) or 400 (a bad Content-Length). ``check_type`` False: the caller checked the Content-Type
    (the Open Inference Protocol's binary bodies, :mod:`tidal.serve.v2`)."""
    declared = -1
    json = False
    for key, value in scope["headers"]:  # one pass over the headers for both
        if key == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise ApiError(400, "the Content-Length header is not a number", close=True) from None
        elif key == b"content-type":
            json = is_json(value)
    if not json and check_type:
        raise not_json()
    if declared > limit:
        raise too_large(limit)
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


__all__ = ["ClientGone", "is_json", "not_json", "read_body", "too_large"]
