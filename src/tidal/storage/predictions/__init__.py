"""The prediction log adapters: :class:`~tidal.storage.predictions.sql_log.SqlPredictionLog` (SQLite,
PostgreSQL) and :class:`~tidal.storage.predictions.memory_log.MemoryPredictionLog` (in process).

Everything else here is ``_``-prefixed and internal to :mod:`tidal.storage`: the row codec both logs share
(``_codec``), the batch codec (``_batch_codec``), the SQL log's reads (``_reads``) and its group commit
(``_group_commit``), the archive both logs write (``_archive``: retention) and the SQL log's half of it
(``_sql_archive``).

Nothing is imported here: the in-memory log must not cost a SQLAlchemy import.
"""
