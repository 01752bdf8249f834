"""The pieces of a hyper-parameter search that know Optuna: the space as Optuna's distributions, the
sampler and the pruner, a parameter set drawn for a trial, and the check that every searched parameter is
one the estimator takes. The loop runs the trials (:mod:`tidal.loop.search`); the study is stored by
:mod:`tidal.storage.study`.

Optuna is an extra (``pip install 'tidal[search]'``), imported only when a spec has ``model.search``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from difflib import get_close_matches
from typing import Any

from tidal.core.errors import SpecError, TidalError
from tidal.spec.search import ParamSpace, SearchSpec
from tidal.train.estimator import import_estimator, parameter_names

OPTUNA_HINT = "pip install 'tidal[search]'"
#: A grid larger than this is refused: nobody means to try more points than that one by one.
MAX_GRID = 100_000


def import_optuna() -> Any:
    """The optuna module, or a :class:`TidalError` that says how to install it."""
    try:
        import optuna
    except ImportError:
        raise TidalError("model.search needs Optuna, which is not installed", hint=OPTUNA_HINT) from None
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # tidal shows the progress and records each trial
    return optuna


def check_space(estimator: str, search: SearchSpec) -> None:
    """Refuse a searched parameter the estimator does not take (checked against its constructor and
    ``get_params()``), with the closest name; an estimator taking any keyword (``**kwargs``) leaves the
    check to its library."""
    cls = import_estimator(estimator)
    accepted, open_ended = parameter_names(cls)
    if open_ended or not accepted:
        return
    for name in search.params:
        if name not in accepted:
            close = get_close_matches(name, sorted(accepted), n=1)
            raise SpecError(f"{cls.__name__} has no parameter {name!r}", path=f"model.search.params.{name}",
                            hint=f"did you mean {close[0]!r}?" if close else
                            f"{cls.__name__} accepts: {', '.join(sorted(accepted))}")


def distribution(space: ParamSpace) -> Any:
    """The Optuna distribution of one parameter's space."""
    optuna = import_optuna()
    dist = optuna.distributions
    if space.kind == "choice":
        return dist.CategoricalDistribution(list(space.choice or []))
    low, high = space.bounds
    if space.kind == "int":
        return dist.IntDistribution(int(low), int(high), log=space.log, step=int(space.step or 1))
    return dist.FloatDistribution(float(low), float(high), log=space.log, step=space.step)


def distributions(search: SearchSpec) -> dict[str, Any]:
    """The Optuna distributions of the whole space, by parameter name."""
    return {name: distribution(space) for name, space in search.params.items()}


def suggest(trial: Any, search: SearchSpec) -> dict[str, Any]:
    """The parameters ``trial`` draws from the space."""
    drawn: dict[str, Any] = {}
    for name, space in search.params.items():
        if space.kind == "choice":
            drawn[name] = trial.suggest_categorical(name, list(space.choice or []))
            continue
        low, high = space.bounds
        if space.kind == "int":
            drawn[name] = trial.suggest_int(name, int(low), int(high), step=int(space.step or 1), log=space.log)
        else:
            drawn[name] = trial.suggest_float(name, float(low), float(high), step=space.step, log=space.log)
    return drawn


def grid_points(space: ParamSpace) -> list[Any]:
    """Every value a grid tries for one parameter."""
    if space.kind == "choice":
        return list(space.choice or [])
    low, high = space.bounds
    step = space.step or 1
    count = math.floor((high - low) / step + 1e-9) + 1
    if count > MAX_GRID:
        raise SpecError(f"a grid of {count} values", path="model.search.params",
                        hint="use a larger step, or sampler: tpe")
    values = [low + i * step for i in range(count)]
    return [round(v) for v in values] if space.kind == "int" else [float(v) for v in values]


def grid_size(search: SearchSpec) -> int:
    """How many points the grid of the whole space has."""
    return math.prod(len(grid_points(space)) for space in search.params.values())


def make_sampler(search: SearchSpec, seed: int | None) -> Any:
    """The sampler ``search.sampler`` names, seeded by ``seed`` (the caller varies it on a resumed study, so
    that a resumed search does not draw the first trials' parameters again)."""
    optuna = import_optuna()
    if search.sampler == "grid":
        space = {name: grid_points(space) for name, space in search.params.items()}
        return optuna.samplers.GridSampler(space, seed=seed)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed)


def make_pruner(search: SearchSpec) -> Any:
    """The pruner ``search.pruner`` names (``median``: a trial whose curve is below the median of the earlier
    trials' curves at the same step is stopped; it waits for a few finished trials and a few steps first)."""
    optuna = import_optuna()
    if search.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5)


class _Snapshot:
    """The study as a pruner reads it (its direction and its trials), the trials read once: the trials that
    finished do not change while one trial's curve is judged, so one read serves every step."""

    def __init__(self, study: Any) -> None:
        self.direction = study.direction
        self.directions = study.directions
        self._trials = study.get_trials(deepcopy=False)

    def get_trials(self, deepcopy: bool = True, states: Sequence[Any] | None = None) -> list[Any]:
        return [t for t in self._trials if states is None or t.state in states]


class _Curve:
    """A trial as a pruner reads it: the intermediate values reported so far."""

    def __init__(self) -> None:
        self.intermediate_values: dict[int, float] = {}

    @property
    def last_step(self) -> int | None:
        return max(self.intermediate_values, default=None)


def pruned_step(study: Any, values: Sequence[float]) -> int | None:
    """The first step of ``values`` (a finished fit's curve, as the study's direction reads it) at which the
    study's pruner stops the trial, or None: what reporting each step and asking ``should_prune`` decides, with
    the study's trials read once instead of at every step (on an RDB storage, a query of every trial each)."""
    study_view, curve = _Snapshot(study), _Curve()
    for step, value in enumerate(values):
        curve.intermediate_values[step] = float(value)
        if study.pruner.prune(study_view, curve):
            return step
    return None


def store_curve(study: Any, trial: Any, values: Sequence[float]) -> None:
    """Record ``values`` as ``trial``'s intermediate values (step = position), for the pruner of later trials
    and for whoever reads the study: in one transaction on an RDB storage (``trial.report`` commits each step,
    a few ms apiece), else step by step."""
    optuna = import_optuna()
    backend = getattr(study._storage, "_backend", study._storage)
    try:
        from optuna.storages._rdb import models  # Optuna's own table, as its storage writes it

        trial_id, model = trial._trial_id, models.TrialIntermediateValueModel
    except (ImportError, AttributeError):
        backend = None
    if not isinstance(backend, optuna.storages.RDBStorage):
        for step, value in enumerate(values):
            trial.report(float(value), step)
        return
    rows = []
    for step, value in enumerate(values):
        stored, kind = model.intermediate_value_to_stored_repr(float(value))
        rows.append(model(trial_id=trial_id, step=step, intermediate_value=stored, intermediate_value_type=kind))
    session = backend.scoped_session()
    try:
        session.add_all(rows)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


__all__ = ["MAX_GRID", "OPTUNA_HINT", "check_space", "distribution", "distributions", "grid_points", "grid_size",
           "import_optuna", "make_pruner", "make_sampler", "pruned_step", "store_curve", "suggest"]
