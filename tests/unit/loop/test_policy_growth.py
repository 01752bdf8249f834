"""The growth trigger (``retrain.on.growth``): retrain when the rows a retrain would train on reached a
factor of the rows the champion was trained on; and the spec's refusals of it (pure: no stores, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidal.core.errors import SpecError
from tidal.loop.policy import Observation, decide, growth_rows
from tidal.loop.state import LoopState
from tidal.spec import parse_spec
from tidal.spec.policy import RetrainSpec

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def policy(growth: object = 2, **kw: object) -> RetrainSpec:
    return RetrainSpec.model_validate({"on": {"growth": growth}, "min_labelled": 10, "cooldown": {"rows": 0}, **kw})


def obs(trained: int | None, now: int | None, version: int = 3) -> Observation:
    return Observation(now=NOW, labelled_total=5_000, trained_version=version, trained_rows=trained,
                       retrain_rows=now)


def test_fires_at_the_factor_with_its_figures() -> None:
    assert not decide(policy(), obs(1_204, 2_407), LoopState()).retrain  # 1.999x: not yet
    d = decide(policy(), obs(1_204, 2_530), LoopState())
    assert d.retrain and d.trigger == "growth"
    assert d.reasons == ["training rows grew 2.10 times since version 3 was trained (1,204 → 2,530, factor 2)"]
    assert decide(policy({"factor": 1.5}), obs(1_000, 1_500), LoopState()).trigger == "growth"


def test_quiet_without_the_figures_or_the_trigger() -> None:
    assert decide(policy(), obs(None, 5_000), LoopState()).trigger is None   # a table of unknown size
    assert decide(policy(), obs(0, 5_000), LoopState()).trigger is None
    assert decide(policy(), obs(100, None), LoopState()).trigger is None
    no_growth = RetrainSpec.model_validate({"on": {"drift": {"share": 0.5}}})
    assert decide(no_growth, obs(100, 10_000), LoopState()).trigger is None


def test_the_guards_still_hold_it() -> None:
    d = decide(policy(cooldown={"rows": 1000}), obs(100, 400),
               LoopState(last_retrain=NOW, last_retrain_labelled=4_500))
    assert not d.retrain and d.trigger == "growth" and d.blocked_by is not None
    assert d.blocked_by.startswith("cooldown: 500 labelled rows")


def test_retrains_come_logarithmically_few() -> None:
    """Replayed: 200 rows to start, 1,000 labelled after; each retrain's table becomes the next champion's."""
    p, trained, labelled_then, retrains_at = policy(), 200, 0, []
    for labelled in range(0, 1_001, 50):
        now = growth_rows(p, trained, labelled - labelled_then)
        if decide(p, obs(trained, now), LoopState()).retrain:
            retrains_at.append(labelled)
            trained, labelled_then = now, labelled
    assert retrains_at == [200, 600]  # at 400 rows (x2), at 800 (x4); 1,200 by the end, short of 1,600


def test_growth_rows_counts_the_window_as_a_retrain_cuts_it() -> None:
    assert growth_rows(policy(), 300, 250) == 550
    assert growth_rows(policy(), 300, -5) == 300  # never below the table itself
    capped = policy(window={"last_rows": 520})
    assert growth_rows(capped, 300, 250) == 520
    # a full window never grows, so the trigger stays quiet however many rows arrive
    assert decide(capped, obs(520, growth_rows(capped, 520, 10_000)), LoopState()).trigger is None


BASE = "name: t\ndata: {source: d.csv, target: y}\nmodel: {estimator: a.B}\nretrain:\n  on:\n    growth: %s\n%s"


def test_the_spec_takes_a_number_or_a_section() -> None:
    on = parse_spec(BASE % ("2", "")).retrain.on
    assert on.growth is not None and on.growth.factor == 2.0
    on = parse_spec(BASE % ("{factor: 1.5}", "")).retrain.on
    assert on.growth is not None and on.growth.factor == 1.5


@pytest.mark.parametrize(("value", "extra", "parts"), [
    ("1", "", ["retrain.on.growth.factor", "expected a growth factor greater than 1", "got 1"]),
    ("0.5", "", ["retrain.on.growth.factor", "got 0.5"]),
    ("true", "", ["retrain.on.growth:", "expected a growth factor greater than 1 (e.g. 2)", "got true"]),
    ("'x'", "", ["retrain.on.growth:", "got 'x'"]),
    ("{factr: 2}", "", ["retrain.on.growth.factor: required key missing"]),
    ("2", "  mode: incremental\n", ["retrain.on.growth:", "retrain.mode is incremental",
                                    "use retrain.on.new_data with mode: incremental, or mode: refit"]),
    ("2", "  window: {last_days: 3}\n", ["retrain.on.growth:", "cannot be measured with retrain.window.last_days",
                                         "use window: all or {last_rows: N}"]),
])
def test_the_spec_refuses_what_cannot_be_measured(value: str, extra: str, parts: list[str]) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(BASE % (value, extra), source="tidal.yaml")
    message = str(info.value)
    assert "\n" not in message and message.startswith("tidal.yaml line 6: ")
    for part in parts:
        assert part in message, message
