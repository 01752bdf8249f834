"""The backtest measures the estimate before the labels (issue #11, point 4), and the controller acts on
``retrain.on.estimated_performance``: a short real `tidal backtest --json` on Elec2's first 3,000 rows
whose labels arrive 300 rows late, so that every tick has unlabelled predictions to estimate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import _cli


def test_backtest_reports_the_estimate_error_and_the_trigger_retrains(small_project: Path) -> None:
    spec = small_project / "tidal.yaml"
    text = spec.read_text()
    old_on = text[text.index("  on:\n"):text.index("  cooldown:")]
    # a floor no model reaches: the estimate fires on the first tick with enough unlabelled rows
    text = text.replace(old_on, "  on:\n    estimated_performance: {below: 0.99, min_rows: 200}\n")
    text = text.replace("label_delay: 0 ", "label_delay: 300\n  max_rows: 1000\n  tick_rows: 250 #")
    text = text.replace("min_labelled: 500 ", "min_labelled: 100 ").replace("cooldown: {rows: 1000}",
                                                                              "cooldown: {rows: 5000}")
    spec.write_text(text)
    result = json.loads(_cli(small_project)("backtest", "--json", "--html", "bt.html", check=True).stdout)
    est = result["estimate"]
    assert est["metric"] == "accuracy" and est["ticks"] == 4 and est["rows"] == result["rows"] == 1000
    # the realised side is the loop's own accuracy on the same rows, counted the same way
    assert est["realised"] == pytest.approx(result["loop"]["score"])
    # ticks of equal size: the row-weighted means differ by the mean signed error, which the mean absolute
    # error bounds. (How close the estimate is, the unit tests hold on data whose truth is known: these early
    # Elec2 rows change how the label depends on the inputs, which no estimate from probabilities can see.)
    assert est["estimated"] - est["realised"] == pytest.approx(est["bias"])
    assert 0 <= abs(est["bias"]) <= est["mae"] <= 1
    assert 0 < est["noise"] < 0.05  # 250-row ticks: about 0.8 * sqrt(p (1 - p) / 250) <= 0.026
    # the loop's story (in the HTML: a backtest runs in throw-away stores) names the trigger and its figures
    html = (small_project / "bt.html").read_text()
    assert "retrain triggered by estimated_performance: estimated accuracy" in html
    assert "below the floor 0.990 on" in html and "unlabelled predictions" in html
    assert result["loop"]["retrains"] == 1  # the cooldown holds the rest
