"""The evaluate step checks a classifier's calibration on the holdout and stores it for the estimate
before the labels arrive (issue #11, point 4): real pipelines fitted on frames of every column kind."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tidal.evaluate.scoring import Evaluation, evaluate_model
from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.train.fit import fit_pipeline

KINDS = {"x": "numeric", "n": "numeric", "c": "categorical", "when": "datetime", "when_tz": "datetime"}


def _frame(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=rows)
    frame = pd.DataFrame({
        "x": x,
        "n": pd.array(np.where(rng.random(rows) < 0.1, None, rng.integers(0, 5, rows)), dtype="Int64"),
        "c": pd.Categorical(rng.choice(["a", "b", "c"], rows)),
        "when": pd.date_range("2025-01-01", periods=rows, freq="h"),
        "when_tz": pd.date_range("2025-01-01", periods=rows, freq="h", tz="Europe/Paris"),
    })
    frame["label"] = np.where(x + rng.normal(0, 0.7, rows) > 0, "up", "down")
    frame["three"] = np.select([x < -0.5, x < 0.5], ["low", "mid"], "high")
    frame["amount"] = 3 * x + rng.normal(size=rows)
    return frame


@pytest.mark.parametrize("target", ["label", "three"])
def test_a_classifier_stores_its_holdout_calibration(target: str) -> None:
    train, holdout = _frame(600, 1), _frame(400, 2)
    columns = ["x", "n", "c", "when", "when_tz"]
    fitted = fit_pipeline(train, target=target, columns=columns, kinds=KINDS, prepare=PrepareSpec(),
                          model=ModelSpec(estimator="sklearn.linear_model.LogisticRegression"))
    evaluation = evaluate_model(fitted.model, train, holdout, columns=columns, kinds=KINDS, target=target,
                                task="classification")
    cal = evaluation.calibration
    assert cal["rows"] == 400 and cal["classes"] == holdout[target].nunique()
    assert cal["method"] in ("isotonic", "none") and cal["why"]
    assert 0 <= cal["ece_raw"] < 0.2 and math.isfinite(cal["ece_calibrated"])
    if cal["method"] == "isotonic":
        assert len(cal["maps"]) == (1 if cal["classes"] == 2 else cal["classes"])
    assert Evaluation.from_dict(evaluation.to_dict()) == evaluation  # the step's cached form keeps it


def test_a_regressor_stores_none() -> None:
    train, holdout = _frame(300, 3), _frame(100, 4)
    fitted = fit_pipeline(train, target="amount", columns=["x", "c"], kinds=KINDS, prepare=PrepareSpec(),
                          model=ModelSpec(estimator="sklearn.linear_model.Ridge"))
    evaluation = evaluate_model(fitted.model, train, holdout, columns=["x", "c"], kinds=KINDS, target="amount",
                                task="regression")
    assert evaluation.calibration == {}
