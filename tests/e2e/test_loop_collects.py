"""Issue #14, point 4: the loop collects on its own (``data.collect``).

Iris (scikit-learn's bundled copy) in a SQLite table read with ``data.incremental``. `tidal run` trains on the
first 100 flowers. Then:

- end to end, with no human step: a real `tidal serve` and a real `tidal loop` run as subprocesses; the test
  only inserts rows at the source — 40 more flowers measured by a new instrument that reports millimetres,
  not centimetres (a unit change, every feature times 10). The loop collects them, validates them against the
  schema, sees their drift against the champion's reference, retrains on drift, gates, promotes, and the
  running server hot-swaps: its answers come from version 2, which reads millimetres right.
- a bad batch: rows whose petal length is the text 'n/a' are refused (a ``data.rejected`` event), never merged
  and never trained on, and the watermark stays; a source that is down is a ``collect.failed`` event and the
  loop goes on; once the rows are fixed at the source, the next collection takes them with the rows that
  came since, and ``retrain.on.new_data`` fires from those collected rows (no prediction was ever labelled).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_iris

from tests.conftest import _cli
from tests.serve.server import ServerProcess
from tidal import Workspace
from tidal.core.clock import SimulatedClock
from tidal.loop.incremental import read_state
from tidal.monitor.report import loop_failure

SPEC = """\
version: 1
name: iris
data:
  source: sqlite:///flowers.db
  query: SELECT * FROM flowers
  target: species
  id: id
  incremental: {{column: id}}
  collect: {collect}
model:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {{n_estimators: 30, random_state: 0}}
validate:
  split: {{method: random, test_size: 0.3}}
  gates: [accuracy >= 0.8, accuracy >= champion]
deploy:
  reload_seconds: 0.5
retrain:
  on:
{on}
  min_labelled: 20
  cooldown: {{rows: 0}}
