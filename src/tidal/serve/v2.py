"""The Open Inference Protocol v2 (the REST protocol of KServe and Triton) over the model tidal serves.

Routes: ``GET /v2`` (server metadata), ``GET /v2/health/live``, ``GET /v2/health/ready``,
``GET /v2/models/{name}[/versions/{version}]`` (model metadata), ``GET .../ready``, and
``POST /v2/models/{name}[/versions/{version}]/infer``. ``{name}`` is the served model's name (404
otherwise); ``{version}``, when given, the version of its champion (404 otherwise: a client that pins a
version learns it is not the one serving). The deployment's routing applies as for ``/predict``: in a
canary trial a share of the requests is answered by the challenger, and the answer's ``model_version``
names the version that answered.

The mapping (docs/deploy.md, "Open Inference Protocol v2"):

- **one input tensor per input column**, named after the column, of shape ``[n]`` (or ``[n, 1]``), every
  input with the same ``n`` (the rows). Datatypes by the column's kind: numeric ``FP64``, integer
  ``INT64``, boolean ``BOOL``, categorical and datetime ``BYTES`` (UTF-8 text; ISO 8601 for a date-time).
  An ``image`` column takes ``BYTES [n]`` of encoded PNG/JPEG images (raw bytes as binary data, base64
  text in JSON), or its pixels as ``FP32`` or ``UINT8 [n, channels, height, width]`` (whole numbers 0-255;
  the model metadata gives the shape in the input's ``parameters.pixels``).
  A numeric or integer column also takes the other ``FP*``, ``INT*`` and ``UINT*`` datatypes. A floating
  NaN (binary data) or a JSON ``null`` is a missing value, taken where ``/predict`` takes null. The label
  features a server fills (``GET /model``: ``inputs.filled``) may be left out, as in ``/predict``: the model
  metadata lists them with ``"parameters": {"optional": true}`` (Triton's word for an input a request may
  leave out).
- outputs: ``predict`` ``[n]`` (the predicted class or value: ``FP64`` for a regressor; for a classifier
  ``INT64``, ``BOOL``, ``FP64`` or ``BYTES`` after its classes), ``probabilities`` ``FP64 [n, classes]``
  (classifiers, columns in the order of ``GET /model`` ``signature.classes``) and ``prediction_id``
  ``BYTES [n]``: the id of each logged prediction, for ``POST /feedback``.

JSON tensors carry ``data`` flat or nested, row-major. The binary tensor extension is supported both ways:
an input with ``parameters.binary_data_size`` takes its bytes from after the JSON header (whose length the
``Inference-Header-Content-Length`` header gives), in the order of the inputs; an output asked for with
``parameters.binary_data: true`` (or every output, with the request parameter ``binary_data_output``) is
sent the same way. Fixed-size datatypes are little-endian; a ``BYTES`` element is a 4-byte little-endian
length then its bytes.

The rows go through :meth:`~tidal.serve.service.Service.answer`, as a ``/predict`` body would: the same
checks, predictor, canary and shadow routing, and prediction log. Reading the tensors: the plain JSON
requests most clients send are read in one pass over all tensors, and a body of a form read before but for
its data without parsing it all again (:mod:`tidal.serve.v2plan`); anything else tensor by tensor, with care
(:mod:`tidal.serve.v2tensors`), which names the first thing wrong. A refused request is a 4xx with
``{"error": ...}`` (what Triton's and KServe's clients read), and nothing is logged for it.

Content types: Triton's Python client sends no ``Content-Type``; JSON types and
``application/octet-stream`` are accepted too, anything else is a 415. A request that is not declared JSON
and carries a browser's cross-origin marks (``Origin``, or ``Sec-Fetch-Site`` cross-site or same-site) is a
403: a web page must not have a visitor's browser send predictions to a local server (see
:mod:`tidal.serve.body`). Compressed bodies (``Content-Encoding``) are a 415.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import chain, repeat
from typing import Any

import numpy as np
import orjson

from tidal.predict.errors import ApiError, name, names
from tidal.predict.state import ServingState
from tidal.serve.body import Receive, is_json, read_body
from tidal.serve.service import Service
from tidal.serve.v2plan import (
    OUTPUTS,
    Layout,
    Plan,
    datatypes,
    plain_columns,
    predict_datatype,
)
from tidal.serve.v2tensors import KIND_DATATYPE, NUMPY, careful, split_body

#: ``POST /v2/models/{name}[/versions/{version}]/infer`` (the path as ASGI decodes it).
INFER_PATH = re.compile(r"^/v2/models/([^/]+)(?:/versions/([^/]+))?/infer$")
#: The metrics label of every infer request (model names are not labels).
INFER_ENDPOINT = "/v2/models/{name}/infer"
HEADER_LENGTH = b"inference-header-content-length"
JSON_CONTENT = [(b"content-type", b"application/json")]
#: How many infer paths :meth:`OpenInference.route` remembers.
ROUTES = 64
#: Where read() leaves the Inference-Header-Content-Length header's value in the ASGI scope, for infer().
_HEADER_LENGTH_KEY = "tidal.v2.header_length"
_UNSEEN = object()
_ROW_ERROR = re.compile(r"^instances\[(\d+)\]\.([^:]*): ")

Header = tuple[bytes, bytes]


class OpenInference:
    """The v2 protocol's behaviour over a :class:`~tidal.serve.service.Service` serving model ``model``."""

    def __init__(self, service: Service, model: str) -> None:
        self.service = service
        self.model = model
        self._plan: Plan | None = None  # the champion's, made on its first infer request
        self._routes: dict[str, tuple[str, str | None] | None] = {}

    # -- health and metadata ------------------------------------------------------------------------------
    def server_metadata(self) -> dict[str, Any]:
        from tidal import __version__

        return {"name": "tidal", "version": __version__, "extensions": ["binary_tensor_data"]}

    def served(self, model: str, version: str | None = None) -> ServingState:
        """The champion, when ``model`` (and ``version``, if given) name it; ApiError 404 or 503 otherwise."""
        if model != self.model:
            raise ApiError(404, f"no model named {name(model)} here: this server serves {name(self.model)} "
                                f"(see GET /v2/models/{self.model})")
        state = self.service.serving()
        if version is not None and version != str(state.version):
            raise ApiError(404, f"version {name(version)} of {name(self.model)} is not serving: version "
                                f"{state.version} is (the champion); leave /versions/... out of the path to "
                                "use the version serving")
        return state

    def metadata(self, model: str, version: str | None = None) -> dict[str, Any]:
        state = self.served(model, version)
        sig = state.mv.signature
        outputs: list[dict[str, Any]] = [{"name": "predict", "datatype": predict_datatype(state), "shape": [-1]}]
        if state.classes is not None:
            outputs.append({"name": "probabilities", "datatype": "FP64", "shape": [-1, len(state.classes)]})
        outputs.append({"name": "prediction_id", "datatype": "BYTES", "shape": [-1]})
        filled = set(sig.derived)
        inputs: list[dict[str, Any]] = []
        for c, k in sig.columns.items():
            tensor: dict[str, Any] = {"name": c, "datatype": KIND_DATATYPE.get(k, "BYTES"), "shape": [-1]}
            if c in filled:  # a label feature: the server fills it from its log when the request leaves it out
                tensor["parameters"] = {"optional": True}
            if k == "image" and (spec := sig.images.get(c)) is not None:
                # encoded images (BYTES [n]), or their pixels (FP32 or UINT8 [n, C, H, W], 0-255 whole numbers)
                tensor["parameters"] = {"pixels": {"datatype": "FP32", "shape": [-1, *spec.shape]}}
            inputs.append(tensor)
        return {"name": state.name, "versions": [str(state.version)], "platform": f"tidal-{state.mv.format}",
                "inputs": inputs, "outputs": outputs}

    def model_ready(self, model: str, version: str | None = None) -> dict[str, Any]:
        state = self.served(model, version)
        return {"name": state.name, "ready": True}

    # -- infer --------------------------------------------------------------------------------------------
    def route(self, path: str) -> tuple[str, str | None] | None:
        """The model and version an infer path names (None: not an infer path), remembered for the next
        request to the same path: a dictionary lookup instead of a regular expression, twice a request."""
        found = self._routes.get(path, _UNSEEN)
        if found is _UNSEEN:
            match = INFER_PATH.match(path)
            found = None if match is None else (match.group(1), match.group(2))
            if len(self._routes) >= ROUTES:  # paths are the clients' to choose: a few are remembered
                self._routes.clear()
            self._routes[path] = found
        return found  # type: ignore[return-value]

    async def read(self, scope: Any, receive: Receive, limit: int) -> bytes:
        """The body of an infer request, refused before it is read (the connection then closed) when its
        type, encoding or origin is wrong, or the path names another model or version."""
        declared_json, other_type, cross, encoded = False, None, False, False
        header_length = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                declared_json = is_json(value)
                if not declared_json:
                    media = value.split(b";", 1)[0].strip().lower()
                    if media != b"application/octet-stream":
                        other_type = media
            elif key == b"origin" or (key == b"sec-fetch-site" and value in (b"cross-site", b"same-site")):
                cross = True
            elif key == b"content-encoding" and value.strip().lower() != b"identity":
                encoded = True
            elif key == HEADER_LENGTH:
                header_length = value
        scope[_HEADER_LENGTH_KEY] = header_length  # for infer: one pass over the headers
        if other_type is not None:
            raise ApiError(415, "the body must be an inference request: JSON (Content-Type: application/json), "
                                "or JSON then binary tensors (application/octet-stream, or no Content-Type, with "
                                "an Inference-Header-Content-Length header)", close=True)
        if encoded:
            raise ApiError(415, "compressed request bodies (Content-Encoding) are not supported: send it "
                                "uncompressed", close=True)
        if cross and not declared_json:
            raise ApiError(403, "a request from a web page must be declared JSON (Content-Type: "
                                "application/json)", close=True)
        route = self.route(scope["path"])
        if route is None:  # pragma: no cover - the app routes only matching paths here
            raise ApiError(404, "not found: there is no endpoint at this path (see /docs)", close=True)
        try:
            self.served(*route)
        except ApiError as exc:
            exc.close = True
            raise
        return await read_body(scope, receive, limit, check_type=False)

    async def infer(self, scope: Any, body: bytes, quiet: bool = False) -> tuple[bytes, list[Header]]:
        """The answer to an infer request: its body and the headers that say how to read it."""
        route = self.route(scope["path"])
        if route is None:  # pragma: no cover
            raise ApiError(404, "not found: there is no endpoint at this path (see /docs)")
        champion = self.served(*route)
        if _HEADER_LENGTH_KEY in scope:
            header_length = scope[_HEADER_LENGTH_KEY]
        else:  # not come through read()
            header_length = next((value for key, value in scope["headers"] if key == HEADER_LENGTH), None)
        plan = self._plan
        if plan is None or plan.state is not champion:  # a version's first request: what it needs, once
            plan = self._plan = Plan(champion)
        known = plan.known(body) if header_length is None and plan.templates else None
        if known is not None:  # a body of a form read before, but for its data (tidal.serve.v2plan)
            template, values = known
            layout = template.layout
            # a flat template's values are the one row's (no list per column to take them from)
            rows = [dict(zip(layout.order, values, strict=True))] if template.flat else table(layout.order, values)
            request = InferRequest(rows, template.outputs, template.request_id,
                                   champion if plan.checked and layout.complete else None)
        else:
            doc, binary = split_body(body, header_length)
            request = InferRequest.parse(doc, binary, champion, max_rows=self.service.max_rows, plan=plan)
            if request.layout is not None and header_length is None:
                plan.learn(body, doc, request.layout, request.outputs, request.request_id)
        try:
            answered, answer = await self.service.answer({"instances": request.rows}, quiet, checked=request.checked)
        except ApiError as exc:
            raise _renamed(exc) from None
        return respond(answer, answered, request, plan)


