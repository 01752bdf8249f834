"""``POST /invocations``: the scoring formats of MLflow's model server, so that a client written for
``mlflow models serve`` moves over unchanged.

The body is a JSON object with exactly one of these keys (and, optionally, ``params``: tidal's models take
none, so it must be empty):

=====================  ============================================================================
``dataframe_split``    ``{"columns": [...], "data": [[...], ...]}`` (pandas' ``split`` orient;
                       an ``index`` is ignored)
``dataframe_records``  ``[{column: value, ...}, ...]`` (pandas' ``records`` orient)
``instances``          a list of rows: objects ``{column: value}``, or lists of values in the order of
                       the model's columns (``GET /model`` ``signature.columns``)
``inputs``             columns ``{column: [value, ...], ...}``, or a list of rows as ``instances``
=====================  ============================================================================

The rows go through :meth:`~tidal.serve.service.Service.answer` as a ``/predict`` body's would: the same
checks (the messages name the format's own fields: ``dataframe_split.data[3].nswprice: expected a
number``), predictor, canary and shadow routing, and prediction log. The answer is MLflow's,
``{"predictions": [...]}``, with what ``/predict`` adds beside it: ``probabilities`` (classifiers),
``prediction_ids`` (for ``POST /feedback``) and ``model``. Only JSON bodies (``text/csv``, which MLflow also
takes, is a 415); every error is ``{"error": ...}``.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from tidal.predict.errors import ApiError, name, names
from tidal.predict.inputs import parse_json
from tidal.serve.service import Service

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_ROW_ERROR = re.compile(r"^instances\[(\d+)\]\.([^:]*): ")


class Invocations:
    """``POST /invocations`` over a :class:`~tidal.serve.service.Service`."""

    def __init__(self, service: Service) -> None:
        self.service = service

    async def __call__(self, body: bytes, quiet: bool = False) -> bytes:
        doc = parse_json(body)
        columns = self.service.serving().mv.signature.names
        rows, label, columnar = to_rows(doc, columns)
        try:
            _, answer = await self.service.answer({"instances": rows}, quiet)
        except ApiError as exc:
            raise _renamed(exc, label, columnar) from None
        return orjson.dumps(answer)


def to_rows(doc: Any, columns: list[str]) -> tuple[list[Any], str, bool]:
    """The rows of an /invocations body (left for the input schema to check, as a /predict body's), the
    name of the field they came from, and whether it was columnar; raises ApiError 422 for a wrong shape."""
    if type(doc) is not dict:
        raise ApiError(422, f"the body must be a JSON object with one of {', '.join(FORMATS)} (MLflow's scoring "
                            'formats), e.g. {"dataframe_split": {"columns": [...], "data": [[...]]}}')
    found = [k for k in FORMATS if k in doc]
    extra = [k for k in doc if k not in FORMATS and k != "params"]
    if extra:
        raise ApiError(422, f"unknown field(s) in the body: {names(extra)}; send one of {', '.join(FORMATS)}")
    if len(found) != 1:
        raise ApiError(422, f"the body must have exactly one of {', '.join(FORMATS)}"
                            + (f"; it has {', '.join(found)}" if found else ""))
    if doc.get("params"):
        raise ApiError(422, "params: this model takes no inference parameters; leave params out")
    key = found[0]
    value = doc[key]
    if key == "dataframe_split":
        return _split(value, columns), "dataframe_split.data", False
    if key == "dataframe_records":
        if type(value) is not list:
            raise ApiError(422, "dataframe_records: expected a list of objects {column: value} (one per row)")
        return value, key, False
    if key == "inputs" and type(value) is dict:
        return _columnar(value), key, True
    if type(value) is not list:
        raise ApiError(422, f"{key}: expected a list of rows" + (" or an object {column: [values]}"
                                                                 if key == "inputs" else ""))
    return [_positional(r, columns, f"{key}[{i}]") if type(r) is list else r for i, r in enumerate(value)], key, False


def _split(value: Any, columns: list[str]) -> list[Any]:
    if type(value) is not dict or "data" not in value or "columns" not in value:
        raise ApiError(422, 'dataframe_split: expected {"columns": [...], "data": [[...], ...]}')
    unknown = [k for k in value if k not in ("columns", "data", "index")]
    if unknown:
        raise ApiError(422, f"dataframe_split: unknown field(s) {names(unknown)}; it takes columns, data and index")
    cols, data = value["columns"], value["data"]
    if type(cols) is not list or not all(type(c) is str for c in cols):
        raise ApiError(422, "dataframe_split.columns: expected a list of column names")
    if len(set(cols)) != len(cols):
        raise ApiError(422, "dataframe_split.columns: a column is named twice")
    if type(data) is not list:
        raise ApiError(422, "dataframe_split.data: expected a list of rows (lists of values)")
    rows = []
    for i, row in enumerate(data):
        if type(row) is not list or len(row) != len(cols):
            raise ApiError(422, f"dataframe_split.data[{i}]: expected a list of {len(cols)} values (one per "
                                "column in dataframe_split.columns)")
        rows.append(dict(zip(cols, row, strict=True)))
    return rows


def _columnar(value: dict[str, Any]) -> list[Any]:
    lengths = set()
    for col, values in value.items():
        if type(values) is not list:
            raise ApiError(422, f"inputs.{name(col)}: expected a list of values (one per row)")
        lengths.add(len(values))
    if len(lengths) > 1:
        raise ApiError(422, "inputs: every column must have as many values (one per row)")
    cols = list(value)
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*value.values(), strict=True)]


def _positional(row: list[Any], columns: list[str], where: str) -> dict[str, Any]:
    if len(row) != len(columns):
        raise ApiError(422, f"{where}: a row given as a list must have {len(columns)} values, in the order of "
                            f"the model's columns {names(columns)}")
    return dict(zip(columns, row, strict=True))


def _renamed(exc: ApiError, label: str, columnar: bool) -> ApiError:
    """An error of the row checks, naming the format's own field rather than /predict's ``instances``."""
    message = exc.message
    if not message.startswith("instances"):
        return exc
    match = _ROW_ERROR.match(message) if columnar else None
    if match is not None:
        message = f"inputs.{match.group(2)}[{match.group(1)}]: {message[match.end():]}"
    else:
        message = label + message[len("instances"):]
    return ApiError(exc.status, message, error_id=exc.error_id, close=exc.close)


__all__ = ["FORMATS", "Invocations", "to_rows"]