"""
FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def _iris() -> pd.DataFrame:
    """The 150 flowers, the classes mixed in a fixed order, with an id and the species by name."""
    data = load_iris(as_frame=True)
    frame = data.frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    frame.columns = [*FEATURES, "target"]
    frame.insert(0, "id", range(len(frame)))
    frame["species"] = [str(data.target_names[t]) for t in frame.pop("target")]
    return frame


def _insert(root: Path, rows: pd.DataFrame) -> None:
    with sqlite3.connect(root / "flowers.db") as conn:
        conn.executemany("INSERT INTO flowers VALUES (?, ?, ?, ?, ?, ?)",
                         list(rows[["id", *FEATURES, "species"]].itertuples(index=False, name=None)))
    conn.close()


def _project(root: Path, first: pd.DataFrame, *, collect: str, on: str) -> Path:
    (root / "tidal.yaml").write_text(SPEC.format(collect=collect, on=on))
    with sqlite3.connect(root / "flowers.db") as conn:
        conn.execute("CREATE TABLE flowers (id INTEGER, sepal_length REAL, sepal_width REAL, petal_length REAL, "
                     "petal_width REAL, species TEXT)")
    conn.close()
    _insert(root, first)
    with Workspace.open(root) as ws:
        assert ws.run().model.version == 1  # type: ignore[union-attr]
    return root


def _millimetres(rows: pd.DataFrame) -> pd.DataFrame:
    out = rows.copy()
    out[FEATURES] = (out[FEATURES] * 10).round(1)
    return out


def test_rows_at_the_source_reach_the_served_model_with_no_human_step(tmp_path: Path) -> None:
    iris = _iris()
    root = _project(tmp_path, iris.iloc[:100], collect="{every: 1s}", on="    drift: {share: 0.5}")
    new, probe = _millimetres(iris.iloc[100:140]), _millimetres(iris.iloc[140:])  # probe: never at the source
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb"}
    # the server and the loop start side by side (each takes seconds to import its libraries)
    with ServerProcess(root).start(ready=False) as server, open(root / "loop.log", "w") as log:
        loop = subprocess.Popen([sys.executable, "-m", "tidal", "loop", "--interval", "0.5s"], cwd=root,
                                stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            server.wait_ready(60)
            assert httpx.get(f"{server.url}/model").json()["version"] == 1
            _wait(lambda: "collected nothing new" in (root / "loop.log").read_text(), 30, root)
            started = time.monotonic()
            _insert(root, new)  # the only thing the test does: rows arrive at the source
            _wait(lambda: httpx.get(f"{server.url}/model").json()["version"] == 2, 45, root)
            took = time.monotonic() - started
        finally:
            os.killpg(loop.pid, signal.SIGINT)
            try:
                loop.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(loop.pid, signal.SIGKILL)
                loop.wait()
        answer = httpx.post(f"{server.url}/predict",
                            json={"instances": probe[FEATURES].to_dict(orient="records")}).json()
    assert answer.get("model") == {"name": "iris", "version": 2}, answer
    right = sum(p == s for p, s in zip(answer["predictions"], probe["species"], strict=True))
    assert right >= 8, (answer["predictions"], probe["species"].tolist())
    printed = (root / "loop.log").read_text()
    assert "collected 40 rows (40 labelled, drift 1.00)" in printed, printed

    with Workspace.open(root) as ws:
        events = ws.events(limit=500)
        kinds = [e.kind for e in events]
        collected = next(e for e in events if e.kind == "data.collected" and e.data.get("source") == "loop")
        assert collected.message == "collected 40 new rows since 99 (watermark 139)"
        assert collected.data["new_rows"] == 40 and collected.data["labelled"] == 40
        drift = collected.data["drift"]
        assert drift["share"] == 1.0 and sorted(drift["drifted"]) == sorted(FEATURES) and drift["version"] == 1
        retrain = next(e for e in events if e.kind == "loop.retrain")
        assert retrain.data["trigger"] == "drift"
        assert retrain.data["reasons"][0] == "drift share 1.00 >= 0.50 over 40 rows collected from the source"
        moved = [e for e in events if e.kind == "alias.moved" and e.data.get("to") == 2]
        assert moved, kinds
        # in that order: collected → validated (no data.rejected) → drift → retrain → gate → promote
        assert kinds.index("data.collected", kinds.index("data.no_new_rows")) < kinds.index("loop.retrain") \
            < kinds.index("gate.passed", kinds.index("loop.retrain")) < events.index(moved[0])
        assert "data.rejected" not in kinds and "collect.failed" not in kinds
        v1, v2 = ws.registry.get("iris", 1), ws.registry.get("iris", 2)
        assert ws.store.get_snapshot(v2.lineage.snapshot).rows == 140  # type: ignore[arg-type]
        assert v2.lineage.extra["triggered_by"]["trigger"] == "drift"
        old = ws.registry.load(v1).predict(probe[FEATURES])
        assert sum(p == s for p, s in zip(old, probe["species"], strict=True)) < right  # millimetres fooled it
        assert read_state(ws.store, ws.spec)["watermark"]["value"] == 139
    assert took < 30, took


def _wait(ok: object, seconds: float, root: Path) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if ok():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"not reached within {seconds} s; the loop printed:\n{(root / 'loop.log').read_text()}")


def test_a_bad_batch_is_refused_and_never_trains_and_a_down_source_is_a_failure(tmp_path: Path) -> None:
    iris = _iris()
    root = _project(tmp_path, iris.iloc[:100], collect="10m", on="    new_data: {rows: 40}")
    clock = SimulatedClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))

    def tick(ws: Workspace, minutes: int = 10):  # type: ignore[no-untyped-def]
        clock.advance(timedelta(minutes=minutes))
        return ws.loop_once()

    with Workspace.open(root, clock=clock) as ws:
        first = ws.loop_once()
        assert first.collected["outcome"] == "no_new_rows" and first.decision.retrain is False  # type: ignore[index,union-attr]
        assert tick(ws, 5).collected is None  # not due: every 10 minutes

        bad = iris.iloc[100:120].astype(object)  # a new instrument writes the unit into the value: text
        bad["petal_length"] = [f"{v} cm" for v in bad["petal_length"]]
        _insert(root, bad)
        refused = tick(ws)
        assert refused.collected["outcome"] == "rejected", refused.collected  # type: ignore[index]
        assert refused.decision.retrain is False  # type: ignore[union-attr]
        [event] = [e for e in refused.events if e.kind == "data.rejected"]
        assert event.message.startswith("the collected batch (20 rows) rejected, never merged or trained on "
                                         "(1 problem): ") and "petal_length" in event.message, event.message
        assert event.data["watermark"] == 99 and event.data["rows"] == 20 and event.subject == "project:iris"
        assert read_state(ws.store, ws.spec)["watermark"]["value"] == 99  # the watermark did not move
        ws.predict(iris.iloc[:30][FEATURES])  # served traffic: the tick's monitor report says the loop is stuck
        stuck = tick(ws)
        line = loop_failure(ws.reports(limit=1)[0].body)
        assert stuck.collected["outcome"] == "rejected" and line is not None  # type: ignore[index]
        assert line.startswith("the loop's last collection, at 2026-03-01 09:25:00 UTC: the collected batch (20 "
                               "rows) rejected") and line.endswith("(tidal events --kind data.rejected)"), line

        with sqlite3.connect(root / "flowers.db") as conn:  # half fixed: 3 rows still text among numbers
            conn.executemany("UPDATE flowers SET petal_length = ? WHERE id = ?",
                             [(float(r.petal_length), int(r.id)) for r in iris.iloc[103:120].itertuples()])
        conn.close()
        again = tick(ws)  # the same rows are read again, and refused again: counted, not trained
        assert again.collected["outcome"] == "rejected"  # type: ignore[index]
        [event] = [e for e in again.events if e.kind == "data.rejected"]
        assert "petal_length" in event.message and "(20 rows)" in event.message, event.message
        assert read_state(ws.store, ws.spec) == {"watermark": read_state(ws.store, ws.spec)["watermark"],
                                                 "batches": read_state(ws.store, ws.spec)["batches"]}
        assert [b["rows"] for b in read_state(ws.store, ws.spec)["batches"]] == [100]  # tidal run's batch alone

        with sqlite3.connect(root / "flowers.db") as conn:  # the source goes away
            conn.execute("ALTER TABLE flowers RENAME TO flowers_moved")
        conn.close()
        down = tick(ws)
        assert down.collected["outcome"] == "failed"  # type: ignore[index]
        [failed] = [e for e in down.events if e.kind == "collect.failed"]
        assert "flowers" in failed.message and failed.message.startswith("collection from sqlite:///flowers.db failed")
        assert down.champion == 1 and down.decision is not None  # the tick went on

        with sqlite3.connect(root / "flowers.db") as conn:  # back, with the bad rows fixed, and more rows
            conn.execute("ALTER TABLE flowers_moved RENAME TO flowers")
            conn.executemany("UPDATE flowers SET petal_length = ? WHERE id = ?",
                             [(float(r.petal_length), int(r.id)) for r in iris.iloc[100:103].itertuples()])
        conn.close()
        _insert(root, iris.iloc[120:150])
        fixed = tick(ws)
        assert fixed.collected["outcome"] == "collected" and fixed.collected["rows"] == 50  # type: ignore[index]
        assert fixed.decision.trigger == "new_data", fixed.decision  # type: ignore[union-attr]
        assert fixed.decision.reasons[0] == ("50 new labelled rows since the last training (0 labelled "  # type: ignore[union-attr]
                                             "predictions, 50 collected) (>= 40)")
        assert fixed.champion == 2
        state = ws.store.get_state("loop:iris")
        assert (state["collect_rejected"], state["collect_failures"], state["collections"],
                state["collected_total"]) == (3, 1, 1, 50)
        v2 = ws.registry.get("iris", 2)
        trained = ws.store.get_snapshot(v2.lineage.snapshot)  # type: ignore[arg-type]
        assert trained.rows == 150 and trained.schema["petal_length"] == "numeric", trained.schema
        assert read_state(ws.store, ws.spec)["watermark"]["value"] == 149
        assert [e.kind for e in ws.events(kind="loop.retrain")] == ["loop.retrain"]  # only the good batch trained

    with sqlite3.connect(root / "flowers.db") as conn:  # `tidal loop --once` (real clock: due) on a source gone
        conn.execute("DROP TABLE flowers")
    conn.close()
    once = _cli(root)("loop", "--once")
    assert once.returncode == 7 and "collection failed" in once.stdout and "collect.failed" in once.stdout, once


CSV_SPEC = """\
version: 1
name: iris
data:
  source: flowers.csv
  target: species
  id: id
  collect: 10m
