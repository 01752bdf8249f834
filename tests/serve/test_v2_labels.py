"""The Open Inference Protocol v2 with label features (issue 12, point 4; issue 11, point 5): a real ``tidal
serve`` of a model trained with ``prepare.label_features``. The model metadata marks the label-feature
inputs optional, an unmodified ``tritonclient.http`` client infers without them (the server fills them from
its log, as for ``/predict``), and a client that sends them has them checked like any input."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.e2e.test_label_features import _with_labels
from tests.serve.server import ServerProcess
from tidal import Workspace

FILLED = ["label_lag_1", "label_lag_2", "label_share_10"]


def tensors(meta: dict[str, Any], row: dict[str, Any], extra: dict[str, Any] | None = None) -> list[Any]:
    """One JSON tensor per column of ``row`` and of ``extra``, of the datatype the metadata gives."""
    values = {**row, **(extra or {})}
    out = []
    for spec in meta["inputs"]:
        if spec["name"] in values:
            out.append(tensor(spec["name"], spec["datatype"], values[spec["name"]]))
    return out


def tensor(name: str, datatype: str, value: Any) -> Any:
    t = triton.InferInput(name, [1], datatype)
    t.set_data_from_numpy(np.array([value], dtype=np.object_ if datatype == "BYTES" else np.float64),
                          binary_data=False)
    return t


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def test_tritonclient_leaves_label_features_to_the_server(small_project: Path, cli: Callable[..., Any]) -> None:
    _with_labels(small_project)
    cli("-C", str(small_project), "run", check=True)
    frame = pd.read_csv(small_project / "data" / "elec2.csv").tail(3)
    rows = frame.drop(columns=["up"]).to_dict(orient="records")
    with ServerProcess(small_project) as server, httpx.Client(base_url=server.url, timeout=10) as http:
        client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
        meta = client.get_model_metadata("elec2")
        optional = [t["name"] for t in meta["inputs"] if t.get("parameters", {}).get("optional") is True]
        assert optional == FILLED
        assert [t["name"] for t in meta["inputs"] if t["name"] not in FILLED] == list(rows[0])
        assert all("parameters" not in t for t in meta["inputs"] if t["name"] not in FILLED)

        first = client.infer("elec2", tensors(meta, rows[0]))
        pid = text(first.as_numpy("prediction_id")[0])
        with Workspace.open(small_project) as ws:  # no label known yet: missing values, imputed as in training
            assert ws.predictions.get(pid).inputs["label_lag_1"] is None
        assert http.post("/feedback", json={"prediction_id": pid, "label": 1}).status_code == 200

        # the same row through v2 and /predict: both fill the features from the same labels
        answer = client.infer("elec2", tensors(meta, rows[1]))
        expected = http.post("/predict", json={"instances": rows[1:2]}).json()
        assert answer.as_numpy("predict").tolist() == expected["predictions"]
        assert answer.as_numpy("probabilities").tolist() == expected["probabilities"]
        second = text(answer.as_numpy("prediction_id")[0])
        with Workspace.open(small_project) as ws:
            seen = ws.predictions.get(second).inputs
            assert (seen["label_lag_1"], seen["label_lag_2"], seen["label_share_10"]) == ("1", None, 1.0)
        assert http.post("/feedback", json={"prediction_id": second, "label": 0}).status_code == 200

        # a client that sends them: kept as sent, checked like any input
        sent = client.infer("elec2", tensors(meta, rows[2], {"label_lag_1": "0", "label_share_10": 0.25}))
        with Workspace.open(small_project) as ws:
            stored = ws.predictions.get(text(sent.as_numpy("prediction_id")[0])).inputs
            assert stored["label_lag_1"] == "0" and stored["label_share_10"] == 0.25
            logged = len(ws.predictions.window(model="elec2"))
        with pytest.raises(InferenceServerException) as bad:
            client.infer("elec2", [*tensors(meta, rows[2]), tensor("label_share_10", "BYTES", b"many")])
        assert "label_share_10" in str(bad.value) and "send FP64" in str(bad.value), bad.value
        with Workspace.open(small_project) as ws:
            assert len(ws.predictions.window(model="elec2")) == logged  # nothing logged for it
