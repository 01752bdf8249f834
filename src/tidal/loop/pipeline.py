"""The training pipeline: collect → validate data → split → profile → train → evaluate → gate → register.

Each step goes through the :class:`StepRunner` (cache, records, explanations). The same pipeline serves
``tidal run`` and, later, the retrains the controller starts.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.entities import Event, ModelState, ModelVersion, Run, RunStatus, StepRecord
from tidal.core.errors import AliasMoved, SchemaError, TidalError
from tidal.core.ports import ArtifactStore, Clock, Executor, MetadataStore
from tidal.data.prepare import as_model_input, feature_columns, infer_task, split_rows
from tidal.data.profile import profile_frame
from tidal.data.schema import infer_schema
from tidal.data.snapshot import canonical_parquet_bytes, make_snapshot, read_snapshot_bytes
from tidal.data.sources import read_source
from tidal.data.validate import ValidationRules, validate_frame
from tidal.evaluate.gate import GateDecision, evaluate_gates
from tidal.evaluate.metrics import compute_metrics
from tidal.loop.cache import environment, environment_digest
from tidal.loop.lineage import git_commit, source_files, source_location
from tidal.loop.liveness import beating, owner_info
from tidal.loop.runner import StepListener, StepRunner
from tidal.registry import CHALLENGER, CHAMPION, Registry
from tidal.spec import Spec
from tidal.train.estimator import import_estimator
from tidal.train.fit import fit_pipeline, predict_frame
from tidal.train.flavors import flavor_for, get_flavor
from tidal.train.tracking import Tracker

#: The fewest holdout rows the champion has not trained on that the gate compares it on; with fewer, it is
#: compared on the whole holdout and the decision says so.
MIN_COMPARED_ROWS = 30
#: How many times a run gates again when the champion moved between its gate and its registration.
MAX_REGATES = 3

STEPS = ("collect", "validate", "split", "profile", "train", "evaluate", "gate", "register")


@dataclass
class RunResult:
    """What a run did: its record, its steps, the model version it registered and the gate's decision."""

    run: Run
    steps: list[StepRecord]
    model: ModelVersion | None = None
    decision: GateDecision | None = None
    metrics: dict[str, float | None] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    champion: int | None = None
    #: where a local data.source was read: ``{"uri", "path", "outside_project"}`` (empty otherwise)
    source: dict[str, Any] = field(default_factory=dict)

    @property
    def reused(self) -> list[str]:
        return [s.name for s in self.steps if s.status.value == "reused"]

    def to_dict(self) -> dict[str, Any]:
        mv = self.model
        return {
            "run_id": self.run.id, "status": self.run.status.value, "error": self.run.error,
            "steps": [{"name": s.name, "status": s.status.value, "explain": s.explain,
                       "seconds": s.duration_s, "cache_key": s.cache_key} for s in self.steps],
            "model": None if mv is None else {"name": mv.name, "version": mv.version, "state": mv.state.value,
                                              "artifact": mv.artifact_digest, "reasons": mv.reasons},
            "gate": None if self.decision is None else self.decision.to_dict(),
            "metrics": self.metrics, "warnings": self.warnings, "champion": self.champion,
            "source": self.source or None,
        }


