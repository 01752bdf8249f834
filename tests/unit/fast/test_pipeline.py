"""The training pipeline (loop/pipeline.py) as glue, end to end in memory: a frame of 60 rows, a logistic
regression of a few iterations, the in-memory stores, no subprocess (the git lookup is replaced)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidal.core.clock import SimulatedClock
from tidal.core.entities import ModelState, RunStatus, StepStatus
from tidal.core.errors import SchemaError
from tidal.data.snapshot import read_snapshot_bytes
from tidal.evaluate.compare import MIN_COMPARED_ROWS
from tidal.executors.local import LocalExecutor
from tidal.loop import pipeline as pipeline_module
from tidal.loop.context import LoopContext
from tidal.loop.pipeline import TrainingPipeline
from tidal.loop.results import STEPS
from tidal.registry import CHAMPION, Registry
from tidal.spec import Spec
from tidal.storage.artifacts import FsspecArtifactStore
from tidal.storage.memory import MemoryMetadataStore
from tidal.storage.predictions.memory_log import MemoryPredictionLog

from ._tiny import T0


def spec(**validate: Any) -> Spec:
    return Spec.model_validate({
        "name": "p", "data": {"source": "unused.csv", "target": "y", "time": "t"},
        "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"max_iter": 50}},
        "validate": {"gates": ["accuracy >= 0.6", "accuracy >= champion - 0.05"], **validate},
    })


def context(tmp_path: Path, the_spec: Spec | None = None) -> LoopContext:
    store, artifacts = MemoryMetadataStore(), FsspecArtifactStore(f"memory://tidal-fast-{uuid.uuid4().hex}")
    clock = SimulatedClock(T0)
    return LoopContext(spec=the_spec or spec(), root=tmp_path, store=store, artifacts=artifacts,
                       predictions=MemoryPredictionLog(), registry=Registry(store, artifacts, clock),
                       executor=LocalExecutor(), clock=clock)


def frame(n: int = 60, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    return pd.DataFrame({"t": np.arange(n), "x": x, "c": rng.choice(["a", "b"], size=n), "y": (x > 0).astype(int)})


@pytest.fixture(autouse=True)
def _no_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "git_commit", lambda root: None)


def run(ctx: LoopContext, df: pd.DataFrame, **kw: Any) -> Any:
    return TrainingPipeline(ctx, frame=df, frame_source="test rows", **kw).run()


def test_a_first_run_registers_a_champion_with_every_step_recorded(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    result = run(ctx, frame())
    assert result.run.status == RunStatus.SUCCEEDED
    assert [s.name for s in result.steps] == list(STEPS)
    assert {s.status for s in result.steps} == {StepStatus.DONE}
    assert result.steps[0].explain == "ran: fresh data from test rows"
    assert result.model is not None and (result.model.version, result.model.state) == (1, ModelState.DEPLOYED)
    assert result.champion == 1 and result.decision is not None and result.decision.passed
    assert result.metrics["accuracy"] is not None and result.metrics["accuracy"] >= 0.6
    mv = ctx.registry.get("p", 1)
    assert mv.lineage.train and mv.lineage.holdout and mv.lineage.run_id == result.run.id
    assert mv.signature.names == ["x", "c"] and mv.signature.classes == [0, 1]
    assert ctx.store.get_params(result.run.id)["model.params.max_iter"] == "50"
    stored = {s.name: s.status for s in ctx.store.list_steps(result.run.id)}
    assert stored == {name: StepStatus.DONE for name in STEPS}


def test_the_same_rows_again_reuse_the_model_and_register_nothing_new(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    run(ctx, frame())
    again = run(ctx, frame())
    status = {s.name: s.status for s in again.steps}
    assert status["collect"] == StepStatus.DONE  # a frame is always collected afresh
    assert {status[n] for n in ("validate", "split", "profile", "train", "evaluate", "gate", "register")} == {
        StepStatus.REUSED}
    assert again.model is not None and again.model.version == 1
    assert [mv.version for mv in ctx.registry.list("p")] == [1]


def test_new_rows_are_gated_against_the_champion_on_rows_it_did_not_train_on(tmp_path: Path) -> None:
    ctx = context(tmp_path, spec(split={"method": "random", "test_size": 0.5}))
    first = run(ctx, frame())
    rows = pd.concat([frame(), frame(60, seed=1).assign(t=lambda d: d["t"] + 60)], ignore_index=True)
    second = run(ctx, rows)
    assert second.decision is not None and second.decision.champion is not None
    assert second.decision.champion["label"] == "p:1"
    compared = second.decision.champion["compared"]
    # The champion's training rows, found in the stores through its lineage, are left out of the comparison.
    assert first.model is not None and second.model is not None
    seen = read_snapshot_bytes(ctx.artifacts.get(first.model.lineage.train))
    holdout = read_snapshot_bytes(ctx.artifacts.get(second.model.lineage.holdout))
    overlap = int(holdout["t"].isin(seen["t"]).sum())
    assert 0 < overlap <= len(holdout) - MIN_COMPARED_ROWS
    assert compared == {"rows": len(holdout) - overlap, "of": len(holdout), "champion_trained_on": overlap}
    assert (f"p:1 was compared on the {len(holdout) - overlap} of the {len(holdout)} holdout rows it had not "
            "trained on") in second.decision.reasons
    assert second.model.version == 2


def test_a_rejected_candidate_is_registered_but_not_champion(tmp_path: Path) -> None:
    ctx = context(tmp_path, spec(gates=["accuracy >= 0.99999"]))
    result = run(ctx, frame(60, seed=3).assign(y=lambda d: np.arange(60) % 2))  # labels that are noise
    assert result.model is not None and result.model.state == ModelState.REJECTED
    assert result.decision is not None and not result.decision.passed
    assert result.model.reasons == result.decision.failed
    assert ctx.store.get_alias("p", CHAMPION) is None
    assert [e.kind for e in ctx.store.list_events(subject="model:p:*")] == ["model.state", "model.registered",
                                                                            "gate.failed", "model.state"]
    assert [t.to for t in ctx.registry.history("p", 1)] == ["prototype", "rejected"]


def test_bad_data_fails_the_run_with_a_clear_error_and_skips_the_rest(tmp_path: Path) -> None:
    ctx = context(tmp_path)
    with pytest.raises(SchemaError) as err:
        run(ctx, frame().assign(y=1))
    assert err.value.message == ("the data failed validation (1 problem): target column 'y' has the single value 1 "
                                 "in all 60 non-null rows: a model cannot learn from it; set data.target to the "
                                 "column to predict, or collect rows with at least one other value")
    [failed_run] = ctx.store.list_runs()
    assert failed_run.status == RunStatus.FAILED and failed_run.error == str(err.value)
    assert err.value.hint == "fix the data, or the spec's data section"
    steps = {s.name: s for s in ctx.store.list_steps(failed_run.id)}
    assert list(steps) == list(STEPS)
    # validate ran to the end (its outputs list the error); what came after was skipped
    assert steps["validate"].outputs["errors"] == 1
    assert {steps[n].status for n in STEPS[2:]} == {StepStatus.SKIPPED}
    assert steps["split"].explain == "skipped: an earlier step failed (SchemaError)"
    assert [e.kind for e in ctx.store.list_events()] == ["data.rejected", "run.failed"]


def test_a_failing_step_is_recorded_as_failed_not_skipped(tmp_path: Path) -> None:
    ctx = context(tmp_path, spec().model_copy(update={"model": spec().model.model_copy(
        update={"params": {"max_iter": 50, "no_such_param": 1}})}))
    with pytest.raises(Exception) as err:
        run(ctx, frame())
    [failed_run] = ctx.store.list_runs()
    steps = {s.name: s for s in ctx.store.list_steps(failed_run.id)}
    assert steps["train"].status == StepStatus.FAILED
    assert "no_such_param" in steps["train"].outputs["error"] and "no_such_param" in str(err.value)
    assert {steps[n].status for n in ("evaluate", "gate", "register")} == {StepStatus.SKIPPED}
    assert {steps[n].status for n in ("collect", "validate", "split", "profile")} == {StepStatus.DONE}
