"""XGBoost and LightGBM models on the fast path: one call into the library per request (tidal.predict.boosters),
bit-for-bit the generic path's outputs (in process, no server)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.serve.test_predictor import KINDS, fitted, frame, json_rows
from tidal.core.signature import Signature
from tidal.data.prepare import as_model_input, build_preprocessor
from tidal.data.profile import profile_frame
from tidal.predict.predictor import FastPredictor, GenericPredictor, build_predictor


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> None:
    from tidal.serve.threads import cap_threads

    cap_threads()


def cases() -> list[Any]:
    from lightgbm import LGBMClassifier, LGBMRegressor
    from xgboost import XGBClassifier, XGBRegressor

    return [
        pytest.param(XGBClassifier(n_estimators=20, max_depth=3), "classification", "yb", "xgboost", id="xgb-binary"),
        pytest.param(XGBClassifier(n_estimators=20, max_depth=3), "classification", "y", "xgboost", id="xgb-multi"),
        pytest.param(XGBRegressor(n_estimators=20, max_depth=3), "regression", "x2", "xgboost", id="xgb-reg"),
        pytest.param(LGBMClassifier(n_estimators=20, verbose=-1), "classification", "yb", "lightgbm", id="lgbm-binary"),
        pytest.param(LGBMClassifier(n_estimators=20, verbose=-1), "classification", "name", "lightgbm",
                     id="lgbm-multi-strings"),
        pytest.param(LGBMRegressor(n_estimators=20, verbose=-1), "regression", "x2", "lightgbm", id="lgbm-reg"),
    ]


def fitted_on(estimator: Any, target: str) -> tuple[Any, Signature, dict[str, Any], pd.DataFrame]:
    """test_predictor's pipeline (imputed, scaled, one-hot), fitted on one of these targets: ``yb`` (two
    classes), ``y`` (three), ``name`` (three, as strings), ``x2`` (a number)."""
    from sklearn.pipeline import Pipeline

    df = frame()
    df["yb"] = (df["y"] > 0).astype(int)
    df["name"] = df["y"].map({0: "low", 1: "mid", 2: "high"})
    df["x2"] = df["x"].fillna(0) * 3 + df["k"]
    prepare = SimpleNamespace(scale="standard", encode="onehot",
                              impute=SimpleNamespace(numeric="median", categorical="most_frequent"))
    cols = list(KINDS)
    model = Pipeline([("prepare", build_preprocessor(prepare, KINDS, cols)), ("model", estimator)])
    model.fit(as_model_input(df, cols, KINDS), df[target])
    return model, Signature(columns=KINDS, target=target), {"features": profile_frame(df[[*cols, target]])}, df


@pytest.mark.parametrize(("estimator", "task", "target", "library"), cases())
def test_booster_scorer_is_used_and_identical(estimator: Any, task: str, target: str, library: str) -> None:
    model, signature, profile, df = fitted_on(estimator, target)
    built = build_predictor(model, signature, profile, task=task)
    assert built.predictor.path == "fast", built.report
    assert built.report["booster"] is not None and built.report["booster"].startswith(library), built.report
    assert isinstance(built.predictor, FastPredictor)
    if library == "xgboost":  # XGBoost's C API called directly (boosters._DirectXGBoost), not inplace_predict
        assert built.predictor.booster._direct.ready  # type: ignore[union-attr]
    classifier = task == "classification"
    generic = GenericPredictor(model, list(KINDS), KINDS, classifier)
    rows = json_rows(df.sample(80, random_state=3))
    rows[0]["color"] = "purple"
    rows[1]["x"] = None
    for batch in (rows, rows[:1], rows[1:2], rows[:7]):
        fast_out, generic_out = built.predictor.arrays(batch), generic.arrays(batch)
        assert fast_out[0].tolist() == generic_out[0].tolist()
        assert fast_out[0].dtype == generic_out[0].dtype
        if classifier:
            assert fast_out[1] is not None and generic_out[1] is not None
            assert np.array_equal(fast_out[1], generic_out[1])
        else:
            assert fast_out[1] is None
    if target == "name":  # the labels themselves, as the estimator's predict gives them
        assert set(built.predictor.arrays(rows)[0].tolist()) <= {"low", "mid", "high"}


def test_xgboost_softmax_is_served_by_its_own_methods() -> None:
    """multi:softmax predicts classes, not probabilities: no scorer, the estimator's predict and predict_proba."""
    from xgboost import XGBClassifier

    model, signature, profile, df = fitted(XGBClassifier(n_estimators=10, objective="multi:softmax"))
    built = build_predictor(model, signature, profile, task="classification")
    assert built.predictor.path == "fast" and built.report["booster"] is None, built.report
    assert isinstance(built.predictor, FastPredictor)
    rows = json_rows(df.iloc[:30])
    generic = GenericPredictor(model, list(KINDS), KINDS, True)
    assert built.predictor.arrays(rows)[0].tolist() == generic.arrays(rows)[0].tolist()


def test_labelled_xgboost_classifier_answers_its_labels() -> None:
    """The XGBoost flavor's LabelledXGBClassifier (string classes, fitted on their codes) through the scorer."""
    from xgboost import XGBClassifier

    from tidal.train.flavors.xgboost_flavor import XGBoostFlavor

    model, signature, profile, df = fitted(XGBClassifier(n_estimators=10, max_depth=3))
    labels = df["y"].map({0: "low", 1: "mid", 2: "high"})
    XGBoostFlavor().fit(model, as_model_input(df, list(KINDS), KINDS), labels)
    assert type(model.steps[-1][1]).__name__ == "LabelledXGBClassifier"
    built = build_predictor(model, signature, profile, task="classification")
    assert built.report["booster"] == "xgboost inplace_predict", built.report
    rows = json_rows(df.iloc[:40])
    pred, proba = built.predictor.arrays(rows)
    generic = GenericPredictor(model, list(KINDS), KINDS, True).arrays(rows)
    assert pred.tolist() == generic[0].tolist() and set(pred.tolist()) <= {"low", "mid", "high"}
    assert proba is not None and np.array_equal(proba, generic[1])
