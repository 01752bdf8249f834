"""``data.incremental`` end to end through the SDK on SQLite, PostgreSQL and MariaDB: rows inserted between
collections, a row updated after it was collected, a late row with an old timestamp, and ``data.window``.

The rows are the real Wisconsin breast cancer measurements (scikit-learn), given an id and an ``updated_at``
(timestamps with and without a time zone) in a uniquely named table that each test drops. PostgreSQL runs when
TIDAL_TEST_POSTGRES_URL is set, MariaDB (or MySQL) when TIDAL_TEST_MYSQL_URL is.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from sklearn.datasets import load_breast_cancer

from tidal import Workspace
from tidal.data.snapshot import read_snapshot_bytes
from tidal.data.timecol import parse_times
from tidal.loop.incremental import read_state

POSTGRES_URL = os.environ.get("TIDAL_TEST_POSTGRES_URL")
MYSQL_URL = os.environ.get("TIDAL_TEST_MYSQL_URL")
needs_postgres = pytest.mark.skipif(not POSTGRES_URL, reason="set TIDAL_TEST_POSTGRES_URL (e.g. "
                                    "postgresql+psycopg://postgres@127.0.0.1:5432/test) to run on PostgreSQL")
needs_mysql = pytest.mark.skipif(not MYSQL_URL, reason="set TIDAL_TEST_MYSQL_URL (e.g. "
                                 "mysql+pymysql://root@127.0.0.1:3306/test) to run on MariaDB or MySQL")
FEATURES = {"mean radius": "f1", "mean texture": "f2", "mean smoothness": "f3", "mean concavity": "f4",
            "worst area": "f5"}
STEP = timedelta(minutes=15)


def _rows() -> list[dict[str, Any]]:
    data = load_breast_cancer(as_frame=True)
    frame = data.frame[[*FEATURES, "target"]].rename(columns={**FEATURES, "target": "label"})
    return [{"id": i, **{k: float(v) for k, v in row.items() if k != "label"}, "label": int(row["label"])}
            for i, row in enumerate(frame.to_dict("records"))]


ROWS = _rows()


class Db:
    """A uniquely named table of ``ROWS`` on one database, with an ``updated_at`` of the given type."""

    def __init__(self, url: str, tmp: Path, *, time: sa.types.TypeEngine[Any] | None, aware: bool) -> None:
        self.engine = sa.create_engine(url)
        self.name = f"tidal_inc_{uuid.uuid4().hex[:10]}"
        self.aware, self.has_time = aware, time is not None
        self.now = datetime.now(UTC).replace(microsecond=0, second=0)
        columns = [sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                   *([sa.Column("updated_at", time, nullable=True)] if time is not None else []),
                   *(sa.Column(f, sa.Double) for f in FEATURES.values()), sa.Column("label", sa.Integer)]
        self.table = sa.Table(self.name, sa.MetaData(), *columns)
        self.table.create(self.engine)
        self.url = url

    def stamp(self, i: int) -> datetime:
        """The time of the i-th row: 15 minutes apart, the 400th row now (row 0 is 100 hours old)."""
        t = self.now - (400 - i) * STEP
        return t if self.aware else t.replace(tzinfo=None)

    def insert(self, ids: range | list[int], *, at: dict[int, datetime] | None = None) -> None:
        rows = [{**ROWS[i], **({"updated_at": (at or {}).get(i, self.stamp(i))} if self.has_time else {})}
                for i in ids]
        with self.engine.begin() as conn:
            conn.execute(self.table.insert(), rows)

    def update(self, i: int, *, label: int, at: datetime) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.update().where(self.table.c.id == i).values(label=label, updated_at=at))

    def drop(self) -> None:
        self.table.drop(self.engine, checkfirst=True)
        self.engine.dispose()


def _project(tmp: Path, db: Db, *, incremental: str, window: str, time: bool) -> Path:
    project = tmp / "proj"
    project.mkdir(exist_ok=True)
    (project / "tidal.yaml").write_text(f"""\
version: 1
name: cancer
data:
  source: {db.url}
  query: SELECT * FROM {db.name}
  target: label
  id: id
  time: {"updated_at" if time else "null"}
  incremental: {incremental}
  window: {window}
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {{max_iter: 500}}
validate:
  split: {{method: random, test_size: 0.25}}
