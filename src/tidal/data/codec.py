"""One codec for a table's values on their way into the prediction log and back out of it.

The prediction log stores JSON. A value goes in as the plain JSON value of :func:`encode_value`
(timestamps and dates as ISO 8601 text, with their offset when they have one; every kind of missing
value — None, NaN, ``NaT``, ``pd.NA`` — as null; NumPy scalars as Python ones). A column comes back out
with :func:`decode_column`, given the type it had in the source (:func:`column_types`), so that a
training frame rebuilt from the log has the dtypes of a frame read from the source: ``str``,
``category``, nullable ``Int64``/``boolean``, datetimes naive or with their zone, ``datetime.date``
values in an object column.

A type is the pandas dtype's name, except for an ``object`` column of ``datetime.date`` values: ``date``.

Example::

    types = column_types(source)                       # {"when": "datetime64[us, Europe/Paris]", ...}
    rows = encode_records(source, ["when", "size"])    # what the log stores
    back = decode_frame(pd.DataFrame(rows), types)     # the same dtypes as ``source``
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from numbers import Number
from typing import Any

import numpy as np
import pandas as pd

#: The type of an ``object`` column that holds ``datetime.date`` values.
DATE = "date"


def is_missing(value: Any) -> bool:
    """Whether ``value`` is a missing value of any kind: None, NaN, ``NaT``, ``pd.NA``."""
    if value is None or value is pd.NaT or value is pd.NA:
        return True
    if isinstance(value, float | np.floating):
        return math.isnan(value)
    return isinstance(value, np.datetime64 | np.timedelta64) and bool(np.isnat(value))


def encode_value(value: Any) -> Any:
    """``value`` as the plain JSON value the prediction log stores (see the module docstring)."""
    if is_missing(value):
        return None
    if isinstance(value, datetime | date):  # pd.Timestamp is a datetime: ISO text, offset included if any
        return value.isoformat()
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def encode_records(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """The rows of ``frame`` (its ``columns``, default all) as the plain dicts the prediction log stores."""
    names = list(frame.columns if columns is None else columns)
    values = [[encode_value(v) for v in frame[c].tolist()] for c in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)] if names else \
        [{} for _ in range(len(frame))]


def column_type(series: pd.Series) -> str:
    """The type :func:`decode_column` restores: the dtype's name, or ``date`` for an object column of dates."""
    if pd.api.types.is_object_dtype(series.dtype) and pd.api.types.infer_dtype(series, skipna=True) == "date":
        return DATE
    return str(series.dtype)


def column_types(frame: pd.DataFrame) -> dict[str, str]:
    """:func:`column_type` of every column of ``frame``."""
    return {str(c): column_type(frame[c]) for c in frame.columns}


def _as_date(value: Any) -> Any:
    if is_missing(value):
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return datetime.fromisoformat(str(value)).date()


def _datetimes(values: Sequence[Any], dtype: pd.DatetimeTZDtype | np.dtype[Any]) -> pd.Series:
    """ISO texts (or datetimes) as a datetime column of ``dtype``: aware values are converted to its zone;
    a naive column gets the UTC wall time of aware values (naive ones stay as they are)."""
    parsed = pd.Series(pd.to_datetime(pd.Series(list(values), dtype=object), format="ISO8601", utc=True))
    if isinstance(dtype, pd.DatetimeTZDtype):
        return parsed.dt.tz_convert(dtype.tz).astype(dtype)
    return parsed.dt.tz_localize(None).astype(dtype)


def decode_column(values: Sequence[Any] | pd.Series, kind: str) -> pd.Series:
    """``values`` (as the log gives them back, or already typed) as a column of type ``kind`` (see
    :func:`column_type`). A value that cannot take the type leaves the column as pandas infers it, rather
    than losing data: a null in an ``int64`` column gives ``float64``, as pandas itself would."""
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    series = series.reset_index(drop=True)
    if column_type(series) == kind:
        return series
    raw = [None if is_missing(v) else v for v in series.tolist()]
    try:
        if kind == DATE:
            return pd.Series([_as_date(v) for v in raw], dtype=object)
        dtype = pd.api.types.pandas_dtype(kind)
        if isinstance(dtype, pd.DatetimeTZDtype) or (isinstance(dtype, np.dtype) and dtype.kind == "M"):
            return _datetimes(raw, dtype)
        if kind == "object":
            return pd.Series(raw, dtype=object)
        if isinstance(dtype, pd.CategoricalDtype):
            return pd.Series(raw, dtype=object).astype(dtype)
        return pd.Series(pd.array(raw, dtype=dtype))
    except (TypeError, ValueError, OverflowError):
        return pd.Series(raw, dtype=object).infer_objects()


