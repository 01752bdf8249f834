"""The MetadataStore contract: every adapter (memory, SQLite, PostgreSQL) passes the same tests.

What only the SQL stores have (persistence, migrations on open, URL errors) is in test_sql_store.py.
"""

from __future__ import annotations

import math
import threading
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidal.core.entities import (
    CacheEntry,
    Event,
    Metric,
    ModelState,
    ModelVersion,
    Run,
    RunStatus,
    SnapshotInfo,
    StepRecord,
    StepStatus,
)
from tidal.core.errors import ModelNotFound, RunNotFound, SnapshotNotFound, StorageError
from tidal.core.ports import MetadataStore
from tidal.storage import open_metadata_store

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
PLUS2 = timezone(timedelta(hours=2))
NESTED: dict[str, Any] = {
    "list": [1, 2.5, -0.0, None, True, False, {"ü": "日本語 ✓", "emoji": "🌊"}],
    "deep": {"a": {"b": {"c": [[], {}, [1, [2, [3]]]]}}},
    "quote": "it's \"x\" \\ \n\t",
    "big": 2**62,
    "tiny": 1e-300,
}

# Text PostgreSQL can store (no NUL character) and that JSON round-trips.
TEXT = st.text(alphabet=st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=20)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
DATETIMES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
    timezones=st.sampled_from([UTC, PLUS2, timezone(timedelta(hours=-7, minutes=-30))]),
)
# One store serves every example of a property test: each example writes under fresh keys.
PROPERTY = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


def uid() -> str:
    return uuid.uuid4().hex


def make_run(
    run_id: str | None = None, *, project: str = "proj", started_at: datetime = T0, **kw: Any,
) -> Run:
    return Run(id=run_id or uid(), project=project, status=RunStatus.RUNNING, started_at=started_at, **kw)


def make_mv(name: str = "churn", **kw: Any) -> ModelVersion:
    fields: dict[str, Any] = dict(
        name=name, version=0, state=ModelState.CANDIDATE, created_at=T0, run_id="r1",
        artifact_digest="a" * 64, format="skops", task="classification",
    )
    fields.update(kw)
    return ModelVersion(**fields)


def make_snapshot(digest: str | None = None, *, project: str = "proj", created_at: datetime = T0,
                  **kw: Any) -> SnapshotInfo:
    fields: dict[str, Any] = dict(
        digest=digest or uid() + uid(), project=project, source="file:data.csv", rows=45312,
        columns=["a", "b"], schema={"a": "float", "b": "category"}, profile=NESTED, created_at=created_at,
    )
    fields.update(kw)
    return SnapshotInfo(**fields)


def assert_utc(value: datetime | None) -> None:
    assert value is not None and value.tzinfo is not None and value.utcoffset() == timedelta(0)


def test_is_a_metadata_store(store: MetadataStore) -> None:
    assert isinstance(store, MetadataStore)


# -- runs --------------------------------------------------------------------------------------------------


def test_run_round_trip_keeps_every_field(store: MetadataStore) -> None:
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


def test_naive_datetimes_are_taken_as_utc(store: MetadataStore) -> None:
    run = make_run(started_at=datetime(2024, 1, 2, 3, 4, 5))
    store.create_run(run)
    got = store.get_run(run.id)
    assert got.started_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert_utc(got.started_at)


def test_create_run_twice_raises(store: MetadataStore) -> None:
    run = make_run()
    store.create_run(run)
    with pytest.raises(StorageError, match="already exists"):
        store.create_run(run)


def test_finish_run_sets_status_and_merges_info(store: MetadataStore) -> None:
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


def test_finish_unknown_run_raises_not_found(store: MetadataStore) -> None:
    with pytest.raises(RunNotFound):
        store.finish_run("nope", RunStatus.SUCCEEDED, T0)


def test_get_unknown_run_raises_not_found(store: MetadataStore) -> None:
    with pytest.raises(RunNotFound):
        store.get_run("0123456789abcdef")


def test_get_run_by_unique_prefix(store: MetadataStore) -> None:
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


