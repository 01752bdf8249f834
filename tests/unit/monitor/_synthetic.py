"""Synthetic data for the monitor tests: a reference draw, a window, and a registered-looking version."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from tidal.core.entities import ModelState, ModelVersion, Prediction
from tidal.core.signature import Signature
from tidal.data.profile import profile_frame

COLUMNS = [f"f{i:02d}" for i in range(20)]
SHIFTED = COLUMNS[:5]
START = datetime(2025, 1, 1, tzinfo=UTC)


def normal_frame(rows: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """``rows`` x 20 standard normal columns; the first five moved by ``shift`` standard deviations."""
    data = np.random.default_rng(seed).standard_normal((rows, len(COLUMNS)))
    data[:, : len(SHIFTED)] += shift
    return pd.DataFrame(data, columns=COLUMNS, copy=False)


def classifier_rows(rows: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    """Features of a toy binary problem: 20 normal columns, a categorical and a boolean one, and ``y``."""
    rng = np.random.default_rng(seed)
    frame = normal_frame(rows, seed, shift=shift)
    frame["colour"] = rng.choice(np.array(["red", "green", "blue"], dtype=object), rows, p=[0.5, 0.3, 0.2])
    frame["member"] = rng.random(rows) < 0.4
    frame["y"] = (frame["f00"] + rng.normal(0, 0.5, rows) > 0).astype("int64")
    return frame


def toy_model(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """A fixed 'model': P(y=1) = sigmoid(3 * f00); predicts the likelier class."""
    p1 = 1 / (1 + np.exp(-3 * frame["f00"].to_numpy()))
    proba = np.column_stack([1 - p1, p1])
    return (p1 > 0.5).astype("int64"), proba


def toy_version(rows: int = 5_000, seed: int = 0) -> ModelVersion:
    """A version as the pipeline registers it: reference profile of the training rows (with target),
    validation-time outputs profiled, signature, classes, validation metrics."""
    train = classifier_rows(rows, seed)
    holdout = classifier_rows(rows // 4, seed + 1)
    pred, proba = toy_model(holdout)
    outputs = pd.DataFrame({"prediction": pred, "score": proba[:, 1]})
    accuracy = float(np.mean(pred == holdout["y"].to_numpy()))
    kinds = {c: "numeric" for c in COLUMNS} | {"colour": "categorical", "member": "boolean"}
    return ModelVersion(
        name="toy", version=1, state=ModelState.VALIDATED, created_at=START, run_id="r", artifact_digest="d",
        format="skops", task="classification",
        signature=Signature(columns=kinds, target="y", classes=[0, 1]),
        metrics={"accuracy": accuracy, "roc_auc": 0.9},
        profile={"features": profile_frame(train), "predictions": profile_frame(outputs)},
    )


def predictions_for(frame: pd.DataFrame, *, labelled: float = 0.5, seed: int = 0,
                    flip: float = 0.0) -> list[Prediction]:
    """Logged predictions of the toy model on ``frame``; a share ``labelled`` of them has feedback,
    with a share ``flip`` of those labels flipped (a model that got worse)."""
    rng = np.random.default_rng(seed)
    pred, proba = toy_model(frame)
    inputs = frame.drop(columns=["y"]).to_dict("records")
    out = []
    for i, (row, p, pr, y) in enumerate(zip(inputs, pred, proba, frame["y"], strict=True)):
        label = None
        if rng.random() < labelled:
            label = int(1 - y) if rng.random() < flip else int(y)
        row = {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
        out.append(Prediction(id=uuid.uuid4().hex, time=START + timedelta(seconds=i), model="toy", version=1,
                              inputs=row, output=int(p), proba=[float(x) for x in pr], label=label))
    return out
