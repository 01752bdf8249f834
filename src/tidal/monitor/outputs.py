"""Prediction drift: the model's outputs in the window against its outputs on the validation rows.

The version's ``profile["predictions"]`` holds the validation-time outputs, profiled when it was
registered: ``prediction`` and, for classifiers, ``score``. A classifier's predicted classes are
compared as categories (chi-square / Jensen-Shannon under ``auto``), even when the classes are numbers:
the share of each class is what moves, not a mean. Scores and a regressor's predictions are numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from tidal.core.entities import ModelVersion
from tidal.monitor.auto import AUTO
from tidal.monitor.base import CATEGORICAL_KINDS, NUMERIC_KINDS
from tidal.monitor.binning import histogram_edges
from tidal.monitor.drift import COUNTED, SKIPPED, ColumnDrift, column_drift
from tidal.monitor.frame import PREDICTION, SCORE, class_key, class_keys


@dataclass
class PredictionDrift:
    """Drift of the outputs (``prediction``, ``score``): drifted when any of them did."""

    columns: list[ColumnDrift]
    note: str = ""

    @property
    def drifted(self) -> bool:
        return any(c.drifted for c in self.columns if c.status in COUNTED)

    def to_dict(self) -> dict[str, Any]:
        return {"drifted": self.drifted, "note": self.note,
                "drifted_columns": [c.column for c in self.columns if c.drifted],
                "columns": [c.to_dict() for c in self.columns]}


def prediction_drift(
    mv: ModelVersion, frame: pd.DataFrame, *, method: str = AUTO, threshold: float | None = None,
) -> PredictionDrift:
    """Compare the window's ``__prediction`` / ``__score`` columns with ``mv.profile["predictions"]``."""
    reference = ((mv.profile or {}).get("predictions") or {}).get("columns") or {}
    if not reference:
        return PredictionDrift([], note="this version has no validation-time output profile")
    rows = len(frame)
    results: list[ColumnDrift] = []
    classifier = mv.task == "classification"
    if "prediction" in reference:
        ref = reference["prediction"]
        series = frame[PREDICTION] if PREDICTION in frame.columns else None
        if classifier:
            ref = as_class_profile(ref)
            if series is not None and ref.get("kind") in CATEGORICAL_KINDS:
                series = pd.Series(class_keys(series), index=series.index, dtype=object)
        results.append(column_drift("prediction", ref, series, rows=rows, method=method, threshold=threshold))
    if classifier and "score" in reference:
        series = frame[SCORE] if SCORE in frame.columns else None
        if rows and (series is None or series.isna().all()):
            # the server logged no probabilities: nothing to compare, and not the model's fault
            results.append(ColumnDrift("score", str(reference["score"].get("kind", "numeric")), SKIPPED,
                                       rows=rows, why="no probabilities were logged in this window"))
        else:
            results.append(column_drift("score", reference["score"], series, rows=rows, method=method,
                                        threshold=threshold))
    return PredictionDrift(results)


def as_class_profile(reference: Mapping[str, Any]) -> dict[str, Any]:
    """A classifier's predicted-class profile as a categorical one (``top`` counts keyed by
    :func:`class_key`). Numeric classes were profiled as numbers with one histogram bin per value
    (edges ``[v0, v1, ..., vk, vk]``); with too many classes for that, the profile stays numeric."""
    kind = reference.get("kind")
    if kind in CATEGORICAL_KINDS:
        top = {class_key(k) if kind == "boolean" else str(k): int(v) for k, v in (reference.get("top") or {}).items()}
        return {**reference, "kind": "categorical", "top": top}
    if kind not in NUMERIC_KINDS:
        return dict(reference)
    edges, counts = histogram_edges(reference)
    if edges.size < 2 or edges[-1] != edges[-2]:
        return dict(reference)  # quantile edges: many distinct classes, compare as numbers
    top = {class_key(float(v)): int(c) for v, c in zip(edges[:-1], counts, strict=True) if c > 0}
    return {"kind": "categorical", "count": reference.get("count", int(counts.sum())),
            "nulls": reference.get("nulls", 0), "null_share": reference.get("null_share", 0.0),
            "top": top, "other": 0, "n_unique": len(top)}


__all__ = ["PredictionDrift", "as_class_profile", "prediction_drift"]
