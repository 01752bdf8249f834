"""The ASGI application: :func:`create_app` wires a workspace into a server.

Two layers, one behaviour. :class:`TidalApp` is the ASGI callable uvicorn runs: it answers the hot
routes (``POST /predict``, ``POST /feedback``, ``POST /invocations`` and the Open Inference Protocol's
``POST /v2/models/{name}/infer``) itself, straight from the ASGI messages (measured: FastAPI's
routing and request object cost about 80 µs a request, as much as the compiled model's own work), and
hands everything else to a FastAPI app: ``/healthz``, ``/readyz``, ``/metrics``, ``/model``, the OpenAPI
docs at ``/docs``, the Open Inference Protocol's health and metadata routes (``/v2/...``,
:mod:`tidal.serve.v2`), and JSON 404/405 answers. FastAPI also declares the hot routes (so the docs
show them) and runs them through the same :class:`~tidal.serve.service.Service` code when it is reached
directly.

Every error is ``{"error": "..."}`` (plus ``error_id`` for a server-side failure). ``/predict``,
``/feedback`` and ``/invocations`` take JSON bodies only (415 otherwise, see :mod:`tidal.serve.body`; the
infer route also takes Triton's binary bodies, see :mod:`tidal.serve.v2`); no answer carries CORS
headers, so a web page on another origin cannot have a browser send them JSON. ``HEAD`` is answered as
``GET`` is, without the body. Answers show neither the process id nor filesystem paths: the server log
lines carry those (each with the process id of the worker that wrote it).
"""

from __future__ import annotations

import asyncio
import logging
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import Enum
from pathlib import Path
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import PlainTextResponse, Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tidal.core.errors import ServingError
from tidal.predict.errors import ApiError, error_body
from tidal.predict.samples import sample_rows
from tidal.predict.state import ServingState, Slot, Trial
from tidal.serve.auth import ScopeGuard
from tidal.serve.body import ClientGone, read_body
from tidal.serve.errors import close_error_logs, internal_error
from tidal.serve.health_metrics import HealthCollector
from tidal.serve.invocations import Invocations
from tidal.serve.logwriter import INLINE_LOG_ROWS
from tidal.serve.metrics import CONTENT_TYPE, ASGIApp, Receive, Scope, Send, ServerMetrics
from tidal.serve.openapi import (
    FeedbackItem,
    FeedbackResponse,
    Health,
    InferRequest,
    InferResponse,
    InvocationsRequest,
    InvocationsResponse,
    Live,
    ModelInfo,
    ModelMetadata,
    ModelReady,
    PredictRequest,
    PredictResponse,
    Ready,
    ServerMetadata,
    ServerReady,
    add_components,
    errors,
    json_body,
)
from tidal.serve.reloader import TRIAL_KINDS, Reloader
from tidal.serve.service import Service
from tidal.serve.threads import cap_threads
from tidal.serve.v2 import INFER_ENDPOINT, OpenInference

logger = logging.getLogger("tidal.serve")

JSON = "application/json"
HOT_ROUTES = ("/predict", "/feedback", "/invocations")
#: The Open Inference Protocol's routes, as metrics label them (:mod:`tidal.serve.v2`).
V2_ROUTES = ("/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}", "/v2/models/{name}/ready",
             "/v2/models/{name}/versions/{version}", "/v2/models/{name}/versions/{version}/ready", INFER_ENDPOINT)
#: What ``mlflow models serve`` answers beside /invocations: MLflow's own client (``ScoringServerClient``) waits
#: on /ping before it sends anything.
MLFLOW_ROUTES = ("/ping", "/health", "/version")
ENDPOINTS = frozenset({*HOT_ROUTES, *V2_ROUTES, *MLFLOW_ROUTES, "/healthz", "/readyz", "/metrics", "/model", "/docs",
                       "/openapi.json", "/docs/oauth2-redirect"})
