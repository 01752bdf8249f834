"""Light numpy versions of the evaluate stage's metrics, for bootstrap resamples.

A report's point estimates come from :func:`tidal.evaluate.metrics.compute_metrics`; a bootstrap
interval recomputes one metric a few hundred times, where scikit-learn's input validation would cost
more than the arithmetic. These functions give the same numbers (a unit test holds them to it) on
encoded inputs: classes as codes ``0..k-1`` in ``signature.classes`` order (``-1`` for a predicted
class outside them), ``proba`` with one column per class in that order.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata

ScoreFn = Callable[[np.ndarray, np.ndarray, np.ndarray | None], float | None]


def accuracy(y: np.ndarray, p: np.ndarray, proba: np.ndarray | None = None) -> float | None:
    return float(np.mean(y == p)) if y.size else None


def _confusion(y: np.ndarray, p: np.ndarray, k: int) -> np.ndarray:
    valid = (p >= 0) & (p < k)
    matrix = np.bincount(y[valid] * k + p[valid], minlength=k * k).reshape(k, k)
    return matrix


def balanced_accuracy(k: int) -> ScoreFn:
    def score(y: np.ndarray, p: np.ndarray, proba: np.ndarray | None = None) -> float | None:
        if not y.size:
            return None
        support = np.bincount(y, minlength=k)
        hits = np.bincount(y[y == p], minlength=k)
        present = support > 0  # scikit-learn averages recall over the classes that occur in y
        return float(np.mean(hits[present] / support[present]))
    return score


def f1(k: int) -> ScoreFn:
    def score(y: np.ndarray, p: np.ndarray, proba: np.ndarray | None = None) -> float | None:
        if not y.size:
            return None
        matrix = _confusion(y, p, k)
        tp = np.diag(matrix).astype("float64")
        fp = np.bincount(p[(p >= 0) & (p != y)], minlength=k)[:k].astype("float64")
        fn = (np.bincount(y, minlength=k) - tp)
        denominator = 2 * tp + fp + fn
        per_class = np.divide(2 * tp, denominator, out=np.zeros(k), where=denominator > 0)
        # binary: the positive class is the last one; more classes: the macro average over all of them
        return float(per_class[-1]) if k == 2 else float(per_class.mean())
    return score


def _binary_auc(positive: np.ndarray, score: np.ndarray) -> float | None:
    n_pos = int(positive.sum())
    n_neg = positive.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return None
    ranks = rankdata(score)
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_auc(k: int) -> ScoreFn:
    def score(y: np.ndarray, p: np.ndarray, proba: np.ndarray | None = None) -> float | None:
        if proba is None or not y.size:
            return None
        if k == 2:
            return _binary_auc(y == 1, proba[:, -1])
        if np.unique(y).size != k:
            return None  # scikit-learn refuses one-vs-rest AUC when a class is absent
        aucs = [_binary_auc(y == c, proba[:, c]) for c in range(k)]
        return None if any(a is None for a in aucs) else float(np.mean(aucs))  # type: ignore[arg-type]
    return score


def log_loss(y: np.ndarray, p: np.ndarray, proba: np.ndarray | None = None) -> float | None:
    if proba is None or not y.size:
        return None
    eps = np.finfo(proba.dtype).eps
    picked = np.clip(proba[np.arange(y.size), y], eps, 1 - eps)
    return float(-np.mean(np.log(picked)))


def rmse(y: np.ndarray, p: np.ndarray, proba: np.ndarray | None = None) -> float | None:
    return float(np.sqrt(np.mean((y - p) ** 2))) if y.size else None


def mae(y: np.ndarray, p: np.ndarray, proba: np.ndarray | None = None) -> float | None:
    return float(np.mean(np.abs(y - p))) if y.size else None


def r2(y: np.ndarray, p: np.ndarray, proba: np.ndarray | None = None) -> float | None:
    if y.size < 2:
        return None
    residual = float(np.sum((y - p) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    if total == 0:  # scikit-learn's force_finite: a constant target scores 1 if predicted exactly, else 0
        return 1.0 if residual == 0 else 0.0
    return 1 - residual / total


def score_fn(metric: str, n_classes: int = 2) -> ScoreFn:
    """The light function for ``metric`` (a name from ``tidal.evaluate.metrics``)."""
    table: dict[str, ScoreFn] = {
        "accuracy": accuracy, "balanced_accuracy": balanced_accuracy(n_classes), "f1": f1(n_classes),
        "roc_auc": roc_auc(n_classes), "log_loss": log_loss, "rmse": rmse, "mae": mae, "r2": r2,
    }
    if metric not in table:
        raise KeyError(f"no light version of metric {metric!r}")
    return table[metric]


__all__ = ["ScoreFn", "score_fn"]
