"""A hyper-parameter search (``model.search``): Optuna trials, each a child run of the run that searches.

The search sees only the run's training rows. It splits them again, as ``validate.split`` says, into the
rows a trial fits on and the *validation* rows it is scored on; the holdout that the gate judges the final
model on is never seen by any trial, so the gate's figure is not one the search was tuned to.

Each trial is a run of its own (trigger ``search``) whose info and tags name its parent run, the study and
the trial number, with the trial's parameters, its per-iteration curves, its fit time and its validation
metrics stored as a run's are. The study lives in Optuna's RDB storage beside the metadata store
(:mod:`tidal.storage.study`) under a name derived from what the search depends on (the training rows, the
estimator and its fixed params, the preparation, the space, the metric, the sampler): running the same
search again resumes it, trying only the trials its budget still allows. The trial budget counts every
finished trial of the study (complete, pruned or failed), whichever run made it; a time budget is this
run's.

The search keeps the study in this process and asks Optuna for trials (its ask-and-tell interface): each
trial's fit (:func:`fit_trial`, a function of its arguments alone) goes to the executor, as many at once as it
has slots (one on the local executor, so trials run one after the other as before; a Ray cluster's CPUs on
``storage.executor: ray``); its run, its curves, the pruner's decision and Optuna's record are written here
when it comes back.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from tidal.core.entities import Run, RunStatus
from tidal.core.errors import ExecutorError, SpecError, TidalError, TrainingError
from tidal.core.hashing import digest_of
from tidal.core.ports import Clock, Executor, MetadataStore, Task
from tidal.core.progress import report
from tidal.data import steps as data_steps
from tidal.evaluate.scoring import metrics_on
from tidal.loop.liveness import beating, owner_info
from tidal.spec import Spec
from tidal.spec.metrics import LOWER_IS_BETTER, metrics_for, task_of
from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.spec.search import SearchSpec
from tidal.train.fit import fit_pipeline
from tidal.train.search import (
    check_space,
    grid_size,
    import_optuna,
    make_pruner,
    make_sampler,
    pruned_step,
    store_curve,
    suggest,
)
from tidal.train.tracking import Tracker

#: The curves a pruner reads, best first, with the sign that makes a larger value better.
PRUNING_CURVES: tuple[tuple[str, float], ...] = (
    ("curve.validation_score", 1.0), ("curve.valid.accuracy", 1.0), ("curve.valid.loss", -1.0),
    ("curve.train_score", 1.0), ("curve.loss", -1.0), ("curve.train.loss", -1.0),
)
#: The trial states that use up the trial budget.
FINISHED = ("COMPLETE", "PRUNED", "FAIL")


@dataclass
class SearchOutcome:
    """What a search found: the best trial's parameters (merged over ``model.params``) and where it is."""

    study: str
    metric: str
    direction: str
    best_trial: int
    best_value: float
    best_params: dict[str, Any]
    params: dict[str, Any]
    trials: int
    new_trials: int
    states: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.study, "metric": self.metric, "direction": self.direction,
                "best_trial": self.best_trial, "best_value": self.best_value, "best_params": self.best_params,
                "params": self.params, "trials": self.trials, "new_trials": self.new_trials, "states": self.states}


@dataclass
class TrialResult:
    """What one trial gives back: its metric values on the validation rows, or the step it was pruned at."""

    metrics: dict[str, float | None]
    pruned_at: int | None = None


def search_metric(spec: Spec, task: str) -> str:
    """``model.search.metric``, else the first gate's metric, else the first listed metric, else the task's
    first metric; refused when it is not one of the task's."""
    search = spec.model.search
    assert search is not None
    gates = [g.metric for g in spec.validate.gates]
    named = search.metric or (gates[0] if gates else None) or next(iter(spec.validate.metrics), None)
    metric = named or metrics_for(task)[0]
    if task_of(metric) != task:
        raise SpecError(f"{metric!r} is a {task_of(metric)} metric, but the task is {task}",
                        path="model.search.metric",
                        hint=f"set model.search.metric to one of {', '.join(metrics_for(task))}")
    return metric


def study_name(project: str, *, train: str, columns: list[str], kinds: Mapping[str, str], model: ModelSpec,
               prepare: PrepareSpec, target: str, metric: str, task: str, split: Any) -> str:
    """The study's name: the project and a digest of everything the trials' scores depend on (the budget
    is not part of it, so a larger budget continues the same study)."""
    search = model.search
    assert search is not None
    key = {"train": train, "columns": list(columns), "kinds": {c: kinds.get(c) for c in columns}, "target": target,
           "estimator": model.estimator, "params": model.params, "seed": model.seed, "task": task,
           "prepare": prepare.model_dump(mode="json"), "metric": metric, "split": split.model_dump(mode="json"),
           "space": {k: v.model_dump(mode="json") for k, v in search.params.items()},
           "sampler": search.sampler, "pruner": search.pruner}
    return f"{project}-{digest_of(key)[:16]}"


