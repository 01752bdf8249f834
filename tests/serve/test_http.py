"""The endpoints on their happy paths, over real HTTP against a real server process (Elec2 champion)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import httpx

from tests.serve.server import ServerProcess

ROW = {"period": 0.5, "nswprice": 0.06, "nswdemand": 0.42, "vicprice": 0.003, "vicdemand": 0.42, "transfer": 0.41}


def rows(n: int) -> list[dict[str, float | None]]:
    return [{**ROW, "period": i / 100} for i in range(n)]


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:]+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if all(have.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total


def test_predict_feedback_and_the_read_endpoints(server: ServerProcess, project: Path) -> None:
    from tidal import Workspace

    with httpx.Client(base_url=server.url, timeout=10) as http:
        one = http.post("/predict", json={"instances": [ROW]})
        assert one.status_code == 200, one.text
        assert one.headers["content-type"] == "application/json"
        body = one.json()
        assert set(body) == {"predictions", "probabilities", "prediction_ids", "model"}
        assert body["model"] == {"name": "elec2", "version": 1}
        assert body["predictions"][0] in (0, 1)
        assert len(body["probabilities"][0]) == 2 and math.isclose(sum(body["probabilities"][0]), 1.0)
        assert body["predictions"][0] == max((0, 1), key=lambda k: body["probabilities"][0][k])

        batch = rows(15)
        batch[3]["nswprice"] = None  # numeric columns are imputed: null is accepted
        many = http.post("/predict", json={"instances": batch}).json()
        assert len(many["predictions"]) == len(many["prediction_ids"]) == 15
        assert len(set(many["prediction_ids"]) | set(body["prediction_ids"])) == 16

        # every answered prediction is in the log, with its inputs and outputs as answered
        with Workspace.open(project) as ws:
            for i, pid in enumerate(many["prediction_ids"]):
                stored = ws.predictions.get(pid)
                assert stored.inputs == batch[i] and stored.output == many["predictions"][i]
                assert stored.proba == many["probabilities"][i]
                assert (stored.model, stored.version, stored.deployment) == ("elec2", 1, "direct")

        first, second = many["prediction_ids"][:2]
        assert http.post("/feedback", json={"prediction_id": first, "label": 1}).json() == {"stored": 1}
        listed = http.post("/feedback", json=[{"prediction_id": second, "label": 0},
                                              {"prediction_id": many["prediction_ids"][2], "label": 1}])
        assert listed.status_code == 200 and listed.json() == {"stored": 2}
        again = http.post("/feedback", json={"prediction_id": first, "label": 0})
        assert again.status_code == 409 and "already has a label" in again.json()["error"]
        unknown = http.post("/feedback", json={"prediction_id": "f" * 32, "label": 0})
        assert unknown.status_code == 404 and "no prediction with this id" in unknown.json()["error"]
        with Workspace.open(project) as ws:
            assert ws.predictions.get(first).label == 1 and ws.predictions.get(second).label == 0

        assert http.get("/healthz").json()["status"] == "ok"
        assert http.get("/readyz").json() == {"status": "ready", "model": {"name": "elec2", "version": 1}}

        info = http.get("/model").json()
        assert (info["name"], info["version"], info["state"], info["task"]) == ("elec2", 1, "deployed",
                                                                                 "classification")
        assert list(info["signature"]["columns"]) == list(ROW) and info["signature"]["classes"] == [0, 1]
        assert info["inputs"]["nullable"] == list(ROW)
        assert info["lineage"]["run_id"] and info["lineage"]["snapshot"] and "accuracy" in info["metrics"]
        assert info["serving"]["path"] == "fast" and info["serving"]["compiled_trees"] is True

        text = http.get("/metrics").text
        assert metric(text, "tidal_requests_total", endpoint="/predict", status="200") == 2
        assert metric(text, "tidal_request_errors_total", endpoint="/feedback", status="409") == 1
        assert metric(text, "tidal_request_errors_total", endpoint="/feedback", status="404") == 1
        assert metric(text, "tidal_request_duration_seconds_count", endpoint="/predict") == 2
        assert metric(text, "tidal_rows_predicted_total", model="elec2") == 16
        assert metric(text, "tidal_model_version", model="elec2") == 1

        docs = http.get("/docs")
        assert docs.status_code == 200 and "swagger" in docs.text.lower()
        spec = http.get("/openapi.json").json()
        predict = spec["paths"]["/predict"]["post"]
        assert predict["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("/PredictRequest")
        assert list(predict["requestBody"]["content"]["application/json"]["example"]["instances"][0]) == list(ROW)
        assert predict["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/PredictResponse")
        assert "422" in predict["responses"] and "413" in predict["responses"]
        schemas = spec["components"]["schemas"]
        assert {"PredictRequest", "PredictResponse", "FeedbackItem", "ErrorResponse", "ModelInfo"} <= set(schemas)
        assert "/feedback" in spec["paths"] and "/model" in spec["paths"] and "/metrics" in spec["paths"]
    assert "capped BLAS/OpenMP threads to 1" in server.log_text()
