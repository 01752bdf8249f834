"""backtest.metric: what the backtest scores its four strategies with (issue #11, point 1)."""

from __future__ import annotations

import numpy as np
import pytest

from tidal.core.errors import DataError
from tidal.loop.backtest import _score, backtest_metric


def test_the_default_is_accuracy_or_rmse_and_a_metric_of_the_other_task_is_refused() -> None:
    assert backtest_metric("classification", None) == "accuracy"
    assert backtest_metric("regression", None) == "rmse"
    assert backtest_metric("regression", "r2") == "r2"
    with pytest.raises(DataError, match=r"backtest\.metric 'accuracy' does not measure regression") as caught:
        backtest_metric("regression", "accuracy")
    assert caught.value.hint == "use one of rmse, mae, r2, or null"


def test_each_metric_scores_what_it_names() -> None:
    y, pred = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
    assert _score("regression", y, pred, "mae") == pytest.approx(1.0)
    assert _score("regression", y, pred, "rmse") == pytest.approx(np.sqrt(5 / 3))
    assert _score("regression", y, pred, "r2") == pytest.approx(1 - 5 / (14 / 3))
    labels, guess = np.array(["a", "b", "b", "b"], dtype=object), np.array(["a", "a", "b", "b"], dtype=object)
    assert _score("classification", labels, guess, "accuracy") == 0.75
    assert _score("classification", labels, guess, "balanced_accuracy") == pytest.approx((1 + 2 / 3) / 2)


def test_the_curves_follow_the_metric_when_it_is_a_mean_over_rows() -> None:
    from tidal.loop.backtest import curve_metric, rolling_curves

    y = np.zeros(400)
    pred = np.r_[np.zeros(200), np.full(200, 2.0)]  # exact, then off by 2 on every row
    rows, curves = rolling_curves("regression", y, {"model": pred}, "mae")
    assert rows[0] == 200 and rows[-1] == 400
    assert curves["model"][0] == 0.0 and curves["model"][-1] == pytest.approx(2.0)
    assert (curve_metric("regression", "mae"), curve_metric("regression", "r2")) == ("mae", "rmse")
    assert curve_metric("classification", "f1") == "accuracy"


def test_a_regressors_answers_are_held_as_floats_even_for_an_integer_target() -> None:
    from tidal.loop.backtest import _answer_dtype

    assert _answer_dtype("regression", np.array([1, 2])) == np.float64
    assert _answer_dtype("classification", np.array([1, 2])) == np.int64
    assert _answer_dtype("classification", np.array(["a"], dtype=object)).kind == "O"


def test_the_backtest_table_marks_the_smallest_error_as_the_best() -> None:
    from tidal.cli.render import backtest_table
    from tidal.loop.backtest import BacktestResult

    result = BacktestResult(metric="mae", rows=100, initial_rows=20,
                            loop={"score": 1.0, "retrains": 1, "promotions": 1, "rejections": 0, "rollbacks": 0},
                            static={"score": 2.0, "version": 1}, periodic={"score": 1.5, "every": 50, "retrains": 1},
                            last_label={"score": 3.0})
    cells = backtest_table(result).columns[1]._cells
    assert [str(c.style) for c in cells] == ["bold green", "", "", ""]  # the loop's MAE, the smallest
