"""What the parts of the SQL metadata store share: this thread's transactions, the PostgreSQL advisory locks
and the upsert statement builder.

:class:`~tidal.storage.sql.store.SqlMetadataStore` is composed of one part per port (``_runs``,
``_snapshots``, ``_models``, ``_loop``), each a subclass of :class:`SqlPart`; the store sets ``_conns`` and
``dialect`` and calls each part's ``_prepare_*`` method once, which builds that part's statements.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from tidal.storage import _codec as codec
from tidal.storage.sql import _schema as t
from tidal.storage.sql._engine import ThreadConnections, Transaction

_RUN_EXISTS = sa.select(sa.literal(1)).where(t.runs.c.id == sa.bindparam("run_id"))


def upsert(table: sa.Table, dialect: str, keys: Sequence[str], *, update: bool) -> Any:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE`` (every other column) or ``DO NOTHING``.

    Statements are built once per store: SQLAlchemy then finds their compiled form in its cache by identity
    of structure, which keeps the per-call cost of the hot paths (``log_batch``) small.
    """
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    if not update:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    changed = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    return stmt.on_conflict_do_update(index_elements=list(keys), set_=changed)


class SqlPart:
    """A part of the SQL metadata store: the host class provides ``_conns`` and ``dialect``."""

    _conns: ThreadConnections
    dialect: str

    def _write(self, doing: str) -> Transaction:
        """A write transaction on this thread's connection (joins the one :meth:`atomic` opened)."""
        return Transaction(self._conns, True, doing)

    def _read(self, doing: str) -> Transaction:
        """A read transaction on this thread's connection: its statements see one snapshot."""
        return Transaction(self._conns, False, doing)

    def _lock(self, conn: Connection, key: str) -> None:
        """Serialise writers on ``key`` until commit (PostgreSQL; SQLite's BEGIN IMMEDIATE already does)."""
        if self.dialect == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"), {"k": key})

    def _require_run(self, conn: Connection, run_id: str) -> None:
        """Raise RunNotFound unless the run exists."""
        if conn.execute(_RUN_EXISTS, {"run_id": run_id}).first() is None:
            raise codec.no_run(run_id)


__all__ = ["SqlPart", "upsert"]
