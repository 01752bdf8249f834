"""The initial schema: runs and tracking, snapshots, step cache, model registry, events, state.

Revision ID: 0001
Revises:
Create Date: 2024-11-25

The column types are written out here rather than imported from ``_schema`` on purpose: a migration
is a frozen record of what the database looked like at that revision, and must not change when the
current schema does.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Sorted text compares in code point order on PostgreSQL too (see _schema.KeyText).
KEY = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
# An auto-incrementing id: BIGINT on PostgreSQL, the rowid alias (INTEGER PRIMARY KEY) on SQLite.
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def _run_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["run_id"], ["runs.id"], name=f"fk_{table}_run_id_runs", ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", KEY, nullable=False),
        sa.Column("project", KEY, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("started_at", TIME, nullable=False),
        sa.Column("ended_at", TIME, nullable=True),
        sa.Column("spec_digest", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("info", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
    )
    op.create_index("ix_runs_project_started_at", "runs", ["project", "started_at"])
    op.create_index("ix_runs_started_at", "runs", ["started_at"])

    op.create_table(
        "steps",
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("name", KEY, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("cache_key", sa.Text, nullable=False),
        sa.Column("started_at", TIME, nullable=True),
        sa.Column("ended_at", TIME, nullable=True),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("explain", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_steps"),
        _run_fk("steps"),
    )

    for table in ("params", "tags"):
        op.create_table(
            table,
            sa.Column("run_id", KEY, nullable=False),
            sa.Column("key", KEY, nullable=False),
            sa.Column("value", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint("run_id", "key", name=f"pk_{table}"),
            _run_fk(table),
        )

    op.create_table(
        "metrics",
        sa.Column("id", AUTO_ID, nullable=False, autoincrement=True),
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("key", KEY, nullable=False),
        sa.Column("value", sa.Double, nullable=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_metrics"),
        _run_fk("metrics"),
    )
    op.create_index("ix_metrics_run_id_key_step", "metrics", ["run_id", "key", "step"])

    op.create_table(
        "run_artifacts",
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("name", KEY, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", name="pk_run_artifacts"),
        _run_fk("run_artifacts"),
    )

    op.create_table(
        "snapshots",
        sa.Column("digest", KEY, nullable=False),
        sa.Column("project", KEY, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("columns", sa.Text, nullable=False),
        sa.Column("schema", sa.Text, nullable=False),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_snapshots"),
    )
    op.create_index("ix_snapshots_project_created_at", "snapshots", ["project", "created_at"])
    op.create_index("ix_snapshots_created_at", "snapshots", ["created_at"])

    op.create_table(
        "cache_entries",
        sa.Column("key", KEY, nullable=False),
        sa.Column("step", KEY, nullable=False),
        sa.Column("run_id", KEY, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("fingerprint", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_cache_entries"),
    )
    op.create_index("ix_cache_entries_step_created_at", "cache_entries", ["step", "created_at"])

    op.create_table(
        "model_versions",
        sa.Column("name", KEY, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("artifact_digest", sa.Text, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("task", sa.Text, nullable=False),
        sa.Column("signature", sa.Text, nullable=False),
        sa.Column("metrics", sa.Text, nullable=False),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("lineage", sa.Text, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("info", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("name", "version", name="pk_model_versions"),
    )

    op.create_table(
        "aliases",
        sa.Column("name", KEY, nullable=False),
        sa.Column("alias", KEY, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", "alias", name="pk_aliases"),
        sa.ForeignKeyConstraint(
            ["name", "version"],
            ["model_versions.name", "model_versions.version"],
            name="fk_aliases_name_version_model_versions",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "events",
        sa.Column("id", AUTO_ID, nullable=False, autoincrement=True),
        sa.Column("kind", KEY, nullable=False),
        sa.Column("subject", KEY, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_events_subject", "events", ["subject"])
    op.create_index("ix_events_kind", "events", ["kind"])

    op.create_table(
        "state",
        sa.Column("key", KEY, nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_state"),
    )


def downgrade() -> None:
    for table in (
        "state", "events", "aliases", "model_versions", "cache_entries", "snapshots", "run_artifacts",
        "metrics", "tags", "params", "steps", "runs",
    ):
        op.drop_table(table)
