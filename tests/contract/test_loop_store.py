"""The LoopStore contract (leases, key/value state, monitoring reports): every adapter (memory, SQLite,
PostgreSQL) passes it. Leases: one owner at a time; reports: by id or unique prefix, newest first."""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.core.errors import ReportNotFound, StorageError
from tidal.core.ports import LoopStore

from ._make import JSON, NESTED, PLUS2, PROPERTY, T0, TEXT, assert_utc, make_report, uid


def test_is_a_loop_store(store: LoopStore) -> None:
    assert isinstance(store, LoopStore)


# -- leases ----------------------------------------------------------------------------------------------------


def test_a_free_lease_is_taken_and_held_until_it_expires(store: LoopStore) -> None:
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


def test_release_frees_the_lease_only_for_its_owner(store: LoopStore) -> None:
    name = uid()
    until = T0 + timedelta(hours=1)
    assert store.acquire_lease(name, "a", until, T0)
    store.release_lease(name, "b")  # not b's: nothing happens
    assert not store.acquire_lease(name, "b", until, T0)
    store.release_lease(name, "a")
    assert store.acquire_lease(name, "b", until, T0)
    store.release_lease(uid(), "a")  # an unknown lease: a no-op


def test_leases_are_independent(store: LoopStore) -> None:
    one, two = uid(), uid()
    until = T0 + timedelta(hours=1)
    assert store.acquire_lease(one, "a", until, T0)
    assert store.acquire_lease(two, "b", until, T0)


def test_concurrent_takers_one_wins(store: LoopStore) -> None:
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


# -- state -----------------------------------------------------------------------------------------------------


def test_state_get_put_overwrite(store: LoopStore) -> None:
    assert store.get_state("controller") is None
    store.put_state("controller", {"last": "2024-05-01", "nested": NESTED})
    assert store.get_state("controller") == {"last": "2024-05-01", "nested": NESTED}
    store.put_state("controller", [1, "two"])
    assert store.get_state("controller") == [1, "two"]
    store.put_state("n", 3)
    assert store.get_state("n") == 3


@PROPERTY
@given(value=JSON)
def test_state_round_trips_any_json(store: LoopStore, value: Any) -> None:
    key = uid()
    store.put_state(key, value)
    store.put_state(key, value)
    assert store.get_state(key) == value


# -- monitoring reports ----------------------------------------------------------------------------------------


def test_report_round_trip_keeps_every_field(store: LoopStore) -> None:
    report = make_report(created_at=datetime(2024, 5, 1, 14, 0, 0, 7, tzinfo=PLUS2), drifted=True,
                         alerts=["drift: 3 of 5 features", "accuracy 0.71 < floor 0.80 ✗"], body=NESTED)
    store.save_report(report)
    got = store.get_report(report.id)
    assert got == report
    assert got.created_at == datetime(2024, 5, 1, 12, 0, 0, 7, tzinfo=UTC)
    assert_utc(got.created_at)
    assert got.drifted is True and isinstance(got.drift_share, float)


def test_a_nan_drift_share_survives(store: LoopStore) -> None:
    report = make_report(drift_share=math.nan)
    store.save_report(report)
    assert math.isnan(store.get_report(report.id).drift_share)


def test_save_report_is_idempotent_by_id(store: LoopStore) -> None:
    report = make_report()
    store.save_report(report)
    store.save_report(report)
    store.save_report(replace(report, drifted=True, alerts=["later"]))  # the first one stored wins
    assert store.get_report(report.id) == report
    assert store.list_reports() == [report]


def test_get_report_by_unique_prefix(store: LoopStore) -> None:
    report = make_report("abcd1234-" + uid())
    other = make_report("abce9999-" + uid())
    store.save_report(report)
    store.save_report(other)
    assert store.get_report("abcd") == report
    assert store.get_report("abcd1234") == report
    assert store.get_report(other.id) == other


def test_report_prefix_errors(store: LoopStore) -> None:
    a = make_report("abcd1234-" + uid())
    b = make_report("abcd5678-" + uid())
    store.save_report(a)
    store.save_report(b)
    with pytest.raises(ReportNotFound, match="ambiguous") as info:
        store.get_report("abcd")
    assert a.id in str(info.value) and b.id in str(info.value)
    with pytest.raises(ReportNotFound, match="at least 4"):
        store.get_report("abc")
    with pytest.raises(ReportNotFound, match="no report"):
        store.get_report("ABCD1234")  # prefixes match case-sensitively
    with pytest.raises(ReportNotFound, match="no report"):
        store.get_report("ab_d")  # LIKE wildcards are taken literally
    with pytest.raises(ReportNotFound, match="no report"):
        store.get_report("zzzz")


def test_list_reports_newest_first_with_model_and_limit(store: LoopStore) -> None:
    reports = [make_report(model="a" if i % 2 else "b", created_at=T0 + timedelta(minutes=i)) for i in range(6)]
    for r in reversed(reports):
        store.save_report(r)
    assert store.list_reports() == reports[::-1]
    assert store.list_reports(model="a") == [reports[5], reports[3], reports[1]]
    assert store.list_reports(model="b", limit=2) == [reports[4], reports[2]]
    assert store.list_reports(limit=0) == []
    assert store.list_reports(model="nobody") == []


def test_reports_at_the_same_time_are_ordered_by_id(store: LoopStore) -> None:
    reports = [make_report(f"r{i}-{uid()}") for i in range(3)]
    for r in reports:
        store.save_report(r)
    assert store.list_reports() == sorted(reports, key=lambda r: r.id, reverse=True)


def test_a_report_that_is_not_json_is_refused(store: LoopStore) -> None:
    report = make_report(body={"when": datetime.now(UTC)})
    with pytest.raises(StorageError, match=r"report\.body"):
        store.save_report(report)
    with pytest.raises(ReportNotFound):
        store.get_report(report.id)


@PROPERTY
@given(body=st.dictionaries(TEXT, JSON, max_size=5), alerts=st.lists(TEXT, max_size=3),
       share=st.floats(0, 1), drifted=st.booleans())
def test_writing_the_same_report_twice_stores_it_once(
    store: LoopStore, body: dict[str, Any], alerts: list[str], share: float, drifted: bool,
) -> None:
    model = uid()
    report = make_report(model=model, body=body, alerts=alerts, drift_share=share, drifted=drifted)
    store.save_report(report)
    store.save_report(report)
    assert store.list_reports(model=model) == [report]
