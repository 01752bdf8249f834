"""How the loop's retrains ended (tidal.loop.outcomes), and the loop state that remembers a failure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tidal.core.entities import Event
from tidal.loop.outcomes import all_failed, describe, failure_line, tally
from tidal.loop.state import Failure, LoopState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _event(kind: str, **data: Any) -> Event:
    return Event(kind=kind, subject="model:m:2", message=f"{kind} happened", time=NOW, data=data)


def test_each_retrain_ends_in_one_counted_outcome() -> None:
    events = [
        _event("loop.retrain"), _event("gate.passed"),
        _event("alias.moved", alias="champion", trigger="loop:drift"),                  # promoted
        _event("loop.retrain"), _event("gate.failed"),                                  # rejected by the gate
        _event("loop.retrain"), _event("loop.retrain_failed", error="first: boom"),     # failed
        _event("loop.retrain"), _event("loop.trial_lost"),                              # lost its trial
        _event("loop.retrain"), _event("loop.retrain_failed", error="second"),          # failed again
        _event("loop.retrain"), _event("loop.trial_abandoned"),
        _event("loop.retrain"), _event("loop.retrain_unchanged"),
        _event("loop.retrain"), _event("loop.canary_started"),                          # still on trial
        # moves that are not a retrain's outcome: a rollback, a promotion by hand, the challenger alias
        _event("alias.moved", alias="champion", trigger="loop:rollback", rollback=True), _event("loop.rollback"),
        _event("alias.moved", alias="champion", trigger="manual"),
        _event("alias.moved", alias="challenger", trigger="loop:drift"),
    ]
    out = tally(events, pending=1)
    assert out == {"retrains": 8, "promotions": 1, "rejections": 4, "failures": 2, "pending": 1, "rollbacks": 1,
                   "first_failure": "first: boom"}
    assert out["promotions"] + out["rejections"] + out["failures"] + out["pending"] == out["retrains"]
    assert describe(out) == "8 retrains (1 promotion, 4 rejections, 2 failed, 1 on trial), 1 rollback"
    assert failure_line(out) == "2 of 8 retrains failed; the first: first: boom"
    assert not all_failed(out)


def test_all_failed_needs_at_least_one_retrain_and_every_one_failed() -> None:
    failed = tally([_event("loop.retrain"), _event("loop.retrain_failed", error="x")])
    assert all_failed(failed) and failure_line(failed) == "every retrain failed; the first: x"
    assert describe(failed) == "1 retrain (0 promotions, 0 rejections, 1 failed), 0 rollbacks"
    none = tally([])
    assert not all_failed(none) and failure_line(none) is None and none["first_failure"] is None
    # a report written before failures were counted reads as none failed
    assert describe({"retrains": 2, "promotions": 1, "rejections": 1, "rollbacks": 0}) == (
        "2 retrains (1 promotion, 1 rejection, 0 failed), 0 rollbacks")


def test_the_loop_state_keeps_its_failures_across_a_restart() -> None:
    state = LoopState(failures=3, last_failure=Failure(time=NOW - timedelta(hours=1), trigger="drift",
                                                       error="the data failed validation"))
    stored = state.to_dict()
    assert stored["failures"] == 3 and stored["last_failure"] == {
        "time": "2025-12-31T23:00:00+00:00", "trigger": "drift", "error": "the data failed validation"}
    again = LoopState.from_dict(stored)
    assert again.failures == 3 and again.last_failure == state.last_failure
    # a document from before failures were kept reads as none
    old = LoopState.from_dict({"ticks": 4, "last_note": None})
    assert old.failures == 0 and old.last_failure is None
