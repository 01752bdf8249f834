"""The app in process (httpx's ASGI transport, lifespan driven by hand): settings overrides, the
``overwrite`` feedback rule, and a prediction log that fails (the answer is refused, not given)."""

from __future__ import annotations

import asyncio
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


def test_instances_text_cuts_the_array_out_of_a_checked_body() -> None:
    import orjson

    from tidal.serve.inputs import instances_text

    for body in (b'{"instances": [{"a": 1}, {"a": 2.50}]}', b' \n{ "instances" :\t[{"a": 1e2}] }\r\n',
                 b'{"instances":[{"a":"x\\"}]"}]}'):
        text = instances_text(body)
        assert text is not None and orjson.loads(text) == orjson.loads(body)["instances"]
    # written some other way: not cut out (the log encodes the rows itself)
    assert instances_text(b'{"\\u0069nstances": [{"a": 1}]}') is None
    assert instances_text(b'[{"a": 1}]') is None
