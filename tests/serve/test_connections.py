"""Hostile clients against a real server (issue #9, point 6): idle connections, slow headers, slow and
short bodies, a house full of busy connections. The server's limits are set low in its spec
(``deploy.timeouts``, ``deploy.max_connections``) and its limit on open files is set low too, so that an
idle flood that is never cut off runs it out of file descriptors within a bounded test, as 19,980 idle
connections did to a server with the default limit of 20,000. Every test is bounded in connections and time.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.serve.server import ServerProcess
from tests.serve.test_http import ROW, metric

pytestmark = pytest.mark.slow  # real servers, a few seconds each

HEADER_S = 1.0
BODY_S = 1.5
KEEP_ALIVE_S = 1.0
CAP = 50
#: The server's RLIMIT_NOFILE: room for its own files and the CAP connections, not for 3 * CAP of them.
NOFILE = 128
#: How long after a timeout the server may take to close a connection (it checks a few times a second).
SLACK = 1.5
BODY = json.dumps({"instances": [ROW]}).encode()


def set_limits(root: Path, text: str) -> None:
    """Put ``text`` (YAML flow entries) into the project's ``deploy`` section."""
    spec = root / "tidal.yaml"
    spec.write_text(spec.read_text().replace("\ndeploy: {", f"\ndeploy: {{{text}, ", 1))


def head(length: int, path: str = "/predict") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: tidal\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    """Read until the server closes ``sock``; returns what it sent and when it closed (seconds from now).
    Raises AssertionError when it is still open after ``seconds``."""
    start = time.monotonic()
    data = b""
    while time.monotonic() - start < seconds:
        sock.settimeout(0.05)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionError:
            return data, time.monotonic() - start
        if not chunk:
            return data, time.monotonic() - start
        data += chunk
    raise AssertionError(f"the connection was still open after {seconds} s (received {data[:120]!r})")


def is_closed(sock: socket.socket) -> bool:
    """Whether the server has closed ``sock`` (without waiting)."""
    poller = select.poll()  # not select(): a flood holds file descriptors past FD_SETSIZE (1024)
    poller.register(sock, select.POLLIN)
    if not poller.poll(0):
        return False
    try:
        return sock.recv(65536, socket.MSG_PEEK) == b""
    except ConnectionError:
        return True


def status_of(data: bytes) -> int:
    return int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0


def body_of(data: bytes) -> dict[str, str]:
    doc: dict[str, str] = json.loads(data.split(b"\r\n\r\n", 1)[1])
    return doc


@pytest.fixture(scope="module")
def server(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("hostile") / "elec2"
    shutil.copytree(served_template, root)
    set_limits(root, f"timeouts: {{header_s: {HEADER_S}, body_s: {BODY_S}, keep_alive_s: {KEEP_ALIVE_S}}}, "
                     f"max_connections: {CAP}")
    with ServerProcess(root, nofile=NOFILE) as srv:
        yield srv


def settle(srv: ServerProcess, timeout: float = HEADER_S + BODY_S + 2 * SLACK) -> int:
    """Wait until the server's open files stop falling (what earlier tests left is closed); returns the count."""
    deadline = time.monotonic() + timeout
    last = srv.open_files()
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = srv.open_files()
        if now >= last:
            return now
        last = now
    return last


class Flood(threading.Thread):
    """Holds ``keep`` idle connections open (from its side), opening a new one for each the server closes,
    at most ``rate`` a second and ``budget`` in all."""

    def __init__(self, port: int, *, keep: int, rate: float, budget: int) -> None:
        super().__init__(daemon=True)
        self.port, self.keep, self.rate, self.budget = port, keep, rate, budget
        self.stop = threading.Event()
        self.opened = 0
        self.failed = 0  # connections the server did not accept in time
        self.socks: list[socket.socket] = []

    def run(self) -> None:
        try:
            while not self.stop.is_set() and self.opened < self.budget:
                alive = [s for s in self.socks if not is_closed(s)]
                for s in self.socks:
                    if s not in alive:
                        s.close()
                self.socks = alive
                room = min(self.keep - len(alive), self.budget - self.opened, max(1, int(self.rate / 20)))
                for _ in range(max(room, 0)):
                    try:
                        self.socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=2))
                    except OSError:
                        self.failed += 1
                    self.opened += 1
                self.stop.wait(0.05)
        finally:
            for s in self.socks:
                s.close()


