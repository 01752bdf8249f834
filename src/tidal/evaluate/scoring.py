"""A model's metrics on labelled rows of a table, and the evaluate step: train and holdout scores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tidal.data.codec import target_array
from tidal.data.prepare import as_model_input
from tidal.data.profile import profile_frame
from tidal.evaluate.calibration import class_codes, fit_calibration
from tidal.evaluate.metrics import compute_metrics
from tidal.train.fit import predict_frame

Metrics = dict[str, float | None]


def metrics_on(model: Any, df: pd.DataFrame, *, columns: Sequence[str], kinds: Mapping[str, str], target: str,
               task: str) -> Metrics:
    """Every metric of ``task`` for ``model``'s answers to the rows of ``df`` (its ``columns``, read as
    ``kinds``) against their ``target`` values."""
    pred, proba = predict_frame(model, as_model_input(df, columns, kinds))
    return compute_metrics(task, target_array(df[target]), pred, proba, classes=getattr(model, "classes_", None))


@dataclass(frozen=True)
class Evaluation:
    """The evaluate step's result: metrics on the training and the holdout rows, and the profile of the
    holdout predictions (the reference that monitoring compares live predictions with)."""

    train: Metrics
    validation: Metrics
    predictions: dict[str, Any]
    #: the holdout calibration check of a classifier (:mod:`tidal.evaluate.calibration`); ``{}`` otherwise
    calibration: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"train": self.train, "validation": self.validation, "predictions": self.predictions,
                "calibration": self.calibration}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        return cls(train=dict(data["train"]), validation=dict(data["validation"]),
                   predictions=dict(data.get("predictions") or {}),
                   calibration=dict(data.get("calibration") or {}))


def evaluate_model(model: Any, train: pd.DataFrame, holdout: pd.DataFrame, *, columns: Sequence[str],
                   kinds: Mapping[str, str], target: str, task: str) -> Evaluation:
    """Score ``model`` on its training rows and on the holdout, and profile its holdout predictions."""
    train_metrics = metrics_on(model, train, columns=columns, kinds=kinds, target=target, task=task)
    pred, proba = predict_frame(model, as_model_input(holdout, columns, kinds))
    classes = getattr(model, "classes_", None)
    validation = compute_metrics(task, target_array(holdout[target]), pred, proba, classes=classes)
    calibration: dict[str, Any] = {}
    if task == "classification":
        y, p = class_codes(target_array(holdout[target]), classes), class_codes(pred, classes)
        known = (y >= 0) & (p >= 0)
        calibration = fit_calibration(y[known], None if proba is None else proba[known], p[known])
    return Evaluation(train=train_metrics, validation=validation,
                      predictions=profile_frame(prediction_frame(pred, proba)), calibration=calibration)


def prediction_frame(pred: np.ndarray, proba: np.ndarray | None) -> pd.DataFrame:
    """Predictions as a table for profiling: ``prediction``, and ``score`` for classifiers (the positive
    class's probability for two classes, the top probability for more)."""
    frame = pd.DataFrame({"prediction": pred})
    if proba is not None and proba.ndim == 2:
        frame["score"] = proba.max(axis=1) if proba.shape[1] > 2 else proba[:, -1]
    return frame


__all__ = ["Evaluation", "Metrics", "evaluate_model", "metrics_on", "prediction_frame"]
