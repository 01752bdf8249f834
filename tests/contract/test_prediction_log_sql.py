"""What only the SQL prediction logs (SQLite, PostgreSQL) have: persistence, several processes appending
at once, no loss under SIGKILL, shared commits, and query plans that stay on the indexes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing
from pathlib import Path
from typing import Any, cast

import pytest

from tidal.core.entities import Feedback
from tidal.core.errors import StorageError
from tidal.storage import SqlPredictionLog, open_metadata_store, open_prediction_log
from tidal.storage.testing import tables as t

from ._make import T0, make_run
from .test_prediction_log import make_prediction

WRITER = Path(__file__).with_name("_prediction_writer.py")


def recorded(path: Path) -> list[str]:
    """The ids a writer process recorded (complete lines only: it may die in the middle of one)."""
    if not path.exists():
        return []
    text = path.read_text()
    return text[: text.rfind("\n") + 1].split()


def spawn(url: str, prefix: str, threads: int, count: int, record: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(WRITER), url, prefix, str(threads), str(count), str(record)],
                            stderr=subprocess.PIPE)


def test_reopened_log_still_has_predictions_and_labels(sql_url: str) -> None:
    p = make_prediction()
    with closing(open_prediction_log(sql_url)) as first:
        first.append([p, make_prediction(served=False)])
        first.add_feedback([Feedback(p.id, "UP", T0)])
    with closing(open_prediction_log(sql_url)) as second:
        got = second.get(p.id)
        assert got.label == "UP" and got.inputs == p.inputs
        assert second.count(served=None) == 2


def test_processes_appending_to_one_database_lose_nothing(sql_url: str, tmp_path: Path) -> None:
    # Three processes open the same (new) database at once, then append from two threads each.
    procs = [spawn(sql_url, f"proc{n}", 2, 150, tmp_path / f"ids-{n}.txt") for n in range(3)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-2000:]
    expected = {f"proc{n}-{t}-{i}" for n in range(3) for t in range(2) for i in range(150)}
    with closing(open_prediction_log(sql_url)) as log:
        stored = [p.id for p in log.window(model="child")]
    assert len(stored) == len(expected) and set(stored) == expected
    for n in range(3):
        assert set(recorded(tmp_path / f"ids-{n}.txt")) == {i for i in expected if i.startswith(f"proc{n}-")}


def test_an_append_that_returned_survives_sigkill(sql_url: str, tmp_path: Path) -> None:
    record = tmp_path / "returned.txt"
    proc = spawn(sql_url, "kill", 4, 0, record)
    deadline = time.monotonic() + 120
    try:
        while len(recorded(record)) < 400:  # appending from 4 threads, mid-stream
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "the writer process appended too slowly"
            time.sleep(0.02)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    returned = recorded(record)
    with closing(open_prediction_log(sql_url)) as log:
        stored = {p.id for p in log.window(model="child")}
        lost = [i for i in returned if i not in stored]
        assert lost == [], f"{len(lost)} of {len(returned)} acknowledged predictions lost"
        assert log.get(returned[-1]).inputs["x"] == pytest.approx(int(returned[-1].rsplit("-", 1)[1]) / 7)


def test_a_clash_fails_only_the_call_that_brought_it(sql_url: str) -> None:
    with SqlPredictionLog(sql_url) as log:
        stored = make_prediction()
        log.append([stored])
        ok = log._batch([make_prediction()])
        retry = log._batch([stored])
        clash = log._batch([make_prediction(id=stored.id, output=42), make_prediction()])
        # Three callers' rows in one batch, as the group commit's leader would write them.
        outcomes = log._write_batch([ok, clash, retry])
        assert outcomes[0] is None and outcomes[2] is None
        assert isinstance(outcomes[1], StorageError) and "different prediction" in str(outcomes[1])
        assert log.count() == 2  # stored + ok; nothing of the clashing call


def test_concurrent_appends_are_counted_in_commit_stats(sql_url: str) -> None:
    with SqlPredictionLog(sql_url) as log:
        threads, calls = 6, 40

        def work(n: int) -> None:
            for i in range(calls):
                log.append([make_prediction(n=i)])

        workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        stats = log.commit_stats()
        assert stats.calls == threads * calls
        assert 1 <= stats.commits <= stats.calls and stats.largest <= threads
        assert log.count() == threads * calls


def test_the_log_and_the_metadata_store_can_share_a_database(sql_url: str) -> None:
    with closing(open_metadata_store(sql_url)) as store, closing(open_prediction_log(sql_url)) as log:
        run = make_run()
        store.create_run(run)
        log.append([make_prediction()])
        assert store.get_run(run.id) == run and log.count() == 1


def test_power_durability_syncs_every_commit(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with SqlPredictionLog(url, durability="power") as log:
        log.append([make_prediction()])
        assert log._conns.get().exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    with SqlPredictionLog(url) as log:
        assert log._conns.get().exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    with pytest.raises(StorageError, match="durability"):
        SqlPredictionLog(url, durability="sometimes")  # type: ignore[arg-type]


@pytest.mark.parametrize("url, needle", [
    ("mysql://user@host/db", "sqlite:///"),
    ("nonsense", "memory://"),
    ("sqlite:///:memory:", "memory://"),
])
def test_unsupported_urls_say_what_is_supported(url: str, needle: str) -> None:
    with pytest.raises(StorageError) as info:
        open_prediction_log(url)
    assert needle in str(info.value)


# -- query plans: what keeps window() and count() fast at millions of rows -------------------------------


def _plans(log: SqlPredictionLog, call: Any) -> list[str]:
    """SQLite's query plan of every SELECT that ``call`` runs on ``log``."""
    import sqlalchemy as sa

    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    engine = log._conns.engine
    sa.event.listen(engine, "before_cursor_execute", capture)
    try:
        call()
    finally:
        sa.event.remove(engine, "before_cursor_execute", capture)
    conn = log._conns.get().connection.driver_connection
    assert conn is not None
    return [" / ".join(row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {s}", p)) for s, p in statements]


@pytest.mark.parametrize("call, index", [
    # The newest come straight off the batch index, walked backwards (seq and n from the index alone).
    (lambda log: log.window(model="m", last=100), "COVERING INDEX ix_prediction_batches_model_served_seq_n"),
    (lambda log: log.window(model="m", labelled=True, last=100), "ix_prediction_labels_model_served_seq_pos"),
    (lambda log: log.window(model="m"), "ix_prediction_batches_model_served_seq_n"),
    # A time range is found on the time index; only the batches in it are sorted.
    (lambda log: log.window(model="m", since=T0), "ix_prediction_batches_model_served_time_n"),
    # Counts read an index alone, never the rows.
    (lambda log: log.count(model="m"), "COVERING INDEX ix_prediction_batches_model_served_"),
    (lambda log: log.count(model="m", labelled=True), "COVERING INDEX ix_prediction_labels_model_served_seq_pos"),
    (lambda log: log.count(model="m", since=T0), "COVERING INDEX ix_prediction_batches_model_served_time_n"),
    (lambda log: log.get(log.window(model="m", last=1)[0].id), "prediction_ids USING PRIMARY KEY"),
])
def test_sqlite_reads_search_an_index(tmp_path: Path, call: Any, index: str) -> None:
    with SqlPredictionLog(f"sqlite:///{tmp_path / 'p.db'}") as log:
        log.append([make_prediction("m", n=i) for i in range(50)])
        log.add_feedback([Feedback(p.id, 1, T0) for p in log.window(model="m")[::3]])
        plans = _plans(log, lambda: call(log))
    # every SELECT searches an index (a batch's rows and labels are found by their primary keys), none scans
    assert all("SEARCH" in plan and "SCAN" not in plan for plan in plans), plans
    assert any(index in plan for plan in plans), plans
    assert not any("TEMP B-TREE" in plan for plan in plans if "_seq" in plan), plans


def test_the_driver_level_insert_stores_what_sqlalchemy_would(sql_url: str, tmp_path: Path) -> None:
    # append() bypasses SQLAlchemy's parameter handling (see _driver_insert); the stored values must be
    # exactly those SQLAlchemy's own INSERT writes for the same values: times in the dialect's format and
    # zone, flags, JSON text. Read every row back through SQLAlchemy, write it again through
    # table.insert(), and compare what the database holds, byte for byte.
    from datetime import UTC, datetime, timedelta, timezone

    import sqlalchemy as sa

    zoned = datetime(2026, 3, 1, 12, 30, 15, 123456, tzinfo=timezone(timedelta(hours=5)))
    naive = datetime(2026, 3, 1, 7, 30, 15, 654321)
    cases = [make_prediction(time=zoned, served=False, deployment="shadow", request_id=None),
             make_prediction(time=naive, label="UP", proba=None, inputs={"x": float("nan"), "big": 2**70}),
             make_prediction(time=datetime(2026, 3, 1, tzinfo=UTC), label="DOWN", label_time=zoned)]
    tables = (t.prediction_batches, t.prediction_ids, t.prediction_labels)
    with SqlPredictionLog(sql_url) as log:
        log.append(cases)
        log.add_feedback([Feedback(cases[0].id, "UP", zoned)])

        def raw(conn: Any) -> list[list[tuple[Any, ...]]]:
            return [sorted(tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {table.name}")))
                    for table in tables]

        with log._conns.engine.begin() as conn:
            fast = raw(conn)
            typed = [[dict(r) for r in conn.execute(sa.select(table)).mappings()] for table in tables]
            for table in tables:
                conn.execute(sa.delete(table))
            for table, rows in zip(tables, typed, strict=True):
                conn.execute(table.insert(), rows)
            plain = raw(conn)
    assert [len(rows) for rows in fast] == [3, 3, 3]
    assert fast == plain


def test_a_request_range_is_one_id_entry(sql_url: str) -> None:
    """A served request's ids are stored as one entry of prediction_ids (its prefix, and minus its count),
    whatever its size; ids appended one by one keep an entry each."""
    import sqlalchemy as sa

    from tidal.core.batches import PredictionBatch
    from tidal.core.ids import IdRange, new_ids

    with closing(open_prediction_log(sql_url)) as log:
        assert isinstance(log, SqlPredictionLog)
        ids = cast(IdRange, new_ids(1000))
        log.append(PredictionBatch(ids=ids, time=T0, model="m", version=1, inputs=[{"x": i} for i in range(1000)],
                                   outputs=[0] * 1000))
        log.append([make_prediction(n=i) for i in range(3)])
        with log._conns.engine.connect() as conn:
            rows = conn.execute(sa.select(t.prediction_ids.c.id, t.prediction_ids.c.pos)
                                .order_by(t.prediction_ids.c.pos)).all()
        assert len(rows) == 4 and tuple(rows[0]) == (ids.prefix, -1000) and [r[1] for r in rows[1:]] == [0, 0, 0]
        assert log.get(ids[999]).inputs == {"x": 999} and log.count(served=None) == 1003


def test_sqlite_checkpoints_run_in_the_background(tmp_path: Path) -> None:
    # The request thread never copies the WAL back (the checkpointer thread does), and the WAL stays bounded.
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with SqlPredictionLog(url) as log:
        checkpointer = log._checkpointer
        assert checkpointer is not None
        for n in range(20):
            log.append([make_prediction(n=n * 100 + i) for i in range(100)])
        deadline = time.monotonic() + 10
        while checkpointer.checkpoints == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointer.checkpoints >= 1
        with closing(log._conns.engine.raw_connection()) as raw:
            pages = raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
        assert pages > 1000  # the writers' own checkpoints are only the safety net
        assert log.count(served=None) == 2000
    with closing(open_prediction_log(url)) as again:
        assert again.count(served=None) == 2000


def test_postgres_has_no_checkpointer(sql_url: str) -> None:
    with SqlPredictionLog(sql_url) as log:
        assert (log._checkpointer is None) == (log.dialect != "sqlite")
