"""The app in process (httpx's ASGI transport, lifespan driven by hand): settings overrides, the
``overwrite`` feedback rule, and a prediction log that fails (the answer is refused, not given)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tidal.core.errors import ServingError, StorageError
from tidal.serve import create_app

ROW = {"period": 0.5, "nswprice": 0.06, "nswdemand": 0.42, "vicprice": 0.003, "vicdemand": 0.42, "transfer": 0.41}


@asynccontextmanager
async def running(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    """Start the app's lifespan (which loads the model), yield a client, shut it down."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    task = asyncio.create_task(app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}},
                                   inbox.get, outbox.put))
    await inbox.put({"type": "lifespan.startup"})
    assert (await asyncio.wait_for(outbox.get(), 60))["type"] == "lifespan.startup.complete"
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://tidal") as client:
            yield client
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await asyncio.wait_for(outbox.get(), 30))["type"] == "lifespan.shutdown.complete"
        await task


def test_unknown_override_is_refused(project: Path) -> None:
    with pytest.raises(ServingError, match="unknown server setting"):
        create_app(project, workers=3)
    with pytest.raises(ServingError, match="server setting max_rows: "):
        create_app(project, max_rows=0)


def test_overwrite_rule_and_a_failing_log(project: Path) -> None:
    async def scenario() -> None:
        app = create_app(project, feedback="overwrite", max_rows=3)
        async with running(app) as http:
            assert (await http.get("/readyz")).status_code == 200
            pid = (await http.post("/predict", json={"instances": [ROW]})).json()["prediction_ids"][0]
            assert (await http.post("/feedback", json={"prediction_id": pid, "label": 1})).status_code == 200
            second = await http.post("/feedback", json={"prediction_id": pid, "label": 0})
            assert second.status_code == 200 and second.json() == {"stored": 1}
            assert app.service.log.get(pid).label == 0  # the last label wins
            too_many = await http.post("/predict", json={"instances": [ROW] * 4})
            assert too_many.status_code == 413 and "limit of 3" in too_many.json()["error"]

            def broken(_: Any) -> None:
                raise StorageError("the disk is full")

            before = app.service.log.count(model="elec2")
            app.service.writer.log = type("Broken", (), {"append": staticmethod(broken)})()
            refused = await http.post("/predict", json={"instances": [ROW]})
            assert refused.status_code == 503, refused.text
            body = refused.json()
            assert "could not be stored" in body["error"] and body["error_id"] and "disk" not in body["error"]
            assert "prediction_ids" not in body
            assert app.service.log.count(model="elec2") == before

    asyncio.run(scenario())


def test_a_quiet_server_commits_at_once_and_concurrent_requests_share_commits(project: Path) -> None:
    """A request that finds no other in flight (and none just ended) commits its predictions in its own call;
    requests that arrive together wait a loop turn and share a commit (app.QUIET_S, LogWriter.append)."""

    async def scenario() -> None:
        app = create_app(project)
        async with running(app) as http:
            writer = app.service.writer
            seen: list[bool] = []
            append = writer.append

            async def spy(predictions: Any, *, at_once: bool = False) -> None:
                seen.append(at_once)
                await append(predictions, at_once=at_once)

            writer.append = spy  # type: ignore[method-assign]
            for _ in range(3):
                assert (await http.post("/predict", json={"instances": [ROW]})).status_code == 200
                await asyncio.sleep(0.01)
            assert seen == [True, True, True]
            seen.clear()
            flushes = writer.flushes
            # Eight requests in flight together: each body arrives a loop turn after its headers, so all of
            # them are inside the app before the first is answered (httpx's transport calls the app one
            # request after another, each alone).
            body = json.dumps({"instances": [ROW]}).encode()
            answers: list[list[dict[str, Any]]] = [[] for _ in range(8)]

            async def request(out: list[dict[str, Any]]) -> None:
                async def receive() -> dict[str, Any]:
                    await asyncio.sleep(0)
                    return {"type": "http.request", "body": body, "more_body": False}

                async def send(message: dict[str, Any]) -> None:
                    out.append(message)

                scope = {"type": "http", "method": "POST", "path": "/predict",
                         "headers": [(b"content-type", b"application/json")]}
                await app(scope, receive, send)

            await asyncio.gather(*(request(out) for out in answers))
            assert [out[0]["status"] for out in answers] == [200] * 8
            assert seen.count(True) == 1 and seen[0], seen  # only the first found the server quiet
            assert writer.flushes - flushes < 8  # the others shared commits
            ids = [json.loads(out[1]["body"])["prediction_ids"][0] for out in answers]
            assert all(app.service.log.get(pid) is not None for pid in ids)

    asyncio.run(scenario())
