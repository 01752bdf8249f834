"""``data.collect``: its spec (and the one-line refusals), when a collection is due, the stored state, and how
collected rows feed the retrain policy (pure functions: no stores, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tidal.core.errors import SpecError
from tidal.loop.collection import due
from tidal.loop.policy import Observation, decide
from tidal.loop.state import LoopState, Retraining
from tidal.spec import parse_spec
from tidal.spec.collect import CollectSpec
from tidal.spec.policy import RetrainSpec

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SPEC = """\
version: 1
name: plant
data:
  source: sqlite:///plant.db
  query: SELECT * FROM readings
  target: fault
  incremental: {{column: id}}
  collect: {collect}
model:
  estimator: sklearn.linear_model.LogisticRegression
{extra}"""


def _spec(collect: str, extra: str = "") -> object:
    return parse_spec(SPEC.format(collect=collect, extra=extra))


@pytest.mark.parametrize(("written", "every", "cron"), [
    ("10m", "10m", None), ("{every: 1h}", "1h", None), ('"*/10 * * * *"', None, "*/10 * * * *"),
    ("{cron: '0 3 * * *'}", None, "0 3 * * *")])
def test_a_schedule_is_a_duration_or_a_cron_expression(written: str, every: str | None, cron: str | None) -> None:
    got = _spec(written).data.collect  # type: ignore[attr-defined]
    assert (got.every, got.cron) == (every, cron)


@pytest.mark.parametrize(("written", "extra", "message"), [
    ("0s", "", "data.collect.every: '0s' is no time at all; expected a duration longer than zero"),
    ("{every: 10 minutes}", "", "data.collect.every: '10 minutes' is not a duration"),
    ("every hour", "", "data.collect.cron: 'every hour' is neither a duration nor a cron expression"),
    ("{every: 10m, cron: '* * * * *'}", "", "data.collect: collect needs one schedule, every or cron; both given"),
    ("10m", "retrain:\n  include_source: false\n",
     "data.collect: data.collect collects rows from the source, but retrain.include_source is false"),
    ("10m", "retrain:\n  mode: incremental\n", "data.collect: data.collect collects rows from the source, but "
                                                "retrain.mode is incremental"),
])
def test_a_bad_schedule_is_one_line_naming_the_key(written: str, extra: str, message: str) -> None:
    with pytest.raises(SpecError) as info:
        _spec(written, extra)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_a_collection_is_due_at_the_first_tick_then_on_schedule() -> None:
    every, cron = CollectSpec.model_validate("10m"), CollectSpec.model_validate("0 * * * *")
    assert due(every, None, NOW) and due(cron, None, NOW)
    assert not due(every, NOW, NOW + timedelta(minutes=9, seconds=59))
    assert due(every, NOW, NOW + timedelta(minutes=10))
    assert not due(cron, NOW + timedelta(minutes=1), NOW + timedelta(minutes=59))
    assert due(cron, NOW + timedelta(minutes=1), NOW + timedelta(hours=1))


def test_the_collect_state_survives_a_restart_and_old_documents_read() -> None:
    state = LoopState(collect_checked=NOW, collections=3, collect_rejected=1, collect_failures=2, collected_total=90,
                      last_retrain_collected=40, collected_table="ab" * 32,
                      collected_drift={"share": 0.75, "rows": 40, "version": 2, "drifted": ["a"]},
                      in_progress=Retraining("drift", ["x"], NOW, labelled_total=5, collected_total=90))
    again = LoopState.from_dict(state.to_dict())
    assert again == state
    old = LoopState.from_dict({"ticks": 4, "in_progress": {"trigger": "drift", "started": NOW.isoformat()}})
    assert (old.collect_checked, old.collected_total, old.in_progress.collected_total) == (None, 0, 0)  # type: ignore[union-attr]


def _policy(**on: object) -> RetrainSpec:
    return RetrainSpec.model_validate({"on": on, "min_labelled": 50, "cooldown": {"rows": 0}})


def test_collected_labelled_rows_are_new_data_beside_labelled_predictions() -> None:
    state = LoopState(last_retrain_labelled=100, last_retrain_collected=20, last_retrain=NOW - timedelta(hours=1))
    obs = Observation(now=NOW, labelled_total=110, collected_total=50)
    d = decide(_policy(new_data={"rows": 40}), obs, state)
    assert d.retrain and d.trigger == "new_data"
    assert d.reasons == ["40 new labelled rows since the last training (10 labelled predictions, 30 collected) "
                         "(>= 40)"]
    assert not decide(_policy(new_data={"rows": 41}), obs, state).retrain
    # without collected rows, the figures read as before
    d = decide(_policy(new_data={"rows": 5}), Observation(now=NOW, labelled_total=110), state)
    assert d.reasons == ["10 new labelled rows since the last training (>= 5)"]


def test_the_guards_count_collected_rows_too() -> None:
    policy = RetrainSpec.model_validate({"on": {"new_data": {"rows": 10}}, "min_labelled": 100,
                                         "cooldown": {"rows": 50}})
    first = LoopState()
    d = decide(policy, Observation(now=NOW, labelled_total=0, collected_total=60), first)
    assert d.blocked_by == "min_labelled: only 60 labelled rows (need 100)"
    assert decide(policy, Observation(now=NOW, labelled_total=0, collected_total=100), first).retrain
    after = LoopState(last_retrain=NOW - timedelta(hours=1), last_retrain_collected=100)
    d = decide(policy, Observation(now=NOW, labelled_total=10, collected_total=130), after)
    assert d.blocked_by == "cooldown: 40 labelled rows since the last retrain (need 50)"


def test_drift_fires_on_the_collected_rows_when_the_served_traffic_shows_none() -> None:
    policy = _policy(drift={"share": 0.5})
    seen = Observation(now=NOW, labelled_total=100, drift_share=None, window_rows=0, collected_drift_share=0.75,
                       collected_rows=40)
    d = decide(policy, seen, LoopState())
    assert d.retrain and d.reasons == ["drift share 0.75 >= 0.50 over 40 rows collected from the source"]
    quiet = Observation(now=NOW, labelled_total=100, collected_drift_share=0.25, collected_rows=40)
    assert not decide(policy, quiet, LoopState()).retrain
    served = Observation(now=NOW, labelled_total=100, drift_share=0.6, window_rows=500, collected_drift_share=0.9,
                         collected_rows=40)
    assert decide(policy, served, LoopState()).reasons == ["drift share 0.60 >= 0.50 over 500 predictions"]