#: The deploy settings create_app accepts as keyword overrides (the rest of ``deploy`` is for the CLI).
OVERRIDABLE = ("max_request_bytes", "max_rows", "reload_seconds", "feedback")
#: How long startup waits for the first model load before it accepts connections anyway.
FIRST_LOAD_SECONDS = 60.0
#: How long a stopping server waits for pending shadow work (the answers were given; their shadows are logged).
SHADOW_DRAIN_SECONDS = 5.0
#: A hot request finds the server *quiet* when no other is in flight and the last one ended at least this long
#: before it started: its predictions are then committed at once rather than on the event loop's next turn
#: (see :meth:`~tidal.serve.logwriter.LogWriter.append`). Requests handled back to back start within a
#: few microseconds of each other (measured: 7-8 µs at concurrency 8); one client waiting for each answer
#: before it sends the next leaves at least a loopback round trip between them (31 µs at the least, 64 µs
#: typically, on this project's 2-core test machine).
QUIET_S = 20e-6
JSON_CONTENT = [(b"content-type", b"application/json")]


class TidalApp:
    """The ASGI app (see the module docstring). ``fastapi`` is the inner app, ``service`` the behaviour."""

    def __init__(self, service: Service, fastapi: FastAPI, metrics: ServerMetrics, *, max_request_bytes: int,
                 reloader: Reloader, v2: OpenInference, guard: ScopeGuard | None = None) -> None:
        self.service = service
        #: deploy.auth: None when no route needs a token (then the hot path does not look at headers at all)
        self.guard = guard
        self.v2 = v2
        self.fastapi = fastapi
        self.metrics = metrics
        self.reloader = reloader
        self.max_request_bytes = max_request_bytes
        self._hot: dict[str, Any] = {"/predict": service.predict,
                                     "/feedback": lambda body, quiet: service.feedback(body),
                                     "/invocations": Invocations(service)}
        self._inner: ASGIApp = metrics.middleware(fastapi)
        # Whether a request finds the server quiet (see QUIET_S): hot requests in flight, and when the last ended.
        self._active = 0
        self._last_end = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method = scope["method"]
            if method == "POST":
                handler = self._hot.get(scope["path"])
                if handler is not None:
                    await self._answer(scope["path"], handler, scope, receive, send)
                    return
                if scope["path"].startswith("/v2/models/") and self.v2.route(scope["path"]) is not None:
                    v2 = self.v2
                    await self._answer(INFER_ENDPOINT, lambda body, quiet: v2.infer(scope, body, quiet), scope,
                                       receive, send, read=v2.read)
                    return
            elif method == "HEAD":  # answered as GET is (status and headers), without the body
                await self._inner({**scope, "method": "GET"}, receive, _without_body(send))
                return
        await self._inner(scope, receive, send)

    def connections_closed(self, reason: str) -> None:
        """Count a connection the connection guard closed (:mod:`tidal.serve.connections` calls this)."""
        self.metrics.connections_closed.labels(reason).inc()

    async def _answer(self, path: str, handler: Any, scope: Scope, receive: Receive, send: Send, *,
                      read: Any = read_body) -> None:
        """Answer a hot route: ``handler(body, quiet)`` returns the JSON answer, or (the Open Inference
        Protocol's infer) the answer and its content headers."""
        start = time.perf_counter()
        self._active += 1
        quiet = self._active == 1 and start - self._last_end > QUIET_S
        close = False
        content: list[tuple[bytes, bytes]] = JSON_CONTENT
        try:
            try:
                if self.guard is not None:
                    self.guard.check("/v2/infer" if path == INFER_ENDPOINT else path, scope["headers"])
                body = await read(scope, receive, self.max_request_bytes)
                status, payload = 200, await handler(body, quiet)
                if type(payload) is tuple:
                    payload, content = payload
            except ApiError as exc:
                status, payload, close = exc.status, exc.body(), exc.close
            except ClientGone:
                return  # nobody to answer; nothing was predicted or stored
            except Exception as exc:
                err = internal_error(logger, path, exc)
                status, payload = err.status, err.body()
            headers = [*content, (b"content-length", str(len(payload)).encode())]
            if close:  # the body may be unread: do not wait for the rest of it
                headers.append((b"connection", b"close"))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
        finally:
            self._active -= 1
            self._last_end = end = time.perf_counter()
        self.metrics.observe(path, status, end - start)


