"""Leases in the SQL metadata store: the ``acquire_lease``/``release_lease`` part of
:class:`~tidal.core.ports.MetadataStore`, mixed into :class:`~tidal.storage.sql.SqlMetadataStore`.

A lease lets one actor at a time act for a workspace (one loop controller among several processes or
machines). Taking it is one upsert that changes the row only when the lease is free, expired or already
the caller's, then one read of who holds it, in one write transaction: SQLite's ``BEGIN IMMEDIATE``
and PostgreSQL's row lock (taken by ``ON CONFLICT``) make the pair atomic against other takers.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidal.core.entities import Lease
from tidal.storage import _codec as codec
from tidal.storage import sql_schema as t
from tidal.storage.sql_engine import ThreadConnections, Transaction


class SqlLeases:
    """Named leases; the host class provides ``_conns`` and ``dialect``."""

    _conns: ThreadConnections
    dialect: str

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
        with Transaction(self._conns, True, "taking a lease") as conn:
            conn.execute(stmt)
            holder = conn.execute(sa.select(lease.owner).where(lease.name == name)).scalar()
        return bool(holder == owner)

    def get_lease(self, name: str) -> Lease | None:
        """Who holds the lease ``name`` and until when (expired or not), or None."""
        lease = t.leases.c
        with Transaction(self._conns, False, "reading a lease") as conn:
            row = conn.execute(sa.select(lease.owner, lease.until).where(lease.name == name)).first()
        return None if row is None else Lease(name=name, owner=row[0], until=row[1])

    def release_lease(self, name: str, owner: str) -> None:
        """Give the lease up if ``owner`` holds it (a no-op otherwise)."""
        lease = t.leases.c
        with Transaction(self._conns, True, "releasing a lease") as conn:
            conn.execute(t.leases.delete().where(lease.name == name, lease.owner == owner))
