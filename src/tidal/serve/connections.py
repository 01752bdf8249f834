"""The connection guard: the limits uvicorn's HTTP protocol does not set.

uvicorn's httptools protocol closes a kept-alive connection ``timeout_keep_alive`` seconds after an answer,
and nothing else: a connection that never sends a request, one that sends its headers a byte at a time,
and one whose body stops short of its ``Content-Length`` are held for ever, and nothing bounds how many
are open (19,980 idle connections took a server to its limit of open files, and 73 % of a normal client's
requests failed). :class:`GuardedProtocol`, a subclass of that protocol which :func:`~tidal.serve.run_server`
gives uvicorn as ``http=``, adds, in every server process:

- **a header timeout** (``deploy.timeouts.header_s``): a connection must complete its request headers
  within that time of opening, or, on a kept-alive connection, of the first byte of its next request
  (while it sends nothing after an answer, uvicorn's keep-alive timeout, ``deploy.timeouts.keep_alive_s``,
  applies). A connection that sent nothing is closed; one that sent part of a request gets a 408 first.
- **a body timeout** (``deploy.timeouts.body_s``): a request's whole body must arrive within that time of
  its headers, or the request is answered 408 and the connection closed; the application sees the client
  as gone (it has answered nothing and stored nothing). It is enforced here, not in the application's
  body reader, because here it costs a request one timestamp, where an ``asyncio.timeout`` around the
  reads measured 5 µs a request, and because it then holds for every route.
- **a header size limit** (:data:`MAX_HEADER_BYTES`): uvicorn's httptools parser keeps every header a
  client sends, without limit (uvicorn's ``h11_max_incomplete_event_size`` applies to its other parser
  only); a request whose headers grow past the limit is answered 431 and the connection closed.
- **a connection cap** (``deploy.max_connections``): a new connection that would exceed it closes an
  idle one (no request in progress) to make room: the one idle the longest among those that have not yet
  had an answer (an idle flood's connections never ask anything), and only when there are none, the one
  idle the longest among those kept alive after an answer. A client that keeps its connection alive
  between requests is so not cut off while it sends its next request (a close it could not tell from a
  network failure, for a POST it must not blindly retry). When every connection has a request in
  progress, the newcomer is answered 503 (with ``Retry-After``) and closed at once.

The timeouts are checked by one timer per process, a few times a second (:meth:`_Guard.sweep`), not by a
timer per request. The connections it closes are counted in ``tidal_connections_closed_total{reason}`` and
summed up in the server log at most once a minute.

uvicorn's own ``limit_concurrency`` is left unset: it answers 503 to every request while the open
connections (idle ones included) reach the limit, so an idle flood would make it refuse real requests,
which is the attack the cap defends against; under the cap, requests in flight are bounded by the
connections open (one request at a time per connection).

How the settings reach the protocol: uvicorn builds a protocol per connection from its ``Config``, and with
``--workers N`` it pickles that ``Config`` into each worker process it spawns. :class:`TidalConfig` is
``uvicorn.Config`` with one more attribute, the :class:`Limits`; the protocol reads it from the config it
is given. The subclass and the protocol are importable by name, so the pickled config rebuilds in a
worker with its limits, and no environment variable or global carries them.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter
from dataclasses import dataclass
from typing import Any

import orjson
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("tidal.serve")

#: How often, at most, the server log sums up the connections the guard closed.
REPORT_EVERY_S = 60.0
#: The most bytes a request's line and headers may take (nginx allows 32 KiB by default, Node.js 16 KiB).
MAX_HEADER_BYTES = 64 * 1024
#: Open files a process needs besides its connections (the log, the artifact store, libraries).
FILES_RESERVE = 100


@dataclass(frozen=True)
class Limits:
    """The guard's settings (``deploy.timeouts`` and ``deploy.max_connections``)."""

    header_s: float = 10.0
    body_s: float = 30.0
    max_connections: int = 1000


class TidalConfig(uvicorn.Config):
    """``uvicorn.Config`` that carries the guard's :class:`Limits` (pickled with it into worker processes)."""

    def __init__(self, app: Any, *, limits: Limits, **options: Any) -> None:
        self.limits = limits
        super().__init__(app, **options)


def _answer(status: int, reason: str, message: str, extra: bytes = b"") -> bytes:
    """A whole HTTP answer that closes the connection, with a JSON error body."""
    body = orjson.dumps({"error": message})
    return (b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%sconnection: close\r\n\r\n"
            % (status, reason.encode(), len(body), extra)) + body