class TrainingPipeline:
    """One run of the pipeline over a workspace's stores."""

    def __init__(
        self, *, spec: Spec, root: Path, store: MetadataStore, artifacts: ArtifactStore, executor: Executor,
        clock: Clock, registry: Registry, listener: StepListener | None = None, trigger: str = "manual",
        use_cache: bool = True, frame: pd.DataFrame | None = None, frame_source: str = "",
        promote: str | None = None, refit: bool = False, heartbeat_s: float | None = None,
    ) -> None:
        """``frame`` replaces reading ``data.source`` (the loop passes source rows plus labelled
        predictions; the backtest passes the rows seen so far); ``frame_source`` describes it.
        ``promote`` says which alias a version that passes the gate gets: ``champion``, ``challenger``
        or ``none``; by default ``champion`` when ``deploy.auto_promote`` is true, else ``challenger``.
        ``refit``: a model that passes the gate is fitted again on every row, holdout included, and that
        model is registered (the loop's choice: under drift the newest rows matter most).
        ``heartbeat_s``: record the run's heartbeat this often while it runs (see
        :mod:`tidal.loop.liveness`); None (a backtest's simulated runs) records none."""
        self.spec = spec
        self.root = root
        self.store = store
        self.artifacts = artifacts
        self.executor = executor
        self.clock = clock
        self.registry = registry
        self.listener = listener
        self.trigger = trigger
        self.use_cache = use_cache
        self._frames: dict[str, pd.DataFrame] = {}
        self._models: dict[str, Any] = {}
        self._refits: dict[tuple[str, str, str], str] = {}
        self.frame = frame
        self.frame_source = frame_source or "frame"
        self.promote = promote
        self.refit = refit
        self.heartbeat_s = heartbeat_s

    # -- helpers ------------------------------------------------------------------------------------
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

    def _event(self, kind: str, subject: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.store.append_event(Event(kind=kind, subject=subject, message=message, time=self.clock.now(),
                                      data=data or {}))

    # -- the run ------------------------------------------------------------------------------------
    def run(self) -> RunResult:
        spec = self.spec
        run = Run(id=uuid.uuid4().hex, project=spec.name, status=RunStatus.RUNNING, started_at=self.clock.now(),
                  spec_digest=spec.digest, trigger=self.trigger,
                  info={"git": git_commit(self.root), "environment": environment(),
                        "environment_digest": environment_digest(), "executor": self.executor.name,
                        "owner": owner_info()},
                  heartbeat_at=self.clock.now() if self.heartbeat_s is not None else None)
        self.store.create_run(run)
        tracker = Tracker(self.store, run.id, clock=self.clock, artifacts=self.artifacts)
        runner = StepRunner(store=self.store, artifacts=self.artifacts, executor=self.executor,
                            clock=self.clock, run_id=run.id, listener=self.listener, use_cache=self.use_cache)
        result = RunResult(run=run, steps=runner.records)
        try:
            with _thread_cap(), beating(self.store, run.id, self.clock, self.heartbeat_s):
                self._steps(runner, tracker, result)
        except BaseException as exc:
            done = {s.name for s in runner.records}
            for name in STEPS:
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
        tracker.log_params(_flat_params(spec))
        tracker.set_tags({"trigger": self.trigger, "spec_digest": spec.digest,
                          "git_commit": (result.run.info.get("git") or {}).get("commit", "")})

        # collect ------------------------------------------------------------------------------
        files = source_files(data.source, self.root)
        file_inputs = None
        if files is not None and files and all(f.is_file() for f in files):
            file_inputs = [{"path": str(f), "size": f.stat().st_size, "mtime_ns": f.stat().st_mtime_ns}
                           for f in files]

        source_label = self.frame_source if self.frame is not None else data.source
        if self.frame is None and (where := source_location(data.source, self.root)) is not None:
            # A relative path may lead out of the project: allowed, and recorded in the run and the lineage.
            result.source = {"uri": data.source, **where}
            result.run.info["source"] = result.source

        def collect() -> dict[str, Any]:
            if self.frame is not None:
                df = self.frame.reset_index(drop=True)
            else:
                df = read_source(data.source, base_dir=self.root, query=data.query)
            info, payload = make_snapshot(df, project=spec.name, source=source_label, created_at=self.clock.now())
            self.artifacts.put(payload)
            self.store.put_snapshot(info)
            self._frames[info.digest] = read_snapshot_bytes(payload)
            return {"snapshot": info.digest, "rows": info.rows, "columns": info.columns,
                    "artifacts": [info.digest]}

        out = runner.step("collect", collect, cacheable=file_inputs is not None and self.frame is None,
                          why_always=(f"fresh data from {source_label}" if self.frame is not None else
                                      "the source is not a local file, so it is read on every run"),
                          inputs={"source": data.source, "query": data.query, "files": file_inputs},
                          reuse_note=lambda o: f"snapshot {o['snapshot'][:12]}, {o['rows']} rows").outputs
        snap_digest = out["snapshot"]
        result.run.info["snapshot"] = snap_digest
        snapshot = self.store.get_snapshot(snap_digest)

        # validate -----------------------------------------------------------------------------
        state_key = f"schema:{spec.name}"
        stored = self.store.get_state(state_key)
        rules = ValidationRules(**spec.data.checks.model_dump())

        def validate() -> dict[str, Any]:
            df = self._frame(snap_digest)
            anomalies = validate_frame(df, stored["schema"] if stored else None, target=data.target,
                                       rules=rules)
            return {"anomalies": [asdict(a) for a in anomalies],
                    "errors": sum(a.severity == "error" for a in anomalies),
                    "warnings": sum(a.severity == "warning" for a in anomalies)}

        outcome = runner.step("validate", validate, inputs={
            "snapshot": snap_digest, "schema_from": stored["snapshot"] if stored else snap_digest,
            "target": data.target, "time": data.time, "rules": spec.data.checks.model_dump()})
        anomalies = outcome.outputs["anomalies"]
        errors = [a["message"] for a in anomalies if a["severity"] == "error"]
        result.warnings = [a["message"] for a in anomalies if a["severity"] == "warning"]
        if errors:
            self._event("data.rejected", f"snapshot:{snap_digest}",
                        f"snapshot {snap_digest[:12]} rejected: {'; '.join(errors)}",
                        {"violations": errors, "warnings": result.warnings, "run_id": result.run.id})
            raise SchemaError(f"the data failed validation ({len(errors)} problem"
                              f"{'s' if len(errors) > 1 else ''}): {'; '.join(errors)}",
                              violations=errors, hint="fix the data, or the spec's data section")
        if result.warnings and not outcome.reused:
            self._event("data.warning", f"snapshot:{snap_digest}",
                        f"snapshot {snap_digest[:12]}: {'; '.join(result.warnings)}",
                        {"warnings": result.warnings, "run_id": result.run.id})
        if stored is None:
            schema = infer_schema(self._frame(snap_digest), target=data.target, time=data.time)
            self.store.put_state(state_key, {"snapshot": snap_digest, "schema": schema})

        # split --------------------------------------------------------------------------------
        kinds = dict(snapshot.schema)
        frame_like = pd.DataFrame(columns=snapshot.columns)
        columns = feature_columns(frame_like, target=data.target, time=data.time, id_column=data.id,
                                  features=data.features, drop=data.drop)
        task = self._task(snap_digest)
        split_inputs = {"snapshot": snap_digest, "method": spec.validate.split.method,
                        "test_size": spec.validate.split.test_size, "target": data.target, "time": data.time,
                        "seed": spec.model.seed, "task": task}

        def split() -> dict[str, Any]:
            df = self._frame(snap_digest)
            parts = split_rows(df, method=spec.validate.split.method, test_size=spec.validate.split.test_size,
                               target=data.target, time=data.time, task=task, seed=spec.model.seed)
            train_d = self._put_frame(df.iloc[parts.train].reset_index(drop=True))
            test_d = self._put_frame(df.iloc[parts.test].reset_index(drop=True))
            return {"train": train_d, "holdout": test_d, "rows_train": len(parts.train),
                    "rows_holdout": len(parts.test), "artifacts": [train_d, test_d]}

        parts = runner.step("split", split, inputs=split_inputs).outputs
        train_d, holdout_d = parts["train"], parts["holdout"]

        # profile ------------------------------------------------------------------------------
        def profile() -> dict[str, Any]:
            df = self._frame(train_d)
            prof = profile_frame(df[[*columns, data.target]])
            digest = self.artifacts.put(json.dumps(prof, sort_keys=True).encode())
            return {"profile": digest, "artifacts": [digest]}

        prof_d = runner.step("profile", profile, inputs={"train": train_d, "columns": columns}).outputs["profile"]

        # train --------------------------------------------------------------------------------
        train_inputs = {"train": train_d, "columns": columns, "kinds": {c: kinds.get(c) for c in columns},
                        "target": data.target, "prepare": spec.prepare.model_dump(mode="json"),
                        "estimator": spec.model.estimator, "params": spec.model.params, "seed": spec.model.seed}

        def train() -> dict[str, Any]:
            fitted = fit_pipeline(self._frame(train_d), target=data.target, columns=columns, kinds=kinds,
                                  prepare=spec.prepare, estimator=spec.model.estimator,
                                  params=spec.model.params, seed=spec.model.seed)
            flavor = flavor_for(fitted.model)
            digest = self.artifacts.put(flavor.save(fitted.model))
            self._models[digest] = fitted.model
            return {"model": digest, "flavor": flavor.name, "format": flavor.format,
                    "fit_seconds": round(fitted.fit_seconds, 4), "curves": fitted.curves,
                    "warnings": fitted.warnings, "artifacts": [digest]}

        trained = runner.step("train", train, inputs=train_inputs,
                              reuse_note=lambda o: f"model {o['model'][:12]}").outputs
        model_d, flavor_name = trained["model"], trained["flavor"]
        with tracker.batch():
            for key, values in trained["curves"].items():
                tracker.log_curve(key, values)
            tracker.log_metric("fit_seconds", trained["fit_seconds"])

        # evaluate -----------------------------------------------------------------------------
        def evaluate() -> dict[str, Any]:
            model = self._model(model_d, flavor_name)
            out: dict[str, Any] = {}
            for label, digest in (("train", train_d), ("validation", holdout_d)):
                df = self._frame(digest)
                pred, proba = predict_frame(model, as_model_input(df, columns, kinds))
                out[label] = compute_metrics(task, df[data.target].to_numpy(), pred, proba,
                                             classes=getattr(model, "classes_", None))
                if label == "validation":
                    out["predictions"] = profile_frame(_prediction_frame(pred, proba))
            return out

        evaluated = runner.step("evaluate", evaluate, inputs={
            "model": model_d, "train": train_d, "holdout": holdout_d, "task": task, "target": data.target,
            "columns": columns}).outputs
        result.metrics = dict(evaluated["validation"])
        with tracker.batch():
            tracker.log_metrics({f"validation.{k}": v for k, v in evaluated["validation"].items() if v is not None})
            tracker.log_metrics({f"train.{k}": v for k, v in evaluated["train"].items() if v is not None})

        # gate and register --------------------------------------------------------------------
        existing = self.registry.find_by_artifact(spec.name, model_d, holdout=holdout_d)
        if existing is not None:
            note = f"this exact model is already registered as {spec.name}:{existing.version} ({existing.state.value})"
            runner.reuse("gate", dict(existing.info.get("gate") or {}), note)
            runner.reuse("register", {"version": existing.version, "state": existing.state.value}, note)
            result.model = existing
            result.decision = GateDecision.from_dict(existing.info["gate"]) if existing.info.get("gate") else None
        else:
            def gate(champion: ModelVersion | None) -> dict[str, Any]:
                if champion is None:
                    return evaluate_gates(spec.validate.gates, evaluated["validation"], None).to_dict()
                label = f"{spec.name}:{champion.version}"
                holdout = self._frame(holdout_d)
                unseen = self._unseen_by(champion, holdout)
                compared: dict[str, Any] = {"rows": len(holdout), "of": len(holdout)}
                mine = None
                if unseen is not None and not unseen.all():
                    fresh = int(unseen.sum())
                    compared["champion_trained_on"] = len(holdout) - fresh
                    if fresh >= MIN_COMPARED_ROWS:
                        # Judge both on the rows neither trained on: the champion (refit on every row it had)
                        # has learned the others, which would favour it.
                        holdout = holdout[unseen.to_numpy()].reset_index(drop=True)
                        compared["rows"] = fresh
                        mine = self._metrics_on(self._model(model_d, flavor_name), holdout, columns, kinds, task)
                    else:
                        compared["note"] = (f"the champion had trained on all but {fresh} of the holdout's rows: "
                                            "it is compared on all of them, which favours it")
                champ_metrics = self._score_champion(champion, holdout, kinds, task)
                return evaluate_gates(spec.validate.gates, evaluated["validation"], champ_metrics, label,
                                      candidate_vs_champion=mine, compared=compared).to_dict()

            champion = self.registry.champion(spec.name)
            decision = GateDecision.from_dict(runner.step("gate", lambda: gate(champion), code_of=_gate_code, inputs={
                "model": model_d, "holdout": holdout_d, "gates": [g.canonical for g in spec.validate.gates],
                "champion": champion.artifact_digest if champion else None}).outputs)
            result.decision = decision

            def register() -> dict[str, Any]:
                # The gate compared the candidate with the champion of its time; another run may have moved
                # the champion since. The move is made only over the champion the decision was made against
                # (AliasMoved otherwise, and nothing of this registration is stored): then gate again
                # against the new one, and try again.
                gated_against, regated = champion, []
                for _ in range(MAX_REGATES + 1):
                    try:
                        return {**self._register(result, result.decision, gated_against, model_d=model_d,
                                                 flavor=trained, prof_d=prof_d, train_d=train_d, holdout_d=holdout_d,
                                                 columns=columns, kinds=kinds, task=task, evaluated=evaluated),
                                "regated": regated}
                    except AliasMoved as moved:
                        gated_against = None if moved.current is None else self.registry.get(spec.name, moved.current)
                        regated.append(f"the champion moved to {moved.current} while this run was gated: "
                                       "gated again against it")
                        result.decision = GateDecision.from_dict(gate(gated_against))
                raise TidalError(f"the champion of {spec.name} kept moving while this run tried to register its "
                                 f"model ({MAX_REGATES} times)", hint="run it again once the other runs are done")

            registered = runner.step("register", register, inputs={}, cacheable=False,
                                     why_always="a model that is not registered yet").outputs
            if registered["regated"]:
                runner.amend("gate", result.decision.to_dict(), "; ".join(registered["regated"]))
            result.model = self.registry.get(spec.name, registered["version"])
        champ = self.registry.champion(spec.name)
        result.champion = champ.version if champ else None
        if result.model is not None:
            result.run.info["model"] = {"name": result.model.name, "version": result.model.version,
                                        "state": result.model.state.value}

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

    def _score_champion(
        self, champion: ModelVersion, df: pd.DataFrame, kinds: dict[str, str], task: str,
    ) -> dict[str, float | None] | None:
        """The champion's metrics on (part of) the candidate's holdout: both are judged on the same rows."""
        champ_cols = list(champion.signature.get("columns", {}))
        if any(c not in df.columns for c in champ_cols):
            return None  # the champion needs columns the new data lacks: it cannot be compared
        return self._metrics_on(self.registry.load(champion), df, champ_cols, kinds, task)

    def _metrics_on(self, model: Any, df: pd.DataFrame, columns: list[str], kinds: dict[str, str],
                    task: str) -> dict[str, float | None]:
        pred, proba = predict_frame(model, as_model_input(df, columns, kinds))
        return compute_metrics(task, df[self.spec.data.target].to_numpy(), pred, proba,
                               classes=getattr(model, "classes_", None))

    def _unseen_by(self, champion: ModelVersion, holdout: pd.DataFrame) -> pd.Series | None:
        """Which rows of ``holdout`` the champion did not train on (True), matched by content on every
        column both have; None when its training data is unknown (a version registered without lineage,
        or whose snapshots are gone). A version refit after its gate trained on its holdout too."""
        lineage = champion.lineage or {}
        digests = [lineage.get("train")] + ([lineage.get("holdout")] if lineage.get("refit") else [])
        try:
            seen = [self._frame(d) for d in digests if d]
        except TidalError:  # gone (NotFound), or no longer what was stored
            return None
        if not seen or len(seen) != len(digests):
            return None
        common = [c for c in holdout.columns if all(c in f.columns for f in seen)]
        if self.spec.data.target not in common:
            return None
        trained = pd.concat([pd.util.hash_pandas_object(f[common], index=False) for f in seen], ignore_index=True)
        return ~pd.util.hash_pandas_object(holdout[common], index=False).isin(set(trained.to_numpy()))

    def _register(
        self, result: RunResult, decision: GateDecision, champion: ModelVersion | None, *, model_d: str,
        flavor: dict[str, Any], prof_d: str, train_d: str, holdout_d: str, columns: list[str], kinds: dict[str, str],
        task: str, evaluated: dict[str, Any],
    ) -> dict[str, Any]:
        """Register the model as validated or rejected by ``decision`` (made against ``champion``), with the
        gate's event and, if it passed, its alias: all in one transaction. Raises AliasMoved (nothing stored)
        when it should become champion but the champion is no longer ``champion``."""
        spec = self.spec
        profile = json.loads(self.artifacts.get(prof_d))
        state = ModelState.VALIDATED if decision.passed else ModelState.REJECTED
        gated_model = model_d
        if self.refit and decision.passed:
            key = (model_d, train_d, holdout_d)
            if key not in self._refits:  # a second attempt (the champion moved) reuses the refit model
                whole = pd.concat([self._frame(train_d), self._frame(holdout_d)], ignore_index=True)
                fitted = fit_pipeline(whole, target=spec.data.target, columns=columns, kinds=kinds,
                                      prepare=spec.prepare, estimator=spec.model.estimator, params=spec.model.params,
                                      seed=spec.model.seed)
                refit_d = self.artifacts.put(flavor_for(fitted.model).save(fitted.model))
                self._models[refit_d] = fitted.model
                self._refits[key] = refit_d
            model_d = self._refits[key]
        mv = ModelVersion(
            name=spec.name, version=0, state=state, created_at=self.clock.now(), run_id=result.run.id,
            artifact_digest=model_d, format=flavor["format"], task=task,
            signature={"columns": {c: kinds.get(c, "categorical") for c in columns}, "target": spec.data.target,
                       "classes": _classes(self._model(model_d, flavor["flavor"]))},
            metrics={k: v for k, v in evaluated["validation"].items() if v is not None},
            profile={"features": profile, "predictions": evaluated.get("predictions", {})},
            lineage={"run_id": result.run.id, "snapshot": result.run.info.get("snapshot"), "train": train_d,
                     "holdout": holdout_d, "spec_digest": spec.digest, "git": result.run.info.get("git"),
                     "environment_digest": result.run.info.get("environment_digest"), "seed": spec.model.seed,
                     "estimator": spec.model.estimator, "params": spec.model.params,
                     **({"source": result.source} if result.source else {}),
                     **({"gated_model": gated_model, "refit": "train + holdout"} if model_d != gated_model else {})},
            reasons=decision.failed, info={"flavor": flavor["flavor"], "gate": decision.to_dict(),
                                           "train_metrics": evaluated["train"]},
        )
        why = "; ".join(decision.reasons) if decision.reasons else "no gates configured"
        # auto_promote (the default): a version that passed the gate serves; otherwise it waits as
        # challenger for `tidal promote`. The loop decides for itself (canary and shadow deploy the
        # challenger first).
        alias = self.promote or (CHAMPION if spec.deploy.auto_promote else CHALLENGER)
        with self.store.atomic():
            stored = self.registry.register(mv, reason=f"run {result.run.id[:8]} ({why})")
            label = f"{spec.name}:{stored.version}"
            if not decision.passed:
                self._event("gate.failed", f"model:{label}", f"{label} rejected: {'; '.join(decision.failed)}",
                            decision.to_dict())
            else:
                self._event("gate.passed", f"model:{label}", f"{label} passed the gate: {why}", decision.to_dict())
                if alias != "none":
                    note = "" if alias == CHAMPION or self.promote else " (deploy.auto_promote is false)"
                    self.registry.set_alias(
                        spec.name, alias, stored.version, trigger=self.trigger,
                        reason=f"passed the gate in run {result.run.id[:8]}{note}", data={"run_id": result.run.id},
                        expected=(champion.version if champion is not None else 0) if alias == CHAMPION else None)
        return {"version": stored.version, "state": stored.state.value}


def _thread_cap() -> Any:
    """On a machine with two cores or fewer, run OpenMP/BLAS single-threaded: their spinning threads
    fight the server, the controller and each other there (a 1-second HistGradientBoosting fit was
    measured at 17 s on a busy 2-core machine, and 1 s again with one thread)."""
    import contextlib
    import os

    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1) if (os.cpu_count() or 1) <= 2 else contextlib.nullcontext()


def _gate_code() -> None:
    """Version marker of the gate step (bump the text to invalidate cached gate decisions): gate-v1."""


def _classes(model: Any) -> list[Any] | None:
    classes = getattr(model, "classes_", None)
    return None if classes is None else [c.item() if hasattr(c, "item") else c for c in classes]


def _prediction_frame(pred: np.ndarray, proba: np.ndarray | None) -> pd.DataFrame:
    frame = pd.DataFrame({"prediction": pred})
    if proba is not None and proba.ndim == 2:
        frame["score"] = proba.max(axis=1) if proba.shape[1] > 2 else proba[:, -1]
    return frame


def _flat_params(spec: Spec) -> dict[str, Any]:
    out: dict[str, Any] = {"model.estimator": spec.model.estimator, "model.seed": spec.model.seed,
                           "validate.split.method": spec.validate.split.method,
                           "validate.split.test_size": spec.validate.split.test_size,
                           "prepare.scale": spec.prepare.scale, "prepare.encode": spec.prepare.encode}
    out.update({f"model.params.{k}": v for k, v in spec.model.params.items()})
    return out

