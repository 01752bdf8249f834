"""Profiles: statistics checked against numpy, every kind, JSON-ready output."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.data.profile import QUANTILES, profile_column, profile_frame, sorted_quantiles
from tidal.data.sources import read_source

ELEC2_DIR = Path(__file__).resolve().parents[3] / "examples" / "elec2"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numeric_statistics_match_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(size=5000)
    values[rng.choice(5000, 250, replace=False)] = np.nan
    prof = profile_column(pd.Series(values))
    present = values[~np.isnan(values)]
    assert prof["kind"] == "numeric"
    assert (prof["count"], prof["nulls"], prof["null_share"], prof["infinite"]) == (4750, 250, 0.05, 0)
    assert prof["min"] == present.min() and prof["max"] == present.max()
    assert prof["mean"] == pytest.approx(present.mean(), rel=1e-12)
    assert prof["std"] == pytest.approx(present.std(ddof=1), rel=1e-12)
    expected_q = np.quantile(present, list(QUANTILES.values()))
    assert list(prof["quantiles"]) == ["p01", "p05", "p25", "p50", "p75", "p95", "p99"]
    assert list(prof["quantiles"].values()) == pytest.approx(expected_q, rel=1e-12)

    edges = np.array(prof["histogram"]["edges"])
    assert np.all(np.diff(edges) > 0) and len(edges) == 21
    assert edges == pytest.approx(np.quantile(present, np.linspace(0, 1, 21)), rel=1e-12)
    counts, _ = np.histogram(present, bins=edges)
    assert prof["histogram"]["counts"] == counts.tolist()
    assert sum(prof["histogram"]["counts"]) == 4750
    # Equal-frequency bins: each holds about 1/20 of the values.
    assert max(counts) - min(counts) <= 2

    sample = prof["sample"]
    assert len(sample) == 1000 and sample == sorted(sample)
    assert sample[0] == present.min() and sample[-1] == present.max()
    ordered = np.sort(present)
    assert sample == ordered[np.round(np.linspace(0, 4749, 1000)).astype(int)].tolist()


def test_sorted_quantiles_matches_numpy_on_ties() -> None:
    values = np.sort(np.array([0, 0, 0, 1, 1, 2, 5, 5, 5, 5, 9], dtype=float))
    qs = np.linspace(0, 1, 41)
    assert sorted_quantiles(values, qs).tolist() == pytest.approx(np.quantile(values, qs).tolist(), rel=1e-15)


def test_small_columns_keep_every_value_in_the_sample() -> None:
    prof = profile_column(pd.Series([3.0, 1.0, 2.0]))
    assert prof["sample"] == [1.0, 2.0, 3.0]


def test_few_distinct_values_get_a_bin_each() -> None:
    series = pd.Series([0, 1, 1, 1, 0, 1, 2] * 10)
    prof = profile_column(series)
    assert prof["kind"] == "integer"
    assert prof["histogram"] == {"edges": [0.0, 1.0, 2.0, 2.0], "counts": [20, 40, 10]}
    counts, _ = np.histogram(series, bins=prof["histogram"]["edges"])
    assert counts.tolist() == prof["histogram"]["counts"]


def test_constant_column() -> None:
    prof = profile_column(pd.Series([4.0] * 10))
    assert prof["histogram"] == {"edges": [4.0, 4.0], "counts": [10]}
    assert prof["std"] == 0.0 and prof["min"] == prof["max"] == 4.0


def test_infinities_are_counted_not_averaged() -> None:
    prof = profile_column(pd.Series([1.0, np.inf, -np.inf, 3.0, np.nan]))
    assert (prof["count"], prof["nulls"], prof["infinite"]) == (4, 1, 2)
    assert (prof["min"], prof["max"], prof["mean"]) == (1.0, 3.0, 2.0)
    json.dumps(prof, allow_nan=False)


def test_all_null_numeric_column() -> None:
    prof = profile_column(pd.Series([np.nan, np.nan]))
    assert prof["count"] == 0 and prof["null_share"] == 1.0
    assert prof["mean"] is None and prof["quantiles"]["p50"] is None
    assert prof["histogram"] == {"edges": [], "counts": []} and prof["sample"] == []


def test_single_value_has_no_std() -> None:
    assert profile_column(pd.Series([5.0]))["std"] is None


def test_categorical_top_and_other() -> None:
    series = pd.Series(["a"] * 5 + ["b"] * 3 + ["c"] * 2 + ["d"] + [None] * 2, dtype="str")
    prof = profile_column(series, top_k=2)
    assert prof == {
        "kind": "categorical", "count": 11, "nulls": 2, "null_share": 2 / 13,
        "n_unique": 4, "top": {"a": 5, "b": 3}, "other": 3,
    }


def test_categorical_dtype_ignores_unused_categories() -> None:
    series = pd.Series(pd.Categorical(["x", "x", "y"], categories=["x", "y", "never"]))
    prof = profile_column(series)
    assert prof["n_unique"] == 2 and prof["top"] == {"x": 2, "y": 1}


def test_mixed_object_values_are_keyed_by_text() -> None:
    prof = profile_column(pd.Series([1, "1", "a", None], dtype=object))
    assert prof["kind"] == "categorical"
    assert prof["top"] == {"1": 2, "a": 1} and prof["n_unique"] == 2


def test_boolean_column() -> None:
    prof = profile_column(pd.Series([True, False, True, True]))
    assert prof["kind"] == "boolean"
    assert prof["top"] == {"True": 3, "False": 1} and prof["other"] == 0


def test_datetime_column() -> None:
    series = pd.Series(pd.to_datetime(["2024-01-02", None, "2024-01-01"]))
    prof = profile_column(series)
    assert prof == {"kind": "datetime", "count": 2, "nulls": 1, "null_share": 1 / 3,
                    "min": "2024-01-01T00:00:00", "max": "2024-01-02T00:00:00"}


def test_elec2_profile_is_json_ready() -> None:
    df = read_source("data/elec2.csv.gz", base_dir=ELEC2_DIR)
    prof = profile_frame(df)
    assert prof["version"] == 1 and prof["rows"] == 45312
    assert list(prof["columns"]) == list(df.columns)
    assert prof["columns"]["up"]["histogram"]["counts"] == [
        int((df["up"] == 0).sum()), int((df["up"] == 1).sum())
    ]
    text = json.dumps(prof, allow_nan=False)
    assert json.loads(text) == prof
    assert profile_frame(df) == prof  # deterministic


def test_profile_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="bins must be >= 1"):
        profile_frame(pd.DataFrame({"a": [1]}), bins=0)


@settings(max_examples=80, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.floats(-1e9, 1e9)), min_size=1, max_size=300),
       bins=st.integers(1, 30))
def test_histogram_counts_every_finite_value(values: list[float | None], bins: int) -> None:
    series = pd.Series(values, dtype="float64")
    prof = profile_column(series, bins=bins, sample_size=50)
    present = series.dropna().to_numpy()
    assert prof["count"] == present.size and prof["nulls"] == series.isna().sum()
    if present.size:
        edges = prof["histogram"]["edges"]
        assert sum(prof["histogram"]["counts"]) == present.size
        assert np.histogram(present, bins=edges)[0].tolist() == prof["histogram"]["counts"]
        assert len(prof["sample"]) == min(present.size, 50) and prof["sample"] == sorted(prof["sample"])
    json.dumps(prof, allow_nan=False)


def test_most_frequent_is_the_stable_sort_s_head_without_the_sort() -> None:
    """``most_frequent`` gives what a stable descending sort's head gives (ties in their order), on counts with
    many ties, fewer counts than asked, and a column of unique text (every count 1)."""
    from tidal.data.schema import category_counts, most_frequent

    rng = np.random.default_rng(7)
    for _ in range(200):
        n, k = int(rng.integers(0, 300)), int(rng.integers(0, 60))
        counts = pd.Series(rng.integers(1, int(rng.integers(2, 9)), n), index=[f"k{i}" for i in range(n)])
        want = counts.sort_values(ascending=False, kind="stable").head(k)
        got = most_frequent(counts, k)
        assert list(got.index) == list(want.index) and list(got) == list(want)
    unique = pd.Series([f"u{i}" for i in range(5000)] + ["u42"] * 3, dtype="str")
    top = profile_frame(unique.to_frame("t"), top_k=3)["columns"]["t"]["top"]
    assert top == {"u42": 4, "u0": 1, "u1": 1}
    keys = category_counts(unique, object_keys=False).index
    assert [type(k) for k in keys[:2]] == [str, str] and category_counts(unique).index.dtype == object


def test_text_held_by_arrow_is_counted_by_arrow_as_pandas_counts_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import pyarrow as pa

    import tidal.data.profile as profile

    rng = np.random.default_rng(7)
    n = 5_000
    words = np.char.add("w", rng.integers(0, 400, n).astype(str))
    unique = np.char.add("note ", np.arange(n).astype(str))
    df = pd.DataFrame({
        "str": pd.Series(words, dtype="str"),
        "gaps": pd.Series(words, dtype="str").where(rng.random(n) > 0.1),
        "arrow": pd.Series(words, dtype="string[pyarrow]"),
        "large": pd.Series(words).astype(pd.ArrowDtype(pa.large_string())),
        "unique": pd.Series(unique, dtype="str"),  # more distinct values than top_k: ties in order of appearance
        "empty": pd.Series([None] * n, dtype="str"),
        # Python str objects, as CSV, JSON and SQL sources give them: converted, then counted by Arrow
        "object": pd.Series(words, dtype=object),
        "object_gaps": pd.Series(np.where(rng.random(n) > 0.1, words, None), dtype=object).where(
            rng.random(n) > 0.05, np.nan),  # None and NaN both missing
        "object_unique": pd.Series(unique, dtype=object),
    })
    assert all(profile._arrow_text(df[c]) is not None for c in df.columns)
    by_arrow = profile_frame(df)
    from tidal.data.snapshot import to_canonical_table

    assert profile_frame(df, arrow=to_canonical_table(df)) == by_arrow  # the snapshot's own Arrow columns
    monkeypatch.setattr(profile, "_arrow_text", lambda series, arrow=None: None)  # the pandas path
    assert profile_frame(df) == by_arrow
    assert by_arrow["columns"]["unique"]["n_unique"] == n
    assert list(by_arrow["columns"]["unique"]["top"])[:2] == ["note 0", "note 1"]
    assert by_arrow["columns"]["empty"]["n_unique"] == 0
    assert by_arrow["columns"]["object_gaps"]["nulls"] > 0
    assert by_arrow["columns"]["object_unique"] == by_arrow["columns"]["unique"]


def test_object_columns_that_are_not_all_text_are_counted_by_pandas() -> None:
    import tidal.data.profile as profile

    mixed = pd.Series([1, "1", "a", None, 2.5] * 10, dtype=object)  # 1 and "1" are one category, "1"
    assert profile._arrow_text(mixed) is None
    assert profile._arrow_text(pd.Series(["a", "\ud800"], dtype=object)) is None  # a lone surrogate: no UTF-8
    assert profile_frame(pd.DataFrame({"m": mixed}))["columns"]["m"]["top"] == {"1": 20, "a": 10, "2.5": 10}


def test_a_large_frame_profiled_two_columns_at_a_time_is_profiled_alike(monkeypatch: pytest.MonkeyPatch) -> None:
    import tidal.data.profile as profile

    rng = np.random.default_rng(3)
    n = 2_000
    df = pd.DataFrame({"x": rng.normal(size=n), "ids": np.arange(n),
                       "w": np.char.add("w", rng.integers(0, 9, n).astype(str)),
                       "flag": rng.random(n) < 0.5, "when": pd.date_range("2026-01-01", periods=n, freq="h")})
    monkeypatch.setattr(profile, "PARALLEL_ROWS", 10**9)
    alone = profile_frame(df)
    monkeypatch.setattr(profile, "PARALLEL_ROWS", 0)
    assert profile_frame(df) == alone
    assert list(alone["columns"]) == list(df.columns)
