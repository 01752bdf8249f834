"""The ModelStore contract (model versions, aliases, events): every adapter passes it."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from tidal.core.entities import Event, ModelState
from tidal.core.errors import ModelNotFound
from tidal.core.ports import ModelStore
from tidal.core.signature import Lineage, Signature

from ._make import NESTED, PLUS2, T0, assert_utc, make_mv


def test_is_a_model_store(store: ModelStore) -> None:
    assert isinstance(store, ModelStore)


# -- model versions and aliases --------------------------------------------------------------------------------


def test_model_versions_are_numbered_per_name(store: ModelStore) -> None:
    got = [store.create_model_version(make_mv("churn", version=99)).version for _ in range(3)]
    assert got == [1, 2, 3]
    assert store.create_model_version(make_mv("elec2")).version == 1
    assert store.create_model_version(make_mv("churn")).version == 4
    assert [(mv.name, mv.version) for mv in store.list_model_versions()] == [
        ("churn", 1), ("churn", 2), ("churn", 3), ("churn", 4), ("elec2", 1)]
    assert [mv.version for mv in store.list_model_versions("elec2")] == [1]
    assert store.list_model_versions("none") == []


def test_model_version_round_trip(store: ModelStore) -> None:
    mv = make_mv(
        "élec2", state=ModelState.VALIDATED, created_at=T0.astimezone(PLUS2),
        signature=Signature(columns={"nswprice": "numeric"}, extra={"note": "ü"}),
        metrics={"auc": 0.91, "f1": 0.5}, profile=NESTED, lineage=Lineage(run_id="r1", extra={"snapshots": ["s1"]}),
        reasons=["auc 0.91 >= 0.8 ✓"], info={"size": 12},
    )
    stored = store.create_model_version(mv)
    assert stored == replace(mv, version=1)
    got = store.get_model_version("élec2", 1)
    assert got == stored
    assert isinstance(got.state, ModelState)
    assert_utc(got.created_at)


def test_list_without_profiles_leaves_only_the_profile_out(store: ModelStore) -> None:
    # the dashboard's list of versions reads no profile: the largest field of a version by far
    made = [store.create_model_version(make_mv("churn", metrics={"auc": 0.8 + i / 100}, profile=NESTED,
                                               reasons=[f"r{i}"], info={"i": i})) for i in range(3)]
    store.create_model_version(make_mv("elec2", profile=NESTED))
    light = store.list_model_versions("churn", profiles=False)
    assert light == [replace(mv, profile={}) for mv in made]
    assert [mv.profile for mv in store.list_model_versions("churn")] == [NESTED] * 3
    assert [(mv.name, mv.version) for mv in store.list_model_versions(profiles=False)] == [
        ("churn", 1), ("churn", 2), ("churn", 3), ("elec2", 1)]


def test_update_model_version_merges_metrics_and_info(store: ModelStore) -> None:
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


def test_unknown_model_version_raises_not_found(store: ModelStore) -> None:
    store.create_model_version(make_mv())
    with pytest.raises(ModelNotFound):
        store.get_model_version("churn", 2)
    with pytest.raises(ModelNotFound):
        store.get_model_version("other", 1)
    with pytest.raises(ModelNotFound):
        store.update_model_version("churn", 2, state=ModelState.VALIDATED)


def test_concurrent_version_creation_never_duplicates(store: ModelStore) -> None:
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


def test_aliases(store: ModelStore) -> None:
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


def test_alias_to_unknown_version_raises_not_found(store: ModelStore) -> None:
    store.create_model_version(make_mv())
    with pytest.raises(ModelNotFound):
        store.set_alias("churn", "champion", 2, T0)
    with pytest.raises(ModelNotFound):
        store.set_alias("other", "champion", 1, T0)
    assert store.list_aliases() == []


# -- events ----------------------------------------------------------------------------------------------------


def test_events_get_increasing_ids_and_round_trip(store: ModelStore) -> None:
    event = Event(kind="gate.failed", subject="model:churn:3", message="auc 0.7 < 0.8 ✗",
                  time=T0.astimezone(PLUS2), data=NESTED, id=12345)
    first = store.append_event(event)
    second = store.append_event(replace(event, message="again"))
    assert first.id is not None and second.id is not None and second.id > first.id
    assert first == replace(event, id=first.id)
    listed = store.list_events()
    assert listed == [first, second]
    assert_utc(listed[0].time)


def test_list_events_filters(store: ModelStore) -> None:
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
