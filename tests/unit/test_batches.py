"""PredictionBatch and PredictionChain behave as the sequences of records they stand for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tidal.core.batches import PredictionBatch, PredictionChain, parts_of
from tidal.core.entities import Prediction

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def batch(n: int, start: int = 0) -> PredictionBatch:
    return PredictionBatch(ids=[f"p{i}" for i in range(start, start + n)], time=T0, model="m", version=2,
                           inputs=[{"x": i} for i in range(start, start + n)], outputs=list(range(n)),
                           probas=[[0.1, 0.9]] * n, deployment="canary", request_id="r")


def test_a_batch_reads_as_its_records() -> None:
    b = batch(3)
    assert len(b) == 3
    assert b[1] == Prediction(id="p1", time=T0, model="m", version=2, inputs={"x": 1}, output=1, proba=[0.1, 0.9],
                              deployment="canary", request_id="r")
    assert b[-1].id == "p2" and [p.id for p in b] == ["p0", "p1", "p2"] and [p.id for p in b[1:]] == ["p1", "p2"]
    with pytest.raises(IndexError):
        b[3]
    assert "3 predictions of m:2" in repr(b)


def test_a_batch_needs_parallel_columns() -> None:
    with pytest.raises(ValueError, match="as many"):
        PredictionBatch(ids=["a", "b"], time=T0, model="m", version=1, inputs=[{}], outputs=[0, 1])


def test_a_chain_reads_its_parts_in_order() -> None:
    first, second = batch(2), batch(3, start=2)
    chain = PredictionChain([first, PredictionChain([second])])
    assert len(chain) == 5 and [p.id for p in chain] == [f"p{i}" for i in range(5)]
    assert chain[3].id == "p3" and chain[-1].id == "p4" and [p.id for p in chain[1:3]] == ["p1", "p2"]
    with pytest.raises(IndexError):
        chain[5]
    assert parts_of(chain) == [first, second] and parts_of(first) == [first]
