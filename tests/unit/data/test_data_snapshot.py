"""Snapshots: canonical bytes, digests that mean "same data", lossless round trips."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import pandas as hpd

from tidal.core.entities import SnapshotInfo
from tidal.core.errors import DataError
from tidal.core.hashing import sha256_bytes
from tidal.data.profile import profile_frame
from tidal.data.snapshot import (
    canonical_parquet_bytes,
    make_snapshot,
    read_snapshot_bytes,
    snapshot_digest,
)
from tidal.data.sources import read_source

ELEC2_DIR = Path(__file__).resolve().parents[3] / "examples" / "elec2"
NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


def _all_dtypes() -> pd.DataFrame:
    return pd.DataFrame({
        "f": [1.5, np.nan, -3.25],
        "f32": np.array([1, 2, 3], dtype="float32"),
        "i": [1, 2, 3],
        "i8": np.array([1, 2, 3], dtype="int8"),
        "u": np.array([1, 2, 3], dtype="uint64"),
        "b": [True, False, True],
        "s": pd.Series(["a", None, "c"], dtype="str"),
        "cat": pd.Categorical(["x", "y", "x"], categories=["y", "x", "z"], ordered=True),
        "t": pd.to_datetime(["2024-01-01", None, "2024-03-01 12:00"], format="ISO8601"),
        "tz": pd.to_datetime(["2024-01-01", "2024-02-01", "2024-03-01"]).tz_localize("Europe/Paris"),
        "td": pd.to_timedelta([1, None, 3], unit="s"),
        "I": pd.array([1, None, 3], dtype="Int64"),
        "B": pd.array([True, None, False], dtype="boolean"),
        "S": pd.array(["p", None, "q"], dtype="string"),
    })


def test_same_data_same_bytes_and_digest() -> None:
    df = _all_dtypes()
    assert canonical_parquet_bytes(df) == canonical_parquet_bytes(df.copy())
    assert snapshot_digest(df) == sha256_bytes(canonical_parquet_bytes(df))


def test_the_row_index_does_not_matter() -> None:
    df = _all_dtypes()
    assert snapshot_digest(df) == snapshot_digest(df.set_axis([10, 20, 30]))
    assert snapshot_digest(df) == snapshot_digest(df.set_index(pd.Index(["a", "b", "c"], name="k")))


def test_a_changed_value_changes_the_digest() -> None:
    df = _all_dtypes()
    changed = df.copy()
    changed.loc[1, "i"] = 4
    assert snapshot_digest(df) != snapshot_digest(changed)


def test_row_order_and_column_order_are_data() -> None:
    df = _all_dtypes()
    assert snapshot_digest(df) != snapshot_digest(df.iloc[::-1])
    assert snapshot_digest(df) != snapshot_digest(df[df.columns[::-1]])


def test_object_strings_and_str_dtype_are_the_same_data() -> None:
    as_str = pd.DataFrame({"s": pd.Series(["a", None], dtype="str")})
    as_object = pd.DataFrame({"s": pd.Series(["a", None], dtype=object)})
    assert snapshot_digest(as_str) == snapshot_digest(as_object)


def test_no_varying_metadata() -> None:
    metadata = pq.read_metadata(io.BytesIO(canonical_parquet_bytes(_all_dtypes())))
    keys = set(metadata.metadata)
    assert b"pandas" not in keys  # it records the pandas version
    assert keys <= {b"tidal.dtypes", b"ARROW:schema"}
    assert metadata.row_group(0).column(0).compression == "ZSTD"


def test_round_trip_keeps_values_and_dtypes() -> None:
    df = _all_dtypes()
    back = read_snapshot_bytes(canonical_parquet_bytes(df.set_axis([7, 8, 9])))
    pd.testing.assert_frame_equal(back, df)
    assert isinstance(back.index, pd.RangeIndex)


def test_round_trip_of_object_columns() -> None:
    df = pd.DataFrame({"s": pd.Series(["a", "b"], dtype=object), "o": [True, None]})
    back = read_snapshot_bytes(canonical_parquet_bytes(df))
    assert str(back["s"].dtype) == "str" and back["s"].tolist() == ["a", "b"]
    assert back["o"].tolist() == [True, None]


def test_elec2_snapshot_is_deterministic_and_round_trips() -> None:
    first = read_source("data/elec2.csv.gz", base_dir=ELEC2_DIR)
    second = read_source("data/elec2.csv.gz", base_dir=ELEC2_DIR)
    info, data = make_snapshot(first, project="elec2", source="data/elec2.csv.gz", created_at=NOW)
    assert info.digest == snapshot_digest(second) == sha256_bytes(data)
    pd.testing.assert_frame_equal(read_snapshot_bytes(data), first)
    changed = second.copy()
    changed.loc[17, "nswprice"] += 1e-9
    assert snapshot_digest(changed) != info.digest


def test_make_snapshot_info() -> None:
    df = _all_dtypes()
    info, data = make_snapshot(df, project="p", source="data/x.csv", created_at=NOW)
    assert isinstance(info, SnapshotInfo)
    assert (info.project, info.source, info.rows, info.created_at) == ("p", "data/x.csv", 3, NOW)
    assert info.columns == list(df.columns)
    assert info.schema == {
        "f": "numeric", "f32": "numeric", "i": "integer", "i8": "integer", "u": "integer", "b": "boolean",
        "s": "categorical", "cat": "categorical", "t": "datetime", "tz": "datetime", "td": "numeric",
        "I": "integer", "B": "boolean", "S": "categorical",
    }
    assert set(info.profile["columns"]) == set(df.columns)
    json.dumps(info.profile, allow_nan=False)  # JSON-ready, no NaN
    assert info.digest == sha256_bytes(data)


def test_how_arrow_chunks_a_column_does_not_change_the_bytes() -> None:
    # a column held in chunks (frames concatenated, a CSV read in chunks, a Parquet file of row groups) is the same
    # data; the writer would cut its pages where the chunks break, so the canonical table holds one chunk a column
    n = 300_000
    df = pd.DataFrame({"id": pd.array(np.arange(n), dtype="int64[pyarrow]"),
                       "value": pd.array(np.arange(n) / 3, dtype="float64[pyarrow]"),
                       "text": np.char.add("reading ", (np.arange(n) * 7919 % 100_003).astype(str))})
    chunked = pd.concat([df.iloc[:123_457], df.iloc[123_457:]], ignore_index=True)
    assert chunked["id"].array.__arrow_array__().num_chunks == 2 and chunked.equals(df)
    assert canonical_parquet_bytes(chunked) == canonical_parquet_bytes(df)


def test_make_snapshot_takes_a_profile_the_caller_holds() -> None:
    df = _all_dtypes()
    info, data = make_snapshot(df, project="p", source="s", created_at=NOW)
    again, same = make_snapshot(df, project="p", source="s", created_at=NOW, profile=profile_frame(df))
    assert (again, same) == (info, data)


def test_tables_that_cannot_be_stored() -> None:
    with pytest.raises(DataError, match="duplicate column names: \\['a'\\]"):
        canonical_parquet_bytes(pd.DataFrame([[1, 2]], columns=["a", "a"]))
    with pytest.raises(DataError, match="column names must be strings"):
        canonical_parquet_bytes(pd.DataFrame({0: [1]}))
    with pytest.raises(DataError, match=r"cannot be stored as Parquet.*one type"):
        canonical_parquet_bytes(pd.DataFrame({"m": pd.Series([1, "a"], dtype=object)}))


def test_corrupt_snapshot_bytes() -> None:
    with pytest.raises(DataError, match="not a snapshot"):
        read_snapshot_bytes(b"not parquet")


# -- properties -----------------------------------------------------------------------------------

_frames = hpd.data_frames(
    columns=[
        hpd.column("f", dtype=float),
        hpd.column("i", dtype=int),
        hpd.column("b", dtype=bool),
        hpd.column("s", elements=st.one_of(st.none(), st.text(max_size=5))),
    ],
    index=hpd.range_indexes(min_size=1, max_size=30),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=_frames, offset=st.integers(-1000, 1000), data=st.data())
def test_digest_ignores_the_index(df: pd.DataFrame, offset: int, data: st.DataObject) -> None:
    df = df.astype({"s": "str"})
    relabelled = df.set_axis(df.index + offset)
    shuffled_labels = df.set_axis(data.draw(st.permutations(list(range(len(df))))))
    digest = snapshot_digest(df)
    assert snapshot_digest(df.copy()) == digest
    assert snapshot_digest(relabelled) == digest
    assert snapshot_digest(shuffled_labels) == digest


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=_frames)
def test_round_trip_property(df: pd.DataFrame) -> None:
    df = df.astype({"s": "str"})
    back = read_snapshot_bytes(canonical_parquet_bytes(df))
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True))
