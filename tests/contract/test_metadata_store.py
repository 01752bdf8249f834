"""The MetadataStore contract: all four ports in one store, on every adapter (memory, SQLite, PostgreSQL).

Each port has its own suite (test_run_store, test_snapshot_store, test_model_store, test_loop_store); this
one holds what is about the whole store: it is every port at once, it closes, and calls through several
ports from several threads. Units of work that span ports are in test_atomic.py; what only the SQL stores
have (persistence, migrations on open, URL errors) is in test_sql_store.py.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from tidal.core.entities import Event, Metric
from tidal.core.errors import RunNotFound, StorageError
from tidal.core.ports import LoopStore, MetadataStore, ModelStore, RunStore, SnapshotStore, UnitOfWork
from tidal.storage import open_metadata_store

from ._make import T0, make_run


def test_is_a_metadata_store_and_every_port(store: MetadataStore) -> None:
    for port in (MetadataStore, RunStore, SnapshotStore, ModelStore, LoopStore, UnitOfWork):
        assert isinstance(store, port), port.__name__


def test_values_that_are_not_json_are_refused(store: MetadataStore) -> None:
    with pytest.raises(StorageError, match=r"run\.info"):
        store.create_run(make_run("notjson", info={"when": datetime.now(UTC)}))
    with pytest.raises(RunNotFound):
        store.get_run("notjson")
    with pytest.raises(StorageError, match="state"):
        store.put_state("k", {1, 2})
    assert store.get_state("k") is None


def test_a_closed_store_refuses_work(store_url: str) -> None:
    opened = open_metadata_store(store_url)
    opened.close()
    with pytest.raises(StorageError, match="closed"):
        opened.list_runs()


def test_concurrent_writers_from_threads(store: MetadataStore) -> None:
    run = make_run()
    store.create_run(run)
    threads, calls = 4, 100
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(calls):
                store.log_batch(run.id, metrics=[Metric(f"t{n}", float(i), i)], tags={f"t{n}": str(i)})
                store.append_event(Event(kind="tick", subject=f"thread:{n}", message="", time=T0))
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    assert len(store.get_metrics(run.id)) == threads * calls
    assert store.get_tags(run.id) == {f"t{n}": str(calls - 1) for n in range(threads)}
    ids = [e.id for e in store.list_events(kind="tick", limit=10_000)]
    assert len(ids) == threads * calls and ids == sorted(ids)
