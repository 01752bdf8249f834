"""An answer's head and body leave the server in one write (tidal.serve.connections.OneWrite)."""

from __future__ import annotations

import socket
from typing import Any

from tidal.serve.connections import JOIN_BELOW, OneWrite


class Recorder:
    """A transport that records what is written to it."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def writelines(self, parts: list[Any]) -> None:
        self.writes.append(b"".join(bytes(p) for p in parts))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


HEAD = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n"


def test_the_head_goes_out_with_the_first_body_bytes() -> None:
    rec = Recorder()
    out = OneWrite(rec)  # type: ignore[arg-type]
    out.write(HEAD)
    assert rec.writes == []
    out.write(b"{}")
    assert rec.writes == [HEAD + b"{}"]
    out.write(b"more")  # a later chunk goes through as it comes
    assert rec.writes == [HEAD + b"{}", b"more"]
    assert out.is_closing() is False  # everything else is the transport's own


def test_a_100_continue_is_not_held() -> None:
    rec = Recorder()
    out = OneWrite(rec)  # type: ignore[arg-type]
    out.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    assert rec.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    out.write(HEAD)
    out.write(b"{}")
    assert rec.writes[1:] == [HEAD + b"{}"]


def test_a_head_held_when_the_connection_closes_is_written_first() -> None:
    rec = Recorder()
    out = OneWrite(rec)  # type: ignore[arg-type]
    out.write(HEAD)
    out.close()
    assert rec.writes == [HEAD] and rec.closed


def test_a_head_without_body_is_written_when_the_answer_completes() -> None:
    rec = Recorder()
    out = OneWrite(rec)  # type: ignore[arg-type]
    out.write(HEAD)
    out.flush()
    out.flush()
    assert rec.writes == [HEAD]


def test_a_large_body_is_not_copied_to_join_it() -> None:
    rec = Recorder()
    out = OneWrite(rec)  # type: ignore[arg-type]
    body = b"x" * (JOIN_BELOW + 1)
    out.write(HEAD)
    out.write(body)
    assert rec.writes == [HEAD + body]  # one writelines call


class Counting:
    """The connection's real transport, counting the writes made to it."""

    writes: list[bytes] = []

    def __init__(self, transport: Any) -> None:
        self._transport = transport

    def write(self, data: bytes) -> None:
        Counting.writes.append(bytes(data))
        self._transport.write(data)

    def writelines(self, parts: list[Any]) -> None:
        Counting.writes.append(b"".join(bytes(p) for p in parts))
        self._transport.writelines(parts)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def test_a_served_answer_is_one_write_on_the_socket() -> None:
    """Against a real uvicorn server with tidal's protocol: one write per answer, and the client reads it whole."""
    import threading
    import time

    import uvicorn

    from tidal.serve.connections import GuardedProtocol, Limits, TidalConfig

    class Protocol(GuardedProtocol):
        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(Counting(transport))  # type: ignore[arg-type]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", b"11")]})
        await send({"type": "http.response.body", "body": b'{"ok":true}'})

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    Counting.writes = []
    config = TidalConfig(app, limits=Limits(), host="127.0.0.1", port=port, http=Protocol, lifespan="off",
                         log_level="warning", ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.started
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            for _ in range(3):  # kept alive: every answer of the connection
                conn.sendall(b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\n\r\n")
                first = conn.recv(65536)
                assert first.startswith(b"HTTP/1.1 200 OK\r\n") and first.endswith(b'{"ok":true}'), first
            assert len(Counting.writes) == 3 and all(w.endswith(b'{"ok":true}') for w in Counting.writes)
            conn.sendall(b"HEAD /x HTTP/1.1\r\nhost: a\r\n\r\n")  # no body is written: the head is not held
            head = conn.recv(65536)
            assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n"), head
    finally:
        server.should_exit = True
        thread.join(10)
