"""The pruner's decision on a finished fit's curve, made in this process with the study read once, and the curve
stored in one transaction: the same decisions and the same stored study as Optuna's own ``trial.report`` and
``trial.should_prune`` step by step."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any, Literal

import optuna
import pytest

from tidal.train.search import pruned_step, store_curve


def _curves(seed: int, count: int, steps: int) -> list[list[float]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        level, rate = rng.uniform(0.4, 0.8), rng.uniform(0.005, 0.03)
        out.append([level + rate * math.log1p(s) + rng.gauss(0, 0.01) for s in range(rng.randint(3, steps))])
    return out


def _optuna_step(trial: Any, values: list[float]) -> int | None:
    """Optuna's own way: report a step, ask the pruner, until it says stop."""
    for step, value in enumerate(values):
        trial.report(value, step)
        if trial.should_prune():
            return step
    return None


def _tidal_step(study: Any, trial: Any, values: list[float]) -> int | None:
    step = pruned_step(study, values)
    store_curve(study, trial, values if step is None else values[: step + 1])
    return step


Direction = Literal["maximize", "minimize"]


def _search(storage: Any, how: Any, direction: Direction, curves: list[list[float]]) -> tuple[list[Any], Any]:
    study = optuna.create_study(storage=storage, direction=direction,
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5))
    decided = []
    for values in curves:
        trial = study.ask()
        step = how(study, trial, values) if how is _tidal_step else how(trial, values)
        decided.append(step)
        if step is None:
            study.tell(trial, values[-1])
        else:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
    return decided, study


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_same_trials_are_pruned_at_the_same_steps_and_the_study_holds_the_same_curves(
        tmp_path: Path, direction: Literal["maximize", "minimize"]) -> None:
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    curves = _curves(7, 30, 40)
    if direction == "minimize":
        curves = [[-v for v in c] for c in curves]
    ours, mine = _search(f"sqlite:///{tmp_path / 'tidal.db'}", _tidal_step, direction, curves)
    theirs, reference = _search(f"sqlite:///{tmp_path / 'optuna.db'}", _optuna_step, direction, curves)
    assert ours == theirs
    assert sum(s is not None for s in ours) >= 5  # the pruner did prune: the comparison is not vacuous
    assert [t.intermediate_values for t in mine.get_trials()] == [t.intermediate_values for t in
                                                                 reference.get_trials()]
    assert [t.state for t in mine.get_trials()] == [t.state for t in reference.get_trials()]


def test_a_curve_with_nan_and_inf_is_stored_as_optuna_stores_it(tmp_path: Path) -> None:
    values = [0.5, float("nan"), float("inf"), float("-inf"), 0.7]
    for storage in (f"sqlite:///{tmp_path / 'rdb.db'}", optuna.storages.InMemoryStorage()):
        study = optuna.create_study(storage=storage)
        trial = study.ask()
        store_curve(study, trial, values)
        study.tell(trial, 1.0)
        stored = study.get_trials()[0].intermediate_values
        assert stored[0] == 0.5 and math.isnan(stored[1]) and stored[2] == float("inf")
        assert stored[3] == float("-inf") and stored[4] == 0.7 and len(stored) == 5


def test_no_pruner_prunes_nothing(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'n.db'}", pruner=optuna.pruners.NopPruner())
    for _ in range(4):
        trial = study.ask()
        study.tell(trial, 1.0)
    assert pruned_step(study, [0.0] * 20) is None
