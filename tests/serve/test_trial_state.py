"""The trial machinery without a server: the canary router's share, and the reloader following the
``challenger`` alias over a fake registry (loads are counted, some fail)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import pytest

from tidal.core.entities import Alias, ModelState, ModelVersion
from tidal.core.errors import IntegrityError
from tidal.predict.state import ServingState, Slot, Trial
from tidal.registry import CHALLENGER, CHAMPION
from tidal.serve import reloader as reloader_module
from tidal.serve.reloader import Reloader
from tidal.serve.trials import CanaryRouter

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def _mv(version: int, digest: str = "") -> ModelVersion:
    return ModelVersion(name="m", version=version, state=ModelState.VALIDATED, created_at=NOW, run_id="r",
                        artifact_digest=digest or f"digest-{version}", format="skops", task="classification")


def _state(version: int) -> ServingState:
    return ServingState(mv=_mv(version), predictor=None, schema=None, report={}, loaded_at=NOW,  # type: ignore[arg-type]
                        model_ref={"name": "m", "version": version})


@pytest.mark.parametrize("percent", [1, 10, 20, 33.3, 50, 99])
def test_the_canary_share_is_within_one_request_at_every_point(percent: float) -> None:
    router = CanaryRouter()
    trial = Trial(state=_state(2), kind="canary", percent=percent)
    taken = 0
    for n in range(1, 2001):
        taken += router.take(trial)
        assert abs(taken - n * percent / 100) < 1 + 1e-9, (n, taken)
    assert taken == math.floor(2000 * percent / 100 + 1e-9)
    assert router.stats(trial) == {"requests": 2000, "to_challenger": taken}


def test_the_canary_router_starts_again_with_a_new_challenger() -> None:
    router = CanaryRouter()
    first, second = Trial(_state(2), "canary", 20), Trial(_state(3), "canary", 20)
    assert [router.take(first) for _ in range(7)] == [False] * 4 + [True] + [False] * 2
    assert [router.take(second) for _ in range(5)] == [False] * 4 + [True]
    assert router.stats(first) == {"requests": 0, "to_challenger": 0}


class FakeStore:
    def __init__(self) -> None:
        self.aliases: dict[str, int] = {}
        self.reads: list[str] = []
        self.broken: set[str] = set()

    def get_alias(self, name: str, alias: str) -> Alias | None:
        self.reads.append(alias)
        if alias in self.broken:
            raise OSError("the store is unavailable")
        version = self.aliases.get(alias)
        return None if version is None else Alias(name=name, alias=alias, version=version, updated_at=NOW)


class FakeRegistry:
    def __init__(self) -> None:
        self.store = FakeStore()
        self.versions = {v: _mv(v) for v in (1, 2, 3)}
        self.versions[3] = _mv(3, digest="corrupt")

    def get(self, name: str, version: int) -> ModelVersion:
        return self.versions[version]


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The versions the reloader loads; a version with digest 'corrupt' fails to load."""
    done: list[int] = []

    def fake_load(registry: Any, mv: ModelVersion, *, now: datetime, fast: bool = True, runtime: str = "native",
                  tolerance: float = 1e-5) -> ServingState:  # load_state's signature
        if mv.artifact_digest == "corrupt":
            raise IntegrityError(f"the artifact of m:{mv.version} was modified or corrupted")
        done.append(mv.version)
        return _state(mv.version)

    monkeypatch.setattr(reloader_module, "load_state", fake_load)
    return done


def _reloader(registry: FakeRegistry, slot: Slot, kind: str | None) -> Reloader:
    return Reloader(registry, "m", slot, interval=1.0, trial_kind=kind, percent=25)


def test_direct_never_reads_the_challenger_alias(loads: list[int]) -> None:
    registry, slot = FakeRegistry(), Slot()
    registry.store.aliases = {CHAMPION: 1, CHALLENGER: 2}
    _reloader(registry, slot, None).check()
    assert slot.current is not None and slot.current.version == 1 and slot.trial is None
    assert CHALLENGER not in registry.store.reads and loads == [1]
    assert slot.trial_status.startswith("ignored")


def test_a_trial_starts_ends_and_its_winner_serves_without_a_second_load(loads: list[int]) -> None:
    registry, slot = FakeRegistry(), Slot()
    registry.store.aliases = {CHAMPION: 1, CHALLENGER: 2}
    reloader = _reloader(registry, slot, "canary")
    reloader.check()
    trial = slot.deployment.trial
    assert trial is not None and (trial.version, trial.kind, trial.percent) == (2, "canary", 25)
    # the loop deletes the alias, and a poll runs before it moves the champion
    del registry.store.aliases[CHALLENGER]
    reloader.check()
    assert slot.trial is None and "no challenger alias" in slot.trial_status
    registry.store.aliases[CHAMPION] = 2
    assert reloader.check()
    assert slot.current is not None and slot.current.version == 2 and slot.trial is None
    assert loads == [1, 2]  # version 2 was loaded once, as challenger


def test_promoted_in_place_the_trial_ends_in_the_same_swap(loads: list[int]) -> None:
    registry, slot = FakeRegistry(), Slot()
    registry.store.aliases = {CHAMPION: 1, CHALLENGER: 2}
    reloader = _reloader(registry, slot, "shadow")
    reloader.check()
    assert slot.trial is not None and slot.trial.percent == 0
    registry.store.aliases[CHAMPION] = 2  # the challenger alias still points at 2
    reloader.check()
    assert slot.deployment.champion is not None and slot.deployment.champion.version == 2
    assert slot.deployment.trial is None and loads == [1, 2]


def test_a_challenger_that_fails_never_touches_the_champion(loads: list[int]) -> None:
    registry, slot = FakeRegistry(), Slot()
    registry.store.aliases = {CHAMPION: 1, CHALLENGER: 3}
    reloader = _reloader(registry, slot, "canary")
    reloader.check()
    assert slot.current is not None and slot.current.version == 1 and slot.trial is None
    assert "could not be loaded" in slot.trial_status and loads == [1]
    reloader.check()  # not tried again at once
    assert loads == [1]
    # the alias moves on to a good version: the trial starts
    registry.store.aliases[CHALLENGER] = 2
    reloader.check()
    assert slot.trial is not None and slot.trial.version == 2
    # the store fails on the challenger alias alone: the champion's poll goes on, nothing raises
    registry.store.broken = {CHALLENGER}
    registry.store.aliases[CHAMPION] = 2
    assert reloader.check()
    assert slot.current.version == 2