model:
  estimator: sklearn.ensemble.RandomForestClassifier
  params: {n_estimators: 30, random_state: 0}
validate:
  split: {method: random, test_size: 0.3}
retrain:
  on:
    new_data: {rows: 30}
  min_labelled: 20
  cooldown: {rows: 0}
"""


def test_a_file_source_is_read_again_and_only_its_unseen_rows_are_new(tmp_path: Path) -> None:
    """A source without ``data.incremental`` (a CSV file that grows): each collection reads it whole; the rows
    not in the previous collection are the new ones, and the retrain trains on the validated collection. A
    file that lost a column is refused and the loop keeps the last good collection."""
    iris = _iris()
    (tmp_path / "tidal.yaml").write_text(CSV_SPEC)
    iris.iloc[:100].to_csv(tmp_path / "flowers.csv", index=False)
    clock = SimulatedClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    with Workspace.open(tmp_path, clock=clock) as ws:
        assert ws.run().model.version == 1  # type: ignore[union-attr]
        first = ws.loop_once()
        assert first.collected["outcome"] == "no_new_rows", first.collected  # type: ignore[index]
        assert first.collected["message"] == "no new rows in flowers.csv (100 rows, all seen before)"  # type: ignore[index]

        iris.iloc[:140].to_csv(tmp_path / "flowers.csv", index=False)  # 40 rows appended
        clock.advance(timedelta(minutes=10))
        grown = ws.loop_once()
        assert grown.collected["message"] == "collected 40 new rows from flowers.csv (140 rows in all)"  # type: ignore[index]
        assert grown.decision.trigger == "new_data" and grown.champion == 2  # type: ignore[union-attr]
        v2 = ws.registry.get("iris", 2)
        assert ws.store.get_snapshot(v2.lineage.snapshot).rows == 140  # type: ignore[arg-type]

        iris.drop(columns=["petal_width"]).to_csv(tmp_path / "flowers.csv", index=False)  # a column is gone
        clock.advance(timedelta(minutes=10))
        refused = ws.loop_once()
        assert refused.collected["outcome"] == "rejected" and not refused.decision.retrain  # type: ignore[index,union-attr]
        [event] = [e for e in refused.events if e.kind == "data.rejected"]
        assert "(150 rows) rejected, never merged or trained on" in event.message and "petal_width" in event.message
        state = ws.store.get_state("loop:iris")
        assert state["collected_table"] == ws.store.list_events(kind="data.collected")[-1].subject.split(":")[1]
        assert (state["collections"], state["collect_rejected"], state["collected_total"]) == (1, 1, 40)
        assert [mv.version for mv in ws.registry.list("iris")] == [1, 2]
        controller = ws.controller()
        assert len(controller.training_frame()[0]) == 140  # the last collection that passed, not the file now
        controller.release()

    iris.iloc[:120].to_csv(tmp_path / "other.csv", index=False)  # the spec now names another source
    (tmp_path / "tidal.yaml").write_text(CSV_SPEC.replace("flowers.csv", "other.csv"))
    with Workspace.open(tmp_path, clock=clock) as ws:
        controller = ws.controller()
        assert len(controller.training_frame()[0]) == 120  # never the old source's collection
        controller.release()


POSTGRES_URL = os.environ.get("TIDAL_TEST_POSTGRES_URL")


@pytest.mark.skipif(not POSTGRES_URL, reason="set TIDAL_TEST_POSTGRES_URL (e.g. "
                    "postgresql+psycopg://postgres@127.0.0.1:5432/test) to run on PostgreSQL")
def test_on_postgresql_a_drifted_batch_retrains_and_a_lost_column_is_refused(tmp_path: Path) -> None:
    """The same loop on PostgreSQL, watermarked by a ``timestamptz`` column, with a text site, a nullable
    integer and the four measurements: a batch in millimetres drifts (the four measurements, not the site or
    the count) and retrains; then a column dropped from the table is a rejected batch, the watermark stays."""
    import sqlalchemy as sa

    iris = _iris()
    iris["site"] = ["north" if i % 3 else "south" for i in range(len(iris))]
    iris["visits"] = pd.array([None if i % 7 == 0 else i % 5 for i in range(len(iris))], dtype="Int64")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    iris["updated_at"] = [start + timedelta(minutes=i) for i in range(len(iris))]
    name = f"tidal_collect_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(str(POSTGRES_URL))
    columns = ["id", "updated_at", "site", "visits", *FEATURES, "species"]

    def insert(rows: pd.DataFrame, keep: list[str] = columns) -> None:
        rows[keep].to_sql(name, engine, if_exists="append", index=False)

    try:
        with engine.begin() as conn:
            conn.execute(sa.text(f"CREATE TABLE {name} (id INTEGER PRIMARY KEY, updated_at TIMESTAMPTZ, site TEXT, "
                                 "visits INTEGER, sepal_length DOUBLE PRECISION, sepal_width DOUBLE PRECISION, "
                                 "petal_length DOUBLE PRECISION, petal_width DOUBLE PRECISION, species TEXT)"))
        insert(iris.iloc[:100])
        spec = SPEC.format(collect="10m", on="    drift: {share: 0.5}")
        spec = spec.replace("sqlite:///flowers.db", str(POSTGRES_URL)).replace("FROM flowers", f"FROM {name}")
        (tmp_path / "tidal.yaml").write_text(spec.replace("incremental: {column: id}",
                                                          "incremental: {column: updated_at, key: id}"))
        clock = SimulatedClock(datetime.now(UTC))
        with Workspace.open(tmp_path, clock=clock) as ws:
            assert ws.run().model.version == 1  # type: ignore[union-attr]
            assert ws.loop_once().collected["outcome"] == "no_new_rows"  # type: ignore[index]

            insert(_millimetres(iris.iloc[100:140]))
            clock.advance(timedelta(minutes=10))
            drifted = ws.loop_once()
            assert drifted.collected["rows"] == 40, drifted.collected  # type: ignore[index]
            drift = drifted.collected["drift"]  # type: ignore[index]
            assert set(FEATURES) <= set(drift["drifted"]) and "site" not in drift["drifted"], drift
            assert drifted.decision.trigger == "drift" and drifted.champion == 2  # type: ignore[union-attr]
            mark = read_state(ws.store, ws.spec)["watermark"]["value"]
            assert pd.Timestamp(mark) == pd.Timestamp(iris["updated_at"][139])

            with engine.begin() as conn:
                conn.execute(sa.text(f"ALTER TABLE {name} DROP COLUMN site"))
            insert(iris.iloc[140:], [c for c in columns if c != "site"])
            clock.advance(timedelta(minutes=10))
            refused = ws.loop_once()
            assert refused.collected["outcome"] == "rejected" and not refused.decision.retrain  # type: ignore[index,union-attr]
            [event] = [e for e in refused.events if e.kind == "data.rejected"]
            assert "(10 rows) rejected" in event.message and "'site'" in event.message, event.message
            assert read_state(ws.store, ws.spec)["watermark"]["value"] == mark
            assert [mv.version for mv in ws.registry.list("iris")] == [1, 2]
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {name}"))
        engine.dispose()
