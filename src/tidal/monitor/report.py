"""One monitoring report: data drift, prediction drift and performance of a version over one window.

    from tidal.monitor import build_report, summarize
    report = build_report(mv, predictions, spec.monitor, metrics=spec.validate.metric_names(),
                          report_id=uuid.uuid4().hex, now=clock.now())
    for line in summarize(report):
        print(line)

``Report.body`` is plain JSON (no raw rows: counts, statistics and histograms on the reference bins):

    {"schema": 1,
     "model": {"name", "version", "task"},
     "window": {"rows", "first", "last", "labelled", "versions", "deployments"},
     "drift": {"method", "share_threshold", "counted", "n_drifted", "share", "drifted",
               "drifted_columns", "columns": [<column result>, ...]},
     "prediction_drift": {"drifted", "drifted_columns", "note", "columns": [<column result>, ...]},
     "performance": {"metric", "value", "ci", "ci_method", "labelled", "validation", "floor",
                     "status", "alert", "why", "metrics": {...}, ...},
     "estimate": {"metric", "value", "se", "rows", "unlabelled", "realised", "check", "calibration",
                  "status", "why", ...},   # before the labels arrive: tidal.monitor.estimate
     "alerts": [{"kind": "data_drift" | "performance", "message": "..."}],
     "notes": [{"kind": "prediction_drift" | "feature_drift", "message": "..."}],
     "images": [{"column", "statistics": [...], "window": [...], "reference": [...]}],  # image models only
     "embedding": {"column", "layer", "width", "components", "reference_images", "explained"}}  # torch ones

A column of images is judged on its statistics, each a numeric feature named ``<column>.<statistic>``
(``image.brightness``...), with a panel of thumbnails of the window beside the training images
(:mod:`tidal.monitor.images`); a network's, on its own embedding of them too (``image.emb1``...,
:mod:`tidal.monitor.embedding`), shown in the same panel.

What alerts (``Report.alerts``, which the loop turns into an Event) and what is only noted: the two
conditions tidal.yaml configures — the dataset drifts (``monitor.drift.share`` of the features drifted)
and performance is worse than ``monitor.performance`` allows (see :mod:`tidal.monitor.performance`).
Prediction drift, and features that drifted while the dataset did not, are *notes*: in the body, the
HTML and ``summarize(report, notes=True)``, but no Event. The spec has no knob for them, and on a model
validated on a later period than it was trained on (a time split) the validation outputs — the
reference for outputs — can differ from what training-period inputs produce while those inputs match
the training profile exactly: on Elec2 the model predicts "up" for 66 % of the validation rows and for
42 % of the training rows, so every window of training-like rows would otherwise alert.

A column result: ``column, kind, status, test, statistic, threshold, is_pvalue, drifted, why, rows,
n_reference, n_current, null_share_reference, null_share_current, unseen, unseen_categories, plot,
effect, effect_size, baseline``
(see :class:`tidal.monitor.drift.ColumnDrift`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from tidal.core.entities import ModelVersion, Prediction, Report
from tidal.core.errors import TidalError
from tidal.core.text import count
from tidal.monitor.auto import AUTO
from tidal.monitor.drift import DatasetDrift, detect_drift
from tidal.monitor.embedding import Embedding, add_embedding, embedding_panel
from tidal.monitor.estimate import estimate_performance
from tidal.monitor.frame import LABEL, TIME, frame_of
from tidal.monitor.images import expand_images, image_panel
from tidal.monitor.outputs import PredictionDrift, prediction_drift
from tidal.monitor.performance import assess_performance
from tidal.monitor.registry import get_drift_test
from tidal.spec.model import MonitorSpec

REPORT_SCHEMA = 1
#: How many drifted columns an alert line names before it says "and N more".
NAMED_IN_ALERT = 5


def build_report(
    mv: ModelVersion,
    predictions: Sequence[Prediction],
    spec: MonitorSpec,
    *,
    metrics: Sequence[str],
    report_id: str,
    now: datetime,
    embedding: Embedding | None = None,
    stored: Callable[[str], bytes | None] | None = None,
) -> Report:
    """The report of ``mv`` over ``predictions`` (the window, any order), judged by ``spec``.

    ``metrics`` are the spec's metric names (``spec.validate.metric_names()``; empty means the task's
    defaults); the performance section reports them, with an interval for ``spec.performance.metric``
    (default: the first of ``metrics``). An unknown ``spec.drift.method`` raises ``PluginNotFound``.
    ``embedding``: an image model's embedding reference (:mod:`tidal.monitor.embedding`), whose components
    are judged beside the image statistics; ``stored(digest)`` reads a served image back for it.
    """
    return report_from_frame(mv, frame_of(predictions, mv), spec, metrics=metrics, report_id=report_id,
                             now=now, predictions=predictions, embedding=embedding, stored=stored)


def report_from_frame(
    mv: ModelVersion,
    frame: pd.DataFrame,
    spec: MonitorSpec,
    *,
    metrics: Sequence[str],
    report_id: str,
    now: datetime,
    predictions: Sequence[Prediction] = (),
    embedding: Embedding | None = None,
    stored: Callable[[str], bytes | None] | None = None,
) -> Report:
    """:func:`build_report` on a window already in ``frame_of``'s layout."""
    method, threshold = spec.drift.method, spec.drift.threshold
    if method != AUTO:
        get_drift_test(method)  # fail before any work, with the list of known tests
    features = mv.profile.get("features") or {}
    columns = list(spec.drift.columns or _feature_columns(mv))
    # judged against the champion's own reference: its training profile, and how far its own holdout
    # already stood from it (versions registered before the baseline existed have none)
    baseline = (mv.profile.get("holdout_drift") or {}).get("columns")
    # a column of images is judged on its statistics (brightness, sharpness...), one numeric feature each
    image_ref, frame, judged = expand_images(features.get("columns") or {}, frame, columns)
    unembedded = None
    if embedding is not None:  # and on the network's own embedding of them
        try:
            image_ref, frame, judged = add_embedding(embedding, image_ref, frame, judged, columns, stored)
        except (TidalError, ValueError, OSError) as exc:  # the statistics are still judged; the report says why
            unembedded = {"column": embedding.column, "skipped": f"the window's images could not be embedded: {exc}"}
            embedding = None
    data = detect_drift({**features, "columns": image_ref}, frame, columns=judged, method=method,
                        threshold=threshold, share=spec.drift.share, baseline=baseline)
    outputs = prediction_drift(mv, frame, method=method, threshold=threshold)
    performance = assess_performance(mv, frame, spec.performance, metrics=metrics)
    estimate = estimate_performance(mv, frame, performance)
    window = describe_window(frame, predictions)
    alerts = _alerts(data, performance)
    notes = _notes(data, outputs)
    drift = data.to_dict()
    body = {
        "schema": REPORT_SCHEMA,
        "model": {"name": mv.name, "version": mv.version, "task": mv.task},
        "window": window,
        "drift": drift,
        "prediction_drift": outputs.to_dict(),
        "performance": performance,
        "estimate": estimate,
        "alerts": alerts,
        "notes": notes,
    }
    images = image_panel(features.get("columns") or {}, frame, judged, drift)
    if embedding is not None and (rows := embedding_panel(embedding, frame, judged, drift)):
        panel = next((p for p in images if p["column"] == embedding.column), None)
        if panel is None:
            images.append(panel := {"column": embedding.column, "statistics": [], "window": [], "reference": []})
        panel["statistics"] += rows
        body["embedding"] = embedding.describe()
    if unembedded is not None:
        body["embedding"] = unembedded
    if images:
        body["images"] = images
    return Report(id=report_id, model=mv.name, version=mv.version, created_at=now, window=window,
                  drift_share=data.share, drifted=data.drifted, alerts=[a["message"] for a in alerts],
                  body=body)


