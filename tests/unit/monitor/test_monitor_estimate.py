"""Performance before the labels arrive (issue #11, point 4): the estimate against a truth the test knows.

Each synthetic model here has a known true P(y | x): the labels are drawn from it, so the realised
accuracy is a draw around the expected one, and the estimator (calibrated probabilities → expected
confusion matrix) must land within a stated tolerance of what the labels then say. Windows of 5,000
rows: the realised accuracy's own sampling noise is about 0.006, so the tolerance of 0.02 is three
standard errors of noise plus a little room for the map fitted on a 4,000-row holdout.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.unit.monitor._synthetic import START, classifier_rows, predictions_for, toy_version
from tidal.core.entities import ModelState, ModelVersion, Prediction
from tidal.core.signature import Signature
from tidal.evaluate.calibration import calibrate, expected_calibration_error, fit_calibration
from tidal.monitor import build_report
from tidal.monitor.estimate import (
    describe,
    estimate_codes,
    estimate_performance,
    estimate_rows,
    expected_confusion,
    metrics_of_confusion,
)
from tidal.monitor.frame import frame_of
from tidal.spec.model import MonitorSpec

TOLERANCE = 0.02
HOLDOUT, WINDOW = 4_000, 5_000


def _binary(rows: int, seed: int, *, spread: float = 2.0, sharpen: float = 1.0) -> tuple[np.ndarray, ...]:
    """(y, pred, proba) of a binary model whose true P(y=1) is sigmoid(z), z ~ N(0, spread); the model
    reports sigmoid(sharpen * z): calibrated at 1, over-confident above it."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, spread, rows)
    true = 1 / (1 + np.exp(-z))
    y = (rng.random(rows) < true).astype(np.int64)
    reported = 1 / (1 + np.exp(-sharpen * z))
    proba = np.column_stack([1 - reported, reported])
    return y, proba.argmax(axis=1), proba


