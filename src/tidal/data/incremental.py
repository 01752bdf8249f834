"""Incremental collection (``data.incremental``) and the training window (``data.window``).

A collection reads only the rows of a SQL source whose incremental column is greater than the watermark —
the largest value of that column collected so far (the first collection reads every row whose column is not
null). The new rows become a snapshot of their own (a *batch*, content-addressed like any snapshot), and the
pipeline records the new watermark in the metadata store (:mod:`tidal.loop.incremental`). A collection that
finds no new rows stores nothing and says ``no new rows since <watermark>``.

A collection costs the new rows only: it reads them, snapshots them, and nothing else. The table a run trains
on is made from the batches when a run needs it (:func:`training_table`, merge on read), and is named before
it is made by its manifest (:func:`table_manifest`: the batches' digests, the key and the window), so that the
same batches are the same table. That table is the union of the batches in collection order, deduplicated
(:func:`merge_batches`): with ``data.incremental.key``, the newest version of each key (by the incremental
column) replaces the older ones, so a row updated after it was collected is trained on as it is now; without
a key, only identical rows are dropped, and both versions of an updated row stay. Then ``data.window``
(:func:`apply_window`) keeps all rows, the newest ``last_rows`` or the rows of the ``last_days``.

A row inserted late, with a value of the column below the watermark, is not collected by ``>``: with
``data.incremental.lookback`` each collection re-reads that far behind the watermark, and a row already
collected, unchanged, is not stored again; rows later than the lookback are missed (docs/spec.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.entities import SnapshotInfo
from tidal.core.errors import SourceError, SpecError
from tidal.core.hashing import digest_of
from tidal.data.snapshot import make_snapshot
from tidal.data.sources import EmptySourceError, resolve_source
from tidal.data.timecol import parse_times
from tidal.spec.collect import duration_seconds
from tidal.spec.model import DataSpec
from tidal.spec.policy import WindowSpec

_INCREMENTAL_HINT = "check data.incremental in tidal.yaml"


# -- the watermark, as JSON ------------------------------------------------------------------------------

def encode_watermark(value: Any) -> dict[str, Any]:
    """A value of the incremental column as JSON for the metadata store, with its type, so that it is bound
    back as the same type (a naive datetime stays naive for a ``timestamp without time zone`` column)."""
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime(warn=False)
    if isinstance(value, datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool | np.bool_):
        raise TypeError("a boolean is not a watermark")
    if isinstance(value, int | np.integer):
        return {"type": "int", "value": int(value)}
    if isinstance(value, float | np.floating):
        return {"type": "float", "value": float(value)}
    if isinstance(value, Decimal):
        return {"type": "decimal", "value": str(value)}
    if isinstance(value, str):
        return {"type": "text", "value": value}
    raise TypeError(f"{type(value).__name__} is not a watermark")


def decode_watermark(mark: dict[str, Any]) -> Any:
    """The value :func:`encode_watermark` stored."""
    kind, value = mark["type"], mark["value"]
    if kind == "datetime":
        return datetime.fromisoformat(value)
    if kind == "date":
        return date.fromisoformat(value)
    if kind == "decimal":
        return Decimal(value)
    return value


def show_watermark(mark: dict[str, Any] | None) -> str:
    """The watermark as a person reads it (``2024-05-01T10:00:00+00:00``, ``1042``)."""
    return "the start" if mark is None else str(mark["value"])


def behind(mark: dict[str, Any], lookback: float | str | None, column: str) -> Any:
    """The value ``lookback`` behind the watermark ``mark`` (the watermark itself without a lookback), or
    SpecError when the lookback does not fit the column (a duration for numbers, a number for times)."""
    value = decode_watermark(mark)
    if lookback is None:
        return value
    kind = mark["type"]
    if kind in ("int", "float", "decimal"):
        if isinstance(lookback, str):
            raise SpecError(f"data.incremental.lookback {lookback!r} is a duration, but the column {column!r} holds "
                            "numbers", hint="give lookback as a number of the column's units (e.g. lookback: 100)")
        if kind == "decimal":
            return value - Decimal(str(lookback))
        return value - lookback if kind == "float" or not float(lookback).is_integer() else value - int(lookback)
    if not isinstance(lookback, str):
        raise SpecError(f"data.incremental.lookback {lookback!r} is a number, but the column {column!r} holds times",
                        hint="give lookback as a duration such as 15m, 1h or 2d")
    delta = timedelta(seconds=duration_seconds(lookback))
    if kind == "datetime":
        return value - delta
    if kind == "date":
        return value - timedelta(days=-(-delta.total_seconds() // 86_400))  # whole days, rounded up
    try:  # ISO 8601 text (SQLite keeps times as text): written back in the same form, so that it compares
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise SpecError(f"data.incremental.lookback needs times, but the column {column!r} holds text that is not "
                        f"ISO 8601 ({value[:40]!r})", hint="remove lookback, or use a column of times") from None
    sep = value[10] if len(value) > 10 else "T"
    spec = "microseconds" if "." in value[10:] else "seconds"
    out = stamp - delta
    return out.date().isoformat() if len(value) == 10 else out.isoformat(sep=sep, timespec=spec)


def check_orderable(series: pd.Series) -> None:
    """SourceError unless the incremental column holds values with an order: numbers, times, dates or text."""
    if pd.api.types.is_bool_dtype(series.dtype):
        what = "booleans"
    elif pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_datetime64_any_dtype(series.dtype):
        return
    else:
        what = pd.api.types.infer_dtype(series, skipna=True)
        if what in ("string", "date", "datetime", "integer", "decimal", "floating", "empty"):
            return
        what = f"{what} values"
    raise SourceError(f"data.incremental.column {series.name!r} holds {what}, which have no order to keep a "
                      "watermark by", hint="use a column that grows with new rows: a timestamp or an increasing id")


# -- merging and windows ---------------------------------------------------------------------------------

def _row_hashes(df: pd.DataFrame) -> pd.Series:
    try:
        return pd.util.hash_pandas_object(df, index=False)
    except TypeError:  # unhashable cells (lists from JSON columns): compare their text
        return pd.util.hash_pandas_object(df.astype(str), index=False)


def unseen_rows(new: pd.DataFrame, previous: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of ``new`` not already collected, identical, in ``previous`` (the rows a lookback re-read)."""
    if not previous or new.empty:
        return new
    seen: set[int] = set()
    for frame in previous:
        if list(frame.columns) == list(new.columns):
            seen.update(_row_hashes(frame).tolist())
    return new[~_row_hashes(new).isin(seen).to_numpy()].reset_index(drop=True)


