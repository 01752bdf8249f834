"""HTTP errors of the server: every error body is ``{"error": "..."}``, never a stack trace or user data.

:class:`ApiError` is raised by the request-handling code with a status and a message that names the
field and the problem (``instances[3].nswprice: expected a number``); messages are written from what
the server expected, never from the values it received, so nothing a client sent is echoed back. Column
names a client sent are named (that is the point of the message) but cut to a safe length.

An unexpected exception becomes :func:`internal_error`: a 500 (or 503) with an ``error_id`` that the
server log carries with the stack trace, so an operator can find the one from the other. A failure that
repeats (a full disk fails every request) is logged once per distinct error per
:data:`ERROR_INTERVAL_S`, with its traceback; its repeats are answered with the id of that logged
occurrence and counted in one line when the interval ends (:class:`ErrorLog`).

Answers never show filesystem paths or URLs (an artifact store, a database file): :func:`public_message`
keeps what failed and the hint, and leaves where to the server log.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass

from tidal.predict.errors import ApiError

#: The interval within which a repeated error is counted, not logged again.
ERROR_INTERVAL_S = 60.0
#: Most distinct errors logged with a traceback per interval; further ones are counted.
MAX_DISTINCT_ERRORS = 20


def new_error_id() -> str:
    """A short random id that ties an error response to its server log line."""
    return uuid.uuid4().hex[:16]


@dataclass
class _Seen:
    """A distinct error logged in the current interval: its id, when, and the repeats since."""

    error_id: str
    at: float
    text: str
    repeats: int = 0


class ErrorLog:
    """Logs server-side errors to ``logger``: the first occurrence of each distinct error (where, exception
    type and message) with its traceback and a new error id; its repeats within ``interval`` seconds only
    counted, and answered with the same id, so that every id a client gets leads to a logged traceback. When
    the interval ends, one line says how many repeats there were (a timer writes it, so it comes even if the
    error stops), and the next occurrence is logged in full again. At most ``max_distinct`` errors are logged
    per interval: past that, one line says so, and the rest are counted under its id. Thread-safe.
    """

    def __init__(self, logger: logging.Logger, *, interval: float = ERROR_INTERVAL_S,
                 max_distinct: int = MAX_DISTINCT_ERRORS) -> None:
        self.logger = logger
        self.interval = interval
        self.max_distinct = max_distinct
        self._seen: dict[tuple[str, str, str], _Seen] = {}
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def report(self, where: str, exc: BaseException, *, status: int = 500, message: str = "internal error") -> ApiError:
        """Log ``exc`` (or count it, see the class docstring); return the error the client gets."""
        key = (where, type(exc).__name__, str(exc))
        now = time.monotonic()
        with self._lock:
            self._end_intervals(now)
            seen = self._seen.get(key)
            if seen is None and len(self._seen) >= self.max_distinct:
                key = ("", "", "")  # the overflow: one entry counts every further distinct error
                seen = self._seen.get(key)
                if seen is None:
                    seen = self._seen[key] = _Seen(new_error_id(), now, "distinct errors past the limit")
                    self.logger.error("more than %d distinct errors in %.0f s: further ones are counted, not "
                                      "logged, until the interval ends (error_id=%s)", self.max_distinct,
                                      self.interval, seen.error_id)
                    return ApiError(status, message, error_id=seen.error_id)
            if seen is not None:
                seen.repeats += 1
                self._schedule(seen.at + self.interval - now)
                return ApiError(status, message, error_id=seen.error_id)
            error_id = new_error_id()
            text = f"{message} in {where}: {type(exc).__name__}: {exc}"
            self._seen[key] = _Seen(error_id, now, text)
            # logged under the lock: the repeats counted in this interval all follow this line
            self.logger.error("%s (error_id=%s) in %s: %s: %s", message, error_id, where, type(exc).__name__, exc,
                              exc_info=exc)
        return ApiError(status, message, error_id=error_id)

    def close(self) -> None:
        """Count the repeats of every open interval now (at shutdown) and stop the timer."""
        with self._lock:
            self._end_intervals(time.monotonic(), every=True)
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _end_intervals(self, now: float, *, every: bool = False) -> None:
        """Count the repeats of the intervals that ended by ``now`` (``every``: of all), and forget them. Holds
        the lock."""
        for key, seen in list(self._seen.items()):
            if every or now - seen.at >= self.interval:
                del self._seen[key]
                if seen.repeats:
                    self.logger.warning("repeated %d more time%s in %.0f s (answered with error_id=%s): %s",
                                        seen.repeats, "" if seen.repeats == 1 else "s",
                                        min(now - seen.at, self.interval), seen.error_id, seen.text)

    def _schedule(self, delay: float) -> None:
        """Make sure a timer counts the repeats when the interval ends, even if the error does not come again."""
        if self._timer is not None and self._timer.is_alive():
            return
        self._timer = threading.Timer(max(delay, 0.0) + 0.01, self._on_timer)
        self._timer.daemon = True
        self._timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
            now = time.monotonic()
            self._end_intervals(now)
            pending = [s.at + self.interval - now for s in self._seen.values() if s.repeats]
            if pending:
                self._schedule(min(pending))


_logs: dict[str, ErrorLog] = {}
_logs_lock = threading.Lock()


def error_log(logger: logging.Logger) -> ErrorLog:
    """The process's :class:`ErrorLog` for ``logger``."""
    found = _logs.get(logger.name)
    if found is None:
        with _logs_lock:
            found = _logs.setdefault(logger.name, ErrorLog(logger))
    return found


def close_error_logs() -> None:
    """Count the pending repeats of every error log (the server calls this when it stops)."""
    for log in list(_logs.values()):
        log.close()


def internal_error(logger: logging.Logger, where: str, exc: BaseException, *, status: int = 500,
                   message: str = "internal error") -> ApiError:
    """Log ``exc`` with its stack trace and an error id, once per distinct error per interval (repeats are
    counted, and answered with the logged occurrence's id: see :class:`ErrorLog`); return the error the
    client gets."""
    return error_log(logger).report(where, exc, status=status, message=message)


# A URL (scheme://...), an absolute POSIX path (/...), a home-relative one (~/...) or a Windows one (C:\...),
# wherever a message quotes one: each becomes a short placeholder. A slash that follows a word character
# (a/b, 2/3) is no absolute path and stays.
_PATHS = re.compile(r"""[A-Za-z][A-Za-z0-9+.-]*://[^\s'"]*[^\s'".,;:)\]]|(?<![\w.:/~-])~?/[^\s'"]*[^\s'".,;:)\]]|"""
                    r"""\b[A-Za-z]:\\[^\s'"]*[^\s'".,;:)\]]""")
HIDDEN = "[path in the server log]"


def hide_paths(text: str) -> str:
    """``text`` with every URL and absolute filesystem path replaced by :data:`HIDDEN`."""
    return _PATHS.sub(HIDDEN, text)


def public_message(exc: BaseException) -> str:
    """What failed, for an answer: the exception's type and message (a TidalError's hint included) without
    filesystem paths or URLs; the server log keeps the full text."""
    return f"{type(exc).__name__}: {hide_paths(str(exc))}"


__all__ = ["ERROR_INTERVAL_S", "HIDDEN", "MAX_DISTINCT_ERRORS", "ErrorLog", "close_error_logs", "error_log",
           "hide_paths", "internal_error", "new_error_id", "public_message"]
