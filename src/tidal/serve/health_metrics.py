"""The model's health on ``/metrics``: the gauges a Grafana user expects beside the server's own counters.

They describe the project, not one server process, so they are read from the workspace's metadata store at
scrape time (and kept for :data:`CACHE_SECONDS`, so a busy scraper costs one read per period, whatever the
number of workers and scrapers): the newest monitoring report of the champion (``tidal monitor`` or
``tidal loop`` stores them), the champion alias and the loop controller's state.

- ``tidal_champion_version{model}``: the version the champion alias points at (what every server serves
  once it has hot-swapped; ``tidal_model_version`` is what each process serves now);
- ``tidal_drift_share{model, version}`` and ``tidal_dataset_drifted{model, version}``: the share of features
  drifted in the newest report's window, and whether it reached ``monitor.drift.share`` (1) or not (0);
- ``tidal_feature_drift_statistic{model, version, feature, test}`` and ``tidal_feature_drifted{...}``: each
  feature's drift statistic (a p-value for ``ks`` and ``chisquare`` on small windows, an effect size for the
  others: the ``test`` label says which) and whether it drifted;
- ``tidal_live_metric{model, version, metric}``: each metric on the window's labelled predictions, with
  ``tidal_live_metric_ci{..., bound="low"|"high"}`` for the watched one (its 95 % interval);
- ``tidal_estimated_metric{model, version, metric}``: the metric estimated on the predictions still waiting
  for their label (classifiers, from calibrated probabilities: docs/monitoring.md);
- ``tidal_labelled_share{model, version}`` and ``tidal_window_rows{model, version}``: the window's labelled
  share and size; ``tidal_report_timestamp_seconds{model, version}``: when the report was made (alert on
  its age: a loop that stopped monitoring shows here);
- ``tidal_loop_state{model, state}``: 1 for the controller's state now (``idle``, ``retraining``, ``trial``,
  ``watching``, ``paused``), 0 for the others; ``tidal_loop_retrain_failures{model}``: retrains that
  failed over the controller's life; ``tidal_last_retrain_timestamp_seconds{model}``.

A gauge with nothing to show (no report yet, no retrain yet) is absent rather than 0, so that a dashboard
tells "no data" from "no drift".
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tidal.core.ports import MetadataStore
from tidal.loop.state import state_key

logger = logging.getLogger("tidal.serve")

#: Seconds a scrape's figures are kept before the store is read again.
CACHE_SECONDS = 5.0
LOOP_STATES = ("idle", "retraining", "trial", "watching", "paused")


def _time(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


def loop_state(state: dict[str, Any]) -> str:
    """The controller's state, from its stored state: one of :data:`LOOP_STATES`."""
    if state.get("paused"):
        return "paused"
    if state.get("in_progress"):
        return "retraining"
    if state.get("trial"):
        return "trial"
    return "watching" if state.get("watch") else "idle"


class HealthCollector(Collector):
    """A Prometheus collector of the model's health, read from ``store`` (see the module docstring)."""

    def __init__(self, store: MetadataStore, model: str, *, cache_seconds: float = CACHE_SECONDS) -> None:
        self.store = store
        self.model = model
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] > self.cache_seconds:
                try:
                    self._cached = (now, list(self._read()))
                except Exception:  # a store that cannot be read must not break the scrape of the counters
                    logger.exception("the model health gauges could not be read from the metadata store")
                    self._cached = (now, [])
            return iter(self._cached[1])

    def _read(self) -> Iterable[Metric]:
        model = self.model
        alias = self.store.get_alias(model, "champion")
        if alias is not None:
            yield _gauge("tidal_champion_version", "The version the champion alias points at.", ["model"],
                         [([model], alias.version)])
        yield from self._report(alias.version if alias is not None else None)
        state = self.store.get_state(state_key(model)) or {}
        now = loop_state(state)
        yield _gauge("tidal_loop_state", "The loop controller's state: 1 for the current one.", ["model", "state"],
                     [([model, s], 1.0 if s == now else 0.0) for s in LOOP_STATES])
        yield _gauge("tidal_loop_retrain_failures", "Retrains that failed over the loop controller's life.",
                     ["model"], [([model], float(state.get("failures") or 0))])
        last = _time(state.get("last_retrain"))
        if last is not None:
            yield _gauge("tidal_last_retrain_timestamp_seconds", "When the loop last retrained (Unix time).",
                         ["model"], [([model], last)])

    def _report(self, champion: int | None) -> Iterable[Metric]:
        reports = [r for r in self.store.list_reports(self.model, limit=20)
                   if champion is None or r.version == champion]
        if not reports:
            return
        report = reports[0]
        body = report.body or {}
        key = [self.model, str(report.version)]
        labels = ["model", "version"]
        window = body.get("window") or report.window or {}
        rows = int(window.get("rows") or 0)
        yield _gauge("tidal_report_timestamp_seconds", "When the newest monitoring report was made (Unix time).",
                     labels, [(key, report.created_at.timestamp())])
        yield _gauge("tidal_window_rows", "Predictions in the newest report's window.", labels, [(key, rows)])
        if rows:
            yield _gauge("tidal_labelled_share", "The share of the window's predictions that have their label.",
                         labels, [(key, int(window.get("labelled") or 0) / rows)])
        drift = body.get("drift") or {}
        if report.drift_share is not None:
            yield _gauge("tidal_drift_share", "The share of features drifted in the newest report's window.", labels,
                         [(key, report.drift_share)])
            yield _gauge("tidal_dataset_drifted", "1 when the window's drift share reached monitor.drift.share.",
                         labels, [(key, 1.0 if report.drifted else 0.0)])
        columns = [c for c in drift.get("columns") or [] if isinstance(c.get("statistic"), int | float)]
        yield _gauge("tidal_feature_drift_statistic", "Each feature's drift statistic (a p-value or an effect size: "
                     "see the test label).", [*labels, "feature", "test"],
                     [([*key, str(c["column"]), str(c.get("test") or "")], c["statistic"]) for c in columns])
        yield _gauge("tidal_feature_drifted", "1 for a feature whose drift test fired.", [*labels, "feature"],
                     [([*key, str(c["column"])], 1.0 if c.get("drifted") else 0.0) for c in columns])
        perf = body.get("performance") or {}
        metrics = {k: v for k, v in (perf.get("metrics") or {}).items() if isinstance(v, int | float)}
        yield _gauge("tidal_live_metric", "Each metric on the window's labelled predictions.", [*labels, "metric"],
                     [([*key, name], value) for name, value in metrics.items()])
        ci = perf.get("ci")
        if perf.get("metric") and isinstance(ci, list | tuple) and len(ci) == 2:
            yield _gauge("tidal_live_metric_ci", "The 95% interval of the watched metric on the labelled predictions.",
                         [*labels, "metric", "bound"],
                         [([*key, str(perf["metric"]), "low"], ci[0]), ([*key, str(perf["metric"]), "high"], ci[1])])
        estimate = body.get("estimate") or {}
        if estimate.get("metric") and isinstance(estimate.get("value"), int | float):
            yield _gauge("tidal_estimated_metric", "The metric estimated on the predictions waiting for their label.",
                         [*labels, "metric"], [([*key, str(estimate["metric"])], estimate["value"])])


def _gauge(name: str, doc: str, labels: list[str], samples: Iterable[tuple[list[str], float]]) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in samples:
        family.add_metric(values, float(value))
    return family


__all__ = ["CACHE_SECONDS", "LOOP_STATES", "HealthCollector", "loop_state"]
