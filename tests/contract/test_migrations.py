"""Upgrading a database written by an older tidal: it migrates in place, on open, and keeps its data."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import sqlalchemy as sa

from tidal.core.entities import Event, Metric
from tidal.storage import open_metadata_store, open_prediction_log
from tidal.storage import testing as st
from tidal.storage.testing import tables as t

from ._make import T0, make_mv, make_report, make_run
from .test_prediction_log import make_prediction


def _engine(url: str) -> sa.Engine:
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"), poolclass=sa.pool.NullPool)


def _migrate_to(url: str, revision: str, *, down: bool = False) -> None:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            st.migrate(conn, revision, down=down)
            conn.commit()
    finally:
        engine.dispose()


def test_a_store_at_0001_upgrades_in_place_and_keeps_its_data(sql_url: str) -> None:
    _migrate_to(sql_url, "0001")
    run, mv = make_run(info={"seed": 7}), make_mv()
    engine = _engine(sql_url)
    try:
        with engine.begin() as conn:  # written as tidal 0001 wrote them
            old_row = {k: v for k, v in st.encode_run(run).items() if k != "heartbeat_at"}  # 0004 added it
            conn.execute(t.runs.insert().values(old_row))
            metrics = [st.encode_metric(run.id, Metric("loss", 0.5, i, T0)) for i in range(3)]
            conn.execute(t.metrics.insert(), metrics)
            conn.execute(t.model_versions.insert(), st.encode_model_version(mv, 1))
            conn.execute(t.events.insert(), st.encode_event(Event("trained", f"run:{run.id}", "ok", T0)))
            conn.execute(t.state.insert(), {"key": "k", "value": st.json_text({"a": 1})})
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0001"
            assert not sa.inspect(conn).has_table("predictions")
    finally:
        engine.dispose()

    with closing(open_metadata_store(sql_url)) as store:
        assert store.get_run(run.id) == run
        assert [m.value for m in store.get_metrics(run.id)] == [0.5, 0.5, 0.5]
        assert store.get_model_version(mv.name, 1).artifact_digest == mv.artifact_digest
        assert [e.kind for e in store.list_events()] == ["trained"]
        assert store.get_state("k") == {"a": 1}
        assert store.create_model_version(make_mv()).version == 2  # sequences carry on
        report = make_report()
        store.save_report(report)
        assert store.list_reports() == [report]
        assert store.acquire_lease("loop", "me", T0, T0)
    with closing(open_prediction_log(sql_url)) as log:
        p = make_prediction()
        log.append([p])
        assert log.get(p.id) == p

    engine = _engine(sql_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == st.SCHEMA_REVISION
    finally:
        engine.dispose()


def test_a_prediction_log_at_0002_is_carried_into_batches_with_its_order_and_labels(sql_url: str) -> None:
    from datetime import timedelta

    from tidal.core.entities import Feedback

    _migrate_to(sql_url, "0002")
    old = [make_prediction(n=0, label="UP", label_time=T0 + timedelta(hours=1)),
           make_prediction(n=1, served=False, deployment="shadow", request_id="r1"),
           make_prediction(n=2, proba=None, inputs={"x": 2.5, "nested": {"a": [1, None]}})]
    engine = _engine(sql_url)
    try:
        with engine.begin() as conn:  # written as tidal 0002 wrote them: one row per prediction
            table = sa.Table("predictions", sa.MetaData(), autoload_with=conn)
            for p in old:
                conn.execute(table.insert(), st.encode_prediction(p))
    finally:
        engine.dispose()

    with closing(open_prediction_log(sql_url)) as log:
        assert log.window(served=None) == old
        assert [log.get(p.id) for p in old] == old
        assert log.count(served=None) == 3 and log.count(served=None, labelled=True) == 1
        assert log.window(served=False) == [old[1]]
        new = make_prediction(n=3)
        log.append([new])
        assert log.window(served=None, last=2) == [old[2], new]  # appended after the carried ones
        log.add_feedback([Feedback(old[2].id, "DOWN", T0)])
        assert log.get(old[2].id).label == "DOWN"
    engine = _engine(sql_url)
    try:
        with engine.connect() as conn:
            assert not sa.inspect(conn).has_table("predictions")
    finally:
        engine.dispose()


def test_0003_downgrades_to_one_row_per_prediction_and_upgrades_back(sql_url: str) -> None:
    from tidal.core.batches import PredictionBatch
    from tidal.core.entities import Feedback

    batch = PredictionBatch(ids=["b0", "b1"], time=T0, model="churn", version=2,
                            inputs=[{"x": 1.5}, {"x": None}], outputs=[1, 0], probas=[[0.2, 0.8], [0.9, 0.1]])
    single = make_prediction(n=5, proba=None)
    with closing(open_prediction_log(sql_url)) as log:
        log.append(batch)
        log.append([single])
        log.add_feedback([Feedback("b1", 0, T0)])
        before = log.window(served=None)
    engine = _engine(sql_url)
    try:
        with engine.connect() as conn:
            st.migrate(conn, "0002", down=True)
            conn.commit()
            rows = conn.execute(sa.text("SELECT id, inputs, label FROM predictions ORDER BY seq")).all()
            assert [(r[0], r[2]) for r in rows] == [("b0", None), ("b1", "0"), (single.id, None)]
            assert not sa.inspect(conn).has_table("prediction_batches")
    finally:
        engine.dispose()
    with closing(open_prediction_log(sql_url)) as log:  # upgraded again on open: nothing lost
        assert log.window(served=None) == before


def test_a_registry_at_0004_gets_the_model_states_and_a_state_it_does_not_know_still_reads(sql_url: str) -> None:
    """Written as tidal 0004 wrote it: a candidate, a serving champion left ``validated``, another validated
    version, a rejected one, and a state nobody knows (a hand edit). Opened by this tidal: candidate is
    prototype, the champion deployed, each change an event; the rest as it was."""
    from tidal.core.entities import ModelState
    from tidal.registry import Registry

    _migrate_to(sql_url, "0004")
    stored = ["candidate", "validated", "validated", "rejected", "archived"]
    engine = _engine(sql_url)
    try:
        with engine.begin() as conn:
            for n, state in enumerate(stored, start=1):
                conn.execute(t.model_versions.insert(), {**st.encode_model_version(make_mv(), n), "state": state})
            conn.execute(t.aliases.insert(), {"name": "churn", "alias": "champion", "version": 2, "updated_at": T0})
            conn.execute(t.aliases.insert(), {"name": "churn", "alias": "challenger", "version": 3, "updated_at": T0})
    finally:
        engine.dispose()

    with closing(open_metadata_store(sql_url)) as store:
        versions = store.list_model_versions("churn")
        assert [mv.state for mv in versions] == [ModelState.PROTOTYPE, ModelState.DEPLOYED, ModelState.VALIDATED,
                                                 ModelState.REJECTED, ModelState.UNKNOWN]
        assert versions[4].info["stored_state"] == "archived"
        events = store.list_events(kind="model.state")
        assert [(e.subject, e.data["from"], e.data["to"]) for e in events] == [
            ("model:churn:1", "candidate", "prototype"), ("model:churn:2", "validated", "deployed")]
        assert "it is the champion, so it serves" in events[1].message and events[1].time.tzinfo is not None
        # the history reads the same through the registry
        from tidal.core.clock import SimulatedClock
        from tidal.storage.artifacts import FsspecArtifactStore

        reg = Registry(store, FsspecArtifactStore("memory://tidal-migration-states"), SimulatedClock(T0))
        assert [(h.from_state, h.to) for h in reg.history("churn", 2)] == [("validated", "deployed")]
        # and the new code goes on from there: a promotion over the migrated champion retires it
        reg.set_alias("churn", "champion", 3, reason="by hand")
        assert [mv.state.value for mv in store.list_model_versions("churn")][1:3] == ["retired", "deployed"]

    engine = _engine(sql_url)
    try:
        with engine.connect() as conn:  # the downgrade maps the new states back to the nearest old ones
            st.migrate(conn, "0004", down=True)
            conn.commit()
            rows = conn.execute(sa.text("SELECT state FROM model_versions ORDER BY version")).all()
            assert [r[0] for r in rows] == ["candidate", "retired", "deployed", "rejected", "archived"]
    finally:
        engine.dispose()
    with closing(open_metadata_store(sql_url)) as store:  # and upgraded again on open
        assert store.get_model_version("churn", 1).state == ModelState.PROTOTYPE
