"""The PredictionLog contract: every adapter (memory, SQLite, PostgreSQL) passes the same tests.

What only the SQL logs have (persistence, several processes, SIGKILL, query plans) is in
test_prediction_log_sql.py.
"""

from __future__ import annotations

import math
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidal.core.batches import PredictionBatch, PredictionChain
from tidal.core.entities import Feedback, Prediction
from tidal.core.errors import FeedbackRejected, PredictionNotFound, StorageError
from tidal.core.ids import IdRange, new_ids
from tidal.core.ports import PredictionLog
from tidal.storage import open_prediction_log

from ._make import DATETIMES, JSON, NESTED, PLUS2, PROPERTY, T0, TEXT, assert_utc, uid


def make_prediction(model: str = "churn", *, n: int = 0, **kw: Any) -> Prediction:
    fields: dict[str, Any] = dict(
        id=uid(), time=T0 + timedelta(seconds=n), model=model, version=1,
        inputs={"x": float(n), "colour": "red"}, output=n % 2, proba=[0.25, 0.75],
    )
    fields.update(kw)
    return Prediction(**fields)


def ids(predictions: list[Prediction]) -> list[str]:
    return [p.id for p in predictions]


def test_is_a_prediction_log(log: PredictionLog) -> None:
    assert isinstance(log, PredictionLog)


# -- append and read back -------------------------------------------------------------------------------


def test_round_trip_keeps_every_field(log: PredictionLog) -> None:
    p = Prediction(
        id="pred-" + uid(), time=datetime(2024, 5, 1, 14, 0, 0, 5, tzinfo=PLUS2), model="élec2", version=7,
        inputs=NESTED, output={"class": "UP", "rank": [1, 2]}, proba=[0.1, 0.9], deployment="canary",
        served=False, request_id="req-1",
    )
    log.append([p])
    got = log.get(p.id)
    assert got == p
    assert got.time == datetime(2024, 5, 1, 12, 0, 0, 5, tzinfo=UTC)
    assert_utc(got.time)
    assert got.label is None and got.label_time is None


def test_json_values_round_trip_and_nan_becomes_none(log: PredictionLog) -> None:
    p = make_prediction(
        inputs={"int": 3, "big": 2**80, "neg": -(2**70), "float": 0.1, "str": "日本 🌊 \ud800", "t": True,
                "f": False, "none": None, "list": [1, "a", None, [2.5]], "nan": math.nan, "inf": -math.inf},
        output=math.nan, proba=[0.5, math.nan],
    )
    log.append([p])
    got = log.get(p.id)
    assert got.inputs == {**p.inputs, "nan": None, "inf": None}
    assert type(got.inputs["big"]) is int and type(got.inputs["float"]) is float
    assert got.output is None and got.proba == [0.5, None]


def test_regressor_without_proba_and_naive_times(log: PredictionLog) -> None:
    p = make_prediction(output=12.5, proba=None, time=datetime(2024, 1, 2, 3, 4, 5))
    log.append([p])
    got = log.get(p.id)
    assert got.proba is None and got.output == 12.5
    assert got.time == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_get_unknown_raises_prediction_not_found(log: PredictionLog) -> None:
    with pytest.raises(PredictionNotFound, match="no prediction"):
        log.get("nope")


def test_empty_calls_do_nothing(log: PredictionLog) -> None:
    log.append([])
    assert log.add_feedback([]) == 0
    assert log.count(served=None) == 0


def test_values_that_are_not_json_are_refused_and_nothing_is_stored(log: PredictionLog) -> None:
    good, bad = make_prediction(), make_prediction(inputs={"when": {1, 2}})
    with pytest.raises(StorageError, match=r"prediction\.inputs"):
        log.append([good, bad])
    assert log.count(served=None) == 0


def test_a_prediction_logged_with_its_label_counts_as_labelled(log: PredictionLog) -> None:
    p = make_prediction(label="UP")
    log.append([p])
    got = log.get(p.id)
    assert got.label == "UP" and got.label_time == p.time  # no label_time given: the prediction's time
    assert log.count(labelled=True) == 1


