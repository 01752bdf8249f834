"""A canary or shadow trial whose challenger never gets labelled answers is abandoned after
``deploy.strategy.patience`` times the traffic that should have brought them, so a broken challenger
cannot hold the loop (no retrain starts during a trial) for ever."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_loop import _edit, _rows, _traffic
from tidal import Workspace
from tidal.core.clock import SimulatedClock
from tidal.core.entities import ModelState
from tidal.loop.state import LoopState, Trial
from tidal.registry import CHALLENGER, CHAMPION


def _two_versions(project: Path, clock: SimulatedClock) -> None:
    with Workspace.open(project, clock=clock) as ws:
        ws.run()
    _edit(project, "max_iter: 30", "max_iter: 31")
    with Workspace.open(project, clock=clock) as ws:
        ws.run()
        ws.registry.set_alias("elec2", CHAMPION, 1, trigger="test", reason="the champion of the trial")
        ws.registry.set_alias("elec2", CHALLENGER, 2, trigger="test", reason="the challenger of the trial",
                              serves=True)


@pytest.mark.parametrize("strategy, enough", [
    # canary at 20 %: 10 challenger answers expected per 40 of the champion's; patience 2 → 80
    ("{canary: {percent: 20, min_requests: 10, patience: 2}}", 80),
    # shadow: every champion answer should have its shadow; patience 2 → 20
    ("{shadow: {min_requests: 10, patience: 2}}", 20),
])
def test_a_trial_without_challenger_answers_is_abandoned(small_project: Path, strategy: str, enough: int) -> None:
    _edit(small_project, "  strategy: direct", f"  strategy: {strategy}")
    _edit(small_project, "min_labelled: 500", "min_labelled: 100000")  # no retrain gets in the way
    clock = SimulatedClock()
    _two_versions(small_project, clock)
    with Workspace.open(small_project, clock=clock) as ws:
        kind = "canary" if "canary" in strategy else "shadow"
        trial = Trial(version=2, kind=kind, since=clock.now(), champion=1)
        ws.store.put_state("loop:elec2", LoopState(trial=trial).to_dict())
        # only the champion answers (the challenger fails every request, or no server runs it)
        _traffic(ws, _rows(enough - 1, 3000), version=1)
        tick = ws.loop_once()
        assert not any(e.kind == "loop.trial_abandoned" for e in tick.events)
        assert ws.models.get("elec2", 2).state == ModelState.DEPLOYED  # serving in the trial
        assert ws.store.get_alias("elec2", CHALLENGER) is not None
        _traffic(ws, _rows(1, 3000 + enough), version=1)
        tick = ws.loop_once()
        abandoned = next(e for e in tick.events if e.kind == "loop.trial_abandoned")
        assert abandoned.data == {"kind": kind, "challenger_labelled": 0, "needed": 10, "champion_labelled": enough}
        rejected = ws.models.get("elec2", 2)
        assert rejected.state == ModelState.REJECTED and "abandoned" in rejected.reasons[0]
        assert ws.store.get_alias("elec2", CHALLENGER) is None
        assert ws.models.get("elec2:champion").version == 1
        assert LoopState.from_dict(ws.store.get_state("loop:elec2")).trial is None
