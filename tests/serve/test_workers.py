"""``--workers 2``: both processes answer, both write the one prediction log, and ``/metrics`` (answered by
either) shows the totals of both."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.serve.server import ServerProcess
from tests.serve.test_http import ROW, metric

pytestmark = pytest.mark.slow  # a real server under load, a few seconds


async def burst(url: str, n: int) -> list[httpx.Response]:
    """``n`` concurrent requests, each on a new connection, so the kernel spreads them over the workers."""
    async with httpx.AsyncClient(base_url=url, timeout=10, headers={"connection": "close"}) as http:
        return await asyncio.gather(*(http.post("/predict", json={"instances": [{**ROW, "period": i / 1000}]})
                                      for i in range(n)))


def test_two_workers_share_the_log_and_the_metrics(project: Path) -> None:
    from tidal import Workspace

    with ServerProcess(project, workers=2) as srv:
        by_worker: Counter[str] = Counter()
        statuses: Counter[int] = Counter()
        deadline = time.monotonic() + 30
        while (len(by_worker) < 2 or sum(by_worker.values()) < 100) and time.monotonic() < deadline:
            for resp in asyncio.run(burst(srv.url, 20)):
                statuses[resp.status_code] += 1
                if resp.status_code == 200:
                    by_worker[resp.headers["x-tidal-worker"]] += 1
        assert len(by_worker) == 2, f"only {dict(by_worker)} answered (statuses {dict(statuses)})"
        assert set(statuses) == {200}  # a worker accepts connections only once its model is loaded
        answered = sum(by_worker.values())

        with httpx.Client(base_url=srv.url, timeout=10, headers={"connection": "close"}) as http:
            scrapes = [http.get("/metrics") for _ in range(6)]
            pids = {http.get("/healthz").json()["pid"] for _ in range(20)}
        for scrape in scrapes:  # whichever worker answers, the totals are those of both
            text = scrape.text
            assert metric(text, "tidal_requests_total", endpoint="/predict", status="200") == answered
            assert metric(text, "tidal_rows_predicted_total", model="elec2") == answered
            assert metric(text, "tidal_request_duration_seconds_count", endpoint="/predict") == sum(statuses.values())
            versions = [ln for ln in text.splitlines() if ln.startswith("tidal_model_version{")]
            assert len(versions) == 2 and all(ln.endswith(" 1.0") for ln in versions), versions
        assert pids <= {int(p) for p in by_worker}
    with Workspace.open(project) as ws:
        assert ws.predictions.count(model="elec2") == answered
