"""Leases in the MetadataStore contract: one owner at a time, on memory, SQLite and PostgreSQL alike."""

from __future__ import annotations

import threading
from datetime import timedelta

from tidal.core.ports import MetadataStore

from .test_metadata_store import PLUS2, T0, uid


def test_a_free_lease_is_taken_and_held_until_it_expires(store: MetadataStore) -> None:
    name = uid()
    assert store.acquire_lease(name, "a", T0 + timedelta(minutes=10), T0)
    assert not store.acquire_lease(name, "b", T0 + timedelta(minutes=20), T0 + timedelta(minutes=5))
    # The holder renews; the new expiry counts.
    assert store.acquire_lease(name, "a", T0 + timedelta(minutes=30), T0 + timedelta(minutes=9))
    assert not store.acquire_lease(name, "b", T0 + timedelta(minutes=40), T0 + timedelta(minutes=29))
    # Expired (until <= now): anyone may take it, in any time zone.
    later = (T0 + timedelta(minutes=30)).astimezone(PLUS2)
    assert store.acquire_lease(name, "b", later + timedelta(minutes=10), later)
    assert not store.acquire_lease(name, "a", later + timedelta(minutes=10), later + timedelta(minutes=1))


def test_release_frees_the_lease_only_for_its_owner(store: MetadataStore) -> None:
    name = uid()
    until = T0 + timedelta(hours=1)
    assert store.acquire_lease(name, "a", until, T0)
    store.release_lease(name, "b")  # not b's: nothing happens
    assert not store.acquire_lease(name, "b", until, T0)
    store.release_lease(name, "a")
    assert store.acquire_lease(name, "b", until, T0)
    store.release_lease(uid(), "a")  # an unknown lease: a no-op


def test_leases_are_independent(store: MetadataStore) -> None:
    one, two = uid(), uid()
    until = T0 + timedelta(hours=1)
    assert store.acquire_lease(one, "a", until, T0)
    assert store.acquire_lease(two, "b", until, T0)


def test_concurrent_takers_one_wins(store: MetadataStore) -> None:
    name = uid()
    threads = 8
    barrier = threading.Barrier(threads)
    won: list[str] = []

    def take(n: int) -> None:
        barrier.wait()
        if store.acquire_lease(name, f"owner-{n}", T0 + timedelta(minutes=5), T0):
            won.append(f"owner-{n}")

    workers = [threading.Thread(target=take, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(won) == 1
