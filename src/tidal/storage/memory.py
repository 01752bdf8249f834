"""The in-memory metadata store: the test adapter of :class:`~tidal.core.ports.MetadataStore`.

It keeps the same encoded rows as the SQL store (:mod:`tidal.storage._codec`) in plain dicts behind one
lock, so it behaves exactly like SQLite and PostgreSQL: JSON round trips, UTC datetimes, param
conflicts, RunNotFound for unknown runs, ordering. The contract suites in ``tests/contract`` (one per
port) hold all three to the same behaviour. Its methods come in the order of the ports: runs, snapshots
and the step cache, models and events, then leases, state and reports.
"""

from __future__ import annotations

import copy
import dataclasses
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from tidal.core.entities import (
    Alias,
    CacheEntry,
    Event,
    Lease,
    Metric,
    ModelState,
    ModelVersion,
    Report,
    Run,
    RunStatus,
    SnapshotInfo,
    StepRecord,
)
from tidal.core.errors import StorageError
from tidal.core.tokens import ApiToken
from tidal.storage import _codec as codec

_Row = dict[str, Any]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)  # stands in for a missing timestamp, which sorts first anyway


def _desc(row: Mapping[str, Any], *keys: str) -> tuple[Any, ...]:
    """The sort key of ``row`` by ``keys``."""
    return tuple(row[k] for k in keys)


