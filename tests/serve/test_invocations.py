"""``POST /invocations`` with MLflow's four scoring formats against a real ``tidal serve``: each gives the answers
``/predict`` gives for the same rows, is logged, and takes feedback; bad bodies are a 4xx with ``{"error"}``
that names the format's own field, and log nothing (tidal.serve.invocations).

The bodies of the first test are built by hand, following MLflow's documented scoring formats (``mlflow models
serve``: ``dataframe_split``, ``dataframe_records``, ``instances``, ``inputs``), as
``pandas.DataFrame.to_dict(orient="split" / "records")`` writes them; the last test uses MLflow's own client and
request builders (``mlflow-skinny``, in the dev extra: MLflow's client side without its server).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from tests.serve.server import ServerProcess
from tests.serve.test_bad_input import assert_error
from tests.serve.test_http import ROW
from tests.serve.test_v2 import COLUMNS, count_logged, rows


def bodies(batch: list[dict[str, Any]]) -> dict[str, Any]:
    frame = pd.DataFrame(batch, columns=COLUMNS)
    split = frame.to_dict(orient="split")
    return {
        "dataframe_split": {"dataframe_split": {"columns": split["columns"], "data": split["data"],
                                                "index": split["index"]}},
        "dataframe_records": {"dataframe_records": frame.to_dict(orient="records")},
        "instances (objects)": {"instances": batch},
        "instances (lists)": {"instances": [[r[c] for c in COLUMNS] for r in batch]},
        "inputs (columns)": {"inputs": {c: [r[c] for r in batch] for c in COLUMNS}},
        "inputs (lists)": {"inputs": [[r[c] for c in COLUMNS] for r in batch], "params": {}},
    }


def test_each_mlflow_format_answers_as_predict(server: ServerProcess, project: Path) -> None:
    from tidal import Workspace

    batch = rows(7)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        expected = http.post("/predict", json={"instances": batch}).json()
        ids = []
        for how, body in bodies(batch).items():
            answer = http.post("/invocations", json=body)
            assert answer.status_code == 200, (how, answer.text)
            doc = answer.json()
            assert set(doc) == {"predictions", "probabilities", "prediction_ids", "model"}, how
            assert doc["predictions"] == expected["predictions"], how
            assert doc["probabilities"] == expected["probabilities"], how
            assert doc["model"] == {"name": "elec2", "version": 1}
            ids.append(doc["prediction_ids"])
        assert len({pid for found in ids for pid in found}) == 7 * 6
        with Workspace.open(project) as ws:
            for found in ids:
                for i, pid in enumerate(found):
                    stored = ws.predictions.get(pid)
                    assert stored.inputs == batch[i] and stored.output == expected["predictions"][i]
                    assert stored.deployment == "direct"
        assert http.post("/feedback", json={"prediction_id": ids[0][0], "label": 1}).json() == {"stored": 1}
        assert count_logged(project) == 7 * 7

        # bad bodies: each a 4xx naming what is wrong, nothing logged
        post = lambda doc: http.post("/invocations", json=doc)  # noqa: E731
        assert_error(http.post("/invocations", content=b"{", headers={"content-type": "application/json"}), 400,
                     "not valid JSON")
        assert_error(http.post("/invocations", content=b"a,b\n1,2", headers={"content-type": "text/csv"}), 415,
                     "must be JSON")
        assert_error(post([ROW]), 422, "dataframe_split, dataframe_records, instances, inputs")
        assert_error(post({"rows": [ROW]}), 422, "unknown field(s) in the body: 'rows'")
        assert_error(post({"instances": [ROW], "inputs": [ROW]}), 422, "exactly one of", "it has instances, inputs")
        assert_error(post({"instances": [ROW], "params": {"temperature": 1}}), 422, "params: this model takes no")
        assert_error(post({"dataframe_split": {"data": [[1]]}}), 422, 'dataframe_split: expected {"columns"')
        assert_error(post({"dataframe_split": {"columns": COLUMNS, "data": [[1.0]]}}), 422,
                     "dataframe_split.data[0]: expected a list of 6 values")
        split = {"columns": COLUMNS, "data": [[ROW[c] for c in COLUMNS], [*[ROW[c] for c in COLUMNS[:-1]], "x"]]}
        assert_error(post({"dataframe_split": split}), 422, "dataframe_split.data[1].transfer: expected a number")
        assert_error(post({"dataframe_records": [{**ROW, "colour": 1}]}), 422,
                     "dataframe_records[0]: unknown column 'colour'")
        assert_error(post({"instances": [[1.0, 2.0]]}), 422, "instances[0]: a row given as a list must have 6 values")
        assert_error(post({"inputs": {"period": [1.0], "nswprice": [1.0, 2.0]}}), 422, "as many values")
        columns = {c: [ROW[c]] for c in COLUMNS}
        assert_error(post({"inputs": {**columns, "nswprice": [True]}}), 422, "inputs.nswprice[0]: expected a number")
        assert_error(post({"dataframe_records": [ROW] * 21}), 413, "dataframe_records: 21 rows", "deploy.max_rows")
        assert_error(post({"dataframe_records": []}), 422, "dataframe_records: the list is empty")
        assert count_logged(project) == 7 * 7


def test_mlflows_own_client_scores_against_tidal(server: ServerProcess, project: Path) -> None:
    """A client written for ``mlflow models serve`` moves over unchanged: MLflow's ``ScoringServerClient`` waits
    on /ping, then invokes with the bodies MLflow's own helpers build (a DataFrame, and the ``inputs`` dict
    that ``convert_input_example_to_serving_input`` writes)."""
    import json

    from mlflow.models import convert_input_example_to_serving_input
    from mlflow.pyfunc.scoring_server.client import ScoringServerClient

    from tidal import Workspace

    batch = rows(4)
    frame = pd.DataFrame(batch, columns=COLUMNS)
    client = ScoringServerClient("127.0.0.1", server.port)
    client.wait_server_ready(timeout=10)
    assert client.get_version() == httpx.get(f"{server.url}/version").text != ""
    expected = httpx.post(f"{server.url}/predict", json={"instances": batch}, timeout=10).json()

    answer = client.invoke(frame)  # MLflow sends it as dataframe_split, its index included
    assert answer["predictions"] == expected["predictions"]
    assert answer["probabilities"] == expected["probabilities"]
    built = json.loads(convert_input_example_to_serving_input(frame.to_dict(orient="list")) or "{}")
    assert set(built) == {"inputs"}
    by_columns = httpx.post(f"{server.url}/invocations", json=built, timeout=10).json()
    assert by_columns["predictions"] == expected["predictions"]

    with Workspace.open(project) as ws:  # logged like /predict, and labelled through /feedback
        assert ws.predictions.get(answer["prediction_ids"][0]).inputs == batch[0]
    fed = httpx.post(f"{server.url}/feedback", json={"prediction_id": answer["prediction_ids"][0], "label": 0})
    assert fed.json() == {"stored": 1}

    try:  # a bad body through MLflow's client: MLflow raises with tidal's 4xx and its error in the message
        client.invoke(frame.drop(columns=[COLUMNS[0]]))
    except Exception as exc:  # MLflow raises a bare Exception
        assert "error code 422" in str(exc) and COLUMNS[0] in str(exc), exc
    else:
        raise AssertionError("a frame without a column was answered")
