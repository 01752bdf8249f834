"""The registry (registry/service.py) over the in-memory stores: registration with its gate event and alias
move in one unit of work, the champion history, and rollback walking back through it."""

from __future__ import annotations

import pytest

from tidal.core.entities import ModelState
from tidal.core.errors import AliasConflict, AliasMoved, ModelNotFound
from tidal.evaluate.gate import GateDecision
from tidal.registry import CHALLENGER, CHAMPION, Registry

from ._tiny import registry, version

PASSED = GateDecision(passed=True, reasons=["accuracy 0.900 >= 0.700: passed"])
FAILED = GateDecision(passed=False, reasons=["accuracy 0.600 >= 0.700: failed"],
                      failed=["accuracy 0.600 >= 0.700: failed"])


def kinds(reg: Registry, name: str = "m") -> list[str]:
    return [e.kind for e in reg.store.list_events(subject=f"model:{name}:*", limit=1000)]


def promoted(reg: Registry, n: int, name: str = "m") -> list[int]:
    """Register ``n`` versions that pass the gate, each made champion over the one before."""
    out: list[int] = []
    for _ in range(n):
        mv = reg.register_gated(version(name), PASSED, alias=CHAMPION, over=out[-1] if out else None,
                                trigger="test", run_id="r" * 32)
        out.append(mv.version)
    return out


def champion_of(reg: Registry, name: str = "m") -> int | None:
    mv = reg.champion(name)
    return None if mv is None else mv.version


# -- register and register_gated -------------------------------------------------------------------------


def test_register_numbers_versions_and_records_why() -> None:
    reg = registry()
    first, second = reg.register(version(), reason="first"), reg.register(version(), reason="second")
    assert (first.version, second.version) == (1, 2)
    trained, event, gated = reg.store.list_events(subject="model:m:2")
    assert event.kind == "model.registered"
    assert event.message == "m:2 registered as validated: second"
    assert (trained.kind, trained.data["from"], trained.data["to"]) == ("model.state", None, "prototype")
    assert (gated.kind, gated.data["from"], gated.data["to"], gated.data["reason"]) == (
        "model.state", "prototype", "validated", "second")
    assert reg.champion("m") is None


def test_register_gated_that_passes_records_the_gate_and_moves_the_alias_together() -> None:
    reg = registry()
    mv = reg.register_gated(version(), PASSED, alias=CHAMPION, over=None, trigger="test", run_id="abcdef1234")
    assert (mv.version, mv.state) == (1, ModelState.DEPLOYED)  # validated by its gate, then put in service
    assert champion_of(reg) == 1
    assert kinds(reg) == ["model.state", "model.registered", "gate.passed", "model.state", "alias.moved",
                          "model.state"]
    assert [t.to for t in reg.history("m", 1)] == ["prototype", "validated", "deployed"]
    gate, moved = (e for e in reg.store.list_events(subject="model:m:1") if e.kind in ("gate.passed", "alias.moved"))
    assert gate.data == PASSED.to_dict()
    assert moved.data == {"alias": CHAMPION, "from": None, "to": 1, "reason": "passed the gate in run abcdef12",
                          "trigger": "test", "run_id": "abcdef1234"}
    assert moved.message == "champion of m: set to 1 (passed the gate in run abcdef12)"


def test_register_gated_that_fails_moves_no_alias() -> None:
    reg = registry()
    mv = reg.register_gated(version(state=ModelState.REJECTED), FAILED, alias=CHAMPION, over=None, trigger="test",
                            run_id="r" * 32)
    assert mv.state == ModelState.REJECTED
    assert reg.champion("m") is None
    assert kinds(reg) == ["model.state", "model.registered", "gate.failed", "model.state"]
    assert [(t.from_state, t.to, t.reason) for t in reg.history("m", 1)][1:] == [
        ("prototype", "rejected", "accuracy 0.600 >= 0.700: failed")]
    assert reg.store.list_events(kind="gate.failed")[0].message == "m:1 rejected: accuracy 0.600 >= 0.700: failed"


def test_register_gated_as_challenger_leaves_the_champion() -> None:
    reg = registry()
    promoted(reg, 1)
    mv = reg.register_gated(version(), PASSED, alias=CHALLENGER, over=5, trigger="test", run_id="r" * 32)
    assert champion_of(reg) == 1  # ``over`` only guards the champion
    assert reg.aliases_of("m", mv.version) == [CHALLENGER]


