"""The Open Inference Protocol v2 (KServe / Triton REST) against a real ``tidal serve``, driven by an unmodified
``tritonclient.http.InferenceServerClient``: JSON and binary tensors give the same predictions as ``/predict``
for the same rows, are logged, and take feedback; canary routing applies; bad requests are a 4xx with
``{"error"}`` and log nothing (tidal.serve.v2)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.serve.server import ServerProcess, eventually
from tests.serve.test_bad_input import SECRET, assert_error
from tests.serve.test_http import ROW, metric
from tests.serve.test_trials import challenger_is, set_strategy

COLUMNS = list(ROW)


def rows(n: int) -> list[dict[str, Any]]:
    return [{**ROW, "period": (i % 48) / 48, "nswprice": 0.03 + (i % 17) / 200, "nswdemand": (i % 23) / 23}
            for i in range(n)]


def tensors(batch: list[dict[str, Any]], *, binary: bool, dtype: str = "FP64") -> list[triton.InferInput]:
    out = []
    for col in COLUMNS:
        values = np.array([r[col] for r in batch], dtype=np.float64 if dtype == "FP64" else np.float32)
        tensor = triton.InferInput(col, list(values.shape), dtype)
        tensor.set_data_from_numpy(values, binary_data=binary)
        out.append(tensor)
    return out


def outputs(binary: bool) -> list[triton.InferRequestedOutput]:
    return [triton.InferRequestedOutput(name, binary_data=binary)
            for name in ("predict", "probabilities", "prediction_id")]


def text(value: bytes | str) -> str:
    """A BYTES element as tritonclient gives it: bytes from binary data, str from JSON."""
    return value.decode() if isinstance(value, bytes) else value


def count_logged(project: Path) -> int:
    from tidal import Workspace

    with Workspace.open(project) as ws:
        return len(ws.predictions.window(model="elec2"))


def test_tritonclient_infers_as_predict_does(server: ServerProcess, project: Path) -> None:
    from tidal import Workspace

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("elec2") and client.is_model_ready("elec2", "1")
    assert not client.is_model_ready("other")
    assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
    meta = client.get_model_metadata("elec2")
    assert meta["name"] == "elec2" and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": c, "datatype": "FP64", "shape": [-1]} for c in COLUMNS]
    assert meta["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]},
                               {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
                               {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]}]
    assert client.get_model_metadata("elec2", "1") == meta

    batch = rows(12)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        expected = http.post("/predict", json={"instances": batch}).json()
        answers: dict[str, Any] = {}
        for binary in (False, True):
            result = client.infer("elec2", tensors(batch, binary=binary), outputs=outputs(binary))
            answers[f"binary={binary}"] = result
        answers["default outputs"] = client.infer("elec2", tensors(batch, binary=True))  # all, binary
        answers["FP32, version 1"] = client.infer("elec2", tensors(batch, binary=False, dtype="FP32"),
                                                  model_version="1")
        ids: list[str] = []
        for how, result in answers.items():
            response = result.get_response()
            assert response["model_name"] == "elec2" and response["model_version"] == "1", how
            predict = result.as_numpy("predict")
            proba = result.as_numpy("probabilities")
            assert predict.dtype == np.int64 and proba.shape == (12, 2), how
            if how.startswith("FP32"):  # other inputs (rounded to float32): answered, not compared
                continue
            assert predict.tolist() == expected["predictions"], how
            assert proba.tolist() == expected["probabilities"], how  # the same floats, bit for bit
            found = [text(b) for b in result.as_numpy("prediction_id").tolist()]
            assert len(set(found)) == 12 and not set(found) & set(ids) and not set(found) & set(
                expected["prediction_ids"]), how
            ids += found
        binary_out = answers["binary=True"].get_response()["outputs"]
        assert all("binary_data_size" in o["parameters"] and "data" not in o for o in binary_out)
        assert all("data" in o for o in answers["binary=False"].get_response()["outputs"])

        # logged as /predict logs: the rows as checked, the answers as given; feedback takes the ids
        with Workspace.open(project) as ws:
            for i, pid in enumerate(ids[:24]):
                stored = ws.predictions.get(pid)
                assert stored.inputs == batch[i % 12] and stored.output == expected["predictions"][i % 12]
                assert stored.proba == expected["probabilities"][i % 12]
                assert (stored.model, stored.version, stored.deployment) == ("elec2", 1, "direct")
        assert http.post("/feedback", json=[{"prediction_id": ids[0], "label": 1},
                                            {"prediction_id": ids[13], "label": 0}]).json() == {"stored": 2}
        with Workspace.open(project) as ws:
            assert ws.predictions.get(ids[0]).label == 1 and ws.predictions.get(ids[13]).label == 0

        # a plain JSON request (nested data), as a KServe client sends it
        plain = http.post("/v2/models/elec2/infer", json={
            "id": "req-1", "inputs": [{"name": c, "shape": [2, 1], "datatype": "FP64",
                                       "data": [[r[c]] for r in batch[:2]]} for c in COLUMNS]})
        assert plain.status_code == 200 and plain.headers["content-type"] == "application/json"
        doc = plain.json()
        assert doc["id"] == "req-1" and [o["name"] for o in doc["outputs"]] == ["predict", "probabilities",
                                                                             "prediction_id"]
        assert doc["outputs"][0]["data"] == expected["predictions"][:2]
        assert doc["outputs"][1]["shape"] == [2, 2] and doc["outputs"][1]["data"] == [
            p for row in expected["probabilities"][:2] for p in row]
        scraped = http.get("/metrics").text
        assert metric(scraped, "tidal_requests_total", endpoint="/v2/models/{name}/infer", status="200") == 5
        assert metric(scraped, "tidal_requests_total", endpoint="/v2/models/{name}", status="200") == 1
        assert metric(scraped, "tidal_requests_total", endpoint="/v2/models/{name}/versions/{version}") == 1
        assert count_logged(project) == 12 * 5 + 2


def test_categorical_columns_take_bytes_tensors(colors: Path) -> None:
    """The colors model: a categorical column (BYTES, binary or JSON) and a numeric one that may not be null."""
    with ServerProcess(colors) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        client = triton.InferenceServerClient(url=srv.url.removeprefix("http://"))
        meta = client.get_model_metadata("colors")
        assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [("color", "BYTES"), ("size", "FP64")]
        batch = [{"color": c, "size": s} for c, s in (("red", 0.5), ("green", -1.0), ("blue", 2.0))]
        expected = http.post("/predict", json={"instances": batch}).json()
        for binary in (False, True):
            color = triton.InferInput("color", [3], "BYTES")
            color.set_data_from_numpy(np.array([r["color"].encode() for r in batch], dtype=np.object_),
                                      binary_data=binary)
            size = triton.InferInput("size", [3], "FP64")
            size.set_data_from_numpy(np.array([r["size"] for r in batch]), binary_data=binary)
            result = client.infer("colors", [color, size], outputs=outputs(binary))
            assert result.as_numpy("predict").tolist() == expected["predictions"]
            assert result.as_numpy("probabilities").tolist() == expected["probabilities"]
        # a NaN is a missing value: refused for a column the model cannot take missing
        size = triton.InferInput("size", [3], "FP64")
        size.set_data_from_numpy(np.array([0.5, np.nan, 1.0]), binary_data=True)
        color = triton.InferInput("color", [3], "BYTES")
        color.set_data_from_numpy(np.array([b"red"] * 3, dtype=np.object_), binary_data=True)
        with pytest.raises(InferenceServerException) as refused:
            client.infer("colors", [color, size])
        assert refused.value.status() == "422" and "input 'size', element 1: null is not allowed" in str(
            refused.value)


@pytest.mark.slow
def test_v2_follows_the_canary(project: Path) -> None:
    from tidal import Workspace

    set_strategy(project, "{canary: {percent: 50, min_requests: 50}}")
    with ServerProcess(project) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        eventually(challenger_is(http, 2), what="the canary loading")
        client = triton.InferenceServerClient(url=srv.url.removeprefix("http://"))
        versions = []
        with Workspace.open(project) as ws:
            for _ in range(10):
                result = client.infer("elec2", tensors(rows(2), binary=True))
                version = int(result.get_response()["model_version"])
                versions.append(version)
                pid = text(result.as_numpy("prediction_id")[0])
                stored = ws.predictions.get(pid)
                assert (stored.version, stored.deployment) == ((2, "canary") if version == 2 else (1, "direct"))
        assert versions.count(2) == 5


@pytest.fixture(scope="module")
def bad(served_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, Path]]:
    root = tmp_path_factory.mktemp("v2bad") / "elec2"
    shutil.copytree(served_template, root)
    with ServerProcess(root) as srv, httpx.Client(base_url=srv.url, timeout=10) as client:
        yield client, root


def tensor(col: str, data: list[Any], datatype: str = "FP64", shape: list[int] | None = None) -> dict[str, Any]:
    return {"name": col, "shape": shape or [len(data)], "datatype": datatype, "data": data}


def good(n: int = 1) -> list[dict[str, Any]]:
    return [tensor(c, [ROW[c]] * n) for c in COLUMNS]


def binary_body(values: dict[str, bytes], sizes: dict[str, int] | None = None, n: int = 1) -> tuple[bytes, int]:
    header = {"inputs": [{"name": c, "shape": [n], "datatype": "FP64",
                          "parameters": {"binary_data_size": (sizes or {}).get(c, len(v))}}
                         for c, v in values.items()]}
    import orjson

    text = orjson.dumps(header)
    return text + b"".join(values.values()), len(text)


def test_bad_v2_requests_are_4xx_and_log_nothing(bad: tuple[httpx.Client, Path]) -> None:
    http, root = bad
    before = count_logged(root)
    infer = "/v2/models/elec2/infer"

    def post(doc: Any, path: str = infer) -> httpx.Response:
        return http.post(path, json=doc)

    # the model: its name, its version
    assert_error(post({"inputs": good()}, "/v2/models/elec3/infer"), 404, "no model named 'elec3'", "'elec2'")
    assert_error(post({"inputs": good()}, "/v2/models/elec2/versions/2/infer"), 404, "version '2'",
                 "version 1 is")
    assert_error(http.get("/v2/models/nope"), 404, "no model named 'nope'")
    assert_error(http.get("/v2/models/elec2/versions/7/ready"), 404, "not serving")
    # the tensors: names, shapes, datatypes, data
    assert_error(post({"inputs": [*good(), tensor("colour", [1.0])]}), 400, "inputs[6]: unknown input 'colour'",
                 "the model takes 'period'")
    assert_error(post({"inputs": good()[1:]}), 400, "missing input 'period'")
    assert_error(post({"inputs": [*good(), good()[0]]}), 400, "input 'period' is given twice")
    assert_error(post({"inputs": [tensor("period", [0.5, 0.5], shape=[1, 2]), *good()[1:]]}), 400,
                 "shape must be [rows] or [rows, 1]")
    assert_error(post({"inputs": [tensor("period", [0.5, 0.5]), *good()[1:]]}), 400,
                 "input 'nswprice': shape says 1 rows where the inputs before it have 2")
    assert_error(post({"inputs": [tensor("period", [0.5], shape=[2]), *good()[1:]]}), 400,
                 "data has 1 elements, the shape says 2")
    assert_error(post({"inputs": [tensor("period", [SECRET], "BYTES"), *good()[1:]]}), 400,
                 "input 'period': datatype 'BYTES' does not fit a numeric column; send FP64")
    assert_error(post({"inputs": [tensor("period", [SECRET]), *good()[1:]]}), 400,
                 "data of a FP64 tensor must be numbers")
    assert_error(post({"inputs": [tensor("period", [1.5], "INT64"), *good()[1:]]}), 400, "whole numbers")
    assert_error(post({"inputs": [{"name": "period", "shape": [1], "datatype": "FP64"}, *good()[1:]]}), 400,
                 "no data")
    assert_error(post({"inputs": good(), "outputs": [{"name": "score"}]}), 400, "unknown output 'score'",
                 "'predict'")
    assert_error(post({"rows": good()}), 400, "inputs: expected a list")
    assert_error(post([1]), 400, "must be a JSON object")
    # not JSON, the wrong type, a web page's request
    assert_error(http.post(infer, content=b'{"inputs": [SECRET-7f3a9c'), 400, "not valid JSON")
    assert_error(http.post(infer, content=b"{}", headers={"content-type": "text/plain"}), 415, "inference request")
    assert_error(http.post(infer, content=b"{}", headers={"origin": "http://evil.example"}), 403, "web page")
    assert_error(http.post(infer, content=b"{}", headers={"content-encoding": "gzip"}), 415, "uncompressed")
    # binary data that does not add up
    values = {c: np.array([ROW[c]]).tobytes() for c in COLUMNS}
    body, length = binary_body(values, {"period": 4})
    assert_error(http.post(infer, content=body, headers={"inference-header-content-length": str(length)}), 400,
                 "input 'period': binary_data_size is 4 bytes, 1 FP64 elements take 8")
    body, length = binary_body(values, {"transfer": 16})
    assert_error(http.post(infer, content=body, headers={"inference-header-content-length": str(length)}), 400,
                 "binary_data_size says 16 bytes, only 8 remain")
    body, length = binary_body(values)
    assert_error(http.post(infer, content=body + b"\0" * 8, headers={"inference-header-content-length": str(length)}),
                 400, "8 bytes of binary data beyond")
    assert_error(http.post(infer, content=body, headers={"inference-header-content-length": str(len(body) + 1)}),
                 400, "Inference-Header-Content-Length is")
    inf = {**values, "period": np.array([np.inf]).tobytes()}
    body, length = binary_body(inf)
    assert_error(http.post(infer, content=body, headers={"inference-header-content-length": str(length)}), 400,
                 "infinity")
    # the limits: rows (deploy.max_rows 20), bytes (deploy.max_request_bytes 4096)
    assert_error(post({"inputs": good(21)}), 413, "21 rows is more than the limit of 20", "deploy.max_rows")
    assert_error(post({"inputs": good(20), "id": "x" * 5000}), 413, "deploy.max_request_bytes")
    # the row checks, in the protocol's words
    nulls = [tensor("period", [None]), *good()[1:]]
    assert post({"inputs": nulls}).status_code == 200  # numeric columns are imputed: a missing value is taken
    assert count_logged(root) == before + 1
    # the unmodified client reads the errors
    client = triton.InferenceServerClient(url=str(http.base_url).removeprefix("http://").rstrip("/"))
    wrong = triton.InferInput("period", [1], "BOOL")
    wrong.set_data_from_numpy(np.array([True]), binary_data=True)
    with pytest.raises(InferenceServerException) as refused:
        client.infer("elec2", [wrong])
    assert refused.value.status() == "400" and "does not fit a numeric column" in refused.value.message()
    with pytest.raises(InferenceServerException) as unknown:
        client.get_model_metadata("nope")
    assert unknown.value.status() == "404"
    assert count_logged(root) == before + 1


def test_openapi_lists_the_v2_routes_and_invocations(bad: tuple[httpx.Client, Path]) -> None:
    http, _ = bad
    paths = http.get("/openapi.json").json()["paths"]
    for path in ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
                 "/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer", "/invocations"):
        assert path in paths, path
    assert http.get("/v2/health/live").json() == {"live": True}
    assert http.get("/v2/health/ready").json() == {"ready": True}
    assert http.get("/v2/models/elec2/ready").json() == {"name": "elec2", "ready": True}


def test_the_documented_routes_answer_as_the_hot_path(project: Path) -> None:
    """FastAPI's declared /invocations and infer routes (reached when the app is mounted without TidalApp's
    hot path) answer as the hot path does."""
    import asyncio

    from tests.serve.test_app import running
    from tidal.serve import create_app

    async def scenario() -> None:
        app = create_app(project)
        async with running(app) as hot:
            inner = httpx.AsyncClient(transport=httpx.ASGITransport(app=app.fastapi), base_url="http://tidal")
            doc = {"inputs": good(2), "outputs": [{"name": "predict"}, {"name": "probabilities"}]}
            values = {c: np.array([ROW[c]] * 2).tobytes() for c in COLUMNS}
            body, length = binary_body(values, n=2)
            binary = {"content": body, "headers": {"inference-header-content-length": str(length)}}
            binary_out = {"inputs": good(2), "outputs": [{"name": "predict", "parameters": {"binary_data": True}}]}
            for path, kwargs in (("/v2/models/elec2/infer", {"json": doc}), ("/v2/models/elec2/infer", binary),
                                 ("/v2/models/elec2/infer", {"json": binary_out}),
                                 ("/invocations", {"json": {"instances": [ROW, ROW]}})):
                a, b = await hot.post(path, **kwargs), await inner.post(path, **kwargs)
                assert a.status_code == b.status_code == 200, (a.text, b.text)
                assert a.headers["content-type"] == b.headers["content-type"]
                if path == "/invocations":
                    assert a.json()["predictions"] == b.json()["predictions"]
                elif kwargs.get("json") is binary_out:  # no ids asked for: the same bytes
                    assert a.content == b.content and a.headers["content-type"] == "application/octet-stream"
                    assert a.headers["inference-header-content-length"] == b.headers["inference-header-content-length"]
                else:
                    assert a.json()["outputs"][:2] == b.json()["outputs"][:2]
            wrong = await inner.post("/v2/models/nope/infer", json=doc)
            assert wrong.status_code == 404 and "no model named 'nope'" in wrong.json()["error"]
            await inner.aclose()

    asyncio.run(scenario())


def test_a_one_row_form_sent_again_answers_as_predict(bad: tuple[httpx.Client, Path]) -> None:
    """The server reads a one-row form of numbers it has seen as one flat row (tidal.serve.v2plan): the
    answers are /predict's for the same rows, and data that does not fit the form is refused as before."""
    http, root = bad
    infer = "/v2/models/elec2/infer"
    for row in rows(6):  # the first body is read in full (and learned), the others through its template
        doc = {"inputs": [tensor(c, [row[c]]) for c in COLUMNS]}
        answer = http.post(infer, json=doc).json()
        expected = http.post("/predict", json={"instances": [row]}).json()
        got = {o["name"]: o["data"] for o in answer["outputs"]}
        assert got["predict"] == expected["predictions"]
        assert got["probabilities"] == expected["probabilities"][0]
        assert len(got["prediction_id"]) == 1 and got["prediction_id"] != expected["prediction_ids"]
    before = count_logged(root)
    assert_error(http.post(infer, json={"inputs": [tensor("period", [0.5, 0.5], shape=[1]), *good()[1:]]}), 400,
                 "input 'period': data has 2 elements, the shape says 1")
    assert_error(http.post(infer, json={"inputs": [tensor("period", [{}], shape=[1]), *good()[1:]]}), 400,
                 "data of a FP64 tensor must be numbers")
    assert count_logged(root) == before
