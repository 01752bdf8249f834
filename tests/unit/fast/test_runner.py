"""The step runner (loop/runner.py) and what a run gives back (loop/results.py), over the in-memory stores
with step functions of a line each."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

from tidal.core.clock import SimulatedClock
from tidal.core.entities import Run, RunStatus, StepRecord, StepStatus
from tidal.evaluate.gate import GateDecision
from tidal.executors.local import LocalExecutor
from tidal.loop.results import STEPS, RunResult, flat_params, thread_cap
from tidal.loop.runner import StepRunner
from tidal.spec import Spec
from tidal.storage.artifacts import FsspecArtifactStore
from tidal.storage.memory import MemoryMetadataStore

from ._tiny import T0, version


class Stores:
    """One metadata store and one artifact store, shared by the runs of a test (so the cache is too)."""

    def __init__(self) -> None:
        self.store = MemoryMetadataStore()
        self.artifacts = FsspecArtifactStore(f"memory://tidal-fast-{uuid.uuid4().hex}")
        self.clock = SimulatedClock(T0)
        self.heard: list[tuple[str, StepStatus]] = []

    def runner(self, *, use_cache: bool = True) -> StepRunner:
        run = Run(id=uuid.uuid4().hex, project="p", status=RunStatus.RUNNING, started_at=T0)
        self.store.create_run(run)
        return StepRunner(store=self.store, artifacts=self.artifacts, executor=LocalExecutor(), clock=self.clock,
                          run_id=run.id, use_cache=use_cache,
                          listener=lambda r: self.heard.append((r.name, r.status)))


def double(x: int) -> dict[str, Any]:
    return {"y": 2 * x}


def test_a_step_runs_once_then_is_reused_with_its_outputs() -> None:
    stores, calls = Stores(), []

    def fn(x: int) -> dict[str, Any]:
        calls.append(x)
        return double(x)

    first = stores.runner().step("double", fn, inputs={"x": 3}, args=lambda: (3,), code_of=double)
    assert (first.reused, first.outputs, first.record.status) == (False, {"y": 6}, StepStatus.DONE)
    assert first.record.explain == "ran: no earlier run of this step"
    second_runner = stores.runner()
    second = second_runner.step("double", fn, inputs={"x": 3}, args=lambda: (3,), code_of=double,
                                reuse_note=lambda o: f"y = {o['y']}")
    assert calls == [3]  # not called again
    assert (second.reused, second.outputs, second.record.status) == (True, {"y": 6}, StepStatus.REUSED)
    assert second.record.explain == (f"reused from run {first.record.run_id[:8]}: same code, inputs and "
                                     "environment (y = 6)")
    assert second.record.cache_key == first.record.cache_key
    [stored] = stores.store.list_steps(second_runner.run_id)
    assert stored.status == StepStatus.REUSED and stored.outputs == {"y": 6}


def test_other_inputs_run_again_and_say_what_changed() -> None:
    stores = Stores()
    stores.runner().step("double", double, inputs={"x": 3}, args=lambda: (3,))
    again = stores.runner().step("double", double, inputs={"x": 4}, args=lambda: (4,))
    assert not again.reused and again.outputs == {"y": 8}
    assert again.record.explain == "ran: x: 3 → 4"


def test_args_are_loaded_only_when_the_step_runs() -> None:
    stores, loads = Stores(), []

    def args() -> tuple[int]:
        loads.append(1)
        return (5,)

    stores.runner().step("double", double, inputs={"x": 5}, args=args)
    stores.runner().step("double", double, inputs={"x": 5}, args=args)
    assert loads == [1]


def test_save_stores_the_result_and_gives_the_outputs() -> None:
    stores = Stores()

    def save(result: bytes) -> dict[str, Any]:
        return {"blob": stores.artifacts.put(result), "artifacts": [stores.artifacts.put(result)]}

    out = stores.runner().step("blob", lambda: b"bytes", inputs={}, save=save, code_of=double)
    assert stores.artifacts.get(out.outputs["blob"]) == b"bytes"


def test_a_cached_result_whose_artifacts_are_gone_runs_again() -> None:
    stores = Stores()
    out = {"artifacts": ["0" * 64]}  # never stored
    stores.runner().step("s", lambda: out, inputs={}, code_of=double)
    again = stores.runner().step("s", lambda: out, inputs={}, code_of=double)
    assert not again.reused
    assert again.record.explain == "ran: the cached result is gone (its artifacts are missing)"


def test_uncacheable_steps_and_a_disabled_cache_always_run() -> None:
    stores = Stores()
    stores.runner().step("double", double, inputs={"x": 1}, args=lambda: (1,))
    always = stores.runner().step("double", double, inputs={"x": 1}, args=lambda: (1,), cacheable=False,
                                  why_always="fresh data")
    assert not always.reused and always.record.explain == "ran: fresh data"
    off = stores.runner(use_cache=False).step("double", double, inputs={"x": 1}, args=lambda: (1,))
    assert not off.reused and off.record.explain == "ran: the cache was disabled for this run"


def test_a_failing_step_is_recorded_as_failed_with_its_error_and_is_not_cached() -> None:
    stores = Stores()
    runner = stores.runner()

    def boom() -> dict[str, Any]:
        raise ValueError("the data is bad")

    with pytest.raises(ValueError, match="the data is bad"):
        runner.step("validate", boom, inputs={"x": 1})
    [record] = runner.records
    assert record.status == StepStatus.FAILED
    assert record.outputs == {"error": "the data is bad"}
    assert record.ended_at is not None
    # What the pipeline does next: skip every step not recorded; the failed one keeps its status.
    for name in STEPS:
        if name not in {r.name for r in runner.records}:
            runner.skip(name, "skipped: an earlier step failed")
    steps = {s.name: s.status for s in stores.store.list_steps(runner.run_id)}
    assert steps["validate"] == StepStatus.FAILED
    assert {s for n, s in steps.items() if n != "validate"} == {StepStatus.SKIPPED}
    assert stores.store.get_cache_entry(record.cache_key) is None
    # the listener heard it start and fail
    assert stores.heard[:2] == [("validate", StepStatus.RUNNING), ("validate", StepStatus.FAILED)]


def test_reuse_amend_and_positions() -> None:
    stores = Stores()
    runner = stores.runner()
    runner.step("gate", double, inputs={"x": 1}, args=lambda: (1,))
    runner.reuse("register", {"version": 3}, "already registered")
    runner.amend("gate", {"y": 0}, "gated again")
    steps = stores.store.list_steps(runner.run_id)
    assert [(s.name, s.position) for s in steps] == [("gate", 0), ("register", 1)]
    assert steps[0].outputs == {"y": 0} and steps[0].explain.endswith("; gated again")
    assert steps[1].explain == "reused: already registered"
    with pytest.raises(KeyError):
        runner.amend("train", {}, "x")


# -- results -------------------------------------------------------------------------------------------------

SPEC = Spec.model_validate({
    "name": "p", "data": {"source": "d.csv", "target": "y"},
    "model": {"estimator": "sklearn.linear_model.LogisticRegression", "params": {"C": 0.5, "max_iter": 50},
              "seed": 7},
    "validate": {"split": {"method": "random", "test_size": 0.25}},
    "prepare": {"scale": "minmax"},
})


def test_flat_params_are_the_settings_that_shape_a_model() -> None:
    assert flat_params(SPEC) == {
        "model.estimator": "sklearn.linear_model.LogisticRegression", "model.seed": 7,
        "validate.split.method": "random", "validate.split.test_size": 0.25,
        "prepare.scale": "minmax", "prepare.encode": "onehot",
        "model.params.C": 0.5, "model.params.max_iter": 50,
    }


@pytest.mark.parametrize(("cores", "limited"), [(1, True), (2, True), (4, False), (None, True)])
def test_thread_cap_runs_single_threaded_on_two_cores_or_fewer(monkeypatch: pytest.MonkeyPatch, cores: int | None,
                                                               limited: bool) -> None:
    from threadpoolctl import threadpool_info, threadpool_limits

    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    with thread_cap() as cap:
        assert isinstance(cap, threadpool_limits) is limited
        if limited:
            assert {pool["num_threads"] for pool in threadpool_info()} <= {1}


def test_run_result_as_a_dict() -> None:
    run = Run(id="f" * 32, project="p", status=RunStatus.SUCCEEDED, started_at=T0)
    steps = [StepRecord(run_id=run.id, name="collect", status=StepStatus.REUSED, started_at=T0, ended_at=T0),
             StepRecord(run_id=run.id, name="train", status=StepStatus.DONE)]
    mv = version(version=2, reasons=["r"])
    result = RunResult(run=run, steps=steps, model=mv, decision=GateDecision(passed=True), champion=2)
    assert result.reused == ["collect"]
    d = result.to_dict()
    assert d["status"] == "succeeded" and d["champion"] == 2 and d["source"] is None
    assert d["steps"][0] == {"name": "collect", "status": "reused", "explain": "", "seconds": 0.0, "cache_key": ""}
    assert d["steps"][1]["seconds"] is None
    assert d["model"] == {"name": "m", "version": 2, "state": "validated", "artifact": "a" * 64, "reasons": ["r"]}
    assert d["gate"] == {"passed": True, "reasons": [], "failed": [], "champion": None}
    assert RunResult(run=run, steps=[]).to_dict()["model"] is None
