"""Leases, key/value state and monitoring reports in the SQL metadata store: the
:class:`~tidal.core.ports.LoopStore` part of :class:`~tidal.storage.sql.store.SqlMetadataStore`.

A lease lets one actor at a time act for a workspace (one loop controller among several processes or
machines). Taking it is one upsert that changes the row only when the lease is free, expired or already
the caller's, then one read of who holds it, in one write transaction: SQLite's ``BEGIN IMMEDIATE``
and PostgreSQL's row lock (taken by ``ON CONFLICT``) make the pair atomic against other takers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidal.core.entities import Lease, Report
from tidal.storage import _codec as codec
from tidal.storage.sql import _schema as t
from tidal.storage.sql._base import SqlPart, upsert


class SqlLoopState(SqlPart):
    """Named leases, JSON values by key, and reports by id."""

    def _prepare_loop(self) -> None:
        self._upsert_state = upsert(t.state, self.dialect, ["key"], update=True)
        self._ins_report = upsert(t.reports, self.dialect, ["id"], update=False)

    # -- leases ----------------------------------------------------------------------------------------------

    def acquire_lease(self, name: str, owner: str, until: datetime, now: datetime, *, force: bool = False) -> bool:
        """Take or renew the lease ``name`` for ``owner`` until ``until``; True when ``owner`` holds it
        afterwards (it was free, expired at ``now``, or ``owner``'s already, or ``force``), False otherwise."""
        lease = t.leases.c
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(t.leases).values(name=name, owner=owner, until=codec.utc(until))
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"owner": stmt.excluded.owner, "until": stmt.excluded.until},
            where=None if force else (lease.owner == stmt.excluded.owner) | (lease.until <= codec.utc(now)),
        )
        with self._write("taking a lease") as conn:
            conn.execute(stmt)
            holder = conn.execute(sa.select(lease.owner).where(lease.name == name)).scalar()
        return bool(holder == owner)

    def get_lease(self, name: str) -> Lease | None:
        """Who holds the lease ``name`` and until when (expired or not), or None."""
        lease = t.leases.c
        with self._read("reading a lease") as conn:
            row = conn.execute(sa.select(lease.owner, lease.until).where(lease.name == name)).first()
        return None if row is None else Lease(name=name, owner=row[0], until=row[1])

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (a no-op otherwise)."""
        lease = t.leases.c
        with self._write("releasing a lease") as conn:
            conn.execute(t.leases.delete().where(lease.name == name, lease.owner == owner))

    # -- state -----------------------------------------------------------------------------------------------

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

    # -- monitoring reports ----------------------------------------------------------------------------------

    def save_report(self, report: Report) -> None:
        """Store a report; idempotent by ``report.id`` (the first one stored wins: reports are records)."""
        row = codec.encode_report(report)
        with self._write("storing a report") as conn:
            conn.execute(self._ins_report, row)

    def get_report(self, report_id: str) -> Report:
        """The report ``report_id``, or the only one whose id starts with it (4 characters or more);
        ReportNotFound otherwise (the message lists the matches of an ambiguous prefix)."""
        r = t.reports.c
        with self._read("reading a report") as conn:
            row = conn.execute(sa.select(t.reports).where(r.id == report_id)).mappings().first()
            if row is not None:
                return codec.decode_report(row)
            if len(report_id) < codec.MIN_RUN_PREFIX:
                raise codec.short_report_prefix(report_id)
            rows = conn.execute(
                sa.select(t.reports).where(
                    r.id.startswith(report_id, autoescape=True),
                    # LIKE ignores case on SQLite: compare exactly as well.
                    sa.func.substr(r.id, 1, len(report_id)) == report_id,
                ).order_by(r.id).limit(6)
            ).mappings().all()
        if not rows:
            raise codec.no_report(report_id)
        if len(rows) > 1:
            raise codec.ambiguous_report(report_id, [x["id"] for x in rows])
        return codec.decode_report(rows[0])

    def list_reports(self, model: str | None = None, limit: int = 50) -> list[Report]:
        """Newest first (by creation time, then id)."""
        if limit <= 0:
            return []
        r = t.reports.c
        query = sa.select(t.reports).order_by(r.created_at.desc(), r.id.desc()).limit(limit)
        if model is not None:
            query = query.where(r.model == model)
        with self._read("listing reports") as conn:
            return [codec.decode_report(x) for x in conn.execute(query).mappings()]


__all__ = ["SqlLoopState"]
