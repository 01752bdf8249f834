"""The step runner: executes steps through the Executor port, reusing cached results when it can.

Each step is recorded (status, timings, cache key, inputs, outputs, explanation) as it starts and ends,
so a crashed run still shows how far it got.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tidal.core.entities import CacheEntry, StepRecord, StepStatus
from tidal.core.ports import ArtifactStore, Clock, Executor, MetadataStore
from tidal.loop.cache import cache_key, code_version, environment, explain_miss


class StepListener(Protocol):
    def __call__(self, step: StepRecord) -> None: ...


@dataclass
class StepOutcome:
    outputs: dict[str, Any]
    reused: bool
    record: StepRecord


class StepRunner:
    """Runs the steps of one run, in order, with the step cache."""

    def __init__(
        self, *, store: MetadataStore, artifacts: ArtifactStore, executor: Executor, clock: Clock,
        run_id: str, listener: StepListener | None = None, use_cache: bool = True,
    ) -> None:
        self.store = store
        self.artifacts = artifacts
        self.executor = executor
        self.clock = clock
        self.run_id = run_id
        self.listener = listener
        self.use_cache = use_cache
        self.records: list[StepRecord] = []

    def step(
        self, name: str, fn: Callable[..., Any], *, inputs: Mapping[str, Any],
        args: Callable[[], Sequence[Any]] | None = None, save: Callable[[Any], dict[str, Any]] | None = None,
        code_of: Callable[..., Any] | None = None, cacheable: bool = True,
        reuse_note: Callable[[dict[str, Any]], str] | None = None, why_always: str = "this step always runs",
        here: bool = False,
    ) -> StepOutcome:
        """Run the step ``fn`` unless an identical earlier run can be reused.

        ``fn`` is a stage's step function: ``args()`` loads its inputs (only when it runs), the executor
        calls ``fn(*args())``, and ``save`` stores what it returned and gives the step's JSON outputs (without
        ``save``, ``fn`` returns them itself). ``inputs`` is everything the result depends on besides code
        and environment: params and the digests of input data. Outputs listing ``artifacts`` (digests) are
        reused only while those artifacts still exist.

        ``fn`` goes to the executor, which may run it in another process or on another machine: a module-level
        function whose inputs are its arguments (``args()``, read from the stores here), never a closure over
        the stores. ``here``: run ``fn`` in this process instead, for a step that reads the project's own files
        or orchestrates other tasks (collect, search, register). Where a step ran elsewhere, its record's
        outputs say where (``ran_on``: node, host, pid).
        """
        code = code_version(code_of or fn)
        key = cache_key(name, code, inputs)
        fingerprint = {"inputs": dict(inputs), "env": environment(), "code": code}
        record = StepRecord(run_id=self.run_id, name=name, status=StepStatus.RUNNING, cache_key=key,
                            started_at=self.clock.now(), inputs=dict(inputs), position=len(self.records))
        entry = self.store.get_cache_entry(key) if (self.use_cache and cacheable) else None
        if entry is not None and all(self.artifacts.exists(d) for d in entry.outputs.get("artifacts", [])):
            record.status = StepStatus.REUSED
            record.outputs = dict(entry.outputs)
            note = reuse_note(record.outputs) if reuse_note else ""
            record.explain = (f"reused from run {entry.run_id[:8]}: same code, inputs and environment"
                              + (f" ({note})" if note else ""))
            return self._finish(record, reused=True)

        if not cacheable:
            record.explain = f"ran: {why_always}"
        elif not self.use_cache:
            record.explain = "ran: the cache was disabled for this run"
        else:
            previous = self.store.latest_cache_entry(name)
            prev_fp = previous.fingerprint if previous else None
            record.explain = explain_miss(fingerprint, prev_fp, code, prev_fp.get("code") if prev_fp else None)
        self._save(record)
        try:
            call_args = args() if args is not None else ()
            if here:
                result, where = fn(*call_args), None
            else:
                task = self.executor.submit(fn, *call_args)
                result, where = task.result(), task.where
            outputs = save(result) if save is not None else result
        except BaseException as exc:
            record.status = StepStatus.FAILED
            record.ended_at = self.clock.now()
            record.outputs = {"error": str(exc)}
            self.records.append(record)  # so the run does not record it again as skipped
            self._save(record)
            raise
        record.status = StepStatus.DONE
        record.outputs = outputs if where is None else {**outputs, "ran_on": where}
        if cacheable:
            self.store.put_cache_entry(CacheEntry(key=key, step=name, run_id=self.run_id, outputs=outputs,
                                                  created_at=self.clock.now(), fingerprint=fingerprint))
        return self._finish(record, reused=False, outputs=outputs)

    def reuse(self, name: str, outputs: dict[str, Any], why: str) -> StepOutcome:
        """Record a step whose result is already known without running it (e.g. a model that is
        already registered needs no second gate)."""
        now = self.clock.now()
        record = StepRecord(run_id=self.run_id, name=name, status=StepStatus.REUSED, started_at=now,
                            outputs=outputs, explain=f"reused: {why}", position=len(self.records))
        return self._finish(record, reused=True)

    def amend(self, name: str, outputs: dict[str, Any], note: str) -> None:
        """Replace the outputs of the recorded step ``name`` and add ``note`` to its explanation (a decision
        made again later in the run: the gate, when the champion moved before the registration)."""
        for record in self.records:
            if record.name == name:
                record.outputs = outputs
                record.explain = f"{record.explain}; {note}" if record.explain else note
                self._save(record)
                return
        raise KeyError(f"no step {name!r} recorded in this run")

    def skip(self, name: str, why: str) -> StepRecord:
        """Record a step that did not run (an earlier step stopped the run)."""
        record = StepRecord(run_id=self.run_id, name=name, status=StepStatus.SKIPPED, explain=why,
                            position=len(self.records), started_at=self.clock.now(), ended_at=self.clock.now())
        self.records.append(record)
        self._save(record)
        return record

    def _finish(self, record: StepRecord, *, reused: bool, outputs: dict[str, Any] | None = None) -> StepOutcome:
        record.ended_at = self.clock.now()
        self.records.append(record)
        self._save(record)
        return StepOutcome(outputs=record.outputs if outputs is None else outputs, reused=reused, record=record)

    def _save(self, record: StepRecord) -> None:
        self.store.save_step(record)
        if self.listener is not None:
            self.listener(record)
