"""``check_drift_test``: the conformance check every drift test must pass (like scikit-learn's
``check_estimator``). Call it from the plugin's own tests::

    from tidal.testing import check_drift_test
    def test_mean_shift():
        check_drift_test(MEAN_SHIFT)
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tidal.core.errors import PluginCheckFailed
from tidal.data.profile import profile_column
from tidal.data.schema import as_float
from tidal.monitor.base import NUMERIC_KINDS, TESTABLE_KINDS, DriftTest

_N = 2_000
_LETTERS = np.array(["a", "b", "c", "d", "e"], dtype=object)


class DriftTestCheckFailed(PluginCheckFailed):
    """A drift test broke the contract; the message names the test, the column kind and the clause."""


def _draw(kind: str, rng: np.random.Generator, n: int, *, shifted: bool = False) -> pd.Series:
    if kind == "numeric":
        return pd.Series(rng.normal(2.0 if shifted else 0.0, 1.0, n))
    if kind == "integer":
        return pd.Series(rng.poisson(3.0, n) + (3 if shifted else 0), dtype="int64")
    if kind == "boolean":
        return pd.Series(rng.random(n) < (0.9 if shifted else 0.3), dtype=bool)
    shares = [0.5, 0.3, 0.1, 0.05, 0.05]
    return pd.Series(rng.choice(_LETTERS, n, p=shares[::-1] if shifted else shares), dtype=object)


def _values(kind: str, series: pd.Series) -> np.ndarray:
    """The array a drift test receives for a column of ``kind`` (see ``tidal.monitor.base``)."""
    return as_float(series) if kind in NUMERIC_KINDS else series.to_numpy(dtype=object)


def check_drift_test(test: DriftTest, *, seed: int = 0) -> None:
    """Check that ``test`` honours the drift-test contract on every kind it declares.

    Clauses: it is a ``DriftTest`` with a name, known kinds and a positive threshold; on each kind it
    returns a plain, non-NaN float; identical data is not drift; shuffling the rows leaves the statistic
    unchanged; nulls are ignored (the same statistic with 10 % nulls added) and a window of nulls only
    does not raise; unseen categories do not raise; a large shift (2 sd, or category shares reversed)
    is drift. Raises :class:`DriftTestCheckFailed` (an ``AssertionError``) naming the broken clause.
    """
    if not isinstance(test, DriftTest):
        raise DriftTestCheckFailed(f"{test!r} is not a tidal.monitor.DriftTest")
    if not test.kinds or not set(test.kinds) <= TESTABLE_KINDS:
        raise DriftTestCheckFailed(f"{test.name}: kinds must be a non-empty subset of {sorted(TESTABLE_KINDS)}")
    for kind in sorted(test.kinds):
        _check_kind(test, kind, np.random.default_rng(seed))


def _check_kind(test: DriftTest, kind: str, rng: np.random.Generator) -> None:
    def fail(clause: str) -> DriftTestCheckFailed:
        return DriftTestCheckFailed(f"drift test {test.name!r} on a {kind} column: {clause}")

    def run(profile: dict[str, object], values: np.ndarray, what: str) -> float:
        try:
            out = test.fn(profile, values)
        except Exception as exc:
            raise fail(f"raised {type(exc).__name__} on {what}: {exc}") from exc
        if isinstance(out, bool) or not isinstance(out, int | float | np.floating | np.integer):
            raise fail(f"returned {type(out).__name__} on {what}, not a float")
        if math.isnan(float(out)):
            raise fail(f"returned NaN on {what}")
        return float(out)

    reference = _draw(kind, rng, _N)
    profile = profile_column(reference)
    same = _values(kind, reference)
    statistic = run(profile, same, "the reference data itself")
    if test.drifted(statistic):
        raise fail(f"identical data reads as drift (statistic {statistic:.4g}, threshold {test.threshold:g})")

    window = _values(kind, _draw(kind, rng, _N))
    first = run(profile, window, "a fresh draw")
    shuffled = run(profile, rng.permutation(window), "the same rows shuffled")
    if not _close(first, shuffled):
        raise fail(f"the statistic depends on row order ({first!r} vs {shuffled!r} shuffled)")

    with_nulls = _with_nulls(kind, window, rng)
    nulled = run(profile, with_nulls, "a window with 10% nulls")
    if not _close(first, nulled):
        raise fail(f"nulls change the statistic ({first!r} without, {nulled!r} with); ignore them")
    empty = np.full(20, np.nan) if kind in NUMERIC_KINDS else np.full(20, None, dtype=object)
    try:
        test.fn(profile, empty)
    except Exception as exc:
        raise fail(f"raised {type(exc).__name__} on a window of nulls only: {exc}") from exc

    if kind == "categorical":
        unseen = np.concatenate([window[:1_000], np.array(["zz-never-seen"] * 50, dtype=object)])
        run(profile, unseen, "a window with unseen categories")

    shifted = run(profile, _values(kind, _draw(kind, rng, _N, shifted=True)), "a shifted window")
    if not test.drifted(shifted):
        raise fail(f"a large shift does not read as drift (statistic {shifted:.4g}, threshold {test.threshold:g})")


def _with_nulls(kind: str, values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    extra = max(1, values.size // 10)
    nulls: np.ndarray = np.full(extra, np.nan) if kind in NUMERIC_KINDS else np.full(extra, None, dtype=object)
    mixed = np.concatenate([values, nulls])
    return mixed[rng.permutation(mixed.size)]


def _close(a: float, b: float) -> bool:
    # sums over the rows in another order may differ in the last bits; nothing more
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


__all__ = ["DriftTestCheckFailed", "check_drift_test"]
