"""The serving state: one immutable object holding everything a request needs about the model it uses.

A request reads :attr:`Slot.current` once and uses that object to the end, so a hot swap (the reloader
assigning a new state, a single atomic reference store) can never give a request the inputs of one
version and the model of another, and never makes a request wait.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tidal.core.entities import ModelVersion
from tidal.serve.inputs import InputSchema
from tidal.serve.predictor import Predictor, build_predictor


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


def load_state(registry: Any, mv: ModelVersion, *, now: datetime, fast: bool = True) -> ServingState:
    """Load ``mv`` from the registry, check it answers, and build its predictor.

    Raises :class:`~tidal.serve.predictor.ModelCheckFailed` or the registry's errors; the caller keeps
    serving what it served before.
    """
    start = time.perf_counter()
    model = registry.load(mv)
    loaded = time.perf_counter() - start
    built = build_predictor(model, mv.signature, mv.profile, task=mv.task, fast=fast)
    report = {**built.report, "load_seconds": round(loaded, 4)}
    classes = mv.signature.get("classes") if mv.task == "classification" else None
    return ServingState(mv=mv, predictor=built.predictor, schema=built.schema, report=report, loaded_at=now,
                        classes=list(classes) if classes is not None else None,
                        model_ref={"name": mv.name, "version": mv.version})


class Slot:
    """Where the current :class:`ServingState` lives, with a word on why there is none (yet)."""

    def __init__(self) -> None:
        self.current: ServingState | None = None
        self.status: str = "starting: the model is not loaded yet"

    def swap(self, state: ServingState) -> ServingState | None:
        """Serve ``state`` from now on; returns the state it replaces."""
        previous, self.current = self.current, state
        self.status = f"serving {state.label}"
        return previous


__all__ = ["ServingState", "Slot", "load_state"]