@dataclass
class TrialFit:
    """What fitting one trial gives back: its curves, its fit time, and its metrics on the validation rows."""

    curves: dict[str, list[float]]
    fit_seconds: float
    metrics: dict[str, float | None]


def fit_trial(fit_rows: pd.DataFrame, valid_rows: pd.DataFrame, *, target: str, columns: list[str],
              kinds: Mapping[str, str], prepare: PrepareSpec, model: ModelSpec, task: str) -> TrialFit:
    """Fit ``model`` on ``fit_rows`` and score it on ``valid_rows``: a trial's work, a function of its arguments
    alone, so that the executor can run it anywhere (the study and the trial's run stay with the search)."""
    fitted = fit_pipeline(fit_rows, target=target, columns=columns, kinds=dict(kinds), prepare=prepare, model=model)
    scores = metrics_on(fitted.model, valid_rows, columns=columns, kinds=kinds, target=target, task=task)
    return TrialFit(curves=fitted.curves, fit_seconds=fitted.fit_seconds, metrics=scores)


def judge_trial(fitted: TrialFit, tracker: Tracker, pruned_at: Callable[[list[float]], int | None]) -> TrialResult:
    """Log what a fitted trial did to ``tracker``'s run and offer its curve (read with "larger is better") to
    ``pruned_at``, which gives the step the pruner stops it at, if any (the curve of a finished fit: the pruner
    stops a trial that is worse than the others at the same step, in the study's record, and its validation
    metrics are not logged)."""
    with tracker.batch():
        for key, values in fitted.curves.items():
            tracker.log_curve(key, values)
        tracker.log_metric("fit_seconds", fitted.fit_seconds)
    curve = next(((fitted.curves[k], sign) for k, sign in PRUNING_CURVES if fitted.curves.get(k)), None)
    if curve is not None:
        values, sign = curve
        step = pruned_at([sign * float(v) for v in values])
        if step is not None:
            return TrialResult(metrics={}, pruned_at=step)
    tracker.log_metrics({f"validation.{k}": v for k, v in fitted.metrics.items() if v is not None})
    return TrialResult(metrics=fitted.metrics)


@dataclass
class _Running:
    """A trial handed to the executor: its Optuna trial, its run, and what keeps the run's heartbeat."""

    trial: Any
    run: Run
    tracker: Tracker
    task: Task[TrialFit]
    beat: contextlib.ExitStack


