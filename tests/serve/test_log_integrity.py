"""What the prediction log stores is what the server validated and predicted, whatever JSON the client wrote.

The attack of issue #9: a body with the ``instances`` key twice. A JSON reader keeps the last one (that is
what was checked and predicted) while the server used to store the raw text after the first one, which is
not one JSON array: every later read of the window failed, and monitoring and retraining with it. Now the
log stores the rows it predicted, encoded again; a property test sends generated bodies (repeated keys at
both levels, escaped key spellings, number spellings, huge integers, unicode) and reads every answered
prediction back through ``get`` and ``window``.

A log written by the old server (holding such a batch) is read past: ``tidal monitor`` and ``tidal loop``
skip the batch and say so, once, in an event; ``tidal predictions check`` finds it, exits 4, and moves it
aside with ``--quarantine``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.serve.server import ServerProcess

ROW = {"period": 0.5, "nswprice": 0.06, "nswdemand": 0.42, "vicprice": 0.003, "vicdemand": 0.42, "transfer": 0.41}
JSON_HEADERS = {"content-type": "application/json"}
ATTACK = b'{"instances": [{"period": "EVIL"}], "instances": [' + json.dumps(ROW).encode() + b"]}"


def same(a: Any, b: Any) -> bool:
    """Equal, with equal types all the way down (1 is not 1.0, True is not 1; -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)
    return bool(a == b)


def test_a_repeated_instances_key_is_stored_as_predicted_and_monitoring_reads_it(
        server: ServerProcess, project: Path, cli: Callable[..., Any]) -> None:
    from tidal import Workspace

    answer = httpx.post(f"{server.url}/predict", content=ATTACK, headers=JSON_HEADERS, timeout=10)
    assert answer.status_code == 200, answer.text
    (pid,) = answer.json()["prediction_ids"]
    with Workspace.open(project) as ws:
        assert same(ws.predictions.get(pid).inputs, ROW)  # the row that was checked and predicted
        assert [p.id for p in ws.predictions.window(model="elec2", last=1)] == [pid]
        assert ws.predictions.skipped() == []
    monitor = cli("-C", str(project), "monitor", "--json")
    assert monitor.returncode == 0, monitor.stderr
    assert json.loads(monitor.stdout)["window"]["rows"] == 1
    tick = cli("-C", str(project), "loop", "--once", "--json")
    assert tick.returncode == 0, tick.stderr
    check = cli("-C", str(project), "predictions", "check")
    assert check.returncode == 0 and "every stored prediction reads back" in check.stdout, check.stdout


# -- generated bodies --------------------------------------------------------------------------------------

NUMBER = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e6, max_value=1e6).map(repr),
    st.integers(-999, 999).map(lambda i: f"{i}e-3"),
    st.integers(0, 9).map(lambda i: f"{i}.50E+1"),
    st.sampled_from(["-0.0", "0", "1e2", "123456789012345678901234567890", "18446744073709551615", "1.0"]),
)
STRING = st.text(max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False))
VALUE = st.one_of(NUMBER, NUMBER, NUMBER, STRING, st.sampled_from(["null", "true", "[1]", "{}"]))


@st.composite
def spelled(draw: st.DrawFn, key: str) -> str:
    """``key`` as a JSON string, now and then with one letter written as a ``\\u`` escape."""
    if not draw(st.booleans()):
        return json.dumps(key)
    i = draw(st.integers(0, len(key) - 1))
    return '"' + key[:i] + f"\\u{ord(key[i]):04x}" + key[i + 1:] + '"'


@st.composite
def row_text(draw: st.DrawFn) -> str:
    members = []
    for column in ROW:
        if draw(st.integers(0, 5)) == 0:  # a repeated key: an earlier value the reader drops
            members.append(f"{draw(spelled(column))}: {draw(VALUE)}")
        members.append(f"{draw(spelled(column))}:{draw(st.sampled_from(['', ' ', chr(10)]))}{draw(NUMBER)}")
    if draw(st.integers(0, 9)) == 0:
        members.append(f'{json.dumps("extra")}: 1')
    return "{" + ", ".join(members) + "}"