class MemoryMetadataStore:
    """The :class:`~tidal.core.ports.MetadataStore` in process memory (``memory://``); thread-safe.

    Nothing is persisted: every instance starts empty.
    """

    url = "memory://"

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._closed = False
        self._runs: dict[str, _Row] = {}
        self._steps: dict[str, dict[str, _Row]] = {}
        self._params: dict[str, dict[str, str]] = {}
        self._tags: dict[str, dict[str, str]] = {}
        # (insertion number, row): the number orders metrics that tie on key, step and timestamp.
        self._metrics: dict[str, list[tuple[int, _Row]]] = {}
        self._metric_seq = 0
        self._artifacts: dict[str, dict[str, str]] = {}
        self._snapshots: dict[str, _Row] = {}
        self._cache: dict[str, _Row] = {}
        self._versions: dict[tuple[str, int], _Row] = {}
        self._aliases: dict[tuple[str, str], _Row] = {}
        self._events: list[_Row] = []
        self._state: dict[str, str] = {}
        self._reports: dict[str, _Row] = {}
        self._leases: dict[str, tuple[str, datetime]] = {}
        self._tokens: dict[str, ApiToken] = {}

    def __repr__(self) -> str:
        return "MemoryMetadataStore()"

    def __enter__(self) -> MemoryMetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Drop everything; the store cannot be used afterwards (like a closed SQL store)."""
        with self._lock:
            self._closed = True

    def _open(self) -> threading.RLock:
        if self._closed:
            raise StorageError("the metadata store memory:// is closed",
                               hint="open a new one with tidal.storage.open_metadata_store")
        return self._lock

    @contextmanager
    def atomic(self, doing: str = "a unit of work") -> Iterator[None]:
        """Every call made in the block commits together, or none does: the store's state is copied at the
        start and put back if the block raises. Other threads wait for the block to end."""
        with self._open():
            saved = copy.deepcopy({k: v for k, v in vars(self).items() if k not in ("_lock", "_closed")})
            try:
                yield
            except BaseException:
                vars(self).update(saved)
                raise

    def _require_run(self, run_id: str) -> None:
        if run_id not in self._runs:
            raise codec.no_run(run_id)

    # -- runs and steps -----------------------------------------------------------------------------------

    def create_run(self, run: Run) -> None:
        """Store a new run; a run id that exists already raises StorageError."""
        row = codec.encode_run(run)
        with self._open():
            if run.id in self._runs:
                raise codec.duplicate_run(run.id)
            self._runs[run.id] = row

    def finish_run(
        self, run_id: str, status: RunStatus, ended_at: datetime, *, error: str | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Set the final status, end time and error; ``info`` is merged into the stored info."""
        values: _Row = {"status": RunStatus(status).value, "ended_at": codec.utc(ended_at), "error": error}
        with self._open():
            self._require_run(run_id)
            row = self._runs[run_id]
            if info is not None:
                values["info"] = codec.dumps({**codec.loads(row["info"]), **info}, "run.info")
            row.update(values)

    def heartbeat_run(self, run_id: str, at: datetime) -> None:
        """Record that the process running ``run_id`` is alive at ``at``; RunNotFound for an unknown run."""
        with self._open():
            self._require_run(run_id)
            self._runs[run_id]["heartbeat_at"] = codec.utc(at)

    def get_run(self, run_id: str) -> Run:
        """The run with ``run_id``, or the only run whose id starts with it (4 characters or more)."""
        with self._open():
            if run_id in self._runs:
                return codec.decode_run(self._runs[run_id])
            if len(run_id) < codec.MIN_RUN_PREFIX:
                raise codec.short_run_prefix(run_id)
            matches = sorted(k for k in self._runs if k.startswith(run_id))
            if not matches:
                raise codec.no_run(run_id)
            if len(matches) > 1:
                raise codec.ambiguous_run(run_id, matches)
            return codec.decode_run(self._runs[matches[0]])

    def list_runs(self, project: str | None = None, limit: int = 50) -> list[Run]:
        """Newest first (by start time, then id)."""
        if limit <= 0:
            return []
        with self._open():
            rows = [r for r in self._runs.values() if project is None or r["project"] == project]
            rows.sort(key=lambda r: _desc(r, "started_at", "id"), reverse=True)
            return [codec.decode_run(r) for r in rows[:limit]]

    def save_step(self, step: StepRecord) -> None:
        """Insert or replace the step ``(run_id, name)``."""
        row = codec.encode_step(step)
        with self._open():
            self._require_run(step.run_id)
            self._steps.setdefault(step.run_id, {})[step.name] = row

    def list_steps(self, run_id: str) -> list[StepRecord]:
        """In ``position`` order (then name)."""
        with self._open():
            self._require_run(run_id)
            rows = sorted(self._steps.get(run_id, {}).values(), key=lambda r: _desc(r, "position", "name"))
            return [codec.decode_step(r) for r in rows]

    # -- tracking -------------------------------------------------------------------------------------------

    def log_batch(
        self, run_id: str, *, metrics: Sequence[Metric] = (), params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Store metrics, params and tags of a run, all or nothing."""
        metric_rows = [codec.encode_metric(run_id, m) for m in metrics]
        new_params = {k: str(v) for k, v in (params or {}).items()}
        new_tags = {k: str(v) for k, v in (tags or {}).items()}
        with self._open():
            self._require_run(run_id)
            stored = self._params.setdefault(run_id, {})
            for key, value in new_params.items():  # check everything before changing anything
                if stored.get(key, value) != value:
                    raise codec.param_conflict(run_id, key, stored[key], value)
            stored.update(new_params)
            self._tags.setdefault(run_id, {}).update(new_tags)
            rows = self._metrics.setdefault(run_id, [])
            for row in metric_rows:
                self._metric_seq += 1
                rows.append((self._metric_seq, row))

    def get_params(self, run_id: str) -> dict[str, str]:
        """The run's params, by key; RunNotFound for an unknown run."""
        with self._open():
            self._require_run(run_id)
            return dict(sorted(self._params.get(run_id, {}).items()))

    def get_tags(self, run_id: str) -> dict[str, str]:
        """The run's tags, by key; RunNotFound for an unknown run."""
        with self._open():
            self._require_run(run_id)
            return dict(sorted(self._tags.get(run_id, {}).items()))

    def get_metrics(self, run_id: str, key: str | None = None) -> list[Metric]:
        """Ordered by key, then step, then timestamp (none first), then the order they were logged."""
        with self._open():
            self._require_run(run_id)
            rows = [(n, r) for n, r in self._metrics.get(run_id, []) if key is None or r["key"] == key]

        def order(item: tuple[int, _Row]) -> tuple[Any, ...]:
            n, r = item
            ts = r["timestamp"]
            return (r["key"], r["step"], ts is not None, ts if ts is not None else _EPOCH, n)

        return [codec.decode_metric(r) for _, r in sorted(rows, key=order)]

    def add_run_artifact(self, run_id: str, name: str, digest: str) -> None:
        """Record that the run produced artifact ``name`` with ``digest`` (a later call replaces it)."""
        with self._open():
            self._require_run(run_id)
            self._artifacts.setdefault(run_id, {})[name] = digest

    def list_run_artifacts(self, run_id: str) -> dict[str, str]:
        """Artifact name → digest, by name."""
        with self._open():
            self._require_run(run_id)
            return dict(sorted(self._artifacts.get(run_id, {}).items()))

    # -- snapshots ------------------------------------------------------------------------------------------

    def put_snapshot(self, snapshot: SnapshotInfo) -> None:
        """Store a snapshot; idempotent by digest (the first one stored wins)."""
        row = codec.encode_snapshot(snapshot)
        with self._open():
            self._snapshots.setdefault(snapshot.digest, row)

    def get_snapshot(self, digest: str) -> SnapshotInfo:
        """The snapshot with ``digest``; SnapshotNotFound when unknown."""
        with self._open():
            row = self._snapshots.get(digest)
        if row is None:
            raise codec.no_snapshot(digest)
        return codec.decode_snapshot(row)

    def list_snapshots(self, project: str | None = None, limit: int = 50) -> list[SnapshotInfo]:
        """Newest first (by creation time, then digest)."""
        if limit <= 0:
            return []
        with self._open():
            rows = [r for r in self._snapshots.values() if project is None or r["project"] == project]
        rows.sort(key=lambda r: _desc(r, "created_at", "digest"), reverse=True)
        return [codec.decode_snapshot(r) for r in rows[:limit]]

    # -- step cache -----------------------------------------------------------------------------------------

    def put_cache_entry(self, entry: CacheEntry) -> None:
        """Insert or replace by key."""
        row = codec.encode_cache_entry(entry)
        with self._open():
            self._cache[entry.key] = row

    def get_cache_entry(self, key: str) -> CacheEntry | None:
        """The cache entry under ``key``, or None."""
        with self._open():
            row = self._cache.get(key)
        return None if row is None else codec.decode_cache_entry(row)

    def latest_cache_entry(
        self, step: str, project_run_ids: Iterable[str] | None = None,
    ) -> CacheEntry | None:
        """The newest entry for ``step`` (by creation time, then key), optionally among some runs only."""
        ids = None if project_run_ids is None else set(project_run_ids)
        with self._open():
            rows = [r for r in self._cache.values()
                    if r["step"] == step and (ids is None or r["run_id"] in ids)]
        if not rows:
            return None
        return codec.decode_cache_entry(max(rows, key=lambda r: _desc(r, "created_at", "key")))

    # -- model registry -------------------------------------------------------------------------------------

    def create_model_version(self, mv: ModelVersion) -> ModelVersion:
        """Store ``mv`` as the next version of ``mv.name`` (1, 2, ...); ``mv.version`` is ignored."""
        row = codec.encode_model_version(mv, 0)
        with self._open():
            latest = max((v for n, v in self._versions if n == mv.name), default=0)
            row["version"] = latest + 1
            self._versions[(mv.name, row["version"])] = row
        return codec.decode_model_version(row)

    def update_model_version(
        self, name: str, version: int, *, state: ModelState | None = None,
        reasons: Sequence[str] | None = None, metrics: Mapping[str, float] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Change the given fields; ``metrics`` and ``info`` are merged into what is stored."""
        with self._open():
            row = self._versions.get((name, version))
            if row is None:
                raise codec.no_model_version(name, version)
            row.update(codec.model_version_changes(row, state=state, reasons=reasons, metrics=metrics,
                                                   info=info))
            return codec.decode_model_version(row)

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """Version ``version`` of model ``name``; ModelNotFound when unknown."""
        with self._open():
            row = self._versions.get((name, version))
        if row is None:
            raise codec.no_model_version(name, version)
        return codec.decode_model_version(row)

    def list_model_versions(self, name: str | None = None, *, profiles: bool = True) -> list[ModelVersion]:
        """Ordered by name, then version; ``profiles=False``: each ``profile`` left empty."""
        with self._open():
            rows = [r for (n, _), r in sorted(self._versions.items()) if name is None or n == name]
            return [codec.decode_model_version(r, profile=profiles) for r in rows]

    def set_alias(
        self, name: str, alias: str, version: int, at: datetime, *, expected: int | None = None,
    ) -> int | None:
        """Point ``alias`` at an existing ``version`` (else ModelNotFound); returns the version it pointed at.
        ``expected``: only if the alias points there now (0: nowhere), else AliasMoved (see the port)."""
        row = {"name": name, "alias": alias, "version": int(version), "updated_at": codec.utc(at)}
        with self._open():
            if (name, version) not in self._versions:
                raise codec.no_model_version(name, version)
            stored = self._aliases.get((name, alias))
            previous = None if stored is None else int(stored["version"])
            codec.check_expected_alias(name, alias, previous, expected)
            self._aliases[(name, alias)] = row
        return previous

    def get_alias(self, name: str, alias: str) -> Alias | None:
        """The alias ``alias`` of model ``name``, or None."""
        with self._open():
            row = self._aliases.get((name, alias))
        return None if row is None else codec.decode_alias(row)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove the alias; removing one that does not exist is a no-op."""
        with self._open():
            self._aliases.pop((name, alias), None)

    def list_aliases(self, name: str | None = None) -> list[Alias]:
        """Ordered by model name, then alias."""
        with self._open():
            rows = [r for (n, _), r in sorted(self._aliases.items()) if name is None or n == name]
        return [codec.decode_alias(r) for r in rows]

    # -- events ---------------------------------------------------------------------------------------------

    def append_event(self, event: Event) -> Event:
        """Store the event (its ``id`` is ignored); returns it with its new, increasing id."""
        row = codec.encode_event(event)
        with self._open():
            row["id"] = len(self._events) + 1
            self._events.append(row)
        return codec.decode_event(row)

    def list_events(
        self, *, subject: str | None = None, kind: str | None = None, since_id: int | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Oldest first among the newest ``limit`` matches; ``subject`` ending in ``*`` is a prefix."""
        if limit <= 0:
            return []
        prefix = None if subject is None else codec.subject_prefix(subject)

        def matches(r: _Row) -> bool:
            if subject is not None and not (
                r["subject"].startswith(prefix) if prefix is not None else r["subject"] == subject
            ):
                return False
            if kind is not None and r["kind"] != kind:
                return False
            return since_id is None or r["id"] > since_id

        with self._open():
            rows = [r for r in self._events if matches(r)]
        return [codec.decode_event(r) for r in rows[-limit:]]

    # -- leases ---------------------------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, until: datetime, now: datetime, *, force: bool = False) -> bool:
        """Take or renew the lease ``name`` for ``owner`` until ``until``; True when ``owner`` holds it
        afterwards (it was free, expired at ``now``, or ``owner``'s already, or ``force``), False otherwise."""
        with self._open():
            held = self._leases.get(name)
            if not force and held is not None and held[0] != owner and held[1] > codec.utc(now):
                return False
            self._leases[name] = (owner, codec.utc(until))
            return True

    def get_lease(self, name: str) -> Lease | None:
        """Who holds the lease ``name`` and until when (expired or not), or None."""
        with self._open():
            held = self._leases.get(name)
        return None if held is None else Lease(name=name, owner=held[0], until=held[1])

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (a no-op otherwise)."""
        with self._open():
            if self._leases.get(name, ("", None))[0] == owner:
                del self._leases[name]

    # -- state ----------------------------------------------------------------------------------------------

    def get_state(self, key: str) -> Any | None:
        """The JSON value stored under ``key``, or None."""
        with self._open():
            text = self._state.get(key)
        return None if text is None else codec.loads(text)

    def put_state(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``, replacing what was there."""
        text = codec.dumps(value, f"state {key!r}")
        with self._open():
            self._state[key] = text

    # -- API tokens -----------------------------------------------------------------------------------------

    def create_token(self, token: ApiToken) -> None:
        """Store a new token; StorageError when its id is taken."""
        with self._open():
            if token.id in self._tokens:
                raise StorageError(f"a token with id {token.id} exists already", hint="create it again")
            self._tokens[token.id] = token

    def get_token(self, token_id: str) -> ApiToken | None:
        """The token ``token_id`` (revoked or not), or None."""
        with self._open():
            return self._tokens.get(token_id)

    def list_tokens(self) -> list[ApiToken]:
        """Every token, oldest first."""
        with self._open():
            return sorted(self._tokens.values(), key=lambda t: (t.created_at, t.id))

    def revoke_token(self, token_id: str, at: datetime, by: str) -> ApiToken | None:
        """Mark ``token_id`` revoked (a no-op on one revoked already); the token afterwards, or None."""
        with self._open():
            token = self._tokens.get(token_id)
            if token is not None and token.revoked_at is None:
                token = self._tokens[token_id] = dataclasses.replace(token, revoked_at=codec.utc(at), revoked_by=by)
            return token

    # -- monitoring reports ---------------------------------------------------------------------------------

    def save_report(self, report: Report) -> None:
        """Store a report; idempotent by ``report.id`` (the first one stored wins: reports are records)."""
        row = codec.encode_report(report)
        with self._open():
            self._reports.setdefault(report.id, row)

    def get_report(self, report_id: str) -> Report:
        """The report ``report_id``, or the only one whose id starts with it (4 characters or more)."""
        with self._open():
            if report_id in self._reports:
                return codec.decode_report(self._reports[report_id])
            if len(report_id) < codec.MIN_RUN_PREFIX:
                raise codec.short_report_prefix(report_id)
            matches = sorted(k for k in self._reports if k.startswith(report_id))
            if not matches:
                raise codec.no_report(report_id)
            if len(matches) > 1:
                raise codec.ambiguous_report(report_id, matches)
            return codec.decode_report(self._reports[matches[0]])

    def list_reports(self, model: str | None = None, limit: int = 50) -> list[Report]:
        """Newest first (by creation time, then id)."""
        if limit <= 0:
            return []
        with self._open():
            rows = [r for r in self._reports.values() if model is None or r["model"] == model]
        rows.sort(key=lambda r: _desc(r, "created_at", "id"), reverse=True)
        return [codec.decode_report(r) for r in rows[:limit]]


__all__ = ["MemoryMetadataStore"]
