"""The metric names tidal knows, grouped by the task they measure: the one list (the spec checks names
against it while the file is read; the evaluate stage computes exactly these).
"""

from __future__ import annotations

from typing import Literal

Task = Literal["classification", "regression"]

CLASSIFICATION_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss")
REGRESSION_METRICS: tuple[str, ...] = ("rmse", "mae", "r2")
KNOWN_METRICS: tuple[str, ...] = CLASSIFICATION_METRICS + REGRESSION_METRICS
#: The metrics where a smaller value is better (losses and errors).
LOWER_IS_BETTER = frozenset({"log_loss", "rmse", "mae"})


def task_of(metric: str) -> Task:
    """The task a known metric measures."""
    if metric in CLASSIFICATION_METRICS:
        return "classification"
    if metric in REGRESSION_METRICS:
        return "regression"
    raise KeyError(metric)


def metrics_for(task: str) -> tuple[str, ...]:
    """The known metrics of ``task``."""
    return CLASSIFICATION_METRICS if task == "classification" else REGRESSION_METRICS
