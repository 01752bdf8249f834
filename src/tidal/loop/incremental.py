"""The collect step of a project with ``data.incremental``: read the rows past the watermark, store them as a
batch snapshot, and train on the merged, windowed table (:mod:`tidal.data.incremental` does the data work).
A stream source (``data.source: {redis: ...}``) is collected the same way, one micro-batch of new readings
per run, by :class:`tidal.loop.stream.StreamCollect`, to which :class:`IncrementalCollect` hands it.

The metadata store keeps, under :func:`state_key`, the watermark and the list of batch snapshots, in order.
The state moves only once the table passed validation (:meth:`IncrementalCollect.commit`): a batch that is
refused is never merged into later tables, and the next run reads the same rows again (fixed, they come with
a newer value of the column). The key is per source, query and column, so that changing one starts afresh.

A collection stores its batch and nothing else, so that it costs the new rows, not every row collected so far:
``tidal loop``'s scheduled collection (:meth:`IncrementalCollect.collect`) never makes the merged table (a
retrain merges the committed batches when it needs them: :func:`tidal.loop.collection.collected_source`). A
run needs the table: its collect step makes it from the batches (merge on read) and names it by its manifest
(:func:`tidal.data.incremental.table_manifest`) under :func:`table_key`, so that a run on the same batches
(no new rows) reuses that table without reading or merging a batch. The table is a snapshot as any other: the
run's lineage names it, and the step's outputs name its manifest and batches' count.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tidal.core.entities import Event, SnapshotInfo
from tidal.core.errors import SnapshotNotFound
from tidal.core.hashing import digest_of
from tidal.core.ports import ArtifactStore, Clock, MetadataStore
from tidal.data.incremental import (
    Increment,
    behind,
    collect_increment,
    decode_watermark,
    sql_source_for,
    table_manifest,
    training_table,
)
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


def table_key(spec: Spec) -> str:
    """The metadata store key under which the last table a run made is named by its manifest
    (:func:`tidal.data.incremental.table_manifest`), so that a run on the same batches reuses it unmade."""
    return f"{state_key(spec)}:table"


def _step(data: DataSpec, base_dir: Path, project: str, created_at: datetime, watermark: dict[str, Any] | None,
          previous: list[pd.DataFrame], check: Callable[[pd.DataFrame], None] | None = None) -> Increment:
    return collect_increment(data, base_dir=base_dir, project=project, created_at=created_at, watermark=watermark,
                             previous=previous, check=check)


@dataclass(frozen=True)
class Collected:
    """A run's collect step: the increment, the manifest of the table to train on, and that table's snapshot
    (``made``: None when the table of this manifest was made before and is reused, ``digest`` names it)."""

    increment: Increment
    manifest: str
    digest: str
    made: tuple[SnapshotInfo, bytes] | None


def _run_step(data: DataSpec, base_dir: Path, project: str, created_at: datetime, watermark: dict[str, Any] | None,
              previous: list[pd.DataFrame], batches: list[str], read: Callable[[str], pd.DataFrame],
              made: dict[str, str]) -> Collected:
    """Collect (:func:`~tidal.data.incremental.collect_increment`), then the table to train on: the one named by
    the same manifest in ``made`` when there is one (no window of days, which moves with the clock), else every
    batch read (``read``: by digest) and merged (:func:`~tidal.data.incremental.training_table`)."""
    inc = _step(data, base_dir, project, created_at, watermark, previous)
    digests = [*batches, inc.batch[0].digest] if inc.batch is not None else list(batches)
    manifest = table_manifest(data, digests)
    if data.window.last_days is None and made.get("manifest") == manifest:
        return Collected(inc, manifest, made["snapshot"], None)
    # the new batch as it is stored, read back as a later merge reads it: the same batches, the same table
    frames = [read(d) for d in batches]
    if inc.batch is not None:
        frames.append(read_snapshot_bytes(inc.batch[1]))
    table = training_table(data, frames, project=project, created_at=created_at,
                           batch=inc.batch if not batches else None)
    return Collected(inc, manifest, table[0].digest, table)


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

    def _lookback(self, state: dict[str, Any]) -> list[pd.DataFrame]:
        """The batches whose rows a lookback may read again: none without a lookback (every row past the
        watermark is new), else those whose recorded watermark (at least every value of the batch) is past
        ``watermark - lookback``: a batch entirely at or before it holds no row the lookback reads again (an
        identical row has the same value of the column), so the collection does not read every batch."""
        inc = self.spec.data.incremental
        assert inc is not None
        if inc.lookback is None or state["watermark"] is None:
            return []
        after = behind(state["watermark"], inc.lookback, inc.column)
        out = []
        for entry in state["batches"]:
            mark = entry.get("watermark")
            try:
                if mark is not None and not decode_watermark(mark) > after:
                    continue
            except TypeError:  # values that do not compare (a naive and an aware time): read it, to be sure
                pass
            out.append(self._frame(entry["snapshot"]))
        return out

    def _keep(self, inc: Increment, run_id: str) -> None:
        """Store ``inc``'s batch snapshot (nothing else: the table is made where a run needs it), and hold it
        for :meth:`commit`."""
        if inc.batch is not None:
            self.artifacts.put(inc.batch[1])
            self.store.put_snapshot(inc.batch[0])
        self.pending = (inc, run_id)

    def _made(self, use_cache: bool) -> dict[str, str]:
        """The last table made, by manifest, while its snapshot is still stored (``{}`` otherwise, and for a run
        without its cache: that run makes every table it trains on afresh)."""
        made = (self.store.get_state(table_key(self.spec)) or {}) if use_cache else {}
        if not made.get("snapshot") or not self.artifacts.exists(made["snapshot"]):
            return {}
        try:
            self.store.get_snapshot(made["snapshot"])
        except SnapshotNotFound:
            return {}
        return {"manifest": str(made.get("manifest")), "snapshot": str(made["snapshot"])}

    def run(self, runner: StepRunner, result: RunResult) -> SnapshotInfo:
        """Run the collect step; the table snapshot to train on."""
        data, spec = self.spec.data, self.spec
        if is_stream(data):  # micro-batches of a stream: the same two moves, in tidal.loop.stream
            self.stream = StreamCollect(spec, self.root, self.store, self.artifacts, self.clock, self.frames)
            return self.stream.run(runner, result)
        sql_source_for(data)  # before the step, so that a wrong source is one line and no step record
        state = read_state(self.store, spec)
        batches = [b["snapshot"] for b in state["batches"]]

        def save(done: Collected) -> dict[str, Any]:
            inc = done.increment
            self._keep(inc, result.run.id)
            if done.made is not None:
                info, payload = done.made
                self.artifacts.put(payload)
                self.store.put_snapshot(info)
                self.frames[info.digest] = read_snapshot_bytes(payload)
                if data.window.last_days is None:
                    self.store.put_state(table_key(spec), {"manifest": done.manifest, "snapshot": info.digest})
            else:
                info = self.store.get_snapshot(done.digest)
            result.notes.append(inc.message)
            return {"snapshot": info.digest, "rows": info.rows, "columns": info.columns, "new_rows": inc.new_rows,
                    "batch": inc.batch[0].digest if inc.batch else None, "batches": len(batches) + bool(inc.batch),
                    "manifest": done.manifest, "table_reused": done.made is None,
                    "watermark": inc.watermark["value"] if inc.watermark else None, "message": inc.message,
                    "artifacts": [info.digest]}

        inc = data.incremental
        assert inc is not None
        out = runner.step(
            "collect", _run_step, code_of=collect_increment, save=save,
            args=lambda: (data, self.root, spec.name, self.clock.now(), state["watermark"], self._lookback(state),
                          batches, self._frame, self._made(runner.use_cache)),
            inputs={"source": str(data.source), "query": data.query, "incremental": inc.model_dump(mode="json"),
                    "window": data.window.model_dump(mode="json"), "watermark": state["watermark"],
                    "batches": batches},
            cacheable=False, here=True,  # the project's source, read where the project is
            why_always="data.incremental: the rows past the watermark are read on every run").outputs
        result.run.info["snapshot"] = out["snapshot"]
        return self.store.get_snapshot(out["snapshot"])

    def collect(self, origin: str, check: Callable[[pd.DataFrame], None] | None = None) -> Increment | StreamIncrement:
        """One collection outside a run (``tidal loop``'s ``data.collect``): the same reading as :meth:`run`'s
        step, its batch stored (no table: a retrain merges the committed batches) and held for :meth:`commit`;
        ``origin`` names it in the state's batch list (where a run's id is otherwise). ``check`` sees the new rows
        first, and may refuse them by raising (:func:`tidal.data.incremental.collect_increment`): then nothing is
        stored or held."""
        if is_stream(self.spec.data):  # micro-batches of a stream: the same moves, in tidal.loop.stream
            self.stream = StreamCollect(self.spec, self.root, self.store, self.artifacts, self.clock, self.frames)
            return self.stream.collect(origin, check)
        sql_source_for(self.spec.data)
        state = read_state(self.store, self.spec)
        inc = _step(self.spec.data, self.root, self.spec.name, self.clock.now(), state["watermark"],
                    self._lookback(state), check)
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


__all__ = ["Collected", "IncrementalCollect", "read_state", "state_key", "table_key"]
