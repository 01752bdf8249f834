"""Data drift: every feature of a window against its reference profile, and the dataset's verdict.

    from tidal.monitor import detect_drift
    result = detect_drift(mv.profile["features"], window_frame, columns=["nswprice", "day"])
    result.drifted, result.share, [c.column for c in result.columns if c.drifted]

Each :class:`ColumnDrift` carries the test, statistic, threshold and verdict, the reference and window
sizes, the null shares on both sides, unseen categories, and the window's histogram on the reference's
bins (for plots). Nothing here fails on odd data: a column missing from the window, a column of nulls,
values of the wrong type (counted as nulls) and unseen categories are all reported, never raised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from tidal.data.schema import as_float
from tidal.monitor.auto import AUTO, choose_test
from tidal.monitor.base import CATEGORICAL_KINDS, NUMERIC_KINDS
from tidal.monitor.baseline import effect_size
from tidal.monitor.binning import OTHER, bin_counts, category_table, finite_values, histogram_edges
from tidal.monitor.registry import get_drift_test

#: A rise in a column's share of nulls above this (window minus reference) is drift on its own: the
#: model sees imputed values where it saw real ones. The same default as ``data.checks.null_share_jump``.
NULL_SHARE_JUMP = 0.1
#: How many categories a categorical plot shows (the most frequent in the reference; the rest are
#: folded into "other"), and how many unseen categories a result names.
PLOT_CATEGORIES = 15
UNSEEN_NAMED = 10

TESTED, MISSING, EMPTY, SKIPPED, NO_DATA = "tested", "missing", "empty", "skipped", "no data"
COUNTED = frozenset({TESTED, MISSING, EMPTY})


@dataclass
class ColumnDrift:
    """The drift result of one column (``to_dict`` is its JSON form in a report).

    ``status``: ``tested``; ``missing`` (absent from every row of the window: counts as drifted);
    ``empty`` (present but never a usable value: drifted when the reference had values); ``skipped``
    (no test applies: datetime, or no reference values); ``no data`` (the window has no rows).
    """

    column: str
    kind: str
    status: str
    test: str | None = None
    statistic: float | None = None
    threshold: float | None = None
    is_pvalue: bool = False
    drifted: bool = False
    why: str = ""
    rows: int = 0
    n_reference: int = 0
    n_current: int = 0
    null_share_reference: float = 0.0
    null_share_current: float | None = None
    unseen: int | None = None
    unseen_categories: dict[str, int] | None = None
    plot: dict[str, Any] | None = None
    #: the champion's own holdout baseline (see :mod:`tidal.monitor.baseline`): the effect size measured
    #: (``effect``: wasserstein or jensenshannon), the window's value of it, and the limit it is held to
    #: (the largest a piece of the holdout showed, plus sampling noise); None when the version has no
    #: baseline or the test did not flag the column
    effect: str | None = None
    effect_size: float | None = None
    baseline: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["statistic"] = _json_float(self.statistic)
        out["effect_size"] = _json_float(self.effect_size)
        return out


@dataclass
class DatasetDrift:
    """Drift over a set of columns: the dataset drifts when ``share`` (drifted / counted columns)
    reaches ``share_threshold``. Skipped columns and an empty window count for nothing."""

    columns: list[ColumnDrift]
    method: str
    share_threshold: float
    counted: int = 0
    n_drifted: int = 0
    share: float = 0.0
    drifted: bool = False

    def __post_init__(self) -> None:
        counted = [c for c in self.columns if c.status in COUNTED]
        self.counted = len(counted)
        self.n_drifted = sum(c.drifted for c in counted)
        self.share = self.n_drifted / self.counted if self.counted else 0.0
        self.drifted = self.counted > 0 and self.share >= self.share_threshold

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "share_threshold": self.share_threshold, "counted": self.counted,
                "n_drifted": self.n_drifted, "share": self.share, "drifted": self.drifted,
                "drifted_columns": self.drifted_columns,
                "columns": [c.to_dict() for c in self.columns]}


def detect_drift(
    reference: Mapping[str, Any],
    current: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    method: str = AUTO,
    threshold: float | None = None,
    share: float = 0.5,
    plots: bool = True,
    workers: int = 2,
    baseline: Mapping[str, Any] | None = None,
) -> DatasetDrift:
    """Test each of ``columns`` (default: every column of the ``reference`` profile) of ``current``
    against the ``reference`` profile (``profile_frame``'s format). ``method`` is ``"auto"`` or a
    registered test's name; ``threshold`` overrides the chosen test's (see :mod:`tidal.monitor.auto`).

    Columns are tested on ``workers`` threads when the window is large: the hot path is numpy
    (arithmetic, bincount), which releases the GIL, so a second free core takes up to half the wall time
    off a wide window. An unknown ``method`` raises ``PluginNotFound`` before any work.

    ``baseline`` (``holdout_drift(...)["columns"]``, stored with the version as
    ``profile["holdout_drift"]``): a column the test flags counts as drifted only when its effect size
    also exceeds its baseline, the drift the champion's own holdout already showed
    (:mod:`tidal.monitor.baseline`).
    """
    if method != AUTO:
        get_drift_test(method)
    ref_columns: Mapping[str, Any] = reference.get("columns") or {}
    names = list(ref_columns) if columns is None else list(columns)
    rows = len(current)

    def one(name: str) -> ColumnDrift:
        return column_drift(name, ref_columns.get(name),
                            current[name] if name in current.columns else None,
                            rows=rows, method=method, threshold=threshold, plots=plots,
                            baseline=None if baseline is None else baseline.get(name))

    if workers > 1 and len(names) > 1 and rows > 10_000:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            results = list(pool.map(one, names))
    else:
        results = [one(name) for name in names]
    return DatasetDrift(columns=results, method=method, share_threshold=share)


def column_drift(
    name: str,
    reference: Mapping[str, Any] | None,
    series: pd.Series | None,
    *,
    rows: int,
    method: str = AUTO,
    threshold: float | None = None,
    plots: bool = True,
    baseline: Mapping[str, Any] | None = None,
) -> ColumnDrift:
    """The drift result of one column; ``series`` is ``None`` when the window lacks the column.
    ``baseline``: this column's entry of the champion's holdout baseline (``{"effect", "value"}``)."""
    if reference is None:
        return ColumnDrift(name, "unknown", SKIPPED, why="not in the reference profile")
    kind = str(reference.get("kind", "unknown"))
    n_ref = int(reference.get("count") or 0)
    head = ColumnDrift(name, kind, SKIPPED, rows=rows, n_reference=n_ref,
                       null_share_reference=float(reference.get("null_share") or 0.0))
    if kind not in NUMERIC_KINDS | CATEGORICAL_KINDS:
        head.why = f"no drift test applies to {kind} columns"
        return head
    if n_ref == 0:
        head.why = "the reference has no values in this column"
        return head
    if rows == 0:
        head.status, head.why = NO_DATA, "the window has no rows"
        return head
    if series is None:
        head.status, head.drifted, head.null_share_current = MISSING, True, 1.0
        head.why = "missing from every row of the window"
        return head

    if kind in NUMERIC_KINDS:
        raw = _numeric_values(series)
        nulls = int(np.isnan(raw).sum())
        values = raw
        present_n = int(finite_values(raw).size)
    else:
        values = series.to_numpy(dtype=object)
        nulls = int(pd.isna(series).sum())
        present_n = rows - nulls
    head.n_current = present_n
    head.null_share_current = nulls / rows
    choice = choose_test(kind, present_n, method=method, threshold=threshold)
    if present_n == 0 or choice is None:
        head.status, head.drifted = EMPTY, True
        head.why = "no usable value in the window (all null or not a number)"
        return head

    head.status, head.test, head.threshold = TESTED, choice.test.name, choice.threshold
    head.is_pvalue = choice.test.is_pvalue
    head.statistic = choice.test.statistic(reference, values)
    head.drifted = choice.test.drifted(head.statistic, choice.threshold)
    head.why = choice.why
    if head.drifted and baseline is not None:
        _judge_by_baseline(head, reference, values, baseline)
    jump = head.null_share_current - head.null_share_reference
    if jump > NULL_SHARE_JUMP:
        head.drifted = True
        head.why += (f"; null share rose from {head.null_share_reference:.1%} to "
                     f"{head.null_share_current:.1%}")
    if kind in CATEGORICAL_KINDS or plots:
        _describe(head, reference, values, plots=plots)
    return head


def _judge_by_baseline(head: ColumnDrift, reference: Mapping[str, Any], values: np.ndarray,
                       baseline: Mapping[str, Any]) -> None:
    """Keep the test's "drifted" only if the window stands further from the reference than the
    champion's own holdout did (the drift its validation figure already accounts for)."""
    value = effect_size(head.kind, reference, values)
    held = baseline.get("value")
    if value is None or held is None or not math.isfinite(value):
        return
    limit = float(held) + float(baseline.get("noise") or 0.0)  # as far as the holdout, give or take chance
    head.effect, head.effect_size, head.baseline = str(baseline.get("effect", "")), value, limit
    if value <= limit:
        head.drifted = False
        head.why += f"; within the champion's own holdout drift ({head.effect} {value:.3g} <= {limit:.3g})"
    else:
        head.why += f"; beyond the champion's own holdout drift ({head.effect} {value:.3g} > {limit:.3g})"


def _numeric_values(series: pd.Series) -> np.ndarray:
    """The column as contiguous float64, NaN for nulls and for values of the wrong type (counted as
    nulls). Contiguous, because a column of a 2-D block is a strided view and every later pass over it
    would read the whole frame's memory; float64 columns skip ``as_float``'s null handling (NaN is
    already the null), which on pandas 2 costs a masked copy."""
    if series.dtype == np.float64:
        return np.ascontiguousarray(series.to_numpy())
    return np.ascontiguousarray(as_float(series))


def _describe(head: ColumnDrift, reference: Mapping[str, Any], values: np.ndarray, *, plots: bool) -> None:
    """Unseen categories, and the window's distribution on the reference's bins, for the plots."""
    if head.kind in NUMERIC_KINDS:
        edges, ref_counts = histogram_edges(reference)
        if edges.size == 0:
            return
        binned = bin_counts(edges, finite_values(values))
        head.plot = {"type": "numeric", "edges": [float(e) for e in edges],
                     "reference": [int(c) for c in ref_counts], "current": [int(c) for c in binned.counts],
                     "below": binned.below, "above": binned.above}
        return
    table = category_table(reference, values)
    head.unseen = int(sum(table.unseen.values()))
    named = sorted(table.unseen.items(), key=lambda kv: (-kv[1], kv[0]))[:UNSEEN_NAMED]
    head.unseen_categories = dict(named)
    if plots:
        # the reference's top categories (already most frequent first), the rest folded into other
        keep = min(PLOT_CATEGORIES, len(table.names) - 1)
        ref = [int(c) for c in table.reference[:keep]] + [int(table.reference[keep:].sum())]
        cur = [int(c) for c in table.current[:keep]] + [int(table.current[keep:].sum())]
        head.plot = {"type": "categorical", "categories": [*table.names[:keep], OTHER],
                     "reference": ref, "current": cur}


def _json_float(value: float | None) -> float | None:
    if value is None:
        return None
    return value if math.isfinite(value) else None


__all__ = ["COUNTED", "NULL_SHARE_JUMP", "ColumnDrift", "DatasetDrift", "column_drift", "detect_drift"]
