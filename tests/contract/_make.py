"""What the port contract suites share: fixed times, JSON and text strategies for property tests, and
entity factories."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tidal.core.entities import ModelState, ModelVersion, Report, Run, RunStatus, SnapshotInfo

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


def make_report(report_id: str | None = None, *, model: str = "churn", created_at: datetime = T0,
                **kw: Any) -> Report:
    fields: dict[str, Any] = dict(
        id=report_id or uid(), model=model, version=3, created_at=created_at,
        window={"last": 1000, "since": None}, drift_share=0.4, drifted=False,
    )
    fields.update(kw)
    return Report(**fields)
