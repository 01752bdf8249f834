"""``method: auto``: the drift test that means something at this column kind and window size.

A p-value answers "could these two samples come from one distribution?". On a million rows the answer
is "no" for any real-world column, even when nothing that matters has moved: KS and chi-square flag
everything. An effect size answers "how far apart are they?", which does not grow with the window. So:

====================  =====================================  =========================================
kind                  window <= 1,000 values                 window > 1,000 values
====================  =====================================  =========================================
numeric, integer      ``ks``: p-value < 0.05                 ``wasserstein``: W1 / std >= 0.1
categorical, boolean  ``chisquare``: p-value < 0.05          ``jensenshannon``: distance >= 0.1
====================  =====================================  =========================================

Why these cuts (measured on normal data against a large reference): on small windows an effect size
is mostly noise — the W1 of 100 values is 0.13 sd on average, 0.21 sd at the 95th percentile — so an
exact test is the honest judge. From 1,000 values the noise falls to 0.04 sd (99th percentile 0.08),
under the 0.1 threshold, while KS has already become strict (at 1,000 values it flags a 0.1 sd move half
the time); at 10,000 the noise is 0.013 sd and at a million it is gone, but a p-value would flag moves
of a hundredth of a standard deviation that no one retrains for. 0.1 sd for W1 and 0.1 for JS (about a
14-point move of a balanced binary share) are the smallest moves worth a look; Evidently uses the same.

A ``threshold`` in the spec overrides the effect-size tests' threshold under ``auto``; the p-value tests
keep 0.05, because one number cannot be both a p-value and a distance. Name a method to override it.
"""

from __future__ import annotations

from dataclasses import dataclass

from tidal.monitor.base import CATEGORICAL_KINDS, NUMERIC_KINDS, DriftTest
from tidal.monitor.registry import get_drift_test

#: Windows up to this many (non-null) values get an exact test under ``auto``; larger ones an effect size.
AUTO_EXACT_MAX = 1_000
AUTO = "auto"


@dataclass(frozen=True)
class Choice:
    """The test for one column, the threshold to judge it by, and why it was picked."""

    test: DriftTest
    threshold: float
    why: str


def choose_test(
    kind: str, n: int, *, method: str = AUTO, threshold: float | None = None,
) -> Choice | None:
    """The drift test for a column of ``kind`` with ``n`` non-null window values, or ``None`` when no
    test applies (datetime, unknown kinds).

    ``method`` names a registered test or is ``"auto"``; a named test that does not apply to ``kind``
    falls back to ``auto``'s choice (and says so). Unknown names raise ``PluginNotFound``.
    """
    if method != AUTO:
        named = get_drift_test(method)
        if named.applies_to(kind):
            cut = named.threshold if threshold is None else threshold
            return Choice(named, cut, f"method {method}")
    picked = _auto_name(kind, n)
    if picked is None:
        return None
    test = get_drift_test(picked)
    exact = n <= AUTO_EXACT_MAX
    size = f"{n:,} values {'<=' if exact else '>'} {AUTO_EXACT_MAX:,}"
    if method != AUTO:
        why = f"auto ({method} does not apply to {kind} columns; {size})"
    else:
        why = f"auto ({kind}, {size}: {'exact test' if exact else 'effect size'})"
    # the spec's threshold under auto overrides effect sizes only (see the module docstring)
    cut = threshold if (threshold is not None and not test.is_pvalue and method == AUTO) else test.threshold
    return Choice(test, cut, why)


def _auto_name(kind: str, n: int) -> str | None:
    if kind in NUMERIC_KINDS:
        return "ks" if n <= AUTO_EXACT_MAX else "wasserstein"
    if kind in CATEGORICAL_KINDS:
        return "chisquare" if n <= AUTO_EXACT_MAX else "jensenshannon"
    return None


__all__ = ["AUTO", "AUTO_EXACT_MAX", "Choice", "choose_test"]