def create_app(root: Path, *, shared_log: bool = False, **overrides: Any) -> TidalApp:
    """The server of the project at ``root``: it serves the version the ``champion`` alias of the
    project's model points at, and follows the alias when it moves. With ``deploy.strategy`` canary or
    shadow it also runs the version the ``challenger`` alias points at beside it (docs/deploy.md).

    ``overrides`` replace settings of the spec's ``deploy`` section: ``max_request_bytes``, ``max_rows``,
    ``reload_seconds``, ``feedback`` (``reject`` or ``overwrite``). Opens the workspace and the
    prediction log at once (raising their TidalErrors). The model loads in the reloader's thread when the
    server starts; startup waits for that first load (up to :data:`FIRST_LOAD_SECONDS`), and ``/readyz``
    answers 503, saying why, while no version is loaded (no champion yet, or it failed its check).

    ``shared_log``: other processes write to the same prediction log (``--workers N``); small appends then
    never run on the event loop's thread (see :class:`~tidal.serve.logwriter.LogWriter`).
    """
    from tidal.workspace import Workspace

    unknown = sorted(set(overrides) - set(OVERRIDABLE))
    if unknown:
        raise ServingError(f"unknown server setting(s): {', '.join(unknown)}",
                           hint=f"create_app accepts {', '.join(OVERRIDABLE)}")
    ws = Workspace.open(root)
    try:
        try:
            deploy = type(ws.spec.deploy).model_validate({**ws.spec.deploy.model_dump(), **overrides})
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ServingError(f"server setting {'.'.join(map(str, first['loc']))}: {first['msg']}",
                               hint="see the deploy section in docs/spec.md") from None
        log = ws.predictions  # opened (and migrated) now: a bad URL fails here, not on the first request
    except BaseException:
        ws.close()
        raise
    found = cap_threads()
    # A category never seen in training is encoded as zeros by design; scikit-learn warns about it on
    # every such request, which would flood the server log.
    warnings.filterwarnings("ignore", message="Found unknown categories", category=UserWarning)
    metrics = ServerMetrics(ENDPOINTS)
    metrics.add_collector(HealthCollector(ws.store, ws.spec.name))
    slot = Slot()
    strategy = deploy.strategy
    # Small appends commit on the event loop's thread only where that cannot stall it: a SQLite file that no
    # other process writes to (another process may hold its lock; a network database may be slow to answer).
    inline = INLINE_LOG_ROWS if getattr(log, "dialect", None) == "sqlite" and not shared_log else 0
    service = Service(slot=slot, log=log, clock=ws.clock, metrics=metrics, max_rows=deploy.max_rows,
                      overwrite_feedback=deploy.feedback == "overwrite", strategy=strategy.kind,
                      inline_log_rows=inline, images=ws.artifacts)
    swapped = False

    def on_swap(state: ServingState) -> None:
        nonlocal swapped
        metrics.model_served(state.name, state.version, swapped=swapped)
        swapped = True

    def on_trial(trial: Trial | None) -> None:
        metrics.challenger_served(ws.spec.name, strategy.kind, trial.version if trial is not None else None)

    trial_kind = strategy.kind if strategy.kind in TRIAL_KINDS else None
    if trial_kind is not None:
        on_trial(None)  # the gauge exists (at 0) from the start of a trial strategy
    reloader = Reloader(ws.registry, ws.spec.name, slot, interval=deploy.reload_seconds, clock=ws.clock,
                        on_swap=on_swap, trial_kind=trial_kind, percent=strategy.percent, on_trial=on_trial,
                        runtime=deploy.runtime, tolerance=deploy.onnx_tolerance)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        logger.info("capped BLAS/OpenMP threads to 1 per model thread (found: %s): parallelism comes from "
                    "concurrent requests and worker processes", ", ".join(
                        f"{i.get('internal_api')} {i.get('num_threads')}" for i in found) or "none")
        reloader.start()
        # Accept connections only once the first load is over: with several workers sharing the socket,
        # a worker still loading would otherwise answer 503 while the others serve. /readyz stays 503 if
        # there is no champion, or the load takes longer than this.
        await asyncio.to_thread(reloader.first_check.wait, FIRST_LOAD_SECONDS)
        logger.info("tidal serve: model %r (champion alias), prediction log %s, limits %d bytes / %d rows, "
                    "checking the champion every %g s; deploy strategy %s", ws.spec.name,
                    ws.settings.predictions_url, deploy.max_request_bytes, deploy.max_rows, deploy.reload_seconds,
                    strategy.kind + (f" ({strategy.percent:g}% of requests to the challenger alias)"
                                     if strategy.kind == "canary" else
                                     " (the challenger alias predicts every request, unreturned)"
                                     if strategy.kind == "shadow" else ""))
        try:
            yield
        finally:
            await service.shadow.drain(SHADOW_DRAIN_SECONDS)
            reloader.stop()
            service.close()
            close_error_logs()  # count the repeats of the errors logged in the last interval
            metrics.process_exit()
            ws.close()

    v2 = OpenInference(service, ws.spec.name)
    inner = _fastapi(service, metrics, lifespan, max_request_bytes=deploy.max_request_bytes, model=ws.spec.name,
                     v2=v2)
    guard = ScopeGuard(ws, list(deploy.auth)) if deploy.auth else None
    return TidalApp(service, inner, metrics, max_request_bytes=deploy.max_request_bytes, reloader=reloader, v2=v2,
                    guard=guard)


