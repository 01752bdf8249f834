"""Incremental collection on real SQLite files: the watermark (bound, never formatted into the SQL), the merge of
batches by key, the window, the lookback, and every bad input as one clear line."""

from __future__ import annotations

import os
import sqlite3
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tidal.core.errors import SourceError, SpecError
from tidal.data.incremental import (
    apply_window,
    behind,
    collect_increment,
    decode_watermark,
    encode_watermark,
    merge_batches,
    table_manifest,
    training_table,
    unseen_rows,
)
from tidal.data.snapshot import read_snapshot_bytes
from tidal.data.sources import EmptySourceError
from tidal.spec import SpecValidationError, parse_spec
from tidal.spec.model import DataSpec
from tidal.spec.policy import WindowSpec

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
POSTGRES_URL = os.environ.get("TIDAL_TEST_POSTGRES_URL")


def _db(tmp_path: Path, rows: list[tuple[Any, ...]], ddl: str = "id INTEGER, name TEXT, flag BOOLEAN, blob BLOB, "
        "label INTEGER") -> str:
    path = tmp_path / "src.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS t ({ddl})")
        conn.executemany(f"INSERT INTO t VALUES ({', '.join('?' * len(rows[0]))})", rows)
    conn.close()
    return f"sqlite:///{path}"


def _data(url: str, **incremental: Any) -> DataSpec:
    window = incremental.pop("window", "all")
    return DataSpec(source=url, query="SELECT * FROM t", target="label", incremental=incremental, window=window)


def _collect(data: DataSpec, tmp_path: Path, watermark: dict[str, Any] | None = None,
             previous: list[pd.DataFrame] | None = None) -> Any:
    return collect_increment(data, base_dir=tmp_path, project="p", created_at=NOW, watermark=watermark,
                             previous=previous or [])


def _table(data: DataSpec, *collections: Any) -> pd.DataFrame:
    """The table a run trains on after ``collections``: their batches, as stored, merged and windowed."""
    frames = [read_snapshot_bytes(c.batch[1]) for c in collections if c.batch is not None]
    return read_snapshot_bytes(training_table(data, frames, project="p", created_at=NOW)[1])


def test_a_watermark_is_bound_as_a_parameter_so_text_cannot_inject_sql(tmp_path: Path) -> None:
    url = _db(tmp_path, [(1, "a", 0, b"x", 0), (2, "b'; DROP TABLE t; --", 1, b"y", 1)])
    data = _data(url, column="name")
    first = _collect(data, tmp_path)
    assert first.new_rows == 2 and first.watermark == {"type": "text", "value": "b'; DROP TABLE t; --"}
    _db(tmp_path, [(3, "c", 0, b"z", 0)])
    second = _collect(data, tmp_path, first.watermark, [read_snapshot_bytes(first.batch[1])])
    assert second.new_rows == 1 and second.message == "collected 1 new rows since b'; DROP TABLE t; -- (watermark c)"
    assert list(_table(data, first, second)["id"]) == [1, 2, 3]
    with sqlite3.connect(tmp_path / "src.db") as conn:  # the table is still there, with its rows
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (3,)
    conn.close()


def test_nothing_new_is_a_message_and_no_batch(tmp_path: Path) -> None:
    url = _db(tmp_path, [(1, "a", 0, b"x", 0), (2, "b", 1, b"y", 1)])
    data = _data(url, column="id")
    first = _collect(data, tmp_path)
    again = _collect(data, tmp_path, first.watermark, [read_snapshot_bytes(first.batch[1])])
    assert again.batch is None and again.new_rows == 0 and again.message == "no new rows since 2"
    assert again.watermark == first.watermark
    # the same batches: the same manifest, and the same table
    assert table_manifest(data, [first.batch[0].digest]) == table_manifest(data, [first.batch[0].digest])
    assert _table(data, first, again).equals(_table(data, first))


def test_a_query_with_colons_and_percent_signs_runs_as_written(tmp_path: Path) -> None:
    url = _db(tmp_path, [(1, "a%", 0, b"x", 0), (2, "10:30", 1, b"y", 1)])
    data = DataSpec(source=url, target="label", incremental={"column": "id"},
                    query="SELECT id, name, label, '10:30' AS at FROM t WHERE name LIKE '%' OR name = ':x'")
    out = _collect(data, tmp_path, {"type": "int", "value": 1})
    table = read_snapshot_bytes(out.batch[1])
    assert list(table["id"]) == [2] and list(table["at"]) == ["10:30"]


