"""The prediction archive: an index of the Parquet files that hold archived predictions, and late labels.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

``prediction_archives``: one row per archive file (UTC day and model) that ``PredictionLog.archive`` wrote
into the artifact store (``monitor.retention``, ``tidal predictions archive``). ``prediction_late_labels``:
labels that arrived after their prediction was archived. The downgrade drops both tables: the files stay in
the artifact store, but an earlier tidal no longer knows them (archive nothing you want to downgrade past).
As in the earlier revisions, column types are written out here, frozen.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

KEY = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "prediction_archives",
        sa.Column("day", KEY, nullable=False),
        sa.Column("model", KEY, nullable=False),
        sa.Column("digest", sa.Text, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("labels", sa.BigInteger, nullable=False),
        sa.Column("served_rows", sa.BigInteger, nullable=False),
        sa.Column("served_labels", sa.BigInteger, nullable=False),
        sa.Column("min_id", KEY, nullable=False),
        sa.Column("max_id", KEY, nullable=False),
        sa.Column("archived_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("day", "model", name="pk_prediction_archives"),
    )
    op.create_table(
        "prediction_late_labels",
        sa.Column("id", KEY, nullable=False),
        sa.Column("day", KEY, nullable=False),
        sa.Column("model", KEY, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("label_time", TIME, nullable=False),
        sa.Column("replaced", sa.Boolean, nullable=False),
        sa.Column("served", sa.Boolean, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_late_labels"),
    )
    op.create_index("ix_prediction_late_labels_day_model", "prediction_late_labels", ["day", "model"])


def downgrade() -> None:
    op.drop_index("ix_prediction_late_labels_day_model", table_name="prediction_late_labels")
    op.drop_table("prediction_late_labels")
    op.drop_table("prediction_archives")