# -- repeated ids: identical repeats are harmless, clashes refused -------------------------------------------


def test_appending_the_same_predictions_again_stores_them_once(log: PredictionLog) -> None:
    batch = [make_prediction(n=i) for i in range(3)]
    log.append(batch)
    log.append(batch)
    log.append([*batch[1:], batch[1]])
    assert log.window() == batch


def test_a_different_prediction_under_a_stored_id_is_refused_with_its_whole_batch(log: PredictionLog) -> None:
    stored = make_prediction()
    log.append([stored])
    new = make_prediction()
    clash = replace(stored, output=99)
    with pytest.raises(StorageError, match="different prediction") as info:
        log.append([new, clash])
    assert "already logged" in str(info.value)
    assert log.window() == [stored]
    with pytest.raises(PredictionNotFound):
        log.get(new.id)


def test_a_clash_inside_one_batch_is_refused(log: PredictionLog) -> None:
    p = make_prediction()
    with pytest.raises(StorageError, match="different prediction"):
        log.append([p, replace(p, version=2)])
    assert log.count(served=None) == 0


def test_feedback_after_a_repeated_append_is_kept(log: PredictionLog) -> None:
    p = make_prediction()
    log.append([p])
    log.add_feedback([Feedback(p.id, 1, T0)])
    log.append([p])  # a retry after the label arrived: the label stays
    assert log.get(p.id).label == 1


# -- a request's ids as a range (tidal.core.ids) ----------------------------------------------------------


def served_batch(n: int, *, output: int = 1, ids: Any = None) -> PredictionBatch:
    """What the server appends for one request of ``n`` rows: its ids an IdRange under a fresh prefix."""
    ids = new_ids(n) if ids is None else ids
    return PredictionBatch(ids=ids, time=T0, model="churn", version=1, inputs=[{"x": float(i)} for i in range(n)],
                           outputs=[output] * n, probas=[[0.25, 0.75]] * n, request_id="req")


def test_a_range_of_ids_is_found_id_by_id_and_takes_labels(log: PredictionLog) -> None:
    batch = served_batch(3)
    log.append(batch)
    assert [log.get(pid).inputs for pid in batch.ids] == [{"x": 0.0}, {"x": 1.0}, {"x": 2.0}]
    assert log.window() == list(batch)
    assert log.add_feedback([Feedback(batch.ids[2], 0, T0), Feedback(batch.ids[0], 1, T0)]) == 2
    assert [log.get(pid).label for pid in batch.ids] == [1, None, 0]
    # the prefix numbers three ids: a fourth is unknown, as is the prefix itself
    prefix = cast(IdRange, batch.ids).prefix
    fourth = prefix + "0003"
    for missing in (fourth, prefix):
        with pytest.raises(PredictionNotFound):
            log.get(missing)
    with pytest.raises(FeedbackRejected) as info:
        log.add_feedback([Feedback(batch.ids[1], 1, T0), Feedback(fourth, 1, T0)])
    assert (info.value.reason, info.value.index) == ("unknown", 1)
    assert log.get(batch.ids[1]).label is None


def test_a_range_appended_again_is_stored_once_and_a_different_one_is_refused(log: PredictionLog) -> None:
    batch = served_batch(4)
    log.append(batch)
    log.add_feedback([Feedback(batch.ids[1], 1, T0)])
    log.append(batch)  # a retry
    assert log.window() == [replace(p, label=1, label_time=T0) if p.id == batch.ids[1] else p for p in batch]
    with pytest.raises(StorageError, match="different prediction"):
        log.append(served_batch(4, output=0, ids=batch.ids))
    assert log.count(served=None) == 4


def test_several_ranges_in_one_append(log: PredictionLog) -> None:
    """A flush of the server holds the requests of several clients: a range each, one transaction."""
    first, second, third = served_batch(2), served_batch(1), served_batch(3)
    log.append(PredictionChain([first, second, third]))
    assert log.window() == [*first, *second, *third]
    assert all(log.get(pid).id == pid for b in (first, second, third) for pid in b.ids)