class InferRequest:
    """An infer request's rows (checked as tensors) and the outputs it asks for. ``checked``: the serving
    version whose row checks the rows are known to pass already (see :mod:`tidal.serve.v2plan`), or None."""

    def __init__(self, rows: list[dict[str, Any]], outputs: list[tuple[str, bool]], request_id: str | None,
                 checked: ServingState | None = None) -> None:
        self.rows = rows
        self.outputs = outputs
        self.request_id = request_id
        self.checked = checked
        #: How its plain JSON tensors were laid out (None: read with care), for :meth:`Plan.learn`.
        self.layout: Layout | None = None

    @classmethod
    def parse(cls, doc: Any, binary: bytes, state: ServingState, *, max_rows: int,
              plan: Plan | None = None) -> InferRequest:
        """The request in ``doc`` (and its ``binary`` data) for the version ``state`` (``plan``: its
        :class:`~tidal.serve.v2plan.Plan`, made here when not given); raises ApiError 400 or 413."""
        if type(doc) is not dict:
            raise ApiError(400, 'the body must be a JSON object: {"inputs": [{"name", "shape", "datatype", '
                                '"data"}, ...]}')
        request_id = doc.get("id")
        if request_id is not None and type(request_id) is not str:
            raise ApiError(400, "id: expected a string")
        params = doc.get("parameters") or {}
        if type(params) is not dict:
            raise ApiError(400, "parameters: expected an object")
        binary_default = params.get("binary_data_output", False) is True
        tensors = doc.get("inputs")
        if type(tensors) is not list or not tensors:
            raise ApiError(400, "inputs: expected a list of input tensors, one per column (see GET "
                                f"/v2/models/{state.name})")
        if plan is None or plan.state is not state:
            plan = Plan(state)
        checked = None
        # binary data is never plain: the careful reading takes it (and refuses bytes no input accounts for)
        plain = None if binary else plain_columns(tensors, plan)
        layout = None
        if plain is not None:
            layout, values = plain
            order = layout.order
            if layout.rows > max_rows:
                raise ApiError(413, f"input {name(tensors[0]['name'])}: {layout.rows} rows is more than the limit "
                                    f"of {max_rows} per request (deploy.max_rows); split the request")
            if plan.checked and layout.complete:
                checked = state
        else:  # binary data, nested data, or something wrong: the careful reading says which
            columns = careful(tensors, state, binary, max_rows)
            order = tuple(c for c in plan.columns if c in columns)
            values = [columns[c] for c in order]
        spec = doc.get("outputs")
        outputs = plan.outputs[binary_default] if spec is None else _outputs(spec, state, binary_default)
        request = cls(table(order, values), outputs, request_id, checked)
        request.layout = layout
        return request


