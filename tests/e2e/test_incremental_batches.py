"""An incremental collection costs the new rows: it stores one batch snapshot and reads none of the batches
collected before; a run makes the table it trains on from the batches (merge on read), the same table the
collection used to make, named by a manifest that the same batches give again; a state an older tidal wrote
reads as it did. On real SQLite files, through the SDK and the loop's collection."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidal import Workspace
from tidal.data.incremental import merge_batches, table_manifest, training_table, window_table
from tidal.data.snapshot import make_snapshot, read_snapshot_bytes
from tidal.data.sources.sql import read_after
from tidal.loop.incremental import IncrementalCollect, read_state, state_key, table_key


def _rows(start: int, n: int) -> list[tuple[Any, ...]]:
    """Rows ``start`` .. ``start + n - 1``: an id, a time (ISO text, as SQLite keeps times), a site, two
    measurements with gaps, and a label the measurements predict."""
    rng = np.random.default_rng(start)
    out = []
    for i in range(start, start + n):
        x, y = float(rng.normal()), float(rng.normal())
        out.append((i, f"2026-03-{1 + i // 96:02d}T{(i % 96) // 4:02d}:{15 * (i % 4):02d}:00",
                    ["north", "south", "dock"][i % 3], round(x, 4), None if i % 17 == 0 else round(y, 4),
                    int(x + 0.3 * rng.normal() > 0)))
    return out


def _project(tmp: Path, *, key: str | None = "id", window: str = "{last_rows: 420}") -> tuple[Path, str]:
    db = tmp / "shop.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER, at TEXT, site TEXT, x REAL, y REAL, label INTEGER)")
    conn.close()
    project = tmp / "proj"
    project.mkdir()
    incremental = "{column: at" + (f", key: {key}" if key else "") + "}"
    (project / "tidal.yaml").write_text(f"""\
version: 1
name: batches
data:
  source: sqlite:///{db}
  query: SELECT * FROM readings
  target: label
  id: id
  incremental: {incremental}
  window: {window}
model:
  estimator: sklearn.linear_model.LogisticRegression
validate:
  split: {{method: random, test_size: 0.25}}
""")
    return project, f"sqlite:///{db}"


def _insert(url: str, rows: list[tuple[Any, ...]]) -> None:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        conn.executemany("INSERT INTO readings VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.close()


class Spy:
    """An artifact store that counts what goes in and what is read back."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.puts, self.gets = inner, [], []

    def put(self, data: bytes) -> str:
        self.puts.append(len(data))
        return str(self.inner.put(data))

    def get(self, digest: str) -> bytes:
        self.gets.append(digest)
        return bytes(self.inner.get(digest))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _collect_step(result: Any) -> dict[str, Any]:
    return next(s for s in result.steps if s.name == "collect").outputs


def test_a_collection_stores_one_batch_of_the_new_rows_and_reads_no_batch_before(tmp_path: Path) -> None:
    project, url = _project(tmp_path)
    _insert(url, _rows(0, 400))
    with Workspace.open(project) as ws:
        first = ws.run()
        before = {s.digest for s in ws.store.list_snapshots("batches", limit=1000)}
        _insert(url, _rows(400, 60))
        spy = Spy(ws.artifacts)
        collector = IncrementalCollect(ws.spec, project, ws.store, spy, ws.clock, {})  # type: ignore[arg-type]
        inc = collector.collect("loop")
        event = collector.commit()
        assert inc.batch is not None and inc.new_rows == 60
        assert event is not None and event.kind == "data.collected"
        # one artifact, the batch's bytes; no batch collected before (nor any table) read back
        assert spy.puts == [len(inc.batch[1])] and spy.gets == []
        after = {s.digest for s in ws.store.list_snapshots("batches", limit=1000)}
        assert after - before == {inc.batch[0].digest} and ws.store.get_snapshot(inc.batch[0].digest).rows == 60
        state = read_state(ws.store, ws.spec)
        assert [b["rows"] for b in state["batches"]] == [400, 60] and state["watermark"] == inc.watermark
        assert first.model is not None


def test_a_lookback_reads_only_the_batches_it_reaches(tmp_path: Path) -> None:
    """With a lookback, a batch whose recorded watermark is at or before ``watermark - lookback`` holds no row
    the lookback reads again, so it is not read; one that reaches past it is (its rows are not stored again)."""
    project, url = _project(tmp_path)
    _insert(url, _rows(0, 400))
    with Workspace.open(project) as ws:
        ws.run()
        _insert(url, _rows(400, 40))
        ws.run()
        spec = project / "tidal.yaml"
        spec.write_text(spec.read_text().replace("{column: at, key: id}", "{column: at, key: id, lookback: 2h}"))
    with Workspace.open(project) as ws:
        _insert(url, _rows(440, 10))
        spy = Spy(ws.artifacts)
        collector = IncrementalCollect(ws.spec, project, ws.store, spy, ws.clock, {})  # type: ignore[arg-type]
        inc = collector.collect("loop")
        batches = read_state(ws.store, ws.spec)["batches"]
        assert spy.gets == [batches[1]["snapshot"]]  # the second batch only: the first ends 10 hours before
        assert inc.new_rows == 10  # the 8 rows of the last 2 hours read again, not collected again