@pytest.mark.parametrize(("spec", "message"), [
    ({"column": "nope"}, "data.incremental.column 'nope' is not a column of the query on sqlite:///"),
    ({"column": "blob"}, "data.incremental.column 'blob' holds bytes values, which have no order"),
    ({"column": "id", "key": "nokey"}, "data.incremental.key 'nokey' is not a column of the collected rows"),
])
def test_a_bad_column_is_one_line(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    url = _db(tmp_path, [(1, "a", 0, b"x", 0), (2, "b", 1, b"y", 1)])
    with pytest.raises(SourceError) as err:
        _collect(_data(url, **spec), tmp_path)
    assert str(err.value).startswith(message), str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.postgres
@pytest.mark.skipif(not POSTGRES_URL, reason="set TIDAL_TEST_POSTGRES_URL (e.g. "
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test) to run on PostgreSQL")
@pytest.mark.parametrize(("column", "what"), [("flag", "booleans"), ("doc", "mixed values")])
def test_a_column_without_an_order_is_refused_on_postgres(tmp_path: Path, column: str, what: str) -> None:
    import sqlalchemy as sa

    assert POSTGRES_URL
    name = f"tidal_inc_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(POSTGRES_URL)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {name} (id int, flag boolean, doc jsonb, label int)"))
            conn.execute(sa.text(f"""INSERT INTO {name} VALUES (1, true, '{{"a": 1}}', 0)"""))
        data = DataSpec(source=POSTGRES_URL, query=f"SELECT * FROM {name}", target="label",
                        incremental={"column": column})
        with pytest.raises(SourceError, match=f"data.incremental.column '{column}' holds {what}, which have no "
                                              "order to keep a watermark by — use a column that grows"):
            _collect(data, tmp_path)
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()


def test_incremental_on_a_file_source_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("id,label\n1,0\n")
    data = DataSpec(source="d.csv", target="label", incremental={"column": "id"})
    with pytest.raises(SourceError, match=r"data.incremental needs a SQL source, but data.source 'd.csv' is read by "
                                          r"the csv source — use a SQLAlchemy URL"):
        _collect(data, tmp_path)


def test_an_empty_source_is_refused_but_an_empty_collection_after_rows_is_not(tmp_path: Path) -> None:
    url = _db(tmp_path, [(None, "a", 0, b"x", 0)])  # its only row has no id: nothing to collect
    with pytest.raises(EmptySourceError, match="returned no rows with id set"):
        _collect(_data(url, column="id"), tmp_path)


def test_a_lookback_that_does_not_fit_the_column_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="lookback '1h' is a duration, but the column 'id' holds numbers"):
        behind({"type": "int", "value": 10}, "1h", "id")
    with pytest.raises(SpecError, match="lookback 5 is a number, but the column 'at' holds times"):
        behind({"type": "datetime", "value": "2026-01-01T00:00:00"}, 5, "at")


def test_lookback_steps_back_in_the_column_s_own_type() -> None:
    assert behind({"type": "int", "value": 10}, 3, "id") == 7
    assert behind({"type": "decimal", "value": "10.5"}, 0.5, "id") == Decimal("10.0")
    assert behind({"type": "datetime", "value": "2026-01-01T01:00:00+00:00"}, "90m", "at") == \
        datetime(2025, 12, 31, 23, 30, tzinfo=UTC)
    assert behind({"type": "date", "value": "2026-01-03"}, "1h", "d") == date(2026, 1, 2)
    assert behind({"type": "text", "value": "2026-01-01 01:00:00.000000"}, "1h", "at") == "2026-01-01 00:00:00.000000"
    assert behind({"type": "text", "value": "2026-01-01T01:00:00"}, "1d", "at") == "2025-12-31T01:00:00"


@pytest.mark.parametrize("value", [datetime(2026, 1, 1, 8, 30, tzinfo=UTC), datetime(2026, 1, 1, 8, 30),
                                   date(2026, 1, 1), 42, 4.5, Decimal("1.25"), "2026-01-01"])
def test_a_watermark_round_trips_with_its_type(value: Any) -> None:
    assert decode_watermark(encode_watermark(value)) == value
    assert type(decode_watermark(encode_watermark(value))) is type(value)


