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
from dataclasses import asdict, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tidal.core.entities import Event, ModelState, ModelVersion, Run, RunStatus, SnapshotInfo
from tidal.core.errors import AliasMoved, SchemaError, TidalError
from tidal.core.signature import Lineage, Signature
from tidal.data import steps as data_steps
from tidal.data.codec import target_array
from tidal.data.history import add_label_features, feature_kinds
from tidal.data.images.collect import image_inputs, skipped_note
from tidal.data.images.profile import contact_sheets
from tidal.data.images.serving import image_specs
from tidal.data.prepare import as_model_input, feature_columns, infer_task
from tidal.data.schema import infer_schema
from tidal.data.snapshot import canonical_parquet_bytes, read_snapshot_bytes
from tidal.evaluate import Champion, Evaluation, GateDecision, evaluate_model, gate_decision
from tidal.evaluate.served import SERVED, served_difference
from tidal.loop.cache import environment, environment_digest
from tidal.loop.context import LoopContext
from tidal.loop.continued import continue_fit_step, continued_from
from tidal.loop.incremental import IncrementalCollect
from tidal.loop.lineage import git_commit, source_files, source_location
from tidal.loop.liveness import beating, owner_info
from tidal.loop.results import STEPS, RunResult, flat_params, thread_cap
from tidal.loop.runner import StepListener, StepRunner
from tidal.loop.search import Search
from tidal.monitor.baseline import holdout_drift
from tidal.registry import CHALLENGER, CHAMPION
from tidal.registry.onnx_form import registration_form
from tidal.spec.model import LabelFeaturesSpec, ModelSpec
from tidal.spec.source import source_label
from tidal.train.continued import continue_fit
from tidal.train.estimator import import_estimator
from tidal.train.fit import TrainResult, fit_pipeline, predict_frame
from tidal.train.flavors import flavor_for, get_flavor
from tidal.train.search import import_optuna
from tidal.train.tracking import LOG_ARTIFACT, Tracker

#: How many times a run gates again when the champion moved between its gate and its registration.
MAX_REGATES = 3