def test_register_gated_over_a_champion_that_moved_stores_nothing() -> None:
    reg = registry()
    promoted(reg, 2)
    events_before = kinds(reg)
    with pytest.raises(AliasMoved) as err:
        # gated against version 1, but version 2 is champion now
        reg.register_gated(version(), PASSED, alias=CHAMPION, over=1, trigger="test", run_id="r" * 32)
    assert err.value.current == 2
    assert "moved meanwhile: it points at 2, not at 1" in err.value.message
    assert [mv.version for mv in reg.list("m")] == [1, 2]  # no version 3
    assert kinds(reg) == events_before  # and no event about it
    assert champion_of(reg) == 2


def test_register_gated_with_no_champion_expected_but_one_set_stores_nothing() -> None:
    reg = registry()
    promoted(reg, 1)
    with pytest.raises(AliasMoved) as err:
        reg.register_gated(version(), PASSED, alias=CHAMPION, over=None, trigger="test", run_id="r" * 32)
    assert err.value.current == 1
    assert len(reg.list("m")) == 1


# -- set_alias -------------------------------------------------------------------------------------------


def test_set_alias_with_expected_refuses_when_the_alias_moved() -> None:
    reg = registry()
    promoted(reg, 2)
    reg.register(version(), reason="third")
    before = reg.store.list_events(limit=1000)
    with pytest.raises(AliasMoved) as err:
        reg.set_alias("m", CHAMPION, 3, reason="promote", expected=1)
    assert err.value.current == 2
    assert champion_of(reg) == 2
    assert reg.store.list_events(limit=1000) == before
    # the right expectation moves it, and returns where it pointed
    assert reg.set_alias("m", CHAMPION, 3, reason="promote", expected=2) == 2
    assert champion_of(reg) == 3


def test_set_alias_expected_zero_means_no_alias_yet() -> None:
    reg = registry()
    reg.register(version(), reason="x")
    assert reg.set_alias("m", CHAMPION, 1, reason="first", expected=0) is None
    with pytest.raises(AliasMoved, match="points at 1, not nowhere"):
        reg.set_alias("m", CHAMPION, 1, reason="again", expected=0)


def test_set_alias_to_where_it_points_records_nothing() -> None:
    reg = registry()
    promoted(reg, 1)
    before = kinds(reg)
    assert reg.set_alias("m", CHAMPION, 1, reason="again") == 1
    assert kinds(reg) == before


def test_a_rejected_version_cannot_serve() -> None:
    reg = registry()
    reg.register(version(state=ModelState.REJECTED, reasons=["too weak"]), reason="x")
    with pytest.raises(AliasConflict) as err:
        reg.set_alias("m", CHAMPION, 1, reason="try")
    assert err.value.message == "m:1 is rejected and cannot be champion"
    assert "too weak" in (err.value.hint or "")
    assert reg.set_alias("m", "staging", 1, reason="any other alias may") is None


# -- champion history and rollback -------------------------------------------------------------------------


def test_rollback_walks_back_through_the_champions_then_says_there_is_nothing_left() -> None:
    reg = registry()
    assert promoted(reg, 3) == [1, 2, 3]
    assert reg.champion_history("m") == [1, 2, 3]
    assert reg.rollback("m", reason="bad") == 2
    assert (champion_of(reg), reg.champion_history("m")) == (2, [1, 2])
    assert reg.rollback("m", reason="still bad") == 1
    assert (champion_of(reg), reg.champion_history("m")) == (1, [1])
    with pytest.raises(ModelNotFound) as err:
        reg.rollback("m", reason="again")
    assert err.value.message == "m:1 is the first champion: there is nothing to roll back to"
    assert champion_of(reg) == 1


def test_each_move_is_an_event_that_says_it_was_a_rollback() -> None:
    reg = registry()
    promoted(reg, 3)
    reg.rollback("m", reason="errors up", trigger="monitor")
    moves = reg.store.list_events(subject="model:m:*", kind="alias.moved")
    assert [(e.data["from"], e.data["to"]) for e in moves] == [(None, 1), (1, 2), (2, 3), (3, 2)]
    last = moves[-1]
    assert last.data["rollback"] is True and last.data["trigger"] == "monitor"
    assert last.message == "champion of m: 3 → 2 (errors up)"


