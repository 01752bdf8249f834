"""What a library prints while it fits, captured into the run's log instead of the terminal.

LightGBM and XGBoost report from C++ through a log callback that ends in Python's ``print`` (LightGBM's
``[LightGBM] [Warning] No further splits with positive gain``, XGBoost's ``[12:00:00] ...``) or
``warnings.warn`` (XGBoost's ``WARNING:`` lines); OpenMP and other native code write to file descriptors
1 and 2 directly. :func:`capture_output` takes all of it for the duration of one fit:

- ``sys.stdout`` and ``sys.stderr`` are replaced by proxies that send what *the capturing thread* writes to
  the log, and what any other thread writes where it went before (a server running in the same process
  keeps its output);
- Python warnings raised in the block are recorded (as ``Category: message`` lines, and in
  :attr:`Captured.warnings`) instead of shown;
- records of the ``lightgbm`` and ``xgboost`` loggers made by the capturing thread go to the log and no
  further;
- in the main thread only, file descriptors 1 and 2 are pointed at the log file (``os.dup2``) for the
  block and restored afterwards, whatever happens in it, so native output is captured too.

The limit, by design: file descriptors belong to the process, not to a thread. A fit outside the main thread
(a server's worker, a thread pool) captures Python-level output only (LightGBM's log callback is registered
for that thread, since LightGBM keeps one per thread), and other native output goes where it always did;
and while a main-thread fit holds the descriptors, native output of *other* threads, and writes through a
stream object taken before the block (a logging handler made at start-up), land in that fit's
log too. Keep the block around the fit alone.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any, TextIO

#: The loggers whose records are captured.
LIBRARY_LOGGERS = ("lightgbm", "xgboost")
#: The most a log keeps (its end: the last lines say how a fit ended).
MAX_LOG_BYTES = 1 << 20

_lock = threading.RLock()
_sinks: dict[int, _Sink] = {}  # thread id -> where that thread's output goes while it captures
_installed: dict[str, Any] = {}  # the proxies and what they replaced, while any thread captures


@dataclass
class Captured:
    """What was captured: the text (``lines``), and the warnings, as ``Category: message``."""

    lines: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(f"{line}\n" for line in self.lines)


class _Sink:
    """The destination of one capturing thread: the log file when it holds fds 1 and 2, else memory."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd
        self.parts: list[str] = []

    def write(self, text: str) -> None:
        if self.fd is not None:
            os.write(self.fd, text.encode("utf-8", "replace"))
        else:
            self.parts.append(text)


class _Proxy:
    """``sys.stdout``/``sys.stderr`` while any thread captures: the capturing thread's writes go to its
    sink, other threads' to the stream that was there (through a duplicate of its descriptor while the main
    thread holds descriptors 1 and 2, so that they still reach the terminal)."""

    def __init__(self, target: TextIO, fd: int) -> None:
        self._target = target
        self._fd = fd
        self._saved: TextIO | None = None

    def _out(self) -> TextIO:
        return self._saved if self._saved is not None else self._target

    def write(self, text: str) -> int:
        sink = _sinks.get(threading.get_ident())
        if sink is not None:
            sink.write(text)
        else:
            self._out().write(text)
        return len(text)

    def flush(self) -> None:
        if threading.get_ident() not in _sinks:
            self._out().flush()

    @property
    def rich_proxied_file(self) -> _Proxy:
        """Itself: rich unwraps its own stdout proxy (a live display's) through this attribute to reach the real
        stream, which during a main-thread capture is the log file; a spinner's refresh thread must write here."""
        return self

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


class _LoggerFilter(logging.Filter):
    """Takes the capturing threads' records of a library logger into their logs (and stops them there)."""

    def filter(self, record: logging.LogRecord) -> bool:
        sink = _sinks.get(record.thread) if record.thread is not None else None
        if sink is None:
            return True
        sink.write(f"{record.levelname}:{record.name}:{record.getMessage()}\n")
        return False


_filter = _LoggerFilter()


def _stream_fd(stream: Any) -> int | None:
    try:
        return int(stream.fileno())
    except (AttributeError, OSError, ValueError):
        return None


def _install() -> None:
    """Put the proxies and the logger filter in place (the first capture in the process)."""
    out, err = _Proxy(sys.stdout, 1), _Proxy(sys.stderr, 2)
    _installed.update(stdout=sys.stdout, stderr=sys.stderr, out=out, err=err)
    sys.stdout, sys.stderr = out, err
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).addFilter(_filter)


