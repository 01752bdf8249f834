"""The tables of the SQL metadata store and prediction log, as SQLAlchemy Core ``Table`` objects.

This is the schema the queries of :mod:`tidal.storage.sql` (the metadata store's parts) and
:mod:`tidal.storage.predictions` (the SQL prediction log) are written against. The database itself is
created and upgraded by the Alembic scripts in ``migrations/``; a contract test checks that a freshly
migrated database matches this metadata exactly, so the two cannot drift apart.

Conventions (shared by every table, and portable across SQLite and PostgreSQL):

- JSON values are ``Text`` holding ``json.dumps`` output: the same bytes on every backend, no JSON type
  quirks (SQLite has none, PostgreSQL's ``jsonb`` reorders keys).
- Datetimes are :class:`UTCDateTime`: aware UTC in, aware UTC out (SQLite stores no zone at all).
- Names and keys that are sorted on use :data:`KeyText`, binary ("C") collation on PostgreSQL, so rows
  come back in the same order as SQLite and as Python's ``sorted`` (code point order) everywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

#: The Alembic revision this code expects. Opening a store compares the database's revision with this
#: constant (one cheap SELECT) before deciding whether Alembic needs to run at all.
#: A test checks it is the head of ``migrations/versions``.
SCHEMA_REVISION = "0007"

#: Text sorted in code point order on every backend (see the module docstring).
KeyText = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")

#: An integer primary key that auto-increments: BIGINT on PostgreSQL, the rowid alias on SQLite
#: (SQLite only aliases the rowid for a column declared exactly ``INTEGER PRIMARY KEY``).
AutoId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    In: an aware datetime is converted to UTC; a naive one is taken to be UTC already.
    Out: always aware UTC. SQLite keeps no zone, so it is re-attached on read; PostgreSQL returns
    ``timestamptz`` in the session's zone, so it is converted back.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


metadata = sa.MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _json(name: str) -> sa.Column[str]:
    return sa.Column(name, sa.Text, nullable=False)


runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", KeyText, primary_key=True),
    sa.Column("project", KeyText, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=False),
    sa.Column("ended_at", UTCDateTime),
    sa.Column("spec_digest", sa.Text, nullable=False),
    sa.Column("trigger", sa.Text, nullable=False),
    sa.Column("error", sa.Text),
    _json("info"),
    # when the process running it last said it was alive: a running run whose heartbeat stops is abandoned
    sa.Column("heartbeat_at", UTCDateTime),
    sa.Index(None, "project", "started_at"),
    sa.Index(None, "started_at"),
)

steps = sa.Table(
    "steps",
    metadata,
    sa.Column("run_id", KeyText, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", KeyText, primary_key=True),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("cache_key", sa.Text, nullable=False),
    sa.Column("started_at", UTCDateTime),
    sa.Column("ended_at", UTCDateTime),
    _json("inputs"),
    _json("outputs"),
    sa.Column("explain", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", KeyText, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KeyText, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

tags = sa.Table(
    "tags",
    metadata,
    sa.Column("run_id", KeyText, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", KeyText, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    # The id only orders rows that tie on (key, step, timestamp): insertion order.
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("run_id", KeyText, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", KeyText, nullable=False),
    # NULL stands for NaN: SQLite turns a bound NaN into NULL, so both backends store it that way.
    sa.Column("value", sa.Double),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", UTCDateTime),
    sa.Index(None, "run_id", "key", "step"),
)

run_artifacts = sa.Table(
    "run_artifacts",
    metadata,
    sa.Column("run_id", KeyText, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("name", KeyText, primary_key=True),
    sa.Column("digest", sa.Text, nullable=False),
)

snapshots = sa.Table(
    "snapshots",
    metadata,
    sa.Column("digest", KeyText, primary_key=True),
    sa.Column("project", KeyText, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    _json("columns"),
    _json("schema"),
    _json("profile"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index(None, "project", "created_at"),
    sa.Index(None, "created_at"),
)

cache_entries = sa.Table(
    "cache_entries",
    metadata,
    sa.Column("key", KeyText, primary_key=True),
    sa.Column("step", KeyText, nullable=False),
    sa.Column("run_id", KeyText, nullable=False),
    _json("outputs"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    _json("fingerprint"),
    sa.Index(None, "step", "created_at"),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("name", KeyText, primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("run_id", sa.Text, nullable=False),
    sa.Column("artifact_digest", sa.Text, nullable=False),
    sa.Column("format", sa.Text, nullable=False),
    sa.Column("task", sa.Text, nullable=False),
    _json("signature"),
    _json("metrics"),
    _json("profile"),
    _json("lineage"),
    _json("reasons"),
    _json("info"),
)

aliases = sa.Table(
    "aliases",
    metadata,
    sa.Column("name", KeyText, primary_key=True),
    sa.Column("alias", KeyText, primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.ForeignKeyConstraint(
        ["name", "version"], ["model_versions.name", "model_versions.version"], ondelete="CASCADE"
    ),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", AutoId, primary_key=True, autoincrement=True),
    sa.Column("kind", KeyText, nullable=False),
    sa.Column("subject", KeyText, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("time", UTCDateTime, nullable=False),
    _json("data"),
    sa.Index(None, "subject"),
    sa.Index(None, "kind"),
    # AUTOINCREMENT: SQLite never reuses an id, so ``since_id`` readers cannot miss or repeat events.
    sqlite_autoincrement=True,
)

state = sa.Table(
    "state",
    metadata,
    sa.Column("key", KeyText, primary_key=True),
    _json("value"),
)

# -- 0002: monitoring reports, leases (and the first prediction log, replaced in 0003) -----------------------

# -- 0003: the prediction log, one row per append batch ---------------------------------------------------
#
# A request's predictions share their time, model, version and deployment, and are appended together: they
# are stored as one row of ``prediction_batches`` (the inputs, outputs and probabilities as JSON arrays), so
# that logging a 1,000-row request writes one row and a thousand index entries of 30 bytes, not a thousand
# rows of a kilobyte and four thousand index entries (measured at 1,000 rows: 2.6 ms instead of 10.5 ms).
# ``prediction_ids`` finds a prediction by id (feedback, get) and keeps ids unique: an entry per id, or
# (a served request, whose ids are a range under one prefix: tidal.core.ids) one entry for the whole
# request, its ``id`` the prefix and its ``pos`` minus the number of ids; ``prediction_labels`` holds the
# labels that feedback brings, keyed by (batch, position).

def _batch_columns() -> list[sa.Column[Any]]:
    """The columns of a stored batch after its ``seq`` (new objects each call: a column belongs to one table)."""
    return [
        sa.Column("time", UTCDateTime, nullable=False),
        sa.Column("model", KeyText, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deployment", KeyText, nullable=False),
        sa.Column("served", sa.Boolean, nullable=False),
        sa.Column("request_id", sa.Text),
        sa.Column("n", sa.Integer, nullable=False),  # predictions in the batch
        _json("ids"),  # JSON arrays of n values each
        _json("inputs"),
        _json("outputs"),
        sa.Column("probas", sa.Text),  # NULL when no prediction of the batch has probabilities (a regressor)
    ]


prediction_batches = sa.Table(
    "prediction_batches",
    metadata,
    # The order batches were appended in, across threads and processes: ``window(last=N)`` means the newest
    # N predictions by (seq, position). AUTOINCREMENT (below): SQLite never reuses one.
    sa.Column("seq", AutoId, primary_key=True, autoincrement=True),
    *_batch_columns(),
    # window(model=, last=N) walks this backwards from the newest; ``n`` lets it (and count) stop or sum
    # without reading the rows.
    sa.Index(None, "model", "served", "seq", "n"),
    # window(model=, since=/until=) and count(model=, since=).
    sa.Index(None, "model", "served", "time", "n"),
    sqlite_autoincrement=True,
)

prediction_ids = sa.Table(
    "prediction_ids",
    metadata,
    sa.Column("id", KeyText, primary_key=True),
    sa.Column("seq", sa.BigInteger, nullable=False),
    sa.Column("pos", sa.Integer, nullable=False),
    sqlite_with_rowid=False,
)

prediction_labels = sa.Table(
    "prediction_labels",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True),
    sa.Column("pos", sa.Integer, primary_key=True),
    # the batch's, copied: count(labelled=True) and the newest labelled predictions read this table alone
    sa.Column("model", KeyText, nullable=False),
    sa.Column("served", sa.Boolean, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("time", UTCDateTime, nullable=False),
    _json("label"),
    sa.Column("label_time", UTCDateTime, nullable=False),
    sa.Index(None, "model", "served", "seq", "pos"),
    sqlite_with_rowid=False,
)

# A batch that cannot be read back (``tidal predictions check --quarantine``) is moved here whole: its
# stored columns as they were, its ``prediction_ids`` entries (JSON list of [id, pos]) and its labels (JSON
# list of [pos, label JSON, label time]), why it was unreadable and when it was moved. Reads never meet it
# again; nothing of it is lost (migration 0004's downgrade puts it back).
prediction_quarantine = sa.Table(
    "prediction_quarantine",
    metadata,
    sa.Column("seq", sa.BigInteger, primary_key=True),
    *_batch_columns(),
    sa.Column("id_rows", sa.Text, nullable=False),
    sa.Column("labels", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("quarantined_at", UTCDateTime, nullable=False),
)

# -- 0006: the prediction archive (retention) -------------------------------------------------------------
#
# ``PredictionLog.archive`` moves old predictions into Parquet files in the artifact store, one per UTC day
# and model (see tidal.storage.predictions._archive). ``prediction_archives`` is their index: the file's
# digest and path, its rows and labelled rows, and the smallest and largest id it holds (feedback for an id
# the log no longer holds reads only the files whose range holds it). ``prediction_late_labels``: the labels
# that arrived after their prediction was archived (``replaced``: the file's row has a label of its own;
# ``served``: the prediction's).

prediction_archives = sa.Table(
    "prediction_archives",
    metadata,
    sa.Column("day", KeyText, primary_key=True),  # YYYY-MM-DD, UTC
    sa.Column("model", KeyText, primary_key=True),
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("rows", sa.BigInteger, nullable=False),
    sa.Column("labels", sa.BigInteger, nullable=False),
    # of them, the served ones (count(served=True) answers from the index, as the loop counts labels each tick)
    sa.Column("served_rows", sa.BigInteger, nullable=False),
    sa.Column("served_labels", sa.BigInteger, nullable=False),
    sa.Column("min_id", KeyText, nullable=False),
    sa.Column("max_id", KeyText, nullable=False),
    sa.Column("archived_at", UTCDateTime, nullable=False),
)

prediction_late_labels = sa.Table(
    "prediction_late_labels",
    metadata,
    sa.Column("id", KeyText, primary_key=True),
    sa.Column("day", KeyText, nullable=False),
    sa.Column("model", KeyText, nullable=False),
    _json("label"),
    sa.Column("label_time", UTCDateTime, nullable=False),
    sa.Column("replaced", sa.Boolean, nullable=False),
    sa.Column("served", sa.Boolean, nullable=False),  # the prediction's
    sa.Index(None, "day", "model"),
)

reports = sa.Table(
    "reports",
    metadata,
    sa.Column("id", KeyText, primary_key=True),
    sa.Column("model", KeyText, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    _json("window"),
    # NULL stands for NaN (a window with no features to compare), as for metric values.
    sa.Column("drift_share", sa.Double),
    sa.Column("drifted", sa.Boolean, nullable=False),
    _json("alerts"),
    _json("body"),
    sa.Index(None, "model", "created_at"),
    sa.Index(None, "created_at"),
)

leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", KeyText, primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", KeyText, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("role", sa.Text, nullable=False),
    _json("scopes"),
    # the SHA-256 of the token's secret (tidal.core.tokens); the secret itself is never stored
    sa.Column("digest", sa.Text, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("created_by", sa.Text, nullable=False),
    sa.Column("expires_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
    sa.Column("revoked_by", sa.Text),
    _json("info"),
)
