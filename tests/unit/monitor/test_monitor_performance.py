"""Performance on labelled predictions: intervals that cover, light metrics equal to the evaluate
stage's, and the alert rule."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from tidal.core.signature import Signature
from tidal.evaluate.metrics import compute_metrics
from tidal.monitor import assess_performance, bootstrap_interval, frame_of, wilson_interval
from tidal.monitor.scores import score_fn
from tidal.spec.model import PerformanceSpec

from ._synthetic import classifier_rows, predictions_for, toy_version


def test_wilson_interval_covers_the_true_accuracy() -> None:
    rng = np.random.default_rng(0)
    for n, p in ((50, 0.9), (400, 0.7), (5_000, 0.55)):
        covered = 0
        for _ in range(400):
            low, high = wilson_interval(int(rng.binomial(n, p)), n)
            covered += low <= p <= high
        assert covered / 400 >= 0.92, (n, p, covered)
    assert wilson_interval(10, 10)[1] == pytest.approx(1.0) and wilson_interval(0, 10)[0] == pytest.approx(0.0)


def test_bootstrap_interval_covers_the_true_rmse() -> None:
    rng = np.random.default_rng(1)
    covered = 0
    for seed in range(100):
        y = rng.normal(size=300)
        p = y + rng.normal(scale=1.0, size=300)  # true rmse 1
        low, high = bootstrap_interval(score_fn("rmse"), y, p, seed=seed)  # type: ignore[misc]
        covered += low <= 1.0 <= high
    assert covered >= 88


def test_bootstrap_is_seeded_and_bounded() -> None:
    rng = np.random.default_rng(2)
    y, p = rng.normal(size=1_000), rng.normal(size=1_000)
    fn = score_fn("mae")
    assert bootstrap_interval(fn, y, p) == bootstrap_interval(fn, y, p)
    calls = 0

    def counting(*args: object) -> float:
        nonlocal calls
        calls += 1
        return 0.0

    bootstrap_interval(counting, np.zeros(400_000), np.zeros(400_000))
    assert calls == 50  # 2 million rows' worth, but never fewer than 50 resamples


@pytest.mark.parametrize("classes", [2, 3])
def test_light_metrics_match_compute_metrics(classes: int) -> None:
    rng = np.random.default_rng(classes)
    n = 500
    y = rng.integers(0, classes, n)
    proba = rng.dirichlet(np.ones(classes), n)
    proba[np.arange(n), y] += 0.3
    proba /= proba.sum(axis=1, keepdims=True)
    p = proba.argmax(axis=1)
    expected = compute_metrics("classification", y, p, proba, classes=list(range(classes)))
    for name in ("accuracy", "balanced_accuracy", "f1", "roc_auc", "log_loss"):
        assert score_fn(name, classes)(y, p, proba) == pytest.approx(expected[name], rel=1e-9), name
    t = rng.normal(size=n)
    q = t + rng.normal(scale=0.4, size=n)
    expected = compute_metrics("regression", t, q)
    for name in ("rmse", "mae", "r2"):
        assert score_fn(name)(t, q, None) == pytest.approx(expected[name], rel=1e-9), name


def _frame(flip: float, labelled: float = 1.0, rows: int = 2_000) -> pd.DataFrame:
    mv = toy_version()
    return frame_of(predictions_for(classifier_rows(rows, 9), labelled=labelled, flip=flip), mv)


def test_performance_reports_metrics_interval_and_validation() -> None:
    mv = toy_version()
    out = assess_performance(mv, _frame(0.0), PerformanceSpec(), metrics=["accuracy", "roc_auc"])
    assert out["metric"] == "accuracy" and out["labelled"] == 2_000
    low, high = out["ci"]
    assert low <= out["value"] <= high and out["ci_method"] == "wilson"
    assert out["validation"] == pytest.approx(mv.metrics["accuracy"])
    assert set(out["metrics"]) == {"accuracy", "roc_auc"} and out["status"] == "ok" and not out["alert"]
    auc = assess_performance(mv, _frame(0.0), PerformanceSpec(metric="roc_auc"), metrics=["accuracy"])
    assert auc["ci_method"].startswith("bootstrap") and auc["ci"][0] <= auc["value"] <= auc["ci"][1]


def test_alert_without_a_floor_needs_the_whole_interval_below_validation_minus_tolerance() -> None:
    mv = toy_version()
    worse = assess_performance(mv, _frame(0.25), PerformanceSpec(), metrics=["accuracy"])
    assert worse["alert"] and worse["status"] == "alert" and "upper bound" in worse["why"]
    slightly = assess_performance(mv, _frame(0.03), PerformanceSpec(), metrics=["accuracy"])
    assert not slightly["alert"]


def test_alert_with_a_floor_and_only_with_enough_labels() -> None:
    mv = toy_version()
    spec = PerformanceSpec(floor=0.99, min_labelled=30)
    assert assess_performance(mv, _frame(0.0), spec, metrics=["accuracy"])["alert"]
    few = assess_performance(mv, _frame(0.0, labelled=0.01, rows=1_000), spec, metrics=["accuracy"])
    assert few["labelled"] < 30 and not few["alert"] and few["status"] == "too few labels"
    errors = dataclasses.replace(mv, task="regression", signature=Signature(target="y"),
                                 metrics={"rmse": 0.5})
    frame = pd.DataFrame({"__prediction": [1.0] * 40, "__label": [3.0] * 40})
    out = assess_performance(errors, frame, PerformanceSpec(floor=1.0), metrics=["rmse"])
    assert out["value"] == 2.0 and out["alert"] and "ceiling" in out["why"]


def test_labels_are_matched_to_classes_whatever_their_json_type() -> None:
    mv = toy_version()
    frame = pd.DataFrame({"__prediction": [1, 0, 1.0, 0, 1, "dog"], "__label": ["1", 0.0, 1, "cat", True, 1],
                          "__proba": [[0.2, 0.8], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.5, 0.5], [0.5, 0.5]]})
    out = assess_performance(mv, frame, PerformanceSpec(min_labelled=1), metrics=["accuracy", "log_loss"])
    # "cat" and True are not classes 0 / 1, and "dog" is no prediction the model makes
    assert out["labelled"] == 3 and out["unusable"] == 3
    assert out["value"] == 1.0 and out["metrics"]["log_loss"] is not None


def test_no_labels_is_reported_not_alerted() -> None:
    out = assess_performance(toy_version(), _frame(0.0, labelled=0.0, rows=200), PerformanceSpec(), metrics=[])
    assert out["status"] == "no labels" and out["labelled"] == 0 and not out["alert"]
