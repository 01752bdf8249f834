"""Statistics profiles: what a monitor needs to compare new data with the training data, without it.

``profile_frame(df)`` returns a JSON-ready dict (plain floats and ints; NaN and ±inf become None)::

    {"version": 1, "rows": 45312, "columns": {<name>: <column profile>, ...}}

Every column profile has ``kind``, ``count`` (non-null values), ``nulls`` and ``null_share``. Then, by kind:

- ``numeric`` / ``integer``: ``infinite`` (±inf values, counted in ``count`` but left out of every
  statistic below), ``min``, ``max``, ``mean``, ``std`` (ddof=1), ``quantiles`` (``p01`` ... ``p99``,
  numpy's linear method), ``histogram`` = ``{"edges": [...], "counts": [...]}``: bins
  ``[e0, e1), [e1, e2), ..., [e(n-1), en]`` exactly as ``numpy.histogram(values, edges)`` counts them.
  With more than ``bins`` distinct values the edges are quantiles of the data (equal-frequency bins;
  repeated edges merged, so there may be fewer bins); with ``bins`` or fewer distinct values each
  value gets its own bin: edges are the sorted values with the largest repeated (``[0, 1, 1]`` for a
  0/1 flag, ``[v, v]`` for a constant). To bin new data for PSI / Jensen-Shannon, clip it into
  ``[edges[0], edges[-1]]`` and call ``numpy.histogram`` with these edges. ``sample``: up to
  ``sample_size`` sorted values, evenly spaced order statistics (all values when there are fewer), for
  exact KS tests and Wasserstein distances.
- ``categorical`` / ``boolean``: ``n_unique``, ``top`` = ``{category: count}`` for the ``top_k`` most
  frequent (keys are ``str(value)``: ``"True"``/``"False"`` for booleans), and ``other`` = how many
  non-null values fall outside ``top``.
- ``datetime``: ``min`` and ``max`` as ISO 8601 strings.
- ``image``: ``sizes`` (``min``, ``max``, ``most_common`` as ``[width, height]``, and ``top`` counts by
  ``"WxH"``), ``modes`` (``{"L": n, "RGB": n}``), ``channels`` (the channels the statistics are over: 1 or
  3), ``channel_mean`` and ``channel_std`` (pixels in [0, 1]; see :mod:`tidal.data.images.profile`).

Profiling sorts each numeric column once (O(n log n)) and reads every statistic from the sorted values.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tidal.data.schema import (
    NUMBER_KINDS,
    as_float,
    category_counts,
    column_kind,
    json_float,
    most_frequent,
    top_positions,
)

PROFILE_VERSION = 1
QUANTILES: dict[str, float] = {
    "p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.50, "p75": 0.75, "p95": 0.95, "p99": 0.99,
}
SAMPLE_SIZE = 1000
#: Frames of at least this many rows are profiled two columns at a time (see :func:`profile_frame`).
PARALLEL_ROWS = 50_000


def profile_frame(
    df: pd.DataFrame, *, bins: int = 20, top_k: int = 50, sample_size: int = SAMPLE_SIZE,
    arrow: pa.Table | None = None,
) -> dict[str, Any]:
    """The statistics profile of ``df`` (format in the module docstring). ``arrow``: ``df`` as an Arrow table
    already (the snapshot's canonical table), whose text columns are then counted as they are, not converted."""
    if bins < 1 or top_k < 0 or sample_size < 0:
        raise ValueError("bins must be >= 1, and top_k and sample_size >= 0")
    names = set(arrow.column_names) if arrow is not None else set()

    def one(name: Any) -> dict[str, Any]:
        return profile_column(df[name], bins=bins, top_k=top_k, sample_size=sample_size,
                              arrow=arrow.column(name) if arrow is not None and name in names else None)

    if len(df) < PARALLEL_ROWS or len(df.columns) < 2:
        found = [one(name) for name in df.columns]
    else:
        # The costly parts (numpy's sorts, Arrow's hash counts) release the GIL: two columns at a time keep a
        # second core busy (measured, 500,000 rows of 9 columns: the profile was the longest part of a snapshot)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="tidal-profile") as pool:
            found = list(pool.map(one, df.columns))
    columns = {str(name): column for name, column in zip(df.columns, found, strict=True)}
    return {"version": PROFILE_VERSION, "rows": len(df), "columns": columns}


def profile_column(
    series: pd.Series, *, bins: int = 20, top_k: int = 50, sample_size: int = SAMPLE_SIZE,
    arrow: pa.ChunkedArray | pa.Array | None = None,
) -> dict[str, Any]:
    """The profile of one column (format in the module docstring). ``arrow``: the same values as an Arrow
    column, if the caller holds one (see :func:`profile_frame`)."""
    kind = column_kind(series)
    rows = len(series)
    if kind in NUMBER_KINDS:
        values = as_float(series)
        missing = np.isnan(values)
        nulls = int(missing.sum())
        head = _head(kind, rows, nulls)
        head.update(_numeric(values[~missing], bins=bins, sample_size=sample_size))
        return head
    text = _arrow_text(series, arrow) if kind == "categorical" else None
    # Arrow's nulls of text converted from pandas are pandas' missing values (None, NaN, pd.NA): the same count
    nulls = text.null_count if text is not None else int(series.isna().sum())
    head = _head(kind, rows, nulls)
    if text is not None:
        head.update(_arrow_categorical(text, top_k=top_k, count=rows - nulls))
    elif kind == "image":
        from tidal.data.images.profile import image_profile  # Pillow, only for a column of images

        head.update(image_profile(series))
    elif kind == "datetime":
        present = series.dropna()
        head["min"] = _iso(present.min()) if len(present) else None
        head["max"] = _iso(present.max()) if len(present) else None
    else:
        head.update(_categorical(series, top_k=top_k, count=rows - nulls))
    return head


def _head(kind: str, rows: int, nulls: int) -> dict[str, Any]:
    return {"kind": kind, "count": rows - nulls, "nulls": nulls, "null_share": nulls / rows if rows else 0.0}


def sorted_quantiles(ordered: np.ndarray, qs: np.ndarray | list[float]) -> np.ndarray:
    """Quantiles of already-sorted values, linear interpolation (numpy's default method)."""
    n = ordered.size
    pos = np.asarray(qs, dtype="float64") * (n - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, n - 1)
    frac = pos - lo
    below, above = ordered[lo], ordered[hi]
    # numpy's lerp: interpolate from the nearer end, so q=1 gives the max exactly.
    quantiles: np.ndarray = np.where(frac >= 0.5, above - (above - below) * (1 - frac), below + (above - below) * frac)
    return quantiles


def _numeric(present: np.ndarray, *, bins: int, sample_size: int) -> dict[str, Any]:
    infinite = np.isinf(present)
    finite = present[~infinite] if infinite.any() else present
    # Columns that come in order (ids, counters, times as numbers) are common: one pass checks, and saves the
    # sort (O(n log n): 25 ms of 500,000 values)
    ordered = finite if finite.size < 2 or bool((finite[1:] >= finite[:-1]).all()) else np.sort(finite)
    n = ordered.size
    out: dict[str, Any] = {"infinite": int(infinite.sum())}
    if n == 0:
        out.update(min=None, max=None, mean=None, std=None, quantiles=dict.fromkeys(QUANTILES),
                   histogram={"edges": [], "counts": []}, sample=[])
        return out
    qvals = sorted_quantiles(ordered, list(QUANTILES.values()))
    distinct = int(np.count_nonzero(np.diff(ordered))) + 1
    if distinct <= bins:
        # Few distinct values (a 0/1 flag, a rating): one bin per value. Quantile edges would fall
        # between the values and leave empty bins; the last value gets the closed bin [v, v].
        uniques = np.unique(ordered)
        edges = np.append(uniques, uniques[-1])
    else:
        edges = np.unique(sorted_quantiles(ordered, np.linspace(0.0, 1.0, bins + 1)))
    # Equivalent to numpy.histogram(values, edges), read off the sorted values.
    cuts = np.searchsorted(ordered, edges, side="left")
    cuts[-1] = n
    counts = np.diff(cuts)
    if n > sample_size:
        ordered_sample = ordered[np.round(np.linspace(0, n - 1, sample_size)).astype(np.intp)]
    else:
        ordered_sample = ordered
    out.update(
        min=json_float(ordered[0]),
        max=json_float(ordered[-1]),
        mean=json_float(ordered.mean()),
        std=json_float(ordered.std(ddof=1)) if n > 1 else None,
        quantiles={key: json_float(v) for key, v in zip(QUANTILES, qvals, strict=True)},
        # every value here is finite (NaN and ±inf were left out above): tolist() gives the plain floats json_float
        # would, without a Python call per value (a profile holds up to sample_size of them a column)
        histogram={"edges": edges.astype("float64").tolist(), "counts": counts.astype("int64").tolist()},
        sample=ordered_sample.astype("float64").tolist(),
    )
    return out


def _categorical(series: pd.Series, *, top_k: int, count: int) -> dict[str, Any]:
    counts = category_counts(series, object_keys=False)
    # Most frequent first; ties in order of first appearance (deterministic).
    top = most_frequent(counts, top_k)
    top_dict = {str(key): int(c) for key, c in top.items()}
    return {"n_unique": len(counts), "top": top_dict, "other": int(count - sum(top_dict.values()))}


ArrowText: TypeAlias = pa.Array | pa.ChunkedArray


def _arrow_text(series: pd.Series, arrow: ArrowText | None = None) -> ArrowText | None:
    """``series`` as an Arrow array of text, when it is text: held by Arrow already (pandas' ``str`` with the
    pyarrow storage, ``string[pyarrow]``), or Python ``str`` objects in an ``object`` column (what CSV, JSON
    and SQL sources give). None for anything else (numbers, mixed types, categoricals), which pandas counts.

    Counting ``str`` objects by Arrow is the same count in the same order (first appearance), and about 4x
    faster than pandas' hash table of Python objects once the conversion is paid (measured on 500,000
    unique readings: 109 ms against 444 ms; a column of unique text was most of a snapshot's profile). ``arrow``:
    the same values as Arrow text already (a snapshot's canonical column), used instead of a conversion."""
    dtype = series.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        return series.array.__arrow_array__()
    if isinstance(dtype, pd.ArrowDtype) and (pa.types.is_string(dtype.pyarrow_dtype)
                                             or pa.types.is_large_string(dtype.pyarrow_dtype)):
        return series.array.__arrow_array__()
    if (pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.StringDtype)) and len(series) \
            and pd.api.types.infer_dtype(series, skipna=True) == "string":
        if arrow is not None and (pa.types.is_string(arrow.type) or pa.types.is_large_string(arrow.type)):
            return arrow
        try:
            # nulls (None, NaN, pd.NA) become Arrow's nulls, which value_counts leaves out as dropna does
            return pa.array(series.to_numpy(dtype=object), from_pandas=True, type=pa.string())
        except (pa.ArrowException, TypeError, ValueError):  # text Arrow cannot hold (lone surrogates): pandas
            return None
    return None


def _arrow_categorical(array: pa.Array | pa.ChunkedArray, *, top_k: int, count: int) -> dict[str, Any]:
    """:func:`_categorical` of Arrow-held text, counted by Arrow: the same counts in the same order (first
    appearance; pandas' ``value_counts(sort=False)`` is this call) without building a pandas index of every
    distinct value (as many as rows for a column of unique text), of which only ``top_k`` are read."""
    found = pc.value_counts(array)
    values, counts = found.field("values"), found.field("counts")
    if values.null_count:
        present = values.is_valid()
        values, counts = values.filter(present), counts.filter(present)
    numbers = counts.to_numpy(zero_copy_only=False)
    top = top_positions(numbers, top_k)
    keys = values.take(pa.array(top, type=pa.int64())).to_pylist()
    top_dict = {str(key): int(n) for key, n in zip(keys, numbers[top], strict=True)}
    return {"n_unique": len(numbers), "top": top_dict, "other": int(count - sum(top_dict.values()))}


def _iso(value: Any) -> str | None:
    if value is None or value is pd.NaT:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


__all__ = [
    "PROFILE_VERSION",
    "QUANTILES",
    "SAMPLE_SIZE",
    "profile_column",
    "profile_frame",
    "sorted_quantiles",
]