def table(order: Sequence[str], values: Sequence[list[Any]]) -> list[dict[str, Any]]:
    """The rows of columns ``order`` whose values are ``values``."""
    if values and len(values[0]) == 1:  # one row: its values are the columns' only ones, in order
        return [dict(zip(order, chain.from_iterable(values), strict=True))]
    # map() keeps the loops in C: 1,000 rows of 30 columns in about 1.5 ms, as long as orjson takes to
    # read them as objects from a /predict body
    return list(map(dict, map(zip, repeat(order), zip(*values, strict=True))))


def _outputs(spec: Any, state: ServingState, binary_default: bool) -> list[tuple[str, bool]]:
    available = [o for o in OUTPUTS if o != "probabilities" or state.classes is not None]
    if spec is None:  # every output (outside a test, the plan's outputs answer this: see InferRequest.parse)
        return [(o, binary_default) for o in available]
    if type(spec) is not list:
        raise ApiError(400, "outputs: expected a list of {\"name\": ...} objects")
    out: list[tuple[str, bool]] = []
    for i, item in enumerate(spec):
        if type(item) is not dict or type(item.get("name")) is not str:
            raise ApiError(400, f"outputs[{i}]: expected an object with a name")
        if item["name"] not in available:
            raise ApiError(400, f"outputs[{i}]: unknown output {name(item['name'])}; the model answers "
                                f"{names(available)}")
        params = item.get("parameters") or {}
        if type(params) is not dict:
            raise ApiError(400, f"outputs[{i}].parameters: expected an object")
        if params.get("classification"):
            raise ApiError(400, f"outputs[{i}]: the classification extension is not supported; ask for "
                                "'probabilities' (columns in the order of GET /model signature.classes)")
        out.append((item["name"], params.get("binary_data", binary_default) is True))
    return out


