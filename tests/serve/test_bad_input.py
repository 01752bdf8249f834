"""Bad input over real HTTP: each case gets its status code and an ``{"error"}`` body that names the field
and the problem, never a 500, never a stack trace, never the submitted values. A model that raises
inside predict gets a 500 with an error id that the server log carries too."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.serve.server import ServerProcess

ROW = {"period": 0.5, "nswprice": 0.06, "nswdemand": 0.42, "vicprice": 0.003, "vicdemand": 0.42, "transfer": 0.41}
SECRET = "SECRET-7f3a9c"
SECRET_NUMBER = 0.123456789


def assert_error(resp: httpx.Response, status: int, *needles: str, secrets: tuple[str, ...] = ()) -> str:
    assert resp.status_code == status, (resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json")
    body = resp.json()
    assert set(body) <= {"error", "error_id"} and isinstance(body["error"], str), body
    text = resp.text
    assert "Traceback" not in text and 'File "' not in text
    for needle in needles:
        assert needle in body["error"], (needle, body["error"])
    for secret in (SECRET, str(SECRET_NUMBER), *secrets):
        assert secret not in text, (secret, text)
    return str(body["error"])


def row(**changes: object) -> dict[str, object]:
    return {**{k: SECRET_NUMBER for k in ROW}, **changes}


@pytest.fixture(scope="module")
def http(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """One server for the module's Elec2 cases (they store nothing the others look at)."""
    root = tmp_path_factory.mktemp("bad") / "elec2"
    shutil.copytree(served_template, root)
    with ServerProcess(root) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        yield client


def test_predict_refuses_each_kind_of_bad_input(http: httpx.Client) -> None:
    post = lambda content: http.post("/predict", content=content,  # noqa: E731
                                     headers={"content-type": "application/json"})
    # not JSON
    assert_error(post(b'{"instances": [SECRET-7f3a9c'), 400, "not valid JSON")
    assert_error(post(b""), 400, "empty")
    # wrong shape
    assert_error(http.post("/predict", json=[row()]), 422, "must be a JSON object", "instances")
    assert_error(http.post("/predict", json={"rows": [row()]}), 422, "instances: missing")
    assert_error(http.post("/predict", json={"instances": SECRET}), 422, "instances: expected a list")
    assert_error(http.post("/predict", json={"instances": [row(), SECRET]}), 422,
                 "instances[1]: expected an object")
    assert_error(http.post("/predict", json={"instances": [row()], "extra": SECRET}), 422,
                 "unknown field(s) in the body: 'extra'")
    # missing and unknown columns: named, values not echoed
    missing = {k: SECRET_NUMBER for k in ROW if k != "transfer"}
    assert_error(http.post("/predict", json={"instances": [missing]}), 422,
                 "instances[0]: missing column 'transfer'")
    assert_error(http.post("/predict", json={"instances": [row(colour=SECRET)]}), 422,
                 "instances[0]: unknown column 'colour'")
    assert_error(http.post("/predict", json={"instances": [{**missing, "colour": SECRET}]}), 422,
                 "missing column 'transfer' and unknown column 'colour'")
    # wrong types
    rows = [row(), row(), row(), row(nswprice=SECRET)]
    msg = assert_error(http.post("/predict", json={"instances": rows}), 422)
    assert msg == "instances[3].nswprice: expected a number"
    assert_error(http.post("/predict", json={"instances": [row(period=True)]}), 422,
                 "instances[0].period: expected a number")
    assert_error(http.post("/predict", json={"instances": [row(period=[SECRET_NUMBER])]}), 422,
                 "instances[0].period: expected a number")
    # an empty list, too many rows
    assert_error(http.post("/predict", json={"instances": []}), 422, "instances: the list is empty")
    tiny = {k: 0 for k in ROW}
    assert_error(http.post("/predict", json={"instances": [tiny] * 21}), 413, "21 rows", "deploy.max_rows")


