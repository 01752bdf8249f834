"""Snapshots and the step cache in the SQL metadata store: the :class:`~tidal.core.ports.SnapshotStore` part
of :class:`~tidal.storage.sql.store.SqlMetadataStore`. Both are written idempotently by their key (a
snapshot's digest: the first one stored wins; a cache key: the newest entry replaces the older).
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa

from tidal.core.entities import CacheEntry, SnapshotInfo
from tidal.storage import _codec as codec
from tidal.storage.sql import _schema as t
from tidal.storage.sql._base import SqlPart, upsert

#: Run ids per query in ``latest_cache_entry`` (well under SQLite's and PostgreSQL's parameter limits).
_CHUNK = 500


class SqlSnapshots(SqlPart):
    """Snapshot records by digest, cache entries by key."""

    def _prepare_snapshots(self) -> None:
        self._ins_snapshot = upsert(t.snapshots, self.dialect, ["digest"], update=False)
        self._upsert_cache = upsert(t.cache_entries, self.dialect, ["key"], update=True)

    def put_snapshot(self, snapshot: SnapshotInfo) -> None:
        """Store a snapshot; idempotent by digest (the first one stored wins)."""
        row = codec.encode_snapshot(snapshot)
        with self._write("storing a snapshot") as conn:
            conn.execute(self._ins_snapshot, row)

    def get_snapshot(self, digest: str) -> SnapshotInfo:
        """The snapshot with ``digest``; SnapshotNotFound when unknown."""
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

    # -- step cache ------------------------------------------------------------------------------------------

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


__all__ = ["SqlSnapshots"]
