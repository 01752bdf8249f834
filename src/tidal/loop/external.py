"""Bring your own model (issue #12, point 4b): register a model the user fitted in their own code.

``ws.models.register(model, name="churn", data=frame)`` takes a fitted estimator of any registered flavor
(a bare ``xgboost.XGBClassifier`` fitted on a numeric frame, a scikit-learn ``Pipeline`` with its own
preprocessing, a ``lightgbm.LGBMRegressor``...) and the labelled rows it was scored on, and gives it what a
model trained by ``tidal run`` has:

- **the data** becomes a content-addressed snapshot (:func:`tidal.data.snapshot.make_snapshot`);
- **the signature**: the model's input columns (``feature_names_in_`` where the model knows its column
  names, else every column of the data but the target, or ``columns=``), their kinds profiled from the data,
  the task (from the estimator, else the target) and a classifier's classes;
- **the reference profile** of those rows and of the model's answers to them, for monitoring;
- **the metrics** on those rows, and **the gate**: the project's ``validate.gates`` (for the project's own
  model; a model of another name has no gates of its own) against the current champion of ``name``, both
  scored on these same rows. The given data is the holdout: it is the only labelled data tidal has for a
  model it did not train, and the champion is compared on the rows of it that it did not train on, as
  in a run (:func:`tidal.evaluate.gate_decision`);
- **served = validated**: the model is stored by its flavor, loaded back as the server loads it, and must
  predict the rows exactly as the model in memory did, else it is registered ``rejected`` with the reason;
- **a run** (trigger ``register``) whose params are the model's ``get_params()``, whose metrics are the
  holdout metrics, and whose ``log.txt`` holds what the library printed meanwhile; and **the lineage**:
  ``trained outside tidal``, the snapshot, the caller's git commit (of the current folder) and environment.

Every check that can refuse runs before anything is stored: a refusal (an object no flavor handles, an
unfitted model, an invalid name, an empty table, a missing target or input column, data the model refuses
to predict, a model its flavor cannot store) is one :class:`~tidal.core.errors.TidalError` line and leaves
the stores as they were.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tidal.core.entities import ModelState, ModelVersion, Run, RunStatus
from tidal.core.errors import (
    DataError,
    PluginNotFound,
    RegistryError,
    SnapshotNotFound,
    SourceError,
    TidalError,
    TrainingError,
)
from tidal.core.ports import ArtifactStore, Clock, MetadataStore
from tidal.core.signature import Lineage, Signature
from tidal.data import steps as data_steps
from tidal.data.prepare import as_model_input, infer_task
from tidal.data.snapshot import make_snapshot, read_snapshot_bytes
from tidal.evaluate import Champion, GateDecision, evaluate_model, gate_decision
from tidal.evaluate.served import SERVED, served_difference
from tidal.loop.cache import environment, environment_digest
from tidal.loop.lineage import git_commit
from tidal.monitor.baseline import holdout_drift
from tidal.registry import CHALLENGER, CHAMPION, SERVABLE, Registry
from tidal.spec import Spec
from tidal.spec.model import NAME_PATTERN
from tidal.train.capture import capture_output
from tidal.train.fit import predict_frame
from tidal.train.flavors import Flavor, flavor_for
from tidal.train.tracking import LOG_ARTIFACT, Tracker

#: What the lineage of a registered model says about where it was trained.
ORIGIN = "trained outside tidal"
#: The trigger of the run that registers it.
TRIGGER = "register"


@dataclass(frozen=True)
class _Ports:
    """The spec and the registry, with the stores and the clock under it."""

    spec: Spec
    registry: Registry

    @property
    def store(self) -> MetadataStore:
        return self.registry.store

    @property
    def artifacts(self) -> ArtifactStore:
        return self.registry.artifacts

    @property
    def clock(self) -> Clock:
        return self.registry.clock


@dataclass
class _Checked:
    """A model and its data, checked and scored, before anything is stored."""

    flavor: Flavor
    frame: pd.DataFrame
    source: str
    target: str
    columns: list[str]
    kinds: dict[str, str]
    task: str
    answers: tuple[Any, Any]


def register_model(
    spec: Spec, registry: Registry, model: Any, *, name: str, data: pd.DataFrame | str | os.PathLike[str],
    target: str | None = None, columns: list[str] | None = None, task: str | None = None,
    promote: bool | str = False, reason: str | None = None,
) -> ModelVersion:
    """Register ``model``, fitted outside tidal, as a version of ``name`` (see the module docstring).

    ``data``: the labelled rows it was scored on, as a DataFrame, the digest of a stored snapshot, or the
    path of a file (CSV, Parquet...; relative to the current folder). ``target``: their label column
    (default: the project's ``data.target``). ``columns``: the model's input columns, for a model fitted
    on an array (one that knows its column names takes those). ``task``: ``classification`` or
    ``regression`` when the estimator does not say. ``promote``: ``True`` makes a version that passes
    ``champion``, a text names the alias (``"challenger"``), ``False`` gives it none (``tidal promote``
    later). Returns the version as stored: ``validated`` (``deployed`` when promoted) or ``rejected``, with
    its reasons. Only ``spec`` and the ``registry`` (its metadata and artifact stores, its clock) are used:
    nothing else of the workspace (its prediction log) is opened."""
    ctx = _Ports(spec, registry)
    if not isinstance(name, str) or not _valid_name(name):
        raise RegistryError(f"{name!r} is not a valid model name",
                            hint="a letter, then up to 63 letters, digits, '_', '.' or '-'")
    alias = CHAMPION if promote is True else (promote or None)
    if alias is not None and not (isinstance(alias, str) and _valid_name(alias)):
        raise RegistryError(f"promote={promote!r} is not an alias", hint="give True (champion), False or an alias name")
    started = ctx.clock.now()
    with capture_output() as printed:  # what the library prints while it is scored goes to the run's log
        checked = _check(ctx, model, data, target=target, columns=columns, task=task)
        payload = _store_bytes(checked.flavor, model)
        snapshot, snapshot_bytes = make_snapshot(checked.frame, project=ctx.spec.name, source=checked.source,
                                                 created_at=ctx.clock.now())
        evaluation = evaluate_model(model, checked.frame, checked.frame, columns=checked.columns, kinds=checked.kinds,
                                    target=checked.target, task=checked.task)
        champion = ctx.registry.champion(name)
        if champion is not None and (champion.task != checked.task or champion.state not in SERVABLE):
            champion = None  # a model of another task is no yardstick
        gates = ctx.spec.validate.gates if name == ctx.spec.name else []
        decision = gate_decision(gates, evaluation.validation, candidate_model=model, holdout=checked.frame,
                                 columns=checked.columns, kinds=checked.kinds, target=checked.target,
                                 task=checked.task, champion=None if champion is None else _champion(ctx, champion))
        features = data_steps.profile(checked.frame, checked.columns, checked.target)
        profile = {"features": features, "predictions": evaluation.predictions,
                   "holdout_drift": holdout_drift(features.get("columns") or {}, checked.frame, checked.columns,
                                                  train=checked.frame, max_rows=ctx.spec.monitor.window),
                   "calibration": evaluation.calibration}
        # -- from here on, things are stored --
        ctx.artifacts.put(snapshot_bytes)
        ctx.store.put_snapshot(snapshot)
        digest = ctx.artifacts.put(payload)
        why = _served_differs(ctx, checked, digest)
    if why is not None:
        decision = GateDecision(passed=False, reasons=[*decision.reasons, why], failed=[*decision.failed, why],
                                champion=decision.champion)
    return _record(ctx, model, checked, name=name, snapshot=snapshot.digest, digest=digest, decision=decision,
                   metrics=evaluation.validation, profile=profile, alias=alias, over=champion, log=printed.text,
                   reason=reason, started=started)


def _valid_name(name: str) -> bool:
    import re

    return re.fullmatch(NAME_PATTERN, name) is not None


# -- checks (nothing stored) --------------------------------------------------------------------------

def _check(ctx: _Ports, model: Any, data: Any, *, target: str | None, columns: list[str] | None,
           task: str | None) -> _Checked:
    flavor = _flavor(model)
    label = type(model).__name__
    _require_fitted(model, label)
    frame, source = _frame(ctx, data)
    if frame.empty or len(frame.columns) == 0:
        raise DataError(f"the data given to register {label} has no rows", hint="give the labelled rows it was "
                        "scored on")
    target = target or ctx.spec.data.target
    if target not in frame.columns:
        shown = ", ".join(map(str, frame.columns[:8])) + (", ..." if len(frame.columns) > 8 else "")
        raise DataError(f"the data has no target column {target!r}", hint=f"pass target= one of its columns: {shown}")
    if frame[target].isna().any():
        raise DataError(f"the target column {target!r} has {int(frame[target].isna().sum())} missing labels",
                        hint="give only labelled rows")
    inputs = _inputs(model, frame, target, columns, label)
    kinds = _kinds(frame, inputs)
    try:
        final = getattr(model, "steps", [[None, model]])[-1][1]
        task = infer_task(frame[target], estimator=final if hasattr(final, "fit") else model, declared=task)
    except (TypeError, ValueError) as exc:
        raise DataError(f"the task of {label} cannot be told: {exc}", hint="pass task='classification' or "
                        "task='regression'") from exc
    if task not in ("classification", "regression"):
        raise DataError(f"task {task!r} is not one tidal knows", hint="pass task='classification' or 'regression'")
    try:
        answers = predict_frame(model, as_model_input(frame, inputs, kinds))
    except Exception as exc:  # the library's own refusal (a wrong dtype, a shape), whatever its class
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise DataError(f"{label} refuses the data: {type(exc).__name__}: {first}"[:500],
                        hint="give the columns, in the types, the model was fitted on") from None
    return _Checked(flavor=flavor, frame=frame, source=source, target=target, columns=inputs, kinds=kinds, task=task,
                    answers=answers)


def _flavor(model: Any) -> Flavor:
    try:
        return flavor_for(model)
    except PluginNotFound as exc:
        what = f"{type(model).__module__}.{type(model).__qualname__}"
        refused = PluginNotFound("flavor", type(model).__name__, exc.known)
        refused.message = f"no flavor handles a {what}: tidal registers fitted models of the flavors " \
                          f"{', '.join(exc.known)}"
        refused.hint = "pass the fitted estimator (or scikit-learn Pipeline) itself"
        raise refused from None


def _require_fitted(model: Any, label: str) -> None:
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    try:
        check_is_fitted(model)
    except NotFittedError:
        raise TrainingError(f"{label} is not fitted", hint="call its fit() first: tidal registers fitted "
                            "models (`tidal run` trains them from tidal.yaml)") from None
    except TypeError:  # not a scikit-learn estimator: its flavor's save will tell
        pass


def _frame(ctx: _Ports, data: Any) -> tuple[pd.DataFrame, str]:
    """The rows of ``data`` and a description of where they came from."""
    if isinstance(data, pd.DataFrame):
        return data.reset_index(drop=True), "a DataFrame given to Workspace.models.register"
    if not isinstance(data, str | os.PathLike):
        raise DataError(f"data must be a DataFrame, a snapshot digest or a path, not {type(data).__name__}",
                        hint="pass the labelled rows the model was scored on")
    text = os.fspath(data)
    if isinstance(data, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text):
        try:
            info = ctx.store.get_snapshot(text)
        except SnapshotNotFound:
            raise DataError(f"no snapshot {text[:12]}… in this workspace",
                            hint="pass a DataFrame or a file path instead") from None
        return read_snapshot_bytes(ctx.artifacts.get(info.digest)), f"snapshot {info.digest}"
    from tidal.data.sources import read_source

    path = Path(text).expanduser()
    try:
        return read_source(str(path), base_dir=Path.cwd()).reset_index(drop=True), str(path.resolve())
    except SourceError as exc:
        raise DataError(f"cannot read the data {text!r}: {exc.message}",
                        hint="pass a DataFrame, a snapshot digest, or the path of a CSV or Parquet file") from None


def _inputs(model: Any, frame: pd.DataFrame, target: str, columns: list[str] | None, label: str) -> list[str]:
    """The model's input columns in its order, each in ``frame``."""
    named = getattr(model, "feature_names_in_", None)
    if named is not None:
        wanted = [str(c) for c in named]
        if columns is not None and list(columns) != wanted:
            raise DataError(f"columns={list(columns)!r}, but {label} was fitted on {wanted!r}",
                            hint="leave columns out: the model knows its own")
    else:
        wanted = list(columns) if columns is not None else [str(c) for c in frame.columns if c != target]
        width = getattr(model, "n_features_in_", None)
        if width is not None and width != len(wanted):
            raise DataError(f"{label} takes {width} input columns, the data has {len(wanted)} besides the target",
                            hint="pass columns=[...] naming its inputs in order, or fit it on a DataFrame")
    if target in wanted:
        raise DataError(f"{label} takes the target column {target!r} as an input", hint="pass the right target=")
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        shown = ", ".join(map(repr, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise DataError(f"the data lacks {len(missing)} column{'s' if len(missing) > 1 else ''} {label} needs: "
                        f"{shown}", hint="give the rows with every column the model was fitted on")
    return wanted


def _kinds(frame: pd.DataFrame, columns: list[str]) -> dict[str, str]:
    from tidal.data.schema import column_kind

    return {c: column_kind(frame[c]) for c in columns}


def _store_bytes(flavor: Flavor, model: Any) -> bytes:
    try:
        return flavor.save(model)
    except TidalError as exc:
        raise TrainingError(f"{type(model).__name__} cannot be stored by the {flavor.name} flavor: {exc.message}",
                            hint=exc.hint) from None
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise TrainingError(f"{type(model).__name__} cannot be stored by the {flavor.name} flavor: "
                            f"{type(exc).__name__}: {first}"[:500],
                            hint="register a model made only of the flavor's library classes") from None


def _champion(ctx: _Ports, mv: ModelVersion) -> Champion:
    try:
        seen: list[pd.DataFrame] | None = [read_snapshot_bytes(ctx.artifacts.get(d))
                                           for d in mv.lineage.trained_on] or None
    except TidalError:
        seen = None
    return Champion(label=f"{mv.name}:{mv.version}", model=ctx.registry.load(mv), columns=mv.signature.names,
                    trained_on=seen)


def _served_differs(ctx: _Ports, checked: _Checked, digest: str) -> str | None:
    """Served = validated: why the stored model, loaded back as the server loads it, does not answer the
    rows exactly as the model in memory did (None when it does)."""
    try:
        loaded = checked.flavor.load(ctx.artifacts.get(digest))
        got = predict_frame(loaded, as_model_input(checked.frame, checked.columns, checked.kinds))
    except Exception as exc:  # the server could not load or run it either
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return (f"{SERVED}: the stored model cannot be loaded and run as the server does it: "
                f"{type(exc).__name__}: {first}")[:500]
    return served_difference(checked.answers, got)


# -- recording ----------------------------------------------------------------------------------------

def _record(ctx: _Ports, model: Any, checked: _Checked, *, name: str, snapshot: str, digest: str,
            decision: GateDecision, metrics: dict[str, float | None], profile: dict[str, Any], alias: str | None,
            over: ModelVersion | None, log: str, reason: str | None, started: datetime) -> ModelVersion:
    """The run that registers the version (started when the checks did), and the version (with its alias, if it
    passed)."""
    code = _code()
    git, env_digest = git_commit(Path.cwd()), environment_digest()
    info: dict[str, Any] = {"git": git, "environment": environment(), "environment_digest": env_digest,
                            "origin": ORIGIN, "code": code, "snapshot": snapshot}
    run = Run(id=uuid.uuid4().hex, project=ctx.spec.name, status=RunStatus.RUNNING, started_at=started,
              spec_digest=ctx.spec.digest, trigger=TRIGGER, info=info)
    ctx.store.create_run(run)
    tracker = Tracker(ctx.store, run.id, clock=ctx.clock, artifacts=ctx.artifacts)
    try:
        with tracker.batch():
            tracker.log_params(_params(model, deep=True))
            tracker.log_metrics({f"validation.{k}": v for k, v in metrics.items() if v is not None})
            tracker.set_tags({"trigger": TRIGGER, "origin": ORIGIN,
                              "git_commit": (git or {}).get("commit", "")})
        if log:
            tracker.log_artifact(LOG_ARTIFACT, log.encode())
        final = getattr(model, "steps", [[None, model]])[-1][1]
        classes = getattr(model, "classes_", None) if checked.task == "classification" else None
        mv = ModelVersion(
            name=name, version=0, state=ModelState.VALIDATED if decision.passed else ModelState.REJECTED,
            created_at=ctx.clock.now(), run_id=run.id, artifact_digest=digest, format=checked.flavor.format,
            task=checked.task,
            signature=Signature(columns={c: checked.kinds[c] for c in checked.columns}, target=checked.target,
                                classes=None if classes is None else [c.item() if hasattr(c, "item") else c
                                                                      for c in classes], task=checked.task),
            metrics={k: v for k, v in metrics.items() if v is not None}, profile=profile,
            lineage=Lineage(run_id=run.id, snapshot=snapshot, holdout=snapshot, git=git, environment_digest=env_digest,
                            estimator=f"{type(final).__module__}.{type(final).__qualname__}",
                            params=_params(final, deep=False), extra={"origin": ORIGIN, "code": code}),
            reasons=decision.failed,
            info={"flavor": checked.flavor.name, "gate": decision.to_dict(), "origin": ORIGIN})
        serves = alias == CHAMPION or (alias == CHALLENGER and name == ctx.spec.name
                                       and ctx.spec.deploy.strategy.kind != "direct")
        note = f": {reason}" if reason else f" ({ORIGIN})"
        stored = ctx.registry.register_gated(mv, decision, alias=alias, over=over.version if over else None,
                                             trigger=TRIGGER, run_id=run.id, note=note, serves=serves)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, TidalError) else f"{type(exc).__name__}: {exc}"
        ctx.store.finish_run(run.id, RunStatus.FAILED, ctx.clock.now(), error=message)
        raise
    ctx.store.finish_run(run.id, RunStatus.SUCCEEDED, ctx.clock.now(), info={
        "model": {"name": stored.name, "version": stored.version, "state": stored.state.value}})
    return stored


def _params(model: Any, *, deep: bool) -> dict[str, Any]:
    """``model.get_params()`` where it has one, as JSON values (objects, such as a pipeline's steps, left out)."""
    try:
        params = model.get_params(deep=deep)
    except Exception:  # no get_params, or one that fails: nothing to record
        return {}
    return {str(k): v for k, v in sorted(params.items())
            if v is None or isinstance(v, bool | int | float | str)}


def _code() -> dict[str, Any]:
    """Where the caller runs: the script (``sys.argv[0]``, when it is a file) and the current folder."""
    script = Path(sys.argv[0]).resolve() if sys.argv and sys.argv[0] and Path(sys.argv[0]).is_file() else None
    return {"script": None if script is None else str(script), "cwd": str(Path.cwd())}


__all__ = ["ORIGIN", "TRIGGER", "register_model"]
