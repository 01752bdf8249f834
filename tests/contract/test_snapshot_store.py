"""The SnapshotStore contract (snapshots, the step cache): every adapter passes it."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.core.entities import CacheEntry
from tidal.core.errors import SnapshotNotFound
from tidal.core.ports import SnapshotStore

from ._make import DATETIMES, JSON, NESTED, PLUS2, PROPERTY, T0, TEXT, assert_utc, make_snapshot, uid


def test_is_a_snapshot_store(store: SnapshotStore) -> None:
    assert isinstance(store, SnapshotStore)


# -- snapshots -------------------------------------------------------------------------------------------------


def test_snapshot_round_trip(store: SnapshotStore) -> None:
    snap = make_snapshot(created_at=T0.astimezone(PLUS2))
    store.put_snapshot(snap)
    got = store.get_snapshot(snap.digest)
    assert got == snap
    assert_utc(got.created_at)


def test_unknown_snapshot_raises_not_found(store: SnapshotStore) -> None:
    with pytest.raises(SnapshotNotFound):
        store.get_snapshot("0" * 64)


def test_put_snapshot_is_idempotent_by_digest(store: SnapshotStore) -> None:
    snap = make_snapshot()
    store.put_snapshot(snap)
    store.put_snapshot(replace(snap, rows=1))  # same digest: the first one stays
    assert store.get_snapshot(snap.digest) == snap
    assert len(store.list_snapshots()) == 1


def test_list_snapshots_newest_first(store: SnapshotStore) -> None:
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
    store: SnapshotStore, profile: Any, columns: list[str], when: datetime,
) -> None:
    snap = make_snapshot(project=uid(), profile={"p": profile}, columns=columns, created_at=when)
    store.put_snapshot(snap)
    store.put_snapshot(snap)
    assert store.list_snapshots(snap.project) == [snap]
    assert store.get_snapshot(snap.digest) == snap


# -- step cache ------------------------------------------------------------------------------------------------


def test_cache_entry_round_trip_and_replace(store: SnapshotStore) -> None:
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


def test_latest_cache_entry(store: SnapshotStore) -> None:
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
    store: SnapshotStore, outputs: dict[str, Any], fingerprint: dict[str, Any], when: datetime,
) -> None:
    step = uid()
    entry = CacheEntry(key=uid(), step=step, run_id="r", outputs=outputs, created_at=when,
                       fingerprint=fingerprint)
    store.put_cache_entry(entry)
    store.put_cache_entry(entry)
    assert store.get_cache_entry(entry.key) == entry
    assert store.latest_cache_entry(step) == entry
