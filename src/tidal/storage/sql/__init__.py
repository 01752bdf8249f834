"""The SQL adapters' machinery (SQLAlchemy Core, SQLite and PostgreSQL) and the SQL metadata store.

Public: :class:`~tidal.storage.sql.store.SqlMetadataStore` (module ``store``). Everything else here is
``_``-prefixed and internal to :mod:`tidal.storage`: engines, connections and transactions (``_engine``),
the tables (``_schema``), migrations on open (``_migrate``, with the Alembic scripts in ``migrations/``),
the store's parts by port (``_base``, ``_runs``, ``_snapshots``, ``_models``, ``_loop``), the SQLite WAL
checkpointer (``_checkpoint``) and the prediction log's driver-level insert (``_driver_insert``).

Nothing is imported here, so that importing one module does not import them all.
"""
