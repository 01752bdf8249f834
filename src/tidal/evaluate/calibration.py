"""How far a classifier's probabilities can be trusted, checked on the holdout at training time.

Estimating accuracy before the labels arrive (:mod:`tidal.monitor.estimate`) reads a row's probability
of its predicted class as the chance that the prediction is right. That holds only for calibrated
probabilities, so the evaluate step checks them on the holdout and stores what it found with the model
version (``profile["calibration"]``, plain JSON):

    {"method": "isotonic" | "none", "why": "...", "rows": 2000, "classes": 2, "bins": 10,
     "ece_raw": 0.081, "ece_calibrated": 0.012,
     "maps": [{"x": [...], "y": [...]}, ...]}   # binary: one map, on P(last class); else one per class

The decision, in the way of NannyML's CBPE (which calibrates its reference data's scores with isotonic
regression when that helps): an isotonic map per class (one-vs-rest; for two classes one map on the
positive class) is fitted on the holdout, and used only when its expected calibration error, measured
out of sample (3-fold cross-fitting on the holdout), is lower than the raw probabilities' error on the
same rows by at least :data:`MIN_GAIN` (0.005). A well-calibrated model keeps its raw probabilities (a
map fitted on a few thousand rows adds its own noise); a badly calibrated one is corrected. Isotonic
rather than Platt scaling: it corrects any monotone distortion (a boosted model's S-shaped one as well
as a logistic model's shift), and the holdouts tidal trains with have the rows it needs. With fewer than
:data:`MIN_ROWS` holdout rows, or a class seen fewer than :data:`MIN_CLASS_ROWS` times, no map is
fitted and the reason is stored.

The expected calibration error (ECE) is the top-label one over the model's own predicted class: rows
binned by the probability of their predicted class (:data:`BINS` equal-width bins), and the
row-weighted mean gap between that probability and the share of rows predicted right.

When a passing model is refitted on train + holdout (``retrain.refit``), the map fitted for the gated
model is kept: the refitted model has seen the holdout, so no rows are left to check it on.
Regression: nothing is stored (``{}``); see :mod:`tidal.monitor.estimate` for what a report says then.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

BINS = 10
MIN_ROWS = 100
MIN_CLASS_ROWS = 10
FOLDS = 3
#: A map is used only when it lowers the ECE by this much: on a calibrated model the two differ by noise.
MIN_GAIN = 0.005
#: A stored map keeps at most this many knots (thinned evenly, ends kept), so a profile stays small.
MAX_KNOTS = 200
SEED = 0


def expected_calibration_error(proba: np.ndarray, pred: np.ndarray, y: np.ndarray, *, bins: int = BINS) -> float:
    """Top-label ECE: ``proba`` (n, k), ``pred`` and ``y`` class codes (n,)."""
    n = y.size
    if n == 0:
        return 0.0
    confidence = proba[np.arange(n), pred]
    correct = (pred == y).astype("float64")
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    total = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            total += inside.sum() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(total / n)


def fit_calibration(y: np.ndarray, proba: np.ndarray | None, pred: np.ndarray) -> dict[str, Any]:
    """Check (and, when it helps, correct) the calibration of holdout probabilities.

    ``y`` and ``pred`` are class codes ``0..k-1`` in the model's class order (rows whose label is not
    one of the classes are left out by the caller); ``proba`` has one column per class.
    """
    if proba is None or proba.ndim != 2 or proba.shape[1] < 2:
        return {"method": "none", "why": "the model gives no class probabilities", "rows": int(y.size)}
    k = proba.shape[1]
    out: dict[str, Any] = {"method": "none", "why": "", "rows": int(y.size), "classes": k, "bins": BINS,
                           "ece_raw": expected_calibration_error(proba, pred, y), "ece_calibrated": None}
    if y.size < MIN_ROWS:
        out["why"] = f"{y.size} holdout rows, fewer than {MIN_ROWS}: raw probabilities are used"
        return out
    counts = np.bincount(y, minlength=k)
    if counts.min() < MIN_CLASS_ROWS or (y.size - counts).min() < MIN_CLASS_ROWS:
        out["why"] = (f"a class has fewer than {MIN_CLASS_ROWS} holdout rows (or all but that many): raw "
                      "probabilities are used")
        return out
    cross = np.empty_like(proba)
    folds = np.random.default_rng(SEED).permutation(y.size) % FOLDS
    for f in range(FOLDS):
        fit_on, test_on = folds != f, folds == f
        maps = _fit_maps(y[fit_on], proba[fit_on])
        cross[test_on] = apply_maps(maps, proba[test_on])
    out["ece_calibrated"] = expected_calibration_error(cross, pred, y)
    if out["ece_calibrated"] < out["ece_raw"] - MIN_GAIN:
        out.update(method="isotonic", maps=_fit_maps(y, proba), why=(
            f"isotonic map fitted on the holdout: out-of-sample ECE {out['ece_calibrated']:.4f} against "
            f"{out['ece_raw']:.4f} raw"))
    else:
        out["why"] = (f"the raw probabilities are as well calibrated as an isotonic map would make them (ECE "
                      f"{out['ece_raw']:.4f}, {out['ece_calibrated']:.4f} with the map): used as they are")
    return out


def calibrate(calibration: Mapping[str, Any] | None, proba: np.ndarray) -> np.ndarray:
    """``proba`` (n, k) through the stored calibration (unchanged when it has no maps)."""
    maps = (calibration or {}).get("maps")
    if not maps or calibration is None or calibration.get("method") != "isotonic":
        return proba
    return apply_maps(maps, proba)


def apply_maps(maps: Sequence[Mapping[str, Sequence[float]]], proba: np.ndarray) -> np.ndarray:
    """Calibrated probabilities: one map (binary: on the last class) or one per class, rows renormalised."""
    k = proba.shape[1]
    if len(maps) == 1 and k == 2:
        positive = np.interp(proba[:, 1], maps[0]["x"], maps[0]["y"])
        return np.column_stack([1 - positive, positive])
    if len(maps) != k:
        return proba  # a map stored for another number of classes: nothing safe to do but not calibrate
    out = np.column_stack([np.interp(proba[:, c], maps[c]["x"], maps[c]["y"]) for c in range(k)])
    total = out.sum(axis=1, keepdims=True)
    # a row every map sends to 0 keeps its raw probabilities (renormalising would divide by zero)
    return np.where(total > 0, out / np.where(total > 0, total, 1), proba)


def _fit_maps(y: np.ndarray, proba: np.ndarray) -> list[dict[str, list[float]]]:
    k = proba.shape[1]
    targets = [1] if k == 2 else list(range(k))
    return [_isotonic(proba[:, c], (y == c).astype("float64")) for c in targets]


def _isotonic(x: np.ndarray, hit: np.ndarray) -> dict[str, list[float]]:
    from sklearn.isotonic import IsotonicRegression

    if hit.min() == hit.max():  # one outcome only in this fold: a flat map at that outcome
        return {"x": [0.0, 1.0], "y": [float(hit[0])] * 2}
    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(x, hit)
    xs, ys = np.asarray(iso.X_thresholds_, dtype="float64"), np.asarray(iso.y_thresholds_, dtype="float64")
    if xs.size > MAX_KNOTS:
        keep = np.unique(np.linspace(0, xs.size - 1, MAX_KNOTS).round().astype(int))
        xs, ys = xs[keep], ys[keep]
    return {"x": [round(float(v), 6) for v in xs], "y": [round(float(v), 6) for v in ys]}


def class_codes(values: np.ndarray, classes: Sequence[Any] | None) -> np.ndarray:
    """``values`` as codes in ``classes`` order (-1 for a value that is not one of them)."""
    index = {_key(c): i for i, c in enumerate([] if classes is None else classes)}
    return np.asarray([index.get(_key(v), -1) for v in values], dtype=np.int64)


def _key(value: Any) -> Any:
    # numpy scalars and Python values of the same class must meet: 1, np.int64(1) and 1.0 are one class
    item = value.item() if hasattr(value, "item") else value
    if isinstance(item, float) and item.is_integer():
        return int(item)
    return item


__all__ = ["BINS", "apply_maps", "calibrate", "class_codes", "expected_calibration_error", "fit_calibration"]
