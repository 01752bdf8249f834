"""Durability: 400 requests in flight, the server SIGKILLed midway; after a restart every prediction
that was answered 200 is in the log with its inputs and outputs (0 lost)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serve.server import ServerProcess

pytestmark = pytest.mark.slow  # a real server under load, a few seconds

N = 400
KILL_AFTER = 150


def row(i: int) -> dict[str, float]:
    return {"period": i / 1000, "nswprice": 0.06, "nswdemand": 0.42, "vicprice": 0.003, "vicdemand": 0.42,
            "transfer": 0.41}


async def load(srv: ServerProcess) -> tuple[list[tuple[dict[str, Any], dict[str, Any]]], int]:
    """Send N requests, 32 at a time; SIGKILL the server once KILL_AFTER have been answered."""
    answered: list[tuple[dict[str, Any], dict[str, Any]]] = []
    failed = 0
    gate = asyncio.Semaphore(32)
    killed = asyncio.Event()

    async def one(http: httpx.AsyncClient, i: int) -> None:
        nonlocal failed
        async with gate:
            try:
                resp = await http.post("/predict", json={"instances": [row(i)]})
            except httpx.HTTPError:
                failed += 1
                return
        if resp.status_code == 200:
            answered.append((row(i), resp.json()))
            if len(answered) >= KILL_AFTER and not killed.is_set():
                killed.set()
                srv.kill()
        else:
            failed += 1

    limits = httpx.Limits(max_connections=32, max_keepalive_connections=32)
    async with httpx.AsyncClient(base_url=srv.url, timeout=10, limits=limits) as http:
        await asyncio.gather(*(one(http, i) for i in range(N)))
    return answered, failed


def test_sigkill_under_load_loses_no_answered_prediction(project: Path) -> None:
    from tidal import Workspace
    from tidal.core.errors import PredictionNotFound

    srv = ServerProcess(project).start()
    try:
        answered, failed = asyncio.run(load(srv))
    finally:
        srv.kill()
    assert srv.proc is not None and srv.proc.returncode == -9
    assert KILL_AFTER <= len(answered) < N and failed > 0, (len(answered), failed)  # killed midway

    with ServerProcess(project) as again:  # the log opens after the crash and the server serves
        after = httpx.post(f"{again.url}/predict", json={"instances": [row(9999)]}, timeout=10)
        assert after.status_code == 200
    with Workspace.open(project) as ws:
        lost = []
        for inputs, body in answered:
            try:
                stored = ws.predictions.get(body["prediction_ids"][0])
            except PredictionNotFound:
                lost.append(body["prediction_ids"][0])
                continue
            assert stored.inputs == inputs
            assert stored.output == body["predictions"][0] and stored.proba == body["probabilities"][0]
            assert stored.version == body["model"]["version"] == 1
        assert lost == [], f"{len(lost)} of {len(answered)} answered predictions are not in the log"
        assert ws.predictions.count(model="elec2") >= len(answered) + 1
