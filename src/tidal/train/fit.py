"""Train: the preparation transformers and the estimator as one pipeline, fitted on training rows only."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tidal.core.errors import SpecError, TrainingError
from tidal.data.codec import target_array
from tidal.data.prepare import as_model_input, build_preprocessor
from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.train.capture import capture_output
from tidal.train.estimator import build_estimator, iteration_curves
from tidal.train.flavors import accepting_flavor
from tidal.train.relative import RelativeRegressor


@dataclass
class TrainResult:
    """A fitted pipeline with what its training produced."""

    #: the ``(prepare, model)`` Pipeline, or a :class:`RelativeRegressor` around it (``relative: true``)
    model: Pipeline | RelativeRegressor
    columns: list[str]
    curves: dict[str, list[float]] = field(default_factory=dict)
    fit_seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    #: what the library printed while fitting (:func:`tidal.train.capture.capture_output`), kept as the run's log
    log: str = ""


def fit_pipeline(
    train: pd.DataFrame, *, target: str, columns: Sequence[str], kinds: Mapping[str, str], prepare: PrepareSpec,
    model: ModelSpec,
) -> TrainResult:
    """Fit the ``prepare`` transformers and the ``model`` section's estimator as one pipeline on ``train``
    (its ``columns``, read as ``kinds``, to predict ``target``); errors become :class:`TrainingError`.
    With ``prepare.label_features.relative: true`` the pipeline learns the change from the last known
    label and is returned inside a :class:`RelativeRegressor`."""
    estimator = model.estimator
    built = build_estimator(estimator, model.params, model.seed)
    pipe = Pipeline([("prepare", build_preprocessor(prepare, kinds, columns, seed=model.seed)), ("model", built)])
    X = as_model_input(train, columns, kinds)
    y = target_array(train[target])
    # the flavor fits (the booster flavors log each round's training loss, and encode labels XGBoost cannot use)
    flavor = accepting_flavor(type(built))
    fitted: Pipeline | RelativeRegressor = pipe
    if (lf := getattr(prepare, "label_features", None)) is not None and lf.relative:
        check_relative(built, flavor)
        fitted = RelativeRegressor(pipe, lags=tuple(f"label_lag_{k}" for k in sorted(set(lf.lags))))
    curves: dict[str, list[float]] = {}
    start = time.perf_counter()
    # the library's own output (LightGBM's and XGBoost's messages, warnings) goes to the run's log
    with capture_output() as caught:
        try:
            if flavor is None or fitted is not pipe:  # build_estimator refuses a class without a flavor first
                fitted.fit(X, y)
            else:
                curves = flavor.fit(pipe, X, y)
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"training {estimator.rsplit('.', 1)[-1]} failed: {exc}",
                                hint="check the data types and model.params") from exc
    seconds = time.perf_counter() - start
    inner = fitted.estimator_ if isinstance(fitted, RelativeRegressor) else pipe
    return TrainResult(model=fitted, columns=list(columns),
                       curves={**iteration_curves(inner.named_steps["model"]), **curves},
                       fit_seconds=seconds, warnings=sorted(set(caught.warnings)), log=caught.text)


def check_relative(estimator: Any, flavor: Any) -> None:
    """Refuse (:class:`SpecError`) ``label_features.relative: true`` for an estimator it cannot wrap: a classifier (a
    class has no difference from the last one), or a model not stored by skops (the wrapper is)."""
    from sklearn.base import is_classifier

    where = "prepare.label_features.relative"
    if is_classifier(estimator):
        raise SpecError(f"true works for regression only, and {type(estimator).__name__} is a classifier",
                        path=where, hint="remove relative: true")
    if flavor is not None and flavor.name != "sklearn":
        raise SpecError(f"true works with scikit-learn estimators (stored by skops), not the {flavor.name} "
                        f"flavor's {type(estimator).__name__}", path=where,
                        hint="use a scikit-learn regressor, or remove relative: true")


def predict_frame(model: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and, for classifiers, class probabilities."""
    pred = np.asarray(model.predict(X))
    proba = np.asarray(model.predict_proba(X)) if hasattr(model, "predict_proba") else None
    return pred, proba