def _multiclass(rows: int, seed: int, *, temperature: float = 1.0, k: int = 3) -> tuple[np.ndarray, ...]:
    """(y, pred, proba) of a k-class model with true probabilities softmax(logits); the model reports
    softmax(logits / temperature): calibrated at 1, over-confident below it."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (rows, k)) + np.array([0.5, 0.0, -0.5])[:k]
    true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    y = np.asarray([rng.choice(k, p=p) for p in true], dtype=np.int64)
    reported = np.exp(logits / temperature)
    reported /= reported.sum(axis=1, keepdims=True)
    return y, reported.argmax(axis=1), reported


def _realised(y: np.ndarray, pred: np.ndarray, k: int) -> dict[str, float | None]:
    matrix = np.zeros((k, k))
    np.add.at(matrix, (y, pred), 1.0)
    return metrics_of_confusion(matrix)


def test_a_calibrated_model_is_estimated_within_tolerance_and_follows_a_shift() -> None:
    y, pred, proba = _binary(HOLDOUT, 0)
    calibration = fit_calibration(y, proba, pred)
    assert calibration["ece_raw"] < 0.03  # it is calibrated, and the check says so: no map
    assert calibration["method"] == "none" and "as well calibrated" in calibration["why"]
    for spread, seed in ((2.0, 1), (0.8, 2)):  # the same population, then a harder one (inputs near 0)
        y, pred, proba = _binary(WINDOW, seed, spread=spread)
        found = estimate_codes(calibration, proba, pred)
        realised = float(np.mean(y == pred))
        assert found["rows"] == WINDOW
        assert found["metrics"]["accuracy"] == pytest.approx(realised, abs=TOLERANCE)
        assert found["se"] is not None and 0 < found["se"] < 0.01
    # the estimate saw the shift: the harder population is estimated clearly lower
    easy = estimate_codes(calibration, *_binary(WINDOW, 3)[2:], _binary(WINDOW, 3)[1])
    hard = estimate_codes(calibration, *_binary(WINDOW, 4, spread=0.8)[2:], _binary(WINDOW, 4, spread=0.8)[1])
    assert easy["metrics"]["accuracy"] - hard["metrics"]["accuracy"] > 0.1


def test_a_miscalibrated_model_is_corrected_by_the_holdout_map() -> None:
    y, pred, proba = _binary(HOLDOUT, 10, sharpen=3.0)
    calibration = fit_calibration(y, proba, pred)
    assert calibration["method"] == "isotonic", calibration["why"]
    assert calibration["ece_calibrated"] < calibration["ece_raw"] / 2
    y, pred, proba = _binary(WINDOW, 11, sharpen=3.0, spread=1.2)
    realised = float(np.mean(y == pred))
    raw = estimate_codes({}, proba, pred)["metrics"]["accuracy"]
    corrected = estimate_codes(calibration, proba, pred)["metrics"]["accuracy"]
    assert raw - realised > 0.05  # trusting the over-confident probabilities would be far off
    assert corrected == pytest.approx(realised, abs=TOLERANCE)
    assert expected_calibration_error(calibrate(calibration, proba), pred, y) < 0.03


@pytest.mark.parametrize("temperature", [1.0, 0.4])
def test_multiclass_accuracy_balanced_accuracy_and_f1(temperature: float) -> None:
    y, pred, proba = _multiclass(HOLDOUT, 20, temperature=temperature)
    calibration = fit_calibration(y, proba, pred)
    assert (calibration["method"] == "isotonic") == (temperature != 1.0), calibration["why"]
    y, pred, proba = _multiclass(WINDOW, 21, temperature=temperature)
    found = estimate_codes(calibration, proba, pred)["metrics"]
    realised = _realised(y, pred, 3)
    for metric in ("accuracy", "balanced_accuracy", "f1"):
        assert found[metric] == pytest.approx(realised[metric], abs=0.03), metric


def test_expected_confusion_of_certain_rows_is_the_counted_one() -> None:
    pred = np.array([0, 1, 1, 2, 0])
    truth = np.array([0, 1, 0, 2, 2])
    matrix = expected_confusion(np.eye(3)[truth], pred)
    counted = np.zeros((3, 3))
    np.add.at(counted, (truth, pred), 1)
    assert np.array_equal(matrix, counted)
    assert metrics_of_confusion(matrix)["accuracy"] == pytest.approx(0.6)


def test_too_small_a_holdout_keeps_raw_probabilities_and_says_why() -> None:
    y, pred, proba = _binary(60, 30, sharpen=3.0)
    calibration = fit_calibration(y, proba, pred)
    assert calibration["method"] == "none" and "fewer than 100" in calibration["why"]
    assert fit_calibration(y, None, pred)["method"] == "none"


def _with_calibration(mv: ModelVersion) -> ModelVersion:
    holdout = classifier_rows(HOLDOUT, 7)
    preds = predictions_for(holdout, labelled=1.0, seed=7)
    y = holdout["y"].to_numpy()
    proba = np.asarray([p.proba for p in preds])
    mv.profile["calibration"] = fit_calibration(y, proba, proba.argmax(axis=1))
    return mv


def test_the_report_sets_the_estimate_beside_the_realised_value() -> None:
    mv = _with_calibration(toy_version())
    window = classifier_rows(WINDOW, 8)
    preds = predictions_for(window, labelled=0.3, seed=8)
    report = build_report(mv, preds, MonitorSpec(), metrics=["accuracy"], report_id="r", now=START)
    est = report.body["estimate"]
    unlabelled = sum(p.label is None for p in preds)
    assert est["status"] == "estimated" and est["metric"] == "accuracy"
    assert est["rows"] == est["unlabelled"] == unlabelled and est["unusable"] == 0
    truth = window["y"].to_numpy()
    unlabelled_accuracy = float(np.mean([p.output == t for p, t in zip(preds, truth, strict=True) if p.label is None]))
    assert est["value"] == pytest.approx(unlabelled_accuracy, abs=TOLERANCE)
    assert est["realised"] == report.body["performance"]["value"]
    assert est["labelled"] == report.body["performance"]["labelled"] == len(preds) - unlabelled
    assert est["check"]["rows"] == est["labelled"]
    assert est["check"]["estimated"] == pytest.approx(est["check"]["realised"], abs=0.03)
    assert est["calibration"]["method"] in ("isotonic", "none") and est["calibration"]["ece_raw"] is not None
    line = describe(est)
    assert f"on {unlabelled:,} unlabelled predictions" in line and "realised" in line
    # a spec that monitors roc_auc alone: the estimate is of accuracy, and its realised value is counted
    only_auc = build_report(mv, preds, MonitorSpec(), metrics=["roc_auc"], report_id="r", now=START)
    est = only_auc.body["estimate"]
    assert est["metric"] == "accuracy" and "accuracy" not in only_auc.body["performance"]["metrics"]
    labelled_accuracy = float(np.mean([p.output == p.label for p in preds if p.label is not None]))
    assert est["realised"] == pytest.approx(labelled_accuracy) and est["labelled"] == len(preds) - unlabelled


def test_rows_without_probabilities_are_counted_unusable_and_a_full_window_says_so() -> None:
    mv = toy_version()  # no calibration stored: raw probabilities, and the section says so
    preds = predictions_for(classifier_rows(400, 9), labelled=0.0, seed=9)
    stripped = [Prediction(**{**p.__dict__, "proba": None}) if i % 4 == 0 else p for i, p in enumerate(preds)]
    est = estimate_performance(mv, frame_of(stripped, mv), {"metric": "accuracy", "labelled": 0})
    assert est["unlabelled"] == 400 and est["unusable"] == 100 and est["rows"] == 300
    assert "no calibration was stored" in est["calibration"]["why"]
    labelled = predictions_for(classifier_rows(50, 9), labelled=1.0, seed=9)
    est = estimate_performance(mv, frame_of(labelled, mv), {"metric": "accuracy", "labelled": 50})
    assert est["status"] == "no unlabelled rows" and est["value"] is None and est["check"]["rows"] == 50


def test_string_and_categorical_classes() -> None:
    classes = ["down", "flat", "up"]
    y, pred, proba = _multiclass(1_000, 40)
    mv = ModelVersion(name="m", version=1, state=ModelState.VALIDATED, created_at=START, run_id="r",
                      artifact_digest="d", format="skops", task="classification",
                      signature=Signature(columns={"x": "numeric"}, target="t", classes=classes),
                      profile={"calibration": fit_calibration(y, proba, pred)})
    named = pd.Categorical([classes[i] for i in pred], categories=classes)
    found = estimate_rows(mv, proba, list(named))
    assert found is not None and found["rows"] == 1_000
    assert found["metrics"]["accuracy"] == pytest.approx(estimate_codes(mv.profile["calibration"], proba,
                                                                        pred)["metrics"]["accuracy"])
    assert estimate_rows(mv, proba[:, :2], list(named)) is None  # not one probability per class


def test_regression_is_not_estimated_and_the_report_says_why() -> None:
    mv = ModelVersion(name="r", version=1, state=ModelState.VALIDATED, created_at=START, run_id="r",
                      artifact_digest="d", format="skops", task="regression",
                      signature=Signature(columns={"x": "numeric"}, target="t"))
    preds = [Prediction(id=str(i), time=START, model="r", version=1, inputs={"x": float(i)}, output=float(i))
             for i in range(20)]
    est = estimate_performance(mv, frame_of(preds, mv), {"metric": "rmse", "labelled": 0})
    assert est["status"] == "not estimated" and "classifiers only" in est["why"] and est["value"] is None
    assert describe(est).startswith("estimated accuracy: performance is estimated for classifiers only")
