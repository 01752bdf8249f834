"""Checks of the columns with a role — the target and the time column — that need more than the table.

:func:`tidal.data.validate.validate_frame` looks at a table alone or against a stored schema. What it
cannot see needs the task, the spec, or another part of the same data:

- ``check_time``: every row of ``data.time`` holds a time (a datetime with or without a time zone, a
  date, an ISO string, or a number such as a year or epoch seconds), and with ``data.time_order:
  sorted`` the rows are already in time order;
- ``check_classes``: a classifier's target has classes a model can learn (not one value per row, as an
  identifier or a quantity stored as text has);
- ``check_training_classes``: the training rows of a split hold at least two classes;
- ``check_numeric_target``: a regressor's target holds numbers;
- ``check_replay``: a column that held numbers in the rows that trained the first model of a backtest
  does not hold text in the rows replayed after them (a feature whose type changed in new data).

Each returns ``Anomaly`` errors whose message names the column and the fix (``raise_for_errors`` turns
them into one line). Kinds: ``missing_time``, ``time_null``, ``time_unparsed``, ``time_order``,
``too_many_classes``, ``single_class``, ``text_target``, ``kind_changed``. Rows are 0-based positions in the table.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from tidal.data.schema import category_counts
from tidal.data.timecol import text_times
from tidal.data.validate import Anomaly, nearest_name, short_value

#: A classifier's target with more distinct values than this is refused: no data set here has that many
#: classes with enough rows each, and a column like that is an identifier or a quantity.
MAX_CLASSES = 1000
#: Below this many classes a target is never refused for having too many (tiny tables in tests, say).
MIN_SUSPECT_CLASSES = 20
#: Currency signs, percent, spaces and separators that make a number read as text ("$1,234.50", "12 %").
_NUMBER_DRESSING = re.compile(r"[\s$€£¥%,_']")


# -- the time column ------------------------------------------------------------------------------


def time_seconds(series: pd.Series) -> np.ndarray:
    """The order key of each value of a time column as float64: seconds since 1970 (UTC; naive times are
    taken as UTC) for datetimes, dates and date strings, the number itself for numbers (years, epoch
    seconds); NaN for a null or a value that is not a time."""
    dtype = series.dtype
    keys: np.ndarray  # pandas is untyped here: name what its to_numpy gives
    if pd.api.types.is_bool_dtype(dtype):
        return np.full(len(series), np.nan)
    if pd.api.types.is_numeric_dtype(dtype):
        keys = series.to_numpy(dtype="float64", na_value=np.nan)
        return keys
    if pd.api.types.is_timedelta64_dtype(dtype):
        seconds: np.ndarray = series.dt.total_seconds().to_numpy(dtype="float64", na_value=np.nan)
        return seconds
    if not pd.api.types.is_datetime64_any_dtype(dtype):
        values = series.astype(object).where(series.notna(), None)
        numbers = pd.to_numeric(values, errors="coerce")
        if numbers.notna().sum() == values.notna().sum():  # years or epoch seconds, stored as text
            keys = numbers.to_numpy(dtype="float64", na_value=np.nan)
            return keys
        return _text_seconds(values)
    return _seconds(series)


def _seconds(stamps: pd.Series) -> np.ndarray:
    """Datetimes as seconds since 1970 in UTC (naive ones taken as UTC), NaT as NaN."""
    stamps = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    since: np.ndarray = (stamps - pd.Timestamp(0, tz="UTC")).dt.total_seconds().to_numpy(
        dtype="float64", na_value=np.nan)
    return since


def _text_seconds(values: pd.Series) -> np.ndarray:
    """Text, dates and datetime objects as seconds since 1970 (NaN where a value is not a time), read as
    the time order reads them (:func:`tidal.data.timecol.text_times`)."""
    return _seconds(text_times(values))


def check_time(df: pd.DataFrame, time: str | None, order: str = "any") -> list[Anomaly]:
    """The problems of the time column ``time`` of ``df`` (none when ``time`` is None): missing, empty in
    some rows, values that are not times, and with ``order="sorted"`` a row earlier than the one before."""
    if time is None:
        return []
    if time not in df.columns:
        present = [str(c) for c in df.columns]
        near = nearest_name(time, present)
        message = (f"time column {time!r} (data.time) is not in the data"
                   + (f"; did you mean {near!r}?" if near else f"; columns present: {', '.join(present[:20])}")
                   + " Set data.time to the time column, or to null (file order is time order)")
        return [Anomaly("error", "missing_time", time, message)]
    series = df[time]
    null = series.isna().to_numpy()
    keys = time_seconds(series)
    found: list[Anomaly] = []
    fallback = "or set data.time: null (file order is time order)"
    if null.any():
        found.append(Anomaly("error", "time_null", time, (
            f"time column {time!r} is empty in {_rows(int(null.sum()))} (first at row {int(np.argmax(null))}): "
            f"give every row its time, {fallback}")))
    bad = ~null & np.isnan(keys)
    if bad.any():
        first = int(np.argmax(bad))
        found.append(Anomaly("error", "time_unparsed", time, (
            f"time column {time!r} has {_values(int(bad.sum()))} that cannot be read as a time (first "
            f"{short_value(series.iloc[first])} at row {first}): write times as ISO dates ('2024-01-31' or "
            f"'2024-01-31T08:30:00+00:00') or numbers (a year, epoch seconds), {fallback}")))
    if order == "sorted" and not found:
        back = np.flatnonzero(keys[1:] < keys[:-1])
        if back.size:
            row = int(back[0]) + 1
            found.append(Anomaly("error", "time_order", time, (
                f"time column {time!r} is not in time order, as data.time_order: sorted says it is: row {row} "
                f"({_show_time(series.iloc[row])}) is earlier than row {row - 1} "
                f"({_show_time(series.iloc[row - 1])}); sort the source by {time!r}, or set data.time_order: "
                "any (tidal sorts the rows by time)")))
    return found


# -- the target -----------------------------------------------------------------------------------


def check_classes(df: pd.DataFrame, target: str, task: str) -> list[Anomaly]:
    """For a classifier: a target with more classes than can be learned (over :data:`MAX_CLASSES`, or more
    than half of the rows alone in their class), said as what it most likely is and how to fix it."""
    if task != "classification" or target not in df.columns:
        return []
    present = df[target].dropna()
    rows = len(present)
    counts = category_counts(present)
    distinct, alone = len(counts), int((counts == 1).sum())
    if distinct <= MAX_CLASSES and (distinct < MIN_SUSPECT_CLASSES or alone * 2 <= rows):
        return []
    example = short_value(present.iloc[0])
    what = f"target column {target!r} has {distinct:,} distinct values in {_rows(rows)} (like {example})"
    if pd.api.types.is_numeric_dtype(present.dtype) and not pd.api.types.is_bool_dtype(present.dtype):
        fix = ("too many classes for a classifier: if it is a quantity, predict it by regression (model.task: "
               "regression, with a regressor as model.estimator)")
    elif _numbers_as_text(present):
        fix = ("it looks like numbers stored as text, each taken as a class: store them as plain numbers (no "
               "currency signs, units or thousands separators) so that it is predicted by regression")
    elif alone == rows:
        fix = (f"one per row, so it looks like an identifier, not a class to predict: set data.target to the "
               f"column to predict (and data.id: {target})")
    else:
        fix = ("too many classes to learn, most seen in a single row: if it is a quantity stored as text, store "
               "it as numbers for regression; if it is an identifier, set data.target to the column to predict")
    return [Anomaly("error", "too_many_classes", target, f"{what}: {fix}")]


def check_numeric_target(df: pd.DataFrame, target: str, task: str) -> list[Anomaly]:
    """For a regressor: a target whose values are not all numbers (text such as '$1,234.50' or 'n/a'), said
    with the first such value, before a model fails on it with no column named."""
    if task != "regression" or target not in df.columns:
        return []
    series = df[target]
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return []
    bad = (series.notna() & pd.to_numeric(series.astype(object), errors="coerce").isna()).to_numpy()
    if not bad.any():
        return []  # numbers stored as text: read as numbers
    first = int(np.argmax(bad))
    if _numbers_as_text(series.iloc[[first]]):  # '$1,234.50': a number in dress
        fix = "store them as plain numbers (no currency signs, units or thousands separators)"
    else:
        fix = "fix those values, or if the column holds classes, use a classifier (model.task: classification)"
    return [Anomaly("error", "text_target", target, (
        f"target column {target!r} is to be predicted by regression but {_values(int(bad.sum()))} are not numbers "
        f"(first {short_value(series.iloc[first])} at row {first}): {fix}"))]


def _numbers_as_text(values: pd.Series) -> bool:
    text = values.astype(str).str.replace(_NUMBER_DRESSING, "", regex=True)
    parsed = pd.to_numeric(text, errors="coerce")
    return bool(parsed.notna().mean() > 0.95)


def check_training_classes(train: pd.DataFrame, holdout: pd.DataFrame, target: str, task: str,
                           method: str) -> list[Anomaly]:
    """For a classifier: the training rows of a split hold at least two classes (the whole table may, while
    its first rows in time order do not)."""
    if task != "classification" or target not in train.columns:
        return []
    seen = category_counts(train[target].dropna())
    if len(seen) != 1:
        return []
    others = [k for k in category_counts(holdout[target].dropna()).index if k not in seen.index]
    where = ("the rows before the holdout in time order" if method == "time" else "the training rows")
    later = (f"; {_listing(others)} only come{'s' if len(others) == 1 else ''} in the holdout" if others else "")
    fix = ("use validate.split.method: random, or data in which every class appears early"
           if method == "time" and others else "collect rows of at least one other class")
    return [Anomaly("error", "single_class", target, (
        f"target column {target!r} has a single class ({short_value(seen.index[0])}) in the {_rows(len(train))} "
        f"a model is trained on ({where}){later}: a classifier needs at least two; {fix}"))]


# -- a backtest's replayed rows against its first rows ------------------------------------------------


def check_replay(initial: pd.DataFrame, stream: pd.DataFrame, *, target: str | None = None,
                 skip: Iterable[str] = (), offset: int | None = None, in_time_order: bool = False) -> list[Anomaly]:
    """Columns that hold only numbers in ``initial`` (the rows that train a backtest's first model) but text
    in ``stream`` (the rows replayed after them): in one table both parts share a dtype, so a feature that
    changed type in new data shows as numbers stored as text that are then followed by text. Columns in
    ``skip`` are not looked at; rows are counted from ``offset`` (default ``len(initial)``), the position
    of the stream's first row."""
    start = len(initial) if offset is None else offset
    order = " in time order" if in_time_order else ""
    skipped = set(skip)
    found: list[Anomaly] = []
    for name in initial.columns:
        if name in skipped or name not in stream.columns or not _plain_text(initial[name]):
            continue
        before = initial[name].dropna()
        if len(before) == 0 or pd.to_numeric(before, errors="coerce").isna().any():
            continue
        after = stream[name]
        bad = (after.notna() & pd.to_numeric(after, errors="coerce").isna()).to_numpy()
        if not bad.any():
            continue
        first = int(np.argmax(bad))
        found.append(Anomaly("error", "kind_changed", str(name), (
            f"column {name!r} was numeric (the first {_rows(len(initial))}, which train the first model), now text "
            f"from row {start + first}{order} ({short_value(after.iloc[first])}; {_values(int(bad.sum()))} in "
            f"all): fix those values in the source"
            + ("" if name == target else ", or leave the column out (data.drop)"))))
    return found


def _plain_text(series: pd.Series) -> bool:
    dtype = series.dtype
    return not isinstance(dtype, pd.CategoricalDtype) and (
        pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype))


# -- message helpers ------------------------------------------------------------------------------


def _show_time(value: Any) -> str:
    """A time as ISO text in its own zone ('2024-01-13T12:00:00+01:00'), anything else as its short repr."""
    if isinstance(value, dt.date):  # datetime and pandas' Timestamp too
        return repr(value.isoformat())
    return short_value(value)


def _rows(n: int) -> str:
    return f"{n:,} row{'' if n == 1 else 's'}"


def _values(n: int) -> str:
    return f"{n:,} value{'' if n == 1 else 's'}"


def _listing(keys: Iterable[str]) -> str:
    items = [repr(k) for k in keys]
    return ", ".join(items[:5]) + (f" and {len(items) - 5} more" if len(items) > 5 else "")


__all__ = ["MAX_CLASSES", "check_classes", "check_numeric_target", "check_replay", "check_time",
           "check_training_classes", "time_seconds"]
