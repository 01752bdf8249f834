"""Column kinds and the schema of a snapshot: what later snapshots are validated against.

A column's *kind* is what a model cares about, not the exact dtype: ``numeric`` (floats),
``integer``, ``boolean``, ``categorical`` (text and pandas categories), ``datetime`` and ``image`` (a
column of PNG/JPEG bytes, see :mod:`tidal.data.images`).
``infer_schema`` records, for each column, its kind, dtype, null share, the seen range (numbers) or
the seen categories (capped), so that ``validate_frame`` can compare new data to it.

The schema format (a JSON-ready dict)::

    {"version": 1, "rows": 45312, "target": "up", "time": null,
     "columns": {
        "nswprice": {"kind": "numeric", "dtype": "float64", "nullable": false, "null_share": 0.0,
                     "min": 0.0, "max": 1.0},
        "day":      {"kind": "categorical", "dtype": "str", "nullable": true, "null_share": 0.01,
                     "n_unique": 7, "categories": ["fri", "mon", ...]},   # null when over the cap
        "up":       {"kind": "integer", ..., "min": 0.0, "max": 1.0}}}
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pandas as pd

from tidal.core.errors import SchemaError

Kind = Literal["numeric", "integer", "boolean", "categorical", "datetime", "image"]
KINDS: tuple[Kind, ...] = ("numeric", "integer", "boolean", "categorical", "datetime", "image")
NUMBER_KINDS: frozenset[str] = frozenset({"numeric", "integer"})
SCHEMA_VERSION = 1
#: How many distinct categories a schema lists; beyond that the column is treated as an identifier
#: (no unseen-category check).
MAX_CATEGORIES = 200

# pandas.api.types.infer_dtype results for object columns, mapped to kinds.
_INFERRED_KIND: dict[str, Kind] = {
    "boolean": "boolean",
    "integer": "integer",
    "floating": "numeric",
    "mixed-integer-float": "numeric",
    "decimal": "numeric",
    "datetime": "datetime",
    "datetime64": "datetime",
    "date": "datetime",
    # a column of bytes: encoded images (tidal.data.images), the only bytes tidal reads
    "bytes": "image",
}


def column_kind(series: pd.Series) -> Kind:
    """The kind of ``series``: from its dtype, or for ``object`` columns from the values it holds."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_float_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_object_dtype(dtype):
        # JSON and SQL give object columns of bools, Decimals or dates; classify by content.
        return _INFERRED_KIND.get(pd.api.types.infer_dtype(series, skipna=True), "categorical")
    return "categorical"


def as_float(series: pd.Series) -> np.ndarray:
    """The values of a numeric/integer column as float64, nulls as NaN (timedeltas in seconds)."""
    values: np.ndarray  # pandas is untyped here: name what its to_numpy gives
    if pd.api.types.is_timedelta64_dtype(series.dtype):
        values = series.dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
        return values
    if not pd.api.types.is_numeric_dtype(series.dtype):
        series = pd.to_numeric(series, errors="coerce")
    values = series.to_numpy(dtype="float64", na_value=np.nan)
    return values


def category_key(value: Any) -> str:
    """How a category value is named in schemas and profiles (JSON keys are strings)."""
    return str(value)


def category_counts(series: pd.Series, *, object_keys: bool = True) -> pd.Series:
    """Counts of the non-null values of ``series`` by category key (``str``), in order of first
    appearance; categories that never occur (unused pandas categories) are left out. ``object_keys=False``
    leaves the keys in the index pandas gives (a ``str`` index, whose values are the same ``str`` keys),
    which saves converting every key of a column of unique text to a Python object when only a few are read
    (:func:`most_frequent`)."""
    try:
        counts = series.value_counts(dropna=True, sort=False)
    except TypeError:  # unhashable values (lists, dicts from JSON): count their text
        counts = series.dropna().map(category_key).value_counts(sort=False)
    values = counts.to_numpy()
    if not values.all():  # unused categories of a categorical
        # a numpy mask: a boolean Series as the key makes pandas hash the whole index (slow for unique text)
        counts = counts[values > 0]
    index = counts.index
    if not (pd.api.types.is_string_dtype(index.dtype) and pd.api.types.infer_dtype(index) == "string"):
        # 1 and "1" both name the category "1": merge them rather than emit duplicate keys.
        counts = counts.groupby(index.map(category_key), sort=False).sum()
    if object_keys:
        counts.index = counts.index.astype(object)
    return counts