def summarize(report: Report, *, notes: bool = False) -> list[str]:
    """One line per alert, for the CLI (empty when nothing is wrong); with ``notes``, then one line per
    note (prediction drift, features that drifted below the share), each starting ``note:``."""
    body = report.body or {}
    alerts = body.get("alerts")
    lines = list(report.alerts) if alerts is None else [str(a.get("message", "")) for a in alerts]
    unreadable = (report.window or {}).get("unreadable")
    if unreadable:
        lines.append(f"{count(unreadable['predictions'], 'stored prediction')} "
                     f"({count(unreadable['batches'], 'batch', 'batches')}) cannot be read and "
                     f"{'was' if unreadable['predictions'] == 1 else 'were'} left out of this window: run "
                     "`tidal predictions check --quarantine`")
    failed = loop_failure(body)
    if failed is not None:
        lines.append(failed)
    if notes:
        lines += [f"note: {n.get('message', '')}" for n in body.get("notes") or []]
    return lines


def loop_failure(body: Mapping[str, Any]) -> str | None:
    """The line that says the loop's last retrain failed, or its last collection (``data.collect``) failed or
    was rejected, when one did (the report's ``loop`` section, written by the loop's monitoring pass), else
    None."""
    loop = body.get("loop") or {}
    said: list[str] = []
    if failed := loop.get("last_retrain_failed"):
        total = int(failed.get("failures") or 0)
        said.append(f"the loop's last retrain ({failed.get('trigger')}, at {_when(failed.get('time'))}) failed: "
                    f"{failed.get('error')}"
                    + (f" ({count(total, 'failed retrain')} in all)" if total > 1 else "")
                    + "; the champion stays until a retrain succeeds (tidal events --kind loop.retrain_failed)")
    if collecting := loop.get("last_collection_failed"):
        kind = "data.rejected" if collecting.get("outcome") == "rejected" else "collect.failed"
        said.append(f"the loop's last collection, at {_when(collecting.get('time'))}: {collecting.get('message')} "
                    f"(tidal events --kind {kind})")
    return "; ".join(said) or None