@st.composite
def body(draw: st.DrawFn) -> bytes:
    rows = "[" + ", ".join(draw(st.lists(row_text(), min_size=1, max_size=4))) + "]"
    members = []
    for _ in range(draw(st.integers(0, 2))):  # earlier "instances" members that the reader drops
        members.append(f'{draw(spelled("instances"))}: {draw(st.sampled_from(["[]", "[{}]", rows, "1"]))}')
    members.append(f'{draw(spelled("instances"))}: {rows}')
    return ("{" + ",".join(members) + "}").encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_whatever_predict_answers_reads_back_as_predicted(data: st.DataObject, server: ServerProcess,
                                                          project: Path) -> None:
    from tidal import Workspace

    sent = data.draw(body())
    answer = httpx.post(f"{server.url}/predict", content=sent, headers=JSON_HEADERS, timeout=10)
    assert answer.status_code in (200, 400, 422), answer.text
    if answer.status_code != 200:
        return
    predicted = orjson.loads(sent)["instances"]  # what the server parsed, checked and predicted
    ids = answer.json()["prediction_ids"]
    with Workspace.open(project) as ws:
        log = ws.predictions
        for pid, row in zip(ids, predicted, strict=True):
            assert same(log.get(pid).inputs, row), (sent, log.get(pid).inputs, row)
        window = {p.id: p for p in log.window(model="elec2", last=len(ids))}
        assert all(same(window[pid].inputs, row) for pid, row in zip(ids, predicted, strict=True))
        assert log.skipped() == []
        assert all(math.isfinite(v) for row in predicted for v in row.values())


# -- a log the old server wrote ----------------------------------------------------------------------------

def test_an_unreadable_batch_is_skipped_reported_once_and_quarantined(
        project: Path, cli: Callable[..., Any]) -> None:
    import sqlalchemy as sa

    from tidal import Workspace
    from tidal.storage.testing import tables as t

    with Workspace.open(project) as ws:
        rows = [{**ROW, "period": i / 10} for i in range(6)]
        from tidal.core.batches import PredictionBatch
        from tidal.core.ids import new_ids

        for i in range(3):
            ws.predictions.append(PredictionBatch(ids=new_ids(2), time=ws.clock.now(), model="elec2", version=1,
                                                  inputs=rows[2 * i:2 * i + 2], outputs=[0, 1],
                                                  probas=[[0.4, 0.6], [0.3, 0.7]], request_id=f"r{i}"))
        db = ws.settings.predictions_url
    engine = sa.create_engine(db)
    with engine.begin() as conn:  # what the old server stored for the attack body
        seq = conn.execute(sa.select(sa.func.min(t.prediction_batches.c.seq))).scalar()
        conn.execute(t.prediction_batches.update().where(t.prediction_batches.c.seq == seq + 1).values(
            inputs='[{"period": "EVIL"}], "instances": [' + json.dumps(ROW) + "]"))
    engine.dispose()

    for _ in range(2):
        monitor = cli("-C", str(project), "monitor")
        assert monitor.returncode == 0, monitor.stderr
        assert "2 stored predictions (1 batch) cannot be read" in monitor.stdout, monitor.stdout
    with Workspace.open(project) as ws:
        (event,) = ws.events(kind="predictions.unreadable")  # reported once, not on every read
        assert event.data["refs"] == [f"batch {seq + 1}"] and "--quarantine" in event.message
        reports = ws.reports()
        assert reports[0].window["rows"] == 4 and reports[0].window["unreadable"] == {"batches": 1, "predictions": 2}
    assert cli("-C", str(project), "loop", "--once").returncode == 0

    check = cli("-C", str(project), "predictions", "check", "--json")
    assert check.returncode == 4, check.stderr
    found = json.loads(check.stdout)
    assert (found["batches"], found["predictions"], found["quarantined"]) == (3, 6, 0)
    assert [u["ref"] for u in found["unreadable"]] == [f"batch {seq + 1}"]
    moved = cli("-C", str(project), "predictions", "check", "--quarantine")
    assert moved.returncode == 0 and "moved 1 to quarantine" in moved.stdout, moved.stdout
    again = cli("-C", str(project), "predictions", "check")
    assert again.returncode == 0 and "every stored prediction reads back" in again.stdout
    with Workspace.open(project) as ws:
        assert [e.kind for e in ws.events(kind="predictions.quarantined")] == ["predictions.quarantined"]
        assert len(ws.predictions.window(model="elec2")) == 4