def test_an_idle_flood_does_not_starve_a_client(server: ServerProcess) -> None:
    """3 * CAP idle connections held open all along (a new one for each the server closes): every probe,
    keep-alive or on a fresh connection, is answered, and the server's open files stay bounded."""
    base = settle(server)
    flood = Flood(server.port, keep=3 * CAP, rate=600, budget=8000)
    flood.start()
    try:
        deadline = time.monotonic() + 5
        while flood.opened < 3 * CAP and time.monotonic() < deadline:
            time.sleep(0.05)
        latencies: list[float] = []
        failures: list[str] = []
        most_files = 0

        def probe(http: httpx.Client) -> None:
            start = time.perf_counter()
            try:
                resp = http.post("/predict", json={"instances": [ROW]})
                if resp.status_code != 200:
                    failures.append(f"{resp.status_code}: {resp.text[:100]}")
            except httpx.HTTPError as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
            latencies.append(time.perf_counter() - start)

        with httpx.Client(base_url=server.url, timeout=3) as keep_alive:
            for i in range(200):
                probe(keep_alive)
                if i % 4 == 0:  # and one on a connection of its own, opened amid the flood
                    with httpx.Client(base_url=server.url, timeout=3, headers={"connection": "close"}) as fresh:
                        probe(fresh)
                most_files = max(most_files, server.open_files())
                if len(failures) >= 3:
                    break
                time.sleep(0.005)
        assert flood.is_alive(), "the flood ran out of connections before the probes ended"
    finally:
        flood.stop.set()
        flood.join(10)
    latencies.sort()
    figures = (f"idle flood: {flood.opened} connections opened ({flood.failed} not accepted), {len(latencies)} "
               f"probes, {len(latencies) - len(failures)} answered 200; latency p50 "
               f"{statistics.median(latencies) * 1000:.1f} ms, p99 {latencies[int(len(latencies) * 0.99)] * 1000:.1f}"
               f" ms, max {latencies[-1] * 1000:.1f} ms; server files {base} before, at most {most_files} during")
    print(figures)
    assert failures == [], f"{len(failures)} probes failed: {failures[:3]} ({figures})"
    assert flood.opened >= 3 * CAP + CAP, figures  # the server kept closing idle ones: the flood kept opening
    assert most_files <= base + CAP + 10, figures
    metrics = httpx.get(f"{server.url}/metrics", timeout=5).text
    assert metric(metrics, "tidal_connections_closed_total", reason="evicted") >= flood.opened - 3 * CAP, figures


def test_slow_headers_slow_and_short_bodies_are_cut_off(server: ServerProcess) -> None:
    """A connection that sends nothing, one that trickles its headers, one that trickles its body and one
    whose body stops short of its Content-Length are all closed after their timeouts (the last two with a
    408), while a normal client is answered meanwhile."""
    settle(server)
    fresh = connect(server.port)
    slow_headers = connect(server.port)
    slow_body = connect(server.port)
    short_body = connect(server.port)
    short_body.sendall(head(200) + b'{"instances": [')
    stop = threading.Event()

    def trickle() -> None:
        lines = iter([b"POST /predict HTTP/1.1\r\n"] + [f"X-Slow-{i}: x\r\n".encode() for i in range(100)])
        body = iter([head(500)] + [b" " * 10] * 50)
        while not stop.wait(0.25):
            for sock, chunks in ((slow_headers, lines), (slow_body, body)):
                with contextlib.suppress(OSError, StopIteration):
                    sock.sendall(next(chunks))

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    answered: list[int] = []
    try:
        with ThreadPoolExecutor(4) as pool:
            watched = {name: pool.submit(closed_within, sock, limit + SLACK) for name, sock, limit in (
                ("fresh", fresh, HEADER_S), ("slow_headers", slow_headers, HEADER_S),
                ("slow_body", slow_body, BODY_S), ("short_body", short_body, BODY_S))}
            with httpx.Client(base_url=server.url, timeout=5) as http:
                while not all(f.done() for f in watched.values()):
                    answered.append(http.post("/predict", json={"instances": [ROW]}).status_code)
                    time.sleep(0.05)
            results = {name: f.result() for name, f in watched.items()}
    finally:
        stop.set()
        trickler.join(5)
        for sock in (fresh, slow_headers, slow_body, short_body):
            sock.close()
    assert answered and set(answered) == {200}, answered
    print("closed after (s):", {name: round(t, 2) for name, (_, t) in results.items()})
    data, took = results["fresh"]
    assert data == b"" and took >= HEADER_S - 0.3  # nothing was asked: nothing to answer
    data, took = results["slow_headers"]
    assert status_of(data) == 408 and "deploy.timeouts.header_s" in body_of(data)["error"], data
    assert took >= HEADER_S - 0.3
    for name in ("slow_body", "short_body"):
        data, took = results[name]
        assert status_of(data) == 408, (name, data)
        assert b"connection: close" in data.lower()
        assert "deploy.timeouts.body_s" in body_of(data)["error"], data
        assert took >= BODY_S - 0.3
    text = server.log_text()
    assert "Traceback" not in text