def _when(value: Any) -> str:
    """A stored ISO time as people read it, to the second, in UTC (as it was stored, when it is not ISO)."""
    try:
        when = datetime.fromisoformat(str(value))
    except ValueError:
        return str(value)
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if when.tzinfo is not None else "")


def describe_window(frame: pd.DataFrame, predictions: Sequence[Prediction] = ()) -> dict[str, Any]:
    """Rows, first and last prediction time, labelled rows, and which versions / deployments answered."""
    rows = len(frame)
    times = [t for t in (frame[TIME] if TIME in frame.columns else []) if t is not None]
    labelled = int(frame[LABEL].map(lambda v: v is not None).sum()) if LABEL in frame.columns else 0
    versions = Counter(f"{p.model}:{p.version}" for p in predictions)
    deployments = Counter(p.deployment for p in predictions)
    return {"rows": rows, "first": _iso(min(times)) if times else None, "last": _iso(max(times)) if times else None,
            "labelled": labelled, "versions": dict(versions), "deployments": dict(deployments)}


def _feature_columns(mv: ModelVersion) -> list[str]:
    signature = mv.signature.names
    if signature:
        return signature
    target = mv.signature.target
    return [c for c in ((mv.profile.get("features") or {}).get("columns") or {}) if c != target]


def _alerts(data: DatasetDrift, performance: dict[str, Any]) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    if data.drifted:
        drifted = [c for c in data.columns if c.drifted]
        alerts.append({"kind": "data_drift", "columns": [c.column for c in drifted], "message": (
            f"data drift: {data.n_drifted} of {data.counted} features drifted ({data.share:.0%}, "
            f"threshold {data.share_threshold:.0%}): {_named(drifted)}")})
    if performance.get("alert"):
        ci = performance.get("ci")
        interval = f", 95% CI {ci[0]:.4g} to {ci[1]:.4g}" if ci else ""
        alerts.append({"kind": "performance", "metric": performance["metric"], "message": (
            f"performance: {performance['why']} ({performance['labelled']} labelled rows{interval})")})
    return alerts


def _notes(data: DatasetDrift, outputs: PredictionDrift) -> list[dict[str, Any]]:
    notes: list[dict[str, Any]] = []
    if outputs.drifted:
        drifted = [c for c in outputs.columns if c.drifted]
        notes.append({"kind": "prediction_drift", "columns": [c.column for c in drifted],
                      "message": "prediction drift: " + _named(drifted)})
    if data.n_drifted and not data.drifted:
        drifted = [c for c in data.columns if c.drifted]
        notes.append({"kind": "feature_drift", "columns": [c.column for c in drifted], "message": (
            f"{data.n_drifted} of {data.counted} features drifted, under the dataset threshold of "
            f"{data.share_threshold:.0%}: {_named(drifted)}")})
    return notes


def _named(columns: list[Any]) -> str:
    more = f" and {len(columns) - NAMED_IN_ALERT} more" if len(columns) > NAMED_IN_ALERT else ""
    return ", ".join(_describe(c) for c in columns[:NAMED_IN_ALERT]) + more


def _describe(column: Any) -> str:
    if column.status != "tested":
        return f"{column.column} ({column.status})"
    relation = "<" if column.is_pvalue else ">="
    statistic = "n/a" if column.statistic is None else f"{column.statistic:.3g}"
    text = f"{column.column} ({column.test} {statistic} {relation} {column.threshold:g})"
    if column.statistic is not None and not (
            column.statistic < column.threshold if column.is_pvalue else column.statistic >= column.threshold):
        text = f"{column.column} ({column.why.split('; ')[-1]})"  # drifted on its null share alone
    return text


def _iso(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


__all__ = ["REPORT_SCHEMA", "build_report", "describe_window", "report_from_frame", "summarize"]