def test_a_promotion_after_a_rollback_is_pushed_on_the_history() -> None:
    reg = registry()
    promoted(reg, 3)
    reg.rollback("m", reason="bad")
    reg.register_gated(version(), PASSED, alias=CHAMPION, over=2, trigger="test", run_id="r" * 32)
    assert reg.champion_history("m") == [1, 2, 4]
    assert reg.rollback("m", reason="bad") == 2  # not 3, which was rolled back from
    assert reg.rollback("m", reason="bad") == 1


def test_rollback_to_a_named_version_drops_what_came_after_it() -> None:
    reg = registry()
    promoted(reg, 3)
    assert reg.rollback("m", reason="back to the start", to=1) == 1
    assert reg.champion_history("m") == [1]
    with pytest.raises(ModelNotFound, match="first champion"):
        reg.rollback("m", reason="again")


def test_rollback_skips_versions_that_can_no_longer_serve() -> None:
    reg = registry()
    promoted(reg, 3)
    reg.set_state("m", 2, ModelState.REJECTED, ["found wrong later"])
    assert reg.rollback("m", reason="bad") == 1


def test_rollback_to_a_version_that_cannot_serve_is_refused() -> None:
    reg = registry()
    promoted(reg, 2)
    reg.set_state("m", 1, ModelState.REJECTED)
    with pytest.raises(AliasConflict, match="m:1 is rejected"):
        reg.rollback("m", reason="bad", to=1)
    assert champion_of(reg) == 2


def test_rollback_without_a_champion() -> None:
    reg = registry()
    reg.register(version(), reason="x")
    with pytest.raises(ModelNotFound, match="has no champion to roll back"):
        reg.rollback("m", reason="bad")


def test_rollback_with_expected_refuses_when_the_champion_moved() -> None:
    reg = registry()
    promoted(reg, 3)
    with pytest.raises(AliasMoved):
        reg.rollback("m", reason="bad", expected=2)
    assert champion_of(reg) == 3


def test_a_manual_promotion_back_to_an_old_version_is_a_new_step() -> None:
    reg = registry()
    promoted(reg, 2)
    reg.set_alias("m", CHAMPION, 1, reason="manual")
    assert reg.champion_history("m") == [1, 2, 1]
    assert reg.rollback("m", reason="bad") == 2
    assert reg.rollback("m", reason="bad") == 1


def test_the_history_of_one_model_ignores_other_models_and_aliases() -> None:
    reg = registry()
    promoted(reg, 2)
    promoted(reg, 3, name="m-other")
    reg.register_gated(version(), PASSED, alias=CHALLENGER, over=None, trigger="test", run_id="r" * 32)
    assert reg.champion_history("m") == [1, 2]
    assert reg.champion_history("m-other") == [1, 2, 3]


# -- reading -------------------------------------------------------------------------------------------------


def test_resolve_by_number_alias_latest_and_default() -> None:
    reg = registry()
    promoted(reg, 2)
    reg.register(version(), reason="x")
    assert reg.resolve("m", 1).version == 1
    assert reg.resolve("m", "1").version == 1
    assert reg.resolve("m", "latest").version == 3
    assert reg.resolve("m", CHAMPION).version == 2
    assert reg.resolve("m").version == 2
    with pytest.raises(ModelNotFound) as err:
        reg.get("m", 9)
    assert err.value.hint == "m has versions 1, 2, 3"
    with pytest.raises(ModelNotFound, match="has no alias 'canary'"):
        reg.resolve("m", "canary")
    with pytest.raises(ModelNotFound, match="no model named 'nope'"):
        reg.resolve("nope")


def test_resolve_reads_versions_without_profiles_but_answers_with_the_profile() -> None:
    # resolve lists a model's versions without their profiles (a long list stays cheap), then reads the one
    # it answers in full: serving and monitoring need its profile
    reg = registry()
    reg.register(version(profile={"rows": 1}), reason="x")
    reg.register(version(profile={"rows": 2}), reason="x")
    assert reg.resolve("m", "latest").profile == {"rows": 2}
    assert reg.resolve("m").profile == {"rows": 2}
    reg.set_alias("m", CHAMPION, 1, reason="back")
    assert reg.resolve("m").profile == {"rows": 1}
    assert [mv.profile for mv in reg.list("m", profiles=False)] == [{}, {}]
    assert [mv.profile for mv in reg.list("m")] == [{"rows": 1}, {"rows": 2}]