def test_ids_of_a_range_stored_one_by_one_are_the_same_ids(log: PredictionLog) -> None:
    """A prediction appended on its own under an id that a stored range holds is a repeat (or a clash), and
    so is a range whose ids were stored one by one."""
    ranged = served_batch(3)
    log.append(ranged)
    log.append([ranged[1]])  # the same prediction: a no-op
    with pytest.raises(StorageError, match="different prediction"):
        log.append([replace(ranged[2], output=7)])
    single = served_batch(2)
    log.append(list(single))  # records, not the range
    log.append(single)  # the same predictions as a range: a no-op
    with pytest.raises(StorageError, match="different prediction"):
        log.append(served_batch(2, output=0, ids=single.ids))
    assert log.count(served=None) == 5 and log.window() == [*ranged, *single]


# -- window and count -----------------------------------------------------------------------------------


def test_window_is_in_append_order_and_last_keeps_the_newest(log: PredictionLog) -> None:
    # Times run backwards: the order is the order of appending, not of the times.
    batch = [make_prediction(time=T0 - timedelta(seconds=i)) for i in range(10)]
    log.append(batch[:4])
    for p in batch[4:]:
        log.append([p])
    assert ids(log.window()) == ids(batch)
    assert ids(log.window(last=3)) == ids(batch[-3:])
    assert ids(log.window(last=100)) == ids(batch)
    assert log.window(last=0) == [] and log.window(last=-1) == []


def test_window_filters(log: PredictionLog) -> None:
    a1 = make_prediction("a", n=0)
    a2 = make_prediction("a", n=10, version=2)
    a_shadow = make_prediction("a", n=20, version=2, served=False, deployment="shadow")
    a_canary = make_prediction("a", n=30, version=2, deployment="canary")
    b1 = make_prediction("b", n=40)
    log.append([a1, a2, a_shadow, a_canary, b1])
    log.add_feedback([Feedback(a2.id, 0, T0), Feedback(a_shadow.id, 1, T0)])
    t10 = T0 + timedelta(seconds=10)

    assert ids(log.window(model="a")) == ids([a1, a2, a_canary])
    assert ids(log.window(model="a", served=None)) == ids([a1, a2, a_shadow, a_canary])
    assert ids(log.window(model="a", served=False)) == ids([a_shadow])
    assert ids(log.window(model="a", version=2)) == ids([a2, a_canary])
    assert ids(log.window(model="a", since=t10)) == ids([a2, a_canary])  # since: inclusive
    assert ids(log.window(model="a", until=t10)) == ids([a1])  # until: exclusive
    assert ids(log.window(since=t10.astimezone(PLUS2), until=T0 + timedelta(seconds=31))) == ids([a2, a_canary])
    assert ids(log.window(model="a", labelled=True)) == ids([a2])
    assert ids(log.window(model="a", labelled=False)) == ids([a1, a_canary])
    assert ids(log.window(model="a", deployment="canary")) == ids([a_canary])
    assert ids(log.window(model="a", version=2, served=None, last=2)) == ids([a_shadow, a_canary])
    assert log.window(model="nobody") == []

    assert log.count() == 4
    assert log.count(served=None) == 5
    assert log.count(model="a") == 3
    assert log.count(model="a", version=2) == 2
    assert log.count(model="a", since=t10) == 2
    assert log.count(model="a", labelled=True) == 1
    assert log.count(model="a", labelled=True, served=None) == 2
    assert log.count(model="a", labelled=False) == 2


# -- feedback -------------------------------------------------------------------------------------------


def test_feedback_attaches_labels(log: PredictionLog) -> None:
    batch = [make_prediction(n=i) for i in range(3)]
    log.append(batch)
    when = T0 + timedelta(hours=1)
    labels: list[Any] = [{"y": [1, 2]}, "DOWN", None]
    stored = log.add_feedback([Feedback(p.id, y, when.astimezone(PLUS2)) for p, y in zip(batch, labels, strict=True)])
    assert stored == 3
    for p, y in zip(batch, labels, strict=True):
        got = log.get(p.id)
        assert got.label == y and got.label_time == when
        assert_utc(got.label_time)
    assert log.count(labelled=True) == 3  # a None label is still a label that arrived
    assert [p.label for p in log.window(labelled=True)] == labels