""")
    return project


def _collected(ws: Workspace, result: Any) -> tuple[dict[str, Any], pd.DataFrame]:
    collect = next(s for s in result.steps if s.name == "collect")
    assert collect.status.value == "done", collect.explain
    table = read_snapshot_bytes(ws.artifacts.get(collect.outputs["snapshot"]))
    split = next(s for s in result.steps if s.name == "split").outputs
    assert split["rows_train"] + split["rows_holdout"] == len(table)  # it trained on that table
    assert result.model is not None and result.model.lineage.snapshot == collect.outputs["snapshot"]
    return collect.outputs, table


def _utc(t: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(t)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _window(truth: dict[int, tuple[datetime | int, int]], *, last_rows: int | None = None,
            last_days: float | None = None, now: datetime | None = None) -> set[int]:
    """The ids ``data.window`` keeps of ``truth`` ({id: (updated_at or id, label)}), computed independently."""
    items = sorted(truth.items(), key=lambda kv: (kv[1][0], kv[0]))
    if last_days is not None:
        assert now is not None
        items = [kv for kv in items if _utc(kv[1][0]) >= _utc(now) - pd.Timedelta(days=last_days)]
    if last_rows is not None:
        items = items[-last_rows:]
    return {i for i, _ in items}


def _scenario(tmp: Path, db: Db, *, window: dict[str, float]) -> None:
    """Collect 300 rows, then 100 more, then none, then an update and a late row; train on the window."""
    spec_window = "{" + ", ".join(f"{k}: {v}" for k, v in window.items()) + "}"
    project = _project(tmp, db, incremental="{column: updated_at, key: id}", window=spec_window, time=True)
    truth = {i: (db.stamp(i), ROWS[i]["label"]) for i in range(300)}
    db.insert(range(300))

    def check(ws: Workspace, result: Any, new: int) -> pd.DataFrame:
        out, table = _collected(ws, result)
        assert out["new_rows"] == new, out
        now = ws.store.get_snapshot(out["snapshot"]).created_at
        want = _window(truth, last_rows=int(window["last_rows"]) if "last_rows" in window else None,
                       last_days=window.get("last_days"), now=now)
        assert set(table["id"]) == want and len(table) == len(want)  # one row per id
        labels = dict(zip(table["id"], table["label"], strict=True))
        assert all(labels[i] == truth[i][1] for i in want)
        if "last_days" in window:
            assert parse_times(table["updated_at"]).min() >= pd.Timestamp(now) - pd.Timedelta(days=window["last_days"])
        return table

    with Workspace.open(project) as ws:
        first = ws.run()
        check(ws, first, 300)
        assert first.notes[0].startswith("collected 300 new rows since the start (watermark ")
        db.insert(range(300, 400))
        truth.update({i: (db.stamp(i), ROWS[i]["label"]) for i in range(300, 400)})
        check(ws, ws.run(), 100)
        state = read_state(ws.store, ws.spec)
        assert [b["rows"] for b in state["batches"]] == [300, 100]
        watermark = state["watermark"]["value"]
        assert pd.Timestamp(watermark) == pd.Timestamp(db.stamp(399))

        idle = ws.run()  # nothing new: a line and an event, no new batch, and the same table trains again
        check(ws, idle, 0)
        assert idle.notes == [f"no new rows since {watermark}"]
        assert [e.message for e in ws.events(kind="data.no_new_rows")] == [f"no new rows since {watermark}"]
        assert len(read_state(ws.store, ws.spec)["batches"]) == 2

        # Row 10 is updated (a newer updated_at, the other label): it replaces the collected one, by its key.
        # Row 400 is inserted late, with an updated_at below the watermark: '>' does not collect it.
        moved = db.stamp(400) + STEP
        db.update(10, label=1 - ROWS[10]["label"], at=moved)
        db.insert([400], at={400: db.stamp(399) - STEP})
        truth[10] = (moved, 1 - ROWS[10]["label"])
        table = check(ws, ws.run(), 1)
        assert 400 not in set(table["id"])
        assert len(read_state(ws.store, ws.spec)["batches"]) == 3


@pytest.fixture
def tmp_db(tmp_path: Path) -> Iterator[list[Db]]:
    made: list[Db] = []
    yield made
    for db in made:
        db.drop()


def test_sqlite_text_timestamps_rows_window_and_lookback_catches_a_late_row(tmp_path: Path,
                                                                            tmp_db: list[Db]) -> None:
    db = Db(f"sqlite:///{tmp_path / 'shop.db'}", tmp_path, time=sa.DateTime(), aware=False)
    tmp_db.append(db)
    _scenario(tmp_path, db, window={"last_rows": 250})
    # The late row (id 400) sits 45 minutes behind the watermark (row 10's new time): a lookback of 1h re-reads
    # it. The rows the lookback reads again unchanged are not stored again.
    spec = tmp_path / "proj" / "tidal.yaml"
    spec.write_text(spec.read_text().replace("{column: updated_at, key: id}",
                                             "{column: updated_at, key: id, lookback: 1h}"))
    with Workspace.open(tmp_path / "proj") as ws:
        out, table = _collected(ws, ws.run())
        assert out["new_rows"] == 1 and 400 in set(table["id"])
        assert len(table) == 250


@pytest.mark.postgres
@needs_postgres
def test_postgres_timestamptz_last_days(tmp_path: Path, tmp_db: list[Db]) -> None:
    assert POSTGRES_URL
    db = Db(POSTGRES_URL, tmp_path, time=sa.DateTime(timezone=True), aware=True)
    tmp_db.append(db)
    _scenario(tmp_path, db, window={"last_days": 3})


@pytest.mark.postgres
@needs_postgres
def test_postgres_timestamp_without_time_zone(tmp_path: Path, tmp_db: list[Db]) -> None:
    assert POSTGRES_URL
    db = Db(POSTGRES_URL, tmp_path, time=sa.DateTime(timezone=False), aware=False)
    tmp_db.append(db)
    _scenario(tmp_path, db, window={"last_rows": 250})


@needs_mysql
def test_mariadb_datetime_last_rows(tmp_path: Path, tmp_db: list[Db]) -> None:
    assert MYSQL_URL
    db = Db(MYSQL_URL, tmp_path, time=sa.DateTime(), aware=False)
    tmp_db.append(db)
    _scenario(tmp_path, db, window={"last_rows": 250})


def _id_column(tmp: Path, url: str, tmp_db: list[Db]) -> None:
    """An integer id as the incremental column (no time, no key): only the larger ids come the second time."""
    db = Db(url, tmp, time=None, aware=False)
    tmp_db.append(db)
    project = _project(tmp, db, incremental="{column: id}", window="{last_rows: 150}", time=False)
    db.insert(range(200))
    with Workspace.open(project) as ws:
        out, table = _collected(ws, ws.run())
        assert out["new_rows"] == 200 and out["watermark"] == 199 and list(table["id"]) == list(range(50, 200))
        db.insert(range(200, 300))
        out, table = _collected(ws, ws.run())
        assert out["new_rows"] == 100 and out["watermark"] == 299 and list(table["id"]) == list(range(150, 300))


def test_sqlite_integer_id_column(tmp_path: Path, tmp_db: list[Db]) -> None:
    _id_column(tmp_path, f"sqlite:///{tmp_path / 'ids.db'}", tmp_db)


@pytest.mark.postgres
@needs_postgres
def test_postgres_integer_id_column(tmp_path: Path, tmp_db: list[Db]) -> None:
    assert POSTGRES_URL
    _id_column(tmp_path, POSTGRES_URL, tmp_db)


@needs_mysql
def test_mariadb_integer_id_column(tmp_path: Path, tmp_db: list[Db]) -> None:
    assert MYSQL_URL
    _id_column(tmp_path, MYSQL_URL, tmp_db)


def test_a_batch_that_fails_validation_is_not_kept_and_is_read_again(tmp_path: Path, tmp_db: list[Db]) -> None:
    from tidal.core.errors import SchemaError

    db = Db(f"sqlite:///{tmp_path / 'bad.db'}", tmp_path, time=None, aware=False)
    tmp_db.append(db)
    project = _project(tmp_path, db, incremental="{column: id}", window="all", time=False)
    spec = project / "tidal.yaml"
    spec.write_text(spec.read_text().replace("  window: all\n", "  window: all\n  checks: {range: error}\n"))
    db.insert(range(200))
    with Workspace.open(project) as ws:
        ws.run()
        with db.engine.begin() as conn:  # a broken sensor: f1 a thousand times its range
            conn.execute(db.table.insert(), [{**ROWS[i], "f1": 1e6} for i in range(200, 210)])
        with pytest.raises(SchemaError, match="f1"):
            ws.run()
        state = read_state(ws.store, ws.spec)
        assert [b["rows"] for b in state["batches"]] == [200] and state["watermark"]["value"] == 199
        assert len(ws.events(kind="data.collected")) == 1 and ws.events(kind="data.rejected")
        with db.engine.begin() as conn:  # fixed in the source: the same rows are read again
            conn.execute(db.table.update().where(db.table.c.id >= 200).values(f1=15.0))
        out, table = _collected(ws, ws.run())
        assert out["new_rows"] == 10 and len(table) == 210 and out["watermark"] == 209
