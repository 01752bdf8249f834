"""How a ``data.time`` column is read as time, and how a time is written back in that column's own type.

A time column may hold (see docs/spec.md, ``data.time``):

- datetimes, naive (read as UTC) or with a time zone;
- ``datetime.date`` values (midnight UTC);
- ISO 8601 text (naive text is UTC);
- integers (or whole floats): **years** when every value lies in 1…9999, **epoch seconds** otherwise
  (a year column never reaches 10,000, and epoch seconds of any date after 1970-01-01 03:00 exceed it).

:func:`parse_times` reads a column as aware UTC timestamps (the time-ordered split, the backtest's row
times and the retrain window use it); :func:`format_times` writes times back in the type of a column
(:func:`time_kind`), so a training frame rebuilt from the prediction log sorts and stores like the source.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import numpy as np
import pandas as pd

from tidal.core.errors import DataError
from tidal.data.codec import DATE, column_type, decode_column

TimeKind = Literal["datetime", "date", "iso", "year", "epoch"]
#: The largest value an integer time column may hold to be read as years.
MAX_YEAR = 9999


def time_kind(series: pd.Series) -> TimeKind:
    """What ``series`` holds as time (see the module docstring); DataError when it holds none of those."""
    dtype = series.dtype
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "datetime"
    if pd.api.types.is_bool_dtype(dtype):
        raise _not_time(series, "booleans")
    if pd.api.types.is_numeric_dtype(dtype):
        values = series.dropna().to_numpy(dtype=float)
        if len(values) and not np.all(np.mod(values, 1) == 0):
            return "epoch"
        return "year" if len(values) and values.min() >= 1 and values.max() <= MAX_YEAR else "epoch"
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred == "date":
        return "date"
    if inferred in ("datetime", "datetime64"):
        return "datetime"
    if inferred in ("string", "empty"):
        return "iso"
    raise _not_time(series, f"{inferred} values")


def _not_time(series: pd.Series, what: str) -> DataError:
    return DataError(f"the time column {series.name!r} holds {what}, which cannot be read as time",
                     hint="give data.time a column of datetimes, dates, ISO 8601 text, years or epoch seconds")


def parse_times(series: pd.Series) -> pd.Series:
    """``series`` as aware UTC timestamps (index kept); DataError naming the column when it cannot be read."""
    kind = time_kind(series)
    try:
        if kind == "year":
            years = series.astype("Float64")
            out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[us, UTC]")
            present = years.notna()
            out[present] = [datetime(int(y), 1, 1, tzinfo=UTC) for y in years[present]]
            return out
        if kind == "epoch":
            return pd.Series(pd.to_datetime(series.astype("Float64"), unit="s", utc=True), index=series.index)
        if kind == "iso":
            stamps = text_times(series)
            bad = stamps.isna() & series.notna()
            if bad.any():
                first = series[bad].iloc[0]
                raise DataError(f"the time column {series.name!r} cannot be read as time: {int(bad.sum())} of its "
                                f"values are not times (first {str(first)[:40]!r})",
                                hint="write times as ISO dates ('2024-01-31' or '2024-01-31T08:30:00+00:00')")
            return stamps
        return pd.Series(pd.to_datetime(series, utc=True), index=series.index)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"the time column {series.name!r} cannot be read as time ({kind}): {exc}",
                        hint="give data.time a column of datetimes, dates, ISO 8601 text, years or epoch "
                             "seconds") from exc


#: Text times in no single format are parsed value by value (slow) only up to this many distinct values.
MAX_MIXED = 10_000


def text_times(values: pd.Series) -> pd.Series:
    """Text (or date and datetime objects) as aware UTC timestamps, NaT where a value is not a time: ISO 8601
    first, then one format inferred from the values ("03 Jan 2024 10:00"), both fast; then, value by value
    (``format="mixed"``, slow), what is left when it is at most :data:`MAX_MIXED` distinct values. The one
    reading of text times: the data checks (``tidal.data.roles``) and the time order use it alike."""
    import warnings

    values = values.astype(object).where(values.notna(), None)
    out = pd.Series(pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601"), index=values.index)
    for fallback in ("inferred", "mixed"):
        retry = out.isna() & values.notna()
        if not retry.any():
            break
        rest = values[retry]
        with warnings.catch_warnings():
            # pandas warns that it parses value by value when no one format fits: that is this fallback's job
            warnings.simplefilter("ignore", UserWarning)
            if fallback == "inferred":
                parsed = pd.to_datetime(rest, errors="coerce", utc=True)
            else:
                try:
                    distinct = pd.unique(rest.to_numpy(dtype=object))
                except TypeError:  # unhashable values (lists from JSON): not times
                    break
                if len(distinct) > MAX_MIXED:
                    break
                lookup = pd.Series(pd.to_datetime(pd.Series(distinct, dtype=object), errors="coerce", utc=True,
                                                  format="mixed").to_numpy(), index=distinct)
                parsed = pd.to_datetime(rest.map(lookup), utc=True)
        out[retry] = parsed
    return out


def format_times(times: Sequence[datetime], like: pd.Series) -> pd.Series:
    """``times`` (aware) written in the type of the time column ``like``: datetimes in its zone (naive: the
    UTC wall time), dates, ISO 8601 text in UTC, years or epoch seconds, with ``like``'s dtype."""
    kind, dtype = time_kind(like), column_type(like)
    stamps = pd.Series(pd.to_datetime(pd.Series(list(times), dtype=object), utc=True))
    if kind == "year":
        values: list[object] = [None if pd.isna(t) else t.year for t in stamps]
    elif kind == "epoch":
        values = [None if pd.isna(t) else int(t.timestamp()) for t in stamps]
    elif kind == "iso":
        values = [None if pd.isna(t) else t.isoformat() for t in stamps]
    elif kind == "date" or dtype == DATE:
        values = [None if pd.isna(t) else t.date() for t in stamps]
    else:
        values = [None if pd.isna(t) else t.isoformat() for t in stamps]
    return decode_column(values, dtype)


__all__ = ["MAX_MIXED", "MAX_YEAR", "TimeKind", "format_times", "parse_times", "text_times", "time_kind"]
