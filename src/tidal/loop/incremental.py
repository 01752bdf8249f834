"""The collect step of a project with ``data.incremental``: read the rows past the watermark, store them as a
batch snapshot, and train on the merged, windowed table (:mod:`tidal.data.incremental` does the data work).
A stream source (``data.source: {redis: ...}``) is collected the same way, one micro-batch of new readings
per run, by :class:`tidal.loop.stream.StreamCollect`, to which :class:`IncrementalCollect` hands it.

The metadata store keeps, under :func:`state_key`, the watermark and the list of batch snapshots, in order.
The state moves only once the table passed validation (:meth:`IncrementalCollect.commit`): a batch that is
refused is never merged into later tables, and the next run reads the same rows again (fixed, they come with
a newer value of the column). The key is per source, query and column, so that changing one starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tidal.core.entities import Event, SnapshotInfo
from tidal.core.hashing import digest_of
from tidal.core.ports import ArtifactStore, Clock, MetadataStore
from tidal.data.incremental import Increment, collect_increment, decode_watermark, sql_source_for
from tidal.data.snapshot import read_snapshot_bytes
from tidal.data.stream import StreamIncrement, is_stream
from tidal.loop.results import RunResult
from tidal.loop.runner import StepRunner
from tidal.loop.stream import StreamCollect
from tidal.spec.model import DataSpec, Spec


def state_key(spec: Spec) -> str:
    """The metadata store key of a project's incremental state, for its source, query and column."""
    data = spec.data
    assert data.incremental is not None
    which = digest_of({"source": str(data.source), "query": data.query, "column": data.incremental.column})
    return f"incremental:{spec.name}:{which[:16]}"


def read_state(store: MetadataStore, spec: Spec) -> dict[str, Any]:
    """The watermark (``None`` before the first collection) and the batches collected, oldest first."""
    return store.get_state(state_key(spec)) or {"watermark": None, "batches": []}


def _step(data: DataSpec, base_dir: Path, project: str, created_at: datetime, watermark: dict[str, Any] | None,
          previous: list[pd.DataFrame], check: Callable[[pd.DataFrame], None] | None = None) -> Increment:
    return collect_increment(data, base_dir=base_dir, project=project, created_at=created_at, watermark=watermark,
                             previous=previous, check=check)


