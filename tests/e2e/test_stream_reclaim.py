"""Reclaiming a dead reader's entries from a Redis stream (issue #14 point 2), against the system Redis on
127.0.0.1:6379, each test on stream keys of its own (``tidal-test:reclaim:…``, deleted afterwards).

A consumer ``a`` of the group reads entries and dies before acknowledging them (simulated: ``XREADGROUP`` as ``a``
without ``XACK``). tidal, as consumer ``b``, claims those pending longer than ``claim_idle`` (``XAUTOCLAIM``) and
collects them with its own pending entries and the new ones, once each, in id order; an entry delivered more
than ``max_deliveries`` times is a bad reading, as ``on_error`` says.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_stream_source import _system, pending, project, push, readings, table_of, tidal
from tidal import Workspace

redis = pytest.importorskip("redis")


@pytest.fixture
def stream() -> Iterator[tuple[Any, str]]:
    """The system broker, and a stream key of this test's own (deleted afterwards) with its group ``tidal``."""
    client = _system()
    key = f"tidal-test:reclaim:{uuid.uuid4().hex[:12]}:readings"
    client.xgroup_create(key, "tidal", id="0", mkstream=True)
    yield client, key
    client.delete(key)
    client.close()


def read_as(client: Any, key: str, consumer: str, count: int, *, start: str = ">") -> list[str]:
    """``XREADGROUP`` as ``consumer`` without acknowledging: a reader that dies before its ``XACK``."""
    answer = client.xreadgroup("tidal", consumer, {key: start}, count=count)
    return [i for i, _ in answer[0][1]] if answer else []


def held_by(client: Any, key: str) -> dict[str, int]:
    return {c["name"]: int(c["pending"]) for c in client.xpending(key, "tidal")["consumers"]}


def test_a_dead_consumers_entries_are_claimed_and_collected_once_in_order(tmp_path: Path,
                                                                         stream: tuple[Any, str]) -> None:
    client, key = stream
    ids = push(client, key, readings(0, 30))
    assert read_as(client, key, "a", 10) == ids[:10]   # a dies holding 0-9
    assert read_as(client, key, "b", 10) == ids[10:20]  # b's own run was killed holding 10-19
    assert read_as(client, key, "a", 10) == ids[20:]   # and a read 20-29 before it died
    ids += push(client, key, readings(30, 10))          # new ones: no one read them yet
    time.sleep(0.3)
    root = project(tmp_path, key, extra=", consumer: b, claim_idle: 100ms")
    with Workspace.open(root) as ws:
        first = ws.run()
        assert first.notes[0] == (f"collected 40 new readings from stream {key!r} since the start (last entry "
                                  f"{ids[-1]})")
        assert first.notes[1] == (f"stream {key!r}: claimed 20 entries pending longer than claim_idle (100ms) under "
                                  "other consumers (20 from 'a')")
        out = first.steps[0].outputs
        # each entry once, in id order: a's claimed, b's own pending and the new ones together
        assert table_of(ws, out["batch"])["stream_id"].tolist() == ids
        assert table_of(ws, out["snapshot"])["reading_id"].tolist() == list(range(40))
        assert client.xpending(key, "tidal")["pending"] == 0  # all acknowledged after the commit
        assert held_by(client, key) == {}

        again = ws.run()  # nothing is read twice
        assert again.notes == [f"no new readings on stream {key!r} since {ids[-1]}"]


@pytest.mark.parametrize("claim_idle", ["10m", "0"])
def test_entries_idle_less_than_claim_idle_are_left_to_their_consumer(tmp_path: Path, stream: tuple[Any, str],
                                                                      claim_idle: str) -> None:
    client, key = stream
    theirs = push(client, key, readings(0, 10))
    assert read_as(client, key, "a", 10) == theirs
    mine = push(client, key, readings(10, 30))
    time.sleep(0.3)  # idle 0.3s: under 10m, and 0 never claims
    root = project(tmp_path, key, extra=f", consumer: b, claim_idle: {claim_idle}")
    with Workspace.open(root) as ws:
        result = ws.run()
        assert result.notes == [f"collected 30 new readings from stream {key!r} since the start (last entry "
                                f"{mine[-1]})"]
        assert table_of(ws, result.steps[0].outputs["batch"])["stream_id"].tolist() == mine
    assert held_by(client, key) == {"a": 10}  # still a's, unacknowledged
    assert [p["message_id"] for p in client.xpending_range(key, "tidal", "-", "+", 20)] == theirs


