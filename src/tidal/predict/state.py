"""The serving state: immutable objects holding everything a request needs about the models it uses.

:class:`ServingState` is one loaded, checked version. :class:`Deployment` is what the server runs now:
the champion, and beside it (``deploy.strategy`` canary or shadow) the challenger as a :class:`Trial`.
A request reads :attr:`Slot.deployment` once and uses that object to the end, so a hot swap (the
reloader assigning a new deployment, a single atomic reference store) can never give a request the
inputs of one version and the model of another, or a champion and a challenger that were never
deployed together, and never makes a request wait. Only the reloader's thread assigns it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidal.core.entities import ModelVersion
from tidal.predict.inputs import InputSchema
from tidal.predict.predictor import Predictor, build_predictor
from tidal.registry.onnx_form import load_runtime


@dataclass(frozen=True)
class ServingState:
    """A loaded, checked model version and its predictor."""

    mv: ModelVersion
    predictor: Predictor
    schema: InputSchema
    report: dict[str, Any]
    loaded_at: datetime
    classes: list[Any] | None = None
    #: ``{"name": ..., "version": ...}``, as every /predict answer carries it.
    model_ref: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.mv.name

    @property
    def version(self) -> int:
        return self.mv.version

    @property
    def label(self) -> str:
        return f"{self.mv.name}:{self.mv.version}"


def load_state(registry: Any, mv: ModelVersion, *, now: datetime, fast: bool = True, runtime: str = "native",
               tolerance: float = 1e-5) -> ServingState:
    """Load ``mv`` from the registry, check it answers, and build its predictor. ``runtime`` ``onnx``
    (``deploy.runtime``) serves its ONNX form, converted and checked on its holdout now within ``tolerance``
    (:mod:`tidal.registry.onnx_form`).

    Raises :class:`~tidal.predict.predictor.ModelCheckFailed` or the registry's errors; the caller keeps
    serving what it served before.
    """
    start = time.perf_counter()
    model = registry.load(mv) if runtime == "native" else load_runtime(registry, mv, runtime, tolerance=tolerance)
    loaded = time.perf_counter() - start
    built = build_predictor(model, mv.signature, mv.profile, task=mv.task, fast=fast)
    report = {**built.report, "load_seconds": round(loaded, 4), "runtime": runtime}
    classes = mv.signature.classes if mv.task == "classification" else None
    return ServingState(mv=mv, predictor=built.predictor, schema=built.schema, report=report, loaded_at=now,
                        classes=list(classes) if classes is not None else None,
                        model_ref={"name": mv.name, "version": mv.version})


@dataclass(frozen=True)
class Trial:
    """A challenger served beside the champion: ``kind`` is ``canary`` (it answers ``percent`` % of the
    requests) or ``shadow`` (it predicts every request in the background; its answers are only logged)."""

    state: ServingState
    kind: str
    percent: float = 0.0

    @property
    def version(self) -> int:
        return self.state.version

    def describe(self) -> str:
        return f"{self.state.label} as {self.kind}" + (f" ({self.percent:g}% of requests)"
                                                       if self.kind == "canary" else "")


@dataclass(frozen=True)
class Deployment:
    """The champion serving (None before the first load) and the challenger's trial, if any."""

    champion: ServingState | None = None
    trial: Trial | None = None


class Slot:
    """Where the current :class:`Deployment` lives, with a word on why there is no champion (yet) and on
    what became of the challenger."""

    def __init__(self) -> None:
        self.deployment = Deployment()
        self.status: str = "starting: the model is not loaded yet"
        self.trial_status: str = "none"

    @property
    def current(self) -> ServingState | None:
        """The champion's state (None while nothing is loaded)."""
        return self.deployment.champion

    @property
    def trial(self) -> Trial | None:
        return self.deployment.trial

    def swap(self, state: ServingState) -> ServingState | None:
        """Serve ``state`` as champion from now on; returns the state it replaces. A trial of the very same
        version ends in the same assignment (the challenger was promoted): a version never competes with
        itself, not even for one request."""
        before = self.deployment
        trial = before.trial if before.trial is None or before.trial.version != state.version else None
        self.deployment = Deployment(state, trial)
        self.status = f"serving {state.label}"
        if before.trial is not None and trial is None:
            self.trial_status = f"none: {before.trial.state.label} became the champion"
        return before.champion

    def set_trial(self, trial: Trial | None, status: str) -> Trial | None:
        """Start (or end, with None) the challenger's trial; returns the trial it replaces."""
        before = self.deployment
        self.deployment = Deployment(before.champion, trial)
        self.trial_status = status
        return before.trial


__all__ = ["Deployment", "ServingState", "Slot", "Trial", "load_state"]