def test_run_prefix_treats_like_wildcards_literally(store: MetadataStore) -> None:
    store.create_run(make_run("ab_cd-1"))
    store.create_run(make_run("abXcd-2"))
    store.create_run(make_run("50%-off"))
    assert store.get_run("ab_c").id == "ab_cd-1"
    assert store.get_run("50%-").id == "50%-off"
    with pytest.raises(RunNotFound):
        store.get_run("5%-o")


def test_ambiguous_prefix_names_the_matches(store: MetadataStore) -> None:
    for i in range(7):
        store.create_run(make_run(f"feed{i}"))
    with pytest.raises(RunNotFound) as info:
        store.get_run("feed")
    message = str(info.value)
    assert "feed0" in message and "feed4" in message and "..." in message and "feed6" not in message


def test_list_runs_newest_first_with_project_and_limit(store: MetadataStore) -> None:
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


# -- steps -------------------------------------------------------------------------------------------------


def test_steps_round_trip_in_position_order_and_replace(store: MetadataStore) -> None:
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


def test_steps_of_unknown_run_raise_keyerror(store: MetadataStore) -> None:
    with pytest.raises(RunNotFound):
        store.save_step(StepRecord(run_id="nope", name="x", status=StepStatus.DONE))
    with pytest.raises(RunNotFound):
        store.list_steps("nope")
    run = make_run()
    store.create_run(run)
    assert store.list_steps(run.id) == []


# -- tracking ----------------------------------------------------------------------------------------------


def test_log_batch_round_trip(store: MetadataStore) -> None:
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


def test_metrics_order_key_step_timestamp_then_logged(store: MetadataStore) -> None:
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


def test_non_finite_metric_values_survive(store: MetadataStore) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, metrics=[Metric("m", math.nan, 0), Metric("m", math.inf, 1),
                                     Metric("m", -math.inf, 2)])
    values = [m.value for m in store.get_metrics(run.id)]
    assert math.isnan(values[0]) and values[1:] == [math.inf, -math.inf]


def test_log_batch_many_values_in_one_call(store: MetadataStore) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, metrics=[Metric("x", i / 7, i, T0) for i in range(2000)])
    got = store.get_metrics(run.id)
    assert [m.step for m in got] == list(range(2000))
    assert got[3].value == 3 / 7


def test_params_are_idempotent_and_fixed(store: MetadataStore) -> None:
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


def test_tags_can_be_overwritten(store: MetadataStore) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, tags={"stage": "a", "keep": "k"})
    store.log_batch(run.id, tags={"stage": "b"})
    assert store.get_tags(run.id) == {"keep": "k", "stage": "b"}


def test_tracking_unknown_run_raises_not_found(store: MetadataStore) -> None:
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


def test_empty_reads_of_a_known_run(store: MetadataStore) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id)
    assert store.get_params(run.id) == {}
    assert store.get_tags(run.id) == {}
    assert store.get_metrics(run.id) == []
    assert store.list_run_artifacts(run.id) == {}


def test_run_artifacts(store: MetadataStore) -> None:
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
def test_writing_the_same_params_twice_stores_them_once(store: MetadataStore, params: dict[str, str]) -> None:
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
def test_metrics_come_back_sorted_like_python_sorts_them(store: MetadataStore, metrics: list[Metric]) -> None:
    run = make_run()
    store.create_run(run)
    store.log_batch(run.id, metrics=metrics)
    order = sorted(range(len(metrics)), key=lambda i: (
        metrics[i].key, metrics[i].step, metrics[i].timestamp is not None, metrics[i].timestamp or T0, i))
    assert store.get_metrics(run.id) == [metrics[i] for i in order]


# -- snapshots ---------------------------------------------------------------------------------------------


def test_snapshot_round_trip(store: MetadataStore) -> None:
    snap = make_snapshot(created_at=T0.astimezone(PLUS2))
    store.put_snapshot(snap)
    got = store.get_snapshot(snap.digest)
    assert got == snap
    assert_utc(got.created_at)


def test_unknown_snapshot_raises_not_found(store: MetadataStore) -> None:
    with pytest.raises(SnapshotNotFound):
        store.get_snapshot("0" * 64)


