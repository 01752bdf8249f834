"""The training pipeline: collect → validate data → split → profile → train → evaluate → gate → register.

Each step is a function of its stage (:mod:`tidal.data.steps`, :func:`tidal.train.fit.fit_pipeline`,
:func:`tidal.evaluate.evaluate_model`, :func:`tidal.evaluate.gate_decision`, and the registry's
:meth:`~tidal.registry.Registry.register_gated`) that takes its inputs and returns its outputs. This module
is the glue: it loads each step's inputs from the stores, hands the step to the :class:`StepRunner`
(cache, records, explanations, the executor), and stores what it returned. The same pipeline serves
``tidal run``, the controller's retrains and the backtest.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tidal.core.entities import ModelVersion, Run, RunStatus, SnapshotInfo
from tidal.core.errors import SchemaError, SpecError, TidalError
from tidal.data import steps as data_steps
from tidal.data.history import add_label_features, feature_kinds, label_classes
from tidal.data.images.collect import image_inputs, skipped_note
from tidal.data.images.profile import contact_sheets
from tidal.data.prepare import feature_columns, infer_task
from tidal.data.schema import infer_schema
from tidal.data.snapshot import read_snapshot_bytes
from tidal.data.stream import is_stream
from tidal.evaluate import Evaluation, GateDecision, evaluate_model
from tidal.loop.cache import environment, environment_digest
from tidal.loop.context import LoopContext
from tidal.loop.incremental import IncrementalCollect
from tidal.loop.lineage import git_commit, source_files, source_location
from tidal.loop.liveness import beating, owner_info
from tidal.loop.registration import MAX_REGATES, Fitted, PipelineBase, continue_stored, fit_stored
from tidal.loop.results import STEPS, RunResult, flat_params, thread_cap
from tidal.loop.runner import StepListener, StepRunner
from tidal.loop.search import Search
from tidal.spec.model import LabelFeaturesSpec
from tidal.spec.source import source_label
from tidal.train.continued import continue_fit
from tidal.train.estimator import import_estimator
from tidal.train.fit import fit_pipeline
from tidal.train.search import import_optuna
from tidal.train.tracking import LOG_ARTIFACT, Tracker


class TrainingPipeline(PipelineBase):
    """One run of the pipeline over a workspace's stores (``ctx``)."""

    def __init__(
        self, ctx: LoopContext, *, listener: StepListener | None = None, trigger: str = "manual",
        use_cache: bool = True, frame: pd.DataFrame | None = None, frame_source: str = "",
        promote: str | None = None, refit: bool = False, parent: ModelVersion | None = None,
        triggered_by: dict[str, Any] | None = None, tuned: dict[str, Any] | None = None,
    ) -> None:
        """``frame`` replaces reading ``data.source`` (the loop passes source rows plus labelled
        predictions; the backtest passes the rows seen so far); ``frame_source`` describes it.
        ``promote`` says which alias a version that passes the gate gets: ``champion``, ``challenger``
        or ``none``; by default ``champion`` when ``deploy.auto_promote`` is true, else ``challenger``.
        ``refit``: a model that passes the gate is fitted again on every row, holdout included, and that
        model is registered (the loop's choice: under drift the newest rows matter most). The run records
        its heartbeat every ``ctx.heartbeat_s`` seconds (none when it is None, as in a backtest).
        ``parent``: the train step continues this version's fitted pipeline on the training rows
        (:func:`tidal.train.continued.continue_fit`, ``retrain.mode: incremental``) instead of fitting one, and
        a ``refit`` continues the gated model on the holdout rows; the version's lineage names the parent.
        ``triggered_by``: the retrain that started this run (the loop's ``loop.retrain``: the version serving
        then, the trigger and why), kept in the run's info and the version's ``lineage.extra`` so that the
        registry can say the old version was ``improved`` by it, and "why is it serving?" reaches the trigger.
        ``tuned``: with ``model.search``, train with these params instead of searching (the loop's
        ``retrain.tune``): ``{"params", "search", "from", "note"}``, ``search`` being what the version whose
        params they are found (its lineage's), so that this version's lineage names the same study."""
        super().__init__(ctx, trigger=trigger, promote=promote, refit=refit, parent=parent,
                         triggered_by=triggered_by)
        self.listener, self.use_cache = listener, use_cache
        self.frame, self.frame_source = frame, frame_source or "frame"
        self.tuned = dict(tuned) if tuned else None

    # -- the run ---------------------------------------------------------------------------------
    def run(self) -> RunResult:
        spec, now = self.spec, self.clock.now()
        run = Run(id=uuid.uuid4().hex, project=spec.name, status=RunStatus.RUNNING, started_at=now,
                  spec_digest=spec.digest, trigger=self.trigger,
                  info={"git": git_commit(self.ctx.root), "environment": environment(),
                        "environment_digest": environment_digest(), "executor": self.ctx.executor.name,
                        "owner": owner_info(), **({"triggered_by": self.triggered_by} if self.triggered_by else {})},
                  heartbeat_at=now if self.ctx.heartbeat_s is not None else None)
        self.store.create_run(run)
        tracker = Tracker(self.store, run.id, clock=self.clock, artifacts=self.artifacts)
        runner = StepRunner(store=self.store, artifacts=self.artifacts, executor=self.ctx.executor,
                            clock=self.clock, run_id=run.id, listener=self.listener, use_cache=self.use_cache)
        result = RunResult(run=run, steps=runner.records)
        try:
            with thread_cap(), beating(self.store, run.id, self.clock, self.ctx.heartbeat_s):
                self._steps(runner, tracker, result)
        except BaseException as exc:
            done = {s.name for s in runner.records}
            for name in self._step_names():
                if name not in done:
                    runner.skip(name, f"skipped: an earlier step failed ({type(exc).__name__})")
            message = str(exc) if isinstance(exc, TidalError) else f"{type(exc).__name__}: {exc}"
            run.status, run.error, run.ended_at = RunStatus.FAILED, message, self.clock.now()
            self.store.finish_run(run.id, RunStatus.FAILED, run.ended_at, error=message, info=run.info)
            self._event("run.failed", f"run:{run.id}", f"run {run.id[:8]} failed: {message}",
                        {"trigger": self.trigger})
            raise
        run.status, run.ended_at = RunStatus.SUCCEEDED, self.clock.now()
        self.store.finish_run(run.id, RunStatus.SUCCEEDED, run.ended_at, info=run.info)
        return result

    def _steps(self, runner: StepRunner, tracker: Tracker, result: RunResult) -> None:
        spec, data = self.spec, self.spec.data
        tracker.log_params(flat_params(spec))
        tracker.set_tags({"trigger": self.trigger, "spec_digest": spec.digest,
                          "git_commit": (result.run.info.get("git") or {}).get("commit", "")})
        increment = None
        if (data.incremental is not None or is_stream(data)) and self.frame is None:  # batches (a stream too)
            increment = IncrementalCollect(spec, self.ctx.root, self.store, self.artifacts, self.clock, self._frames)
            snapshot = increment.run(runner, result)
        else:
            snapshot = self._collect(runner, result)
        if "image" in snapshot.schema.values():  # a few images per class, for a person to look at
            for name, payload in contact_sheets(self._frame(snapshot.digest), snapshot.schema, data.target).items():
                tracker.log_artifact(name, payload)
        first_schema = self._validate(runner, result, snapshot)
        if increment is not None:  # the batch and watermark count once the table passed validation
            increment.commit()
        kinds = dict(snapshot.schema)
        columns = feature_columns(pd.DataFrame(columns=snapshot.columns), target=data.target, time=data.time,
                                  id_column=data.id, features=data.features, drop=data.drop, kinds=kinds)
        task = self._task(snapshot.digest)
        classes = None
        if (lf := spec.prepare.label_features) is not None:  # built in the split step, over the whole table
            if lf.relative and task != "regression":
                raise SpecError(f"true is for regression (the change from the last label), but the target "
                                f"{data.target!r} makes this a {task}", path="prepare.label_features.relative",
                                hint="remove relative: true, or set model.task: regression")
            classes = None if task != "classification" else label_classes(self._frame(snapshot.digest)[data.target])
            derived = feature_kinds(lf, task, classes)
            columns, kinds = [*columns, *derived], {**kinds, **derived}
        train_d, holdout_d = self._split(runner, snapshot.digest, task, classes)
        prof_d = runner.step("profile", data_steps.profile, args=lambda: (self._frame(train_d), columns, data.target),
                             save=lambda prof: _artifact(self.artifacts.put(json.dumps(prof, sort_keys=True).encode()),
                                                         "profile"),
                             inputs={"train": train_d, "columns": columns}).outputs["profile"]
        if spec.model.search is not None and self.parent is None:  # an incremental retrain continues its parent
            if self.tuned is not None:  # retrain.tune: this retrain refits params an earlier search found
                self._searched = {**self.tuned["search"], "params_from": self.tuned["from"]}
                self._model_spec = spec.model.model_copy(update={"params": dict(self.tuned["params"]), "search": None})
                runner.reuse("search", {**self._searched, "params": self._model_spec.params}, self.tuned["note"])
                result.run.info["search"] = self._searched
            else:
                self._search(runner, result, train_d, columns, kinds, task)
            # the params this run trains with, beside the spec's (model.params.*, logged above)
            tracker.log_params({"search.study": self._searched["study"] if self._searched else "",
                                **{f"search.params.{k}": v for k, v in self._model_spec.params.items()}})
        trained = self._train(runner, tracker, train_d, columns, kinds)
        evaluation = self._evaluate(runner, tracker, result, trained, train_d, holdout_d, columns, kinds, task)
        existing = self.registry.find_by_artifact(spec.name, trained["model"], holdout=holdout_d)
        if existing is not None:
            note = f"this exact model is already registered as {spec.name}:{existing.version} ({existing.state.value})"
            runner.reuse("gate", dict(existing.info.get("gate") or {}), note)
            runner.reuse("register", {"version": existing.version, "state": existing.state.value}, note)
            result.model = existing
            result.decision = GateDecision.from_dict(existing.info["gate"]) if existing.info.get("gate") else None
        else:
            version = self._gate_and_register(runner, result, trained, evaluation, prof_d=prof_d, train_d=train_d,
                                              holdout_d=holdout_d, columns=columns, kinds=kinds, task=task)
            result.model = self.registry.get(spec.name, version)
        if first_schema is not None:
            # stored once a model was registered on it, so that data refused by a later step (too many classes,
            # say) never becomes the reference the corrected data is then compared with
            self.store.put_state(f"schema:{spec.name}", {"snapshot": snapshot.digest, "schema": first_schema})
        champ = self.registry.champion(spec.name)
        result.champion = champ.version if champ else None
        if result.model is not None:
            result.run.info["model"] = {"name": result.model.name, "version": result.model.version,
                                        "state": result.model.state.value}

    # -- the steps -------------------------------------------------------------------------------
    def _collect(self, runner: StepRunner, result: RunResult) -> SnapshotInfo:
        spec, data = self.spec, self.spec.data
        uri = data.source if isinstance(data.source, str) else None  # None: an API ({http: ...})
        files = source_files(uri, self.ctx.root) if uri is not None else None
        file_inputs = None
        if files and all(f.is_file() for f in files):
            file_inputs = [{"path": str(f), "size": f.stat().st_size, "mtime_ns": f.stat().st_mtime_ns} for f in files]
        # an API is named by its URL and parameters as written: ${NAME} placeholders, never their values
        label = self.frame_source if self.frame is not None else source_label(data.source)
        source_input = uri if isinstance(data.source, str) else data.source.model_dump(mode="json")
        if self.frame is None and uri is not None and (where := source_location(uri, self.ctx.root)) is not None:
            # A relative path may lead out of the project: allowed, and recorded in the run and the lineage.
            result.source = {"uri": uri, **where}
            result.run.info["source"] = result.source

        def save(made: tuple[SnapshotInfo, bytes]) -> dict[str, Any]:
            info, payload = made
            self.artifacts.put(payload)
            self.store.put_snapshot(info)
            self._frames[info.digest] = read_snapshot_bytes(payload)
            return {"snapshot": info.digest, "rows": info.rows, "columns": info.columns, "artifacts": [info.digest]}

        out = runner.step(
            "collect", _collect_step,
            args=lambda: (data, self.ctx.root, spec.name, self.clock.now(), self.frame, label), save=save,
            code_of=data_steps.collect, inputs={"source": source_input, "query": data.query, "files": file_inputs,
                                                **image_inputs(data, self.ctx.root),
                                                **({"window": data.window.model_dump(mode="json")}
                                                   if data.window.last_rows or data.window.last_days else {})},
            # a window of days moves with the clock: the same file gives other rows tomorrow
            # here: the source is the project's (its files, its credentials), read where the project is
            here=True, cacheable=file_inputs is not None and self.frame is None and data.window.last_days is None,
            why_always=(f"fresh data from {label}" if self.frame is not None else
                        "the source is not a local file, so it is read on every run"),
            reuse_note=lambda o: f"snapshot {o['snapshot'][:12]}, {o['rows']} rows").outputs
        result.run.info["snapshot"] = out["snapshot"]
        return self.store.get_snapshot(out["snapshot"])

    def _validate(self, runner: StepRunner, result: RunResult, snapshot: SnapshotInfo) -> dict[str, Any] | None:
        """Refuse data with errors; the schema to store when there is none yet (the first snapshot)."""
        spec, data, digest = self.spec, self.spec.data, snapshot.digest
        state_key = f"schema:{spec.name}"
        stored = self.store.get_state(state_key)
        outcome = runner.step(
            "validate", data_steps.validate, args=lambda: (self._frame(digest), stored["schema"] if stored else None,
                                                           data),
            save=lambda found: {"anomalies": [asdict(a) for a in found],
                                "errors": sum(a.severity == "error" for a in found),
                                "warnings": sum(a.severity == "warning" for a in found)},
            inputs={"snapshot": digest, "schema_from": stored["snapshot"] if stored else digest, "target": data.target,
                    "time": data.time, "time_order": data.time_order, "drop": data.drop,
                    "rules": data.checks.model_dump()})
        anomalies = outcome.outputs["anomalies"]
        errors = [a["message"] for a in anomalies if a["severity"] == "error"]
        result.warnings = [*skipped_note(snapshot.profile),
                           *(a["message"] for a in anomalies if a["severity"] == "warning")]
        if errors:
            self._event("data.rejected", f"snapshot:{digest}", f"snapshot {digest[:12]} rejected: {'; '.join(errors)}",
                        {"violations": errors, "warnings": result.warnings, "run_id": result.run.id})
            problems = f"{len(errors)} problem{'s' if len(errors) > 1 else ''}"
            raise SchemaError(f"the data failed validation ({problems}): {'; '.join(errors)}", violations=errors,
                              hint="fix the data, or the spec's data section")
        if result.warnings and not outcome.reused:
            self._event("data.warning", f"snapshot:{digest}", f"snapshot {digest[:12]}: {'; '.join(result.warnings)}",
                        {"warnings": result.warnings, "run_id": result.run.id})
        return infer_schema(self._frame(digest), target=data.target, time=data.time) if stored is None else None

    def _split(self, runner: StepRunner, snapshot: str, task: str,
               classes: list[Any] | None = None) -> tuple[str, str]:
        spec, data, how = self.spec, self.spec.data, self.spec.validate.split

        def save(parts: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
            train_d, test_d = self._put_frame(parts[0]), self._put_frame(parts[1])
            return {"train": train_d, "holdout": test_d, "rows_train": len(parts[0]), "rows_holdout": len(parts[1]),
                    "artifacts": [train_d, test_d]}

        lf, delay = spec.prepare.label_features, spec.backtest.label_delay
        out = runner.step("split", _split_step, code_of=data_steps.split, save=save,
                          args=lambda: (self._frame(snapshot), how, data.target, data.time, task, spec.model.seed,
                                        lf, delay, classes),
                          inputs={"snapshot": snapshot, "method": how.method, "test_size": how.test_size,
                                  "target": data.target, "time": data.time, "seed": spec.model.seed,
                                  "task": task, **({} if lf is None else {
                                      "label_features": lf.model_dump(mode="json"), "label_delay": delay})}).outputs
        return out["train"], out["holdout"]

    def _step_names(self) -> tuple[str, ...]:
        if self.spec.model.search is None or self.parent is not None:
            return STEPS
        at = STEPS.index("train")
        return (*STEPS[:at], "search", *STEPS[at:])

    def _search(self, runner: StepRunner, result: RunResult, train_d: str, columns: list[str],
                kinds: dict[str, str], task: str) -> None:
        """Search ``model.search``'s space on the training rows (never the holdout: :mod:`tidal.loop.search`);
        the train step then fits the best trial's params."""
        spec = self.spec

        def search() -> dict[str, Any]:
            storage = self.ctx.studies() if self.ctx.studies is not None else import_optuna().storages.InMemoryStorage()
            try:
                found = Search(spec, store=self.store, clock=self.clock, storage=storage, run_id=result.run.id,
                               task=task, columns=columns, kinds=kinds, heartbeat_s=self.ctx.heartbeat_s,
                               executor=self.ctx.executor).run(self._frame(train_d), train_d)
            finally:  # an RDB storage's connections end with the search (a loop searches again much later)
                if (dispose := getattr(getattr(storage, "engine", None), "dispose", None)) is not None:
                    dispose()
            return found.to_dict()

        # here: the search keeps its study in this process and hands its trials to the executor
        out = runner.step("search", search, code_of=Search.run, cacheable=False, here=True,
                          why_always="a search resumes its stored study (only the trials its budget still allows run)",
                          inputs={"train": train_d, "search": spec.model.search.model_dump(mode="json")
                                  if spec.model.search else None}).outputs
        self._searched = {k: out[k] for k in ("study", "metric", "best_trial", "best_value", "best_params", "trials")}
        self._model_spec = spec.model.model_copy(update={"params": dict(out["params"]), "search": None})
        result.run.info["search"] = self._searched
        self._event("search.done", f"run:{result.run.id}",
                    f"search {out['study']}: best trial {out['best_trial']} of {out['trials']} "
                    f"({out['metric']} {out['best_value']:.4f} on the validation rows), {out['new_trials']} new",
                    {**out, "run_id": result.run.id})

    def _train(self, runner: StepRunner, tracker: Tracker, train_d: str, columns: list[str],
               kinds: dict[str, str]) -> dict[str, Any]:
        spec, model = self.spec, self._model_spec

        def save(stored: Fitted) -> dict[str, Any]:
            fitted = stored.result
            digest, flavor, fmt = self._put_model(fitted.model, stored)
            log = self.artifacts.put(fitted.log.encode()) if fitted.log else None  # what the library printed
            return {"model": digest, "flavor": flavor, "format": fmt, "fit_seconds": round(fitted.fit_seconds, 4),
                    "curves": fitted.curves, "warnings": fitted.warnings, "log": log,
                    "artifacts": [digest, *([log] if log else [])]}

        inputs = {"train": train_d, "columns": columns, "kinds": {c: kinds.get(c) for c in columns},
                  "target": spec.data.target, "prepare": spec.prepare.model_dump(mode="json"),
                  "estimator": model.estimator, "params": model.params, "seed": model.seed}
        if (parent := self.parent) is not None:  # retrain.mode: incremental: the parent learns the rows
            trained = runner.step(
                "train", continue_stored, code_of=continue_fit, save=save,
                args=lambda: (self.registry.load(parent), self._frame(train_d), spec.data.target, columns, kinds,
                              parent),
                reuse_note=lambda o: f"model {o['model'][:12]}",
                inputs={**inputs, "parent": parent.artifact_digest}).outputs
        else:
            trained = runner.step(
                "train", fit_stored, code_of=fit_pipeline,
                args=lambda: (self._frame(train_d), spec.data.target, columns, kinds, spec.prepare, model),
                save=save, reuse_note=lambda o: f"model {o['model'][:12]}", inputs=inputs).outputs
        if trained.get("log"):  # a reused step's log too: this run's model is the one that printed it
            self.store.add_run_artifact(tracker.run_id, LOG_ARTIFACT, trained["log"])
        with tracker.batch():
            for key, values in trained["curves"].items():
                tracker.log_curve(key, values)
            tracker.log_metric("fit_seconds", trained["fit_seconds"])
        return trained

    def _evaluate(self, runner: StepRunner, tracker: Tracker, result: RunResult, trained: dict[str, Any], train_d: str,
                  holdout_d: str, columns: list[str], kinds: dict[str, str], task: str) -> Evaluation:
        target = self.spec.data.target
        out = runner.step("evaluate", _evaluate_step, code_of=evaluate_model, args=lambda: (
            self._model(trained["model"], trained["flavor"]), self._frame(train_d), self._frame(holdout_d), columns,
            kinds, target, task), save=Evaluation.to_dict, inputs={
            "model": trained["model"], "train": train_d, "holdout": holdout_d, "task": task, "target": target,
            "columns": columns}).outputs
        evaluation = Evaluation.from_dict(out)
        result.metrics = dict(evaluation.validation)
        with tracker.batch():
            tracker.log_metrics({f"validation.{k}": v for k, v in evaluation.validation.items() if v is not None})
            tracker.log_metrics({f"train.{k}": v for k, v in evaluation.train.items() if v is not None})
        return evaluation

    # -- pieces ----------------------------------------------------------------------------------
    def _task(self, snap_digest: str) -> str:
        if self.spec.model.task:
            return self.spec.model.task
        try:
            # import_estimator refuses anything but an estimator class before it is called
            cls: Any = import_estimator(self.spec.model.estimator)
            est = cls()
        except Exception:  # the train step reports a bad estimator with the full message
            est = None
        return infer_task(self._frame(snap_digest)[self.spec.data.target], estimator=est)

# -- the step functions the runner runs (stage functions with the pipeline's argument order) ------------

def _split_step(df: pd.DataFrame, how: Any, target: str, time: str | None, task: str, seed: int | None,
                label_features: LabelFeaturesSpec | None = None, delay: int = 0,
                classes: Sequence[Any] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    if label_features is not None:  # before the split: each row sees the labels before it, whichever part it is in
        df = add_label_features(df, target=target, time=time, spec=label_features, task=task, delay=delay,
                                classes=classes)
    return data_steps.split(df, how, target=target, time=time, task=task, seed=seed)


def _evaluate_step(model: Any, train: pd.DataFrame, holdout: pd.DataFrame, columns: list[str],
                   kinds: dict[str, str], target: str, task: str) -> Evaluation:
    return evaluate_model(model, train, holdout, columns=columns, kinds=kinds, target=target, task=task)


def _collect_step(data: Any, base_dir: Path, project: str, created_at: datetime, frame: pd.DataFrame | None,
                  label: str) -> tuple[SnapshotInfo, bytes]:
    return data_steps.collect(data, base_dir=base_dir, project=project, created_at=created_at, frame=frame,
                              label=label)


def _artifact(digest: str, key: str) -> dict[str, Any]:
    return {key: digest, "artifacts": [digest]}



__all__ = ["MAX_REGATES", "RunResult", "TrainingPipeline"]
