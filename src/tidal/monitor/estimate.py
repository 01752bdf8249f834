"""Performance before the labels arrive: confidence-based estimation from the model's own probabilities.

Labels come late or never for much real traffic. A classifier that says "class 1, probability 0.9" a
thousand times, with probabilities that are calibrated, is right about 900 times: the expected
confusion matrix of a window is the sum, over its rows, of each row's calibrated class probabilities
placed in the column of the class it predicted (``C[true, predicted]``). Accuracy, balanced accuracy and
F1 follow from that matrix exactly as they do from a counted one. This is NannyML's CBPE; the
probabilities go through the calibration checked on the holdout at training time and stored with the
version (:mod:`tidal.evaluate.calibration`), so a model whose raw probabilities are over- or
under-confident is corrected before it is trusted.

The report's ``estimate`` section (JSON, beside ``performance``):

    {"metric": "accuracy", "value": 0.871, "se": 0.008, "rows": 1800, "unlabelled": 1800, "unusable": 0,
     "metrics": {"accuracy": ..., "balanced_accuracy": ..., "f1": ...},
     "realised": 0.864, "labelled": 200,        # the same metric, counted on the window's labelled rows
     "check": {"rows": 200, "estimated": 0.858, "realised": 0.864},  # both on the labelled rows
     "calibration": {"method": "isotonic", "ece_raw": ..., "ece_calibrated": ..., "rows": ...},
     "status": "estimated" | "no unlabelled rows" | "not estimated", "why": "..."}

``value`` covers the unlabelled rows only (``rows`` of them; ``unusable`` are unlabelled rows logged
without probabilities, or with a prediction that is not one of the model's classes); ``check`` is the
same estimator on the labelled rows beside what was counted there, so a user sees how far to trust it.
``se`` is the standard error of the estimated accuracy if the probabilities are right (a sum of
Bernoulli variables). What it cannot see: a change in how the label depends on the inputs (concept
drift) at unchanged inputs leaves the probabilities, and so the estimate, where they were.

Regression: nothing is estimated (``status`` "not estimated", and the report says why) — a regressor's
answer carries no confidence to read its error from, and a learned error model (NannyML's DLE) would
be a second model to train, validate and trust.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.entities import ModelVersion
from tidal.data.codec import is_missing
from tidal.evaluate.calibration import calibrate
from tidal.monitor.frame import LABEL, PREDICTION, PROBA, class_key, class_keys
from tidal.spec.policy import ESTIMABLE_METRICS

REGRESSION_WHY = ("performance is estimated for classifiers only: a regressor's answers carry no confidence "
                  "to estimate its error from")


def expected_confusion(proba: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """``C[i, j]``: the expected number of rows of true class ``i`` predicted ``j``, from calibrated
    ``proba`` (n, k) and predicted class codes ``pred`` (n,)."""
    k = proba.shape[1]
    matrix = np.zeros((k, k))
    for j in range(k):
        matrix[:, j] = proba[pred == j].sum(axis=0)
    return matrix


def metrics_of_confusion(matrix: np.ndarray) -> dict[str, float | None]:
    """Accuracy, balanced accuracy and F1 of a (possibly expected) confusion matrix, with the
    conventions of :mod:`tidal.evaluate.metrics`: F1 of the last class for two classes, macro for more;
    balanced accuracy over the classes present."""
    total = matrix.sum()
    if total <= 0:
        return dict.fromkeys(ESTIMABLE_METRICS)
    tp = np.diag(matrix)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    present = support > 1e-12
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    return {"accuracy": float(tp.sum() / total),
            "balanced_accuracy": float(np.mean(tp[present] / support[present])) if present.any() else None,
            "f1": float(f1[-1]) if matrix.shape[0] == 2 else float(f1.mean())}


def estimate_codes(calibration: Mapping[str, Any] | None, proba: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    """The estimate over rows given as arrays: raw ``proba`` (n, k) and predicted class codes (n,).
    ``{"rows", "metrics", "se"}``; metrics are None for no rows."""
    n = int(pred.size)
    if n == 0:
        return {"rows": 0, "metrics": dict.fromkeys(ESTIMABLE_METRICS), "se": None}
    calibrated = calibrate(calibration, proba)
    right = calibrated[np.arange(n), pred]
    return {"rows": n, "metrics": metrics_of_confusion(expected_confusion(calibrated, pred)),
            "se": float(np.sqrt(np.sum(right * (1 - right))) / n)}


def estimate_rows(mv: ModelVersion, proba: np.ndarray,
                  predictions: np.ndarray | Sequence[Any]) -> dict[str, Any] | None:
    """:func:`estimate_codes` for ``mv``'s answers (predicted classes as the model gives them); None when
    the version is not a classifier or ``proba`` does not have one column per class."""
    classes = list(mv.signature.classes or [])
    if mv.task != "classification" or proba.ndim != 2 or proba.shape[1] != len(classes) or len(classes) < 2:
        return None
    codes = {class_key(c): i for i, c in enumerate(classes)}
    pred = np.asarray([codes.get(k, -1) if k is not None else -1 for k in class_keys(predictions)], dtype=np.int64)
    ok = pred >= 0
    return estimate_codes(mv.profile.get("calibration"), proba[ok], pred[ok])


def estimate_performance(mv: ModelVersion, frame: pd.DataFrame, performance: Mapping[str, Any]) -> dict[str, Any]:
    """The report's ``estimate`` section for ``mv`` over ``frame`` (``frame_of``'s layout);
    ``performance`` is the report's counted section, whose metric the estimate follows when it can."""
    calibration = dict(mv.profile.get("calibration") or {})
    primary = performance.get("metric")
    metric = primary if primary in ESTIMABLE_METRICS else "accuracy"
    out: dict[str, Any] = {
        "metric": metric, "value": None, "se": None, "rows": 0, "unlabelled": 0, "unusable": 0, "metrics": {},
        "realised": None, "labelled": int(performance.get("labelled") or 0), "check": None,
        "calibration": {k: calibration.get(k) for k in ("method", "ece_raw", "ece_calibrated", "rows", "why")},
        "status": "not estimated", "why": "",
    }
    if metric == primary:
        out["realised"] = performance.get("value")
    else:
        out["realised"] = (performance.get("metrics") or {}).get(metric)
    if mv.task != "classification":
        out["why"] = REGRESSION_WHY
        return out
    classes = list(mv.signature.classes or [])
    if len(classes) < 2:
        out["why"] = "this version does not name its classes"
        return out
    if not calibration:
        out["calibration"] = {"method": "none", "why": "no calibration was stored with this version (registered "
                                                       "before tidal checked it): raw probabilities are used"}
    labelled = _labelled(frame)
    unlabelled_rows = frame[~labelled]
    out["unlabelled"] = len(unlabelled_rows)
    proba, pred = _usable(unlabelled_rows, classes)
    out["unusable"] = out["unlabelled"] - int(pred.size)
    found = estimate_codes(calibration, proba, pred)
    out.update(rows=found["rows"], metrics=found["metrics"], value=found["metrics"].get(metric),
               se=found["se"] if metric == "accuracy" else None)
    check_proba, check_pred, check_y = _usable(frame[labelled], classes, with_labels=True)
    if check_pred.size:
        checked = estimate_codes(calibration, check_proba, check_pred)
        out["check"] = {"rows": checked["rows"], "estimated": checked["metrics"].get(metric),
                        "realised": _counted(check_y, check_pred, len(classes)).get(metric)}
        if out["realised"] is None:  # the spec's metrics leave this one out: count it on the checked rows
            out["realised"], out["labelled"] = out["check"]["realised"], out["check"]["rows"]
    if found["rows"] and out["value"] is not None:
        out["status"], out["why"] = "estimated", ""
    elif found["rows"]:
        out["why"] = f"{metric} is undefined on these rows"
    elif out["unlabelled"] == 0:
        out["status"], out["why"] = "no unlabelled rows", "every prediction in the window has its label"
    else:
        out["why"] = (f"none of the {out['unlabelled']} unlabelled predictions was logged with the model's "
                      "class probabilities")
    return out