def merge_batches(batches: list[pd.DataFrame], column: str, key: str | None) -> pd.DataFrame:
    """The union of ``batches`` (in collection order) in the order of ``column``: with ``key``, one row per
    key, the one with the largest ``column`` (the last collected on a tie); without, identical rows once."""
    table = pd.concat(batches, ignore_index=True) if len(batches) > 1 else batches[0].reset_index(drop=True)
    # Batches come sorted, each past the one before (without a lookback): a stable sort of rows already in
    # order leaves them as they are, so it is skipped when a check in one pass finds them so.
    if not table[column].is_monotonic_increasing:
        table = table.sort_values(column, kind="stable", na_position="first").reset_index(drop=True)
    if key is not None:
        if key not in table.columns:
            raise SourceError(f"data.incremental.key {key!r} is not a column of the collected rows (columns: "
                              f"{', '.join(map(str, table.columns[:20]))})", hint=_INCREMENTAL_HINT)
        return table.drop_duplicates(subset=[key], keep="last").reset_index(drop=True)
    try:
        # Identical rows have the same value of the column: only rows whose value repeats are compared whole
        # (hashing every cell of every row collected so far, on every collection, would cost the most).
        repeated = table[column].duplicated(keep=False).to_numpy()
        if not repeated.any():
            return table
        drop = np.zeros(len(table), dtype=bool)
        drop[repeated] = table[repeated].duplicated(keep="first").to_numpy()
        return table[~drop].reset_index(drop=True)
    except TypeError:  # unhashable cells
        return table[~table.astype(str).duplicated(keep="first")].reset_index(drop=True)


