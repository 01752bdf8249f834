"""The drift test: a small frozen dataclass around a pure function (Evidently's stat-test registry style).

A drift test compares one column of new data with that column's *reference profile* (the statistics
stored with the model version at registration, see :mod:`tidal.data.profile`), so monitoring never
needs the training data again. It answers one number, the statistic, and says how to read it:

- ``is_pvalue=False`` (an effect size or distance): the column drifted when ``statistic >= threshold``;
- ``is_pvalue=True`` (a test's p-value): the column drifted when ``statistic < threshold``.

Worked example — a test that flags a moved mean, in units of the reference standard deviation::

    import numpy as np
    from tidal.monitor import DriftTest, check_drift_test, finite_values, register_drift_test

    def mean_shift(reference: dict, values: np.ndarray) -> float:
        # nulls (NaN) and ±inf are not part of the distribution: drop them, never fail on them
        present = finite_values(values)
        if present.size == 0 or not reference.get("std"):
            return 0.0
        return abs(float(present.mean()) - reference["mean"]) / reference["std"]

    MEAN_SHIFT = DriftTest(
        name="mean_shift", kinds=frozenset({"numeric", "integer"}), threshold=0.2, is_pvalue=False,
        fn=mean_shift, description="|mean(current) - mean(reference)| / std(reference)",
    )
    check_drift_test(MEAN_SHIFT)       # identical data -> no drift, order invariance, nulls, a real shift
    register_drift_test(MEAN_SHIFT)

and then use it by name: ``detect_drift(profile, frame, method="mean_shift", threshold=0.3)`` from
Python; ``build_report`` takes the name from ``monitor.drift.method`` in tidal.yaml (which today admits
the built-in names only). Columns of a kind the test does not apply to fall back to ``auto``'s choice.

What the function receives: ``reference`` is one column of a profile (``kind``, ``count``, ``nulls``,
``mean``, ``std``, ``quantiles``, ``histogram``, ``sample`` for numbers; ``top`` and ``other`` for
categories); ``values`` is the window's column as a numpy array: float64 with NaN for nulls for numeric
and integer columns, an object array (``None``/NaN for nulls) for categorical and boolean ones. It must
ignore nulls (they are reported beside the statistic), never raise on unseen categories, not depend on
the order of the rows, and return a plain float.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Column kinds a drift test can apply to (datetime columns are not tested).
TESTABLE_KINDS: frozenset[str] = frozenset({"numeric", "integer", "categorical", "boolean"})
NUMERIC_KINDS: frozenset[str] = frozenset({"numeric", "integer"})
CATEGORICAL_KINDS: frozenset[str] = frozenset({"categorical", "boolean"})

StatisticFn = Callable[[Mapping[str, Any], np.ndarray], float]


@dataclass(frozen=True)
class DriftTest:
    """One drift test: a name, the column kinds it applies to, a default threshold, how to read the
    statistic (p-value or distance) and the pure function that computes it. See the module docstring
    for a worked example."""

    name: str
    kinds: frozenset[str]
    threshold: float
    is_pvalue: bool
    fn: StatisticFn
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError("a drift test needs a non-empty name")
        unknown = set(self.kinds) - TESTABLE_KINDS
        if not self.kinds or unknown:
            raise ValueError(f"drift test {self.name!r}: kinds must be a non-empty subset of "
                             f"{sorted(TESTABLE_KINDS)}, got {sorted(self.kinds)}")
        if not (isinstance(self.threshold, int | float) and math.isfinite(self.threshold) and self.threshold > 0):
            raise ValueError(f"drift test {self.name!r}: threshold must be a positive number")

    def applies_to(self, kind: str) -> bool:
        """Whether the test can compare a column of this kind."""
        return kind in self.kinds

    def statistic(self, reference: Mapping[str, Any], values: np.ndarray) -> float:
        """The statistic of ``values`` against the ``reference`` profile column, as a plain float."""
        return float(self.fn(reference, values))

    def drifted(self, statistic: float, threshold: float | None = None) -> bool:
        """The verdict: a p-value below the threshold, or a distance at or above it."""
        cut = self.threshold if threshold is None else threshold
        if math.isnan(statistic):
            return False
        return statistic < cut if self.is_pvalue else statistic >= cut


__all__ = ["CATEGORICAL_KINDS", "NUMERIC_KINDS", "TESTABLE_KINDS", "DriftTest", "StatisticFn"]