def test_body_size_limit_is_checked_before_parsing(http: httpx.Client) -> None:
    big = b'{"instances": [' + b",".join([b'{"x": "' + SECRET.encode() + b'"}'] * 300) + b"]}"
    assert len(big) > 4096
    declared = http.post("/predict", content=big, headers={"content-type": "application/json"})
    assert_error(declared, 413, "larger than the limit of 4096 bytes", "deploy.max_request_bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]

    streamed = http.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert_error(streamed, 413, "larger than the limit of 4096 bytes")
    assert_error(http.post("/feedback", content=big, headers={"content-type": "application/json"}), 413,
                 "larger than the limit")


def test_unknown_routes_and_methods_are_json(http: httpx.Client) -> None:
    assert_error(http.get(f"/{SECRET}"), 404, "not found")
    assert_error(http.post("/predict/extra", json={}), 404, "not found")
    assert_error(http.get("/predict"), 405, "/predict accepts POST")
    assert_error(http.delete("/model"), 405, "/model accepts GET")


def test_feedback_refuses_bad_input(http: httpx.Client) -> None:
    pid = http.post("/predict", json={"instances": [ROW]}).json()["prediction_ids"][0]
    assert_error(http.post("/feedback", content=b"{" + SECRET.encode(), headers={"content-type": "application/json"}),
                 400, "not valid JSON")
    assert_error(http.post("/feedback", json=SECRET), 422, "prediction_id")
    assert_error(http.post("/feedback", json=[]), 422, "empty")
    assert_error(http.post("/feedback", json={"prediction_id": pid}), 422, "label: missing")
    assert_error(http.post("/feedback", json={"prediction_id": 7, "label": 1}), 422,
                 "prediction_id: expected a prediction id")
    assert_error(http.post("/feedback", json={"prediction_id": pid, "label": SECRET}), 422,
                 "label: not one of the model's classes")
    assert_error(http.post("/feedback", json={"prediction_id": pid, "label": None}), 422, "label: expected a label")
    assert_error(http.post("/feedback", json={"prediction_id": pid, "label": 1, "note": SECRET}), 422,
                 "unknown field(s) 'note'")
    assert_error(http.post("/feedback", json=[{"prediction_id": pid, "label": 1}] * 2), 422,
                 "[1].prediction_id: the same id is given twice")
    # all or nothing: the unknown id at [1] is named, and the label at [0] was not stored either
    assert_error(http.post("/feedback", json=[{"prediction_id": pid, "label": 1},
                                              {"prediction_id": SECRET, "label": 0}]), 404,
                 "[1].prediction_id: no prediction with this id")
    assert http.post("/feedback", json={"prediction_id": pid, "label": 1}).json() == {"stored": 1}


def test_a_model_that_raises_and_a_column_that_may_not_be_null(colors: Path) -> None:
    with ServerProcess(colors) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        ok = http.post("/predict", json={"instances": [{"color": "red", "size": 0.5}]})
        assert ok.status_code == 200, ok.text
        info = http.get("/model").json()
        assert info["inputs"]["nullable"] == [] and info["serving"]["path"] == "generic"
        assert_error(http.post("/predict", json={"instances": [{"color": "red", "size": None}]}), 422,
                     "instances[0].size: null is not allowed for this column")
        assert_error(http.post("/predict", json={"instances": [{"color": 3, "size": 1.0}]}), 422,
                     "instances[0].color: expected a string")
        # an unseen category makes this model's OrdinalEncoder raise: a server-side failure
        failed = http.post("/predict", json={"instances": [{"color": SECRET, "size": 1.0}]})
        assert_error(failed, 500, secrets=("purple",))
        body = failed.json()
        assert body["error"] == "internal error" and re.fullmatch(r"[0-9a-f]{16}", body["error_id"])
        metrics = http.get("/metrics").text
        assert 'tidal_request_errors_total{endpoint="/predict",status="500"} 1.0' in metrics
    log = srv.log_text()
    line = next(ln for ln in log.splitlines() if body["error_id"] in ln)
    assert "internal error" in line and "/predict" in line
    assert "Traceback" in log  # the stack trace is in the server log, not in the answer


def test_no_champion_yet_is_503_not_500(tmp_path: Path) -> None:
    root = tmp_path / "empty"
    root.mkdir()
    (root / "tidal.yaml").write_text("version: 1\nname: empty\ndata: {source: data.csv, target: y}\n"
                                     "model: {estimator: sklearn.linear_model.LogisticRegression}\n")
    with ServerProcess(root).start(ready=False) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        for _ in range(100):
            try:
                if http.get("/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert_error(http.get("/readyz"), 503, "no champion")
        assert_error(http.post("/predict", json={"instances": [{"a": 1}]}), 503, "no champion")
        assert_error(http.get("/model"), 503)