def test_merge_keeps_the_newest_version_of_a_key_and_without_a_key_both() -> None:
    old = pd.DataFrame({"id": [1, 2], "at": [1, 2], "label": [0, 0]})
    new = pd.DataFrame({"id": [3, 1], "at": [3, 4], "label": [1, 1]})
    keyed = merge_batches([old, new], "at", "id")
    assert keyed.to_dict("list") == {"id": [2, 3, 1], "at": [2, 3, 4], "label": [0, 1, 1]}
    unkeyed = merge_batches([old, new, old.iloc[[0]]], "at", None)  # identical rows once, both versions of id 1
    assert unkeyed.to_dict("list") == {"id": [1, 2, 3, 1], "at": [1, 2, 3, 4], "label": [0, 0, 1, 1]}


def test_unseen_rows_drops_the_rows_a_lookback_read_again() -> None:
    seen = pd.DataFrame({"id": [1, 2], "at": [1, 2]})
    again = pd.DataFrame({"id": [2, 5, 1], "at": [2, 1, 9]})  # 2 unchanged, 5 late, 1 updated
    assert unseen_rows(again, [seen]).to_dict("list") == {"id": [5, 1], "at": [1, 9]}


def test_the_window_keeps_the_newest_rows_by_time_in_their_order() -> None:
    df = pd.DataFrame({"at": pd.to_datetime(["2026-04-30", "2026-04-01", "2026-04-29", "2026-04-20"], utc=True),
                       "x": [1, 2, 3, 4]})
    assert list(apply_window(df, WindowSpec(last_rows=10), "at", NOW)["x"]) == [1, 2, 3, 4]
    assert list(apply_window(df, WindowSpec(last_days=3), "at", NOW)["x"]) == [1, 3]
    assert list(apply_window(pd.concat([df] * 5, ignore_index=True), WindowSpec(last_rows=10), "at", NOW)["x"]) == \
        [1, 3, 1, 3, 1, 3, 1, 3, 1, 3]
    assert list(apply_window(df, WindowSpec(last_rows=10), None, NOW)["x"]) == [1, 2, 3, 4]
    with pytest.raises(SpecError, match="last_days needs a time column, but 'x' holds numbers"):
        apply_window(df, WindowSpec(last_days=3), "x", NOW, numeric_time=False)


def test_an_empty_window_is_one_line(tmp_path: Path) -> None:
    old = (NOW - timedelta(days=40)).isoformat()
    url = _db(tmp_path, [(1, old, 0, b"x", 0), (2, old, 1, b"y", 1)])
    data = _data(url, column="name", window={"last_days": 7})
    first = _collect(data, tmp_path)  # a collection stores the batch; the run's table is where the window bites
    assert first.new_rows == 2
    with pytest.raises(EmptySourceError, match=r"data.window keeps none of the 2 rows \(last_days 7.0 before "
                                                r"2026-05-01 12:00 by 'name'\)"):
        _table(data, first)


SPEC = """version: 1
name: p
data:
  source: sqlite:///x.db
  target: label
  {data}
model: {{estimator: sklearn.linear_model.LogisticRegression}}
"""


@pytest.mark.parametrize(("data", "message"), [
    ("window: {last_days: 3}", "data.window.last_days: last_days needs a time column; data.time is null"),
    ("incremental: {column: label}", "data.incremental.column: 'label' is also the target"),
    ("incremental: {column: id, lookback: 1 hour}", "data.incremental.lookback: '1 hour' is not a duration"),
    ("incremental: {column: id, lookback: -1}", "data.incremental.lookback: -1 is not a lookback"),
    ("incremental: {column: id, lookback: true}", "data.incremental.lookback: true is not a lookback"),
    ("incremental: {key: id}", "data.incremental.column: required key missing"),
    ("window: {rows: 5}", "data.window.rows: unknown key"),
])
def test_bad_spec_keys_are_one_line(data: str, message: str) -> None:
    with pytest.raises(SpecValidationError) as err:
        parse_spec(SPEC.format(data=data))
    assert message in str(err.value), str(err.value)


def test_the_window_applies_to_a_file_source_too(tmp_path: Path) -> None:
    from tidal.data.steps import collect

    lines = [f"{i},2026-04-{i:02d},{i % 2}" for i in range(1, 31)]
    (tmp_path / "d.csv").write_text("id,day,label\n" + "\n".join(reversed(lines)) + "\n")  # newest first
    data = DataSpec(source="d.csv", target="label", time="day", window={"last_rows": 10, "last_days": 5.5})
    payload = collect(data, base_dir=tmp_path, project="p", created_at=NOW)[1]
    # 5.5 days before noon on 1 May is 26 Apr 00:00; the newest first, as the file has them
    assert list(read_snapshot_bytes(payload)["id"]) == [30, 29, 28, 27, 26]
    data = DataSpec(source="d.csv", target="label", window={"last_rows": 10})  # no time: the last rows as read
    assert list(read_snapshot_bytes(collect(data, base_dir=tmp_path, project="p", created_at=NOW)[1])["id"]) == \
        list(range(10, 0, -1))


