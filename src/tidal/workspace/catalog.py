"""The runs, the model registry and the data snapshots of a workspace, as the SDK shows them (``ws.runs``,
``ws.models``, ``ws.snapshots``)."""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tidal.core.entities import Alias, Event, Metric, ModelVersion, Run, SnapshotInfo, StepRecord
from tidal.core.errors import RunNotFound, SnapshotNotFound
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


class Snapshots:
    """The data snapshots of a workspace (``ws.snapshots``): what was collected, its profile, what was found in it
    and which versions trained on it."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def list(self, limit: int = 50) -> list[SnapshotInfo]:
        """The project's snapshots, newest first: the tables collected, their batches and the splits of runs."""
        return self._ws.store.list_snapshots(self._ws.spec.name, limit=limit)

    def get(self, ref: str) -> SnapshotInfo:
        """A snapshot by its digest, or by a prefix of it (at least 6 characters) that names one of the project's
        newest 1,000 snapshots alone."""
        store = self._ws.store
        try:
            return store.get_snapshot(ref)
        except SnapshotNotFound:
            pass
        found = [s for s in store.list_snapshots(self._ws.spec.name, limit=1000) if s.digest.startswith(ref)] \
            if len(ref) >= 6 else []
        if len(found) == 1:
            return found[0]
        what = "no snapshot" if not found else f"{len(found)} snapshots"
        raise SnapshotNotFound(f"{what} with digest {ref!r}", hint="run `tidal snapshots ls` to see them (a prefix of "
                                                                   "6 or more characters names one)")

    def events(self, info: SnapshotInfo, limit: int = 50) -> builtins.list[Event]:
        """What was found in it and done with it: ``data.collected``, ``data.warning``, ``data.rejected``..."""
        return self._ws.store.list_events(subject=f"snapshot:{info.digest}", limit=limit)

    def versions(self, info: SnapshotInfo) -> builtins.list[ModelVersion]:
        """The versions trained on it (its digest is their lineage's snapshot)."""
        return [mv for mv in self._ws.registry.list(self._ws.spec.name, profiles=False)
                if mv.lineage.snapshot == info.digest]


class Models:
    """The model registry of a workspace (``ws.models``)."""

    def __init__(self, ws: Workspace) -> None:
        self._ws = ws

    def list(self, name: str | None = None, *, profiles: bool = True) -> list[ModelVersion]:
        """Every version (of ``name``); ``profiles=False``: each ``profile`` left empty (not read: the largest
        field of a version, which a list to show does not need)."""
        return self._ws.registry.list(name, profiles=profiles)

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


__all__ = ["Models", "RunDetail", "Runs", "Snapshots"]