def test_put_snapshot_is_idempotent_by_digest(store: MetadataStore) -> None:
    snap = make_snapshot()
    store.put_snapshot(snap)
    store.put_snapshot(replace(snap, rows=1))  # same digest: the first one stays
    assert store.get_snapshot(snap.digest) == snap
    assert len(store.list_snapshots()) == 1


def test_list_snapshots_newest_first(store: MetadataStore) -> None:
    snaps = [make_snapshot(f"{i:064x}", project="a" if i % 2 else "b", created_at=T0 + timedelta(hours=i))
             for i in range(5)]
    for snap in snaps:
        store.put_snapshot(snap)
    assert store.list_snapshots() == snaps[::-1]
    assert store.list_snapshots("a") == [snaps[3], snaps[1]]
    assert store.list_snapshots(limit=2) == [snaps[4], snaps[3]]
    assert store.list_snapshots(limit=0) == []


@PROPERTY
@given(profile=JSON, columns=st.lists(TEXT, max_size=5), when=DATETIMES)
def test_writing_the_same_snapshot_twice_stores_it_once(
    store: MetadataStore, profile: Any, columns: list[str], when: datetime,
) -> None:
    snap = make_snapshot(project=uid(), profile={"p": profile}, columns=columns, created_at=when)
    store.put_snapshot(snap)
    store.put_snapshot(snap)
    assert store.list_snapshots(snap.project) == [snap]
    assert store.get_snapshot(snap.digest) == snap


# -- step cache --------------------------------------------------------------------------------------------


def test_cache_entry_round_trip_and_replace(store: MetadataStore) -> None:
    entry = CacheEntry(key="k" + uid(), step="train", run_id="r1", outputs={"model": "d" * 64, "x": NESTED},
                       created_at=T0.astimezone(PLUS2), fingerprint={"params": {"lr": 0.1}})
    assert store.get_cache_entry(entry.key) is None
    store.put_cache_entry(entry)
    got = store.get_cache_entry(entry.key)
    assert got == entry
    assert got is not None
    assert_utc(got.created_at)
    newer = replace(entry, run_id="r2", outputs={}, created_at=T0 + timedelta(days=1))
    store.put_cache_entry(newer)
    assert store.get_cache_entry(entry.key) == newer


def test_latest_cache_entry(store: MetadataStore) -> None:
    def entry(key: str, step: str, run_id: str, minutes: int) -> CacheEntry:
        return CacheEntry(key=key, step=step, run_id=run_id, outputs={},
                          created_at=T0 + timedelta(minutes=minutes))

    entries = [entry("k1", "train", "r1", 1), entry("k2", "train", "r2", 3), entry("k3", "train", "r3", 2),
               entry("k4", "prepare", "r4", 9)]
    for e in entries:
        store.put_cache_entry(e)
    assert store.latest_cache_entry("train") == entries[1]
    assert store.latest_cache_entry("train", ["r1", "r3"]) == entries[2]
    assert store.latest_cache_entry("train", iter(["r1"])) == entries[0]
    assert store.latest_cache_entry("train", []) is None
    assert store.latest_cache_entry("train", ["r4"]) is None
    assert store.latest_cache_entry("evaluate") is None
    many = [f"x{i}" for i in range(1200)] + ["r1", "r3"] + [f"y{i}" for i in range(600)]
    assert store.latest_cache_entry("train", many) == entries[2]


@PROPERTY
@given(outputs=st.dictionaries(TEXT, JSON, max_size=4), fingerprint=st.dictionaries(TEXT, JSON, max_size=4),
       when=DATETIMES)
def test_writing_the_same_cache_entry_twice_stores_it_once(
    store: MetadataStore, outputs: dict[str, Any], fingerprint: dict[str, Any], when: datetime,
) -> None:
    step = uid()
    entry = CacheEntry(key=uid(), step=step, run_id="r", outputs=outputs, created_at=when,
                       fingerprint=fingerprint)
    store.put_cache_entry(entry)
    store.put_cache_entry(entry)
    assert store.get_cache_entry(entry.key) == entry
    assert store.latest_cache_entry(step) == entry


