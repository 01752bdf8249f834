"""Hot swap under load: while a client sends requests in a loop, the champion is promoted to version 2,
then rolled back to 1. No request fails, and the answers switch version within a few seconds, once
(a request never sees the old version after the new one)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.server import ServerProcess

pytestmark = pytest.mark.slow  # a real server under load, a few seconds

ROW = {"period": 0.5, "nswprice": 0.06, "nswdemand": 0.42, "vicprice": 0.003, "vicdemand": 0.42, "transfer": 0.41}


class Client(threading.Thread):
    """Sends single-row predictions back to back; records (time, status, version, latency)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.answers: list[tuple[float, int, int | None, float]] = []
        self.errors: list[str] = []

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10) as http:
            while not self.stop.is_set() and len(self.answers) < 50_000:
                start = time.monotonic()
                try:
                    resp = http.post("/predict", json={"instances": [ROW]})
                except httpx.HTTPError as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    continue
                version = resp.json()["model"]["version"] if resp.status_code == 200 else None
                self.answers.append((start, resp.status_code, version, time.monotonic() - start))

    def versions_since(self, t: float) -> list[int | None]:
        return [v for (s, _, v, _) in self.answers if s >= t]


def wait_for(client: Client, version: int, since: float, timeout: float = 10.0) -> float:
    """Seconds from ``since`` until the answers come from ``version``."""
    deadline = since + timeout
    while time.monotonic() < deadline:
        if version in client.versions_since(since):
            first = next(s for (s, _, v, _) in client.answers if s >= since and v == version)
            return first - since
        time.sleep(0.02)
    raise AssertionError(f"version {version} never answered within {timeout} s")


def test_promote_and_rollback_under_load(project: Path) -> None:
    from tidal import Workspace

    with ServerProcess(project) as srv:
        clients = [Client(srv.url) for _ in range(2)]
        for c in clients:
            c.start()
        try:
            time.sleep(1.0)
            with Workspace.open(project) as ws:
                promoted_at = time.monotonic()
                ws.promote("elec2", 2, reason="hot swap test")
            to_two = max(wait_for(c, 2, promoted_at) for c in clients)
            time.sleep(1.0)
            with Workspace.open(project) as ws:
                rolled_at = time.monotonic()
                ws.promote("elec2", 1, reason="rollback in the hot swap test")
            to_one = max(wait_for(c, 1, rolled_at) for c in clients)
            time.sleep(0.5)
        finally:
            for c in clients:
                c.stop.set()
            for c in clients:
                c.join(10)
        log = srv.log_text()
    answers = [a for c in clients for a in c.answers]
    assert not [e for c in clients for e in c.errors]
    assert len(answers) > 200, len(answers)
    assert {status for _, status, _, _ in answers} == {200}, "a request failed during a swap"
    assert to_two < 5.0 and to_one < 5.0, (to_two, to_one)
    for c in clients:
        # each client sees 1 ... 1, 2 ... 2, 1 ... 1: one switch each way, never back and forth
        seq = [v for _, _, v, _ in c.answers]
        changes = [b for a, b in itertools.pairwise(seq) if a != b]
        assert changes == [2, 1], changes
    slowest = max(lat for _, _, _, lat in answers)
    assert slowest < 2.0, f"a request waited {slowest:.2f} s during a swap"
    assert "serving elec2:2 (was elec2:1)" in log and "serving elec2:1 (was elec2:2)" in log