def most_frequent(counts: pd.Series, k: int) -> pd.Series:
    """The ``k`` largest of ``counts``, largest first, ties in their order in ``counts`` — what
    ``counts.sort_values(ascending=False, kind="stable").head(k)`` gives, without sorting every count (a
    column of unique text has as many counts as rows)."""
    return counts.iloc[top_positions(counts.to_numpy(), k)]


def top_positions(values: np.ndarray, k: int) -> np.ndarray:
    """The positions of the ``k`` largest of ``values`` (whole numbers: counts), largest first, ties in their order
    (see :func:`most_frequent`)."""
    candidates = np.arange(values.size)
    if k <= 0:
        candidates = candidates[:0]
    elif values.size > 4 * k:
        # every count at least the k-th largest, in their order: the only ones that can be among the first k.
        # Counts are whole numbers no larger than the rows: the k-th largest from a histogram of them (O(n),
        # where a partition of a column of unique text, all counts 1, is several times slower).
        at_least = np.cumsum(np.bincount(values.astype(np.int64))[::-1])[::-1]  # [v]: how many counts are >= v
        kth = int(np.flatnonzero(at_least >= k)[-1])
        candidates = np.flatnonzero(values >= kth)
    order: np.ndarray = candidates[np.argsort(-values[candidates], kind="stable")][:max(k, 0)]
    return order


def json_float(value: Any) -> float | None:
    """A plain float for JSON: numpy scalars unwrapped, NaN and ±inf as None."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def infer_schema(
    df: pd.DataFrame, *, target: str, time: str | None = None, max_categories: int = MAX_CATEGORIES
) -> dict[str, Any]:
    """The schema of ``df`` (see the module docstring for the format).

    ``target`` (and ``time``, if given) must be columns of ``df``; ``SchemaError`` otherwise.
    """
    for role, name in (("target", target), ("time", time)):
        if name is not None and name not in df.columns:
            raise SchemaError(
                f"{role} column {name!r} is not in the data",
                hint=f"columns present: {', '.join(map(str, df.columns[:20]))}",
            )
    rows = len(df)
    columns: dict[str, dict[str, Any]] = {}
    for name in df.columns:
        series = df[name]
        kind = column_kind(series)
        nulls = int(series.isna().sum())
        entry: dict[str, Any] = {
            "kind": kind,
            "dtype": str(series.dtype),
            "nullable": nulls > 0,
            "null_share": nulls / rows if rows else 0.0,
        }
        if kind in NUMBER_KINDS:
            values = as_float(series)
            finite = values[np.isfinite(values)]
            entry["min"] = json_float(finite.min()) if finite.size else None
            entry["max"] = json_float(finite.max()) if finite.size else None
        elif kind in ("categorical", "boolean"):
            counts = category_counts(series)
            entry["n_unique"] = len(counts)
            entry["categories"] = sorted(counts.index) if len(counts) <= max_categories else None
        elif kind == "datetime":
            present = series.dropna()
            entry["min"] = present.min().isoformat() if len(present) else None
            entry["max"] = present.max().isoformat() if len(present) else None
        columns[str(name)] = entry
    return {"version": SCHEMA_VERSION, "rows": rows, "target": target, "time": time, "columns": columns}


def schema_kinds(schema: dict[str, Any]) -> dict[str, str]:
    """``{column: kind}`` from a schema made by ``infer_schema`` (what ``SnapshotInfo.schema`` holds)."""
    return {name: entry["kind"] for name, entry in schema["columns"].items()}


__all__ = [
    "KINDS",
    "MAX_CATEGORIES",
    "NUMBER_KINDS",
    "SCHEMA_VERSION",
    "Kind",
    "as_float",
    "category_counts",
    "category_key",
    "column_kind",
    "infer_schema",
    "json_float",
    "most_frequent",
    "schema_kinds",
    "top_positions",
]
