"""Scores of logged predictions against their labels: how the loop judges a live model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tidal.core.entities import ModelVersion, Prediction
from tidal.evaluate.metrics import compute_metrics


def plain(value: Any) -> Any:
    """A NumPy scalar as the plain Python value (JSON and the prediction log want those)."""
    return value.item() if hasattr(value, "item") else value


def score(mv: ModelVersion, preds: Sequence[Prediction], metric: str) -> float | None:
    """``metric`` of ``mv``'s answers in ``preds`` against their labels (unlabelled rows ignored)."""
    labelled = [p for p in preds if p.label is not None]
    if not labelled:
        return None
    y_true = np.asarray([p.label for p in labelled])
    y_pred = np.asarray([p.output for p in labelled])
    proba = None
    classes = mv.signature.classes
    if mv.task == "classification" and all(p.proba is not None for p in labelled):
        proba = np.asarray([p.proba for p in labelled], dtype=float)
    try:
        values = compute_metrics(mv.task, y_true, y_pred, proba, classes=classes)
    except (TypeError, ValueError):
        return None
    return values.get(metric)