def _json(doc: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(doc), status_code=status, media_type=JSON)


def _without_body(send: Send) -> Send:
    """``send`` with every body chunk emptied (the answer to a HEAD request; headers unchanged)."""

    async def head_send(message: Any) -> None:
        if message["type"] == "http.response.body":
            message = {"type": "http.response.body", "body": b"", "more_body": message.get("more_body", False)}
        await send(message)

    return head_send


def _fastapi(service: Service, metrics: ServerMetrics, lifespan: Any, *, max_request_bytes: int,
             model: str, v2: OpenInference) -> FastAPI:
    app = FastAPI(
        title=f"tidal: {model}", version="1",
        description="Predictions from the model version the `champion` alias points at, each stored in the "
                    "prediction log before it is answered; labels for them by /feedback. The server follows "
                    "the alias: `tidal promote` and `tidal rollback` switch the version within "
                    "`deploy.reload_seconds`, without failing a request. With `deploy.strategy` canary, a "
                    "share of the requests is answered by the `challenger` alias (the answer's `model` says "
                    "which version answered); with shadow, the challenger predicts every request in the "
                    "background and only the champion's answer is returned. Every error is `{\"error\": ...}`.",
        lifespan=lifespan, redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> Response:
        return Response(exc.body(), status_code=exc.status, media_type=JSON,
                        headers={"connection": "close"} if exc.close else None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            message = "not found: there is no endpoint at this path (see /docs)"
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            message = f"method not allowed: {request.url.path} accepts {allowed or 'other methods'}"
        else:
            message = str(exc.detail) if isinstance(exc.detail, str) else "the request was refused"
        return Response(error_body(message), status_code=exc.status_code, media_type=JSON, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> Response:
        return Response(error_body("the request does not match the documented schema (see /docs)"),
                        status_code=422, media_type=JSON)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        err = internal_error(logger, request.url.path, exc)
        return Response(err.body(), status_code=500, media_type=JSON)

    async def body_of(request: Request) -> bytes:
        try:
            return await read_body(request.scope, request.receive, max_request_bytes)
        except ClientGone:
            raise ApiError(400, "the client disconnected before sending the whole body") from None

    @app.post("/predict", response_model=None, summary="Predict rows",
              responses={200: {"model": PredictResponse}, **errors(400, 413, 415, 422, 500, 503)},
              openapi_extra=json_body(PredictRequest))
    async def predict(request: Request) -> Response:
        """Predict one row or many. Every prediction is stored in the prediction log before the answer is
        sent; its id can be given to /feedback later."""
        return Response(await service.predict(await body_of(request)), media_type=JSON)

    @app.post("/feedback", response_model=None, summary="Label earlier predictions",
              responses={200: {"model": FeedbackResponse}, **errors(400, 404, 409, 413, 415, 422, 503)},
              openapi_extra=json_body(FeedbackItem, alternatives=(FeedbackItem,),
                                      example={"prediction_id": "0f8fad5bd9cb469fa16570867728950e", "label": 1}))
    async def feedback(request: Request) -> Response:
        """The true label of one prediction, or a list of them (all stored, or none). A second label for the
        same prediction is refused with 409, unless the spec says `deploy.feedback: overwrite`."""
        return Response(await service.feedback(await body_of(request)), media_type=JSON)

    @app.post("/invocations", response_model=None, summary="Predict rows (MLflow scoring formats)",
              responses={200: {"model": InvocationsResponse}, **errors(400, 413, 415, 422, 500, 503)},
              openapi_extra=json_body(InvocationsRequest, example={"dataframe_split": {"columns": [], "data": []}}))
    async def invocations(request: Request) -> Response:
        """The body formats of MLflow's model server (`dataframe_split`, `dataframe_records`, `instances`,
        `inputs`), so a client written for `mlflow models serve` works unchanged. Checked, routed and logged as
        /predict; the answer is MLflow's `{"predictions": [...]}` with /predict's `probabilities`,
        `prediction_ids` (for /feedback) and `model` beside it."""
        return Response(await invocations_of(await body_of(request)), media_type=JSON)

    invocations_of = Invocations(service)

    async def infer_response(request: Request) -> Response:
        try:
            body = await v2.read(request.scope, request.receive, max_request_bytes)
        except ClientGone:
            raise ApiError(400, "the client disconnected before sending the whole body") from None
        payload, content = await v2.infer(request.scope, body)
        return Response(payload, headers={k.decode(): v.decode() for k, v in content})

    v2_tag: list[str | Enum] = ["Open Inference Protocol v2"]
    v2_errors = errors(400, 403, 404, 413, 415, 422, 500, 503)
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer"):
        app.add_api_route(
            path, infer_response, methods=["POST"], response_model=None, tags=v2_tag,
            summary="Predict rows sent as tensors (Open Inference Protocol v2)",
            description="One input tensor per column (see GET /v2/models/{name}), JSON or binary (the binary tensor "
                        "extension). Checked, routed and logged as /predict; the `prediction_id` output gives the "
                        "ids for /feedback. `{name}` must be the served model's name, `{version}` its champion's.",
            responses={200: {"model": InferResponse}, **v2_errors}, openapi_extra=json_body(InferRequest))

    @app.get("/v2", response_model=ServerMetadata, summary="Server metadata", tags=v2_tag)
    async def v2_server() -> Response:
        return _json(v2.server_metadata())

    @app.get("/v2/health/live", response_model=Live, summary="Liveness (v2)", tags=v2_tag)
    async def v2_live() -> Response:
        return _json({"live": True})

    @app.get("/v2/health/ready", response_model=ServerReady, summary="Readiness (v2)", tags=v2_tag,
             responses=errors(503))
    async def v2_ready() -> Response:
        """200 once a model version is loaded and checked; 503 (saying why) before."""
        service.serving()
        return _json({"ready": True})

    @app.get("/v2/models/{name}", response_model=ModelMetadata, summary="Model metadata (v2)", tags=v2_tag,
             responses=errors(404, 503))
    async def v2_metadata(name: str) -> Response:
        """The inputs, one tensor per column (FP64 numeric, INT64 integer, BOOL boolean, BYTES categorical and
        datetime), and the outputs: predict, probabilities (classifiers), prediction_id."""
        return _json(v2.metadata(name))

    @app.get("/v2/models/{name}/versions/{version}", response_model=ModelMetadata, tags=v2_tag,
             summary="Model metadata (v2), of the version serving", responses=errors(404, 503))
    async def v2_version_metadata(name: str, version: str) -> Response:
        return _json(v2.metadata(name, version))

    @app.get("/v2/models/{name}/ready", response_model=ModelReady, summary="Model readiness (v2)", tags=v2_tag,
             responses=errors(404, 503))
    async def v2_model_ready(name: str) -> Response:
        return _json(v2.model_ready(name))

    @app.get("/v2/models/{name}/versions/{version}/ready", response_model=ModelReady, tags=v2_tag,
             summary="Model readiness (v2), of the version serving", responses=errors(404, 503))
    async def v2_version_ready(name: str, version: str) -> Response:
        return _json(v2.model_ready(name, version))

    @app.get("/healthz", response_model=Health, summary="Liveness")
    async def healthz() -> Response:
        """200 while the process runs."""
        return _json({"status": "ok"})

    @app.get("/readyz", response_model=Ready, summary="Readiness", responses=errors(503))
    async def readyz() -> Response:
        """200 once a model version is loaded and checked; 503 (saying why) before."""
        state = service.slot.current
        if state is None:
            return Response(error_body(service.slot.status), status_code=503, media_type=JSON)
        return _json({"status": "ready", "model": state.model_ref})

    async def ping() -> Response:
        """MLflow's readiness route: 200 once a model version is loaded (as /readyz), 503 saying why before."""
        return await readyz()

    for path in ("/ping", "/health"):
        app.add_api_route(path, ping, methods=["GET"], response_model=Ready, responses=errors(503),
                          summary=f"Readiness, as `mlflow models serve` answers {path}", tags=["MLflow"])

    @app.get("/version", response_class=PlainTextResponse, summary="tidal's version, as MLflow's /version",
             tags=["MLflow"])
    async def version() -> PlainTextResponse:
        """The version of tidal serving, as text (``mlflow models serve`` answers its own version here)."""
        from tidal import __version__

        return PlainTextResponse(__version__)

    @app.get("/model", response_model=ModelInfo, summary="The model serving", responses=errors(503))
    async def model_info() -> Response:
        """Name, version, state, signature (with the columns that may be null), validation metrics, lineage,
        how it is served (fast or generic path), and the deployment: the strategy and the challenger beside
        the champion (canary share or shadow), or why there is none."""
        return _json(service.model_info())

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}})
    async def prometheus() -> Response:
        """Requests by endpoint and status, errors, a latency histogram, rows predicted, the model version
        serving, requests and rows by version and deployment (direct, canary, shadow), the challenger and
        its failures (totals over every worker process); and the model's health from the metadata store: the
        champion, drift share and per-feature drift, live and estimated metrics, labelled share, the loop's
        state and its last retrain."""
        return Response(await asyncio.to_thread(metrics.render), media_type=CONTENT_TYPE)

    def openapi() -> dict[str, Any]:
        # Not cached: the example request shows the columns of the version serving now.
        spec = add_components(get_openapi(title=app.title, version=app.version, description=app.description,
                                          routes=app.routes))
        state = service.slot.current
        if state is not None:
            example = {"instances": sample_rows(state.mv.signature, state.mv.profile, n=1)}
            body = spec["paths"]["/predict"]["post"]["requestBody"]["content"][JSON]
            body["example"] = example
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
    return app


__all__ = ["ENDPOINTS", "OVERRIDABLE", "QUIET_S", "TidalApp", "create_app"]
