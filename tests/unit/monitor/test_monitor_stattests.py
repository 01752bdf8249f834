"""The drift tests against scipy on known cases, the plugin table, and the conformance check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial import distance

from tidal.core.errors import PluginNotFound
from tidal.data.profile import profile_column
from tidal.monitor import (
    DriftTest,
    DriftTestCheckFailed,
    check_drift_test,
    finite_values,
    get_drift_test,
    known_drift_tests,
    register_drift_test,
    unregister_drift_test,
)
from tidal.monitor.binning import (
    bin_counts,
    bucketize,
    ecdf_cells,
    reference_cdf,
    reference_sample,
    sample_cdf,
    wasserstein_from_cells,
)
from tidal.monitor.stattests import BUILTIN_TESTS, ks_statistic

rng = np.random.default_rng(42)


def _numeric_case(n_ref: int, n_cur: int, shift: float, *, discrete: bool = False) -> tuple[dict, np.ndarray]:
    ref = rng.standard_normal(n_ref)
    cur = rng.standard_normal(n_cur) + shift
    if discrete:
        ref, cur = np.round(ref * 2), np.round(cur * 2)
    return profile_column(pd.Series(ref)), cur


# -- KS ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n_ref", "n_cur", "shift", "discrete"), [
    (500, 700, 0.2, False), (5_000, 3_000, 0.05, False), (2_000, 4_000, 0.0, True), (800, 9_000, 0.1, False),
])
def test_ks_matches_scipy_on_the_reference_sample(n_ref: int, n_cur: int, shift: float, discrete: bool) -> None:
    col, cur = _numeric_case(n_ref, n_cur, shift, discrete=discrete)
    expected = stats.ks_2samp(reference_sample(col), cur)
    assert get_drift_test("ks").statistic(col, cur) == pytest.approx(expected.pvalue, rel=1e-12, abs=1e-300)
    assert ks_statistic(col, cur) == pytest.approx(expected.statistic, abs=1e-12)


@pytest.mark.parametrize(("shift", "discrete"), [(0.0, False), (0.01, False), (0.3, True)])
def test_ks_on_large_windows_matches_scipys_asymptotic_method(shift: float, discrete: bool) -> None:
    col, cur = _numeric_case(20_000, 200_000, shift, discrete=discrete)
    expected = stats.ks_2samp(reference_sample(col), cur, method="asymp")
    assert ks_statistic(col, cur) == pytest.approx(expected.statistic, abs=1e-12)
    assert get_drift_test("ks").statistic(col, cur) == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


# -- Wasserstein ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("n_cur", "shift", "discrete"), [(700, 0.2, False), (5_000, 0.0, True), (20_000, 0.5, False)])
def test_wasserstein_is_scipys_over_the_reference_std_when_the_sample_is_every_value(
    n_cur: int, shift: float, discrete: bool,
) -> None:
    col, cur = _numeric_case(900, n_cur, shift, discrete=discrete)  # <= 1,000 values: sample = all of them
    expected = stats.wasserstein_distance(reference_sample(col), cur) / col["std"]
    assert get_drift_test("wasserstein").statistic(col, cur) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("draw", ["normal", "lognormal", "student_t2"])
def test_wasserstein_on_a_compressed_reference_is_close_to_the_full_reference(draw: str) -> None:
    make = {"normal": lambda n: rng.standard_normal(n), "lognormal": lambda n: rng.lognormal(0, 1.5, n),
            "student_t2": lambda n: rng.standard_t(2, n)}[draw]
    ref, cur = make(100_000), make(50_000)
    col = profile_column(pd.Series(ref))
    ours = get_drift_test("wasserstein").statistic(col, cur)
    full = stats.wasserstein_distance(ref, cur) / col["std"]
    # the profile keeps 1,000 of the 100,000 values; heavy tails must not read as drift of the data itself
    assert abs(ours - full) < 0.02
    assert ours < 0.05
    # and it is exact against the distribution the profile describes (its weighted cut points)
    cuts, cdf = reference_cdf(col, reference_sample(col))
    exact = stats.wasserstein_distance(cuts, cur, u_weights=np.diff(cdf, prepend=0.0)) / col["std"]
    assert ours == pytest.approx(exact, abs=1e-3)


def test_wasserstein_of_a_shift_is_the_shift_in_standard_deviations() -> None:
    col, cur = _numeric_case(100_000, 100_000, 0.3)
    assert get_drift_test("wasserstein").statistic(col, cur) == pytest.approx(0.3, abs=0.02)


# -- categorical tests ----------------------------------------------------------------------------------------

def _categorical_case(shares_ref: list[float], shares_cur: list[float], n: int) -> tuple[dict, np.ndarray]:
    letters = np.array(list("abcde"), dtype=object)
    ref = rng.choice(letters, n, p=shares_ref)
    cur = rng.choice(letters, n, p=shares_cur)
    return profile_column(pd.Series(ref, dtype=object)), cur


def _table(col: dict, cur: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    names = list(col["top"])
    counts = pd.Series(cur).value_counts()
    return (np.array([col["top"][k] for k in names], dtype=float),
            np.array([counts.get(k, 0) for k in names], dtype=float))


@pytest.mark.parametrize("shares_cur", [[0.4, 0.3, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2]])
def test_chisquare_matches_scipys_contingency_test(shares_cur: list[float]) -> None:
    col, cur = _categorical_case([0.4, 0.3, 0.1, 0.1, 0.1], shares_cur, 800)
    ref_counts, cur_counts = _table(col, cur)
    expected = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]), correction=False).pvalue
    assert get_drift_test("chisquare").statistic(col, cur) == pytest.approx(expected, rel=1e-9)


def test_jensenshannon_matches_scipy_on_categories_and_on_numeric_bins() -> None:
    col, cur = _categorical_case([0.4, 0.3, 0.1, 0.1, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2], 5_000)
    ref_counts, cur_counts = _table(col, cur)
    expected = distance.jensenshannon(ref_counts / ref_counts.sum(), cur_counts / cur_counts.sum())
    assert get_drift_test("jensenshannon").statistic(col, cur) == pytest.approx(expected, rel=1e-9)

    num, values = _numeric_case(10_000, 10_000, 0.5)
    edges = np.asarray(num["histogram"]["edges"])
    binned, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
    ref = np.asarray(num["histogram"]["counts"], dtype=float)
    expected = distance.jensenshannon(ref / ref.sum(), binned / binned.sum())
    assert get_drift_test("jensenshannon").statistic(num, values) == pytest.approx(expected, rel=1e-9)


def test_psi_by_hand() -> None:
    num, values = _numeric_case(10_000, 10_000, 0.5)
    edges = np.asarray(num["histogram"]["edges"])
    binned, _ = np.histogram(np.clip(values, edges[0], edges[-1]), edges)
    p = np.maximum(np.asarray(num["histogram"]["counts"]) / 10_000, 1e-4)
    q = np.maximum(binned / binned.sum(), 1e-4)
    assert get_drift_test("psi").statistic(num, values) == pytest.approx(np.sum((q - p) * np.log(q / p)), rel=1e-9)


def test_unseen_categories_count_and_never_crash() -> None:
    col, cur = _categorical_case([0.4, 0.3, 0.1, 0.1, 0.1], [0.4, 0.3, 0.1, 0.1, 0.1], 500)
    window = np.concatenate([cur, np.array(["never", "seen", None, float("nan")], dtype=object)])
    for name in ("chisquare", "jensenshannon", "psi"):
        assert np.isfinite(get_drift_test(name).statistic(col, window))
    everything_new = np.array(["x", "y", "z"] * 100, dtype=object)
    assert get_drift_test("chisquare").statistic(col, everything_new) < 1e-10
    assert get_drift_test("jensenshannon").statistic(col, everything_new) > 0.8


# -- the primitives --------------------------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(cuts=hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(-1e6, 1e6, allow_subnormal=False)),
       values=hnp.arrays(np.float64, st.integers(4096, 6000), elements=st.floats(-2e6, 2e6, allow_subnormal=False)),
       reuse=st.booleans())
def test_bucketize_is_searchsorted(cuts: np.ndarray, values: np.ndarray, reuse: bool) -> None:
    cuts = np.unique(cuts)
    if reuse:  # values sitting exactly on cuts (discrete columns)
        values[: cuts.size] = cuts[: values.size]
    assert np.array_equal(bucketize(cuts, values), np.searchsorted(cuts, values, side="right"))


@settings(max_examples=60, deadline=None)
@given(data=hnp.arrays(np.float64, st.integers(1, 400), elements=st.floats(-1e3, 1e3, allow_subnormal=False)),
       window=hnp.arrays(np.float64, st.integers(0, 400), elements=st.floats(-2e3, 2e3, allow_subnormal=False)))
def test_bin_counts_are_numpy_histogram(data: np.ndarray, window: np.ndarray) -> None:
    col = profile_column(pd.Series(data), bins=10)
    edges = np.asarray(col["histogram"]["edges"])
    binned = bin_counts(edges, window)
    inside = window[(window >= edges[0]) & (window <= edges[-1])]
    if edges[-1] == edges[-2]:  # one bin per value, the last closed: [v, v]
        last = edges.size - 2
        expected = np.array([np.sum(inside == v) if i == last else np.sum((inside >= v) & (inside < edges[i + 1]))
                             for i, v in enumerate(edges[:-1])])
    else:
        expected, _ = np.histogram(inside, edges)
    assert np.array_equal(binned.counts, expected)
    assert binned.below == np.sum(window < edges[0]) and binned.above == np.sum(window > edges[-1])


def test_finite_values_drops_nulls_and_infinities() -> None:
    assert finite_values(np.array([1.0, np.nan, np.inf, -np.inf, 2.0])).tolist() == [1.0, 2.0]


# -- the plugin table and the conformance check ---------------------------------------------------------------

def test_builtins_are_registered_and_pass_the_conformance_check() -> None:
    assert set(known_drift_tests()) >= {"psi", "ks", "wasserstein", "chisquare", "jensenshannon"}
    for test in BUILTIN_TESTS:
        check_drift_test(test)


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(PluginNotFound) as info:
        get_drift_test("kss")
    text = str(info.value)
    assert "did you mean 'ks'" in text and "wasserstein" in text and "jensenshannon" in text


def _mean_shift(reference: dict, values: np.ndarray) -> float:
    present = finite_values(values)
    if present.size == 0 or not reference.get("std"):
        return 0.0
    return abs(float(present.mean()) - reference["mean"]) / reference["std"]


def test_the_docstring_example_plugin_registers_and_passes() -> None:
    test = DriftTest("mean_shift", frozenset({"numeric", "integer"}), 0.2, False, _mean_shift, "mean moved")
    check_drift_test(test)
    register_drift_test(test)
    try:
        assert get_drift_test("mean_shift") is test
    finally:
        unregister_drift_test("mean_shift")
    assert "mean_shift" not in known_drift_tests()


def test_the_conformance_check_names_the_broken_clause() -> None:
    def order_dependent(reference: dict, values: np.ndarray) -> float:
        present = finite_values(values)
        return float(abs(present[0])) / 100 if present.size else 0.0  # looks at the first row

    def fails_on_nulls(reference: dict, values: np.ndarray) -> float:
        return abs(float(np.mean(values)))  # NaN in, NaN out

    def always_drift(reference: dict, values: np.ndarray) -> float:
        return 1.0

    cases = [(order_dependent, "row order"), (fails_on_nulls, "NaN"), (always_drift, "identical data")]
    for fn, clause in cases:
        test = DriftTest("bad", frozenset({"numeric"}), 0.5, False, fn)
        with pytest.raises(DriftTestCheckFailed, match=clause):
            check_drift_test(test)


def test_a_drift_test_validates_its_own_fields() -> None:
    with pytest.raises(ValueError, match="kinds"):
        DriftTest("x", frozenset({"datetime"}), 0.1, False, _mean_shift)
    with pytest.raises(ValueError, match="threshold"):
        DriftTest("x", frozenset({"numeric"}), 0.0, False, _mean_shift)
    with pytest.raises(TypeError):
        register_drift_test("ks")  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(sample=hnp.arrays(np.float64, st.integers(1, 300), elements=st.floats(-50, 50, allow_subnormal=False)),
       window=hnp.arrays(np.float64, st.integers(1, 500), elements=st.floats(-80, 80, allow_subnormal=False)),
       discrete=st.booleans())
def test_wasserstein_cells_are_exact_when_every_crossing_cell_is_refined(
    sample: np.ndarray, window: np.ndarray, discrete: bool,
) -> None:
    if discrete:
        sample, window = np.round(sample / 10), np.round(window / 10)
    sample = np.sort(sample)
    cuts, cdf = sample_cdf(sample)
    exact = stats.wasserstein_distance(sample, window)
    cells = ecdf_cells(cuts, window)
    assert wasserstein_from_cells(cells, cdf, window, tolerance=0.0) == pytest.approx(exact, rel=1e-9, abs=1e-9)
    # and without refinement it stays within the bound it claims
    loose = wasserstein_from_cells(cells, cdf, window, tolerance=np.inf)
    assert abs(loose - exact) <= 0.5 * (cuts[-1] - cuts[0]) + 1e-9
