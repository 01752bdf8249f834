"""Metrics of a model on labelled rows, for classification and regression."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm


def primary_metric(task: str, requested: Sequence[str]) -> str:
    """The metric that summarises a model: the first requested one, else accuracy / rmse."""
    return requested[0] if requested else ("accuracy" if task == "classification" else "rmse")


def compute_metrics(
    task: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None,
    classes: Sequence[object] | None = None,
) -> dict[str, float | None]:
    """All metrics of ``task``; a metric that is undefined on these rows (ROC AUC with one class) is None."""
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    out: dict[str, float | None] = {}
    if task == "classification":
        out["accuracy"] = float(skm.accuracy_score(y_true, y_pred))
        out["balanced_accuracy"] = _safe(lambda: skm.balanced_accuracy_score(y_true, y_pred))
        labels = list(classes) if classes is not None else sorted(set(y_true.tolist()) | set(y_pred.tolist()))
        binary = len(labels) == 2
        out["f1"] = _safe(lambda: skm.f1_score(
            y_true, y_pred, average="binary" if binary else "macro",
            pos_label=labels[-1] if binary else 1, labels=labels, zero_division=0))
        if proba is not None:
            if binary:
                out["roc_auc"] = _safe(lambda: skm.roc_auc_score(y_true == labels[-1], proba[:, -1]))
            else:
                out["roc_auc"] = _safe(lambda: skm.roc_auc_score(y_true, proba, multi_class="ovr", labels=labels))
            out["log_loss"] = _safe(lambda: skm.log_loss(y_true, proba, labels=labels))
        else:
            out["roc_auc"] = out["log_loss"] = None
    else:
        out["rmse"] = float(math.sqrt(skm.mean_squared_error(y_true, y_pred)))
        out["mae"] = float(skm.mean_absolute_error(y_true, y_pred))
        out["r2"] = _safe(lambda: skm.r2_score(y_true, y_pred))
    return out


def _safe(fn: object) -> float | None:
    try:
        value = float(fn())  # type: ignore[operator]
    except ValueError:
        return None
    return value if math.isfinite(value) else None
