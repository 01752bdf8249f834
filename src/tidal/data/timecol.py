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
            return pd.Series(pd.to_datetime(series, format="ISO8601", utc=True), index=series.index)
        return pd.Series(pd.to_datetime(series, utc=True), index=series.index)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"the time column {series.name!r} cannot be read as time ({kind}): {exc}",
                        hint="give data.time a column of datetimes, dates, ISO 8601 text, years or epoch "
                             "seconds") from exc


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


__all__ = ["MAX_YEAR", "TimeKind", "format_times", "parse_times", "time_kind"]