class Search:
    """One search over a run's training rows (see the module)."""

    def __init__(self, spec: Spec, *, store: MetadataStore, clock: Clock, storage: Any, run_id: str,
                 task: str, columns: list[str], kinds: Mapping[str, str], heartbeat_s: float | None = None,
                 executor: Executor) -> None:
        """``heartbeat_s``: seconds between the heartbeats of each trial's run, as the parent run's (None:
        none, as in a backtest), so that a long trial is never taken for an abandoned run. ``executor``: where
        the trials are fitted (as many at once as its slots)."""
        self.spec, self.store, self.clock, self.storage, self.run_id = spec, store, clock, storage, run_id
        self.executor = executor
        self.heartbeat_s = heartbeat_s
        self.task, self.columns, self.kinds = task, columns, dict(kinds)
        search = spec.model.search
        if search is None:
            raise ValueError("the spec has no model.search")
        self.search: SearchSpec = search

    def run(self, train: pd.DataFrame, train_digest: str) -> SearchOutcome:
        """Run (or resume) the study over ``train`` (stored as ``train_digest``); the best trial's outcome."""
        optuna = import_optuna()
        spec, search = self.spec, self.search
        check_space(spec.model.estimator, search)
        metric = search_metric(spec, self.task)
        direction = "minimize" if metric in LOWER_IS_BETTER else "maximize"
        name = study_name(spec.name, train=train_digest, columns=self.columns, kinds=self.kinds, model=spec.model,
                          prepare=spec.prepare, target=spec.data.target, metric=metric, task=self.task,
                          split=spec.validate.split)
        fit_rows, valid_rows = data_steps.split(train, spec.validate.split, target=spec.data.target,
                                                time=spec.data.time, task=self.task, seed=spec.model.seed)
        study = optuna.create_study(storage=self.storage, study_name=name, direction=direction,
                                    load_if_exists=True, pruner=make_pruner(search))
        # a resumed study draws from a sampler seeded past the trials it has, not the first trials again
        seed = None if spec.model.seed is None else spec.model.seed + len(study.trials)
        study.sampler = make_sampler(search, seed)
        study.set_user_attr("project", spec.name)
        study.set_user_attr("metric", metric)
        budget = search.budget_trials
        if search.sampler == "grid":  # a grid with no trials given tries every point
            size = grid_size(search)
            budget = size if search.trials is None else min(search.trials, size)
        seconds = search.budget_seconds
        before = self._finished(study)
        started = time.monotonic()

        def shown(study: Any, trial: Any) -> None:  # an Optuna callback, after each trial
            if budget is not None:
                report("trial", self._finished(study), budget)
            else:
                report("second", min(int(time.monotonic() - started), int(seconds or 0)), int(seconds or 0))

        left = None if budget is None else budget - before
        if left is None or left > 0:
            self._optimize(optuna, study, name, metric, fit_rows, valid_rows, left=left, seconds=seconds,
                           shown=shown)
        return self._outcome(optuna, study, name, metric, direction, self._finished(study) - before)

    @staticmethod
    def _finished(study: Any) -> int:
        return sum(t.state.name in FINISHED for t in study.get_trials(deepcopy=False))

    def _optimize(self, optuna: Any, study: Any, name: str, metric: str, fit_rows: pd.DataFrame,
                  valid_rows: pd.DataFrame, *, left: int | None, seconds: float | None,
                  shown: Callable[[Any, Any], None]) -> None:
        """Optuna's ``optimize`` with its ask-and-tell interface, so that the executor fits up to its slots of
        trials at once: ``left`` trials at most, none started after ``seconds``. A failing trial is recorded as
        failed (its run too) and the search goes on; anything else (an interrupt, a worker that died twice)
        fails the trials in flight and stops it."""
        started, asked = time.monotonic(), 0
        slots = max(1, self.executor.slots)
        running: list[_Running] = []
        try:
            while True:
                while len(running) < slots and (left is None or asked < left) and (
                        seconds is None or time.monotonic() - started < seconds):
                    running.append(self._start(study, name, fit_rows, valid_rows))
                    asked += 1
                if not running:
                    return
                for task in self.executor.wait([r.task for r in running]):
                    done = next(r for r in running if r.task is task)
                    running.remove(done)
                    self._finish(optuna, study, done, metric)
                    shown(study, done.trial)
        except BaseException as exc:  # the trials still in flight did not finish: their runs and Optuna say so
            for r in running:
                self._fail(study, r, exc)
            raise

    def _start(self, study: Any, name: str, fit_rows: pd.DataFrame, valid_rows: pd.DataFrame) -> _Running:
        """Ask Optuna for a trial, record its run, and hand its fit to the executor."""
        spec = self.spec
        trial = study.ask()
        drawn = suggest(trial, self.search)
        params = {**spec.model.params, **drawn}
        model = spec.model.model_copy(update={"params": params, "search": None})
        run = Run(id=uuid.uuid4().hex, project=spec.name, status=RunStatus.RUNNING, started_at=self.clock.now(),
                  spec_digest=spec.digest, trigger="search",
                  info={"parent_run": self.run_id, "study": name, "trial": trial.number, "params": drawn,
                        "owner": owner_info()},
                  heartbeat_at=self.clock.now() if self.heartbeat_s is not None else None)
        self.store.create_run(run)
        tracker = Tracker(self.store, run.id, clock=self.clock)
        tracker.log_params({f"model.params.{k}": v for k, v in params.items()})
        tracker.set_tags({"parent_run": self.run_id, "study": name, "trial": trial.number})
        beat = contextlib.ExitStack()
        beat.enter_context(beating(self.store, run.id, self.clock, self.heartbeat_s))
        try:
            task = self.executor.submit(fit_trial, fit_rows, valid_rows, target=spec.data.target,
                                        columns=self.columns, kinds=self.kinds, prepare=spec.prepare, model=model,
                                        task=self.task)
        except BaseException as exc:
            running = _Running(trial=trial, run=run, tracker=tracker, task=_Refused(exc), beat=beat)
            self._fail(study, running, exc)
            raise
        return _Running(trial=trial, run=run, tracker=tracker, task=task, beat=beat)

    def _finish(self, optuna: Any, study: Any, r: _Running, metric: str) -> None:
        """Record a trial that came back: its run, its curves, the pruner's decision, and tell Optuna."""
        trial, run = r.trial, r.run

        def pruned_at(curve: list[float]) -> int | None:
            # the curve is read with "larger is better"; the study minimises when the metric is a loss. The
            # pruner decides on the steps in this process and the steps it saw are stored at once (as
            # reporting each and asking should_prune would, without a round-trip to the storage per step)
            values = curve if study.direction.name == "MAXIMIZE" else [-v for v in curve]
            step = pruned_step(study, values)
            store_curve(study, trial, values if step is None else values[: step + 1])
            return step

        try:
            with r.beat:
                result = judge_trial(r.task.result(), r.tracker, pruned_at)
            value = result.metrics.get(metric)
            if result.pruned_at is None and value is None:
                raise TrainingError(f"{metric} is undefined on the validation rows",
                                    hint="choose another model.search.metric")
        except ExecutorError as exc:  # not the trial's fault (a worker that died twice, a lost cluster): it stops
            self._fail(study, r, exc)
            raise
        except (TidalError, ValueError, TypeError) as exc:  # a failed trial: recorded, and the search goes on
            self._fail(study, r, exc)
            return
        except BaseException as exc:  # anything else stops the search, this trial failed
            self._fail(study, r, exc)
            raise
        if result.pruned_at is not None:
            # pruned is neither a failure nor a scored model: the run says which
            self.store.finish_run(run.id, RunStatus.SUCCEEDED, self.clock.now(),
                                  info={**run.info, "state": "pruned", "pruned_at": result.pruned_at})
            _tell(study, trial, state=optuna.trial.TrialState.PRUNED)
            return
        assert value is not None
        self.store.finish_run(run.id, RunStatus.SUCCEEDED, self.clock.now(),
                              info={**run.info, "state": "complete", "value": float(value)})
        _tell(study, trial, float(value))

    def _fail(self, study: Any, r: _Running, exc: BaseException) -> None:
        """The trial's run failed (an interrupt as well: it did not finish), and Optuna records it failed."""
        r.beat.close()
        message = str(exc) if isinstance(exc, TidalError) else f"{type(exc).__name__}: {exc}"
        self.store.finish_run(r.run.id, RunStatus.FAILED, self.clock.now(), error=message,
                              info={**r.run.info, "state": "failed"})
        optuna = import_optuna()
        with contextlib.suppress(Exception):  # already told (a failure while telling): the first record stands
            study.tell(r.trial, state=optuna.trial.TrialState.FAIL)
        _warn_failed(r.trial.number, message)

    def _outcome(self, optuna: Any, study: Any, name: str, metric: str, direction: str, new: int) -> SearchOutcome:
        trials = study.get_trials(deepcopy=False)
        states: dict[str, int] = {}
        for t in trials:
            states[t.state.name.lower()] = states.get(t.state.name.lower(), 0) + 1
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not complete:
            raise TrainingError(f"no trial of the search finished ({_counts(states)})",
                                hint="see the trials with `tidal runs ls`; check model.search.params and "
                                     "model.params")
        best = study.best_trial
        return SearchOutcome(study=name, metric=metric, direction=direction, best_trial=best.number,
                             best_value=float(best.value), best_params=dict(best.params),
                             params={**self.spec.model.params, **best.params}, trials=len(trials), new_trials=new,
                             states=states)


def _tell(study: Any, trial: Any, value: float | None = None, *, state: Any = None) -> None:
    """``study.tell``, where a grid sampler that has tried its last point asks the study to stop, which Optuna
    allows only inside ``optimize`` (the trial is stored first; the search's budget stops at the grid's size)."""
    try:
        study.tell(trial, value, state=state)
    except RuntimeError as exc:
        if "Study.stop" not in str(exc):
            raise


class _Refused:
    """A trial the executor did not take (its result raises why)."""

    where: dict[str, Any] | None = None

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def result(self) -> TrialFit:
        raise self.exc

    def done(self) -> bool:
        return True


def _warn_failed(number: int, message: str) -> None:
    """Optuna's own line for a failed trial, as ``optimize(catch=...)`` wrote it."""
    import logging

    logging.getLogger("optuna.study.study").warning("Trial %s failed because of the following error: %s", number,
                                                    message)


def _counts(states: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none ran"


__all__ = ["PRUNING_CURVES", "Search", "SearchOutcome", "TrialFit", "TrialResult", "fit_trial", "judge_trial",
           "search_metric", "study_name"]
