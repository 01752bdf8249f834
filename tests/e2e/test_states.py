"""Issue #12, point 3: model states through the closed loop on a real workspace (SQLite, the real prediction
log, the controller's ticks with feedback), and through ``tidal models ls`` / ``models show``.

One version goes prototype → validated → deployed → monitored → improved (the retrain it triggered replaced
it); that retrain's version is rolled back and retired; a later run fails its gate and is rejected; under a
canary strategy the retrain's version serves beside the champion and is deployed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from tests.e2e.test_loop import _edit, _open, _rows, _traffic
from tidal.core.clock import SimulatedClock
from tidal.core.entities import ModelState
from tidal.registry import CHALLENGER


def _states_project(project: Path, strategy: str = "direct") -> Path:
    """Retrain when accuracy falls under 0.75 on 200 labelled predictions; every retrain passes its gate;
    a new champion is watched for its first 200 labelled rows."""
    _edit(project, "cooldown: {rows: 1000}", "cooldown: {rows: 300}")
    _edit(project, "min_labelled: 500", "min_labelled: 200")
    _edit(project, "    drift: {share: 0.5}\n", "")
    _edit(project, "rollback: {metric: accuracy, drop: 0.03, after_rows: 1000}",
          "rollback: {metric: accuracy, drop: 0.03, after_rows: 200}")
    _edit(project, "    - accuracy >= champion - 0.03", "    - accuracy >= 0.0")
    _edit(project, "  window: 1000\n", "  window: 300\n")
    if strategy != "direct":
        _edit(project, "  strategy: direct", f"  strategy: {strategy}")
    return project


def test_a_version_lives_through_every_state_of_the_loop(small_project: Path) -> None:
    project = _states_project(small_project)
    clock = SimulatedClock()
    with _open(project, clock) as ws:
        first = ws.run().model
        assert first is not None and first.state == ModelState.DEPLOYED
        # the champion answers wrongly: its accuracy falls, the controller retrains
        _traffic(ws, _rows(400, 3000), wrong=True)
        tick = ws.loop_once()
        assert tick.decision is not None and tick.decision.trigger == "performance", tick
        retrain = next(e for e in tick.events if e.kind == "loop.retrain")
        assert ws.models.get("elec2:champion").version == 2

        v1, v2 = ws.models.get("elec2", 1), ws.models.get("elec2", 2)
        assert [(t.from_state, t.to) for t in ws.models.states(v1)] == [
            (None, "prototype"), ("prototype", "validated"), ("validated", "deployed"), ("deployed", "monitored"),
            ("monitored", "improved")]
        assert v1.state == ModelState.IMPROVED and v2.state == ModelState.DEPLOYED
        # the new version knows the retrain that made it, back to its trigger
        parent = v2.lineage.extra["triggered_by"]
        assert (parent["version"], parent["trigger"], parent["event"]) == (1, "performance", retrain.id)
        assert parent["why"].startswith("accuracy ") and "worse than the floor 0.750" in parent["why"]
        assert ws.runs.get(v2.run_id).run.info["triggered_by"] == parent
        serving = ws.models.serving(v2)
        assert serving.serving and "trained by the retrain that elec2:1 triggered" in serving.text
        assert parent["why"] in serving.text
        monitored = ws.models.states(v1)[3]
        assert monitored.reason.startswith("first monitoring report since it was deployed")
        improved = ws.models.states(v1)[-1]
        assert improved.reason.startswith("replaced by elec2:2, trained by the retrain it triggered (accuracy ")

        # the new champion answers wrongly on its first labelled rows: rolled back, and retired
        _traffic(ws, _rows(250, 3400), wrong=True, version=2)
        tick = ws.loop_once()
        assert any(e.kind == "loop.rollback" for e in tick.events), [e.kind for e in tick.events]
        assert ws.models.get("elec2:champion").version == 1
        v2 = ws.models.get("elec2", 2)
        assert v2.state == ModelState.RETIRED
        assert ws.models.states(v2)[-1].reason.startswith("rolled back to elec2:1: elec2:2 accuracy ")
        restored = [t for t in ws.models.states(ws.models.get("elec2", 1)) if t.from_state == "improved"]
        assert [t.to for t in restored] == ["deployed"] and restored[0].reason.startswith("restored as champion")

    # a run that fails its gate is rejected, and never serves
    _edit(project, "    - accuracy >= 0.60", "    - accuracy >= 0.999")
    _edit(project, "max_iter: 30", "max_iter: 31")
    with _open(project, clock) as ws:
        result = ws.run()
        assert result.model is not None and result.model.state == ModelState.REJECTED
        assert [t.to for t in ws.models.states(result.model)] == ["prototype", "rejected"]
        assert "0.999" in ws.models.states(result.model)[-1].reason
        assert ws.models.get("elec2:champion").version == 1

        # every move was an event, about the version it moved
        moves = ws.events(kind="model.state", limit=1000)
        assert {e.subject for e in moves} == {"model:elec2:1", "model:elec2:2", "model:elec2:3"}
        assert all(e.data["to"] in {s.value for s in ModelState} for e in moves)


def test_a_canary_challenger_is_deployed_beside_the_champion(small_project: Path) -> None:
    project = _states_project(small_project, "{canary: {percent: 50, min_requests: 30}}")
    clock = SimulatedClock()
    with _open(project, clock) as ws:
        ws.run()
        _traffic(ws, _rows(400, 3000), wrong=True)
        tick = ws.loop_once()
        assert any(e.kind == "loop.canary_started" for e in tick.events), [e.kind for e in tick.events]
        challenger = ws.models.get("elec2", 2)
        assert ws.models.aliases_of(challenger) == [CHALLENGER]
        assert challenger.state == ModelState.DEPLOYED
        assert ws.models.states(challenger)[-1].reason.startswith("serving as challenger")
        assert ws.models.get("elec2", 1).state == ModelState.MONITORED  # the champion serves on
        assert ws.models.serving(challenger).text.startswith("elec2:2 serves as challenger")


def test_models_ls_and_show_say_the_state_its_history_and_why_it_serves(
        small_project: Path, cli: Callable[..., CompletedProcess[str]]) -> None:
    project = _states_project(small_project)
    clock = SimulatedClock()
    with _open(project, clock) as ws:
        ws.run()
        _traffic(ws, _rows(400, 3000), wrong=True)
        ws.loop_once()
        assert ws.models.get("elec2:champion").version == 2
    where = str(project)

    listed = json.loads(cli("-C", where, "models", "ls", "--json", check=True).stdout)
    assert [(m["version"], m["state"], m["aliases"]) for m in listed] == [(1, "improved", []),
                                                                          (2, "deployed", ["champion"])]
    table = cli("-C", where, "models", "ls", check=True).stdout
    assert "improved" in table and "deployed" in table

    shown = cli("-C", where, "models", "show", "elec2:2", check=True).stdout
    flat = " ".join(shown.split())  # rich wraps long lines
    assert "why serving: elec2:2 serves as champion since" in flat
    why = flat[flat.index("why serving:"):]
    assert "trained by the retrain that elec2:1 triggered" in why and "worse than the floor 0.750" in why
    assert "state history" in shown
    for state in ("prototype", "validated", "deployed"):
        assert state in shown

    doc = json.loads(cli("-C", where, "models", "show", "elec2:1", "--json", check=True).stdout)
    assert doc["state"] == "improved"
    assert [(h["from"], h["to"]) for h in doc["history"]] == [
        (None, "prototype"), ("prototype", "validated"), ("validated", "deployed"), ("deployed", "monitored"),
        ("monitored", "improved")]
    assert all(h["time"] and h["reason"] for h in doc["history"])
    assert doc["serving"]["serving"] is False
    assert doc["serving"]["text"].startswith("elec2:1 is improved (replaced by elec2:2")
    doc2 = json.loads(cli("-C", where, "models", "show", "elec2:2", "--json", check=True).stdout)
    assert doc2["serving"]["serving"] is True and doc2["serving"]["triggered_by"]["version"] == 1
    assert doc2["serving"]["text"] in flat and "worse than the floor 0.750" in doc2["serving"]["text"]
