"""Model states in the registry (registry/service.py): each move is a ``model.state`` event committed with
it; a promotion over a champion makes it improved (the new version's retrain was triggered while it served)
or retired (otherwise, and on a rollback); a challenger serves only where the caller says so; "why is it
serving?" reaches the trigger of its retrain; a stored state this tidal does not know reads as unknown."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tidal.core.entities import ModelState
from tidal.core.signature import Lineage
from tidal.evaluate.gate import GateDecision
from tidal.registry import CHALLENGER, CHAMPION, STATE_EVENT, Registry

from ._tiny import T0, registry, version

PASSED = GateDecision(passed=True, reasons=["accuracy 0.900 >= 0.700: passed"])


def gated(reg: Registry, *, over: int | None, parent: int | None = None, alias: str = CHAMPION,
          serves: bool | None = None) -> int:
    """Register a version that passed its gate and give it ``alias``; ``parent``: the champion whose
    retrain trained it (as the loop's controller records it)."""
    extra: dict[str, Any] = {} if parent is None else {"triggered_by": {
        "name": "m", "version": parent, "trigger": "performance",
        "why": "accuracy 0.710 under 0.750 on 1,000 labelled predictions", "time": "2025-01-01T00:00:00+00:00",
        "event": None}}
    mv = reg.register_gated(version(lineage=Lineage(extra=extra)), PASSED, alias=alias, over=over, trigger="test",
                            run_id="r" * 32, serves=serves)
    return mv.version


def states(reg: Registry, v: int) -> list[str]:
    return [t.to for t in reg.history("m", v)]


def test_the_prototype_step_is_dated_when_the_model_was_trained() -> None:
    reg = registry()
    trained = T0 - timedelta(minutes=5)
    mv = reg.register_gated(version(), PASSED, alias=None, over=None, trigger="test", run_id="r" * 32,
                            trained_at=trained)
    first, second = reg.history("m", mv.version)
    assert (first.time, first.from_state, first.to) == (trained, None, "prototype")
    assert (second.from_state, second.to) == ("prototype", "validated")
    assert "passed the gate" in second.reason and mv.state == ModelState.VALIDATED


def test_a_retrain_that_replaces_the_champion_that_triggered_it_improves_it() -> None:
    reg = registry()
    gated(reg, over=None)
    gated(reg, over=1, parent=1)
    assert reg.get("m", 1).state == ModelState.IMPROVED
    assert reg.get("m", 2).state == ModelState.DEPLOYED
    last = reg.history("m", 1)[-1]
    assert (last.from_state, last.to) == ("deployed", "improved")
    assert last.reason == ("replaced by m:2, trained by the retrain it triggered (accuracy 0.710 under 0.750 on "
                           "1,000 labelled predictions)")
    assert last.data["by"] == 2 and last.data["triggered_by"]["version"] == 1


def test_a_version_it_did_not_lead_to_retires_it() -> None:
    reg = registry()
    gated(reg, over=None)
    gated(reg, over=1)  # a `tidal run` by hand
    assert reg.get("m", 1).state == ModelState.RETIRED
    assert "which it did not lead to" in reg.history("m", 1)[-1].reason
    gated(reg, over=2, parent=1)  # a retrain triggered by 1, promoted over 2: 2 did not lead to it
    assert reg.get("m", 2).state == ModelState.RETIRED
    assert "a retrain triggered while m:1 served" in reg.history("m", 2)[-1].reason


def test_a_rollback_retires_the_version_and_deploys_the_one_it_restores() -> None:
    reg = registry()
    gated(reg, over=None)
    gated(reg, over=1, parent=1)
    assert reg.rollback("m", reason="accuracy 0.600 on its first 200 rows", trigger="loop:rollback") == 1
    assert states(reg, 2) == ["prototype", "validated", "deployed", "retired"]
    assert reg.history("m", 2)[-1].reason == "rolled back to m:1: accuracy 0.600 on its first 200 rows"
    assert states(reg, 1) == ["prototype", "validated", "deployed", "improved", "deployed"]
    assert reg.history("m", 1)[-1].reason.startswith("restored as champion by a rollback")
    # and each move was an event, in the same order
    events = [e for e in reg.store.list_events(subject="model:m:*", limit=1000) if e.kind == STATE_EVENT]
    assert [(e.subject, e.data["to"]) for e in events][-2:] == [("model:m:1", "deployed"), ("model:m:2", "retired")]


def test_a_manual_promotion_of_a_retired_version_serves_it_again() -> None:
    reg = registry()
    gated(reg, over=None)
    gated(reg, over=1)
    reg.set_alias("m", CHAMPION, 1, reason="the old one was better")
    assert (reg.get("m", 1).state, reg.get("m", 2).state) == (ModelState.DEPLOYED, ModelState.RETIRED)
    assert "a manual promotion (the old one was better)" in reg.history("m", 2)[-1].reason


def test_a_challenger_serves_only_when_the_caller_says_so() -> None:
    reg = registry()
    gated(reg, over=None)
    named = gated(reg, over=None, alias=CHALLENGER)  # direct strategy: it only names a candidate
    assert reg.get("m", named).state == ModelState.VALIDATED
    canary = gated(reg, over=None, alias=CHALLENGER, serves=True)  # canary or shadow: it serves
    assert reg.get("m", canary).state == ModelState.DEPLOYED
    assert reg.history("m", canary)[-1].reason.startswith("serving as challenger: passed the gate")
    assert reg.get("m", 1).state == ModelState.DEPLOYED  # the champion is untouched


def test_a_move_to_the_state_it_has_records_nothing() -> None:
    reg = registry()
    gated(reg, over=None)
    before = reg.store.list_events(limit=1000)
    reg.transition("m", 1, ModelState.DEPLOYED, reason="again")
    reg.transition("m", 1, ModelState.MONITORED, reason="not from here", only_from=[ModelState.VALIDATED])
    assert reg.store.list_events(limit=1000) == before


def test_why_serving_reaches_the_trigger_of_its_retrain() -> None:
    reg = registry()
    gated(reg, over=None)
    gated(reg, over=1, parent=1)
    serving = reg.serving("m", 2)
    assert serving.serving and serving.aliases == [CHAMPION]
    assert serving.text == ("m:2 serves as champion since 2025-01-01T00:00:00+00:00: passed the gate in run rrrrrrrr; "
                            "trained by the retrain that m:1 triggered at 2025-01-01T00:00:00+00:00: accuracy 0.710 "
                            "under 0.750 on 1,000 labelled predictions")
    not_now = reg.serving("m", 1)
    assert not not_now.serving and not_now.text.startswith("m:1 is improved (replaced by m:2")


def test_history_of_a_version_registered_before_states_were_recorded() -> None:
    reg = registry()
    mv = reg.store.create_model_version(version())
    reg.event("model.registered", "m", mv.version, "m:1 registered as validated: run abc", {"state": "validated"})
    reg.event("model.retired", "m", mv.version, "m:1 validated → retired", {"from": "validated", "to": "retired",
                                                                            "reasons": ["old"]})
    assert [(t.from_state, t.to, t.reason) for t in reg.history("m", 1)] == [
        (None, "validated", "m:1 registered as validated: run abc"), ("validated", "retired", "old")]


@pytest.mark.parametrize(("stored", "read"), [("candidate", ModelState.PROTOTYPE), ("deployed", ModelState.DEPLOYED),
                                              ("archived", ModelState.UNKNOWN), ("", ModelState.UNKNOWN)])
def test_a_stored_state_reads_without_error(stored: str, read: ModelState) -> None:
    # what every store reads a state column with (through the SQL stores: tests/contract/test_migrations.py)
    assert ModelState.read(stored) is read


def test_a_version_in_an_unknown_state_cannot_be_given_a_serving_alias() -> None:
    reg = registry()
    reg.register(version(state=ModelState.UNKNOWN), reason="x")
    from tidal.core.errors import AliasConflict

    with pytest.raises(AliasConflict, match="m:1 is unknown and cannot be champion"):
        reg.set_alias("m", CHAMPION, 1, reason="try")


def test_the_states_keep_their_names() -> None:
    assert ModelState["VALIDATED"] is ModelState.VALIDATED and ModelState["REJECTED"] is ModelState.REJECTED
    assert ModelState.CANDIDATE is ModelState.PROTOTYPE  # the old name
    assert [s.value for s in ModelState] == ["prototype", "validated", "rejected", "deployed", "monitored",
                                             "improved", "retired", "unknown"]
