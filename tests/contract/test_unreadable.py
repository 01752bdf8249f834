"""A stored batch that cannot be read back must not break the log: reads skip it and say so, ``get`` names it,
``check`` finds it and ``check(quarantine=True)`` moves it aside, whole, so that migration 0004's downgrade
can even put it back.

The corrupt batch is what tidal up to 0.1 stored for ``{"instances": [EVIL], "instances": [ROW]}``: the raw
text after the first ``"instances"`` key, which is not one JSON array.
"""

from __future__ import annotations

import json
from contextlib import closing
from datetime import timedelta

import sqlalchemy as sa

from tidal.core.entities import Feedback
from tidal.storage import open_prediction_log
from tidal.storage.testing import tables as t

from ._make import T0
from .test_migrations import _engine, _migrate_to
from .test_prediction_log import _batch

CORRUPT = '[{"period": "EVIL"}], "instances": [{"period": 0.5}]'


def _corrupt(url: str, seq: int) -> None:
    """Overwrite the inputs of batch ``seq`` with what the old server stored for a duplicate key."""
    engine = _engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(t.prediction_batches.update().where(t.prediction_batches.c.seq == seq)
                         .values(inputs=CORRUPT))
    finally:
        engine.dispose()


def _seqs(url: str, table: sa.Table) -> list[int]:
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(table.c.seq).order_by(table.c.seq))]
    finally:
        engine.dispose()


def test_reads_skip_an_unreadable_batch_and_report_it(sql_url: str) -> None:
    with closing(open_prediction_log(sql_url)) as log:
        good1, bad, good2 = _batch(2), _batch(3, time=T0 + timedelta(seconds=1)), _batch(1)
        for b in (good1, bad, good2):
            log.append(b)
        log.add_feedback([Feedback(bad.ids[0], 1, T0), Feedback(good2.ids[0], 0, T0)])
        bad_seq = _seqs(sql_url, t.prediction_batches)[1]
        _corrupt(sql_url, bad_seq)

        assert log.skipped() == []
        window = log.window(model="churn")
        assert [p.id for p in window] == [*good1.ids, *good2.ids]  # the rest of the window is read
        assert [p.id for p in log.window(model="churn", last=2)] == [good1.ids[1], good2.ids[0]]
        assert [p.id for p in log.window(model="churn", labelled=True)] == [good2.ids[0]]
        (skipped,) = log.skipped()
        assert skipped.ref == f"batch {bad_seq}" and skipped.predictions == 3 and skipped.model == "churn"
        assert "does not parse" in skipped.reason
        try:
            log.get(bad.ids[0])
            raise AssertionError("get of an unreadable prediction must raise")
        except Exception as exc:  # a StorageError naming the batch and the repair
            assert type(exc).__name__ == "StorageError" and f"batch {bad_seq}" in str(exc)
            assert "tidal predictions check --quarantine" in str(exc)
        assert log.get(good2.ids[0]).label == 0
        # counts come from the index: the unreadable predictions are counted until quarantined
        assert log.count(model="churn") == 6


def test_check_finds_and_quarantine_moves_an_unreadable_batch_whole(sql_url: str) -> None:
    with closing(open_prediction_log(sql_url)) as log:
        batches = [_batch(2), _batch(3), _batch(1)]
        for b in batches:
            log.append(b)
        log.add_feedback([Feedback(batches[1].ids[2], "yes", T0)])
        bad_seq = _seqs(sql_url, t.prediction_batches)[1]
        _corrupt(sql_url, bad_seq)

        found = log.check()
        assert (found.batches, found.predictions, found.quarantined) == (3, 6, 0) and not found.ok
        assert [b.ref for b in found.unreadable] == [f"batch {bad_seq}"]
        assert len(log.window(model="churn")) == 3  # a check alone moves nothing

        moved = log.check(quarantine=True)
        assert moved.quarantined == 1 and [b.ref for b in moved.unreadable] == [f"batch {bad_seq}"]
        assert _seqs(sql_url, t.prediction_quarantine) == [bad_seq]
        assert bad_seq not in _seqs(sql_url, t.prediction_batches)
        assert log.count(model="churn") == 3 and log.count(model="churn", labelled=True) == 0
        again = log.check()
        assert again.ok and (again.batches, again.predictions) == (2, 3)
        assert log.skipped() == []
        # the log goes on: new predictions and feedback, the quarantined ids are unknown now
        log.append(_batch(2))
        assert len(log.window(model="churn")) == 5

    engine = _engine(sql_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(sa.select(t.prediction_quarantine)).mappings().one()
    finally:
        engine.dispose()
    assert row["inputs"] == CORRUPT and row["n"] == 3 and "does not parse" in row["reason"]
    (label,) = json.loads(row["labels"])  # [position, the label's stored JSON text, its time]
    assert label[:2] == [2, '"yes"']


def test_the_downgrade_puts_quarantined_batches_back(sql_url: str) -> None:
    with closing(open_prediction_log(sql_url)) as log:
        for b in (_batch(2), _batch(3)):
            log.append(b)
        bad = _batch(1)
        log.append(bad)
        log.add_feedback([Feedback(bad.ids[0], 1, T0)])
        bad_seq = _seqs(sql_url, t.prediction_batches)[2]
        _corrupt(sql_url, bad_seq)
        assert log.check(quarantine=True).quarantined == 1
    _migrate_to(sql_url, "0003", down=True)
    assert bad_seq in _seqs(sql_url, t.prediction_batches)
    _migrate_to(sql_url, "head")
    with closing(open_prediction_log(sql_url)) as log:
        found = log.check()
        assert [b.ref for b in found.unreadable] == [f"batch {bad_seq}"]  # back, with its label
        assert log.count(model="churn", labelled=True) == 1