def test_oversized_headers_are_refused(server: ServerProcess) -> None:
    """Headers past 64 KiB get a 431 and the connection is closed (the parser itself keeps them all); 30 KiB
    of them are served."""
    settle(server)
    with connect(server.port) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: tidal\r\n")
        with contextlib.suppress(OSError):  # the server may close while the rest is on its way
            for i in range(200):
                sock.sendall(f"X-Big-{i}: {'x' * 1000}\r\n".encode())
        data, _ = closed_within(sock, 5)
    assert status_of(data) == 431 and "KiB" in body_of(data)["error"], data[:200]
    big = {f"x-big-{i}": "x" * 1000 for i in range(30)}
    resp = httpx.post(f"{server.url}/predict", json={"instances": [ROW]}, headers=big, timeout=5)
    assert resp.status_code == 200, resp.text


def test_keep_alive_closes_an_idle_connection_after_an_answer(server: ServerProcess) -> None:
    settle(server)
    with connect(server.port) as sock:
        sock.sendall(head(len(BODY)) + BODY)
        start = time.monotonic()
        data, took = closed_within(sock, KEEP_ALIVE_S + SLACK)
    took = time.monotonic() - start
    assert status_of(data) == 200 and took >= KEEP_ALIVE_S - 0.3, (data[:60], took)


def test_a_house_full_of_busy_connections_refuses_newcomers(server: ServerProcess) -> None:
    """CAP connections each in the middle of a request (headers sent, body not): no idle one to close, so a
    newcomer is refused with a 503 at once; once their body timeout closes them, requests are answered."""
    base = settle(server)
    busy = [connect(server.port) for _ in range(CAP)]
    try:
        for sock in busy:
            sock.sendall(head(100) + b"{")
        time.sleep(0.3)  # the server has read their headers: each has a request in progress
        with connect(server.port) as late:
            data, took = closed_within(late, 2)
        assert status_of(data) == 503 and took < 1, (data, took)
        assert "deploy.max_connections" in body_of(data)["error"]
        assert b"retry-after:" in data.lower()
        assert server.open_files() <= base + CAP + 5
        for sock in busy:  # each gets its 408 when its body timeout expires
            answer, _ = closed_within(sock, BODY_S + SLACK)
            assert status_of(answer) == 408, answer
    finally:
        for sock in busy:
            sock.close()
    resp = httpx.post(f"{server.url}/predict", json={"instances": [ROW]}, timeout=5)
    assert resp.status_code == 200
    assert settle(server) <= base + 2


def _answer(sock: socket.socket) -> bytes:
    """One whole HTTP answer read from ``sock`` (headers, then Content-Length bytes of body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    headers, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line.split(b":")[1] for line in headers.split(b"\r\n")
                      if line.lower().startswith(b"content-length:")))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return headers + b"\r\n\r\n" + body


def test_a_flood_of_fresh_connections_evicts_them_before_a_kept_alive_client(server: ServerProcess) -> None:
    """3 * CAP connections that never ask anything arrive while a client's kept-alive connection waits
    between two requests: the newcomers push out each other, never the client (before, the client's was
    the oldest idle connection and went first, and its next POST met a closed connection)."""
    settle(server)
    flood: list[socket.socket] = []
    with connect(server.port) as client:
        client.sendall(head(len(BODY)) + BODY)
        assert status_of(_answer(client)) == 200
        start = time.monotonic()
        try:
            for _ in range(3 * CAP):
                flood.append(connect(server.port))
            time.sleep(0.2)  # the server has taken them all in
            assert time.monotonic() - start < KEEP_ALIVE_S - 0.2, "too slow to test within the keep-alive"
            client.sendall(head(len(BODY)) + BODY)
            second = _answer(client)
            evicted = sum(is_closed(sock) for sock in flood)
        finally:
            for sock in flood:
                sock.close()
    assert status_of(second) == 200, second[:200]
    # the cap held: all but the newest CAP - 1 of the flood (the client holds the last place) were closed
    assert evicted >= 3 * CAP - (CAP - 1), evicted
