"""Monitoring reports in the MetadataStore contract: memory, SQLite and PostgreSQL alike."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.core.entities import Report
from tidal.core.errors import ReportNotFound, StorageError
from tidal.core.ports import MetadataStore

from .test_metadata_store import JSON, NESTED, PLUS2, PROPERTY, T0, TEXT, assert_utc, uid


def make_report(report_id: str | None = None, *, model: str = "churn", created_at: datetime = T0,
                **kw: Any) -> Report:
    fields: dict[str, Any] = dict(
        id=report_id or uid(), model=model, version=3, created_at=created_at,
        window={"last": 1000, "since": None}, drift_share=0.4, drifted=False,
    )
    fields.update(kw)
    return Report(**fields)


def test_report_round_trip_keeps_every_field(store: MetadataStore) -> None:
    report = make_report(created_at=datetime(2024, 5, 1, 14, 0, 0, 7, tzinfo=PLUS2), drifted=True,
                         alerts=["drift: 3 of 5 features", "accuracy 0.71 < floor 0.80 ✗"], body=NESTED)
    store.save_report(report)
    got = store.get_report(report.id)
    assert got == report
    assert got.created_at == datetime(2024, 5, 1, 12, 0, 0, 7, tzinfo=UTC)
    assert_utc(got.created_at)
    assert got.drifted is True and isinstance(got.drift_share, float)


def test_a_nan_drift_share_survives(store: MetadataStore) -> None:
    report = make_report(drift_share=math.nan)
    store.save_report(report)
    assert math.isnan(store.get_report(report.id).drift_share)


def test_save_report_is_idempotent_by_id(store: MetadataStore) -> None:
    report = make_report()
    store.save_report(report)
    store.save_report(report)
    store.save_report(replace(report, drifted=True, alerts=["later"]))  # the first one stored wins
    assert store.get_report(report.id) == report
    assert store.list_reports() == [report]


def test_get_report_by_unique_prefix(store: MetadataStore) -> None:
    report = make_report("abcd1234-" + uid())
    other = make_report("abce9999-" + uid())
    store.save_report(report)
    store.save_report(other)
    assert store.get_report("abcd") == report
    assert store.get_report("abcd1234") == report
    assert store.get_report(other.id) == other


def test_report_prefix_errors(store: MetadataStore) -> None:
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


def test_list_reports_newest_first_with_model_and_limit(store: MetadataStore) -> None:
    reports = [make_report(model="a" if i % 2 else "b", created_at=T0 + timedelta(minutes=i)) for i in range(6)]
    for r in reversed(reports):
        store.save_report(r)
    assert store.list_reports() == reports[::-1]
    assert store.list_reports(model="a") == [reports[5], reports[3], reports[1]]
    assert store.list_reports(model="b", limit=2) == [reports[4], reports[2]]
    assert store.list_reports(limit=0) == []
    assert store.list_reports(model="nobody") == []


def test_reports_at_the_same_time_are_ordered_by_id(store: MetadataStore) -> None:
    reports = [make_report(f"r{i}-{uid()}") for i in range(3)]
    for r in reports:
        store.save_report(r)
    assert store.list_reports() == sorted(reports, key=lambda r: r.id, reverse=True)


def test_a_report_that_is_not_json_is_refused(store: MetadataStore) -> None:
    report = make_report(body={"when": datetime.now(UTC)})
    with pytest.raises(StorageError, match=r"report\.body"):
        store.save_report(report)
    with pytest.raises(ReportNotFound):
        store.get_report(report.id)


@PROPERTY
@given(body=st.dictionaries(TEXT, JSON, max_size=5), alerts=st.lists(TEXT, max_size=3),
       share=st.floats(0, 1), drifted=st.booleans())
def test_writing_the_same_report_twice_stores_it_once(
    store: MetadataStore, body: dict[str, Any], alerts: list[str], share: float, drifted: bool,
) -> None:
    model = uid()
    report = make_report(model=model, body=body, alerts=alerts, drift_share=share, drifted=drifted)
    store.save_report(report)
    store.save_report(report)
    assert store.list_reports(model=model) == [report]