def test_feedback_for_an_unknown_id_is_rejected_and_nothing_is_stored(log: PredictionLog) -> None:
    p = make_prediction()
    log.append([p])
    with pytest.raises(FeedbackRejected) as info:
        log.add_feedback([Feedback(p.id, "SECRET-LABEL", T0), Feedback("ghost", "SECRET-LABEL", T0)])
    err = info.value
    assert (err.reason, err.prediction_id, err.index) == ("unknown", "ghost", 1)
    assert "ghost" in str(err) and "item 1" in str(err)
    assert "SECRET-LABEL" not in str(err)
    assert log.get(p.id).label is None and log.count(labelled=True) == 0


def test_a_second_label_is_a_duplicate_unless_overwriting(log: PredictionLog) -> None:
    p, q = make_prediction(), make_prediction()
    log.append([p, q])
    log.add_feedback([Feedback(p.id, "UP", T0)])
    with pytest.raises(FeedbackRejected) as info:
        log.add_feedback([Feedback(q.id, "SECRET-LABEL", T0), Feedback(p.id, "SECRET-LABEL", T0)])
    err = info.value
    assert (err.reason, err.prediction_id, err.index) == ("duplicate", p.id, 1)
    assert "already has a label" in str(err) and "SECRET-LABEL" not in str(err)
    assert log.get(p.id).label == "UP" and log.get(q.id).label is None  # all or nothing

    later = T0 + timedelta(days=1)
    assert log.add_feedback([Feedback(q.id, "DOWN", later), Feedback(p.id, "DOWN", later)], overwrite=True) == 2
    assert log.get(p.id).label == "DOWN" and log.get(p.id).label_time == later
    assert log.get(q.id).label == "DOWN"


def test_the_same_id_twice_in_one_batch_is_a_duplicate(log: PredictionLog) -> None:
    p = make_prediction()
    log.append([p])
    for overwrite in (False, True):
        with pytest.raises(FeedbackRejected) as info:
            log.add_feedback([Feedback(p.id, 1, T0), Feedback(p.id, 2, T0)], overwrite=overwrite)
        assert (info.value.reason, info.value.index) == ("duplicate", 1)
        assert "more than once" in str(info.value)
    assert log.get(p.id).label is None


