"""``RelativeRegressor``: a regression model that learns the change from the last known label.

A tree model cannot predict past the labels it was fitted on, so on a trend (the Keeling curve, an
approval rating that drifts) it falls behind every step the trend takes after its training. With
``prepare.label_features: {lags: [1, ...], relative: true}`` tidal fits the ``(prepare, model)``
pipeline on ``y - label_lag_1`` (how far each label lies from the newest label known before it) and
predicts ``label_lag_1 + model output``: the trend is carried by the last label, the model learns the
step. The inputs are unchanged: the pipeline still sees every column, ``label_lag_1`` included.

The base of a row is its ``label_lag_1``; where that is missing (the first rows of a table, the row after
one whose label never arrived, a server with no labelled predictions yet), the newest other declared lag
that is present (``label_lag_2``, ...), and where every lag is missing, the mean of the training labels
(``mean_``). Training and prediction use the same rule, so a row without history is predicted as the
model was taught to: the mean of the training labels plus the step it learnt for such rows.

It is one object that every caller predicts with, as with any scikit-learn model: the backtest's
strategies, the gate, the server and the registry's check that the stored model answers bit-for-bit as
the gated one did. It is saved with skops like the pipeline it wraps, and ``skops_trust`` lists this one
tidal class (its attributes are the fitted pipeline, lag names and a float).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.utils.validation import check_is_fitted

from tidal.core.errors import DataError


def base_of(lags: Sequence[Any], rows: int, mean: float) -> np.ndarray:
    """The base of ``rows`` rows from the values of their lag columns, newest lag first (each a sequence of
    numbers, None or NaN for a missing label): a row takes the first lag it has, else ``mean``. The one rule the
    model (:meth:`RelativeRegressor.base`) and the server's fast path (``RelativeFastPredictor``) both apply."""
    out = np.full(rows, np.nan)
    for values in lags:
        column = np.asarray(values, dtype=np.float64)
        gap = np.isnan(out)
        out[gap] = column[gap]
    out[np.isnan(out)] = mean
    return out


class RelativeRegressor(RegressorMixin, BaseEstimator):  # type: ignore[misc]
    """``estimator`` (tidal's ``(prepare, model)`` pipeline) fitted on the target less a base, the base
    being the row's ``lags[0]`` column, else the first of the other ``lags`` columns present, else the
    training target's mean; ``predict`` adds the base back (see the module docstring).

    Fitted attributes: ``estimator_`` (the fitted copy of ``estimator``), ``mean_`` (the training target's
    mean, the base of a row without any lag).
    """

    def __init__(self, estimator: Any = None, lags: Sequence[str] = ("label_lag_1",)) -> None:
        self.estimator = estimator
        self.lags = lags

    def base(self, X: Any, mean: float | None = None) -> np.ndarray:
        """The base of each row of ``X`` (a DataFrame holding the ``lags`` columns)."""
        missing = [c for c in self.lags if not hasattr(X, "columns") or c not in X.columns]
        if missing:
            raise DataError(f"a relative-target model needs the columns {', '.join(missing)} to predict",
                            hint="pass the label features (a server fills them from the prediction log)")
        return base_of([X[column] for column in self.lags], len(X), self.mean_ if mean is None else mean)

    def fit(self, X: Any, y: Any) -> RelativeRegressor:
        """Fit a copy of ``estimator`` on ``y - base(X)``."""
        target = np.asarray(y, dtype=np.float64)
        if not len(target) or not np.isfinite(target).all():
            raise DataError("a relative-target model needs finite numeric labels to learn from",
                            hint="drop the rows with missing labels, or remove label_features.relative")
        mean = float(target.mean())
        estimator = clone(self.estimator)
        estimator.fit(X, target - self.base(X, mean))
        self.estimator_, self.mean_ = estimator, mean
        return self

    def predict(self, X: Any) -> np.ndarray:
        """The base of each row plus the fitted estimator's prediction of its change."""
        check_is_fitted(self, ("estimator_", "mean_"))
        return np.asarray(self.base(X) + np.asarray(self.estimator_.predict(X), dtype=np.float64))


__all__ = ["RelativeRegressor", "base_of"]
