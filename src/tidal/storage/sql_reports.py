"""Monitoring reports in the SQL metadata store: the ``save_report``/``get_report``/``list_reports`` part
of :class:`~tidal.core.ports.MetadataStore`, mixed into :class:`~tidal.storage.sql.SqlMetadataStore`.

A separate module only to keep ``sql.py`` small; it uses the store's connections and transactions.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidal.core.entities import Report
from tidal.storage import _codec as codec
from tidal.storage import sql_schema as t
from tidal.storage.sql_engine import ThreadConnections, Transaction


class SqlReports:
    """Reports by id; the host class provides ``_conns`` and ``dialect``."""

    _conns: ThreadConnections
    dialect: str

    def save_report(self, report: Report) -> None:
        """Store a report; idempotent by ``report.id`` (the first one stored wins: reports are records)."""
        row = codec.encode_report(report)
        insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert
        stmt = insert(t.reports).on_conflict_do_nothing(index_elements=["id"])
        with Transaction(self._conns, True, "storing a report") as conn:
            conn.execute(stmt, row)

    def get_report(self, report_id: str) -> Report:
        """The report ``report_id``, or the only one whose id starts with it (4 characters or more);
        KeyError otherwise (the message lists the matches of an ambiguous prefix)."""
        r = t.reports.c
        with Transaction(self._conns, False, "reading a report") as conn:
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
        with Transaction(self._conns, False, "listing reports") as conn:
            return [codec.decode_report(x) for x in conn.execute(query).mappings()]
