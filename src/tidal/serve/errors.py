"""HTTP errors of the server: every error body is ``{"error": "..."}``, never a stack trace or user data.

:class:`ApiError` is raised by the request-handling code with a status and a message that names the
field and the problem (``instances[3].nswprice: expected a number``); messages are written from what
the server expected, never from the values it received, so nothing a client sent is echoed back. Column
names a client sent are named (that is the point of the message) but cut to a safe length.

An unexpected exception becomes :func:`internal_error`: a 500 with an ``error_id`` that the server log
carries with the stack trace, so an operator can find the one from the other.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

import orjson

#: Longest name (column, field) quoted in an error message.
MAX_NAME = 64
#: Most names listed in one message.
MAX_NAMES = 10


class ApiError(Exception):
    """A request the server refuses: an HTTP ``status`` and a ``message`` safe to send back."""

    def __init__(self, status: int, message: str, *, error_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_id = error_id

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


def new_error_id() -> str:
    """A short random id that ties an error response to its server log line."""
    return uuid.uuid4().hex[:16]


def internal_error(logger: logging.Logger, where: str, exc: BaseException, *, status: int = 500,
                   message: str = "internal error") -> ApiError:
    """Log ``exc`` with its stack trace and a new error id; return the error the client gets."""
    error_id = new_error_id()
    logger.error("%s (error_id=%s) in %s: %s: %s", message, error_id, where, type(exc).__name__, exc,
                 exc_info=exc)
    return ApiError(status, message, error_id=error_id)


__all__ = ["ApiError", "error_body", "internal_error", "name", "names", "new_error_id"]