def describe(estimate: Mapping[str, Any]) -> str:
    """One line for the CLI: the estimate beside the realised value, or why there is none."""
    metric = estimate.get("metric", "accuracy")
    if estimate.get("status") != "estimated":
        return f"estimated {metric}: {estimate.get('why') or estimate.get('status')}"
    se = estimate.get("se")
    text = (f"estimated {metric} {estimate['value']:.4f}" + (f" ± {1.96 * se:.4f}" if se else "")
            + f" on {estimate['rows']:,} unlabelled prediction{'s' if estimate['rows'] != 1 else ''}")
    realised = estimate.get("realised")
    if realised is not None:
        text += f"; realised {realised:.4f} on {estimate.get('labelled', 0):,} labelled"
    check = estimate.get("check") or {}
    if check.get("estimated") is not None and check.get("realised") is not None:
        text += f" (estimated {check['estimated']:.4f} there)"
    method = (estimate.get("calibration") or {}).get("method")
    return text + ("; probabilities recalibrated on the holdout" if method == "isotonic" else "")


def _labelled(frame: pd.DataFrame) -> pd.Series:
    if LABEL not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame[LABEL].map(lambda v: not is_missing(v)).astype(bool)


def _codes(values: pd.Series, classes: list[Any]) -> np.ndarray:
    codes = {class_key(c): i for i, c in enumerate(classes)}
    return np.asarray([codes.get(c, -1) if c is not None else -1 for c in class_keys(values)], dtype=np.int64)


def _usable(rows: pd.DataFrame, classes: list[Any], *, with_labels: bool = False) -> tuple[np.ndarray, ...]:
    """(proba, predicted codes[, label codes]) of the rows logged with one probability per class and a
    prediction among the classes (and, ``with_labels``, a label among them)."""
    k = len(classes)
    empty = (np.zeros((0, k)), np.zeros(0, dtype=np.int64)) + ((np.zeros(0, dtype=np.int64),) if with_labels else ())
    if rows.empty or PROBA not in rows.columns or PREDICTION not in rows.columns:
        return empty
    pred = _codes(rows[PREDICTION], classes)
    probas = list(rows[PROBA])
    ok = np.asarray([isinstance(r, list | tuple) and len(r) == k for r in probas]) & (pred >= 0)
    y = _codes(rows[LABEL], classes) if with_labels else None
    if y is not None:
        ok &= y >= 0
    if not ok.any():
        return empty
    proba = np.asarray([r for r, good in zip(probas, ok, strict=True) if good], dtype="float64")
    return (proba, pred[ok]) + (() if y is None else (y[ok],))


def _counted(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, float | None]:
    """The metrics counted from real labels, through the same confusion-matrix arithmetic."""
    matrix = np.zeros((k, k))
    np.add.at(matrix, (y, pred), 1.0)
    return metrics_of_confusion(matrix)


__all__ = ["describe", "estimate_codes", "estimate_performance", "estimate_rows", "expected_confusion",
           "metrics_of_confusion"]
