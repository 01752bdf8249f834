"""tidal.storage: the adapters of the core storage ports, and the factories that choose one by URL.

- :func:`open_metadata_store`: ``memory://`` (in process), ``sqlite:///path/to/tidal.db``,
  ``postgresql+psycopg://user@host:5432/db`` (needs ``pip install 'tidal[postgres]'``).
- :func:`open_artifact_store`: a local folder, or any fsspec URL (``memory://x``, ``s3://bucket/prefix``).
- :func:`open_prediction_log`: ``memory://``, ``sqlite:///path/to/predictions.db`` (the workspace keeps
  its own file, ``.tidal/predictions.db``) or a PostgreSQL URL, as for the metadata store.

Only this package imports SQLAlchemy, Alembic and fsspec; the SQL modules are imported on first use, so
``memory://`` costs no SQLAlchemy import.

Which names are public. This package's names (the ``open_*`` factories and the adapter classes, the SQL
ones loaded on first use) and the modules that define an adapter class: :mod:`~tidal.storage.memory`,
:mod:`~tidal.storage.artifacts`, :mod:`~tidal.storage.sql.store`, :mod:`~tidal.storage.predictions.sql_log`
and :mod:`~tidal.storage.predictions.memory_log`; :mod:`~tidal.storage.study`, Optuna's storage for
``model.search`` beside the metadata store; plus :mod:`~tidal.storage.testing`, what tests need beyond the
ports. Every other module's name starts with ``_``: it is internal to this package, may change
in any release, and nothing outside ``tidal.storage`` imports it (a test checks, over ``src`` and
``tests``). Layout: ``sql/`` (the SQL machinery and the SQL metadata store, split by port),
``predictions/`` (the prediction logs and their codecs), ``_codec`` (the metadata rows both metadata
stores share).
"""

from __future__ import annotations

from typing import Literal

from tidal.core.errors import StorageError
from tidal.core.ports import ArtifactStore, MetadataStore, PredictionLog
from tidal.storage._codec import SUPPORTED_METADATA_URLS
from tidal.storage.artifacts import FsspecArtifactStore
from tidal.storage.memory import MemoryMetadataStore
from tidal.storage.predictions.memory_log import MemoryPredictionLog

#: The prediction log URLs tidal understands, for error messages.
SUPPORTED_PREDICTION_URLS = (
    "sqlite:///path/to/predictions.db, postgresql+psycopg://user:password@host:5432/dbname, "
    "memory:// (in-process, for tests)"
)


def open_metadata_store(url: str) -> MetadataStore:
    """The metadata store at ``url``, migrated to the current schema.

    Raises StorageError for an unsupported scheme (listing the supported ones), a missing driver (with
    the install command), or a database that cannot be reached or opened.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return MemoryMetadataStore()
    if scheme.partition("+")[0] in ("sqlite", "postgresql", "postgres"):
        from tidal.storage.sql.store import SqlMetadataStore

        return SqlMetadataStore(url)
    from tidal.storage.sql._engine import redact

    raise StorageError(f"unsupported metadata store URL {redact(url)!r}",
                       hint=f"use one of: {SUPPORTED_METADATA_URLS}")


def open_prediction_log(url: str, *, durability: Literal["process", "power"] = "process",
                        artifacts: ArtifactStore | None = None) -> PredictionLog:
    """The prediction log at ``url``, its database migrated to the current schema; ``artifacts``: where its
    archive files go (``PredictionLog.archive``; without it, archiving is refused).

    ``durability``: ``"process"`` (committed predictions survive the process being killed) or
    ``"power"`` (they also survive an operating system crash or power cut: one fsync per group commit);
    see :mod:`tidal.storage.predictions.sql_log`. Raises StorageError as :func:`open_metadata_store` does.
    """
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "memory":
        return MemoryPredictionLog(artifacts=artifacts)
    if scheme.partition("+")[0] in ("sqlite", "postgresql", "postgres"):
        from tidal.storage.predictions.sql_log import SqlPredictionLog

        return SqlPredictionLog(url, durability=durability, artifacts=artifacts)
    from tidal.storage.sql._engine import redact

    raise StorageError(f"unsupported prediction log URL {redact(url)!r}",
                       hint=f"use one of: {SUPPORTED_PREDICTION_URLS}")


def open_artifact_store(url: str) -> ArtifactStore:
    """The artifact store at ``url``: a local folder (created if missing) or an fsspec URL."""
    return FsspecArtifactStore(url)


def __getattr__(name: str) -> object:
    # The SQL adapters load SQLAlchemy: import them when asked for, not with the package.
    if name == "SqlMetadataStore":
        from tidal.storage.sql.store import SqlMetadataStore

        return SqlMetadataStore
    if name == "SqlPredictionLog":
        from tidal.storage.predictions.sql_log import SqlPredictionLog

        return SqlPredictionLog
    raise AttributeError(f"module 'tidal.storage' has no attribute {name!r}")


__all__ = [
    "SUPPORTED_METADATA_URLS",
    "SUPPORTED_PREDICTION_URLS",
    "FsspecArtifactStore",
    "MemoryMetadataStore",
    "MemoryPredictionLog",
    "SqlMetadataStore",
    "SqlPredictionLog",
    "open_artifact_store",
    "open_metadata_store",
    "open_prediction_log",
]
