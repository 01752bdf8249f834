"""Runs, steps and tracking data in the SQL metadata store: the :class:`~tidal.core.ports.RunStore` part of
:class:`~tidal.storage.sql.store.SqlMetadataStore`.

- **Params are fixed once logged.** Logging the same value again is a no-op; a different value for an
  existing ``(run, key)`` raises :class:`~tidal.core.errors.StorageError` and the whole batch is rolled
  back. Tags may be overwritten.
- **Unknown runs raise** :class:`~tidal.core.errors.RunNotFound`, for reads (``get_params``,
  ``list_steps``, ...) and writes alike: writes learn it from the foreign key, reads look only when they
  found nothing (so the common case costs no extra query).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from tidal.core.entities import Metric, Run, RunStatus, StepRecord
from tidal.storage import _codec as codec
from tidal.storage.sql import _schema as t
from tidal.storage.sql._base import SqlPart, upsert
from tidal.storage.sql._engine import is_fk_violation, is_unique_violation


class SqlRuns(SqlPart):
    """Runs, steps, metrics, params, tags and run artifacts."""

    def _prepare_runs(self) -> None:
        d = self.dialect
        self._ins_metric = t.metrics.insert()
        self._ins_param = upsert(t.params, d, ["run_id", "key"], update=False)
        self._upsert_tag = upsert(t.tags, d, ["run_id", "key"], update=True)
        self._upsert_step = upsert(t.steps, d, ["run_id", "name"], update=True)
        self._upsert_artifact = upsert(t.run_artifacts, d, ["run_id", "name"], update=True)
        self._params_of = sa.select(t.params.c.key, t.params.c.value).where(
            t.params.c.run_id == sa.bindparam("run_id"))

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
        """Record that the process running ``run_id`` is alive at ``at``; RunNotFound for an unknown run."""
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

    # -- tracking --------------------------------------------------------------------------------------------

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
        """The run's params, by key; RunNotFound for an unknown run."""
        return self._key_values(t.params, run_id, "reading params")

    def get_tags(self, run_id: str) -> dict[str, str]:
        """The run's tags, by key; RunNotFound for an unknown run."""
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


__all__ = ["SqlRuns"]
