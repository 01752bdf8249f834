"""What a run of the pipeline gives back (:class:`RunResult`), and small helpers of the run."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

from tidal.core.entities import ModelVersion, Run, StepRecord
from tidal.evaluate.gate import GateDecision
from tidal.spec import Spec

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
    #: lines for the user that are not warnings ("no new rows since ...": data.incremental)
    notes: list[str] = field(default_factory=list)
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
            "metrics": self.metrics, "warnings": self.warnings, "notes": self.notes, "champion": self.champion,
            "source": self.source or None,
        }


def thread_cap() -> Any:
    """On a machine with two cores or fewer, run OpenMP/BLAS single-threaded: their spinning threads
    fight the server, the controller and each other there (a 1-second HistGradientBoosting fit was
    measured at 17 s on a busy 2-core machine, and 1 s again with one thread)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1) if (os.cpu_count() or 1) <= 2 else contextlib.nullcontext()


def flat_params(spec: Spec) -> dict[str, Any]:
    """The spec's settings that shape a model, as the run's params (``model.params.max_iter``...)."""
    out: dict[str, Any] = {"model.estimator": spec.model.estimator, "model.seed": spec.model.seed,
                           "validate.split.method": spec.validate.split.method,
                           "validate.split.test_size": spec.validate.split.test_size,
                           "prepare.scale": spec.prepare.scale, "prepare.encode": spec.prepare.encode}
    out.update({f"model.params.{k}": v for k, v in spec.model.params.items()})
    return out


__all__ = ["STEPS", "RunResult", "flat_params", "thread_cap"]
