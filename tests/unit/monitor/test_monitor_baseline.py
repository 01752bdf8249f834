"""Issue #11, point 2: drift judged against the champion's own holdout (``tidal.monitor.baseline``).

A column the test flags counts as drifted only when its effect size goes beyond how far the champion's
own holdout already stood from its training rows, give or take sampling noise; a rise in the null share
still counts on its own; a version without a baseline is judged as before. Frames cover the column kinds
a drift test applies to (float, nullable integer, string, pandas categorical, boolean) and one it does
not (datetimes, naive and with a time zone)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tidal.data.profile import profile_frame
from tidal.monitor import detect_drift
from tidal.monitor.baseline import PIECES, holdout_drift

KINDS = ["num", "int", "text", "cat", "flag"]


def _frame(n: int, seed: int, *, level: float = 0.0) -> pd.DataFrame:
    """Every column kind; ``level`` moves each of the testable ones (1.0: about one sd or a 30-point share)."""
    rng = np.random.default_rng(seed)
    share = min(0.9, 0.2 + 0.3 * level)
    ints = pd.array(rng.integers(0, 10, n) + round(3 * level), dtype="Int64")
    ints[rng.random(n) < 0.05] = pd.NA
    return pd.DataFrame({
        "num": rng.normal(level, 1.0, n),
        "int": ints,
        "text": pd.Series(rng.choice(["a", "b"], n, p=[1 - share, share]), dtype="string"),
        "cat": pd.Categorical(rng.choice(["lo", "hi"], n, p=[1 - share, share])),
        "flag": rng.random(n) < share,
        "when": pd.date_range("2025-01-01", periods=n, freq="h"),
        "when_tz": pd.date_range("2025-01-01", periods=n, freq="h", tz="Europe/Paris"),
    })


def test_the_baseline_is_the_newest_piece_that_moved_and_datetimes_are_left_out() -> None:
    train = _frame(2_000, 1)
    reference = profile_frame(train)["columns"]
    # a holdout whose newest quarter moved: the baseline is as far as that quarter went
    holdout = pd.concat([_frame(300, 2), _frame(100, 3, level=1.0)], ignore_index=True)
    moved = holdout_drift(reference, holdout, list(train.columns), train=train, max_rows=1_000)
    still = holdout_drift(reference, _frame(400, 2), list(train.columns), train=train, max_rows=1_000)
    assert moved["pieces"] == PIECES and moved["rows"] == 100
    assert set(moved["columns"]) == set(KINDS)                      # no test applies to datetimes
    for name in KINDS:
        big, small = moved["columns"][name], still["columns"][name]
        assert big["effect"] == ("wasserstein" if name in ("num", "int") else "jensenshannon")
        assert big["value"] > 2 * small["value"], (name, big, small)
        assert 0 < big["noise"] == small["noise"]                    # the noise is the training rows' own
    # seeded: the same rows give the same baseline
    assert holdout_drift(reference, holdout, list(train.columns), train=train, max_rows=1_000) == moved
    # pieces no larger than the monitoring window, and at least 30 rows each
    assert holdout_drift(reference, holdout, ["num"], max_rows=50)["rows"] == 50
    assert holdout_drift(reference, holdout.head(40), ["num"])["pieces"] == 1


@pytest.mark.parametrize("name", KINDS)
def test_a_flagged_column_within_the_holdout_drift_is_not_drift_and_beyond_it_is(name: str) -> None:
    train = _frame(2_000, 1)
    features = profile_frame(train)
    reference = features["columns"]
    window = _frame(400, 5, level=1.0)
    plain = detect_drift(features, window, columns=[name])
    assert plain.columns[0].drifted and plain.columns[0].effect is None   # the test alone: drifted

    # the champion's holdout had moved as far: within its own reference
    holdout = _frame(400, 6, level=1.0)
    baseline = holdout_drift(reference, holdout, [name], train=train, max_rows=1_000)["columns"]
    within = detect_drift(features, window, columns=[name], baseline=baseline).columns[0]
    assert not within.drifted and "within the champion's own holdout drift" in within.why, within.why
    assert within.effect_size is not None and within.baseline is not None
    assert within.effect_size <= within.baseline

    # a holdout like the training rows: the same window is beyond it
    calm = holdout_drift(reference, _frame(400, 7), [name], train=train, max_rows=1_000)["columns"]
    beyond = detect_drift(features, window, columns=[name], baseline=calm).columns[0]
    assert beyond.drifted and "beyond the champion's own holdout drift" in beyond.why, beyond.why
    assert beyond.effect_size is not None and beyond.baseline is not None
    assert beyond.effect_size > beyond.baseline


def test_a_null_share_rise_is_drift_whatever_the_baseline() -> None:
    train = _frame(2_000, 1)
    features = profile_frame(train)
    window = _frame(400, 5, level=1.0)
    window.loc[window.index[:200], "num"] = np.nan
    holdout = _frame(400, 6, level=1.0)
    baseline = holdout_drift(features["columns"], holdout, ["num"], train=train)["columns"]
    result = detect_drift(features, window, columns=["num"], baseline=baseline).columns[0]
    assert result.drifted and "null share rose" in result.why, result.why


def test_a_column_without_a_baseline_is_judged_by_its_test_alone() -> None:
    features = profile_frame(_frame(2_000, 1))
    window = _frame(400, 5, level=1.0)
    before = detect_drift(features, window)
    after = detect_drift(features, window, baseline={})
    assert [c.to_dict() for c in after.columns] == [c.to_dict() for c in before.columns]
    assert after.share == before.share > 0.5
