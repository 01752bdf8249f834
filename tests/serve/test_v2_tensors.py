"""Tensors to rows and answers to tensors (tidal.serve.v2), in process, for the column kinds the served test
models lack (boolean, integer, datetime, label features): the binary encodings are made and read by
tritonclient's own utilities, so both ends of the binary tensor extension are checked against Triton's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import orjson
import pytest
import tritonclient.http as triton
from tritonclient.utils import serialize_byte_tensor

from tidal.core.signature import Signature
from tidal.predict.errors import ApiError
from tidal.predict.inputs import InputSchema
from tidal.serve.v2 import InferRequest, predict_datatype, respond, split_body

KINDS = {"flag": "boolean", "count": "integer", "when": "datetime", "x": "numeric", "label_lag_1": "numeric"}


def state(classes: list[Any] | None = None, kinds: dict[str, str] | None = None,
          nullable: tuple[str, ...] = ("x",)) -> Any:
    sig = Signature(columns=dict(kinds or KINDS), target="y", classes=classes, task="classification" if classes
                    else "regression", label_features={"lags": [1]})
    mv = SimpleNamespace(signature=sig, format="skops", name="m", version=3)
    return SimpleNamespace(name="m", version=3, classes=classes, mv=mv,
                           schema=InputSchema.from_signature(sig, nullable))


def parse(doc: dict[str, Any], binary: bytes = b"", classes: list[Any] | None = None) -> InferRequest:
    return InferRequest.parse(doc, binary, state(classes), max_rows=10)


def test_json_tensors_of_each_kind_become_rows() -> None:
    req = parse({"inputs": [
        {"name": "x", "shape": [2, 1], "datatype": "FP32", "data": [[0.5], [None]]},
        {"name": "flag", "shape": [2], "datatype": "BOOL", "data": [True, False]},
        {"name": "count", "shape": [2], "datatype": "INT64", "data": [3, 4]},
        {"name": "when", "shape": [2], "datatype": "BYTES", "data": ["2024-01-01T00:00:00", "2024-01-02"]},
    ], "outputs": [{"name": "prediction_id"}]}, classes=["a", "b"])
    # in the signature's order; the label feature left out (the server fills it)
    assert req.rows == [{"flag": True, "count": 3, "when": "2024-01-01T00:00:00", "x": 0.5},
                        {"flag": False, "count": 4, "when": "2024-01-02", "x": None}]
    assert req.outputs == [("prediction_id", False)]


def test_binary_tensors_as_tritonclient_encodes_them() -> None:
    parts = {"x": np.array([0.25, np.nan], dtype=np.float32).tobytes(),
             "flag": np.array([True, False]).tobytes(),
             "count": np.array([7, -1], dtype=np.int32).tobytes(),
             "when": serialize_byte_tensor(np.array([b"2024-01-01", b"2024-02-01T12:00"],
                                                    dtype=np.object_)).item()}
    types = {"x": "FP32", "flag": "BOOL", "count": "INT32", "when": "BYTES"}
    header = {"inputs": [{"name": c, "shape": [2], "datatype": types[c], "parameters": {"binary_data_size": len(b)}}
                         for c, b in parts.items()], "parameters": {"binary_data_output": True}}
    text = orjson.dumps(header)
    doc, binary = split_body(text + b"".join(parts.values()), str(len(text)).encode())
    req = parse(doc, binary)
    assert req.rows == [{"flag": True, "count": 7, "when": "2024-01-01", "x": 0.25},
                        {"flag": False, "count": -1, "when": "2024-02-01T12:00", "x": None}]  # NaN: missing
    assert req.outputs == [("predict", True), ("prediction_id", True)]  # a regressor: no probabilities


@pytest.mark.parametrize(("change", "message"), [
    ({"datatype": "FP64"}, "input 'flag': datatype 'FP64' does not fit a boolean column; send BOOL"),
    ({"data": [1, 0]}, "data of a BOOL tensor must be true or false"),
    ({"shape": [3]}, "data has 2 elements, the shape says 3"),
    ({"shape": [2, 2]}, "shape must be [rows] or [rows, 1]"),
    ({"parameters": {"binary_data_size": 2}}, "has both data and binary_data_size"),
])
def test_a_wrong_tensor_is_named(change: dict[str, Any], message: str) -> None:
    flag = {"name": "flag", "shape": [2], "datatype": "BOOL", "data": [True, False], **change}
    others = [{"name": c, "shape": [2], "datatype": "FP64", "data": [1.0, 2.0]} for c in ("count", "x")]
    others.append({"name": "when", "shape": [2], "datatype": "BYTES", "data": ["2024-01-01"] * 2})
    with pytest.raises(ApiError) as refused:
        parse({"inputs": [flag, *others]}, b"\x01\x00" if "parameters" in change else b"")
    assert refused.value.status == 400 and message in refused.value.message


def test_bad_binary_bytes_are_refused() -> None:
    base = [{"name": c, "shape": [1], "datatype": "FP64", "data": [1.0]} for c in ("count", "x")]
    base.append({"name": "flag", "shape": [1], "datatype": "BOOL", "data": [True]})
    when = {"name": "when", "shape": [1], "datatype": "BYTES", "parameters": {"binary_data_size": 6}}
    with pytest.raises(ApiError, match="does not match binary_data_size"):
        parse({"inputs": [*base, when]}, b"\x09\x00\x00\x00ab")  # says 9 bytes, holds 2
    with pytest.raises(ApiError, match="not UTF-8"):
        parse({"inputs": [*base, when]}, b"\x02\x00\x00\x00\xff\xfe")
    flag = {"name": "flag", "shape": [1], "datatype": "BOOL", "parameters": {"binary_data_size": 1}}
    with pytest.raises(ApiError, match="the byte 0 or 1"):
        parse({"inputs": [*base[:2], flag, {**when, "data": ["2024"], "parameters": {}}]}, b"\x07")
    with pytest.raises(ApiError, match="Inference-Header-Content-Length header is not a number"):
        split_body(b"{}", b"ten")


def test_answers_read_back_by_tritonclient() -> None:
    answer = {"predictions": ["a", "b"], "probabilities": [[0.75, 0.25], [0.125, 0.875]],
              "prediction_ids": ["id0", "id1"], "model": {"name": "m", "version": 3}}
    for binary in (False, True):
        req = InferRequest([], [("predict", binary), ("probabilities", binary), ("prediction_id", binary)], "r1")
        body, headers = respond(answer, state(["a", "b"]), req)
        length = dict(headers).get(b"inference-header-content-length")
        result = triton.InferResult.from_response_body(body, header_length=int(length) if length else None)
        assert result.get_response()["id"] == "r1" and result.get_response()["model_version"] == "3"
        assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")] == ["a", "b"]
        assert result.as_numpy("probabilities").tolist() == answer["probabilities"]
        assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("prediction_id")] == ["id0", "id1"]


def test_predict_datatype_follows_the_classes() -> None:
    assert predict_datatype(state()) == "FP64"
    assert predict_datatype(state([0, 1])) == "INT64"
    assert predict_datatype(state([False, True])) == "BOOL"
    assert predict_datatype(state([0.5, 1])) == "FP64"
    assert predict_datatype(state(["no", "yes"])) == "BYTES"
