"""Feedback over HTTP for a prediction that was archived after it was served (retention, issue #16): the
server's own log finds it in the archive and stores its label; a second label is a duplicate, an unknown id
is still refused."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.serve.test_app import ROW, running
from tidal.serve import create_app
from tidal.workspace import Workspace


def test_a_label_for_an_archived_prediction_is_accepted_over_http(project: Path) -> None:
    async def scenario() -> None:
        app = create_app(project)
        async with running(app) as http:
            ids = (await http.post("/predict", json={"instances": [ROW, ROW]})).json()["prediction_ids"]
            # another process (the loop, `tidal predictions archive`) archives them while the server runs
            with Workspace.open(project) as ws:
                assert ws.archive_predictions(datetime.now(UTC) + timedelta(minutes=1)).moved == 2
                assert ws.predictions.count() == 0
            ok = await http.post("/feedback", json={"prediction_id": ids[1], "label": 1})
            assert ok.status_code == 200 and ok.json() == {"stored": 1}, ok.text
            again = await http.post("/feedback", json={"prediction_id": ids[1], "label": 0})
            assert again.status_code == 409 and "already has a label" in again.json()["error"]
            unknown = await http.post("/feedback", json={"prediction_id": ids[1][:-4] + "00ff", "label": 1})
            assert unknown.status_code == 404 and "no prediction" in unknown.json()["error"], unknown.text
        with Workspace.open(project) as ws:
            assert ws.predictions.get(ids[1]).label == 1
            assert [p.id for p in ws.predictions.window(model="elec2", labelled=True, archived=True)] == [ids[1]]

    asyncio.run(scenario())