def decode_like(values: Sequence[Any] | pd.Series, reference: pd.Series) -> pd.Series:
    """``values`` as a column of the type of ``reference``: :func:`decode_column`, and for a ``category``
    column the reference's own categories (their order, their type, ``ordered``), then any new ones."""
    dtype = reference.dtype
    if not isinstance(dtype, pd.CategoricalDtype):
        out = decode_column(values, column_type(reference))
        if out.dtype != dtype and column_type(reference) != DATE:
            # the very dtype, where its name says less (``string`` backed by pyarrow or by Python)
            with contextlib.suppress(TypeError, ValueError, OverflowError):
                out = out.astype(dtype)
        return out
    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    series = series.reset_index(drop=True)
    if series.dtype == dtype:
        return series
    plain = pd.Series([None if is_missing(v) else v for v in series.tolist()], dtype=object)
    known = set(dtype.categories.tolist())
    new = [v for v in pd.unique(plain.dropna()) if v not in known]
    categories = dtype.categories.append(pd.Index(new, dtype=object)) if new else dtype.categories
    return plain.astype(pd.CategoricalDtype(categories, ordered=dtype.ordered))


def decode_frame(frame: pd.DataFrame, types: Mapping[str, str]) -> pd.DataFrame:
    """``frame`` with each column named in ``types`` decoded to its type (other columns as they are)."""
    out = frame.copy()
    for name, kind in types.items():
        if name in out.columns:
            out[name] = decode_column(out[name], kind).set_axis(out.index)
    return out


def datetime_texts(values: Iterable[Any]) -> np.ndarray:
    """Datetime feature values (datetimes, dates, ISO 8601 text) as the model sees them: ISO 8601 text, aware
    values in UTC, missing values NaN. The same in training (:func:`tidal.data.prepare.as_model_input`) and
    serving, whatever format a client sends; and a model file holds text, not ``pandas.Timestamp`` objects,
    which the skops loader cannot rebuild (they carry no state it reads) and tidal does not trust."""
    out = []
    for value in values:
        if is_missing(value):
            out.append(np.nan)
            continue
        stamp = pd.Timestamp(value)
        out.append((stamp.tz_convert("UTC") if stamp.tzinfo is not None else stamp).isoformat())
    return np.asarray(out, dtype=object)


def target_array(series: pd.Series) -> np.ndarray:
    """A target column as the NumPy array a scikit-learn estimator fits and a comparison scores: plain
    values, never a pandas extension array (``str``, ``category``, ``Int64``, ``boolean``)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return target_array(pd.Series(np.asarray(series.astype(object)), dtype=object).infer_objects())
    values: np.ndarray  # pandas is untyped here: name what its to_numpy gives
    if isinstance(dtype, np.dtype) and dtype.kind != "O":
        values = series.to_numpy()
    elif series.hasnans:
        values = np.asarray([None if is_missing(v) else encode_value(v) for v in series.tolist()], dtype=object)
    elif pd.api.types.is_bool_dtype(dtype):
        values = series.to_numpy(dtype=bool)
    elif pd.api.types.is_integer_dtype(dtype):
        values = series.to_numpy(dtype=np.int64)
    elif pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype=np.float64)
    else:
        values = np.asarray([encode_value(v) for v in series.tolist()], dtype=object)
    return values


def class_key(value: Any) -> str:
    """How a class is named on both sides of a comparison: ``str`` of it, with numbers that are whole
    written without a fraction, so 1, 1.0, numpy's int64(1) and the profile's stored 1.0 all read "1"."""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, Number) and not isinstance(value, complex):
        number = float(value)  # type: ignore[arg-type]
        if math.isfinite(number) and number.is_integer():
            return str(int(number))
        return repr(number)
    return str(value)


def class_keys(values: Iterable[Any]) -> list[str | None]:
    """:func:`class_key` of each value (``None`` for nulls), each distinct value worked out once."""
    cache: dict[tuple[type, Any], str | None] = {}
    out: list[str | None] = []
    for value in values:
        try:
            out.append(cache[(type(value), value)])
            continue
        except KeyError:
            key = None if is_missing(value) else class_key(value)
            cache[(type(value), value)] = key
        except TypeError:  # unhashable (a list from JSON): not a class, but name it anyway
            key = class_key(value)
        out.append(key)
    return out


__all__ = ["DATE", "class_key", "class_keys", "column_type", "column_types", "datetime_texts", "decode_column",
           "decode_frame", "decode_like", "encode_records", "encode_value", "is_missing", "target_array"]
