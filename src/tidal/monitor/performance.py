"""Performance on the window's labelled predictions, with a confidence interval, against validation.

The rule for an alert (only with at least ``performance.min_labelled`` labelled rows, so a handful of
early labels never pages anyone):

- with ``performance.floor`` set: the metric's point estimate is worse than the floor (below it, or
  above it for errors: ``rmse``, ``mae``, ``log_loss``);
- without a floor: the whole 95 % interval is worse than the validation value by more than a
  tolerance — 0.05 absolute for scores in [0, 1] (accuracy, f1, roc_auc, ...), 10 % relative for errors
  (their scale is the target's). Demanding the whole interval means a small window must show a clear
  drop before it alerts, and a large one alerts on a real 0.05 drop.

Intervals: Wilson's score interval for accuracy (a binomial share: exact enough at any size, never
outside [0, 1]); a percentile bootstrap for the others, seeded (the same report twice gives the same
interval) and bounded: 200 resamples, fewer on large windows so that resamples x rows stays under
2 million (never fewer than 50).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.entities import ModelVersion
from tidal.evaluate.metrics import compute_metrics, primary_metric
from tidal.monitor.frame import LABEL, PREDICTION, PROBA, class_key, class_keys
from tidal.monitor.scores import score_fn
from tidal.spec.metrics import LOWER_IS_BETTER, metrics_for
from tidal.spec.model import PerformanceSpec

CONFIDENCE = 0.95
SCORE_TOLERANCE = 0.05
ERROR_TOLERANCE = 0.10
BOOTSTRAP_RESAMPLES = 200
BOOTSTRAP_MIN_RESAMPLES = 50
BOOTSTRAP_BUDGET = 2_000_000
SEED = 0


def wilson_interval(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Wilson's score interval for a binomial share ``successes / n``."""
    if n <= 0:
        return (0.0, 1.0)
    z = _z(confidence)
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_interval(
    fn: Any, y: np.ndarray, p: np.ndarray, proba: np.ndarray | None = None, *,
    confidence: float = CONFIDENCE, seed: int = SEED, resamples: int | None = None,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``fn(y, p, proba)``; ``None`` when too few resamples give a
    value (a metric undefined on most resamples)."""
    n = y.size
    if n < 2:
        return None
    count = resamples or max(BOOTSTRAP_MIN_RESAMPLES, min(BOOTSTRAP_RESAMPLES, BOOTSTRAP_BUDGET // n))
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(count):
        pick = rng.integers(0, n, n)
        value = fn(y[pick], p[pick], None if proba is None else proba[pick])
        if value is not None and math.isfinite(value):
            values.append(value)
    if len(values) < count // 2:
        return None
    alpha = (1 - confidence) / 2
    low, high = np.quantile(values, [alpha, 1 - alpha])
    return (float(low), float(high))


def assess_performance(
    mv: ModelVersion, frame: pd.DataFrame, spec: PerformanceSpec, *, metrics: Sequence[str] = (),
) -> dict[str, Any]:
    """The performance section of a report (JSON-ready): metrics on the labelled rows of ``frame``
    (``frame_of``'s layout), the primary metric's interval, the validation value, and the verdict."""
    task = mv.task
    names = list(metrics) or list(metrics_for(task))
    primary = spec.metric or primary_metric(task, list(metrics))
    if primary not in names:
        names.append(primary)
    lower_better = primary in LOWER_IS_BETTER
    out: dict[str, Any] = {
        "metric": primary, "lower_is_better": lower_better, "labelled": 0, "unusable": 0,
        "min_labelled": spec.min_labelled, "floor": spec.floor, "validation": _finite(mv.metrics.get(primary)),
        "value": None, "ci": None, "ci_method": None, "confidence": CONFIDENCE, "metrics": {},
        "status": "no labels", "alert": False, "why": "no prediction in the window has a label yet",
    }
    encoded = _encode(mv, frame)
    if encoded is None:
        return out
    y, p, proba, unusable, n_classes = encoded
    out["labelled"], out["unusable"] = int(y.size), unusable
    if y.size == 0:
        if unusable:
            out["why"] = f"none of the {unusable} labels can be scored (not one of the model's classes)"
        return out
    classes = list(range(n_classes)) if task == "classification" else None
    values = compute_metrics(task, y, p, proba, classes=classes)
    out["metrics"] = {name: _finite(values.get(name)) for name in names}
    value = out["metrics"].get(primary)
    out["value"] = value
    if primary == "accuracy":
        out["ci"] = list(wilson_interval(int(np.sum(y == p)), int(y.size)))
        out["ci_method"] = "wilson"
    else:
        interval = bootstrap_interval(score_fn(primary, n_classes), y, p, proba)
        out["ci"] = None if interval is None else list(interval)
        out["ci_method"] = f"bootstrap (percentile, seed {SEED})"
    _verdict(out, spec)
    return out


def _verdict(out: dict[str, Any], spec: PerformanceSpec) -> None:
    metric, value, lower_better = out["metric"], out["value"], out["lower_is_better"]
    n = out["labelled"]
    if n < spec.min_labelled:
        out["status"] = "too few labels"
        out["why"] = f"{n} labelled rows, fewer than performance.min_labelled ({spec.min_labelled})"
        return
    if value is None:
        out["status"], out["why"] = "undefined", f"{metric} is undefined on these rows"
        return
    out["status"], out["why"] = "ok", ""
    if spec.floor is not None:
        worse = value > spec.floor if lower_better else value < spec.floor
        relation = "above the ceiling" if lower_better else "below the floor"
        if worse:
            out["alert"], out["status"] = True, "alert"
            out["why"] = f"{metric} {value:.4g} is {relation} {spec.floor:.4g}"
        return
    validation, ci = out["validation"], out["ci"]
    if validation is None or ci is None:
        return
    if lower_better:
        limit = validation * (1 + ERROR_TOLERANCE)
        worse, bound = ci[0] > limit, ci[0]
        rule = f"validation {validation:.4g} + {ERROR_TOLERANCE:.0%}"
    else:
        limit = validation - SCORE_TOLERANCE
        worse, bound = ci[1] < limit, ci[1]
        rule = f"validation {validation:.4g} - {SCORE_TOLERANCE}"
    out["limit"] = limit
    if worse:
        out["alert"], out["status"] = True, "alert"
        side = "lower" if lower_better else "upper"
        out["why"] = (f"{metric} {value:.4g}: even the interval's {side} bound {bound:.4g} is worse than "
                      f"{rule} = {limit:.4g}")


def _encode(
    mv: ModelVersion, frame: pd.DataFrame,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int, int] | None:
    """(y, prediction, proba, unusable rows, number of classes) over the labelled rows: classes as
    codes in ``signature.classes`` order, numbers as float64 for regression. A row is unusable when
    its label or its prediction is not one of the model's classes (or not a number, for regression):
    it is counted, and left out of the metrics."""
    if LABEL not in frame.columns or len(frame) == 0:
        return None
    labelled = frame[frame[LABEL].map(lambda v: v is not None and not _is_nan(v))]
    if labelled.empty:
        return None
    if mv.task != "classification":
        y = pd.to_numeric(labelled[LABEL], errors="coerce").to_numpy(dtype="float64")
        p = pd.to_numeric(labelled[PREDICTION], errors="coerce").to_numpy(dtype="float64")
        ok = np.isfinite(y) & np.isfinite(p)
        return y[ok], p[ok], None, int((~ok).sum()), 0
    classes = list(mv.signature.classes or [])
    # keyed by str | None: class_keys gives None for a null, which then reads as unusable (-1)
    codes: dict[str | None, int] = {class_key(c): i for i, c in enumerate(classes)}
    y = np.asarray([codes.get(k, -1) for k in class_keys(labelled[LABEL])], dtype=np.int64)
    p = np.asarray([codes.get(k, -1) for k in class_keys(labelled[PREDICTION])], dtype=np.int64)
    ok = (y >= 0) & (p >= 0)
    proba = _proba(labelled, len(classes))
    return y[ok], p[ok], None if proba is None else proba[ok], int((~ok).sum()), len(classes)


def _proba(labelled: pd.DataFrame, k: int) -> np.ndarray | None:
    """The logged class probabilities as an (n, k) array, or None unless every row has k of them."""
    if PROBA not in labelled.columns or k < 2:
        return None
    rows = list(labelled[PROBA])
    if any(r is None or len(r) != k for r in rows):
        return None
    try:
        return np.asarray(rows, dtype="float64")
    except (TypeError, ValueError):
        return None


def _is_nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


__all__ = ["assess_performance", "bootstrap_interval", "wilson_interval"]
