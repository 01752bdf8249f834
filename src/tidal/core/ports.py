"""Ports: the smallest sets of primitives the stages need from the outside world.

Logic (versioning policy, hashing, lineage) lives above the ports; an adapter only stores and returns.
Each port has a conformance suite in ``tests/contract/`` that every adapter must pass.

- The metadata ports, each small and about one thing: :class:`RunStore` (runs, steps, tracking),
  :class:`SnapshotStore` (snapshots, the step cache), :class:`ModelStore` (model versions, aliases,
  events), :class:`LoopStore` (leases, state, reports) and :class:`TokenStore` (API tokens); each has
  :meth:`UnitOfWork.atomic`.
  :class:`MetadataStore` is all of them in one store (one database), as the workspace opens it; a stage
  depends on the port it uses.
- :class:`PredictionLog` (served predictions and their labels), :class:`ArtifactStore` (bytes by digest),
  :class:`Executor` (where a step runs) and :class:`Clock`.

An adapter raises tidal's errors (:mod:`tidal.core.errors`), never a library's: a
:class:`~tidal.core.errors.NotFound` subclass for an id or name with nothing stored under it, a
:class:`~tidal.core.errors.StorageError` when the store itself fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from tidal.core.entities import (
    Alias,
    ArchiveOutcome,
    CacheEntry,
    Event,
    Feedback,
    Lease,
    LogCheck,
    LogDay,
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
from tidal.core.tokens import ApiToken

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


@runtime_checkable
class UnitOfWork(Protocol):
    """Calls on a store that commit together. Every metadata port has it, so that a stage which depends on
    one port only can still write a state change and the event that explains it as one unit."""

    def atomic(self) -> AbstractContextManager[None]:
        """A unit of work: every call made on this store in the ``with`` block (on this thread, through any of
        its ports) commits together when it ends, or not at all if it raises or the process dies first. A
        state change and the event that explains it are written this way, so that one is never stored
        without the other."""
        ...


@runtime_checkable
class RunStore(UnitOfWork, Protocol):
    """Pipeline runs, their steps and their tracking data (metrics, params, tags, artifacts).

    Every call that names a run raises :class:`~tidal.core.errors.RunNotFound` when there is no such run.
    Params are fixed once logged: the same value again is a no-op, a different one a StorageError.
    """

    # -- runs and steps ------------------------------------------------------------------------
    def create_run(self, run: Run) -> None:
        """Store a new run; an id that exists already raises StorageError."""
        ...
    def finish_run(
        self, run_id: str, status: RunStatus, ended_at: datetime, *, error: str | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Set the final status, end time and error; ``info`` is merged into the stored info."""
        ...
    def heartbeat_run(self, run_id: str, at: datetime) -> None:
        """Record that the process running ``run_id`` is alive at ``at``."""
        ...
    def get_run(self, run_id: str) -> Run:
        """The run with ``run_id``; a unique prefix of at least 4 characters also matches.

        Raises :class:`~tidal.core.errors.RunNotFound` when there is no such run, or the prefix is too
        short or matches several (the message lists some).
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
    ) -> None:
        """Store metrics, params and tags of a run, all or nothing."""
        ...
    def get_params(self, run_id: str) -> dict[str, str]: ...
    def get_tags(self, run_id: str) -> dict[str, str]: ...
    def get_metrics(self, run_id: str, key: str | None = None) -> list[Metric]:
        """Ordered by key, then step, then timestamp."""
        ...
    def add_run_artifact(self, run_id: str, name: str, digest: str) -> None:
        """Record that the run produced artifact ``name`` with ``digest`` (a later call replaces it)."""
        ...
    def list_run_artifacts(self, run_id: str) -> dict[str, str]: ...


@runtime_checkable
class SnapshotStore(UnitOfWork, Protocol):
    """Snapshot records and the step cache: what the pipeline made, under a key derived from its content
    (a snapshot's digest, a step's cache key), so that the same work is recognised and reused. Writes are
    idempotent by that key."""

    def put_snapshot(self, snapshot: SnapshotInfo) -> None:
        """Idempotent by digest (the first one stored wins)."""
        ...
    def get_snapshot(self, digest: str) -> SnapshotInfo:
        """Raises :class:`~tidal.core.errors.SnapshotNotFound` when unknown."""
        ...
    def list_snapshots(self, project: str | None = None, limit: int = 50) -> list[SnapshotInfo]:
        """Newest first."""
        ...
    def put_cache_entry(self, entry: CacheEntry) -> None:
        """Insert or replace by key."""
        ...
    def get_cache_entry(self, key: str) -> CacheEntry | None: ...
    def latest_cache_entry(self, step: str, project_run_ids: Iterable[str] | None = None) -> CacheEntry | None:
        """The newest entry for ``step`` (optionally among runs ``project_run_ids``), to explain misses."""
        ...


@runtime_checkable
class ModelStore(UnitOfWork, Protocol):
    """The model registry's records (versions and aliases) and the events that explain every decision."""

    def create_model_version(self, mv: ModelVersion) -> ModelVersion:
        """Store ``mv`` under the next version number of ``mv.name`` (1, 2, ...), assigned atomically;
        ``mv.version`` is ignored. Returns the stored version."""
        ...
    def update_model_version(
        self, name: str, version: int, *, state: ModelState | None = None,
        reasons: Sequence[str] | None = None, metrics: Mapping[str, float] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Change the given fields; ``metrics`` and ``info`` are merged into what is stored.
        :class:`~tidal.core.errors.ModelNotFound` for an unknown version."""
        ...
    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """Raises :class:`~tidal.core.errors.ModelNotFound` when unknown."""
        ...
    def list_model_versions(self, name: str | None = None, *, profiles: bool = True) -> list[ModelVersion]:
        """Ordered by name, then version. ``profiles=False``: each version's ``profile`` left empty (``{}``),
        unread: the largest field of a version (a training-data profile), which a list of versions to show
        does not need."""
        ...
    def set_alias(
        self, name: str, alias: str, version: int, at: datetime, *, expected: int | None = None,
    ) -> int | None:
        """Point ``alias`` at ``version`` (:class:`~tidal.core.errors.ModelNotFound` if there is no such
        version); returns the version it pointed at before, if any.

        ``expected``: move it only if it points at that version now (``0``: only if it points nowhere),
        else raise :class:`~tidal.core.errors.AliasMoved` — checked and moved under one lock, so a caller
        that compared a candidate with the champion promotes it only over that very champion."""
        ...
    def get_alias(self, name: str, alias: str) -> Alias | None: ...
    def delete_alias(self, name: str, alias: str) -> None:
        """Remove the alias; removing one that does not exist is a no-op."""
        ...
    def list_aliases(self, name: str | None = None) -> list[Alias]:
        """Ordered by model name, then alias."""
        ...

    # -- events: every decision, with its inputs and reasons ------------------------------------
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


@runtime_checkable
class LoopStore(UnitOfWork, Protocol):
    """What the loop keeps between ticks and between processes: leases (one actor at a time, e.g. one
    controller per workspace), key/value state (schemas, controller state) and monitoring reports."""

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
    def put_state(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``, replacing what was there."""
        ...

    def save_report(self, report: Report) -> None:
        """Store a report (idempotent by ``report.id``: the first one stored wins)."""
        ...
    def get_report(self, report_id: str) -> Report:
        """The report with this id (or a unique prefix of at least 4 characters);
        :class:`~tidal.core.errors.ReportNotFound` if none, or if the prefix is too short or ambiguous."""
        ...
    def list_reports(self, model: str | None = None, limit: int = 50) -> list[Report]:
        """Newest first."""
        ...


@runtime_checkable
class TokenStore(UnitOfWork, Protocol):
    """The management API's tokens (:mod:`tidal.core.tokens`): stored with the SHA-256 of their secret,
    never the secret. A revoked token stays stored (who revoked it, and when), so an event that names it
    can still be read."""

    def create_token(self, token: ApiToken) -> None:
        """Store a new token; StorageError when its id is taken."""
        ...

    def get_token(self, token_id: str) -> ApiToken | None:
        """The token ``token_id`` (revoked or not), or None. Read from the store on every call: a revoke
        made by another process is seen at once."""
        ...

    def list_tokens(self) -> list[ApiToken]:
        """Every token, oldest first."""
        ...

    def revoke_token(self, token_id: str, at: datetime, by: str) -> ApiToken | None:
        """Mark ``token_id`` revoked (a no-op on one revoked already); the token afterwards, or None."""
        ...


@runtime_checkable
class MetadataStore(RunStore, SnapshotStore, ModelStore, LoopStore, TokenStore, Protocol):
    """Every metadata port in one store: what a workspace opens (one database, one set of migrations, and
    units of work that span ports). A stage depends on the port it uses; the composition root owns this
    whole store, and closes it.

    Writes are idempotent where the entity has a natural key (snapshots by digest, cache entries by key,
    params by run and key): writing the same thing twice stores it once.
    """

    def close(self) -> None:
        """Release connections; the store refuses work afterwards (StorageError)."""
        ...


@runtime_checkable
class PredictionLog(Protocol):
    """Served predictions and the labels that arrive for them.

    ``append`` is durable when it returns: the server answers a request only after its predictions are
    committed. Concurrent ``append`` calls share commits (group commit), so durability does not cost
    one disk flush per request.
    """

    def append(self, predictions: Sequence[Prediction]) -> None: ...
    def add_feedback(self, feedback: Sequence[Feedback], *, overwrite: bool = False) -> int:
        """Attach labels; all or nothing. Raises :class:`~tidal.core.errors.FeedbackRejected` for an unknown
        prediction id, or (unless ``overwrite``) for one that already has a label. Returns how many were
        stored. An archived prediction (:meth:`archive`) takes its label like one in the log."""
        ...
    def get(self, prediction_id: str) -> Prediction:
        """One prediction with its label, if any, from the log or the archive;
        :class:`~tidal.core.errors.PredictionNotFound` when unknown."""
        ...
    def window(
        self, *, model: str | None = None, version: int | None = None, last: int | None = None,
        since: datetime | None = None, until: datetime | None = None, labelled: bool | None = None,
        served: bool | None = True, deployment: str | None = None, archived: bool = False,
    ) -> list[Prediction]:
        """Matching predictions, oldest first; ``last`` keeps the newest ``last`` of them. A stored batch that
        cannot be read is skipped (see :meth:`skipped`), never an error for the whole window.

        ``archived``: also the predictions :meth:`archive` moved out of the log (read from their Parquet
        files, with the labels that arrived after they were archived), before the log's own; only the
        archive files of the days the window covers are read."""
        ...
    def archive(self, before: datetime, *, model: str | None = None) -> ArchiveOutcome:
        """Move every prediction made before ``before`` (of ``model``, or of every model) out of the log into
        Parquet files in the artifact store the log was opened with, one per UTC day and model, indexed in
        the log's database. A file is written before it is recorded and the predictions deleted (one
        transaction), so a crash leaves them in the log and at most a file that nothing points at; a day
        archived again merges its new predictions into a new file that holds the earlier file's rows too.
        A label that arrives later for an archived prediction is accepted by :meth:`add_feedback` and read
        back with it. Raises StorageError when the log has no artifact store."""
        ...
    def days(self, *, model: str | None = None) -> list[LogDay]:
        """Per UTC day and model (oldest first): predictions and labels in the log and in the archive."""
        ...
    def count(
        self, *, model: str | None = None, version: int | None = None, since: datetime | None = None,
        labelled: bool | None = None, served: bool | None = True, archived: bool = False,
    ) -> int:
        """How many stored predictions match (unreadable ones included, until they are quarantined).
        ``archived``: archived ones too, with their late labels (from the archive's index alone when only
        ``model``, ``labelled`` and ``served`` filter, so the loop can count every label each tick)."""
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

        Raises :class:`~tidal.core.errors.ArtifactNotFound` when absent and
        :class:`~tidal.core.errors.IntegrityError` when the bytes do not match the digest.
        """
        ...
    def exists(self, digest: str) -> bool: ...
    @property
    def url(self) -> str:
        """Where the artifacts live, for display."""
        ...


@runtime_checkable
class Task(Protocol[R_co]):
    """A call handed to an :class:`Executor`: its result once it has run."""

    #: where it ran, once it has (``{"node", "host", "pid", "attempts"}``); None: in the calling process
    where: dict[str, Any] | None

    def result(self) -> R_co:
        """The call's return value (it waits for it, or, on the local executor, runs it now); what the call
        raised is raised here. A worker that died twice is an :class:`~tidal.core.errors.ExecutorError`."""
        ...
    def done(self) -> bool:
        """Whether :meth:`result` would answer without waiting."""
        ...


@runtime_checkable
class Executor(Protocol):
    """Where a step runs: a call of a step function with its inputs as arguments, its outputs returned.

    ``fn`` is a module-level function (never a closure or a lambda: it may be sent to another process by
    name) and ``args`` are plain values (frames, specs, fitted models), never a store: a step reads nothing
    but its arguments, and the caller stores what it returns. So a step can run in another process or on
    another machine, and the stores stay with the process that opened them.
    """

    name: str

    def run(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> R:
        """``fn(*args, **kwargs)``, wherever this executor runs things; waits for it."""
        ...
    def submit(self, fn: Callable[..., R], /, *args: Any, **kwargs: Any) -> Task[R]:
        """Start ``fn(*args, **kwargs)`` (the local executor runs it when its result is asked for)."""
        ...
    def wait(self, tasks: Sequence[Task[Any]]) -> list[Task[Any]]:
        """The tasks of ``tasks`` that have finished: at least one (it waits for the first, or, on the local
        executor, runs it)."""
        ...
    @property
    def slots(self) -> int:
        """How many tasks it runs at once (1: one after another)."""
        ...
    def close(self) -> None:
        """Release what this executor started (a local Ray it started); never a cluster it only joined."""
        ...


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime: ...
