"""Refusals of the predict path: :class:`ApiError` carries an HTTP-style ``status`` and a message that
names the field and the problem (``instances[3].nswprice: expected a number``). Messages are written from
what was expected, never from the values received, so nothing a client sent is echoed back; the column
names a client sent are named (that is the point of the message) but cut to a safe length. The server
answers an ApiError with its status; the SDK (``Workspace.predict``/``feedback``) raises it as it is, a
:class:`~tidal.core.errors.ServingError`.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from tidal.core.errors import ServingError

#: Longest name (column, field) quoted in an error message.
MAX_NAME = 64
#: Most names listed in one message.
MAX_NAMES = 10


class ApiError(ServingError):
    """A request the server refuses: an HTTP ``status`` and a ``message`` safe to send back. ``close``: the
    request's body may be unread, so the connection is closed after the answer rather than kept alive.

    A :class:`~tidal.core.errors.ServingError` (the one tree of tidal's errors): the server sends it as the
    answer itself, status and body; the SDK raises it with the same message."""

    def __init__(self, status: int, message: str, *, error_id: str | None = None, close: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.error_id = error_id
        self.close = close

    def body(self) -> bytes:
        """The JSON error body."""
        return error_body(self.message, error_id=self.error_id)


def error_body(message: str, *, error_id: str | None = None) -> bytes:
    """``{"error": message}``, with ``error_id`` when there is one."""
    doc: dict[str, str] = {"error": message}
    if error_id is not None:
        doc["error_id"] = error_id
    return orjson.dumps(doc)


def name(value: object) -> str:
    """A client-supplied name, quoted and cut to :data:`MAX_NAME` characters."""
    text = str(value)
    if len(text) > MAX_NAME:
        text = text[:MAX_NAME] + "…"
    return repr(text)


def names(values: Iterable[object]) -> str:
    """Several names, quoted, at most :data:`MAX_NAMES` of them (then how many more)."""
    items = list(values)
    shown = ", ".join(name(v) for v in items[:MAX_NAMES])
    if len(items) > MAX_NAMES:
        shown += f" and {len(items) - MAX_NAMES} more"
    return shown



__all__ = ["MAX_NAME", "MAX_NAMES", "ApiError", "error_body", "name", "names"]
