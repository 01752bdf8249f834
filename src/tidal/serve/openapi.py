"""The documented request and response schemas (OpenAPI, shown at ``/docs``).

These pydantic models document the API; they do not parse requests. The hot endpoints parse bodies
with orjson and check them in plain Python (:mod:`tidal.predict.inputs`), which measured about 80 µs a
request cheaper than FastAPI's body handling, and behave exactly as described here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class PredictRequest(BaseModel):
    """Rows to predict: each maps every input column of the serving model to a value."""

    model_config = ConfigDict(extra="forbid")
    instances: list[dict[str, Any]] = Field(
        ..., min_length=1,
        description="One object per row, with exactly the model's input columns (see GET /model: "
                    "`inputs.columns`). Numbers for numeric and integer columns, true/false for boolean, "
                    "strings for categorical, ISO 8601 strings for datetime, base64 PNG/JPEG text or nested arrays of "
                    "0-255 pixels (channels, height, width) for image (`inputs.images`); null only for the columns in "
                    "`inputs.nullable`. The label features of a model trained with `prepare.label_features` "
                    "(`inputs.filled`: label_lag_1, ...) may be left out: the server fills them from the newest "
                    "labels in its prediction log. At most `deploy.max_rows` rows and `deploy.max_request_bytes` "
                    "bytes.")


class ModelRef(BaseModel):
    name: str
    version: int


class PredictResponse(BaseModel):
    """One prediction per row, in order, each stored in the prediction log before this answer."""

    predictions: list[Any] = Field(..., description="The predicted class (classifiers) or value.")
    probabilities: list[list[float]] | None = Field(
        None, description="Classifiers only: per row, the probability of each class, in the order of "
                          "GET /model `signature.classes`.")
    prediction_ids: list[str] = Field(..., description="The id of each stored prediction, for POST /feedback.")
    model: ModelRef


class FeedbackItem(BaseModel):
    """The true label of one earlier prediction."""

    model_config = ConfigDict(extra="forbid")
    prediction_id: str = Field(..., max_length=128, description="An id returned by POST /predict.")
    label: str | int | float | bool = Field(
        ..., description="The true class (one of the model's classes) or, for a regressor, the true value.")


class FeedbackResponse(BaseModel):
    stored: int = Field(..., description="How many labels were stored.")


class ErrorResponse(BaseModel):
    """Every error: what was wrong and where (``instances[3].nswprice: expected a number``), never the
    submitted values. A server-side failure carries an ``error_id`` that the server log also carries."""

    error: str
    error_id: str | None = None


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model: ModelRef


class ModelInfo(BaseModel):
    """The version serving, where it came from, and the challenger beside it (canary or shadow)."""

    name: str
    version: int
    state: str
    task: str
    created_at: str
    run_id: str
    format: str
    artifact_digest: str
    signature: dict[str, Any] = Field(..., description="columns (name → kind), target, classes")
    inputs: dict[str, Any] = Field(..., description="columns, nullable columns, what each column accepts")
    metrics: dict[str, float]
    lineage: dict[str, Any] = Field(..., description="run, data snapshots, spec digest, git commit, environment")
    serving: dict[str, Any] = Field(..., description="predictor path (fast or generic, and why), load and "
                                                     "check times, nullable columns")
    deployment: dict[str, Any] = Field(
        ..., description="strategy (direct, canary, shadow), champion, challenger beside it (name, version, mode, "
                         "percent, loaded_at; canary: requests routed by this process) or null, and "
                         "challenger_status (why there is none, or what failed)")


class InvocationsRequest(BaseModel):
    """MLflow's scoring formats: exactly one of the four fields (``params`` empty or left out)."""

    model_config = ConfigDict(extra="forbid")
    dataframe_split: dict[str, Any] | None = Field(
        None, description='`{"columns": [...], "data": [[...], ...]}` (pandas\' split orient; `index` ignored)')
    dataframe_records: list[dict[str, Any]] | None = Field(None, description="`[{column: value}, ...]`")
    instances: list[Any] | None = Field(
        None, description="rows: objects `{column: value}`, or lists of values in the order of the model's columns")
    inputs: dict[str, list[Any]] | list[Any] | None = Field(
        None, description="columns `{column: [values]}`, or rows as in `instances`")
    params: dict[str, Any] | None = Field(None, description="must be empty: tidal's models take no parameters")