def respond(answer: dict[str, Any], state: ServingState, request: InferRequest,
            plan: Plan | None = None) -> tuple[bytes, list[Header]]:
    """The infer answer: the JSON header, then the binary outputs asked for, and its headers. ``plan``: the
    champion's, whose datatypes are known (``state`` may be a canary challenger)."""
    n = len(answer["predictions"])
    kinds = plan.datatypes if plan is not None and plan.state is state else datatypes(state)
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for out_name, binary in request.outputs:
        datatype = kinds[out_name]
        if out_name == "predict":
            values: list[Any] = answer["predictions"]
            if datatype == "BYTES":
                values = [str(v) for v in values]
            shape = [n]
        elif out_name == "probabilities":
            probabilities = answer.get("probabilities")
            if probabilities is None:  # a canary challenger of another task; rare, still answered
                continue
            shape = [n, len(probabilities[0]) if probabilities else 0]
            values = probabilities
        else:
            values = answer["prediction_ids"]
            shape = [n]
        tensor: dict[str, Any] = {"name": out_name, "datatype": datatype, "shape": shape}
        if binary:
            raw = _to_binary(values, datatype)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = list(chain.from_iterable(values)) if out_name == "probabilities" else values
        outputs.append(tensor)
    doc: dict[str, Any] = {"model_name": state.name, "model_version": str(state.version)}
    if request.request_id is not None:
        doc["id"] = request.request_id
    doc["outputs"] = outputs
    header = orjson.dumps(doc)
    if not chunks:
        return header, JSON_CONTENT
    return b"".join([header, *chunks]), [(b"content-type", b"application/octet-stream"),
                                         (HEADER_LENGTH, str(len(header)).encode())]


def _to_binary(values: Sequence[Any], datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for v in values:
            raw = str(v).encode("utf-8")
            parts.append(len(raw).to_bytes(4, "little"))
            parts.append(raw)
        return b"".join(parts)
    return np.asarray(values, dtype=NUMPY[datatype]).tobytes()


def _renamed(exc: ApiError) -> ApiError:
    """An error of the row checks, with the row and column said in the protocol's words."""
    match = _ROW_ERROR.match(exc.message)
    if match is None:
        return exc
    message = f"input {name(match.group(2))}, element {match.group(1)}: {exc.message[match.end():]}"
    return ApiError(exc.status, message, error_id=exc.error_id, close=exc.close)


__all__ = ["INFER_ENDPOINT", "INFER_PATH", "KIND_DATATYPE", "InferRequest", "OpenInference", "predict_datatype",
           "respond", "split_body", "table"]