# -- model registry ----------------------------------------------------------------------------------------


def test_model_versions_are_numbered_per_name(store: MetadataStore) -> None:
    got = [store.create_model_version(make_mv("churn", version=99)).version for _ in range(3)]
    assert got == [1, 2, 3]
    assert store.create_model_version(make_mv("elec2")).version == 1
    assert store.create_model_version(make_mv("churn")).version == 4
    assert [(mv.name, mv.version) for mv in store.list_model_versions()] == [
        ("churn", 1), ("churn", 2), ("churn", 3), ("churn", 4), ("elec2", 1)]
    assert [mv.version for mv in store.list_model_versions("elec2")] == [1]
    assert store.list_model_versions("none") == []


def test_model_version_round_trip(store: MetadataStore) -> None:
    mv = make_mv(
        "élec2", state=ModelState.VALIDATED, created_at=T0.astimezone(PLUS2), signature={"nswprice": "f"},
        metrics={"auc": 0.91, "f1": 0.5}, profile=NESTED, lineage={"run_id": "r1", "snapshots": ["s1"]},
        reasons=["auc 0.91 >= 0.8 ✓"], info={"size": 12},
    )
    stored = store.create_model_version(mv)
    assert stored == replace(mv, version=1)
    got = store.get_model_version("élec2", 1)
    assert got == stored
    assert isinstance(got.state, ModelState)
    assert_utc(got.created_at)


def test_update_model_version_merges_metrics_and_info(store: MetadataStore) -> None:
    store.create_model_version(make_mv(metrics={"auc": 0.9}, info={"a": 1}, reasons=["old"]))
    updated = store.update_model_version("churn", 1, state=ModelState.REJECTED, reasons=["auc < 0.95"],
                                         metrics={"f1": 0.4}, info={"b": {"c": 2}})
    assert updated.state is ModelState.REJECTED
    assert updated.reasons == ["auc < 0.95"]
    assert updated.metrics == {"auc": 0.9, "f1": 0.4}
    assert updated.info == {"a": 1, "b": {"c": 2}}
    assert store.get_model_version("churn", 1) == updated
    assert store.update_model_version("churn", 1) == updated  # nothing to change
    only_state = store.update_model_version("churn", 1, state=ModelState.RETIRED)
    assert only_state == replace(updated, state=ModelState.RETIRED)


def test_unknown_model_version_raises_not_found(store: MetadataStore) -> None:
    store.create_model_version(make_mv())
    with pytest.raises(ModelNotFound):
        store.get_model_version("churn", 2)
    with pytest.raises(ModelNotFound):
        store.get_model_version("other", 1)
    with pytest.raises(ModelNotFound):
        store.update_model_version("churn", 2, state=ModelState.VALIDATED)


def test_concurrent_version_creation_never_duplicates(store: MetadataStore) -> None:
    threads, per_thread = 4, 8
    barrier = threading.Barrier(threads)
    results: list[int] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            barrier.wait()
            for _ in range(per_thread):
                results.append(store.create_model_version(make_mv("race")).version)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    expected = list(range(1, threads * per_thread + 1))
    assert sorted(results) == expected
    assert [mv.version for mv in store.list_model_versions("race")] == expected


def test_aliases(store: MetadataStore) -> None:
    for _ in range(3):
        store.create_model_version(make_mv("churn"))
    store.create_model_version(make_mv("abc"))
    assert store.get_alias("churn", "champion") is None
    assert store.set_alias("churn", "champion", 1, T0) is None
    assert store.set_alias("churn", "champion", 2, T0.astimezone(PLUS2) + timedelta(hours=1)) == 1
    assert store.set_alias("churn", "challenger", 3, T0) is None
    assert store.set_alias("abc", "champion", 1, T0) is None
    champion = store.get_alias("churn", "champion")
    assert champion is not None
    assert (champion.name, champion.alias, champion.version) == ("churn", "champion", 2)
    assert champion.updated_at == T0 + timedelta(hours=1)
    assert_utc(champion.updated_at)
    assert [(a.name, a.alias) for a in store.list_aliases()] == [
        ("abc", "champion"), ("churn", "challenger"), ("churn", "champion")]
    assert [a.alias for a in store.list_aliases("churn")] == ["challenger", "champion"]
    store.delete_alias("churn", "champion")
    store.delete_alias("churn", "champion")  # deleting what is gone is a no-op
    assert store.get_alias("churn", "champion") is None
    assert store.set_alias("churn", "champion", 3, T0) is None
    assert [a.alias for a in store.list_aliases("churn")] == ["challenger", "champion"]
    assert store.list_aliases("none") == []


