"""The metric names a spec may use, grouped by the task they measure.

The evaluate stage computes them; the spec only needs the names, to catch a typo or a metric of the
wrong task while the file is read rather than after a model has been trained.
"""

from __future__ import annotations

from typing import Literal

Task = Literal["classification", "regression"]

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2")
KNOWN_METRICS: tuple[str, ...] = CLASSIFICATION_METRICS + REGRESSION_METRICS


def task_of(metric: str) -> Task:
    """The task a known metric measures."""
    if metric in CLASSIFICATION_METRICS:
        return "classification"
    if metric in REGRESSION_METRICS:
        return "regression"
    raise KeyError(metric)


def metrics_for(task: Task) -> tuple[str, ...]:
    """The known metrics of ``task``."""
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