def test_concurrent_first_labels_for_one_prediction_store_exactly_one(log: PredictionLog) -> None:
    preds = [make_prediction(n=i) for i in range(20)]
    log.append(preds)
    outcomes: list[str] = []
    barrier = threading.Barrier(4)

    def label(n: int) -> None:
        barrier.wait()
        for p in preds:
            try:
                log.add_feedback([Feedback(p.id, n, T0)])
                outcomes.append("stored")
            except FeedbackRejected as exc:
                outcomes.append(exc.reason)

    workers = [threading.Thread(target=label, args=(n,)) for n in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(outcomes) == ["duplicate"] * 60 + ["stored"] * 20
    assert log.count(labelled=True) == 20


# -- many threads -----------------------------------------------------------------------------------------


def test_many_threads_appending_never_lose_or_duplicate(log: PredictionLog) -> None:
    threads, calls = 8, 60
    errors: list[BaseException] = []
    returned: list[list[str]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def work(n: int) -> None:
        try:
            barrier.wait()
            for i in range(calls):
                p = make_prediction(f"m{n % 2}", n=i)
                log.append([p])
                returned[n].append(p.id)
                if i % 10 == 0:  # what returned is readable at once, from any connection
                    assert log.get(p.id).id == p.id
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    stored = ids(log.window())
    assert len(stored) == len(set(stored)) == threads * calls
    assert set(stored) == {i for r in returned for i in r}
    for r in returned:  # one thread's appends keep their order
        assert [i for i in stored if i in set(r)] == r
    assert log.count(model="m0") == log.count(model="m1") == threads * calls // 2


def test_a_closed_log_refuses_work(log_url: str) -> None:
    opened = open_prediction_log(log_url)
    opened.close()
    with pytest.raises(StorageError, match="closed"):
        opened.append([make_prediction()])
    with pytest.raises(StorageError, match="closed"):
        opened.window()


# -- properties -------------------------------------------------------------------------------------------


PREDICTION_PARTS = st.fixed_dictionaries({
    "time": DATETIMES,
    "inputs": st.dictionaries(TEXT, JSON, max_size=5),
    "output": JSON,
    "proba": st.none() | st.lists(st.floats(0, 1), max_size=3),
    "served": st.booleans(),
    "deployment": st.sampled_from(["direct", "canary", "shadow"]),
    "request_id": st.none() | TEXT,
})


@PROPERTY
@given(parts=st.lists(PREDICTION_PARTS, min_size=1, max_size=6), poison_at=st.integers(0, 6),
       retry=st.integers(0, 6))
def test_appending_the_same_batch_after_a_failure_stores_it_once(
    log: PredictionLog, parts: list[dict[str, Any]], poison_at: int, retry: int,
) -> None:
    model = uid()
    batch = [Prediction(id=f"{model}-{i}", model=model, version=1, **kw) for i, kw in enumerate(parts)]
    poisoned = [*batch]
    poisoned.insert(poison_at % (len(batch) + 1), make_prediction(model, inputs={"x": object()}))
    with pytest.raises(StorageError):
        log.append(poisoned)
    assert log.count(model=model, served=None) == 0

    log.append(batch)
    log.append(batch)  # a retry after an unknown outcome
    log.append(batch[retry % len(batch):])  # a partial one
    assert log.window(model=model, served=None) == batch
    with pytest.raises(StorageError, match="different prediction"):
        log.append([replace(batch[0], version=2)])
    assert log.window(model=model, served=None) == batch


@PROPERTY
@given(value=JSON)
def test_any_json_value_round_trips(log: PredictionLog, value: Any) -> None:
    p = make_prediction(inputs={"v": value}, output=value)
    log.append([p])
    got = log.get(p.id)
    assert got.inputs == {"v": value} and got.output == value


# -- column-wise batches (what the server appends) ----------------------------------------------------------


def _batch(n: int, **kw: Any) -> Any:
    from tidal.core.batches import PredictionBatch

    fields: dict[str, Any] = dict(ids=[uid() for _ in range(n)], time=T0, model="churn", version=3,
                                  inputs=[{"x": float(i), "colour": "red"} for i in range(n)],
                                  outputs=[i % 2 for i in range(n)], probas=[[0.5, 0.5]] * n, request_id="r")
    fields.update(kw)
    return PredictionBatch(**fields)


def test_a_batch_is_stored_as_the_predictions_it_holds(log: PredictionLog) -> None:
    from tidal.core.batches import PredictionChain

    one, two = _batch(3), _batch(2, probas=None, deployment="canary", version=4, time=T0 + timedelta(seconds=5))
    single = make_prediction(n=9)
    log.append(PredictionChain([one, [single], two]))
    assert log.window(model="churn") == [*one, single, *two]
    assert [p.proba for p in log.window(model="churn", version=4)] == [None, None]
    assert log.get(two.ids[1]).deployment == "canary"
    assert log.count(model="churn") == 6
    log.add_feedback([Feedback(one.ids[2], 1, T0)])
    assert log.window(model="churn", labelled=True) == [replace(one[2], label=1, label_time=T0)]
    log.append(one)  # the very same batch again: stored once
    assert log.count(model="churn") == 6
    with pytest.raises(StorageError, match="different prediction"):
        log.append(_batch(1, ids=[one.ids[0]], outputs=[42]))


def test_a_batch_value_that_is_not_json_stores_nothing_of_the_call(log: PredictionLog) -> None:
    from tidal.core.batches import PredictionChain

    bad = _batch(2, inputs=[{"x": 1.0}, {"x": object()}])
    with pytest.raises(StorageError, match=r"prediction\.inputs"):
        log.append(PredictionChain([_batch(1), bad]))
    assert log.count(served=None) == 0