def test_the_first_batch_is_the_table_snapshotted_once(tmp_path: Path) -> None:
    """The first collection, none of its rows dropped: the table's snapshot is the batch's bytes (made once),
    and its info is what ``make_snapshot`` of the table gives — the batch's note on the watermark aside."""
    from tidal.data.snapshot import make_snapshot

    url = _db(tmp_path, [(3, "c", 0, b"z", 1), (1, "a", 1, b"x", 0), (2, "b", None, None, 1)])
    data = _data(url, column="id")
    first = _collect(data, tmp_path)
    (batch, batch_bytes) = first.batch
    table, table_bytes = training_table(data, [read_snapshot_bytes(batch_bytes)], project="p", created_at=NOW,
                                        batch=first.batch)
    assert table.digest == batch.digest and table_bytes == batch_bytes
    assert "incremental" in batch.profile and "incremental" not in table.profile
    made, made_bytes = make_snapshot(read_snapshot_bytes(table_bytes), project="p", source=url, created_at=NOW)
    assert made_bytes == table_bytes and made == table
    # a duplicate row dropped by the merge: the table is not the batch, and is snapshotted on its own
    (tmp_path / "dup").mkdir()
    url = _db(tmp_path / "dup", [(1, "a", 1, b"x", 0), (1, "a", 1, b"x", 0)])
    data = _data(url, column="id")
    dup = _collect(data, tmp_path)
    dup_table = training_table(data, [read_snapshot_bytes(dup.batch[1])], project="p", created_at=NOW,
                               batch=dup.batch)[0]
    assert dup.batch[0].rows == 2 and dup_table.rows == 1 and dup_table.digest != dup.batch[0].digest


def test_without_a_lookback_the_rows_past_the_watermark_are_all_new(tmp_path: Path) -> None:
    """Every row past the watermark is new (the rows collected before are at most the watermark), so a row equal
    to one collected before, but for the incremental column, is collected."""
    url = _db(tmp_path, [(1, "a", 0, b"x", 0), (2, "b", 1, b"y", 1)])
    data = _data(url, column="id")
    first = _collect(data, tmp_path)
    _db(tmp_path, [(3, "a", 0, b"x", 0)])
    second = _collect(data, tmp_path, first.watermark, [read_snapshot_bytes(first.batch[1])])
    assert second.new_rows == 1 and second.watermark == {"type": "int", "value": 3}
    assert list(_table(data, first, second)["id"]) == [1, 2, 3]


def _merged_by_sorting_and_hashing_all(batches: list[pd.DataFrame], column: str, key: str | None) -> pd.DataFrame:
    table = pd.concat(batches, ignore_index=True).sort_values(column, kind="stable", na_position="first")
    table = table.reset_index(drop=True)
    if key is not None:
        return table.drop_duplicates(subset=[key], keep="last").reset_index(drop=True)
    return table.drop_duplicates(keep="first").reset_index(drop=True)


def test_the_merge_is_a_stable_sort_then_a_drop_of_identical_rows() -> None:
    """``merge_batches`` skips the sort of rows already in order and compares whole rows only where the column
    repeats: the same table as sorting and hashing everything, on batches in or out of order, with nulls in the
    column, repeated rows within and across batches, text and numbers."""
    import numpy as np

    rng = np.random.default_rng(11)
    for _ in range(150):
        batches = []
        for _ in range(int(rng.integers(1, 4))):
            n = int(rng.integers(1, 25))
            times = rng.integers(0, 8, n).astype(float)
            times[rng.random(n) < 0.1] = np.nan
            batch = pd.DataFrame({"t": times, "a": rng.integers(0, 2, n), "k": rng.integers(0, 5, n),
                                  "s": pd.array(rng.choice(["x", "y", None], n), dtype="str")})
            batches.append(batch.sort_values("t", kind="stable") if rng.random() < 0.5 else batch)
        for key in (None, "k"):
            pd.testing.assert_frame_equal(merge_batches(batches, "t", key),
                                          _merged_by_sorting_and_hashing_all(batches, "t", key))
