"""Ports: the smallest sets of primitives the stages need from the outside world.

Logic (versioning policy, hashing, lineage) lives above the ports; an adapter only stores and returns.
Each port has a conformance suite in ``tests/contract/`` that every adapter must pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from tidal.core.entities import (
    Alias,
    CacheEntry,
    Event,
    Feedback,
    Lease,
    LogCheck,
    Metric,
    ModelState,
    ModelVersion,
    Prediction,
    Report,
    Run,
    RunStatus,
    SnapshotInfo,
    StepRecord,
    UnreadableBatch,
)

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class MetadataStore(Protocol):
    """Runs, steps, tracking data, snapshots, the step cache, model versions, aliases and events.

    Writes are idempotent where the entity has a natural key (snapshots by digest, cache entries by key,
    params by run and key): writing the same thing twice stores it once.
    """

    def atomic(self) -> AbstractContextManager[None]:
        """A unit of work: every call made in the ``with`` block (on this thread) commits together when it
        ends, or not at all if it raises or the process dies first. A state change and the event that
        explains it are written this way, so that one is never stored without the other."""
        ...

    # -- runs and steps ------------------------------------------------------------------------
    def create_run(self, run: Run) -> None: ...
    def finish_run(
        self, run_id: str, status: RunStatus, ended_at: datetime, *, error: str | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None: ...
    def heartbeat_run(self, run_id: str, at: datetime) -> None:
        """Record that the process running ``run_id`` is alive at ``at`` (KeyError for an unknown run)."""
        ...
    def get_run(self, run_id: str) -> Run:
        """The run with ``run_id``; a unique prefix of at least 4 characters also matches.

        Raises ``KeyError`` when there is no such run.
        """
        ...
    def list_runs(self, project: str | None = None, limit: int = 50) -> list[Run]:
        """Newest first."""
        ...
    def save_step(self, step: StepRecord) -> None:
        """Insert or replace the step ``(run_id, name)``."""
        ...
    def list_steps(self, run_id: str) -> list[StepRecord]:
        """In ``position`` order."""
        ...

    # -- tracking: one transaction per call, however many values ------------------------------
    def log_batch(
        self, run_id: str, *, metrics: Sequence[Metric] = (), params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None: ...
    def get_params(self, run_id: str) -> dict[str, str]: ...
    def get_tags(self, run_id: str) -> dict[str, str]: ...
    def get_metrics(self, run_id: str, key: str | None = None) -> list[Metric]:
        """Ordered by key, then step, then timestamp."""
        ...
    def add_run_artifact(self, run_id: str, name: str, digest: str) -> None: ...
    def list_run_artifacts(self, run_id: str) -> dict[str, str]: ...

    # -- snapshots and schemas -----------------------------------------------------------------
    def put_snapshot(self, snapshot: SnapshotInfo) -> None:
        """Idempotent by digest."""
        ...
    def get_snapshot(self, digest: str) -> SnapshotInfo:
        """Raises ``KeyError`` when unknown."""
        ...
    def list_snapshots(self, project: str | None = None, limit: int = 50) -> list[SnapshotInfo]: ...

    # -- step cache ----------------------------------------------------------------------------
    def put_cache_entry(self, entry: CacheEntry) -> None:
        """Insert or replace by key."""
        ...
    def get_cache_entry(self, key: str) -> CacheEntry | None: ...
    def latest_cache_entry(self, step: str, project_run_ids: Iterable[str] | None = None) -> CacheEntry | None:
        """The newest entry for ``step`` (optionally among runs ``project_run_ids``), to explain misses."""
        ...

    # -- model registry ------------------------------------------------------------------------
    def create_model_version(self, mv: ModelVersion) -> ModelVersion:
        """Store ``mv`` under the next version number of ``mv.name`` (1, 2, ...), assigned atomically;
        ``mv.version`` is ignored. Returns the stored version."""
        ...
    def update_model_version(
        self, name: str, version: int, *, state: ModelState | None = None,
        reasons: Sequence[str] | None = None, metrics: Mapping[str, float] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Change the given fields; ``metrics`` and ``info`` are merged into what is stored."""
        ...
    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """Raises ``KeyError`` when unknown."""
        ...
    def list_model_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Ordered by name, then version."""
        ...
    def set_alias(
        self, name: str, alias: str, version: int, at: datetime, *, expected: int | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version``; returns the version it pointed at before, if any.

        ``expected``: move it only if it points at that version now (``0``: only if it points nowhere),
        else raise :class:`~tidal.core.errors.AliasMoved` — checked and moved under one lock, so a caller
        that compared a candidate with the champion promotes it only over that very champion."""
        ...
    def get_alias(self, name: str, alias: str) -> Alias | None: ...
    def delete_alias(self, name: str, alias: str) -> None: ...
    def list_aliases(self, name: str | None = None) -> list[Alias]: ...

    # -- events and key/value state -------------------------------------------------------------
    def append_event(self, event: Event) -> Event:
        """Store the event; returns it with its ``id`` (increasing)."""
        ...
    def list_events(
        self, *, subject: str | None = None, kind: str | None = None, since_id: int | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Oldest first among the newest ``limit`` matches. ``subject`` matches exactly or as a prefix
        ending in ``*`` (``model:elec2:*``)."""
        ...
    # -- monitoring reports ---------------------------------------------------------------------
    def save_report(self, report: Report) -> None:
        """Store a report (idempotent by ``report.id``)."""
        ...
    def get_report(self, report_id: str) -> Report:
        """The report with this id (or a unique prefix of at least 4 characters); ``KeyError`` if none."""
        ...
    def list_reports(self, model: str | None = None, limit: int = 50) -> list[Report]:
        """Newest first."""
        ...

    # -- leases: one actor at a time (e.g. one controller per workspace) ------------------------
    def acquire_lease(self, name: str, owner: str, until: datetime, now: datetime, *, force: bool = False) -> bool:
        """Atomically take or renew the lease ``name`` for ``owner`` until ``until``.

        True when ``owner`` holds it afterwards: it was free, expired (its ``until`` <= ``now``), or
        already ``owner``'s. False when another owner holds an unexpired lease. ``force`` takes it from
        whoever holds it (an operator who knows the holder is dead).
        """
        ...
    def get_lease(self, name: str) -> Lease | None:
        """Who holds the lease ``name`` and until when (expired or not); None when nobody took it."""
        ...
    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (no-op otherwise)."""
        ...

    def get_state(self, key: str) -> Any | None:
        """A JSON value stored under ``key`` (schemas, controller state)."""
        ...
    def put_state(self, key: str, value: Any) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class PredictionLog(Protocol):
    """Served predictions and the labels that arrive for them.

    ``append`` is durable when it returns: the server answers a request only after its predictions are
    committed. Concurrent ``append`` calls share commits (group commit), so durability does not cost
    one disk flush per request.
    """

    def append(self, predictions: Sequence[Prediction]) -> None: ...
    def add_feedback(self, feedback: Sequence[Feedback], *, overwrite: bool = False) -> int:
        """Attach labels; all or nothing. Raises ``FeedbackRejected`` for an unknown prediction id, or
        (unless ``overwrite``) for one that already has a label. Returns how many were stored."""
        ...
    def get(self, prediction_id: str) -> Prediction:
        """One prediction with its label, if any; ``KeyError`` when unknown."""
        ...
    def window(
        self, *, model: str | None = None, version: int | None = None, last: int | None = None,
        since: datetime | None = None, until: datetime | None = None, labelled: bool | None = None,
        served: bool | None = True, deployment: str | None = None,
    ) -> list[Prediction]:
        """Matching predictions, oldest first; ``last`` keeps the newest ``last`` of them. A stored batch that
        cannot be read is skipped (see :meth:`skipped`), never an error for the whole window."""
        ...
    def count(
        self, *, model: str | None = None, version: int | None = None, since: datetime | None = None,
        labelled: bool | None = None, served: bool | None = True,
    ) -> int:
        """How many stored predictions match (unreadable ones included, until they are quarantined)."""
        ...
    def skipped(self) -> list[UnreadableBatch]:
        """The unreadable batches that reads of this log object met and skipped, since it was opened (each
        once). ``get`` of a prediction in one raises StorageError instead."""
        ...
    def check(self, *, quarantine: bool = False) -> LogCheck:
        """Read every stored prediction back and list the batches that cannot be read; with ``quarantine``,
        move those out of the log (kept whole, with the reason, where reads no longer meet them)."""
        ...
    def close(self) -> None: ...


@runtime_checkable
class ArtifactStore(Protocol):
    """Bytes in, bytes out, by content digest (sha256 hex)."""

    def put(self, data: bytes) -> str:
        """Store ``data`` and return its digest; storing the same bytes twice is a no-op."""
        ...
    def get(self, digest: str) -> bytes:
        """The bytes stored under ``digest``, verified against it.

        Raises ``KeyError`` when absent and ``IntegrityError`` when the bytes do not match the digest.
        """
        ...
    def exists(self, digest: str) -> bool: ...
    @property
    def url(self) -> str:
        """Where the artifacts live, for display."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Runs a step, or a batch of independent trials."""

    name: str

    def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R: ...
    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]: ...


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime: ...
