"""Train: the preparation transformers and the estimator as one pipeline, fitted on training rows only."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from tidal.core.errors import TrainingError
from tidal.data.codec import target_array
from tidal.data.prepare import as_model_input, build_preprocessor
from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.train.capture import capture_output
from tidal.train.estimator import build_estimator, iteration_curves
from tidal.train.flavors import accepting_flavor


@dataclass
class TrainResult:
    """A fitted pipeline with what its training produced."""

    model: Pipeline
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
    (its ``columns``, read as ``kinds``, to predict ``target``); errors become :class:`TrainingError`."""
    estimator = model.estimator
    built = build_estimator(estimator, model.params, model.seed)
    pipe = Pipeline([("prepare", build_preprocessor(prepare, kinds, columns, seed=model.seed)), ("model", built)])
    X = as_model_input(train, columns, kinds)
    y = target_array(train[target])
    # the flavor fits (the booster flavors log each round's training loss, and encode labels XGBoost cannot use)
    flavor = accepting_flavor(type(built))
    curves: dict[str, list[float]] = {}
    start = time.perf_counter()
    # the library's own output (LightGBM's and XGBoost's messages, warnings) goes to the run's log
    with capture_output() as caught:
        try:
            if flavor is None:  # build_estimator refuses such a class first
                pipe.fit(X, y)
            else:
                curves = flavor.fit(pipe, X, y)
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"training {estimator.rsplit('.', 1)[-1]} failed: {exc}",
                                hint="check the data types and model.params") from exc
    seconds = time.perf_counter() - start
    return TrainResult(model=pipe, columns=list(columns),
                       curves={**iteration_curves(pipe.named_steps["model"]), **curves},
                       fit_seconds=seconds, warnings=sorted(set(caught.warnings)), log=caught.text)


def predict_frame(model: Any, X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray | None]:
    """Predictions and, for classifiers, class probabilities."""
    pred = np.asarray(model.predict(X))
    proba = np.asarray(model.predict_proba(X)) if hasattr(model, "predict_proba") else None
    return pred, proba
