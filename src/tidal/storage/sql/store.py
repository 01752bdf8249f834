"""The SQL metadata store: one SQLAlchemy Core adapter for SQLite and PostgreSQL, chosen by URL.

Opening a store migrates its database to the current schema (:mod:`tidal.storage.sql._migrate`); each
thread then keeps its own connection (:mod:`tidal.storage.sql._engine`), and every public method is one
transaction, unless it runs inside :meth:`SqlMetadataStore.atomic`. Rows are encoded and decoded by
:mod:`tidal.storage._codec`, the same functions the in-memory adapter uses, so both behave alike.

The store is composed of one part per port, each in its own module: runs, steps and tracking
(:mod:`~tidal.storage.sql._runs`), snapshots and the step cache (:mod:`~tidal.storage.sql._snapshots`),
model versions, aliases and events (:mod:`~tidal.storage.sql._models`), leases, state and reports
(:mod:`~tidal.storage.sql._loop`), API tokens (:mod:`~tidal.storage.sql._tokens`). Read-modify-write is
serialised: on SQLite by ``BEGIN IMMEDIATE``, on
PostgreSQL by transaction-scoped advisory locks.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tidal.storage.sql._engine import ThreadConnections, create_engine_for, redact, resolve_url
from tidal.storage.sql._loop import SqlLoopState
from tidal.storage.sql._migrate import ensure_schema
from tidal.storage.sql._models import SqlModels
from tidal.storage.sql._runs import SqlRuns
from tidal.storage.sql._snapshots import SqlSnapshots
from tidal.storage.sql._tokens import SqlTokens


class SqlMetadataStore(SqlRuns, SqlSnapshots, SqlModels, SqlLoopState, SqlTokens):
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
        self._prepare_runs()
        self._prepare_snapshots()
        self._prepare_models()
        self._prepare_loop()

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


__all__ = ["SqlMetadataStore"]
