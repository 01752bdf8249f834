"""The prediction log (predictions with their labels), stored monitoring reports, and leases.

Revision ID: 0002
Revises: 0001
Create Date: 2024-11-26

Only new tables: a database at 0001 upgrades in place and keeps every row it had. As in 0001, the
column types are written out here, frozen, rather than imported from ``_schema``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

KEY = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "predictions",
        sa.Column("seq", AUTO_ID, nullable=False, autoincrement=True),
        sa.Column("id", KEY, nullable=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("model", KEY, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deployment", KEY, nullable=False),
        sa.Column("served", sa.Boolean, nullable=False),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("output", sa.Text, nullable=False),
        sa.Column("proba", sa.Text, nullable=True),
        sa.Column("label", sa.Text, nullable=True),
        sa.Column("label_time", TIME, nullable=True),
        sa.PrimaryKeyConstraint("seq", name="pk_predictions"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_predictions_id", "predictions", ["id"], unique=True)
    op.create_index("ix_predictions_model_served_seq", "predictions", ["model", "served", "seq"])
    op.create_index("ix_predictions_model_served_time", "predictions", ["model", "served", "time"])
    op.create_index("ix_predictions_model_served_label_time", "predictions", ["model", "served", "label_time"])

    op.create_table(
        "reports",
        sa.Column("id", KEY, nullable=False),
        sa.Column("model", KEY, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("window", sa.Text, nullable=False),
        sa.Column("drift_share", sa.Double, nullable=True),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Column("alerts", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
    )
    op.create_index("ix_reports_model_created_at", "reports", ["model", "created_at"])
    op.create_index("ix_reports_created_at", "reports", ["created_at"])

    op.create_table(
        "leases",
        sa.Column("name", KEY, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("until", TIME, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )


def downgrade() -> None:
    op.drop_table("leases")
    op.drop_table("reports")
    op.drop_table("predictions")