def test_an_entry_past_max_deliveries_is_a_bad_reading(tmp_path: Path, stream: tuple[Any, str]) -> None:
    """A reading whose batches kept failing under ``a`` (read three times, never acknowledged): claimed, it is
    delivered a fourth time, past ``max_deliveries: 3``; refused (one line naming it, nothing stored or
    acknowledged), then skipped (left out, acknowledged, warned)."""
    client, key = stream
    [poison] = push(client, key, readings(100, 1))  # valid JSON: it is its delivery count that marks it
    for start in (">", "0", "0"):
        assert read_as(client, key, "a", 1, start=start) == [poison]
    assert client.xpending_range(key, "tidal", "-", "+", 1)[0]["times_delivered"] == 3
    good = push(client, key, readings(0, 40))
    time.sleep(0.3)
    extra = ", consumer: b, claim_idle: 100ms, max_deliveries: 3"
    root = project(tmp_path, key, extra=extra)
    proc = tidal(root, "run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert f"stream {key!r} entry {poison} was delivered 4 times, more than max_deliveries (3)" in lines[0]
    assert "nothing was stored or acknowledged" in lines[0] and "on_error: skip" in lines[0]
    with Workspace.open(root) as ws:
        assert ws.store.list_snapshots("sensors") == []
    assert held_by(client, key) == {"b": 41}  # claimed by b, nothing acknowledged

    skip = project(tmp_path / "skip", key, extra=extra + ", on_error: skip")
    with Workspace.open(skip) as ws:
        result = ws.run()
        assert result.notes[0].startswith(f"collected 40 new readings from stream {key!r}")
        assert result.notes[1] == (f"stream {key!r}: 1 entries left out (on_error: skip): {poison} (delivered 5 "
                                   "times, more than max_deliveries 3)")
        assert table_of(ws, result.steps[0].outputs["batch"])["stream_id"].tolist() == good
    assert pending(client, key) == 0  # the poison reading acknowledged with the batch: it never comes back


@pytest.mark.parametrize(("extra", "said"), [
    (", claim_idle: soon", "data.source.claim_idle: expected a duration (10m)"),
    (", claim_idle: -1s", "data.source.claim_idle: expected a duration (10m)"),
    (", max_deliveries: 0", "data.source.max_deliveries: expected a whole number (1 or more)"),
    (", max_deliveries: many", "data.source.max_deliveries: expected a whole number (1 or more)"),
])
def test_bad_claim_settings_are_one_spec_line(tmp_path: Path, extra: str, said: str) -> None:
    proc = tidal(project(tmp_path, "tidal-test:reclaim:unread", extra=extra), "run")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("error: tidal.yaml line 4: ") and said in lines[0], lines[0]


def test_reading_the_stream_whole_goes_in_slices(tmp_path: Path, stream: tuple[Any, str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """``read_source`` (a retrain without ``data.collect``, ``tidal drift``): ``XRANGE`` in slices of ``_SLICE``
    entries (7 here), every entry once, in order; nothing consumed."""
    from tidal.data.sources import read_source
    from tidal.data.sources import stream as broker_side
    from tidal.spec.source import RedisStreamSpec

    client, key = stream
    push(client, key, readings(0, 25))
    monkeypatch.setattr(broker_side, "_SLICE", 7)
    df = read_source(RedisStreamSpec(redis="redis://127.0.0.1:6379/0", stream=key), base_dir=tmp_path)
    assert df["reading_id"].tolist() == list(range(25))
    assert client.xpending(key, "tidal")["pending"] == 0


def test_a_reader_back_under_another_name_goes_on_from_the_same_table(tmp_path: Path,
                                                                      stream: tuple[Any, str]) -> None:
    """The batches are the group's: a pod restarted as consumer ``b`` after ``a`` committed trains on a's readings
    and its own, and reads none twice; a state an older tidal kept under the per-consumer key is read too."""
    from tidal.loop.stream import stream_state_key

    client, key = stream
    first_ids = push(client, key, readings(0, 20))
    root = project(tmp_path, key, extra=", consumer: a")
    with Workspace.open(root) as ws:
        assert ws.run().notes[0].startswith(f"collected 20 new readings from stream {key!r}")
    later_ids = push(client, key, readings(20, 15))
    spec = root / "tidal.yaml"
    spec.write_text(spec.read_text().replace("consumer: a", "consumer: b"))
    with Workspace.open(root) as ws:
        result = ws.run()
        assert result.notes[0] == (f"collected 15 new readings from stream {key!r} since {first_ids[-1]} (last "
                                   f"entry {later_ids[-1]})")
        assert table_of(ws, result.steps[0].outputs["snapshot"])["reading_id"].tolist() == list(range(35))
        # an older tidal's state, under the key that named the consumer: moved to the group's key, so kept
        state = ws.store.get_state(stream_state_key(ws.spec))
        legacy = stream_state_key(ws.spec, consumer=True)
        assert state is not None and legacy != stream_state_key(ws.spec)
        ws.store.put_state(legacy, state)
    fresh = project(tmp_path / "upgraded", key, extra=", consumer: b")
    with Workspace.open(fresh) as ws:
        ws.store.put_state(stream_state_key(ws.spec, consumer=True), state)
        for kept in state["batches"]:  # the upgraded project's store holds what the older tidal collected
            with Workspace.open(root) as old:
                ws.store.put_snapshot(old.store.get_snapshot(kept["snapshot"]))
                ws.artifacts.put(old.artifacts.get(kept["snapshot"]))
        more = push(client, key, readings(35, 5))
        got = ws.run()
        assert got.notes[0] == (f"collected 5 new readings from stream {key!r} since {later_ids[-1]} (last entry "
                                f"{more[-1]})")
        assert table_of(ws, got.steps[0].outputs["snapshot"])["reading_id"].tolist() == list(range(40))
        assert ws.store.get_state(stream_state_key(ws.spec))["marks"] == {key: more[-1]}
