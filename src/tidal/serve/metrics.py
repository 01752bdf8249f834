"""Prometheus metrics of the server, correct across worker processes.

Metrics (all prefixed ``tidal_``):

- ``requests_total{endpoint, status}``: requests answered, by route and HTTP status;
- ``request_errors_total{endpoint, status}``: the subset answered with a 4xx or 5xx;
- ``request_duration_seconds{endpoint}``: a latency histogram, from the first byte of the request to
  the last byte of the answer handed to the server;
- ``rows_predicted_total{model}``: rows answered by ``/predict`` (stored in the log first);
- ``model_version{model}``: the version each process serves (a ``pid`` label with several workers, so a
  hot swap in progress shows which process serves what);
- ``model_swaps_total{model}``: hot swaps done;
- ``deployment_requests_total{model, version, deployment}`` and ``deployment_rows_total{...}``: requests
  and rows predicted by each version, by how it answered: ``direct`` (the champion), ``canary`` (the
  challenger answered), ``shadow`` (the challenger predicted beside the champion; logged, not returned);
- ``challenger_version{model, deployment}``: the challenger each process runs beside the champion in a
  canary or shadow trial (0 when none; a ``pid`` label with several workers);
- ``challenger_errors_total{model, deployment}``: challenger predictions that failed (a canary request
  then answered by the champion; a shadow answer then not logged) — never a failed request;
- ``shadow_dropped_total{model}``: shadow predictions skipped because too many were still pending;
- ``connections_closed_total{reason}``: connections the connection guard closed
  (:mod:`tidal.serve.connections`): ``header_timeout``, ``body_timeout``, ``headers_too_large``, ``evicted``
  (idle, to admit a new one at ``deploy.max_connections``), ``refused`` (a new one, while every open one had
  a request in progress).

and the model's health, read from the metadata store at scrape time (:mod:`tidal.serve.health_metrics`):
``champion_version``, ``drift_share``, ``feature_drift_statistic``, ``live_metric``, ``estimated_metric``,
``labelled_share``, ``loop_state``, ``last_retrain_timestamp_seconds``...

``endpoint`` is a known route or ``other`` (unknown paths are not labels: a scanner cannot blow up
the series count). With several workers, prometheus_client's multiprocess mode keeps each process's
values in memory-mapped files under ``PROMETHEUS_MULTIPROC_DIR`` (a temporary folder per server, made
by :func:`tidal.serve.server.run_server` before the workers start) and ``/metrics`` sums them, so any
worker answers a scrape with the totals of all.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import values as _values

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_V2_MODEL = re.compile(r"^/v2/models/[^/]+(/versions/[^/]+)?(/ready|/infer)?$")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_enabled() -> bool:
    """Whether prometheus_client stores values in shared files (it decides once, when it is imported,
    from ``PROMETHEUS_MULTIPROC_DIR``)."""
    return _values.ValueClass is not _values.MutexValue


class ServerMetrics:
    """The server's metrics; one instance per app."""

    def __init__(self, endpoints: frozenset[str]) -> None:
        self.endpoints = endpoints
        self.multiprocess = multiprocess_enabled()
        # One registry per app in a single process (two apps in one test process do not collide); in
        # multiprocess mode values live in files and a scrape reads them all.
        self.registry = None if self.multiprocess else CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.requests = Counter("tidal_requests_total", "Requests answered, by endpoint and HTTP status.",
                                ["endpoint", "status"], registry=reg)
        self.errors = Counter("tidal_request_errors_total", "Requests answered with a 4xx or 5xx status.",
                              ["endpoint", "status"], registry=reg)
        self.latency = Histogram("tidal_request_duration_seconds", "Time to answer a request, in seconds.",
                                 ["endpoint"], buckets=BUCKETS, registry=reg)
        self.rows = Counter("tidal_rows_predicted_total", "Rows predicted (and stored) by /predict.", ["model"],
                            registry=reg)
        self.version = Gauge("tidal_model_version", "The model version this process serves.", ["model"],
                             registry=reg, multiprocess_mode="liveall")
        self.swaps = Counter("tidal_model_swaps_total", "Hot swaps to a new model version.", ["model"],
                             registry=reg)
        self.deployment_requests = Counter(
            "tidal_deployment_requests_total", "Requests predicted, by model version and deployment "
            "(direct, canary, shadow).", ["model", "version", "deployment"], registry=reg)
        self.deployment_rows = Counter(
            "tidal_deployment_rows_total", "Rows predicted, by model version and deployment (direct, canary, shadow).",
            ["model", "version", "deployment"], registry=reg)
        self.challenger = Gauge("tidal_challenger_version", "The challenger version this process runs beside the "
                                "champion (canary or shadow), 0 when none.", ["model", "deployment"], registry=reg,
                                multiprocess_mode="liveall")
        self.challenger_errors = Counter(
            "tidal_challenger_errors_total", "Challenger predictions that failed (the request was answered by the "
            "champion all the same).", ["model", "deployment"], registry=reg)
        self.shadow_dropped = Counter("tidal_shadow_dropped_total", "Shadow predictions skipped because too many "
                                      "were pending.", ["model"], registry=reg)
        self.connections_closed = Counter(
            "tidal_connections_closed_total", "Connections the server closed to protect itself: header_timeout, "
            "body_timeout, headers_too_large, evicted (idle, to admit a new one at deploy.max_connections), "
            "refused (all busy).",
            ["reason"], registry=reg)
        #: collectors read at scrape time (the model's health, :mod:`tidal.serve.health_metrics`)
        self.collectors: list[Any] = []
        # label lookups cost a lock and a dict per call: the hot path reuses the children.
        self._children: dict[tuple[str, int], tuple[Any, Any, Any]] = {}
        self._rows: dict[str, Any] = {}
        self._deployed: dict[tuple[str, int, str], tuple[Any, Any]] = {}

    def endpoint(self, path: str) -> str:
        if path in self.endpoints:
            return path
        match = _V2_MODEL.match(path)
        if match is not None:  # the Open Inference Protocol's routes, by template: a model name is not a label
            label = "/v2/models/{name}" + ("/versions/{version}" if match.group(1) else "") + (match.group(2) or "")
            if label in self.endpoints:
                return label
        return "other"

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        key = (endpoint, status)
        children = self._children.get(key)
        if children is None:
            label = str(status)
            children = (self.requests.labels(endpoint, label),
                        self.errors.labels(endpoint, label) if status >= 400 else None,
                        self.latency.labels(endpoint))
            self._children[key] = children
        requests, errors, latency = children
        requests.inc()
        if errors is not None:
            errors.inc()
        latency.observe(seconds)

    def rows_of(self, model: str) -> Any:
        """The rows-predicted counter of ``model`` (its labelled child, looked up once)."""
        child = self._rows.get(model)
        if child is None:
            child = self._rows[model] = self.rows.labels(model)
        return child

    def predicted(self, model: str, version: int, deployment: str, rows: int) -> None:
        """Count one request of ``rows`` rows predicted by ``model:version`` as ``deployment``."""
        key = (model, version, deployment)
        children = self._deployed.get(key)
        if children is None:
            labels = (model, str(version), deployment)
            children = self._deployed[key] = (self.deployment_requests.labels(*labels),
                                              self.deployment_rows.labels(*labels))
        children[0].inc()
        children[1].inc(rows)

    def challenger_served(self, model: str, kind: str, version: int | None) -> None:
        """The challenger this process now runs as ``kind`` (None: the trial ended)."""
        self.challenger.labels(model, kind).set(version or 0)

    def model_served(self, model: str, version: int, *, swapped: bool) -> None:
        self.version.labels(model).set(version)
        if swapped:
            self.swaps.labels(model).inc()

    def add_collector(self, collector: Any) -> None:
        """Add a collector read at each scrape (its figures are the workspace's, not this process's)."""
        self.collectors.append(collector)
        if self.registry is not None:
            self.registry.register(collector)

    def render(self) -> bytes:
        """The Prometheus text exposition: this process's values, or every worker's in multiprocess mode,
        then the added collectors'. It may read the metadata store: call it off the event loop."""
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        for collector in self.collectors:
            registry.register(collector)
        return generate_latest(registry)

    def process_exit(self) -> None:
        """Drop this process's live gauges (its model version) from the shared files."""
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """An ASGI middleware that counts every HTTP request ``app`` answers."""
        metrics = self

        async def measured(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            start = time.perf_counter()
            status = 500

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                metrics.observe(metrics.endpoint(scope["path"]), status, time.perf_counter() - start)

        return measured


__all__ = ["BUCKETS", "CONTENT_TYPE", "ServerMetrics", "multiprocess_enabled"]
