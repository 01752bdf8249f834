"""The SQL metadata store: one SQLAlchemy Core adapter for SQLite and PostgreSQL, chosen by URL.

Opening a store migrates its database to the current schema (:mod:`tidal.storage.sql_migrate`); each
thread then keeps its own connection (:mod:`tidal.storage.sql_engine`), and every public method is one
transaction. Rows are encoded and decoded by :mod:`tidal.storage._codec`, the same functions the
in-memory adapter uses, so both behave alike.

Decisions worth knowing:

- **Params are fixed once logged.** Logging the same value again is a no-op; a different value for an
  existing ``(run, key)`` raises :class:`~tidal.core.errors.StorageError` and the whole batch is rolled
  back. Tags may be overwritten.
- **Unknown runs raise KeyError**, for reads (``get_params``, ``list_steps``, ...) and writes alike.
- **Read-modify-write is serialised**: on SQLite by ``BEGIN IMMEDIATE``, on PostgreSQL by a
  transaction-scoped advisory lock per model name (version numbers, aliases) and one for events (so
  event ids become visible in increasing order, and ``since_id`` readers never skip one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from tidal.core.entities import (
    Alias,
    CacheEntry,
    Event,
    Metric,
    ModelState,
    ModelVersion,
    Run,
    RunStatus,
    SnapshotInfo,
    StepRecord,
)
from tidal.storage import _codec as codec
from tidal.storage import sql_schema as t
from tidal.storage.sql_engine import (
    ThreadConnections,
    Transaction,
    create_engine_for,
    is_fk_violation,
    is_unique_violation,
    redact,
    resolve_url,
)
from tidal.storage.sql_leases import SqlLeases
from tidal.storage.sql_migrate import ensure_schema
from tidal.storage.sql_reports import SqlReports

#: Run ids per query in ``latest_cache_entry`` (well under SQLite's and PostgreSQL's parameter limits).
_CHUNK = 500


def _upsert(table: sa.Table, dialect: str, keys: Sequence[str], *, update: bool) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` (every other column) or ``DO NOTHING``."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    changed = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=changed)


class SqlMetadataStore(SqlReports, SqlLeases):
    """The :class:`~tidal.core.ports.MetadataStore` on SQLite (``sqlite:///path/to/tidal.db``) or
    PostgreSQL (``postgresql+psycopg://user@host:5432/db``).

    Thread-safe: each thread uses its own connection. Migrates the database on open. Errors from the
    database are raised as :class:`~tidal.core.errors.StorageError` naming the store (without password).
    """

    def __init__(self, url: str) -> None:
        self._shown = redact(url)
        engine = create_engine_for(resolve_url(url))
        self._conns = ThreadConnections(engine, self._shown)
        self.dialect = engine.dialect.name
        try:
            ensure_schema(self._conns.get(), self._shown)
        except BaseException:
            self._conns.close()
            raise
        # Statements are built once: SQLAlchemy then finds their compiled form in its cache by identity
        # of structure, which keeps the per-call cost of the hot paths (log_batch) small.
        d = self.dialect
        self._ins_metric = t.metrics.insert()
        self._ins_param = _upsert(t.params, d, ["run_id", "key"], update=False)
        self._upsert_tag = _upsert(t.tags, d, ["run_id", "key"], update=True)
        self._upsert_step = _upsert(t.steps, d, ["run_id", "name"], update=True)
        self._upsert_artifact = _upsert(t.run_artifacts, d, ["run_id", "name"], update=True)
        self._ins_snapshot = _upsert(t.snapshots, d, ["digest"], update=False)
        self._upsert_cache = _upsert(t.cache_entries, d, ["key"], update=True)
        self._upsert_alias = _upsert(t.aliases, d, ["name", "alias"], update=True)
        self._upsert_state = _upsert(t.state, d, ["key"], update=True)
        self._run_exists = sa.select(sa.literal(1)).where(t.runs.c.id == sa.bindparam("run_id"))
        self._params_of = sa.select(t.params.c.key, t.params.c.value).where(
            t.params.c.run_id == sa.bindparam("run_id"))

    @property
    def url(self) -> str:
        """The store URL, password hidden."""
        return self._shown

    def __repr__(self) -> str:
        return f"SqlMetadataStore({self._shown!r})"

    def __enter__(self) -> SqlMetadataStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's connection; the store cannot be used afterwards."""
        self._conns.close()

    @contextmanager
    def atomic(self, doing: str = "a unit of work") -> Iterator[None]:
        """Every store call made in the block on this thread commits together at its end, or none does (an
        error, or the process dying before the commit). On SQLite the block holds the write lock: keep it
        short (no training, no network calls inside)."""
        with self._write(doing) as conn:
            # Nearly every unit of work records an event, and appending one takes the events lock: take it
            # first, so that every transaction takes its locks in the same order (events, then a model's)
            # and two of them cannot deadlock on PostgreSQL.
            self._lock(conn, "events")
            yield

    def _write(self, doing: str) -> Transaction:
        return Transaction(self._conns, True, doing)

    def _read(self, doing: str) -> Transaction:
        return Transaction(self._conns, False, doing)

    def _lock(self, conn: Connection, key: str) -> None:
        """Serialise writers on ``key`` until commit (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
        if self.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})

    def _require_run(self, conn: Connection, run_id: str) -> None:
        if conn.execute(self._run_exists, {"run_id": run_id}).first() is None:
            raise codec.no_run(run_id)

    # -- runs and steps -----------------------------------------------------------------------------------

    def create_run(self, run: Run) -> None:
        """Store a new run; a run id that exists already raises StorageError."""
        row = codec.encode_run(run)
        with self._write("creating a run") as conn:
            try:
                conn.execute(t.runs.insert(), row)
            except sa_exc.IntegrityError as exc:
                if is_unique_violation(exc):
                    raise codec.duplicate_run(run.id) from exc
                raise

    def finish_run(
        self, run_id: str, status: RunStatus, ended_at: datetime, *, error: str | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> None:
        """Set the final status, end time and error; ``info`` is merged into the stored info."""
        values: dict[str, Any] = {"status": RunStatus(status).value, "ended_at": codec.utc(ended_at),
                                  "error": error}
        with self._write("finishing a run") as conn:
            stored = conn.execute(
                sa.select(t.runs.c.info).where(t.runs.c.id == run_id).with_for_update()
            ).scalar()
            if stored is None:
                raise codec.no_run(run_id)
            if info is not None:
                values["info"] = codec.dumps({**codec.loads(stored), **info}, "run.info")
            conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(values))

    def heartbeat_run(self, run_id: str, at: datetime) -> None:
        """Record that the process running ``run_id`` is alive at ``at``; KeyError for an unknown run."""
        with self._write("recording a run heartbeat") as conn:
            done = conn.execute(t.runs.update().where(t.runs.c.id == run_id).values(heartbeat_at=codec.utc(at)))
            if done.rowcount == 0:
                raise codec.no_run(run_id)

    def get_run(self, run_id: str) -> Run:
        """The run with ``run_id``, or the only run whose id starts with it (4 characters or more)."""
        with self._read("reading a run") as conn:
            row = conn.execute(sa.select(t.runs).where(t.runs.c.id == run_id)).mappings().first()
            if row is not None:
                return codec.decode_run(row)
            if len(run_id) < codec.MIN_RUN_PREFIX:
                raise codec.short_run_prefix(run_id)
            rows = conn.execute(
                sa.select(t.runs).where(
                    t.runs.c.id.startswith(run_id, autoescape=True),
                    # LIKE ignores case on SQLite: compare exactly as well.
                    sa.func.substr(t.runs.c.id, 1, len(run_id)) == run_id,
                ).order_by(t.runs.c.id).limit(6)
            ).mappings().all()
        if not rows:
            raise codec.no_run(run_id)
        if len(rows) > 1:
            raise codec.ambiguous_run(run_id, [r["id"] for r in rows])
        return codec.decode_run(rows[0])

    def list_runs(self, project: str | None = None, limit: int = 50) -> list[Run]:
        """Newest first (by start time, then id)."""
        if limit <= 0:
            return []
        query = sa.select(t.runs).order_by(t.runs.c.started_at.desc(), t.runs.c.id.desc()).limit(limit)
        if project is not None:
            query = query.where(t.runs.c.project == project)
        with self._read("listing runs") as conn:
            return [codec.decode_run(r) for r in conn.execute(query).mappings()]

    def save_step(self, step: StepRecord) -> None:
        """Insert or replace the step ``(run_id, name)``."""
        row = codec.encode_step(step)
        with self._write("saving a step") as conn:
            try:
                conn.execute(self._upsert_step, row)
            except sa_exc.IntegrityError as exc:
                if is_fk_violation(exc):
                    raise codec.no_run(step.run_id) from exc
                raise

    def list_steps(self, run_id: str) -> list[StepRecord]:
        """In ``position`` order (then name)."""
        query = sa.select(t.steps).where(t.steps.c.run_id == run_id).order_by(
            t.steps.c.position, t.steps.c.name)
        with self._read("listing steps") as conn:
            rows = conn.execute(query).mappings().all()
            if not rows:
                self._require_run(conn, run_id)
        return [codec.decode_step(r) for r in rows]

    # -- tracking -------------------------------------------------------------------------------------------

    def log_batch(
        self, run_id: str, *, metrics: Sequence[Metric] = (), params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Store metrics, params and tags of a run in one transaction (executemany per table)."""
        metric_rows = [codec.encode_metric(run_id, m) for m in metrics]
        param_rows = [{"run_id": run_id, "key": k, "value": str(v)} for k, v in (params or {}).items()]
        tag_rows = [{"run_id": run_id, "key": k, "value": str(v)} for k, v in (tags or {}).items()]
        with self._write("logging to a run") as conn:
            try:
                if param_rows:
                    self._insert_params(conn, run_id, param_rows)
                if metric_rows:
                    # A single row goes through execute(), not executemany(): measurably cheaper.
                    conn.execute(self._ins_metric, metric_rows[0] if len(metric_rows) == 1 else metric_rows)
                if tag_rows:
                    conn.execute(self._upsert_tag, tag_rows)
                if not (param_rows or metric_rows or tag_rows):
                    self._require_run(conn, run_id)
            except sa_exc.IntegrityError as exc:
                if is_fk_violation(exc):
                    raise codec.no_run(run_id) from exc
                raise

    def _insert_params(self, conn: Connection, run_id: str, rows: list[dict[str, Any]]) -> None:
        # Insert what is new, then compare with what is stored: this also catches a concurrent writer
        # that stored a different value first (its row is visible once ON CONFLICT has waited for it).
        conn.execute(self._ins_param, rows)
        stored = dict(conn.execute(self._params_of, {"run_id": run_id}).all())
        for row in rows:
            old = stored.get(row["key"], row["value"])
            if old != row["value"]:
                raise codec.param_conflict(run_id, row["key"], old, row["value"])

    def get_params(self, run_id: str) -> dict[str, str]:
        """The run's params, by key; KeyError for an unknown run."""
        return self._key_values(t.params, run_id, "reading params")

    def get_tags(self, run_id: str) -> dict[str, str]:
        """The run's tags, by key; KeyError for an unknown run."""
        return self._key_values(t.tags, run_id, "reading tags")

    def _key_values(self, table: sa.Table, run_id: str, doing: str) -> dict[str, str]:
        query = sa.select(table.c.key, table.c.value).where(table.c.run_id == run_id).order_by(table.c.key)
        with self._read(doing) as conn:
            values = dict(conn.execute(query).all())
            if not values:
                self._require_run(conn, run_id)
        return values

    def get_metrics(self, run_id: str, key: str | None = None) -> list[Metric]:
        """Ordered by key, then step, then timestamp (none first), then the order they were logged."""
        m = t.metrics.c
        query = sa.select(m.key, m.value, m.step, m.timestamp).where(m.run_id == run_id).order_by(
            m.key, m.step, m.timestamp.asc().nulls_first(), m.id)
        if key is not None:
            query = query.where(m.key == key)
        with self._read("reading metrics") as conn:
            rows = conn.execute(query).mappings().all()
            if not rows:
                self._require_run(conn, run_id)
        return [codec.decode_metric(r) for r in rows]

    def add_run_artifact(self, run_id: str, name: str, digest: str) -> None:
        """Record that the run produced artifact ``name`` with ``digest`` (a later call replaces it)."""
        with self._write("recording a run artifact") as conn:
            try:
                conn.execute(self._upsert_artifact, {"run_id": run_id, "name": name, "digest": digest})
            except sa_exc.IntegrityError as exc:
                if is_fk_violation(exc):
                    raise codec.no_run(run_id) from exc
                raise

    def list_run_artifacts(self, run_id: str) -> dict[str, str]:
        """Artifact name → digest, by name."""
        a = t.run_artifacts.c
        query = sa.select(a.name, a.digest).where(a.run_id == run_id).order_by(a.name)
        with self._read("listing run artifacts") as conn:
            values = dict(conn.execute(query).all())
            if not values:
                self._require_run(conn, run_id)
        return values

    # -- snapshots ------------------------------------------------------------------------------------------

    def put_snapshot(self, snapshot: SnapshotInfo) -> None:
        """Store a snapshot; idempotent by digest (the first one stored wins)."""
        row = codec.encode_snapshot(snapshot)
        with self._write("storing a snapshot") as conn:
            conn.execute(self._ins_snapshot, row)

    def get_snapshot(self, digest: str) -> SnapshotInfo:
        """The snapshot with ``digest``; KeyError when unknown."""
        with self._read("reading a snapshot") as conn:
            query = sa.select(t.snapshots).where(t.snapshots.c.digest == digest)
            row = conn.execute(query).mappings().first()
        if row is None:
            raise codec.no_snapshot(digest)
        return codec.decode_snapshot(row)

    def list_snapshots(self, project: str | None = None, limit: int = 50) -> list[SnapshotInfo]:
        """Newest first (by creation time, then digest)."""
        if limit <= 0:
            return []
        s = t.snapshots.c
        query = sa.select(t.snapshots).order_by(s.created_at.desc(), s.digest.desc()).limit(limit)
        if project is not None:
            query = query.where(s.project == project)
        with self._read("listing snapshots") as conn:
            return [codec.decode_snapshot(r) for r in conn.execute(query).mappings()]

    # -- step cache -----------------------------------------------------------------------------------------

    def put_cache_entry(self, entry: CacheEntry) -> None:
        """Insert or replace by key."""
        row = codec.encode_cache_entry(entry)
        with self._write("storing a cache entry") as conn:
            conn.execute(self._upsert_cache, row)

    def get_cache_entry(self, key: str) -> CacheEntry | None:
        """The cache entry under ``key``, or None."""
        c = t.cache_entries.c
        with self._read("reading a cache entry") as conn:
            row = conn.execute(sa.select(t.cache_entries).where(c.key == key)).mappings().first()
        return None if row is None else codec.decode_cache_entry(row)

    def latest_cache_entry(
        self, step: str, project_run_ids: Iterable[str] | None = None,
    ) -> CacheEntry | None:
        """The newest entry for ``step`` (by creation time, then key), optionally among some runs only."""
        c = t.cache_entries.c
        base = sa.select(t.cache_entries).where(c.step == step).order_by(
            c.created_at.desc(), c.key.desc()).limit(1)
        if project_run_ids is None:
            queries = [base]
        else:
            ids = list(dict.fromkeys(project_run_ids))
            queries = [base.where(c.run_id.in_(ids[i:i + _CHUNK])) for i in range(0, len(ids), _CHUNK)]
        with self._read("reading the step cache") as conn:
            found = [r for q in queries if (r := conn.execute(q).mappings().first()) is not None]
        if not found:
            return None
        return codec.decode_cache_entry(max(found, key=lambda r: (r["created_at"], r["key"])))

    # -- model registry -------------------------------------------------------------------------------------

    def create_model_version(self, mv: ModelVersion) -> ModelVersion:
        """Store ``mv`` as the next version of ``mv.name`` (1, 2, ...); ``mv.version`` is ignored."""
        row = codec.encode_model_version(mv, 0)
        v = t.model_versions.c
        with self._write("registering a model version") as conn:
            self._lock(conn, f"model:{mv.name}")
            latest = conn.execute(sa.select(sa.func.max(v.version)).where(v.name == mv.name)).scalar()
            row["version"] = (latest or 0) + 1
            conn.execute(t.model_versions.insert(), row)
        return codec.decode_model_version(row)

    def update_model_version(
        self, name: str, version: int, *, state: ModelState | None = None,
        reasons: Sequence[str] | None = None, metrics: Mapping[str, float] | None = None,
        info: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Change the given fields; ``metrics`` and ``info`` are merged into what is stored."""
        v = t.model_versions.c
        where = (v.name == name) & (v.version == version)
        with self._write("updating a model version") as conn:
            row = conn.execute(sa.select(t.model_versions).where(where).with_for_update()).mappings().first()
            if row is None:
                raise codec.no_model_version(name, version)
            changes = codec.model_version_changes(row, state=state, reasons=reasons, metrics=metrics,
                                                  info=info)
            if changes:
                conn.execute(t.model_versions.update().where(where).values(changes))
        return codec.decode_model_version({**row, **changes})

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """Version ``version`` of model ``name``; KeyError when unknown."""
        v = t.model_versions.c
        with self._read("reading a model version") as conn:
            row = conn.execute(
                sa.select(t.model_versions).where(v.name == name, v.version == version)
            ).mappings().first()
        if row is None:
            raise codec.no_model_version(name, version)
        return codec.decode_model_version(row)

    def list_model_versions(self, name: str | None = None) -> list[ModelVersion]:
        """Ordered by name, then version."""
        v = t.model_versions.c
        query = sa.select(t.model_versions).order_by(v.name, v.version)
        if name is not None:
            query = query.where(v.name == name)
        with self._read("listing model versions") as conn:
            return [codec.decode_model_version(r) for r in conn.execute(query).mappings()]

    def set_alias(
        self, name: str, alias: str, version: int, at: datetime, *, expected: int | None = None,
    ) -> int | None:
        """Point ``alias`` at an existing ``version`` (else KeyError); returns the version it pointed at.
        ``expected``: only if the alias points there now (0: nowhere), else AliasMoved (see the port)."""
        v, a = t.model_versions.c, t.aliases.c
        row = {"name": name, "alias": alias, "version": int(version), "updated_at": codec.utc(at)}
        with self._write("moving an alias") as conn:
            self._lock(conn, f"model:{name}")
            exists = sa.select(sa.literal(1)).where(v.name == name, v.version == version)
            if conn.execute(exists).first() is None:
                raise codec.no_model_version(name, version)
            previous = conn.execute(sa.select(a.version).where(a.name == name, a.alias == alias)).scalar()
            codec.check_expected_alias(name, alias, previous, expected)
            conn.execute(self._upsert_alias, row)
        return previous

    def get_alias(self, name: str, alias: str) -> Alias | None:
        """The alias ``alias`` of model ``name``, or None."""
        a = t.aliases.c
        with self._read("reading an alias") as conn:
            query = sa.select(t.aliases).where(a.name == name, a.alias == alias)
            row = conn.execute(query).mappings().first()
        return None if row is None else codec.decode_alias(row)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove the alias; removing one that does not exist is a no-op."""
        a = t.aliases.c
        with self._write("deleting an alias") as conn:
            conn.execute(t.aliases.delete().where(a.name == name, a.alias == alias))

    def list_aliases(self, name: str | None = None) -> list[Alias]:
        """Ordered by model name, then alias."""
        a = t.aliases.c
        query = sa.select(t.aliases).order_by(a.name, a.alias)
        if name is not None:
            query = query.where(a.name == name)
        with self._read("listing aliases") as conn:
            return [codec.decode_alias(r) for r in conn.execute(query).mappings()]

    # -- events and state -----------------------------------------------------------------------------------

    def append_event(self, event: Event) -> Event:
        """Store the event (its ``id`` is ignored); returns it with its new, increasing id."""
        row = codec.encode_event(event)
        with self._write("recording an event") as conn:
            self._lock(conn, "events")
            row["id"] = conn.execute(t.events.insert(), row).inserted_primary_key[0]  # type: ignore[index]
        return codec.decode_event(row)

    def list_events(
        self, *, subject: str | None = None, kind: str | None = None, since_id: int | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Oldest first among the newest ``limit`` matches; ``subject`` ending in ``*`` is a prefix."""
        if limit <= 0:
            return []
        e = t.events.c
        query = sa.select(t.events).order_by(e.id.desc()).limit(limit)
        if subject is not None:
            prefix = codec.subject_prefix(subject)
            if prefix is None:
                query = query.where(e.subject == subject)
            elif prefix:
                query = query.where(e.subject.startswith(prefix, autoescape=True),
                                    sa.func.substr(e.subject, 1, len(prefix)) == prefix)
        if kind is not None:
            query = query.where(e.kind == kind)
        if since_id is not None:
            query = query.where(e.id > since_id)
        with self._read("listing events") as conn:
            rows = conn.execute(query).mappings().all()
        return [codec.decode_event(r) for r in reversed(rows)]

    def get_state(self, key: str) -> Any | None:
        """The JSON value stored under ``key``, or None."""
        with self._read("reading state") as conn:
            text = conn.execute(sa.select(t.state.c.value).where(t.state.c.key == key)).scalar()
        return None if text is None else codec.loads(text)

    def put_state(self, key: str, value: Any) -> None:
        """Store a JSON value under ``key``, replacing what was there."""
        row = {"key": key, "value": codec.dumps(value, f"state {key!r}")}
        with self._write("storing state") as conn:
            conn.execute(self._upsert_state, row)