class _Guard:
    """The connections of one uvicorn server (one per process): which are idle, oldest first, and the timer
    that enforces the timeouts."""

    def __init__(self, limits: Limits, loop: asyncio.AbstractEventLoop, app: Any) -> None:
        self.limits = limits
        self.loop = loop
        self.open: set[GuardedProtocol] = set()
        #: Connections with no request in progress, in the order they became idle (oldest first): those that
        #: have had no answer yet, and those kept alive after one (evicted only when the first are none).
        self.fresh: dict[GuardedProtocol, None] = {}
        self.kept: dict[GuardedProtocol, None] = {}
        self.period = max(0.05, min(1.0, limits.header_s / 4, limits.body_s / 4))
        self.closed: Counter[str] = Counter()  # since the last summary line
        self._hook = getattr(app, "connections_closed", None)  # the app's metrics, where it has them
        self._timer: asyncio.TimerHandle | None = None
        self._reported = time.monotonic()
        self.refuse_answer = _answer(
            503, "Service Unavailable", f"the server has {limits.max_connections} connections open, each with a "
            "request in progress (deploy.max_connections); try again shortly", b"retry-after: 1\r\n")
        self.header_answer = _answer(
            408, "Request Timeout", f"the request headers did not arrive within {limits.header_s:g} s "
            "(deploy.timeouts.header_s)")
        self.too_large_answer = _answer(
            431, "Request Header Fields Too Large", f"the request line and headers are larger than "
            f"{MAX_HEADER_BYTES // 1024} KiB")
        self.body_answer = _answer(
            408, "Request Timeout", f"the request body did not arrive within {limits.body_s:g} s of its headers "
            "(deploy.timeouts.body_s); nothing was predicted or stored")

    def admit(self, conn: GuardedProtocol) -> bool:
        """Count ``conn`` in, closing the connection idle the longest if the cap is reached; False when every
        open connection has a request in progress (``conn`` is then refused)."""
        if len(self.open) >= self.limits.max_connections:
            idle = self.fresh or self.kept
            if not idle:
                self.count("refused")
                return False
            victim = next(iter(idle))
            self.forget(victim)
            victim.transport.close()
            self.count("evicted")
        self.open.add(conn)
        self.fresh[conn] = None
        if self._timer is None or self._timer.when() > self.loop.time() + self.period:
            self._schedule(self.period)
        return True

    def _schedule(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self.loop.call_later(delay, self.sweep)

    def forget(self, conn: GuardedProtocol) -> None:
        self.open.discard(conn)
        self.busy(conn)

    def busy(self, conn: GuardedProtocol) -> None:
        """``conn`` has a request in progress (or is gone): no longer a candidate for eviction."""
        self.fresh.pop(conn, None)
        self.kept.pop(conn, None)

    def count(self, reason: str) -> None:
        self.closed[reason] += 1
        if self._hook is not None:
            self._hook(reason)

    def sweep(self) -> None:
        """Close the connections past their header or body timeout; runs every :attr:`period` while any is open."""
        self._timer = None
        now = self.loop.time()
        for conn in list(self.open):
            conn.check(now)
        since = time.monotonic() - self._reported
        if self.closed and since >= REPORT_EVERY_S:
            self.report()
            since = 0.0
        if self.open:
            self._schedule(self.period)
        elif self.closed:  # nothing to watch: wake up only to write the summary when it is due
            self._schedule(max(self.period, REPORT_EVERY_S - since))

    def report(self) -> None:
        """One line summing up the connections closed since the last such line."""
        words = {"evicted": "idle ones closed to admit new ones", "refused": "refused (all busy)",
                 "headers_too_large": "closed for headers over the size limit",
                 "header_timeout": "closed at their header timeout", "body_timeout": "closed at their body timeout"}
        # Timeouts alone are ordinary (a browser's unused preconnection, a slow client); closing idle connections
        # to admit others, or refusing some, means the server is at its connection cap.
        level = logging.WARNING if self.closed.keys() & {"evicted", "refused"} else logging.INFO
        logger.log(level, "connections: %s in the last %.0f s (deploy.max_connections %d, deploy.timeouts header_s "
                       "%g, body_s %g)", ", ".join(f"{n} {words.get(k, k)}" for k, n in sorted(self.closed.items())),
                       time.monotonic() - self._reported, self.limits.max_connections, self.limits.header_s,
                       self.limits.body_s)
        self.closed.clear()
        self._reported = time.monotonic()


_guards: weakref.WeakKeyDictionary[Any, _Guard] = weakref.WeakKeyDictionary()

#: Above this many bytes a held head and its body go out as two buffers of one ``writelines`` (no copy).
JOIN_BELOW = 64 * 1024


class OneWrite:
    """A request's transport that sends an answer's status line and headers with its first body bytes, in
    one write.

    uvicorn's cycle writes the head when the app sends ``http.response.start`` and the body when it sends
    ``http.response.body``: two writes, so two TCP segments on a ``TCP_NODELAY`` socket, and a client that
    wakes twice to read one answer. Every answer tidal gives is a start followed at once by its body (or
    by its first chunk), so the head is held for that one call: measured in a server, the two writes of a
    small answer cost 43 + 32 µs, the one 36 µs. A write that is not an answer's head (a ``100 Continue``,
    the body, a later chunk) goes through as it comes; a head still held when the answer completes (uvicorn
    writes no body for HEAD) or the connection closes is written then.
    """

    __slots__ = ("_held", "_sent", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None
        self._sent = False  # the head went out: every later write goes through as it comes

    def write(self, data: bytes | bytearray | memoryview) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(data) < JOIN_BELOW:
                self._transport.write(held + bytes(data))
            else:
                self._transport.writelines([held, data])
        elif not self._sent and data[:9] == b"HTTP/1.1 " and data[9:12] != b"100":
            self._held, self._sent = bytes(data), True
        else:
            self._transport.write(data)

    def flush(self) -> None:
        """Write the head if it is still held (an answer whose body had no bytes to write: HEAD)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, ...: the transport's own
        return getattr(self._transport, name)


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the guard's timeouts and connection cap (see the module docstring)."""

    def __init__(self, config: uvicorn.Config, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        guard = _guards.get(server_state)
        if guard is None:
            guard = _guards[server_state] = _Guard(getattr(config, "limits", None) or Limits(), self.loop,
                                                   config.loaded_app)
        self._guard = guard
        self._idle = True  # no request in progress
        self._header_start: float | None = None  # when the headers being awaited began (None: nothing awaited)
        self._partial = False  # some of a request arrived since the connection became idle
        self._header_bytes = 0  # bytes received since the connection became idle
        self._headers_at = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._guard.admit(self):
            transport.write(self._guard.refuse_answer)
            transport.close()
            return
        self._header_start = self.loop.time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._guard.forget(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._idle:
            if not self._partial:
                self._partial = True
                if self._header_start is None:  # the first byte of a request on a kept-alive connection
                    self._header_start = self.loop.time()
            self._header_bytes += len(data)
        super().data_received(data)
        # still no complete headers (the parser would have said so by now), and too many bytes for them
        if self._idle and self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            self._guard.forget(self)
            self._guard.count("headers_too_large")
            self.transport.write(self._guard.too_large_answer)
            self.transport.close()

    def on_headers_complete(self) -> None:
        if self._idle:
            self._idle = False
            self._guard.busy(self)
        self._header_start = None
        self._partial = False
        self._header_bytes = 0
        self._headers_at = self.loop.time()
        super().on_headers_complete()
        # the cycle just made (its task has not run yet) sends its answer's head and body in one write
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:  # not an upgrade (it makes no cycle)
            cycle.transport = one = OneWrite(self.transport)  # type: ignore[assignment]
            done = cycle.on_response

            def answered() -> None:  # the answer is complete: nothing of it may stay held (HEAD writes no body)
                one.flush()
                done()

            cycle.on_response = answered

    def on_response_complete(self) -> None:
        super().on_response_complete()
        cycle = self.cycle
        if self.transport.is_closing() or (cycle is not None and not cycle.response_complete):
            return  # closing, or a pipelined request started
        if not self._idle and self in self._guard.open:
            self._idle = True
            self._guard.kept[self] = None  # the newest idle connection kept alive after an answer

    def check(self, now: float) -> None:
        """Close this connection if it is past its header or body timeout (called by the guard's sweep)."""
        guard = self._guard
        if self._idle:
            if self._header_start is not None and now - self._header_start > guard.limits.header_s:
                guard.forget(self)
                guard.count("header_timeout")
                if self._partial:
                    self.transport.write(guard.header_answer)
                self.transport.close()
            return
        cycle = self.cycle
        if (cycle is not None and cycle.more_body and not cycle.response_started and not cycle.disconnected
                and now - self._headers_at > guard.limits.body_s):
            guard.forget(self)
            guard.count("body_timeout")
            # The application sees the client as gone (its reads and answer end there); the client gets the 408.
            cycle.disconnected = True
            cycle.message_event.set()
            self.transport.write(guard.body_answer)
            self.transport.close()


def fit_open_files(max_connections: int) -> str | None:
    """Raise this process's limit on open files (RLIMIT_NOFILE) to hold ``max_connections`` connections and
    :data:`FILES_RESERVE` more, as far as the hard limit allows (worker processes inherit it); returns a
    warning when it cannot."""
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max_connections + FILES_RESERVE
    if soft == resource.RLIM_INFINITY or soft >= need:
        return None
    target = need if hard == resource.RLIM_INFINITY else min(need, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft >= need:
        return None
    return (f"deploy.max_connections is {max_connections}, but a server process may open only {soft} files "
            f"(RLIMIT_NOFILE; {FILES_RESERVE} are kept for the server's own files): raise the limit (ulimit -n "
            f"{need}) or lower deploy.max_connections to {max(soft - FILES_RESERVE, 1)}, or connections past it "
            "will be refused by the operating system, not by tidal")


__all__ = ["FILES_RESERVE", "MAX_HEADER_BYTES", "REPORT_EVERY_S", "GuardedProtocol", "Limits", "TidalConfig",
           "fit_open_files"]
