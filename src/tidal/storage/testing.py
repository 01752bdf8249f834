"""What tests of the storage adapters need beyond the ports: the SQL tables, the migrations, the row
encoders, and the two concurrency parts of the SQL prediction log that are tested on their own.

For tidal's own tests (``tests/contract``) and for whoever writes another adapter and wants to check it
the same way. It names internals of :mod:`tidal.storage` on purpose, so it is not a stable API: it changes
when they do. Importing it imports SQLAlchemy.

- :data:`tables`: the SQLAlchemy Core tables (``tables.runs``, ``tables.prediction_batches``, ...),
  :data:`metadata` (all of them) and :data:`SCHEMA_REVISION` (the Alembic revision this code expects).
- :func:`migrate`: run the Alembic migrations up or down to a revision on a connection, as a store does
  on open (:data:`MIGRATIONS_DIR` holds the scripts).
- :func:`encode_run`, :func:`encode_metric`, :func:`encode_model_version`, :func:`encode_event`,
  :func:`encode_prediction`, :func:`json_text`: rows as the stores write them, to write a database the
  way an older tidal did; :func:`prediction_value_text` and :func:`prediction_value`: a JSON field of the
  prediction log written and read as the log does.
- :class:`GroupCommit` (the prediction log's group commit) and :class:`WalCheckpointer` (its SQLite WAL
  checkpoints in the background).
- :class:`ArchiveFiles` (how both prediction logs write and read their archive files: a test stops a write
  half way through it) and :func:`read_archive_file` (the rows of an archive file's bytes).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection

from tidal.core.entities import Event, Metric, ModelVersion, Prediction, Run
from tidal.storage import _codec
from tidal.storage.predictions import _archive
from tidal.storage.predictions import _codec as _prediction_codec
from tidal.storage.predictions._group_commit import CommitStats, GroupCommit
from tidal.storage.sql import _schema as tables
from tidal.storage.sql._checkpoint import WalCheckpointer
from tidal.storage.sql._migrate import MIGRATIONS_DIR
from tidal.storage.sql._schema import SCHEMA_REVISION, metadata


def migrate(conn: Connection, revision: str, *, down: bool = False) -> None:
    """Upgrade (``down``: downgrade) the database behind ``conn`` to ``revision`` (``"head"``, ``"0002"``)
    with tidal's Alembic scripts, in the connection's transaction; the caller commits."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = conn
    (command.downgrade if down else command.upgrade)(config, revision)


def encode_run(run: Run) -> dict[str, Any]:
    """The ``runs`` row of ``run``."""
    return _codec.encode_run(run)


def encode_metric(run_id: str, metric: Metric) -> dict[str, Any]:
    """The ``metrics`` row of ``metric`` of run ``run_id``."""
    return _codec.encode_metric(run_id, metric)


def encode_model_version(mv: ModelVersion, version: int) -> dict[str, Any]:
    """The ``model_versions`` row of ``mv`` stored as ``version``."""
    return _codec.encode_model_version(mv, version)


def encode_event(event: Event) -> dict[str, Any]:
    """The ``events`` row of ``event`` (without its id, which the database assigns)."""
    return _codec.encode_event(event)


def encode_prediction(p: Prediction) -> dict[str, Any]:
    """The row of ``p`` in the one-row-per-prediction ``predictions`` table of revisions 0002 and before."""
    return _prediction_codec.encode_prediction(p)


def prediction_value_text(value: Any, what: str = "a value") -> str:
    """``value`` as the prediction log writes a JSON field (inputs, outputs, labels: NaN and ±inf as null)."""
    return _prediction_codec.dumps_value(value, what)


def prediction_value(text: str) -> Any:
    """The value of a JSON field the prediction log wrote (integers of any size come back exact)."""
    return _prediction_codec.loads_value(text)


#: How the prediction logs write and read archive files (see tidal.storage.predictions._archive).
ArchiveFiles = _archive.Files


def read_archive_file(data: bytes, where: str = "the file") -> list[dict[str, Any]]:
    """The rows of an archive file's bytes (StorageError naming ``where`` when it is not one)."""
    return _archive.from_parquet(data, where)


def json_text(value: Any) -> str:
    """``value`` as the JSON text the stores keep in their JSON columns."""
    return _codec.dumps(value, "a value")


__all__ = [
    "MIGRATIONS_DIR",
    "SCHEMA_REVISION",
    "ArchiveFiles",
    "CommitStats",
    "GroupCommit",
    "WalCheckpointer",
    "encode_event",
    "encode_metric",
    "encode_model_version",
    "encode_prediction",
    "encode_run",
    "json_text",
    "metadata",
    "migrate",
    "prediction_value",
    "prediction_value_text",
    "read_archive_file",
    "tables",
]
