"""The prediction log stores one row per append batch (a request's predictions), not one per prediction.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

``predictions`` (0002: one row per prediction, its label in the row) becomes three tables:
``prediction_batches`` (the predictions of one append that share time, model, version, deployment and
request, their inputs, outputs and probabilities as JSON arrays), ``prediction_ids`` (id → batch and
position) and ``prediction_labels``. Every stored prediction is carried over as a batch of one, with the
same ``seq``, so the append order is kept, and with its label; then ``predictions`` is dropped. The
downgrade does the reverse. As in 0001 and 0002, column types are written out here, frozen.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

KEY = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
AUTO_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "prediction_batches",
        sa.Column("seq", AUTO_ID, nullable=False, autoincrement=True),
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
        sa.PrimaryKeyConstraint("seq", name="pk_prediction_batches"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_prediction_batches_model_served_seq_n", "prediction_batches", ["model", "served", "seq", "n"])
    op.create_index("ix_prediction_batches_model_served_time_n", "prediction_batches",
                    ["model", "served", "time", "n"])
    op.create_table(
        "prediction_ids",
        sa.Column("id", KEY, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("pos", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_prediction_ids"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "prediction_labels",
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("pos", sa.Integer, nullable=False),
        sa.Column("model", KEY, nullable=False),
        sa.Column("served", sa.Boolean, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("label_time", TIME, nullable=False),
        sa.PrimaryKeyConstraint("seq", "pos", name="pk_prediction_labels"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_prediction_labels_model_served_seq_pos", "prediction_labels",
                    ["model", "served", "seq", "pos"])

    # Carry every prediction over as a batch of one. JSON arrays of one element are built in SQL: the
    # stored JSON texts are wrapped in brackets, and the id is quoted as a JSON string by the database.
    quoted_id = "json_quote(id)" if op.get_bind().dialect.name == "sqlite" else "to_json(id)::text"
    op.execute(
        "INSERT INTO prediction_batches (seq, time, model, version, deployment, served, request_id, n, ids, "
        "inputs, outputs, probas) "
        f"SELECT seq, time, model, version, deployment, served, request_id, 1, '[' || {quoted_id} || ']', "
        "'[' || inputs || ']', '[' || output || ']', "
        "CASE WHEN proba IS NULL THEN NULL ELSE '[' || proba || ']' END FROM predictions ORDER BY seq")
    op.execute("INSERT INTO prediction_ids (id, seq, pos) SELECT id, seq, 0 FROM predictions")
    op.execute("INSERT INTO prediction_labels (seq, pos, model, served, version, time, label, label_time) "
               "SELECT seq, 0, model, served, version, time, label, label_time FROM predictions "
               "WHERE label_time IS NOT NULL")
    if op.get_bind().dialect.name == "postgresql":
        # explicit seq values do not move the sequence: new batches must come after the carried ones
        op.execute("SELECT setval(pg_get_serial_sequence('prediction_batches', 'seq'), "
                   "COALESCE((SELECT MAX(seq) FROM prediction_batches), 0) + 1, false)")
    op.drop_table("predictions")


def downgrade() -> None:
    """Back to 0002's one row per prediction: every batch is exploded in order (new ``seq`` values, the same
    order), each prediction with its label. Done in Python, not SQL: cutting JSON arrays apart is written
    differently on every database."""
    import json

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
    conn = op.get_bind()
    meta = sa.MetaData()
    batches = sa.Table("prediction_batches", meta, autoload_with=conn)
    labels = sa.Table("prediction_labels", meta, autoload_with=conn)
    predictions = sa.Table("predictions", meta, sa.Column("time", TIME), sa.Column("label_time", TIME),
                           autoload_with=conn)
    found = {(seq, pos): (label, label_time) for seq, pos, label, label_time in
             conn.execute(sa.select(labels.c.seq, labels.c.pos, labels.c.label, labels.c.label_time))}

    def text(value: object) -> str:
        return json.dumps(value, separators=(",", ":"))

    for b in conn.execute(sa.select(batches).order_by(batches.c.seq)).mappings():
        ids, inputs, outputs = json.loads(b["ids"]), json.loads(b["inputs"]), json.loads(b["outputs"])
        probas = json.loads(b["probas"]) if b["probas"] is not None else [None] * len(ids)
        rows = []
        for pos, pid in enumerate(ids):
            label, label_time = found.get((b["seq"], pos), (None, None))
            rows.append({"id": pid, "time": b["time"], "model": b["model"], "version": b["version"],
                         "deployment": b["deployment"], "served": b["served"], "request_id": b["request_id"],
                         "inputs": text(inputs[pos]), "output": text(outputs[pos]),
                         "proba": None if probas[pos] is None else text(probas[pos]),
                         "label": label, "label_time": label_time})
        conn.execute(predictions.insert(), rows)
    op.create_index("ix_predictions_id", "predictions", ["id"], unique=True)
    op.create_index("ix_predictions_model_served_seq", "predictions", ["model", "served", "seq"])
    op.create_index("ix_predictions_model_served_time", "predictions", ["model", "served", "time"])
    op.create_index("ix_predictions_model_served_label_time", "predictions", ["model", "served", "label_time"])
    op.drop_table("prediction_labels")
    op.drop_table("prediction_ids")
    op.drop_table("prediction_batches")
