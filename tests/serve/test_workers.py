"""``--workers 2``: both processes answer, both write the one prediction log, ``/metrics`` (answered by
either) shows the totals of both, and each guards its connections with the spec's limits.

Answers do not say which process answered (no process id in them); the test tells the workers apart by
their own metrics files (prometheus_client's multiprocess mode keeps one per process, named by its pid).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.serve.server import ServerProcess, _children
from tests.serve.test_connections import closed_within, set_limits
from tests.serve.test_http import ROW, metric

pytestmark = pytest.mark.slow  # a real server under load, a few seconds


async def burst(url: str, n: int) -> list[httpx.Response]:
    """``n`` concurrent requests, each on a new connection, so the kernel spreads them over the workers."""
    async with httpx.AsyncClient(base_url=url, timeout=10, headers={"connection": "close"}) as http:
        return await asyncio.gather(*(http.post("/predict", json={"instances": [{**ROW, "period": i / 1000}]})
                                      for i in range(n)))


def metrics_folder(srv: ServerProcess) -> Path:
    """The folder the workers keep their metrics in (from a worker's environment)."""
    assert srv.proc is not None
    for pid in _children(srv.proc.pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for entry in environ:
            if entry.startswith(b"PROMETHEUS_MULTIPROC_DIR="):
                return Path(os.fsdecode(entry.split(b"=", 1)[1]))
    raise AssertionError("no worker process with a metrics folder")


def by_process(folder: Path, name: str, **labels: str) -> dict[int, float]:
    """A counter's value per worker process, each read from that process's own file."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.multiprocess import MultiProcessCollector

    found: dict[int, float] = {}
    for file in folder.glob("counter_*.db"):
        with tempfile.TemporaryDirectory() as alone:
            shutil.copy(file, alone)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=alone)
            text = generate_latest(registry).decode()
        found[int(file.stem.split("_")[1])] = metric(text, name, **labels)
    return found


def answered_by_process(folder: Path) -> dict[int, float]:
    """``/predict`` requests answered 200, per worker process."""
    return by_process(folder, "tidal_requests_total", endpoint="/predict", status="200")


def test_two_workers_share_the_log_and_the_metrics(project: Path) -> None:
    from tidal import Workspace

    set_limits(project, "timeouts: {header_s: 1}")
    with ServerProcess(project, workers=2) as srv:
        folder = metrics_folder(srv)
        statuses: Counter[int] = Counter()
        by_worker: dict[int, float] = {}
        deadline = time.monotonic() + 30
        while (len(by_worker) < 2 or statuses[200] < 100) and time.monotonic() < deadline:
            for resp in asyncio.run(burst(srv.url, 20)):
                statuses[resp.status_code] += 1
            by_worker = {pid: n for pid, n in answered_by_process(folder).items() if n}
        assert len(by_worker) == 2, f"only {by_worker} answered (statuses {dict(statuses)})"
        assert set(statuses) == {200}  # a worker accepts connections only once its model is loaded
        answered = statuses[200]
        assert sum(answered_by_process(folder).values()) == answered

        with httpx.Client(base_url=srv.url, timeout=10, headers={"connection": "close"}) as http:
            scrapes = [http.get("/metrics") for _ in range(6)]
            health = {http.get("/healthz").text for _ in range(10)}
        for scrape in scrapes:  # whichever worker answers, the totals are those of both
            text = scrape.text
            assert metric(text, "tidal_requests_total", endpoint="/predict", status="200") == answered
            assert metric(text, "tidal_rows_predicted_total", model="elec2") == answered
            assert metric(text, "tidal_request_duration_seconds_count", endpoint="/predict") == sum(statuses.values())
            versions = [ln for ln in text.splitlines() if ln.startswith("tidal_model_version{")]
            assert len(versions) == 2 and all(ln.endswith(" 1.0") for ln in versions), versions
        assert health == {'{"status":"ok"}'}  # no process id in answers
        # each worker closes a connection that sends nothing within the spec's header timeout
        timeouts: dict[int, float] = {}
        for _ in range(5):
            opened = time.monotonic()
            idle = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(4)]
            for sock in idle:
                data, _ = closed_within(sock, 2.5)
                assert data == b"" and time.monotonic() - opened >= 0.8
                sock.close()
            timeouts = {p: n for p, n in by_process(folder, "tidal_connections_closed_total",
                                                    reason="header_timeout").items() if n}
            if len(timeouts) == 2:
                break
        assert set(timeouts) == set(by_worker), timeouts
    with Workspace.open(project) as ws:
        assert ws.predictions.count(model="elec2") == answered
