"""The evaluate stage's scoring (evaluate/scoring.py): metrics of a model on labelled rows, and the evaluate
step, on tables of a few dozen rows."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sklearn.tree import DecisionTreeClassifier

from tidal.evaluate.scoring import Evaluation, evaluate_model, metrics_on, prediction_frame
from tidal.spec.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

from ._tiny import KINDS, OffsetModel, ParityModel, doubled_rows, parity_rows


def score(model: Any, df: pd.DataFrame, task: str = "classification", kinds: dict[str, str] = KINDS) -> dict[str, Any]:
    return metrics_on(model, df, columns=["x"], kinds=kinds, target="y", task=task)


def test_binary_metrics_are_known_for_known_answers() -> None:
    m = score(ParityModel(range(10)), parity_rows(range(40)))  # wrong on 5 zeros and 5 ones
    assert set(m) == set(CLASSIFICATION_METRICS)
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["balanced_accuracy"] == pytest.approx(0.75)
    assert m["f1"] == pytest.approx(0.75)  # precision = recall = 15/20 for class 1
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["log_loss"] is not None and m["log_loss"] > 1  # certain and wrong a quarter of the time


def test_binary_with_string_labels_scores_the_last_class_as_positive() -> None:
    df = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, 13.0] * 3,
                       "y": ["no", "no", "no", "no", "yes", "yes", "yes", "yes"] * 3})
    model = DecisionTreeClassifier(max_depth=1, random_state=0).fit(df[["x"]], df["y"])
    assert list(model.classes_) == ["no", "yes"]
    m = score(model, df, kinds={"x": "numeric"})
    assert m["accuracy"] == m["f1"] == m["roc_auc"] == 1.0
    # one "yes" answered "no" and one "no" answered "yes": for "yes", precision = recall = 3/4 (for "no",
    # the first class, it would be 2/3)
    holdout = pd.DataFrame({"x": [0.0, 1.0, 2.0, 11.0, 12.0, 13.0, 14.0], "y": ["no", "no", "yes", "yes", "yes",
                                                                             "yes", "no"]})
    m = score(model, holdout, kinds={"x": "numeric"})
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["f1"] == pytest.approx(0.75)


def test_string_labels_of_a_model_without_classes() -> None:
    class Echo:
        def predict(self, X: pd.DataFrame) -> np.ndarray:
            return np.where(X["x"].to_numpy() > 0, "b", "a")

    df = pd.DataFrame({"x": [0, 0, 1, 1, 1], "y": ["a", "a", "b", "b", "a"]})
    m = score(Echo(), df)
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["f1"] == pytest.approx(0.8)  # positive "b": precision 2/3, recall 1
    assert m["roc_auc"] is None and m["log_loss"] is None  # no probabilities


def test_multiclass_metrics() -> None:
    df = pd.DataFrame({"x": list(range(30)), "y": ["lo"] * 10 + ["mid"] * 10 + ["hi"] * 10})
    model = DecisionTreeClassifier(random_state=0).fit(df[["x"]], df["y"])
    m = score(model, df)
    assert m == {"accuracy": 1.0, "balanced_accuracy": 1.0, "f1": 1.0, "roc_auc": 1.0,
                 "log_loss": pytest.approx(0.0, abs=1e-12)}
    shifted = df.assign(x=df["x"] + 5)  # the first 5 rows of mid and of hi now look like the class above
    m = score(model, shifted)
    assert m["accuracy"] == pytest.approx(20 / 30)
    assert m["balanced_accuracy"] == pytest.approx((0.5 + 0.5 + 1) / 3)  # the mean recall
    assert m["f1"] == pytest.approx((2 / 3 + 0.5 + 0.8) / 3)  # macro: lo 2/3, mid 1/2, hi 4/5
    assert m["roc_auc"] is not None and 0.5 < m["roc_auc"] < 1


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn's, about the single class
def test_a_metric_undefined_on_the_rows_is_none() -> None:
    m = score(ParityModel(), parity_rows([0, 2, 4, 6]))  # one class only: ROC AUC is undefined
    assert m["roc_auc"] is None
    assert m["accuracy"] == 1.0


def test_regression_metrics() -> None:
    df = doubled_rows(range(10))
    m = score(OffsetModel(0.5), df, task="regression")
    assert set(m) == set(REGRESSION_METRICS)
    assert m["rmse"] == pytest.approx(0.5) and m["mae"] == pytest.approx(0.5)
    ss_tot = float(((df["y"] - df["y"].mean()) ** 2).sum())
    assert m["r2"] == pytest.approx(1 - 10 * 0.25 / ss_tot)
    fitted = LinearRegression().fit(df[["x"]], df["y"])
    assert score(fitted, df, task="regression")["rmse"] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn's, about R² of one row
def test_r2_of_one_row_is_none_not_nan() -> None:
    m = score(OffsetModel(1.0), doubled_rows([3]), task="regression")
    assert m["rmse"] == pytest.approx(1.0)
    assert m["r2"] is None


def test_categorical_inputs_reach_the_model_as_text() -> None:
    seen: list[Any] = []

    class Spy(ParityModel):
        def predict(self, X: pd.DataFrame) -> np.ndarray:
            seen.append(X["x"].dtype)
            return np.zeros(len(X), dtype=int)

    score(Spy(), parity_rows(range(4)), kinds={"x": "categorical"})
    assert seen and seen[0].kind == "O"


def test_evaluate_model_scores_train_and_holdout_and_profiles_the_predictions() -> None:
    train, holdout = parity_rows(range(20)), parity_rows(range(20, 30))
    ev = evaluate_model(ParityModel([20, 21]), train, holdout, columns=["x"], kinds=KINDS, target="y",
                        task="classification")
    assert ev.train["accuracy"] == 1.0
    assert ev.validation["accuracy"] == pytest.approx(0.8)
    assert set(ev.predictions["columns"]) == {"prediction", "score"}
    assert ev.predictions["rows"] == 10
    assert Evaluation.from_dict(ev.to_dict()) == ev


def test_evaluate_model_for_regression_has_no_score_column() -> None:
    ev = evaluate_model(OffsetModel(1.0), doubled_rows(range(10)), doubled_rows(range(10, 15)), columns=["x"],
                        kinds=KINDS, target="y", task="regression")
    assert ev.validation["rmse"] == pytest.approx(1.0)
    assert set(ev.predictions["columns"]) == {"prediction"}


def test_prediction_score_is_the_positive_probability_for_two_classes_and_the_top_one_for_more() -> None:
    two = prediction_frame(np.array([0, 1]), np.array([[0.9, 0.1], [0.3, 0.7]]))
    assert two["score"].tolist() == [0.1, 0.7]
    three = prediction_frame(np.array([0, 2]), np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]]))
    assert three["score"].tolist() == [0.5, 0.7]
    assert list(prediction_frame(np.array([1.5]), None).columns) == ["prediction"]


def test_evaluation_from_an_older_record_without_predictions() -> None:
    ev = Evaluation.from_dict({"train": {"accuracy": 1.0}, "validation": {"accuracy": math.nan}})
    assert ev.predictions == {}