class InvocationsResponse(BaseModel):
    """MLflow's answer (`predictions`), with what /predict adds beside it."""

    predictions: list[Any]
    probabilities: list[list[float]] | None = None
    prediction_ids: list[str] = Field(..., description="The id of each stored prediction, for POST /feedback.")
    model: ModelRef


class Tensor(BaseModel):
    """An Open Inference Protocol tensor. Inputs: one per column, named after it, shape `[rows]`; `data` flat or
    nested (row-major), or `parameters.binary_data_size` and the bytes after the JSON header."""

    name: str
    shape: list[int]
    datatype: str = Field(..., description="FP64, INT64, BOOL or BYTES after the column's kind (see GET "
                                           "/v2/models/{name}); a number column takes any FP, INT or UINT type")
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class RequestedOutput(BaseModel):
    name: str = Field(..., description="predict, probabilities (classifiers) or prediction_id")
    parameters: dict[str, Any] | None = Field(None, description="`binary_data: true` for binary data")


class InferRequest(BaseModel):
    """An Open Inference Protocol v2 inference request (JSON; with the binary tensor extension, the JSON header
    is followed by the tensors' bytes and its length is in the Inference-Header-Content-Length header)."""

    id: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="`binary_data_output: true`: every output binary")
    inputs: list[Tensor]
    outputs: list[RequestedOutput] | None = Field(None, description="all of them if left out")


class InferResponse(BaseModel):
    """Outputs ``predict`` [rows], ``probabilities`` FP64 [rows, classes] (classifiers) and ``prediction_id``
    BYTES [rows] (the ids of the logged predictions, for POST /feedback)."""

    model_name: str
    model_version: str = Field(..., description="the version that answered (the challenger in a canary trial)")
    id: str | None = None
    outputs: list[Tensor]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    """The model's inputs (one per column) and outputs as tensors."""

    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class Live(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


SCHEMAS: tuple[type[BaseModel], ...] = (PredictRequest, PredictResponse, FeedbackItem, FeedbackResponse,
                                        ErrorResponse, Health, Ready, ModelInfo, ModelRef, InvocationsRequest,
                                        InvocationsResponse, InferRequest, InferResponse, ModelMetadata,
                                        ServerMetadata, Live, ServerReady, ModelReady)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for error statuses."""
    text = {400: "Not JSON (v2: a wrong tensor name, shape, datatype or binary size)",
            403: "A request from a web page that is not declared JSON",
            404: "Unknown prediction id, model name or version, or no such route", 409: "Already labelled",
            413: "Body or row count over the limit", 415: "The body is not declared JSON (Content-Type)",
            422: "Wrong shape, columns or types",
            500: "The model failed (error_id in the log)", 503: "No model loaded, or the log is unavailable"}
    return {s: {"model": ErrorResponse, "description": text.get(s, "Error")} for s in statuses}


def json_body(model: type[BaseModel], *, alternatives: tuple[type[BaseModel], ...] = (),
              example: Any = None) -> dict[str, Any]:
    """An ``openapi_extra`` request body that refers to the component schema of ``model``."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    schema: dict[str, Any] = ref
    if alternatives:
        schema = {"oneOf": [ref, *({"type": "array", "items": {"$ref": f"#/components/schemas/{m.__name__}"}}
                                   for m in alternatives)]}
    content: dict[str, Any] = {"schema": schema}
    if example is not None:
        content["example"] = example
    return {"requestBody": {"required": True, "content": {"application/json": content}}}


def add_components(spec: dict[str, Any]) -> dict[str, Any]:
    """Put every documented model (and its nested ones) under ``components.schemas``."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in SCHEMAS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas.setdefault(model.__name__, schema)
    return spec


__all__ = [
    "ErrorResponse",
    "FeedbackItem",
    "FeedbackResponse",
    "Health",
    "InferRequest",
    "InferResponse",
    "InvocationsRequest",
    "InvocationsResponse",
    "Live",
    "ModelInfo",
    "ModelMetadata",
    "ModelReady",
    "ModelRef",
    "PredictRequest",
    "PredictResponse",
    "Ready",
    "ServerMetadata",
    "ServerReady",
    "add_components",
    "errors",
    "json_body",
]