def test_a_run_trains_on_the_merged_windowed_table_the_collection_used_to_make(tmp_path: Path) -> None:
    """After the loop's collection (which made no table), a run trains on the batches merged and windowed: the
    very snapshot (same digest, same rows, same dtypes) that the collection made before, when it merged the
    batches read back with the new rows it had just read."""
    project, url = _project(tmp_path)
    _insert(url, _rows(0, 400))
    with Workspace.open(project) as ws:
        ws.run()
        mark = read_state(ws.store, ws.spec)["watermark"]
        _insert(url, _rows(400, 60))
        _insert(url, [(5, "2026-03-06T00:00:00", "dock", 1.5, 0.5, 1)])  # row 5 updated: it replaces the old one
        collector = IncrementalCollect(ws.spec, project, ws.store, ws.artifacts, ws.clock, {})
        collector.collect("loop")
        collector.commit()
        result = ws.run()
        out = _collect_step(result)
        assert out["new_rows"] == 0 and out["batches"] == 2
        table = read_snapshot_bytes(ws.artifacts.get(out["snapshot"]))
        assert result.model is not None and result.model.lineage.snapshot == out["snapshot"]

        # the table as the collection made it: the batch before read back, the new rows as read, merged, windowed
        data = ws.spec.data
        first = read_snapshot_bytes(ws.artifacts.get(read_state(ws.store, ws.spec)["batches"][0]["snapshot"]))
        new = read_after(url, base_dir=project, query=data.query, column="at", after=mark["value"])
        new = new.sort_values("at", kind="stable").reset_index(drop=True)
        made = window_table(merge_batches([first, new], "at", "id"), data, ws.clock.now())
        info, _ = make_snapshot(made, project="batches", source=url, created_at=ws.clock.now())
        assert info.digest == out["snapshot"]
        pd.testing.assert_frame_equal(table, read_snapshot_bytes(make_snapshot(made, project="batches", source=url,
                                                                               created_at=ws.clock.now())[1]))
        assert len(table) == 420 and table.loc[table["id"] == 5, "x"].tolist() == [1.5]
        assert dict(table.dtypes.astype(str)) == {"id": "int64", "at": "str", "site": "str", "x": "float64",
                                                  "y": "float64", "label": "int64"}


def test_the_same_batches_are_the_same_table_reused_unmade(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project, url = _project(tmp_path)
    _insert(url, _rows(0, 300))
    with Workspace.open(project) as ws:
        ws.run()
        _insert(url, _rows(300, 150))
        second = _collect_step(ws.run())
        digests = [b["snapshot"] for b in read_state(ws.store, ws.spec)["batches"]]
        assert second["manifest"] == table_manifest(ws.spec.data, digests) and second["table_reused"] is False
        assert ws.store.get_state(table_key(ws.spec)) == {"manifest": second["manifest"],
                                                          "snapshot": second["snapshot"]}
        # made again from the same batches, elsewhere: the same bytes
        frames = [read_snapshot_bytes(ws.artifacts.get(d)) for d in digests]
        assert training_table(ws.spec.data, frames, project="batches", created_at=ws.clock.now())[0].digest == \
            second["snapshot"]
        # a run with no new rows: the same manifest, the table reused without reading a batch or merging
        import tidal.loop.incremental as module

        monkeypatch.setattr(module, "training_table", lambda *a, **k: pytest.fail("the table was made again"))
        idle = ws.run()
        third = _collect_step(idle)
        assert third["new_rows"] == 0 and third["table_reused"] is True
        assert (third["snapshot"], third["manifest"]) == (second["snapshot"], second["manifest"])
        assert idle.model is not None and idle.model.lineage.snapshot == second["snapshot"]
        monkeypatch.undo()
        # without the cache the table is made again: the same bytes
        fresh = _collect_step(ws.run(use_cache=False))
        assert fresh["table_reused"] is False and fresh["snapshot"] == second["snapshot"]
    # another window: another manifest (the batches are cut otherwise)
    spec = project / "tidal.yaml"
    spec.write_text(spec.read_text().replace("{last_rows: 420}", "{last_rows: 100}"))
    with Workspace.open(project) as ws:
        assert table_manifest(ws.spec.data, digests) != second["manifest"]


def test_a_state_an_older_tidal_wrote_still_reads(tmp_path: Path) -> None:
    """The state as tidal kept it before (its batches and watermark, a table snapshot per collection, no table
    named by a manifest): a run goes on from its watermark and trains on its batches and the new rows."""
    project, url = _project(tmp_path, key=None, window="all")
    _insert(url, _rows(0, 200))
    with Workspace.open(project) as ws:
        frame = read_after(url, base_dir=project, query=ws.spec.data.query, column="at", after=None)
        frame = frame.sort_values("at", kind="stable").reset_index(drop=True)
        info, payload = make_snapshot(frame, project="batches", source=url, created_at=ws.clock.now())
        ws.artifacts.put(payload)
        ws.store.put_snapshot(info)
        mark = {"type": "text", "value": str(frame["at"].max())}
        ws.store.put_state(state_key(ws.spec), {"watermark": mark, "batches": [
            {"snapshot": info.digest, "rows": 200, "watermark": mark, "collected_at": info.created_at.isoformat(),
             "run_id": "0123456789abcdef"}]})
        assert ws.store.get_state(table_key(ws.spec)) is None
        _insert(url, _rows(200, 30))
        out = _collect_step(ws.run())
        assert out["new_rows"] == 30 and out["batches"] == 2 and out["rows"] == 230
        table = read_snapshot_bytes(ws.artifacts.get(out["snapshot"]))
        assert table["id"].tolist() == list(range(230))
