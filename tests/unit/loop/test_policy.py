"""The retrain policy, rule by rule (pure functions: no stores, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidal.core.errors import StorageError
from tidal.loop.policy import Observation, decide, worse
from tidal.loop.state import LoopState, Retraining, Trial, Watch
from tidal.spec.policy import RetrainSpec

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def policy(**kw: object) -> RetrainSpec:
    return RetrainSpec.model_validate({"on": {"drift": {"share": 0.5},
                                              "performance": {"metric": "accuracy", "below": 0.7, "or_drop": 0.05},
                                              "new_data": {"rows": 5000}}, "min_labelled": 100, **kw})


def obs(**kw: object) -> Observation:
    base: dict[str, object] = {"now": NOW, "labelled_total": 10_000, "drift_share": 0.0, "window_rows": 1000,
                               "metric": "accuracy", "value": 0.8, "labelled_in_window": 500,
                               "validation": 0.8, "min_labelled_for_perf": 30}
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


def state(**kw: object) -> LoopState:
    base: dict[str, object] = {"last_retrain_labelled": 9_000, "last_retrain": NOW - timedelta(hours=5)}
    base.update(kw)
    return LoopState(**base)  # type: ignore[arg-type]


def test_quiet_when_nothing_fires() -> None:
    d = decide(policy(), obs(), state())
    assert not d.retrain and d.trigger is None


def test_each_trigger_fires_with_its_figures() -> None:
    d = decide(policy(), obs(drift_share=0.6), state(last_retrain_labelled=0))
    assert d.retrain and d.trigger == "drift" and "0.60 >= 0.50" in d.reasons[0]
    d = decide(policy(), obs(value=0.65), state(last_retrain_labelled=0))
    assert d.retrain and d.trigger == "performance" and "floor 0.700" in d.reasons[0]
    d = decide(policy(), obs(value=0.74), state(last_retrain_labelled=0))
    assert d.trigger == "performance" and "dropped more than 0.050" in d.reasons[0]
    d = decide(policy(), obs(labelled_total=15_000), state(last_retrain_labelled=9_000))
    assert d.trigger == "new_data" and "6000 new labelled rows" in d.reasons[0]


def test_performance_needs_enough_labelled_rows() -> None:
    assert decide(policy(), obs(value=0.5, labelled_in_window=10), state()).trigger is None


def test_cooldown_in_rows_and_minutes() -> None:
    d = decide(policy(), obs(drift_share=0.9, labelled_total=9_500), state())
    assert not d.retrain and d.blocked_by is not None and d.blocked_by.startswith("cooldown: 500 labelled rows")
    minutes = policy(cooldown={"rows": None, "minutes": 600})
    d = decide(minutes, obs(drift_share=0.9), state())
    assert not d.retrain and "300 minutes" in (d.blocked_by or "")
    assert decide(minutes, obs(drift_share=0.9, now=NOW + timedelta(hours=6)), state()).retrain


def test_max_per_day_and_min_labelled() -> None:
    times = [NOW - timedelta(hours=h) for h in (1, 2, 3, 4)]
    d = decide(policy(cooldown={"rows": 0}), obs(drift_share=0.9), state(retrain_times=times))
    assert not d.retrain and (d.blocked_by or "").startswith("max_per_day: 4")
    old = [NOW - timedelta(hours=h) for h in (25, 26, 27, 28)]
    assert decide(policy(cooldown={"rows": 0}), obs(drift_share=0.9), state(retrain_times=old)).retrain
    d = decide(policy(), obs(drift_share=0.9, labelled_total=50), LoopState())
    assert not d.retrain and (d.blocked_by or "").startswith("min_labelled")


def test_schedule_fires_once_it_is_due() -> None:
    p = RetrainSpec.model_validate({"on": {"schedule": "0 3 * * *"}, "min_labelled": 1})
    s = LoopState(schedule_checked=datetime(2026, 1, 1, 2, 59, tzinfo=UTC))
    assert not decide(p, obs(now=datetime(2026, 1, 1, 2, 59, 30, tzinfo=UTC)), s).retrain
    d = decide(p, obs(now=datetime(2026, 1, 1, 3, 0, 5, tzinfo=UTC)), s)
    assert d.retrain and d.trigger == "schedule"


def test_direction_of_metrics() -> None:
    assert worse("accuracy", 0.6, 0.7) and not worse("accuracy", 0.8, 0.7)
    assert worse("rmse", 2.0, 1.0) and not worse("rmse", 0.5, 1.0)


def test_state_round_trips_and_ignores_unknown_keys() -> None:
    s = state(retrain_times=[NOW - timedelta(hours=1)],
              watch=Watch(version=2, previous=1, metric="accuracy", since=NOW),
              trial=Trial(version=3, kind="canary", since=NOW, champion=2),
              in_progress=Retraining(trigger="drift", reasons=["drift share 0.6"], started=NOW, labelled_total=7))
    stored = s.to_dict()
    assert LoopState.from_dict({**stored, "from_a_newer_tidal": 1}) == s
    assert stored["watch"] == {"version": 2, "previous": 1, "metric": "accuracy", "since": NOW.isoformat()}


def test_a_document_stored_by_an_earlier_tidal_reads_as_typed_state() -> None:
    """The exact shape the untyped controller stored (ISO strings in dicts) reads as datetimes."""
    old = {"last_retrain": "2026-01-01T11:00:00+00:00", "last_retrain_labelled": 400,
           "retrain_times": ["2026-01-01T11:00:00+00:00"], "schedule_checked": None,
           "in_progress": {"trigger": "drift", "reasons": ["x"], "started": "2026-01-01T11:30:00+00:00",
                           "labelled_total": 450},
           "watch": None, "trial": {"version": 2, "kind": "shadow", "since": "2026-01-01T10:00:00", "champion": 1},
           "last_note": "drift|cooldown", "ticks": 9}
    s = LoopState.from_dict(old)
    assert s.last_retrain == NOW - timedelta(hours=1) and s.retrain_times == [NOW - timedelta(hours=1)]
    assert s.in_progress == Retraining("drift", ["x"], NOW - timedelta(minutes=30), 450)
    assert s.trial == Trial(2, "shadow", NOW - timedelta(hours=2), 1)  # a naive time is read as UTC
    assert s.ticks == 9 and s.last_note == "drift|cooldown"
    assert LoopState.from_dict(None) == LoopState()


def test_an_unreadable_pending_trial_is_an_error_not_dropped() -> None:
    with pytest.raises(StorageError, match="unreadable 'trial'"):
        LoopState.from_dict({"trial": {"version": 2, "kind": "blue-green", "since": NOW.isoformat()}})
    with pytest.raises(StorageError, match="unreadable 'watch'"):
        LoopState.from_dict({"watch": {"version": 2}})