def test_alias_to_unknown_version_raises_not_found(store: MetadataStore) -> None:
    store.create_model_version(make_mv())
    with pytest.raises(ModelNotFound):
        store.set_alias("churn", "champion", 2, T0)
    with pytest.raises(ModelNotFound):
        store.set_alias("other", "champion", 1, T0)
    assert store.list_aliases() == []


# -- events and state --------------------------------------------------------------------------------------


def test_events_get_increasing_ids_and_round_trip(store: MetadataStore) -> None:
    event = Event(kind="gate.failed", subject="model:churn:3", message="auc 0.7 < 0.8 ✗",
                  time=T0.astimezone(PLUS2), data=NESTED, id=12345)
    first = store.append_event(event)
    second = store.append_event(replace(event, message="again"))
    assert first.id is not None and second.id is not None and second.id > first.id
    assert first == replace(event, id=first.id)
    listed = store.list_events()
    assert listed == [first, second]
    assert_utc(listed[0].time)


def test_list_events_filters(store: MetadataStore) -> None:
    specs = [("promoted", "model:elec2:1"), ("gate.failed", "model:elec2:2"), ("promoted", "model:elec20:1"),
             ("retrain", "run:abc"), ("promoted", "model:elec2:3"), ("promoted", "MODEL:elec2:4"),
             ("promoted", "model:elXc2:5"), ("promoted", "model:el_c2:6")]
    ids = [store.append_event(Event(kind=k, subject=s, message=f"m{i}", time=T0)).id
           for i, (k, s) in enumerate(specs)]

    def subjects(**kw: Any) -> list[str]:
        return [e.subject for e in store.list_events(**kw)]

    assert subjects() == [s for _, s in specs]
    assert subjects(subject="model:elec2:1") == ["model:elec2:1"]
    assert subjects(subject="model:elec2:*") == ["model:elec2:1", "model:elec2:2", "model:elec2:3"]
    assert subjects(subject="model:el_c2:*") == ["model:el_c2:6"]  # "_" is literal, not a wildcard
    assert subjects(subject="model:elec2") == []  # no "*": exact only
    assert subjects(subject="*") == [s for _, s in specs]
    assert subjects(kind="promoted", subject="model:elec2:*") == ["model:elec2:1", "model:elec2:3"]
    assert subjects(since_id=ids[3]) == [s for _, s in specs[4:]]
    assert subjects(since_id=ids[-1]) == []
    assert subjects(limit=2) == ["model:elXc2:5", "model:el_c2:6"]  # the newest two, oldest first
    assert subjects(kind="promoted", limit=2, since_id=ids[0]) == ["model:elXc2:5", "model:el_c2:6"]
    assert subjects(limit=0) == []
    assert subjects(kind="nothing") == []


def test_state_get_put_overwrite(store: MetadataStore) -> None:
    assert store.get_state("controller") is None
    store.put_state("controller", {"last": "2024-05-01", "nested": NESTED})
    assert store.get_state("controller") == {"last": "2024-05-01", "nested": NESTED}
    store.put_state("controller", [1, "two"])
    assert store.get_state("controller") == [1, "two"]
    store.put_state("n", 3)
    assert store.get_state("n") == 3


@PROPERTY
@given(value=JSON)
def test_state_round_trips_any_json(store: MetadataStore, value: Any) -> None:
    key = uid()
    store.put_state(key, value)
    store.put_state(key, value)
    assert store.get_state(key) == value


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