class TrainingPipeline:
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
        self.ctx, self.spec = ctx, ctx.spec
        self.store, self.artifacts, self.registry, self.clock = ctx.store, ctx.artifacts, ctx.registry, ctx.clock
        self.listener, self.trigger, self.use_cache = listener, trigger, use_cache
        self.frame, self.frame_source = frame, frame_source or "frame"
        self.promote, self.refit, self.parent = promote, refit, parent
        self.triggered_by = dict(triggered_by) if triggered_by else None
        self.tuned = dict(tuned) if tuned else None
        self._frames: dict[str, pd.DataFrame] = {}
        self._models: dict[str, Any] = {}
        self._refits: dict[tuple[str, str, str], str] = {}
        self._served: dict[tuple[str, str], str | None] = {}
        self._onnx: dict[tuple[str, str], tuple[dict[str, Any] | None, str | None]] = {}
        #: the model section the train step fits: spec.model, with the best trial's params after a search
        self._model_spec: ModelSpec = ctx.spec.model
        self._searched: dict[str, Any] | None = None

    # -- the stores ------------------------------------------------------------------------------
    def _frame(self, digest: str) -> pd.DataFrame:
        if digest not in self._frames:
            self._frames[digest] = read_snapshot_bytes(self.artifacts.get(digest))
        return self._frames[digest]

    def _put_frame(self, df: pd.DataFrame) -> str:
        digest = self.artifacts.put(canonical_parquet_bytes(df))
        self._frames[digest] = df
        return digest

    def _model(self, digest: str, flavor: str) -> Any:
        if digest not in self._models:
            self._models[digest] = get_flavor(flavor).load(self.artifacts.get(digest))
        return self._models[digest]

    def _put_model(self, model: Any) -> tuple[str, str, str]:
        """Store ``model`` by its flavor; its digest, flavor name and format."""
        flavor = flavor_for(model)
        digest = self.artifacts.put(flavor.save(model))
        self._models[digest] = model
        return digest, flavor.name, flavor.format

    def _event(self, kind: str, subject: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.store.append_event(Event(kind=kind, subject=subject, message=message, time=self.clock.now(),
                                      data=data or {}))

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
        if data.incremental is not None and self.frame is None:
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
        if (lf := spec.prepare.label_features) is not None:  # built in the split step, over the whole table
            classes = None if task != "classification" else \
                [v for v in target_array(self._frame(snapshot.digest)[data.target]).tolist() if v is not None]
            derived = feature_kinds(lf, task, classes)
            columns, kinds = [*columns, *derived], {**kinds, **derived}
        train_d, holdout_d = self._split(runner, snapshot.digest, task)
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
            cacheable=file_inputs is not None and self.frame is None and data.window.last_days is None,
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

    def _split(self, runner: StepRunner, snapshot: str, task: str) -> tuple[str, str]:
        spec, data, how = self.spec, self.spec.data, self.spec.validate.split

        def save(parts: tuple[pd.DataFrame, pd.DataFrame]) -> dict[str, Any]:
            train_d, test_d = self._put_frame(parts[0]), self._put_frame(parts[1])
            return {"train": train_d, "holdout": test_d, "rows_train": len(parts[0]), "rows_holdout": len(parts[1]),
                    "artifacts": [train_d, test_d]}

        lf, delay = spec.prepare.label_features, spec.backtest.label_delay
        out = runner.step("split", _split_step, code_of=data_steps.split, save=save,
                          args=lambda: (self._frame(snapshot), how, data.target, data.time, task, spec.model.seed,
                                        lf, delay),
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
                               task=task, columns=columns, kinds=kinds,
                               heartbeat_s=self.ctx.heartbeat_s).run(self._frame(train_d), train_d)
            finally:  # an RDB storage's connections end with the search (a loop searches again much later)
                if (dispose := getattr(getattr(storage, "engine", None), "dispose", None)) is not None:
                    dispose()
            return found.to_dict()

        out = runner.step("search", search, code_of=Search.run, cacheable=False,
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

        def save(fitted: TrainResult) -> dict[str, Any]:
            digest, flavor, fmt = self._put_model(fitted.model)
            log = self.artifacts.put(fitted.log.encode()) if fitted.log else None  # what the library printed
            return {"model": digest, "flavor": flavor, "format": fmt, "fit_seconds": round(fitted.fit_seconds, 4),
                    "curves": fitted.curves, "warnings": fitted.warnings, "log": log,
                    "artifacts": [digest, *([log] if log else [])]}

        inputs = {"train": train_d, "columns": columns, "kinds": {c: kinds.get(c) for c in columns},
                  "target": spec.data.target, "prepare": spec.prepare.model_dump(mode="json"),
                  "estimator": model.estimator, "params": model.params, "seed": model.seed}
        if (parent := self.parent) is not None:  # retrain.mode: incremental: the parent learns the rows
            trained = runner.step(
                "train", continue_fit_step, code_of=continue_fit, save=save,
                args=lambda: (self.registry.load(parent), self._frame(train_d), spec.data.target, columns, kinds,
                              parent),
                reuse_note=lambda o: f"model {o['model'][:12]}",
                inputs={**inputs, "parent": parent.artifact_digest}).outputs
        else:
            trained = runner.step(
                "train", _train_step, code_of=fit_pipeline,
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

    def _gate_and_register(self, runner: StepRunner, result: RunResult, trained: dict[str, Any],
                           evaluation: Evaluation, *, prof_d: str, train_d: str, holdout_d: str, columns: list[str],
                           kinds: dict[str, str], task: str) -> int:
        """Gate the model against the champion, then register it (and move its alias) in one transaction. The
        alias moves only over the champion the gate compared with; if another run moved the champion
        meanwhile (AliasMoved, nothing stored), gate again against the new one and try again."""
        spec, target = self.spec, self.spec.data.target
        model = self._model(trained["model"], trained["flavor"])
        # A retrain for growth alone replaces a champion that nothing says is failing: it must be at least as
        # good on the fresh rows, without the gates' slack (which is there for a champion that drift or a
        # drop says is worse on new data than its holdout shows).
        gates = [g.without_tolerance() for g in spec.validate.gates] if self.trigger == "loop:growth" \
            else list(spec.validate.gates)

        def decide(champion: ModelVersion | None) -> dict[str, Any]:
            return gate_decision(gates, evaluation.validation, candidate_model=model,
                                 holdout=self._frame(holdout_d), columns=columns, kinds=kinds, target=target, task=task,
                                 champion=None if champion is None else self._champion(champion)).to_dict()

        champion = self.registry.champion(spec.name)
        # a local as well as result.decision: register() below reads it, where mypy no longer knows it is set
        decision = result.decision = GateDecision.from_dict(runner.step(
            "gate", decide, args=lambda: (champion,), code_of=_gate_code, inputs={
                "model": trained["model"], "holdout": holdout_d, "gates": [g.canonical for g in gates],
                "champion": champion.artifact_digest if champion else None}).outputs)

        def register() -> dict[str, Any]:
            against, current = champion, decision
            regated: list[str] = []
            for _ in range(MAX_REGATES + 1):
                try:
                    mv = self._version(result, current, trained, evaluation, prof_d=prof_d, train_d=train_d,
                                       holdout_d=holdout_d, columns=columns, kinds=kinds, task=task)
                    stored = self._register(mv, result, against)
                    return {"version": stored.version, "state": stored.state.value, "regated": regated}
                except AliasMoved as moved:
                    against = None if moved.current is None else self.registry.get(spec.name, moved.current)
                    regated.append(f"the champion moved to {moved.current} while this run was gated: gated again "
                                   "against it")
                    current = result.decision = GateDecision.from_dict(decide(against))
            raise TidalError(f"the champion of {spec.name} kept moving while this run tried to register its model "
                             f"({MAX_REGATES} times)", hint="run it again once the other runs are done")

        registered = runner.step("register", register, inputs={}, cacheable=False,
                                 why_always="a model that is not registered yet").outputs
        served = [r for r in result.decision.failed if r.startswith(SERVED)] if result.decision else []
        if registered["regated"] or served:
            assert result.decision is not None
            runner.amend("gate", result.decision.to_dict(), "; ".join([*registered["regated"], *served]))
        return int(registered["version"])

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

    def _champion(self, mv: ModelVersion) -> Champion:
        """The champion as the gate sees it, with the tables it trained on (None when they are gone)."""
        try:
            seen: list[pd.DataFrame] | None = [self._frame(d) for d in mv.lineage.trained_on] or None
        except TidalError:  # gone (NotFound), or no longer what was stored
            seen = None
        return Champion(label=f"{mv.name}:{mv.version}", model=self.registry.load(mv), columns=mv.signature.names,
                        trained_on=seen)

    def _version(self, result: RunResult, decision: GateDecision, trained: dict[str, Any], evaluation: Evaluation,
                 *, prof_d: str, train_d: str, holdout_d: str, columns: list[str], kinds: dict[str, str],
                 task: str) -> ModelVersion:
        """The version to register: validated or rejected by ``decision``, refitted on every row when the loop
        asks it and the gate passed (the refit model is made once, however many times this is called)."""
        spec, model_d = self.spec, trained["model"]
        if self.refit and decision.passed:
            key = (model_d, train_d, holdout_d)
            if key not in self._refits:
                if self.parent is not None:  # the gated model continues on the holdout rows
                    fitted = continue_fit_step(self._model(model_d, trained["flavor"]), self._frame(holdout_d),
                                               spec.data.target, columns, kinds, self.parent)
                else:
                    whole = pd.concat([self._frame(train_d), self._frame(holdout_d)], ignore_index=True)
                    fitted = fit_pipeline(whole, target=spec.data.target, columns=columns, kinds=kinds,
                                          prepare=spec.prepare, model=self._model_spec)
                self._refits[key] = self._put_model(fitted.model)[0]
            model_d = self._refits[key]
        model = self._model(model_d, trained["flavor"])
        classes = getattr(model, "classes_", None)
        info = result.run.info
        profile = self._profile(prof_d, train_d, holdout_d, columns, evaluation)
        images = image_specs(model, columns, kinds, profile)
        mv = ModelVersion(
            name=spec.name, version=0, state=ModelState.VALIDATED if decision.passed else ModelState.REJECTED,
            created_at=self.clock.now(), run_id=result.run.id, artifact_digest=model_d, format=trained["format"],
            task=task,
            signature=Signature(columns={c: kinds.get(c, "categorical") for c in columns}, target=spec.data.target,
                                classes=None if classes is None else [c.item() if hasattr(c, "item") else c
                                                                      for c in classes], task=task,
                                label_features=None if (lf := spec.prepare.label_features) is None else
                                {"lags": sorted(set(lf.lags)), "windows": sorted(set(lf.windows))},
                                images=images),
            metrics={k: v for k, v in evaluation.validation.items() if v is not None},
            profile=profile,
            lineage=Lineage(run_id=result.run.id, snapshot=info.get("snapshot"), train=train_d, holdout=holdout_d,
                            spec_digest=spec.digest, git=info.get("git"),
                            environment_digest=info.get("environment_digest"), seed=spec.model.seed,
                            estimator=spec.model.estimator, params=self._model_spec.params, source=info.get("source"),
                            continued_from=continued_from(self.parent),
                            extra={**({"triggered_by": self.triggered_by} if self.triggered_by else {}),
                                   **({"search": self._searched} if self._searched else {})},
                            **({"gated_model": trained["model"], "refit": "train + holdout"}
                               if model_d != trained["model"] else {})),
            reasons=decision.failed,
            info={"flavor": trained["flavor"], "gate": decision.to_dict(), "train_metrics": evaluation.train})
        why = self._served_differs(mv, model, holdout_d, columns, kinds) if decision.passed else None
        if decision.passed and why is None and spec.deploy.runtime == "onnx":  # the ONNX form is what serves
            made = (model_d, holdout_d)
            if made not in self._onnx:
                X = as_model_input(self._frame(holdout_d), columns, kinds)
                self._onnx[made] = registration_form(self.artifacts, model, mv, X,
                                                     tolerance=spec.deploy.onnx_tolerance)
            onnx, why = self._onnx[made]
            mv = replace(mv, info={**mv.info, "onnx": onnx}) if onnx is not None else mv
        if why is not None:
            # served = validated: a version whose stored form would not answer as the gated model did is rejected
            refused = result.decision = GateDecision(passed=False, reasons=[*decision.reasons, why], failed=[why],
                                                     champion=decision.champion)
            return replace(mv, state=ModelState.REJECTED, reasons=[why], info={**mv.info, "gate": refused.to_dict()})
        return mv

    def _served_differs(self, mv: ModelVersion, model: Any, holdout_d: str, columns: list[str],
                        kinds: dict[str, str]) -> str | None:
        """Why ``mv``'s stored artifact, loaded back as the server loads it (:meth:`Registry.load`: the digest
        checked, then its flavor's ``load``), does not predict the holdout exactly as ``model``, the model in
        memory that was evaluated and gated, did; None when it does. Exactly: the same predictions and
        bit-for-bit the same probabilities (the same library on the same rows in the same process gives the
        same numbers, unless the stored form lost or changed something: any tolerance would let that through)."""
        key = (mv.artifact_digest, holdout_d)
        if key not in self._served:
            X = as_model_input(self._frame(holdout_d), columns, kinds)
            want = predict_frame(model, X)
            try:
                got = predict_frame(self.registry.load(mv), X)
            except Exception as exc:  # the server could not load or run it either
                self._served[key] = (f"{SERVED}: the stored model cannot be loaded and run as the server "
                                     f"does it: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
            else:
                self._served[key] = served_difference(want, got)
        return self._served[key]

    def _profile(self, prof_d: str, train_d: str, holdout_d: str, columns: list[str],
                 evaluation: Evaluation) -> dict[str, Any]:
        """The reference a version is monitored against: its training profile, its validation outputs, and
        the drift its own holdout already showed (so that a retrain on fresh rows resets the drift trigger:
        see :mod:`tidal.monitor.baseline`)."""
        features = json.loads(self.artifacts.get(prof_d))
        baseline = holdout_drift(features.get("columns") or {}, self._frame(holdout_d), columns,
                                 train=self._frame(train_d), max_rows=self.spec.monitor.window)
        return {"features": features, "predictions": evaluation.predictions, "holdout_drift": baseline,
                "calibration": evaluation.calibration}

    def _register(self, mv: ModelVersion, result: RunResult, champion: ModelVersion | None) -> ModelVersion:
        # auto_promote (the default): a version that passed the gate serves; otherwise it waits as challenger
        # for `tidal promote`. The loop decides for itself (canary and shadow deploy the challenger first).
        alias = self.promote or (CHAMPION if self.spec.deploy.auto_promote else CHALLENGER)
        note = "" if alias == CHAMPION or self.promote else " (deploy.auto_promote is false)"
        # a challenger serves beside the champion under a canary or shadow strategy; under direct it only
        # names the version `tidal promote` may make champion
        serves = alias == CHAMPION or (alias == CHALLENGER and self.spec.deploy.strategy.kind != "direct")
        train = next((s for s in result.steps if s.name == "train"), None)
        trained_at = None if train is None else (train.ended_at or train.started_at)
        return self.registry.register_gated(mv, result.decision or GateDecision(passed=True),
                                            alias=None if alias == "none" else alias,
                                            over=champion.version if champion else None, trigger=self.trigger,
                                            run_id=result.run.id, note=note, trained_at=trained_at, serves=serves)


# -- the step functions the runner runs (stage functions with the pipeline's argument order) ------------

def _split_step(df: pd.DataFrame, how: Any, target: str, time: str | None, task: str, seed: int | None,
                label_features: LabelFeaturesSpec | None = None, delay: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    if label_features is not None:  # before the split: each row sees the labels before it, whichever part it is in
        df = add_label_features(df, target=target, time=time, spec=label_features, task=task, delay=delay)
    return data_steps.split(df, how, target=target, time=time, task=task, seed=seed)


def _train_step(df: pd.DataFrame, target: str, columns: list[str], kinds: dict[str, str], prepare: Any,
                model: Any) -> TrainResult:
    return fit_pipeline(df, target=target, columns=columns, kinds=kinds, prepare=prepare, model=model)


def _evaluate_step(model: Any, train: pd.DataFrame, holdout: pd.DataFrame, columns: list[str],
                   kinds: dict[str, str], target: str, task: str) -> Evaluation:
    return evaluate_model(model, train, holdout, columns=columns, kinds=kinds, target=target, task=task)


def _collect_step(data: Any, base_dir: Path, project: str, created_at: datetime, frame: pd.DataFrame | None,
                  label: str) -> tuple[SnapshotInfo, bytes]:
    return data_steps.collect(data, base_dir=base_dir, project=project, created_at=created_at, frame=frame,
                              label=label)


def _artifact(digest: str, key: str) -> dict[str, Any]:
    return {key: digest, "artifacts": [digest]}


def _gate_code() -> None:
    """Version marker of the gate step (bump the text to invalidate cached gate decisions): gate-v1."""


__all__ = ["MAX_REGATES", "RunResult", "TrainingPipeline"]
