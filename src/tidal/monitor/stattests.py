"""The built-in drift tests: PSI, Kolmogorov-Smirnov, normalised Wasserstein, chi-square, Jensen-Shannon.

Each is a pure function ``(reference profile column, window values) -> statistic`` wrapped in a
:class:`~tidal.monitor.base.DriftTest`. Which one ``method: auto`` picks, and why, is in
:mod:`tidal.monitor.auto`.

========================  ====================  =========  ==========================================
test                      kinds                 threshold  reads as
========================  ====================  =========  ==========================================
``ks``                    numeric, integer      0.05       p-value of the two-sample KS test against
                                                           the reference ``sample`` (exact as scipy)
``chisquare``             categorical, boolean  0.05       p-value of Pearson's chi-square test of the
                                                           2 x k table reference vs window counts
``wasserstein``           numeric, integer      0.1        W1 / reference std (effect size: 0.1 is a
                                                           tenth of a standard deviation moved)
``jensenshannon``         all four              0.1        Jensen-Shannon distance (natural log) of the
                                                           binned / categorical distributions
``psi``                   all four              0.1        population stability index on the same bins
========================  ====================  =========  ==========================================

Numeric columns are binned on the reference histogram's quantile edges (values outside the reference
range are clipped into the first / last bin, as the profile's docstring prescribes); categorical
columns on the reference's ``top`` categories plus one bucket for everything else, which is where
unseen categories land, so they count and never crash.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats
from scipy.spatial import distance

from tidal.monitor.base import CATEGORICAL_KINDS, NUMERIC_KINDS, DriftTest
from tidal.monitor.binning import (
    bin_counts,
    category_table,
    ecdf_cells,
    finite_values,
    histogram_edges,
    ks_from_cells,
    proportions,
    reference_cdf,
    reference_sample,
    reference_scale,
    sample_cdf,
    wasserstein_from_cells,
)

#: Up to this many values on both sides, KS p-values come straight from ``scipy.stats.ks_2samp``
#: (its exact method); beyond it, the statistic is computed on the reference's cut points without
#: sorting the window and the p-value is Smirnov's asymptotic one (what scipy's ``asymp`` method gives).
KS_SCIPY_MAX = 10_000
#: Wasserstein: how far (in reference standard deviations) the result may be from the exact W1.
W1_TOLERANCE = 1e-3
#: PSI's floor for an empty bin's share, so that ln(0) never happens (Evidently's choice too).
PSI_EPSILON = 1e-4


def _binned(reference: Mapping[str, Any], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(reference counts, window counts) over the same bins, for any testable kind."""
    if reference.get("kind") in NUMERIC_KINDS:
        edges, ref_counts = histogram_edges(reference)
        if edges.size == 0:
            return np.empty(0), np.empty(0)
        return ref_counts, bin_counts(edges, finite_values(values)).clipped()
    table = category_table(reference, values)
    return table.reference, table.current


def ks_pvalue(reference: Mapping[str, Any], values: np.ndarray) -> float:
    """p-value of the two-sample Kolmogorov-Smirnov test: the window against the reference ``sample``."""
    sample = reference_sample(reference)
    present = finite_values(values)
    if sample.size == 0 or present.size == 0:
        return 1.0  # nothing to compare: no evidence of drift
    if max(sample.size, present.size) <= KS_SCIPY_MAX:
        with warnings.catch_warnings():
            # scipy says when it falls back from the exact p-value to the asymptotic one (ties); the
            # p-value is still right, and the note would be printed to every user of `tidal monitor`
            warnings.simplefilter("ignore", RuntimeWarning)
            return float(stats.ks_2samp(sample, present).pvalue)
    cuts, cdf = sample_cdf(sample)
    d = ks_from_cells(ecdf_cells(cuts, present), cdf)
    m, n = sorted((float(sample.size), float(present.size)), reverse=True)
    return float(np.clip(stats.kstwo.sf(d, np.round(m * n / (m + n))), 0.0, 1.0))


