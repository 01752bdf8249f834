"""Snapshots: a table frozen as canonical Parquet bytes, identified by their sha256.

Canonical means the same data always gives the same bytes, so the same digest:

- the row index is dropped (row *order* is data and is kept; row *labels* are not), and so is how Arrow
  holds a column in memory (one chunk or several: the writer cuts pages where chunks break);
- string columns are written as one Arrow type (``string``) whether pandas held them as ``str`` or as
  an ``object`` column of strings (both read back as ``str``), and categories' dictionaries likewise;
- the only schema metadata is tidal's own ``{column: pandas dtype}`` map (canonical JSON) — pandas'
  metadata is dropped because it records the pandas and pyarrow versions;
- the writer options are fixed: zstd level 3, dictionary encoding, statistics, one row group per
  1,048,576 rows, Parquet format 2.6, data page v1, no page index.

The Parquet footer carries the writer's name and version (``created_by: parquet-cpp-arrow version
N``), which pyarrow offers no way to set; the digest is therefore stable for a given pyarrow version,
and data snapshotted again after a pyarrow upgrade may get a new digest (a one-time cache miss, never a
wrong hit).
"""

from __future__ import annotations

import io
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from tidal.core.entities import SnapshotInfo
from tidal.core.errors import DataError
from tidal.core.hashing import canonical_json, sha256_bytes
from tidal.data.profile import profile_frame
from tidal.data.schema import column_kind

DTYPES_KEY = b"tidal.dtypes"
_WRITE_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 1 << 20,
    "version": "2.6",
    "data_page_version": "1.0",
    "write_page_index": False,
    "store_schema": True,
}


def _canonical_type(t: pa.DataType) -> pa.DataType:
    # pandas' str dtype becomes large_string, an object column of str becomes string: make them one.
    if pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pa.string()
    if pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return pa.binary()
    if pa.types.is_dictionary(t):
        return pa.dictionary(t.index_type, _canonical_type(t.value_type), t.ordered)
    return t


def to_canonical_table(df: pd.DataFrame) -> pa.Table:
    """``df`` as an Arrow table in canonical form (see the module docstring); ``DataError`` if a column
    cannot be stored (non-string or duplicate names, values of mixed types)."""
    names = list(df.columns)
    bad = [c for c in names if not isinstance(c, str)]
    if bad:
        raise DataError(f"column names must be strings, got {bad[:5]!r}", hint="rename the columns")
    if len(set(names)) != len(names):
        dupes = sorted({c for c in names if names.count(c) > 1})
        raise DataError(f"duplicate column names: {dupes}", hint="give every column a distinct name")
    try:
        table = pa.Table.from_pandas(df, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"the table cannot be stored as Parquet: {exc}",
            hint="make each column hold one type (numbers or text, not both)",
        ) from exc
    schema = pa.schema([pa.field(f.name, _canonical_type(f.type), f.nullable) for f in table.schema])
    dtypes = {f.name: _dtype_name(df[f.name], f.type) for f in schema}
    table = table.cast(schema) if schema != table.schema.remove_metadata() else table
    if any(column.num_chunks > 1 for column in table.columns):
        # Where a column's chunks break moves where the Parquet writer cuts its pages, so the same data held in
        # chunks (a CSV read in chunks, a Parquet file of several row groups) would give other bytes: one chunk.
        table = table.combine_chunks()
    return table.replace_schema_metadata({DTYPES_KEY: canonical_json(dtypes).encode()})


def _dtype_name(series: pd.Series, arrow_type: pa.DataType) -> str:
    # An object column of strings is the same data as a str column (pandas 3 reads it back as str).
    if pd.api.types.is_object_dtype(series.dtype) and pa.types.is_string(arrow_type):
        return "str"
    return str(series.dtype)


def canonical_parquet_bytes(df: pd.DataFrame) -> bytes:
    """The canonical Parquet bytes of ``df``: same data (whatever the row index) → same bytes."""
    return _parquet_bytes(to_canonical_table(df))


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, **_WRITE_OPTIONS)
    return buffer.getvalue()


def snapshot_digest(df: pd.DataFrame) -> str:
    """sha256 (hex) of ``canonical_parquet_bytes(df)``: the identity of a snapshot."""
    return sha256_bytes(canonical_parquet_bytes(df))


def read_snapshot_bytes(data: bytes) -> pd.DataFrame:
    """The DataFrame stored in snapshot bytes, with the dtypes it had (a fresh ``RangeIndex``)."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise DataError(
            f"not a snapshot (unreadable Parquet): {exc}", hint="the stored bytes are corrupt"
        ) from exc
    raw = (table.schema.metadata or {}).get(DTYPES_KEY)
    df = table.to_pandas()
    if raw:
        for name, dtype in json.loads(raw).items():
            if name in df.columns and str(df[name].dtype) != dtype:
                df[name] = _restore(df[name], dtype)
    return df


def _restore(series: pd.Series, dtype: str) -> pd.Series:
    # Arrow alone loses pandas' nullable dtypes (Int64 → float64, boolean → object) and object columns.
    try:
        return series.astype(dtype)
    except (TypeError, ValueError):  # a dtype this pandas cannot name: keep what Arrow gave
        return series


def make_snapshot(
    df: pd.DataFrame, *, project: str, source: str, created_at: datetime, profile: dict[str, Any] | None = None
) -> tuple[SnapshotInfo, bytes]:
    """Freeze ``df``: its canonical Parquet bytes, and the ``SnapshotInfo`` describing them (digest,
    rows, columns, ``{column: kind}`` schema, statistics profile). The caller stores both. ``profile``: the
    statistics profile of ``df`` when the caller holds it already (``profile_frame(df)``: the profile of
    another snapshot of the same rows, say), so that it is not computed twice."""
    table = to_canonical_table(df)
    # Encoding the Parquet bytes (Arrow, outside the GIL) and profiling the frame (numpy and Arrow kernels) are
    # independent reads of the same data: done side by side, a snapshot costs about the longer of the two.
    # The writer thread touches only the Arrow table, never the DataFrame.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tidal-snapshot") as pool:
        writing = pool.submit(_parquet_bytes, table)
        schema: dict[str, str] = {str(name): column_kind(df[name]) for name in df.columns}
        if profile is None:
            profile = profile_frame(df, arrow=table)
        data = writing.result()
    info = SnapshotInfo(
        digest=sha256_bytes(data),
        project=project,
        source=source,
        rows=len(df),
        columns=[str(c) for c in df.columns],
        schema=schema,
        profile=profile,
        created_at=created_at,
    )
    return info, data


__all__ = [
    "canonical_parquet_bytes",
    "make_snapshot",
    "read_snapshot_bytes",
    "snapshot_digest",
    "to_canonical_table",
]
