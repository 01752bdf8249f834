"""A classifier's labels from one pass of the model: ``classes_[argmax(predict_proba)]`` instead of calling
``predict`` too, used only when it equals ``predict`` on every load-time check (in process, no server).

The model is a real one on real data (scikit-learn's breast cancer set, a random forest) behind a counting
wrapper that says how often each method ran; a second wrapper's ``predict`` applies its own threshold, so
its labels are not the likeliest class: the predictor must notice at load and keep calling ``predict``."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.datasets import load_breast_cancer
from sklearn.ensemble import RandomForestClassifier
from sklearn.pipeline import Pipeline

from tidal.core.signature import Signature
from tidal.data.prepare import as_model_input, build_preprocessor
from tidal.data.profile import profile_frame
from tidal.predict.predictor import FastPredictor, GenericPredictor, build_predictor, proba_labels


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> None:
    from tidal.serve.threads import cap_threads

    cap_threads()


class Counting(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A random forest that counts its ``predict`` and ``predict_proba`` calls; with ``threshold``, its
    ``predict`` says class 1 only when that class's probability reaches it (not the likeliest class)."""

    def __init__(self, threshold: float | None = None) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any) -> Counting:
        self.forest_ = RandomForestClassifier(n_estimators=15, max_depth=4, random_state=0).fit(X, y)
        self.classes_ = self.forest_.classes_
        self.n_features_in_ = self.forest_.n_features_in_
        self.calls_: Counter[str] = Counter()
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        self.calls_["predict_proba"] += 1
        return np.asarray(self.forest_.predict_proba(X))

    def predict(self, X: Any) -> np.ndarray:
        self.calls_["predict"] += 1
        if self.threshold is None:
            return np.asarray(self.forest_.predict(X))
        return np.asarray(self.classes_[(self.forest_.predict_proba(X)[:, 1] >= self.threshold).astype(int)])


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.Series, dict[str, str]]:
    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :8].rename(columns=lambda c: c.replace(" ", "_"))
    return X, data.target, dict.fromkeys(X.columns, "numeric")


def fitted(estimator: Any, cancer: tuple[pd.DataFrame, pd.Series, dict[str, str]]) -> tuple[Any, Signature, Any]:
    from types import SimpleNamespace

    X, y, kinds = cancer
    prepare = SimpleNamespace(scale="standard", encode="onehot",
                              impute=SimpleNamespace(numeric="median", categorical="most_frequent"))
    model = Pipeline([("prepare", build_preprocessor(prepare, kinds, list(kinds))), ("model", estimator)])
    model.fit(as_model_input(X, list(kinds), kinds), y)
    profile = {"features": profile_frame(pd.concat([X, y.rename("target")], axis=1))}
    return model, Signature(columns=kinds, target="target"), profile


def rows_of(X: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: float(v) for k, v in r.items()} for r in X.to_dict("records")]


@pytest.mark.parametrize("fast", [False, True])
def test_labels_from_one_pass_when_they_are_predicts(cancer: Any, fast: bool) -> None:
    model, signature, profile = fitted(Counting(), cancer)
    built = build_predictor(model, signature, profile, task="classification", fast=fast)
    assert built.report["labels"].startswith("the likeliest class of predict_proba, one pass"), built.report
    assert isinstance(built.predictor, FastPredictor if fast else GenericPredictor), built.report
    X, _, kinds = cancer
    rows = rows_of(X.iloc[:200])
    counter = model.named_steps["model"].calls_
    counter.clear()
    labels, proba = built.predictor.arrays(rows)
    assert counter == {"predict_proba": 1}  # the model ran once for both outputs
    reference = GenericPredictor(model, list(kinds), kinds, True).arrays(rows)
    assert labels.tolist() == reference[0].tolist() and np.array_equal(proba, reference[1])
    assert labels.tolist() == model.predict(as_model_input(X.iloc[:200], list(kinds), kinds)).tolist()


@pytest.mark.parametrize("fast", [False, True])
def test_a_predict_with_its_own_rule_is_noticed_at_load_and_still_called(cancer: Any, fast: bool) -> None:
    model, signature, profile = fitted(Counting(threshold=0.9), cancer)
    built = build_predictor(model, signature, profile, task="classification", fast=fast)
    assert built.report["labels"].startswith("predict (and predict_proba): the likeliest class of predict_proba "
                                             "differs from predict on"), built.report
    X, _, kinds = cancer
    rows = rows_of(X)
    counter = model.named_steps["model"].calls_
    counter.clear()
    labels, _ = built.predictor.arrays(rows)
    assert counter == {"predict": 1, "predict_proba": 1}
    want = model.predict(as_model_input(X, list(kinds), kinds))
    assert labels.tolist() == want.tolist()
    proba = model.predict_proba(as_model_input(X, list(kinds), kinds))
    assert (model.classes_[proba.argmax(axis=1)] != want).any()  # the rule does differ from the likeliest class


def test_a_tie_is_answered_by_predict() -> None:
    proba = np.array([[0.2, 0.8], [0.5, 0.5], [np.nan, np.nan], [0.7, 0.3]])
    asked: list[Any] = []

    def predict(X: np.ndarray) -> np.ndarray:
        asked.append(X.tolist())
        return np.array(["b"] * len(X))

    labels = proba_labels(np.array(["a", "b"]), proba, predict, np.arange(4)[:, None])
    assert labels.tolist() == ["b", "b", "b", "a"] and asked == [[[1], [2]]]


def test_a_multiclass_tie_or_nan_is_answered_by_predict() -> None:
    # rows: sure; a tie at the top; a tie below the top (sure); a NaN beside a larger probability; sure
    proba = np.array([[0.1, 0.7, 0.2], [0.4, 0.4, 0.2], [0.6, 0.2, 0.2], [0.9, np.nan, 0.1], [0.2, 0.3, 0.5]])
    asked: list[Any] = []

    def predict(X: np.ndarray) -> np.ndarray:
        asked.append(X.tolist())
        return np.array(["x"] * len(X))

    labels = proba_labels(np.array(["a", "b", "c"]), proba, predict, np.arange(5)[:, None])
    assert labels.tolist() == ["b", "x", "a", "x", "c"] and asked == [[[1], [3]]]


@pytest.mark.filterwarnings("ignore:The `probability` parameter:FutureWarning")
def test_a_support_vector_machine_keeps_its_predict(cancer: Any) -> None:
    from sklearn.svm import SVC

    model, signature, profile = fitted(SVC(probability=True, random_state=0), cancer)
    built = build_predictor(model, signature, profile, task="classification", fast=False)
    assert built.report["labels"] == ("predict (and predict_proba): the estimator's labels follow its decision "
                                      "function, not its probabilities"), built.report
