"""Run heartbeats, and a quarantine for prediction batches that cannot be read back.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04

``runs.heartbeat_at``: when the process running a run last said it was alive, so that a run whose process
was killed is seen as abandoned rather than running for ever. ``prediction_quarantine``: where
``tidal predictions check --quarantine`` moves a batch that cannot be read, whole (its batch row, its id
entries and its labels), so reads no longer meet it and nothing of it is lost. The downgrade puts every
quarantined batch back where it was, with its ids and labels, then drops the table and the column.
As in the earlier revisions, column types are written out here, frozen.
"""

from __future__ import annotations

import json
from datetime import datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

KEY = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
TIME = sa.DateTime(timezone=True)

_BATCH_COLUMNS = ("seq", "time", "model", "version", "deployment", "served", "request_id", "n", "ids", "inputs",
                  "outputs", "probas")


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("heartbeat_at", TIME, nullable=True))
    op.create_table(
        "prediction_quarantine",
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("model", KEY, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("deployment", KEY, nullable=False),
        sa.Column("served", sa.Boolean, nullable=False),
        sa.Column("request_id", sa.Text, nullable=True),
        sa.Column("n", sa.Integer, nullable=False),
        sa.Column("ids", sa.Text, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("probas", sa.Text, nullable=True),
        sa.Column("id_rows", sa.Text, nullable=False),
        sa.Column("labels", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("quarantined_at", TIME, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_prediction_quarantine"),
    )


def downgrade() -> None:
    conn = op.get_bind()
    meta = sa.MetaData()
    quarantine = sa.Table("prediction_quarantine", meta, autoload_with=conn)
    batches = sa.Table("prediction_batches", meta, autoload_with=conn)
    ids = sa.Table("prediction_ids", meta, autoload_with=conn)
    labels = sa.Table("prediction_labels", meta, autoload_with=conn)
    for row in conn.execute(sa.select(quarantine).order_by(quarantine.c.seq)).mappings().all():
        conn.execute(batches.insert().values({c: row[c] for c in _BATCH_COLUMNS}))
        id_rows = json.loads(row["id_rows"])
        if id_rows:
            conn.execute(ids.insert(), [{"id": pid, "seq": row["seq"], "pos": pos} for pid, pos in id_rows])
        label_rows = json.loads(row["labels"])
        if label_rows:
            conn.execute(labels.insert(), [
                {"seq": row["seq"], "pos": pos, "model": row["model"], "served": row["served"],
                 "version": row["version"], "time": row["time"], "label": label,
                 "label_time": datetime.fromisoformat(label_time)}
                for pos, label, label_time in label_rows])
    op.drop_table("prediction_quarantine")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("heartbeat_at")