@dataclass
class IncrementalCollect:
    """One run's incremental collection: :meth:`run` collects, :meth:`commit` records it once validated."""

    spec: Spec
    root: Path
    store: MetadataStore
    artifacts: ArtifactStore
    clock: Clock
    frames: dict[str, pd.DataFrame]
    pending: tuple[Increment, str] | None = None
    #: a stream source (``data.source: {redis: ...}``) is collected by :class:`tidal.loop.stream.StreamCollect`
    stream: StreamCollect | None = None

    def _frame(self, digest: str) -> pd.DataFrame:
        if digest not in self.frames:
            self.frames[digest] = read_snapshot_bytes(self.artifacts.get(digest))
        return self.frames[digest]

    def _keep(self, inc: Increment, run_id: str) -> None:
        """Store ``inc``'s batch and table snapshots, and hold it for :meth:`commit`."""
        if inc.batch is not None:
            self.artifacts.put(inc.batch[1])
            self.store.put_snapshot(inc.batch[0])
        info, payload = inc.table
        self.artifacts.put(payload)
        self.store.put_snapshot(info)
        self.frames[info.digest] = read_snapshot_bytes(payload)
        self.pending = (inc, run_id)

    def run(self, runner: StepRunner, result: RunResult) -> SnapshotInfo:
        """Run the collect step; the table snapshot to train on."""
        data, spec = self.spec.data, self.spec
        if is_stream(data):  # micro-batches of a stream: the same two moves, in tidal.loop.stream
            self.stream = StreamCollect(spec, self.root, self.store, self.artifacts, self.clock, self.frames)
            return self.stream.run(runner, result)
        sql_source_for(data)  # before the step, so that a wrong source is one line and no step record
        state = read_state(self.store, spec)
        batches = [b["snapshot"] for b in state["batches"]]

        def save(inc: Increment) -> dict[str, Any]:
            self._keep(inc, result.run.id)
            info = inc.table[0]
            result.notes.append(inc.message)
            return {"snapshot": info.digest, "rows": info.rows, "columns": info.columns, "new_rows": inc.new_rows,
                    "batch": inc.batch[0].digest if inc.batch else None, "batches": len(batches) + bool(inc.batch),
                    "watermark": inc.watermark["value"] if inc.watermark else None, "message": inc.message,
                    "artifacts": [info.digest]}

        inc = data.incremental
        assert inc is not None
        out = runner.step(
            "collect", _step, code_of=collect_increment, save=save,
            args=lambda: (data, self.root, spec.name, self.clock.now(), state["watermark"],
                          [self._frame(d) for d in batches]),
            inputs={"source": str(data.source), "query": data.query, "incremental": inc.model_dump(mode="json"),
                    "window": data.window.model_dump(mode="json"), "watermark": state["watermark"],
                    "batches": batches},
            cacheable=False, here=True,  # the project's source, read where the project is
            why_always="data.incremental: the rows past the watermark are read on every run").outputs
        result.run.info["snapshot"] = out["snapshot"]
        return self.store.get_snapshot(out["snapshot"])

    def collect(self, origin: str, check: Callable[[pd.DataFrame], None] | None = None) -> Increment | StreamIncrement:
        """One collection outside a run (``tidal loop``'s ``data.collect``): the same reading as :meth:`run`'s
        step, its snapshots stored and held for :meth:`commit`; ``origin`` names it in the state's batch list
        (where a run's id is otherwise). ``check`` sees the new rows first, and may refuse them by raising
        (:func:`tidal.data.incremental.collect_increment`): then nothing is stored or held."""
        if is_stream(self.spec.data):  # micro-batches of a stream: the same moves, in tidal.loop.stream
            self.stream = StreamCollect(self.spec, self.root, self.store, self.artifacts, self.clock, self.frames)
            return self.stream.collect(origin, check)
        sql_source_for(self.spec.data)
        state = read_state(self.store, self.spec)
        inc = _step(self.spec.data, self.root, self.spec.name, self.clock.now(), state["watermark"],
                    [self._frame(b["snapshot"]) for b in state["batches"]], check)
        self._keep(inc, origin)
        return inc

    def discard(self) -> None:
        """Forget the held collection: its batch was refused, so the state (and the watermark) stay."""
        self.pending = None
        if self.stream is not None:
            self.stream.discard()

    def commit(self, extra: dict[str, Any] | None = None) -> Event | None:
        """Record the collection (its batch and watermark) once its table passed validation; an event says what
        came (or that nothing did), with ``extra`` in its data; it is returned (None with nothing held). The
        state is read again, so that a batch another run recorded meanwhile is kept. A stream's collection is
        committed (and acknowledged to the broker) by its :class:`~tidal.loop.stream.StreamCollect`."""
        if self.stream is not None:
            return self.stream.commit(extra)
        if self.pending is None:
            return None
        (inc, run_id), self.pending = self.pending, None
        key = state_key(self.spec)
        state = read_state(self.store, self.spec)
        kind = "data.no_new_rows"
        if inc.batch is not None and inc.watermark is not None:
            kind = "data.collected"
            info = inc.batch[0]
            if info.digest not in {b["snapshot"] for b in state["batches"]}:
                state["batches"].append({"snapshot": info.digest, "rows": info.rows, "watermark": inc.watermark,
                                         "collected_at": info.created_at.isoformat(), "run_id": run_id})
            current = state["watermark"]
            if current is None or decode_watermark(current) < decode_watermark(inc.watermark):
                state["watermark"] = inc.watermark
            self.store.put_state(key, state)
        subject = f"snapshot:{inc.batch[0].digest}" if inc.batch else f"project:{self.spec.name}"
        return self.store.append_event(Event(
            kind=kind, subject=subject, message=inc.message, time=self.clock.now(),
            data={"run_id": run_id, "new_rows": inc.new_rows,
                  "watermark": inc.watermark["value"] if inc.watermark else None, **(extra or {})}))


__all__ = ["IncrementalCollect", "read_state", "state_key"]
