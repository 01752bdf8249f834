"""Serving under load with the metadata store and the prediction log on PostgreSQL (issue #16, point 4): two
servers on two ports — one with two workers — share one store and one log; a SIGKILL of a worker under load
loses no acknowledged prediction (counted); feedback reaches the log whichever server is sent it; an alias move
hot-swaps both servers. Runs when TIDAL_TEST_POSTGRES_URL is set (.ci/run sets it), in a schema of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.contract.conftest import postgres_url  # noqa: F401  (the fixture: a fresh schema per test)
from tests.serve.conftest import write_spec
from tests.serve.server import ServerProcess, _children
from tests.serve.test_durability import row

pytestmark = pytest.mark.slow  # two real servers under load on PostgreSQL: tens of seconds

#: Requests in all (half to each server), how many at a time, and after how many answers a worker dies.
N, AT_ONCE, KILL_AFTER = 360, 16, 90


async def load(a: ServerProcess, b: ServerProcess, kill: Any) -> tuple[list[tuple[str, dict[str, Any]]], int]:
    """N requests, alternately to ``a`` and ``b``; ``kill()`` once KILL_AFTER were answered. Each answered
    request: (the server it came from, its body)."""
    answered: list[tuple[str, dict[str, Any]]] = []
    failed = 0
    gate = asyncio.Semaphore(AT_ONCE)
    killed = False

    async def one(http: dict[str, httpx.AsyncClient], i: int) -> None:
        nonlocal failed, killed
        which = "a" if i % 2 else "b"
        async with gate:
            try:
                resp = await http[which].post("/predict", json={"instances": [row(i)]})
            except httpx.HTTPError:
                failed += 1
                return
        if resp.status_code != 200:
            failed += 1
            return
        answered.append((which, resp.json()))
        if len(answered) >= KILL_AFTER and not killed:
            killed = True
            kill()

    async with httpx.AsyncClient(base_url=a.url, timeout=20) as ha, \
            httpx.AsyncClient(base_url=b.url, timeout=20) as hb:
        await asyncio.gather(*(one({"a": ha, "b": hb}, i) for i in range(N)))
    return answered, failed


def test_two_servers_share_the_store_and_the_log_on_postgres(served_template: Path, tmp_path: Path,
                                                             postgres_url: str) -> None:  # noqa: F811
    from tidal import Workspace
    from tidal.core.errors import PredictionNotFound

    root = tmp_path / "elec2"
    (root / "data").mkdir(parents=True)
    (root / "data" / "elec2.csv").write_bytes((served_template / "data" / "elec2.csv").read_bytes())
    env = {"TIDAL_STORE_URL": postgres_url, "TIDAL_PREDICTIONS_URL": postgres_url}
    os.environ.update(env)
    try:
        write_spec(root, max_iter=20)
        with Workspace.open(root) as ws:
            assert ws.run().model.version == 1
        write_spec(root, max_iter=12, auto_promote=False)
        with Workspace.open(root) as ws:
            assert ws.run().model.version == 2
        write_spec(root, max_iter=20)
        assert not (root / ".tidal" / "tidal.db").exists()  # the store is PostgreSQL's, not a file

        a = ServerProcess(root, workers=2, env=env, log=tmp_path / "a.log")
        b = ServerProcess(root, env=env, log=tmp_path / "b.log")
        try:
            a.start(timeout=90)
            b.start(timeout=90)
            workers = [pid for pid in (_children(a.proc.pid) if a.proc else [])  # not multiprocessing's tracker
                       if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()]
            assert len(workers) == 2, workers
            answered, failed = asyncio.run(load(a, b, lambda: os.kill(workers[0], signal.SIGKILL)))
            assert KILL_AFTER <= len(answered) < N + 1, (len(answered), failed)
            assert {which for which, _ in answered} == {"a", "b"}

            # feedback for a prediction server a answered, sent to server b (and the other way round)
            from_a = next(body for which, body in answered if which == "a")
            from_b = next(body for which, body in answered if which == "b")
            for url, body in ((b.url, from_a), (a.url, from_b)):
                fed = httpx.post(f"{url}/feedback", json={"prediction_id": body["prediction_ids"][0], "label": 1},
                                 timeout=20)
                assert fed.status_code == 200 and fed.json() == {"stored": 1}, fed.text

            with Workspace.open(root) as ws:  # an alias move: both servers hot-swap by themselves
                ws.promote("elec2", 2, reason="test: both servers follow the champion")
            deadline = time.monotonic() + 30
            while {httpx.get(f"{s.url}/model", timeout=10).json()["version"] for s in (a, b)} != {2}:
                assert time.monotonic() < deadline, "the servers did not both swap to version 2 within 30 s"
                time.sleep(0.2)
        finally:
            a.stop()
            b.stop()

        with Workspace.open(root) as ws:
            lost = []
            for _, body in answered:
                try:
                    stored = ws.predictions.get(body["prediction_ids"][0])
                except PredictionNotFound:
                    lost.append(body["prediction_ids"][0])
                    continue
                assert stored.output == body["predictions"][0] and stored.version == body["model"]["version"]
            assert lost == [], f"{len(lost)} of {len(answered)} acknowledged predictions are not in the log"
            print(f"two servers on PostgreSQL: {len(answered)} acknowledged, {failed} failed at the kill, 0 lost")
            assert ws.predictions.get(from_a["prediction_ids"][0]).label == 1
            assert ws.predictions.get(from_b["prediction_ids"][0]).label == 1
    finally:
        for key in env:
            os.environ.pop(key, None)
