"""The stores' side of a pipeline run, and its last half: gate the trained model against the champion, make
the version (refit, reference profile, signature, lineage, served = validated, the ONNX form) and register it.

:class:`PipelineBase` holds what every step of :class:`~tidal.loop.pipeline.TrainingPipeline` shares (the
stores, the run's options, the frames and models it has read) and the gate and register steps; the pipeline
module keeps the run and its first half (collect → validate → split → profile → search → train → evaluate).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pandas as pd

from tidal.core.entities import Event, ModelState, ModelVersion
from tidal.core.errors import AliasMoved, TidalError
from tidal.core.signature import Lineage, Signature
from tidal.data.images.serving import image_specs
from tidal.data.prepare import as_model_input
from tidal.data.snapshot import canonical_parquet_bytes, read_snapshot_bytes
from tidal.evaluate import Champion, Evaluation, GateDecision, gate_decision
from tidal.evaluate.served import SERVED, served_difference
from tidal.loop.context import LoopContext
from tidal.loop.continued import continue_fit_step, continued_from
from tidal.loop.results import RunResult
from tidal.loop.runner import StepRunner
from tidal.monitor.baseline import holdout_drift
from tidal.registry import CHALLENGER, CHAMPION
from tidal.registry.onnx_form import registration_form
from tidal.spec.model import ModelSpec
from tidal.train.fit import TrainResult, fit_pipeline, predict_frame
from tidal.train.flavors import flavor_for, get_flavor

#: How many times a run gates again when the champion moved between its gate and its registration.
MAX_REGATES = 3


class PipelineBase:
    """The stores and options of one pipeline run, what it has read from them, and its gate and register
    steps (see the module docstring; :class:`~tidal.loop.pipeline.TrainingPipeline` documents the options)."""

    def __init__(self, ctx: LoopContext, *, trigger: str, promote: str | None, refit: bool,
                 parent: ModelVersion | None, triggered_by: dict[str, Any] | None) -> None:
        self.ctx, self.spec = ctx, ctx.spec
        self.store, self.artifacts, self.registry, self.clock = ctx.store, ctx.artifacts, ctx.registry, ctx.clock
        self.trigger, self.promote, self.refit, self.parent = trigger, promote, refit, parent
        self.triggered_by = dict(triggered_by) if triggered_by else None
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

    def _put_model(self, model: Any, stored: Fitted | None = None) -> tuple[str, str, str]:
        """Store ``model`` by its flavor (``stored``: the form its step made of it); its digest, flavor name
        and format."""
        if stored is None:
            stored = stored_form(TrainResult(model=model, columns=[]))
        digest = self.artifacts.put(stored.payload)
        self._models[digest] = model
        return digest, stored.flavor, stored.format

    def _event(self, kind: str, subject: str, message: str, data: dict[str, Any] | None = None) -> None:
        self.store.append_event(Event(kind=kind, subject=subject, message=message, time=self.clock.now(),
                                      data=data or {}))


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

        def gate_args(champion: ModelVersion | None) -> tuple[Any, ...]:
            return (gates, evaluation.validation, model, self._frame(holdout_d), columns, kinds, target, task,
                    None if champion is None else self._champion(champion))

        def decide(champion: ModelVersion | None) -> dict[str, Any]:  # again, in the register step
            return self.ctx.executor.run(_gate_step, *gate_args(champion))

        champion = self.registry.champion(spec.name)
        # a local as well as result.decision: register() below reads it, where mypy no longer knows it is set
        decision = result.decision = GateDecision.from_dict(runner.step(
            "gate", _gate_step, args=lambda: gate_args(champion), code_of=_gate_code, inputs={
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

        # here: it writes the version and moves the alias in the stores (its refit goes to the executor)
        registered = runner.step("register", register, inputs={}, cacheable=False, here=True,
                                 why_always="a model that is not registered yet").outputs
        served = [r for r in result.decision.failed if r.startswith(SERVED)] if result.decision else []
        if registered["regated"] or served:
            assert result.decision is not None
            runner.amend("gate", result.decision.to_dict(), "; ".join([*registered["regated"], *served]))
        return int(registered["version"])

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
                run = self.ctx.executor.run
                if self.parent is not None:  # the gated model continues on the holdout rows
                    fitted = run(continue_stored, self._model(model_d, trained["flavor"]), self._frame(holdout_d),
                                 spec.data.target, columns, kinds, self.parent)
                else:
                    whole = pd.concat([self._frame(train_d), self._frame(holdout_d)], ignore_index=True)
                    fitted = run(fit_stored, whole, spec.data.target, columns, kinds, spec.prepare, self._model_spec)
                self._refits[key] = self._put_model(fitted.result.model, fitted)[0]
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



@dataclass
class Fitted:
    """What a train step returns: the fit, and the model's stored form made where it was fitted. The bytes of
    a model that came back from another process (Ray) could differ from the local ones (its serialiser numbers
    shared objects, and a round trip through Ray does not keep every one shared), so the step stores the model
    it fitted itself, and the same data gives the same digest on every executor."""

    result: TrainResult
    payload: bytes
    flavor: str
    format: str


def stored_form(result: TrainResult) -> Fitted:
    flavor = flavor_for(result.model)
    return Fitted(result=result, payload=flavor.save(result.model), flavor=flavor.name, format=flavor.format)


def fit_stored(df: pd.DataFrame, target: str, columns: list[str], kinds: dict[str, str], prepare: Any,
               model: Any) -> Fitted:
    """The train step: :func:`tidal.train.fit.fit_pipeline`, and the model's stored form."""
    return stored_form(fit_pipeline(df, target=target, columns=columns, kinds=kinds, prepare=prepare, model=model))


def continue_stored(model: Any, rows: pd.DataFrame, target: str, columns: list[str], kinds: dict[str, str],
                    parent: ModelVersion) -> Fitted:
    """The train step of ``retrain.mode: incremental``: :func:`continue_fit_step`, and the stored form."""
    return stored_form(continue_fit_step(model, rows, target, columns, kinds, parent))


def _gate_step(gates: list[Any], validation: dict[str, Any], model: Any, holdout: pd.DataFrame, columns: list[str],
               kinds: dict[str, str], target: str, task: str, champion: Champion | None) -> dict[str, Any]:
    """The gate step: :func:`tidal.evaluate.gate_decision` with the pipeline's argument order, as a dict."""
    return gate_decision(gates, validation, candidate_model=model, holdout=holdout, columns=columns, kinds=kinds,
                         target=target, task=task, champion=champion).to_dict()


def _gate_code() -> None:
    """Version marker of the gate step (bump the text to invalidate cached gate decisions): gate-v1."""
