"""A real JSON API on 127.0.0.1 for the http source's tests: the standard library's threading HTTP server
on a free port, in a daemon thread, stopped by the fixture (and by itself after ``LIFETIME`` seconds).

Its routes serve records in every pagination style, and the failures a real API shows: a 429 with
Retry-After then success, a 500 then success, an answer slower than the timeout, a malformed page, an
HTML page, a page of another shape, a pagination loop, a token check. ``requests`` counts the requests
per path, so a test can tell a retry from none.
"""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pandas as pd

#: The most seconds a server lives, even if a test forgets to stop it.
LIFETIME = 120.0
TOKEN = "tok-8c1f2e7d9a6b4c3e"  # the secret the /secure routes want, as "Bearer <TOKEN>"


class Api:
    """The records served, and what the server saw."""

    def __init__(self, records: list[dict[str, Any]], page_size: int = 50) -> None:
        self.records = records
        self.page_size = page_size
        self.requests: Counter[str] = Counter()
        self.times: dict[str, list[float]] = {}
        self.headers_seen: list[dict[str, str]] = []
        self.url = ""

    def page(self, n: int) -> list[dict[str, Any]]:
        start = n * self.page_size
        return self.records[start:start + self.page_size]


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: bytes | str | Any, *, ctype: str = "application/json",
                  headers: dict[str, str] | None = None) -> None:
            if not isinstance(body, bytes | str):
                body = json.dumps(body)
            data = body.encode() if isinstance(body, str) else body
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout)
                self.wfile.write(data)

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            path, q = parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()}
            api.requests[path] += 1
            api.times.setdefault(path, []).append(time.monotonic())
            api.headers_seen.append(dict(self.headers))
            count = api.requests[path]
            n = int(q.get("page", "1")) - 1
            offset = int(q.get("offset", "0"))
            route = ROUTES.get(path)
            if route is None:
                self._send(404, {"error": "no such route"})
                return
            route(self, api, q, n, offset, count)

    return Handler


def _numbered(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    size = int(q.get("per_page", api.page_size))
    start = n * size
    h._send(200, {"data": {"items": api.records[start:start + size]}, "page": n + 1})


def _link_body(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    chunk = api.records[offset:offset + api.page_size]
    nxt = offset + api.page_size
    link = f"/link?offset={nxt}" if nxt < len(api.records) else None  # relative, as many APIs write it
    h._send(200, {"items": chunk, "links": {"next": link}})


def _link_header(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    chunk = api.records[offset:offset + api.page_size]
    nxt = offset + api.page_size
    headers = {"Link": f'<{api.url}/linkheader?offset={nxt}>; rel="next"'} if nxt < len(api.records) else {}
    h._send(200, chunk, headers=headers)


def _cursor(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    at = int(q["cursor"].removeprefix("c")) if "cursor" in q else 0
    nxt = at + api.page_size
    cursor = f"c{nxt}" if nxt < len(api.records) else None
    h._send(200, {"results": api.records[at:nxt], "meta": {"next_cursor": cursor}})


def _secure(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    if h.headers.get("Authorization") != f"Bearer {TOKEN}":
        h._send(401, {"error": "bad token"})
        return
    _numbered(h, api, q, n, offset, count)


def _too_many(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    if count == 1:
        h._send(429, {"error": "slow down"}, headers={"Retry-After": "1"})
        return
    _numbered(h, api, {"per_page": "1000"}, 0, 0, count)


def _wait_long(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    h._send(429, {"error": "come back in two minutes"}, headers={"Retry-After": "120"})


def _error_once(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    if count == 1:
        h._send(500, {"error": "boom"})
        return
    _numbered(h, api, {"per_page": "1000"}, 0, 0, count)


def _always_503(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    h._send(503, {"error": "down"})


def _slow(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    time.sleep(1.5)
    _numbered(h, api, {"per_page": "1000"}, 0, 0, count)


def _malformed(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    if n == 1:  # page 2 is cut short
        h._send(200, '{"data": {"items": [{"a": 1}, {"a": ')
        return
    _numbered(h, api, q, n, offset, count)


def _html(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    h._send(200, "<!doctype html><html><body><form>Sign in</form></body></html>", ctype="text/html")


def _other_shape(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    items = api.page(n)
    if n == 1:  # page 2 renames a field
        items = [{("colour" if k == "color" else k): v for k, v in r.items()} for r in items]
    h._send(200, {"data": {"items": items}})


def _loop(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    # page 1 links to page 2, which links to itself: a broken API, for ever
    h._send(200, {"items": api.page(0 if offset == 0 else 1), "links": {"next": "/loop?offset=50"}})


def _cursor_loop(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    h._send(200, {"results": api.page(count - 1), "meta": {"next_cursor": "c50"}})  # the same cursor, for ever


def _ignores_page(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    h._send(200, {"data": {"items": api.page(0)}})  # whatever page is asked for


def _csv(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    h._send(200, pd.DataFrame(api.records).to_csv(index=False), ctype="text/csv")


def _parquet(h: Any, api: Api, q: dict[str, str], n: int, offset: int, count: int) -> None:
    buf = io.BytesIO()
    pd.DataFrame(api.records).to_parquet(buf, index=False)
    h._send(200, buf.getvalue(), ctype="application/octet-stream")


ROUTES = {"/items": _numbered, "/link": _link_body, "/linkheader": _link_header, "/cursor": _cursor,
          "/secure": _secure, "/429": _too_many, "/429long": _wait_long, "/500": _error_once, "/503": _always_503,
          "/slow": _slow,
          "/malformed": _malformed, "/html": _html, "/shape": _other_shape, "/loop": _loop, "/cursorloop": _cursor_loop,
          "/same": _ignores_page, "/data/file.csv": _csv, "/data/file.parquet": _parquet,
          "/data/login.csv": _html}


@contextmanager
def serve(records: list[dict[str, Any]], page_size: int = 50) -> Iterator[Api]:
    """Serve ``records`` on 127.0.0.1 at a free port; ``api.url`` is its base URL."""
    api = Api(records, page_size)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    stop = threading.Timer(LIFETIME, server.shutdown)
    stop.daemon = True
    stop.start()
    try:
        yield api
    finally:
        stop.cancel()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def free_port() -> int:
    """A port nothing listens on (bound, then released): a connection to it is refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