def ks_statistic(reference: Mapping[str, Any], values: np.ndarray) -> float:
    """The KS statistic D = sup|F_reference - F_window| (reported beside the p-value)."""
    sample = reference_sample(reference)
    present = finite_values(values)
    if sample.size == 0 or present.size == 0:
        return 0.0
    cuts, cdf = sample_cdf(sample)
    return ks_from_cells(ecdf_cells(cuts, present), cdf)


def wasserstein_normed(reference: Mapping[str, Any], values: np.ndarray) -> float:
    """Wasserstein-1 distance between the reference and the window, over the reference std.

    The reference distribution is rebuilt from the stored sample with each point weighted by the
    training values it stands for (:func:`~tidal.monitor.binning.reference_cdf`); when the training
    column had at most 1,000 values this is exactly ``scipy.stats.wasserstein_distance(sample, window)``.
    """
    sample = reference_sample(reference)
    present = finite_values(values)
    if sample.size == 0 or present.size == 0:
        return 0.0
    cuts, cdf = reference_cdf(reference, sample)
    scale = reference_scale(reference, sample)
    cells = ecdf_cells(cuts, present)
    return wasserstein_from_cells(cells, cdf, present, tolerance=W1_TOLERANCE * scale) / scale


def chisquare_pvalue(reference: Mapping[str, Any], values: np.ndarray) -> float:
    """p-value of Pearson's chi-square test (no continuity correction) on the 2 x k table of reference
    and window counts. Two samples, not goodness of fit: the reference is a sample too, and a category
    the reference never saw has a finite expected count instead of a division by zero."""
    table = category_table(reference, values)
    counts = np.vstack([table.reference, table.current])
    counts = counts[:, counts.sum(axis=0) > 0]
    if counts.shape[1] < 2 or counts[0].sum() == 0 or counts[1].sum() == 0:
        return 1.0
    return float(stats.chi2_contingency(counts, correction=False).pvalue)


def jensenshannon_distance(reference: Mapping[str, Any], values: np.ndarray) -> float:
    """Jensen-Shannon distance (natural log, so between 0 and sqrt(ln 2) ≈ 0.83) of the binned
    reference and window distributions."""
    ref, cur = _binned(reference, values)
    if ref.sum() == 0 or cur.sum() == 0:
        return 0.0
    return float(distance.jensenshannon(proportions(ref), proportions(cur)))


def psi(reference: Mapping[str, Any], values: np.ndarray) -> float:
    """Population stability index: sum of (window share - reference share) * ln(window / reference)."""
    ref, cur = _binned(reference, values)
    if ref.sum() == 0 or cur.sum() == 0:
        return 0.0
    p = np.maximum(proportions(ref), PSI_EPSILON)
    q = np.maximum(proportions(cur), PSI_EPSILON)
    return float(np.sum((q - p) * np.log(q / p)))


ALL_KINDS = NUMERIC_KINDS | CATEGORICAL_KINDS

KS = DriftTest("ks", NUMERIC_KINDS, 0.05, True, ks_pvalue,
               "two-sample Kolmogorov-Smirnov p-value against the reference sample")
CHISQUARE = DriftTest("chisquare", CATEGORICAL_KINDS, 0.05, True, chisquare_pvalue,
                      "Pearson chi-square p-value, reference vs window category counts")
WASSERSTEIN = DriftTest("wasserstein", NUMERIC_KINDS, 0.1, False, wasserstein_normed,
                        "Wasserstein-1 distance over the reference standard deviation")
JENSENSHANNON = DriftTest("jensenshannon", ALL_KINDS, 0.1, False, jensenshannon_distance,
                          "Jensen-Shannon distance of the binned distributions (natural log)")
PSI = DriftTest("psi", ALL_KINDS, 0.1, False, psi, "population stability index on the reference bins")

BUILTIN_TESTS: tuple[DriftTest, ...] = (PSI, KS, WASSERSTEIN, CHISQUARE, JENSENSHANNON)

__all__ = [
    "BUILTIN_TESTS",
    "CHISQUARE",
    "JENSENSHANNON",
    "KS",
    "KS_SCIPY_MAX",
    "PSI",
    "PSI_EPSILON",
    "WASSERSTEIN",
    "chisquare_pvalue",
    "jensenshannon_distance",
    "ks_pvalue",
    "ks_statistic",
    "psi",
    "wasserstein_normed",
]