def _uninstall() -> None:
    """Put back what :func:`_install` replaced (the last capture); a stream someone else replaced meanwhile
    is left as they set it."""
    if sys.stdout is _installed.get("out"):
        sys.stdout = _installed["stdout"]
    if sys.stderr is _installed.get("err"):
        sys.stderr = _installed["stderr"]
    for name in LIBRARY_LOGGERS:
        logging.getLogger(name).removeFilter(_filter)
    _installed.clear()


def _flush_c_streams() -> None:
    try:
        import ctypes

        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C library to reach (or not this way): nothing buffered
        pass


def _native_callbacks() -> None:
    """Route LightGBM's native log of this thread through Python: its log callback is registered per thread
    (at import, for the importing thread), and without it a fit in another thread prints from C, where only
    descriptor redirection could take it."""
    lgb = sys.modules.get("lightgbm.basic")
    lib = getattr(lgb, "_LIB", None)
    callback = getattr(lib, "callback", None)
    if lib is not None and callback is not None:
        with suppress(AttributeError, OSError, TypeError):  # another LightGBM: its output stays where it goes
            lib.LGBM_RegisterLogCallback(callback)


@contextmanager
def _descriptors(log_fd: int) -> Iterator[None]:
    """Descriptors 1 and 2 pointed at ``log_fd`` for the block (restored on any exit); the proxies send
    other threads' Python output to duplicates of the originals meanwhile."""
    for stream in (sys.__stdout__, sys.__stderr__, _installed["stdout"], _installed["stderr"]):
        if stream is not None:
            with suppress(OSError, ValueError):
                stream.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    proxies: list[_Proxy] = [_installed["out"], _installed["err"]]
    try:
        for proxy in proxies:
            if _stream_fd(proxy._target) == proxy._fd:
                proxy._saved = open(saved[proxy._fd], "w", closefd=False, buffering=1,  # noqa: SIM115
                                    encoding=getattr(proxy._target, "encoding", None) or "utf-8",
                                    errors="replace")
        for fd in (1, 2):
            os.dup2(log_fd, fd)
        yield
    finally:
        _flush_c_streams()  # what C's stdio still buffers belongs to this block
        for fd, copy in saved.items():
            os.dup2(copy, fd)
        for proxy in proxies:
            if proxy._saved is not None:
                proxy._saved.flush()
                proxy._saved = None
        for copy in saved.values():
            os.close(copy)


@contextmanager
def capture_output(*, descriptors: bool | None = None) -> Iterator[Captured]:
    """Capture the calling thread's output for the block (see the module docstring); the returned
    :class:`Captured` is filled when the block ends, also when it raises. ``descriptors``: whether to take
    file descriptors 1 and 2 too (default: in the main thread only, and when no other thread is capturing)."""
    captured = Captured()
    ident = threading.get_ident()
    if ident in _sinks:  # nested: the outer capture takes it all
        yield captured
        return
    with _lock:
        take_fds = descriptors if descriptors is not None else (
            threading.current_thread() is threading.main_thread() and not _sinks)
        log = tempfile.TemporaryFile(mode="w+b") if take_fds else None  # noqa: SIM115
        sink = _Sink(None if log is None else log.fileno())
        if not _sinks:
            _install()
        _sinks[ident] = sink
    if not take_fds:
        _native_callbacks()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")

            def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
                line = f"{category.__name__}: {message}"
                captured.warnings.append(line)
                sink.write(line + "\n")

            warnings.showwarning = show
            if log is not None:
                with _descriptors(log.fileno()):
                    yield captured
            else:
                yield captured
    finally:
        with _lock:
            del _sinks[ident]
            if not _sinks:
                _uninstall()
        if log is not None:
            log.seek(0)
            raw = log.read()
            log.close()
            text = raw[-MAX_LOG_BYTES:].decode("utf-8", "replace")
        else:
            text = "".join(sink.parts)[-MAX_LOG_BYTES:]
        captured.lines = [line.rstrip("\r") for line in text.splitlines() if line.strip()]


__all__ = ["LIBRARY_LOGGERS", "MAX_LOG_BYTES", "Captured", "capture_output"]