def apply_window(df: pd.DataFrame, window: WindowSpec, time_column: str | None, now: datetime,
                 *, numeric_time: bool = True) -> pd.DataFrame:
    """The rows of ``df`` that ``window`` keeps: those of the last ``last_days`` before ``now`` (by
    ``time_column``), then the newest ``last_rows`` (by ``time_column``, else the last rows). The rows keep
    their order. ``numeric_time``: whether numbers in the time column may be read as years or epoch seconds
    (not for an incremental id column)."""
    if window.last_days is None and window.last_rows is None:
        return df
    times = None
    if time_column is not None and time_column in df.columns:
        column = df[time_column]
        if window.last_days is not None and not numeric_time and pd.api.types.is_numeric_dtype(column.dtype):
            raise SpecError(f"data.window.last_days needs a time column, but {time_column!r} holds numbers",
                            hint="name the time column in data.time, or use window: {last_rows: N}")
        times = parse_times(column) if (window.last_days is not None or not
                                        pd.api.types.is_numeric_dtype(column.dtype)) else column
    if window.last_days is not None and times is not None:
        keep = (times >= pd.Timestamp(now) - pd.Timedelta(days=window.last_days)).to_numpy()
        df, times = df[keep], times[keep]
    if window.last_rows is not None and len(df) > window.last_rows:
        if times is None:
            df = df.tail(window.last_rows)
        else:
            order = np.argsort(times.to_numpy(), kind="stable")
            df = df.iloc[np.sort(order[-window.last_rows:])]
    return df.reset_index(drop=True)


# -- one collection --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Increment:
    """What one incremental collection found: the batch of new rows (None when there were none) and the watermark
    after it. The table to train on is not made here: a collection costs the new rows, whatever was collected
    before (:func:`training_table` makes the table where a run needs it)."""

    batch: tuple[SnapshotInfo, bytes] | None
    watermark: dict[str, Any] | None
    new_rows: int
    message: str


def sql_source_for(data: DataSpec) -> None:
    """SourceError unless ``data.source`` is read by the SQL source (the only one that takes a watermark)."""
    from tidal.data.sources.sql import SqlSource

    source = data.source
    claimed = resolve_source(source) if isinstance(source, str) else None
    if not isinstance(claimed, SqlSource):
        what = f"the {claimed.name} source" if claimed is not None else "no SQL source"
        raise SourceError(f"data.incremental needs a SQL source, but data.source {str(source)[:80]!r} is read by "
                          f"{what}", hint="use a SQLAlchemy URL (postgresql+psycopg://..., mysql+pymysql://..., "
                                          "sqlite:///...) with data.query, or remove data.incremental")


def collect_increment(data: DataSpec, *, base_dir: Path, project: str, created_at: datetime,
                      watermark: dict[str, Any] | None, previous: list[pd.DataFrame],
                      check: Callable[[pd.DataFrame], None] | None = None) -> Increment:
    """Read the rows past ``watermark`` (less ``data.incremental.lookback``) and make the new ones a batch
    snapshot. ``previous``: the batches collected before that a lookback may read rows of again (none are needed
    without a lookback: every row past the watermark is new). EmptySourceError when there are no rows at all
    (nothing collected before, none now). ``check``: called with the new rows before anything is made of them
    (the loop validates a batch there, so that a batch of another type is refused by the schema's checks rather
    than failing as a table that cannot be stored)."""
    from tidal.data.sources.sql import read_after

    inc = data.incremental
    if inc is None:
        raise SpecError("data.incremental is not set", hint=_INCREMENTAL_HINT)
    sql_source_for(data)
    after = None if watermark is None else behind(watermark, inc.lookback, inc.column)
    assert isinstance(data.source, str)  # sql_source_for refused anything else
    rows = read_after(data.source, base_dir=base_dir, query=data.query, column=inc.column, after=after)
    if len(rows):
        check_orderable(rows[inc.column])
    if inc.key is not None and inc.key not in rows.columns:  # found now, not when a run merges the batches
        raise SourceError(f"data.incremental.key {inc.key!r} is not a column of the collected rows (columns: "
                          f"{', '.join(map(str, rows.columns[:20]))})", hint=_INCREMENTAL_HINT)
    # Without a lookback every row read is past the watermark, the largest value collected: none can be one
    # collected before, so the rows collected are not hashed again on every collection.
    new = unseen_rows(rows, previous) if inc.lookback is not None else rows
    if not len(new):
        if watermark is None:  # the watermark moves with the first batch: None means nothing was ever collected
            raise EmptySourceError(f"the query on {data.source!r} returned no rows with {inc.column} set",
                                   hint="check data.query, and that data.incremental.column is filled in")
        return Increment(batch=None, watermark=watermark, new_rows=0,
                         message=f"no new rows since {show_watermark(watermark)}")
    new = new.sort_values(inc.column, kind="stable").reset_index(drop=True)
    if check is not None:
        check(new)
    try:
        top = encode_watermark(new[inc.column].max())
    except (TypeError, InvalidOperation) as exc:
        raise SourceError(f"data.incremental.column {inc.column!r} holds values that cannot be a watermark: "
                          f"{exc}", hint="use a column of timestamps, dates, numbers or ISO 8601 text") from exc
    mark = top if watermark is None or decode_watermark(watermark) < decode_watermark(top) else watermark
    info, payload = make_snapshot(new, project=project, source=data.source, created_at=created_at)
    info = replace(info, profile={**info.profile, "incremental": {
        "column": inc.column, "after": None if watermark is None else watermark["value"],
        "watermark": mark["value"]}})
    return Increment(batch=(info, payload), watermark=mark, new_rows=len(new),
                     message=f"collected {len(new)} new rows since {show_watermark(watermark)} "
                             f"(watermark {show_watermark(mark)})")


