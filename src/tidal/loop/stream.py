"""The collect step of a project whose ``data.source`` is a stream: a micro-batch of new readings per run.

:class:`tidal.loop.incremental.IncrementalCollect` hands a stream source to :class:`StreamCollect`, which has
the same two moves: :meth:`StreamCollect.run` collects (reads the unacknowledged entries, stores the batch
snapshot and the table to train on; :meth:`StreamCollect.collect`, the loop's, stores the batch only) and
:meth:`StreamCollect.commit`, called once the table passed validation, records the batch and the last entry ids
in the metadata store and only then acknowledges the entries on the broker.
The order is what makes a reading count once:

- killed before the commit (or the batch refused): nothing is recorded or acknowledged; the next run reads
  the same pending entries again, and the same readings give the same content-addressed batch;
- killed after the commit, before the ``XACK``: the next run gets those entries back as pending, finds their
  ids in the committed batches, and acknowledges them without collecting them again;
- two runs at once (the same consumer): the second to commit finds readings of its batch in a batch committed
  meanwhile, records nothing and acknowledges nothing, and fails with one line; its readings stay pending, and
  the next run collects exactly those not yet held.

The state (``stream:<project>:…``, one per broker, stream, group and labels stream) holds ``marks``
(the last entry id of each stream), the readings' ``batches`` and the labels' ``label_batches``, in order.

``TIDAL_TEST_STREAM_HALT=<stage>:<file>`` is a fault hook for tests only: at ``read`` (the batch is stored,
nothing committed) or ``commit`` (the state is committed, nothing acknowledged) the process writes ``file``
and waits (at most 60 s) until the file is gone, so that a test can kill it at that exact point, or let it go
on once another run did something.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tidal.core.entities import Event, SnapshotInfo
from tidal.core.errors import SourceError
from tidal.core.hashing import digest_of
from tidal.core.ports import ArtifactStore, Clock, MetadataStore
from tidal.data.snapshot import read_snapshot_bytes
from tidal.data.sources.stream import Broker, entry_key
from tidal.data.stream import StreamIncrement, collect_stream, held_ids, stream_config
from tidal.loop.results import RunResult
from tidal.loop.runner import StepRunner
from tidal.spec.model import DataSpec, Spec

#: The test-only fault hook (module docstring).
HALT_ENV = "TIDAL_TEST_STREAM_HALT"


def stream_state_key(spec: Spec, *, consumer: bool = False) -> str:
    """The metadata store key of a stream project's state, for its broker, streams and group: the group's
    readings are the project's whichever consumer name read them, so a reader that comes back under another
    name (a restarted pod, a renamed ``consumer``) goes on from the same batches. ``consumer=True``: the key
    that also named the consumer, under which states were kept before (read by :func:`read_stream_state`)."""
    config = stream_config(spec.data)
    fields = {"source": config.label, "stream": config.stream, "group": config.group,
              "labels": config.labels.stream if config.labels else None}
    if consumer:
        fields["consumer"] = config.consumer
    return f"stream:{spec.name}:{digest_of(fields)[:16]}"


def read_stream_state(store: MetadataStore, spec: Spec) -> dict[str, Any]:
    """The last entry id of each stream and the batches of readings and labels collected, oldest first.
    A state kept under the older, per-consumer key (and none yet under the group's) is read from there; the
    next commit writes it under the group's key, and the old one is left as it was."""
    state = store.get_state(stream_state_key(spec))
    if state is None:
        state = store.get_state(stream_state_key(spec, consumer=True))
    return {"marks": {}, "batches": [], "label_batches": [], **(state or {})}


def _halt(stage: str) -> None:
    hook = os.environ.get(HALT_ENV, "")
    if hook.partition(":")[0] == stage:
        flag = Path(hook.partition(":")[2])
        flag.write_text(stage)
        deadline = time.monotonic() + 60
        while flag.exists() and time.monotonic() < deadline:  # the test kills the process, or removes the flag
            time.sleep(0.05)


def _step(data: DataSpec, base_dir: Path, project: str, created_at: datetime, marks: dict[str, str],
          previous: list[pd.DataFrame], previous_labels: list[pd.DataFrame], table: bool = True) -> StreamIncrement:
    return collect_stream(data, base_dir=base_dir, project=project, created_at=created_at, marks=marks,
                          previous=previous, previous_labels=previous_labels, snapshot_table=table)


@dataclass
class StreamCollect:
    """One run's collection from a stream: :meth:`run` collects, :meth:`commit` records and acknowledges."""

    spec: Spec
    root: Path
    store: MetadataStore
    artifacts: ArtifactStore
    clock: Clock
    frames: dict[str, pd.DataFrame]
    pending: tuple[StreamIncrement, str] | None = None
    #: the batches recorded when this run read its state (a batch recorded later is another run's)
    started: dict[str, set[str]] = field(default_factory=dict)

    def _frame(self, digest: str) -> pd.DataFrame:
        if digest not in self.frames:
            self.frames[digest] = read_snapshot_bytes(self.artifacts.get(digest))
        return self.frames[digest]

    def run(self, runner: StepRunner, result: RunResult) -> SnapshotInfo:
        """Run the collect step; the table snapshot to train on."""
        spec, data = self.spec, self.spec.data
        config = stream_config(data)
        state, batches, label_batches = self._begin()

        def save(inc: StreamIncrement) -> dict[str, Any]:
            self._store(inc, result.run.id)
            assert inc.table is not None  # a run's step snapshots its table
            info = inc.table[0]
            self.frames[info.digest] = read_snapshot_bytes(inc.table[1])
            result.notes.append(inc.message)
            result.notes.extend(inc.warnings)
            return {"snapshot": info.digest, "rows": info.rows, "columns": info.columns, "new_rows": inc.new_rows,
                    "new_labels": inc.new_labels, "batch": inc.batch[0].digest if inc.batch else None,
                    "batches": len(batches) + bool(inc.batch), "marks": inc.marks, "message": inc.message,
                    "artifacts": [info.digest]}

        out = runner.step(
            "collect", _step, code_of=collect_stream, save=save,
            args=lambda: (data, self.root, spec.name, self.clock.now(), dict(state["marks"]),
                          [self._frame(d) for d in batches], [self._frame(d) for d in label_batches]),
            inputs={"source": config.model_dump(mode="json"),
                    "window": data.window.model_dump(mode="json"), "marks": state["marks"], "batches": batches,
                    "label_batches": label_batches},
            cacheable=False, here=True,  # the project's source, read where the project is
            why_always="a stream: the readings not yet acknowledged are read on every run").outputs
        result.run.info["snapshot"] = out["snapshot"]
        return self.store.get_snapshot(out["snapshot"])

    def collect(self, origin: str, check: Callable[[pd.DataFrame], None] | None = None) -> StreamIncrement:
        """One collection outside a run (``tidal loop``'s ``data.collect``): the same reading as :meth:`run`'s
        step, its batches stored (its table checked, not stored: a retrain merges the committed batches) and held
        for :meth:`commit`; ``origin`` names it in the state's batch list.
        ``check`` sees the new readings first (as columns, without the entry id) and may refuse them by raising:
        then nothing is stored, recorded or acknowledged, and the next collection reads them again."""
        spec, data = self.spec, self.spec.data
        state, batches, label_batches = self._begin()
        # the table is checked, not snapshotted: a loop's collection trains nothing (its retrain merges the batches)
        inc = _step(data, self.root, spec.name, self.clock.now(), dict(state["marks"]),
                    [self._frame(d) for d in batches], [self._frame(d) for d in label_batches], False)
        if check is not None and inc.batch is not None:
            entry = stream_config(data).entry_column
            check(read_snapshot_bytes(inc.batch[1]).drop(columns=[entry], errors="ignore"))
        self._store(inc, origin)
        return inc

    def _begin(self) -> tuple[dict[str, Any], list[str], list[str]]:
        """The stored state, its batches and label batches, remembered as this collection's start."""
        state = read_stream_state(self.store, self.spec)
        batches = [b["snapshot"] for b in state["batches"]]
        label_batches = [b["snapshot"] for b in state["label_batches"]]
        self.started = {"batches": set(batches), "label_batches": set(label_batches)}
        return state, batches, label_batches

    def _store(self, inc: StreamIncrement, origin: str) -> None:
        """Store a collection's batches and its table (when it made one), and hold it for :meth:`commit`."""
        for made in (inc.batch, inc.label_batch, inc.table):
            if made is not None:
                self.artifacts.put(made[1])
                self.store.put_snapshot(made[0])
        self.pending = (inc, origin)

    def _refuse_overlap(self, inc: StreamIncrement, state: dict[str, Any]) -> None:
        """SourceError when a batch committed since this run read its state holds some of this batch's readings
        (another run of the same consumer, at the same time): recording this one would count them twice."""
        config = stream_config(self.spec.data)
        for made, where in ((inc.batch, "batches"), (inc.label_batch, "label_batches")):
            if made is None:
                continue
            since = [b["snapshot"] for b in state[where] if b["snapshot"] not in self.started[where]
                     and b["snapshot"] != made[0].digest]
            if not since:  # the usual case: nothing committed meanwhile, so the batch need not be read back
                continue
            mine = held_ids(config, [self._frame(made[0].digest)])
            if both := mine & held_ids(config, [self._frame(d) for d in since]):
                raise SourceError(f"another run collected {len(both)} of this batch's readings from stream "
                                  f"{made[0].profile['stream']['stream']!r} meanwhile: this batch was not recorded or "
                                  "acknowledged", hint="run again: the readings not yet held are collected then "
                                                       "(one collection at a time per consumer)")

    def commit(self, extra: dict[str, Any] | None = None) -> Event | None:
        """Record the collection once its table passed validation, then acknowledge its entries on the broker;
        an event says what came (or that nothing did), with ``extra`` in its data, and is returned (None with
        nothing held). The state is read again, so that a batch another run recorded meanwhile is kept."""
        if self.pending is None:
            return None
        (inc, run_id), self.pending = self.pending, None
        _halt("read")
        key = stream_state_key(self.spec)
        state = read_stream_state(self.store, self.spec)
        self._refuse_overlap(inc, state)
        for made, where in ((inc.batch, "batches"), (inc.label_batch, "label_batches")):
            if made is not None and made[0].digest not in {b["snapshot"] for b in state[where]}:
                info = made[0]
                state[where].append({"snapshot": info.digest, "rows": info.rows, "last": info.profile["stream"]["last"],
                                     "collected_at": info.created_at.isoformat(), "run_id": run_id})
        marks = dict(state["marks"])
        for stream, last in inc.marks.items():
            if stream not in marks or entry_key(last) > entry_key(marks[stream]):
                marks[stream] = last
        state["marks"] = marks
        self.store.put_state(key, state)
        _halt("commit")
        acked, problem = 0, None
        if any(inc.acks.values()):
            broker = Broker(stream_config(self.spec.data))
            try:
                for stream, ids in inc.acks.items():
                    if ids:
                        acked += broker.acknowledge(stream, ids)
            except SourceError as exc:  # recorded: the next run acknowledges them (they come back as pending)
                problem = str(exc)
            finally:
                broker.close()
        kind = "data.collected" if inc.batch is not None or inc.label_batch is not None else "data.no_new_rows"
        subject = f"snapshot:{inc.batch[0].digest}" if inc.batch else f"project:{self.spec.name}"
        return self.store.append_event(Event(
            kind=kind, subject=subject, message=inc.message, time=self.clock.now(),
            data={"run_id": run_id, "new_rows": inc.new_rows, "new_labels": inc.new_labels, "marks": inc.marks,
                  "acknowledged": acked, **({"ack_failed": problem} if problem else {}), **(extra or {})}))

    def discard(self) -> None:
        """Forget the held collection: nothing recorded, nothing acknowledged (the readings come back)."""
        self.pending = None


__all__ = ["HALT_ENV", "StreamCollect", "read_stream_state", "stream_state_key"]
