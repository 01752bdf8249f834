"""Data drift over a window: issue #3 point 5 (drift accuracy at 10,000 and 1,000,000 rows), the
properties (identical data flags nothing, row order does not matter), and odd data that must not crash.

The reference profile is built with ``profile_frame`` on a separate draw of the same size as the window,
as at registration (the training rows), and the window is a fresh draw: 20 standard normal columns,
the first five shifted by 0.3 sd.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from tidal.core.errors import PluginNotFound
from tidal.data.profile import profile_frame
from tidal.monitor import AUTO_EXACT_MAX, choose_test, detect_drift

from ._synthetic import COLUMNS, SHIFTED, normal_frame


def _flagged(rows: int, seed: int) -> tuple[set[str], dict[str, float], str]:
    reference = profile_frame(normal_frame(rows, seed))
    window = normal_frame(rows, seed + 1000, shift=0.3)
    result = detect_drift(reference, window)
    tests = {c.test for c in result.columns}
    assert len(tests) == 1
    return set(result.drifted_columns), {c.column: c.statistic for c in result.columns}, tests.pop()


@pytest.mark.parametrize("seed", range(5))
def test_point_5_at_10_000_rows_auto_flags_the_five_and_at_most_one_stable_column(seed: int) -> None:
    flagged, statistics, test = _flagged(10_000, seed)
    assert test == "wasserstein"  # an effect size: 10,000 values is past the exact-test range
    assert set(SHIFTED) <= flagged, statistics
    assert len(flagged - set(SHIFTED)) <= 1, statistics


def test_point_5_at_1_000_000_rows_auto_flags_the_five_and_no_stable_column() -> None:
    start = time.perf_counter()
    flagged, statistics, test = _flagged(1_000_000, 7)
    assert test == "wasserstein"
    assert set(SHIFTED) <= flagged, statistics
    assert len(flagged - set(SHIFTED)) <= 1, statistics
    # a million unchanged rows are far from the threshold, not just under it
    assert max(statistics[c] for c in COLUMNS if c not in SHIFTED) < 0.03
    assert all(abs(statistics[c] - 0.3) < 0.02 for c in SHIFTED)
    assert time.perf_counter() - start < 20


def test_p_values_would_flag_unchanged_rows_on_a_large_window_which_is_why_auto_uses_effect_sizes() -> None:
    columns = COLUMNS[5:8]
    training = normal_frame(200_000, 1)[columns]
    window = normal_frame(200_000, 2)[columns] + 0.02  # 2% of a standard deviation: real, and meaningless
    # what a hand-written per-column test does: KS against the training rows
    assert all(stats.ks_2samp(training[c], window[c]).pvalue < 0.05 for c in columns)
    assert detect_drift(profile_frame(training), window).n_drifted == 0


def test_small_windows_get_exact_tests() -> None:
    reference = profile_frame(normal_frame(5_000, 3))
    result = detect_drift(reference, normal_frame(400, 4, shift=0.3))
    assert {c.test for c in result.columns} == {"ks"}
    assert set(SHIFTED) <= set(result.drifted_columns)
    assert choose_test("categorical", AUTO_EXACT_MAX).test.name == "chisquare"
    assert choose_test("boolean", AUTO_EXACT_MAX + 1).test.name == "jensenshannon"
    assert choose_test("datetime", 10) is None


# -- properties -------------------------------------------------------------------------------------------

finite = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(1, 2_500))
    numbers = draw(hnp.arrays(np.float64, rows, elements=finite | st.just(np.nan)))
    ints = draw(hnp.arrays(np.int64, rows, elements=st.integers(-5, 5)))
    skew = draw(st.floats(0.1, 3.0))
    letters = np.array(list("abcdefgh"), dtype=object)
    cats = letters[np.minimum((np.random.default_rng(rows).exponential(skew, rows)).astype(int), 7)]
    cats[draw(hnp.arrays(bool, rows))] = None
    flags = draw(hnp.arrays(bool, rows))
    return pd.DataFrame({"x": numbers, "n": ints, "c": pd.Series(cats, dtype=object), "b": flags,
                         "w": np.random.default_rng(rows).lognormal(0, 2, rows)})


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame=frames(), method=st.sampled_from(["auto", "psi", "jensenshannon"]))
def test_identical_data_flags_nothing(frame: pd.DataFrame, method: str) -> None:
    result = detect_drift(profile_frame(frame), frame, method=method)
    assert result.drifted_columns == [], [c.to_dict() for c in result.columns if c.drifted]
    assert not result.drifted


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(frame=frames(), method=st.sampled_from(["auto", "ks", "wasserstein", "psi", "jensenshannon", "chisquare"]),
       seed=st.integers(0, 2**32 - 1))
def test_drift_statistics_ignore_row_order(frame: pd.DataFrame, method: str, seed: int) -> None:
    reference = profile_frame(frame.sample(frac=1.0, random_state=1).iloc[: max(1, len(frame) // 2)])
    shuffled = frame.sample(frac=1.0, random_state=seed % (2**32))
    first = detect_drift(reference, frame, method=method)
    again = detect_drift(reference, shuffled, method=method)
    for a, b in zip(first.columns, again.columns, strict=True):
        assert (a.status, a.test, a.drifted) == (b.status, b.test, b.drifted)
        if a.statistic is None:
            assert b.statistic is None
        else:
            assert a.statistic == pytest.approx(b.statistic, rel=1e-9, abs=1e-12)
        assert a.plot == b.plot and a.unseen == b.unseen


# -- odd data ----------------------------------------------------------------------------------------------

def _mixed_reference() -> dict:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "x": rng.normal(size=3_000),
        "colour": pd.Series(rng.choice(["red", "green", "blue"], 3_000), dtype=object),
        "when": pd.date_range("2024-01-01", periods=3_000, freq="h"),
    })
    return profile_frame(frame)


def test_nulls_count_and_a_jump_in_null_share_is_drift() -> None:
    reference = _mixed_reference()
    rng = np.random.default_rng(1)
    x = rng.normal(size=2_000)
    x[:100] = np.nan  # 5%: reported, not drift
    result = detect_drift(reference, pd.DataFrame({"x": x}), columns=["x"])
    column = result.columns[0]
    assert column.null_share_current == pytest.approx(0.05) and column.null_share_reference == 0.0
    assert column.n_current == 1_900 and not column.drifted
    x[:800] = np.nan  # 40%: the model now sees imputed values for much of its input
    column = detect_drift(reference, pd.DataFrame({"x": x}), columns=["x"]).columns[0]
    assert column.drifted and "null share rose" in column.why


def test_unseen_categories_are_counted_and_named() -> None:
    reference = _mixed_reference()
    colours = np.array(["red"] * 500 + ["purple"] * 30 + ["teal"] * 3 + [None] * 7, dtype=object)
    column = detect_drift(reference, pd.DataFrame({"colour": colours}), columns=["colour"]).columns[0]
    assert column.status == "tested" and column.test == "chisquare"
    assert column.unseen == 33 and column.unseen_categories == {"purple": 30, "teal": 3}
    assert column.null_share_current == pytest.approx(7 / 540)
    assert column.drifted  # only red, and new colours: that moved
    assert column.plot is not None and column.plot["categories"][-1] == "__other__"


def test_a_missing_column_an_empty_one_and_a_datetime_one_are_reported_not_raised() -> None:
    reference = _mixed_reference()
    window = pd.DataFrame({"colour": [None] * 50, "when": pd.date_range("2025-01-01", periods=50, freq="h"),
                           "x": ["not", "a", "number"] * 16 + ["1.5", None]})
    result = detect_drift(reference, window, columns=["x", "colour", "when", "gone", "nowhere"])
    by = {c.column: c for c in result.columns}
    assert by["x"].status == "tested" and by["x"].n_current == 1 and by["x"].drifted  # 98% unusable
    assert by["colour"].status == "empty" and by["colour"].drifted
    assert by["when"].status == "skipped" and not by["when"].drifted
    assert by["gone"].status == "skipped" and "not in the reference" in by["gone"].why
    assert result.counted == 2 and result.n_drifted == 2
    missing = detect_drift(reference, pd.DataFrame({"colour": ["red"] * 20}), columns=["x"]).columns[0]
    assert missing.status == "missing" and missing.drifted


def test_an_empty_window_is_no_data_not_drift() -> None:
    result = detect_drift(_mixed_reference(), pd.DataFrame({"x": []}))
    assert {c.status for c in result.columns} <= {"no data", "skipped"}
    assert not result.drifted and result.share == 0.0


def test_the_dataset_drifts_when_the_share_reaches_the_threshold() -> None:
    reference = profile_frame(normal_frame(5_000, 5))
    window = normal_frame(5_000, 6, shift=0.3)  # 5 of 20 drift: a share of 0.25
    assert detect_drift(reference, window, share=0.25).drifted
    assert not detect_drift(reference, window, share=0.3).drifted


def test_a_named_method_applies_where_it_can_and_auto_fills_in() -> None:
    reference = _mixed_reference()
    window = pd.DataFrame({"x": np.random.default_rng(2).normal(size=5_000),
                           "colour": np.random.default_rng(3).choice(["red", "green", "blue"], 5_000)})
    by = {c.column: c for c in detect_drift(reference, window, method="ks", threshold=0.01).columns}
    assert by["x"].test == "ks" and by["x"].threshold == 0.01
    assert by["colour"].test == "jensenshannon" and by["colour"].threshold == 0.1
    assert "ks does not apply" in by["colour"].why
    # under auto a threshold overrides the effect sizes only: a p-value keeps 0.05
    assert choose_test("numeric", 50_000, threshold=0.2).threshold == 0.2
    assert choose_test("numeric", 500, threshold=0.2).threshold == 0.05
    with pytest.raises(PluginNotFound):
        detect_drift(reference, window, method="nope")


def test_results_are_json_ready() -> None:
    import json

    reference = _mixed_reference()
    window = pd.DataFrame({"x": [1.0, np.inf, -np.inf, np.nan] * 10, "colour": ["red", None] * 20})
    result = detect_drift(reference, window)
    assert json.loads(json.dumps(result.to_dict(), allow_nan=False))["counted"] == 2