# -- the table a run trains on ---------------------------------------------------------------------------

def table_manifest(data: DataSpec, batches: list[str]) -> str:
    """The identity of the table a run trains on, before it is made: a digest over the batch snapshots' digests
    in collection order and what merges and cuts them (``data.incremental.column`` and ``key``, ``data.window``,
    ``data.time``). The same batches give the same manifest, and so the same table; with ``last_days`` the table
    also depends on the time it is made, so the manifest names it only together with that time."""
    inc = data.incremental
    if inc is None:
        raise SpecError("data.incremental is not set", hint=_INCREMENTAL_HINT)
    return digest_of({"manifest": 1, "batches": list(batches), "column": inc.column, "key": inc.key,
                      "window": data.window.model_dump(mode="json"), "time": data.time})


def training_table(data: DataSpec, frames: list[pd.DataFrame], *, project: str, created_at: datetime,
                   batch: tuple[SnapshotInfo, bytes] | None = None) -> tuple[SnapshotInfo, bytes]:
    """The snapshot of the table a run trains on: ``frames`` (every batch, in collection order) merged
    (:func:`merge_batches`), then cut to ``data.window``. ``batch``: when ``frames`` is that one batch (the
    first collection), its snapshot, reused as the table's when no row is dropped (the same bytes). SourceError
    when there are no rows (EmptySourceError) or the window keeps none."""
    inc = data.incremental
    if inc is None:
        raise SpecError("data.incremental is not set", hint=_INCREMENTAL_HINT)
    if not frames:
        raise EmptySourceError(f"the query on {str(data.source)!r} returned no rows with {inc.column} set",
                               hint="check data.query, and that data.incremental.column is filled in")
    table = window_table(merge_batches(frames, inc.column, inc.key), data, created_at)
    if batch is not None and len(frames) == 1 and len(table) == len(frames[0]):
        # The first batch, none of its rows dropped: the table is the batch (both in the column's order, the
        # batch sorted stably, the merge too), so the same bytes; only the batch's note on the watermark differs.
        return replace(batch[0], profile={k: v for k, v in batch[0].profile.items() if k != "incremental"}), batch[1]
    return make_snapshot(table, project=project, source=str(data.source), created_at=created_at)


def window_table(df: pd.DataFrame, data: DataSpec, now: datetime) -> pd.DataFrame:
    """``df`` cut to ``data.window`` by ``data.time`` (else the incremental column); SourceError when the
    window holds no rows."""
    window = data.window
    if window.last_rows is None and window.last_days is None:
        return df
    column = data.time or (data.incremental.column if data.incremental else None)
    out = apply_window(df, window, column, now, numeric_time=data.time is not None)
    if out.empty:
        raise EmptySourceError(f"data.window keeps none of the {len(df)} rows (last_days {window.last_days} before "
                               f"{now:%Y-%m-%d %H:%M} by {column!r})",
                               hint="widen data.window, or check that the time column holds recent times")
    return out


__all__ = [
    "Increment",
    "apply_window",
    "behind",
    "check_orderable",
    "collect_increment",
    "decode_watermark",
    "encode_watermark",
    "merge_batches",
    "show_watermark",
    "sql_source_for",
    "table_manifest",
    "training_table",
    "unseen_rows",
]
