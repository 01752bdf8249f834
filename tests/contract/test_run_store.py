"""The RunStore contract (runs, steps, tracking): every adapter (memory, SQLite, PostgreSQL) passes it."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.core.entities import Metric, Run, RunStatus, StepRecord, StepStatus
from tidal.core.errors import RunNotFound, StorageError
from tidal.core.ports import RunStore

from ._make import NESTED, PLUS2, PROPERTY, T0, TEXT, assert_utc, make_run, uid


def test_is_a_run_store(store: RunStore) -> None:
    assert isinstance(store, RunStore)


# -- runs ------------------------------------------------------------------------------------------------------


def test_run_round_trip_keeps_every_field(store: RunStore) -> None:
    run = Run(
        id="run-" + uid(), project="élec2", status=RunStatus.RUNNING,
        started_at=datetime(2024, 5, 1, 14, 0, 0, 5, tzinfo=PLUS2), ended_at=None, spec_digest="f" * 64,
        trigger="drift", error=None, info=NESTED,
    )
    store.create_run(run)
    got = store.get_run(run.id)
    assert got == run
    assert_utc(got.started_at)
    assert got.started_at == datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert isinstance(got.status, RunStatus)


def test_naive_datetimes_are_taken_as_utc(store: RunStore) -> None:
    run = make_run(started_at=datetime(2024, 1, 2, 3, 4, 5))
    store.create_run(run)
    got = store.get_run(run.id)
    assert got.started_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert_utc(got.started_at)


def test_create_run_twice_raises(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    with pytest.raises(StorageError, match="already exists"):
        store.create_run(run)


def test_finish_run_sets_status_and_merges_info(store: RunStore) -> None:
    run = make_run(info={"seed": 1, "keep": "me"})
    store.create_run(run)
    ended = T0 + timedelta(minutes=3)
    store.finish_run(run.id, RunStatus.FAILED, ended.astimezone(PLUS2), error="boom ✗",
                     info={"seed": 2, "new": [1]})
    got = store.get_run(run.id)
    assert got.status is RunStatus.FAILED
    assert got.ended_at == ended
    assert_utc(got.ended_at)
    assert got.error == "boom ✗"
    assert got.info == {"seed": 2, "keep": "me", "new": [1]}
    store.finish_run(run.id, RunStatus.SUCCEEDED, ended)
    again = store.get_run(run.id)
    assert again.error is None and again.info == got.info and again.status is RunStatus.SUCCEEDED


def test_finish_unknown_run_raises_not_found(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        store.finish_run("nope", RunStatus.SUCCEEDED, T0)


def test_get_unknown_run_raises_not_found(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        store.get_run("0123456789abcdef")


def test_get_run_by_unique_prefix(store: RunStore) -> None:
    store.create_run(make_run("abcd1234ef"))
    store.create_run(make_run("abcd5678ef"))
    store.create_run(make_run("ABCE0000"))
    assert store.get_run("abcd1").id == "abcd1234ef"
    assert store.get_run("abcd5678ef").id == "abcd5678ef"
    assert store.get_run("ABCE").id == "ABCE0000"
    with pytest.raises(RunNotFound, match="ambiguous"):
        store.get_run("abcd")
    with pytest.raises(RunNotFound, match="at least 4"):
        store.get_run("abc")  # too short, even though it would be unique among "abc..." ids
    with pytest.raises(RunNotFound):
        store.get_run("ABCD")  # prefixes are case-sensitive
    with pytest.raises(RunNotFound):
        store.get_run("abcd9")


def test_run_prefix_treats_like_wildcards_literally(store: RunStore) -> None:
    store.create_run(make_run("ab_cd-1"))
    store.create_run(make_run("abXcd-2"))
    store.create_run(make_run("50%-off"))
    assert store.get_run("ab_c").id == "ab_cd-1"
    assert store.get_run("50%-").id == "50%-off"
    with pytest.raises(RunNotFound):
        store.get_run("5%-o")


def test_ambiguous_prefix_names_the_matches(store: RunStore) -> None:
    for i in range(7):
        store.create_run(make_run(f"feed{i}"))
    with pytest.raises(RunNotFound) as info:
        store.get_run("feed")
    message = str(info.value)
    assert "feed0" in message and "feed4" in message and "..." in message and "feed6" not in message


def test_list_runs_newest_first_with_project_and_limit(store: RunStore) -> None:
    runs = [make_run(f"run{i}", project="a" if i % 2 else "b", started_at=T0 + timedelta(seconds=i))
            for i in range(6)]
    for run in runs:
        store.create_run(run)
    assert [r.id for r in store.list_runs()] == ["run5", "run4", "run3", "run2", "run1", "run0"]
    assert [r.id for r in store.list_runs("a")] == ["run5", "run3", "run1"]
    assert [r.id for r in store.list_runs(limit=2)] == ["run5", "run4"]
    assert store.list_runs("zzz") == []
    assert store.list_runs(limit=0) == []
    store.create_run(make_run("run9", started_at=T0 + timedelta(seconds=5)))  # ties break by id, desc
    assert [r.id for r in store.list_runs(limit=2)] == ["run9", "run5"]


# -- steps -----------------------------------------------------------------------------------------------------


def test_steps_round_trip_in_position_order_and_replace(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    train = StepRecord(run_id=run.id, name="train", status=StepStatus.RUNNING, position=2, started_at=T0)
    prepare = StepRecord(
        run_id=run.id, name="prepare", status=StepStatus.REUSED, cache_key="k" * 64,
        started_at=T0.astimezone(PLUS2), ended_at=T0 + timedelta(seconds=1.5), inputs={"snap": NESTED},
        outputs={"n": 3}, explain="reused: same inputs ✓", position=1,
    )
    store.save_step(train)
    store.save_step(prepare)
    assert store.list_steps(run.id) == [prepare, train]
    assert store.list_steps(run.id)[0].duration_s == 1.5
    done = replace(train, status=StepStatus.DONE, ended_at=T0 + timedelta(seconds=9), outputs={"m": "x"})
    store.save_step(done)
    steps = store.list_steps(run.id)
    assert steps == [prepare, done]
    assert_utc(steps[0].started_at)
    assert isinstance(steps[1].status, StepStatus)


def test_steps_of_unknown_run_raise_keyerror(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        store.save_step(StepRecord(run_id="nope", name="x", status=StepStatus.DONE))
    with pytest.raises(RunNotFound):
        store.list_steps("nope")
    run = make_run()
    store.create_run(run)
    assert store.list_steps(run.id) == []


# -- tracking --------------------------------------------------------------------------------------------------


def test_log_batch_round_trip(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    metrics = [Metric("loss", 0.5, 0, T0), Metric("loss", 0.25, 1, T0.astimezone(PLUS2)),
               Metric("acc", 0.9), Metric("ünïcode", -1e308, 7, T0)]
    store.log_batch(run.id, metrics=metrics, params={"lr": "0.1", "depth": "3"}, tags={"who": "me ✓"})
    assert store.get_metrics(run.id) == [metrics[2], metrics[0], metrics[1], metrics[3]]
    for m in store.get_metrics(run.id):
        assert m.timestamp is None or m.timestamp.utcoffset() == timedelta(0)
    assert store.get_metrics(run.id, "loss") == metrics[:2]
    assert store.get_metrics(run.id, "missing") == []
    assert store.get_params(run.id) == {"depth": "3", "lr": "0.1"}
    assert store.get_tags(run.id) == {"who": "me ✓"}


def test_metrics_order_key_step_timestamp_then_logged(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    later = T0 + timedelta(microseconds=1)
    logged = [Metric("b", 1.0, 2, later), Metric("b", 2.0, 2, T0), Metric("b", 3.0, 2, None),
              Metric("a", 4.0, 10, T0), Metric("b", 5.0, 1, None), Metric("b", 6.0, 2, T0),
              Metric("B", 7.0, 0, T0)]
    store.log_batch(run.id, metrics=logged[:3])
    store.log_batch(run.id, metrics=logged[3:])
    got = [m.value for m in store.get_metrics(run.id)]
    assert got == [7.0, 4.0, 5.0, 3.0, 2.0, 6.0, 1.0]


def test_non_finite_metric_values_survive(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, metrics=[Metric("m", math.nan, 0), Metric("m", math.inf, 1),
                                     Metric("m", -math.inf, 2)])
    values = [m.value for m in store.get_metrics(run.id)]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


def test_log_batch_many_values_in_one_call(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, metrics=[Metric("x", i / 7, i, T0) for i in range(2000)])
    got = store.get_metrics(run.id)
    assert [m.step for m in got] == list(range(2000))
    assert got[3].value == 3 / 7


def test_params_are_idempotent_and_fixed(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, params={"lr": "0.1"})
    store.log_batch(run.id, params={"lr": "0.1", "depth": "3"})
    with pytest.raises(StorageError, match="lr"):
        store.log_batch(run.id, params={"lr": "0.2", "new": "x"}, metrics=[Metric("m", 1.0)], tags={"t": "1"})
    # The failed call stored nothing at all: one transaction per call.
    assert store.get_params(run.id) == {"depth": "3", "lr": "0.1"}
    assert store.get_metrics(run.id) == []
    assert store.get_tags(run.id) == {}


def test_tags_can_be_overwritten(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, tags={"stage": "a", "keep": "k"})
    store.log_batch(run.id, tags={"stage": "b"})
    assert store.get_tags(run.id) == {"keep": "k", "stage": "b"}


def test_tracking_unknown_run_raises_not_found(store: RunStore) -> None:
    with pytest.raises(RunNotFound):
        store.log_batch("nope", metrics=[Metric("m", 1.0)])
    with pytest.raises(RunNotFound):
        store.log_batch("nope", params={"a": "b"})
    with pytest.raises(RunNotFound):
        store.log_batch("nope", tags={"a": "b"})
    with pytest.raises(RunNotFound):
        store.log_batch("nope")
    for read in (store.get_params, store.get_tags, store.get_metrics, store.list_run_artifacts):
        with pytest.raises(RunNotFound):
            read("nope")


def test_empty_reads_of_a_known_run(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id)
    assert store.get_params(run.id) == {}
    assert store.get_tags(run.id) == {}
    assert store.get_metrics(run.id) == []
    assert store.list_run_artifacts(run.id) == {}


def test_run_artifacts(store: RunStore) -> None:
    run = make_run()
    store.create_run(run)
    store.add_run_artifact(run.id, "model", "a" * 64)
    store.add_run_artifact(run.id, "report.html", "b" * 64)
    store.add_run_artifact(run.id, "model", "c" * 64)
    assert store.list_run_artifacts(run.id) == {"model": "c" * 64, "report.html": "b" * 64}
    with pytest.raises(RunNotFound):
        store.add_run_artifact("nope", "model", "a" * 64)


@PROPERTY
@given(params=st.dictionaries(TEXT, TEXT, max_size=6))
def test_writing_the_same_params_twice_stores_them_once(store: RunStore, params: dict[str, str]) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, params=params)
    store.log_batch(run.id, params=params)
    assert store.get_params(run.id) == params


@PROPERTY
@given(metrics=st.lists(st.builds(
    Metric, key=st.sampled_from(["a", "b", "é", "Z"]),
    value=st.floats(allow_nan=False, width=64), step=st.integers(-5, 5),
    timestamp=st.none() | st.sampled_from([T0, T0 + timedelta(seconds=1), T0.astimezone(PLUS2)]),
), max_size=12))
def test_metrics_come_back_sorted_like_python_sorts_them(store: RunStore, metrics: list[Metric]) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, metrics=metrics)
    order = sorted(range(len(metrics)), key=lambda i: (
        metrics[i].key, metrics[i].step, metrics[i].timestamp is not None, metrics[i].timestamp or T0, i))
    assert store.get_metrics(run.id) == [metrics[i] for i in order]
