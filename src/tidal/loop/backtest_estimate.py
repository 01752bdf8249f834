"""How far the estimate before the labels was from the truth, measured during a backtest.

Each tick of a backtest predicts a block of rows whose labels have not arrived yet. For each block the
champion's estimate (:mod:`tidal.monitor.estimate`: its probabilities through the calibration stored
with it) is set beside the accuracy the block turns out to have once its labels are known. The JSON
gains ``"estimate": {"metric": "accuracy", "mae": ..., "bias": ..., "ticks": N, "rows": ...,
"estimated": ..., "realised": ..., "noise": ...}``: ``mae`` the mean absolute error over ticks, ``bias`` the mean of
(estimated - realised), ``estimated`` / ``realised`` the row-weighted means. A block of ``tick_rows``
rows has sampling noise of its own (about ``sqrt(p (1 - p) / tick_rows)``: 0.03 at 250 rows and 75 %),
so ``mae`` is that noise plus the estimator's error: ``noise`` is the part a perfect estimate would
still show (the mean, over ticks, of the estimate's standard error times sqrt(2 / pi), the mean absolute
deviation of a normal draw), and ``bias`` shows a systematic error on its own.
Regression, or a model without probabilities: ``{"ticks": 0, "mae": null, "why": "..."}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tidal.core.entities import ModelVersion
from tidal.monitor.estimate import REGRESSION_WHY, estimate_rows


@dataclass
class EstimateTracker:
    """Collects, tick by tick, the estimated and the realised accuracy of the rows just predicted."""

    estimated: list[float] = field(default_factory=list)
    realised: list[float] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    errors: list[float] = field(default_factory=list)  # the standard error of each block's estimate
    why: str = ""

    def add(self, mv: ModelVersion, proba: np.ndarray | None, pred: np.ndarray | Sequence[Any],
            y: np.ndarray | Sequence[Any]) -> None:
        """One block: ``mv``'s answers ``pred`` with ``proba``, and the labels ``y`` they will get."""
        if mv.task != "classification":
            self.why = REGRESSION_WHY
            return
        if proba is None:
            self.why = "the model gives no class probabilities"
            return
        found = estimate_rows(mv, proba, pred)
        value = None if found is None else found["metrics"].get("accuracy")
        if value is None or not len(y):
            return
        hits = np.asarray([a == b for a, b in zip(pred, y, strict=True)], dtype="float64")
        self.estimated.append(float(value))
        self.realised.append(float(hits.mean()))
        self.rows.append(len(y))
        self.errors.append(float(found["se"] or 0.0) if found is not None else 0.0)

    def to_dict(self) -> dict[str, Any]:
        if not self.rows:
            return {"metric": "accuracy", "mae": None, "bias": None, "ticks": 0,
                    "why": self.why or "no block could be estimated"}
        est, real, weight = np.asarray(self.estimated), np.asarray(self.realised), np.asarray(self.rows)
        return {"metric": "accuracy", "mae": float(np.mean(np.abs(est - real))), "bias": float(np.mean(est - real)),
                "ticks": len(self.rows), "rows": int(weight.sum()),
                "estimated": float(np.average(est, weights=weight)),
                "realised": float(np.average(real, weights=weight)),
                # the mean absolute error a perfect estimate would still show, from sampling alone
                "noise": float(np.mean(self.errors) * np.sqrt(2 / np.pi))}


def estimate_line(estimate: dict[str, Any] | None) -> str | None:
    """One line on how far the estimate before the labels was from the truth (None when there is none to
    say: a regression, or a backtest from before the estimate existed); for the backtest's table and page."""
    if not estimate:
        return None
    metric = estimate.get("metric", "accuracy")
    if estimate.get("mae") is None:
        return f"{metric} before the labels: not estimated ({estimate.get('why', 'nothing to estimate')})"
    return (f"{metric} estimated before the labels: {estimate['estimated']:.4f} against {estimate['realised']:.4f} "
            f"realised over {estimate['ticks']} ticks; mean error per tick {estimate['mae']:.4f} (sampling alone "
            f"would give {estimate['noise']:.4f}), bias {estimate['bias']:+.4f}")


__all__ = ["EstimateTracker", "estimate_line"]
