"""The SDK's face is the REST face: ``Workspace.predict(rows)`` and ``Workspace.feedback(id, label)`` give
what ``/predict`` and ``/feedback`` give, on the same checks, into the same prediction log (issue #10,
point 5). The REST side is a real server process on the Elec2 champion."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.serve.server import ServerProcess
from tests.serve.test_http import ROW, rows
from tidal import Workspace
from tidal.core.errors import FeedbackRejected, ModelNotFound
from tidal.predict.errors import ApiError


def test_the_sdk_answers_as_the_server_does(server: ServerProcess, project: Path) -> None:
    batch = rows(20)  # the served template sets deploy.max_rows: 20
    with httpx.Client(base_url=server.url, timeout=10) as http:
        answer = http.post("/predict", json={"instances": batch})
        assert answer.status_code == 200, answer.text
        rest = answer.json()
    with Workspace.open(project) as ws:
        sdk = ws.predict(batch)
        assert sdk.predictions == rest["predictions"] and sdk.probabilities == rest["probabilities"]
        assert sdk.model == rest["model"] and len(sdk.prediction_ids) == 20
        assert set(sdk.prediction_ids).isdisjoint(rest["prediction_ids"])
        assert sdk.to_dict().keys() == rest.keys()
        # a DataFrame is the same rows
        assert ws.predict(pd.DataFrame(batch)).predictions == rest["predictions"]
        # the SDK's predictions are in the log that the server and the loop read, with their inputs
        stored = ws.predictions.get(sdk.prediction_ids[3])
        assert stored.inputs == batch[3] and stored.output == sdk.predictions[3] and stored.version == 1
        # and labels sent over HTTP and through the SDK land in the same place
        with httpx.Client(base_url=server.url, timeout=10) as http:
            answer = http.post("/feedback", json={"prediction_id": sdk.prediction_ids[0], "label": 1})
        assert answer.status_code == 200, answer.text
        assert ws.feedback(sdk.prediction_ids[1], 0) == 1
        assert ws.feedback([{"prediction_id": i, "label": 1} for i in sdk.prediction_ids[2:5]]) == 3
        assert [ws.predictions.get(i).label for i in sdk.prediction_ids[:5]] == [1, 0, 1, 1, 1]


def test_the_sdk_refuses_what_the_server_refuses_and_stores_nothing(project: Path) -> None:
    with Workspace.open(project) as ws:
        before = ws.predictions.count(model="elec2")
        with pytest.raises(ApiError, match=r"instances\[1\]\.nswprice") as bad:
            ws.predict([ROW, {**ROW, "nswprice": "high"}])
        assert bad.value.status == 422
        with pytest.raises(ApiError, match="transfer"):
            ws.predict([{k: v for k, v in ROW.items() if k != "transfer"}])
        with pytest.raises(ApiError, match="number"):  # a NumPy scalar is not a JSON value: named, not guessed
            ws.predict([{**ROW, "period": np.float32(0.5)}])
        assert ws.predictions.count(model="elec2") == before

        ids = ws.predict([ROW]).prediction_ids
        with pytest.raises(ApiError, match="label") as label:  # the champion's classes are 0 and 1
            ws.feedback(ids[0], "maybe")
        assert label.value.status == 422
        ws.feedback(ids[0], 1)
        with pytest.raises(FeedbackRejected) as twice:  # deploy.feedback: reject
            ws.feedback(ids[0], 0)
        assert twice.value.reason == "duplicate" and ws.predictions.get(ids[0]).label == 1
        with pytest.raises(FeedbackRejected) as unknown:
            ws.feedback("0" * 32, 1)
        assert unknown.value.reason == "unknown"
        # all or nothing: one unknown id in a list stores none of the labels
        fresh = ws.predict([ROW, ROW]).prediction_ids
        with pytest.raises(FeedbackRejected):
            ws.feedback([{"prediction_id": fresh[0], "label": 1}, {"prediction_id": "f" * 32, "label": 1}])
        assert ws.predictions.get(fresh[0]).label is None


def test_the_sdk_follows_a_promotion(project: Path) -> None:
    with Workspace.open(project) as ws:
        assert ws.predict([ROW]).model == {"name": "elec2", "version": 1}
        mv = ws.models.get("elec2:1")
        again = ws.registry.register(mv.__class__(**{**mv.__dict__, "version": 0}), reason="the same model again")
        ws.promote("elec2", again.version)
        answer = ws.predict([ROW])
        assert answer.model == {"name": "elec2", "version": again.version}
        assert ws.predictions.get(answer.prediction_ids[0]).version == again.version


def test_string_classes_categories_and_nullable_columns(colors: Path, tmp_path: Path) -> None:
    """A model trained by tidal on a frame of every tabular column kind, with string class labels."""
    rng = np.random.default_rng(1)
    n = 400
    frame = pd.DataFrame({
        "color": pd.Series(rng.choice(["red", "green", "blue"], n), dtype="string"),
        "grade": pd.Categorical(rng.choice(["a", "b", "c"], n)),
        "count": pd.array(np.where(rng.random(n) < 0.1, None, rng.integers(0, 9, n)), dtype="Int64"),
        "size": rng.normal(size=n),
    })
    frame["kind"] = np.where((frame["color"] == "red") ^ (frame["size"] > 0), "cat", "dog")
    root = tmp_path / "kinds"
    (root / "data").mkdir(parents=True)
    frame.to_parquet(root / "data" / "kinds.parquet")
    (root / "tidal.yaml").write_text(
        "version: 1\nname: kinds\ndata: {source: data/kinds.parquet, target: kind}\n"
        "model: {estimator: sklearn.ensemble.HistGradientBoostingClassifier}\n")
    with Workspace.open(root) as ws:
        with pytest.raises(ModelNotFound, match="no champion yet"):
            ws.predict(frame.drop(columns="kind").head(2))
        assert ws.run().model is not None
        features = frame.drop(columns="kind").head(30)
        answer = ws.predict(features)  # a DataFrame with NA, categories and strings, as the user has it
        assert set(answer.predictions) <= {"cat", "dog"} and len(answer.prediction_ids) == 30
        assert ws.predictions.get(answer.prediction_ids[0]).inputs["color"] == features["color"].iloc[0]
        assert ws.feedback(answer.prediction_ids[0], "cat") == 1
        with pytest.raises(ApiError, match="label"):
            ws.feedback(answer.prediction_ids[1], "bird")
