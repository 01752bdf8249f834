"""The runs and the model registry of a workspace, as the SDK shows them (``ws.runs``, ``ws.models``)."""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidal.core.entities import Alias, Event, Metric, ModelVersion, Run, StepRecord
from tidal.core.errors import RunNotFound
from tidal.loop.liveness import mark_abandoned
from tidal.registry import Serving, Transition, subject
from tidal.train.tracking import LOG_ARTIFACT

if TYPE_CHECKING:
    import pandas as pd

    from tidal.workspace import Workspace


@dataclass
class RunDetail:
    """Everything recorded about one run."""

    run: Run
    steps: list[StepRecord]
    params: dict[str, str]
    tags: dict[str, str]
    metrics: list[Metric]
    artifacts: dict[str, str] = field(default_factory=dict)


class Runs:
    """The runs of a workspace (``ws.runs``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def list(self, limit: int = 50) -> list[Run]:
        """The project's runs, newest first; runs whose process is gone are marked abandoned first."""
        mark_abandoned(self._ws.store, self._ws.spec.name, self._ws.clock)
        return self._ws.store.list_runs(self._ws.spec.name, limit=limit)

    def get(self, run_id: str) -> RunDetail:
        store = self._ws.store
        try:
            run = store.get_run(run_id)
        except RunNotFound as exc:
            # a NotFound still (the API answers 404), with the hint a user of the CLI needs
            raise RunNotFound(f"no run with id {run_id!r}", hint="run `tidal runs ls` to see the runs") from exc
        return RunDetail(run=run, steps=store.list_steps(run.id), params=store.get_params(run.id),
                         tags=store.get_tags(run.id), metrics=store.get_metrics(run.id),
                         artifacts=store.list_run_artifacts(run.id))

    def log(self, run_id: str) -> str | None:
        """What the training library printed during the run (its ``log.txt``), or None when it printed nothing."""
        digest = self.get(run_id).artifacts.get(LOG_ARTIFACT)
        return None if digest is None else self._ws.artifacts.get(digest).decode("utf-8", "replace")


class Models:
    """The model registry of a workspace (``ws.models``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def list(self, name: str | None = None) -> list[ModelVersion]:
        return self._ws.registry.list(name)

    def get(self, ref: str, version: int | str | None = None) -> ModelVersion:
        """A version by ``name``, ``name:3``, ``name:champion`` or ``name:latest``."""
        name, _, tail = ref.partition(":")
        return self._ws.registry.resolve(name, version if version is not None else (tail or None))

    # `list` below is the method above, in this class's scope: annotations name the builtin explicitly
    def aliases(self, name: str | None = None) -> builtins.list[Alias]:
        return self._ws.store.list_aliases(name)

    def aliases_of(self, mv: ModelVersion) -> builtins.list[str]:
        return self._ws.registry.aliases_of(mv.name, mv.version)

    def history(self, mv: ModelVersion) -> builtins.list[Event]:
        """The events about this version, oldest first: why it exists and why it serves (or not)."""
        return self._ws.store.list_events(subject=subject(mv.name, mv.version), limit=1000)

    def states(self, mv: ModelVersion) -> builtins.list[Transition]:
        """The moves of this version's state, oldest first: time, from, to and why."""
        return self._ws.registry.history(mv.name, mv.version)

    def serving(self, mv: ModelVersion) -> Serving:
        """Why this version serves (or not), back to the trigger of the retrain that made it."""
        return self._ws.registry.serving(mv.name, mv.version)

    def load(self, ref: str) -> Any:
        """The model object (verified against its digest, never unpickled)."""
        return self._ws.registry.load(self.get(ref))

    def register(
        self, model: Any, *, name: str, data: pd.DataFrame | str | os.PathLike[str], target: str | None = None,
        columns: builtins.list[str] | None = None, task: str | None = None, promote: bool | str = False,
        reason: str | None = None,
    ) -> ModelVersion:
        """Register ``model``, fitted in your own code (any flavor), as a version of ``name``, scored on
        ``data`` (a DataFrame, a snapshot digest or a path): gated, checked served = validated and recorded
        with a run and the lineage ``trained outside tidal`` (:func:`tidal.loop.external.register_model`).
        Returns the version, validated or rejected with its reasons; a refusal stores nothing."""
        from tidal.loop.external import register_model

        return register_model(self._ws.spec, self._ws.registry, model, name=name, data=data, target=target,
                              columns=columns, task=task, promote=promote, reason=reason)


__all__ = ["Models", "RunDetail", "Runs"]
