"""A sensor stream as ``data.source`` (issue #14 points 2 and 5), against real Redis brokers: the system one on
127.0.0.1:6379 (each test on stream keys of its own, deleted afterwards) and, for a broker restart and a
password, a ``redis-server`` the test starts on a free port and stops by its pid.

Each ``tidal run`` collects the readings not yet acknowledged as a batch snapshot; a run killed between the
read and the acknowledgement (a test-only hook stops it there) loses nothing and counts nothing twice.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidal import Workspace
from tidal.core.errors import SchemaError, SourceError
from tidal.data.profile import profile_frame
from tidal.data.snapshot import read_snapshot_bytes

redis = pytest.importorskip("redis")

SYSTEM = "redis://127.0.0.1:6379/0"
SPEC = """\
version: 1
name: sensors
data:
  source: {{redis: "{url}", stream: {stream}, retry_for: {retry_for}{extra}}}
  target: failed
  time: at
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {{max_iter: 300}}
validate:
  split: {{method: random, test_size: 0.3}}
"""
TZ = timezone(timedelta(hours=2))


def _system() -> Any:
    client = redis.Redis.from_url(SYSTEM, decode_responses=True, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    return client


@pytest.fixture
def keys() -> Iterator[tuple[Any, str]]:
    """The system broker and a key prefix of this test's own; every key under it is deleted afterwards."""
    client = _system()
    prefix = f"tidal-test:{uuid.uuid4().hex[:12]}"
    yield client, prefix
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)
    client.close()


def readings(start: int, n: int, *, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` readings numbered from ``start``: a float, a text and a time with a zone, and the label."""
    rng = np.random.default_rng(seed + start)
    base = datetime(2026, 12, 1, 8, 0, tzinfo=TZ)
    out = []
    for i in range(start, start + n):
        temp = float(np.round(rng.normal(24.0, 3.0), 3))
        out.append({"reading_id": i, "temp": temp, "site": ["north", "south", "east"][i % 3],
                    "at": (base + timedelta(minutes=i)).isoformat(), "failed": int(temp > 24.0)})
    return out


def push(client: Any, stream: str, rows: list[dict[str, Any]]) -> list[str]:
    return [client.xadd(stream, {"data": json.dumps(r)}) for r in rows]


def project(tmp_path: Path, stream: str, *, url: str = SYSTEM, extra: str = "", retry_for: str = "1s") -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "tidal.yaml").write_text(SPEC.format(url=url, stream=stream, extra=extra, retry_for=retry_for))
    return tmp_path


def pending(client: Any, stream: str, group: str = "tidal") -> int:
    return int(client.xpending(stream, group)["pending"])


def table_of(ws: Workspace, digest: str) -> pd.DataFrame:
    return read_snapshot_bytes(ws.artifacts.get(digest))


def _env(**more: str) -> dict[str, str]:
    return {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "TERM": "dumb", **more}


def tidal(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tidal", *args], cwd=cwd, capture_output=True, text=True,
                          env=_env(**env), timeout=120)


def halted_at(cwd: Path, stage: str) -> tuple[subprocess.Popen[str], Path]:
    """``tidal run`` in a subprocess, once the hook says it reached ``stage`` (read: the batch is stored, nothing
    committed; commit: the state is committed, nothing acknowledged); it goes on when the flag file is removed."""
    flag = cwd / f"halted-{stage}"
    proc = subprocess.Popen([sys.executable, "-m", "tidal", "run"], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(TIDAL_TEST_STREAM_HALT=f"{stage}:{flag}"))
    deadline = time.monotonic() + 60
    while not flag.exists():
        if proc.poll() is not None:
            raise AssertionError(f"tidal run ended before {stage}: {proc.communicate()}")
        assert time.monotonic() < deadline, f"tidal run never reached {stage}"
        time.sleep(0.05)
    return proc, flag


def killed_at(cwd: Path, stage: str) -> None:
    """``tidal run`` in a subprocess, SIGKILLed once it reached ``stage`` (:func:`halted_at`)."""
    proc, _ = halted_at(cwd, stage)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)


# -- the good path ---------------------------------------------------------------------------------------

def test_each_run_collects_the_new_readings_once_with_their_types(tmp_path: Path, keys: tuple[Any, str]) -> None:
    client, prefix = keys
    stream = f"{prefix}:readings"
    ids = push(client, stream, readings(0, 60))
    root = project(tmp_path, stream)
    with Workspace.open(root) as ws:
        first = ws.run()
        assert first.notes == [f"collected 60 new readings from stream {stream!r} since the start (last entry "
                               f"{ids[-1]})"]
        assert pending(client, stream) == 0  # acknowledged once committed
        collect = first.steps[0].outputs
        batch = table_of(ws, collect["batch"])
        # the batch holds each reading's entry id; the types survive: floats, text, times with a zone (as UTC)
        assert batch["stream_id"].tolist() == ids
        assert batch["temp"].dtype == "float64" and batch["reading_id"].dtype == "int64"
        assert pd.api.types.is_string_dtype(batch["site"]) and batch["site"].iloc[:3].tolist() == ["north", "south",
                                                                                                   "east"]
        assert isinstance(batch["at"].dtype, pd.DatetimeTZDtype) and str(batch["at"].dt.tz) == "UTC"
        assert batch["at"].iloc[0] == pd.Timestamp("2026-12-01T06:00:00Z")
        table = table_of(ws, collect["snapshot"])
        assert "stream_id" not in table.columns and len(table) == 60
        # the first table's profile is read off its batch's: the profile the table's own rows give
        assert ws.store.get_snapshot(collect["snapshot"]).profile == profile_frame(table)
        assert ws.store.get_snapshot(collect["batch"]).source == f"{SYSTEM} stream {stream}"

        idle = ws.run()  # nothing new: the same table, every later step reused
        assert idle.notes == [f"no new readings on stream {stream!r} since {ids[-1]}"]
        assert idle.steps[0].outputs["snapshot"] == collect["snapshot"]

        more = push(client, stream, readings(60, 40))
        grown = ws.run()
        assert grown.notes[0].startswith(f"collected 40 new readings from stream {stream!r} since {ids[-1]}")
        out = grown.steps[0].outputs
        assert (out["new_rows"], out["rows"], out["batches"], out["marks"]) == (40, 100, 2, {stream: more[-1]})
        assert table_of(ws, out["snapshot"])["reading_id"].tolist() == list(range(100))
        kinds = [e.kind for e in reversed(ws.events()) if e.kind in ("data.collected", "data.no_new_rows")]
        assert kinds == ["data.collected", "data.no_new_rows", "data.collected"]
    assert pending(client, stream) == 0


def test_labels_on_their_own_stream_join_by_id_when_they_arrive(tmp_path: Path, keys: tuple[Any, str]) -> None:
    client, prefix = keys
    stream, label_stream = f"{prefix}:readings", f"{prefix}:labels"
    rows = readings(0, 90)
    push(client, stream, [{k: v for k, v in r.items() if k != "failed"} for r in rows])  # no label on a reading
    push(client, label_stream, [{"reading_id": r["reading_id"], "failed": r["failed"]} for r in rows[:60]])
    root = project(tmp_path, stream, extra=f", labels: {{stream: {label_stream}, id: reading_id}}")
    with Workspace.open(root) as ws:
        first = ws.run()
        assert first.notes[0].endswith("; 60 new labels, 30 readings wait for a label")
        table = table_of(ws, first.steps[0].outputs["snapshot"])
        assert table["reading_id"].tolist() == list(range(60))
        assert table["failed"].tolist() == [r["failed"] for r in rows[:60]]
        push(client, label_stream, [{"reading_id": r["reading_id"], "failed": r["failed"]} for r in rows[60:]])
        second = ws.run()  # no new reading, but their labels came: the waiting readings join the table
        assert second.notes[0] == (f"no new readings on stream {stream!r} since "
                                   f"{first.steps[0].outputs['marks'][stream]}; 30 new labels, 0 readings wait for a "
                                   "label")
        table = table_of(ws, second.steps[0].outputs["snapshot"])
        assert table["reading_id"].tolist() == list(range(90))
    assert pending(client, stream) == 0 and pending(client, label_stream) == 0


def test_wait_holds_a_collection_open_for_the_first_new_reading(tmp_path: Path, keys: tuple[Any, str]) -> None:
    client, prefix = keys
    stream = f"{prefix}:readings"
    push(client, stream, readings(0, 30))
    root = project(tmp_path, stream, extra=", wait: 5s")
    with Workspace.open(root) as ws:
        ws.run()

        def later() -> None:  # 20 readings in one transaction, while the collection waits
            time.sleep(0.5)
            with client.pipeline(transaction=True) as pipe:
                for row in readings(30, 20):
                    pipe.xadd(stream, {"data": json.dumps(row)})
                pipe.execute()

        pusher = threading.Thread(target=later)
        pusher.start()
        collect = ws.run().steps[0]
        pusher.join()
        assert collect.outputs["new_rows"] == 20 and collect.outputs["rows"] == 50
        assert collect.duration_s is not None and collect.duration_s < 4.5  # woken by the readings, not the 5 s


# -- a kill mid-batch ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", ["read", "commit"])
def test_a_consumer_killed_mid_batch_loses_nothing_and_counts_nothing_twice(
        tmp_path: Path, keys: tuple[Any, str], stage: str) -> None:
    client, prefix = keys
    stream = f"{prefix}:readings"
    ids = push(client, stream, readings(0, 50))
    root = project(tmp_path, stream)
    killed_at(root, stage)
    assert pending(client, stream) == 50  # read, never acknowledged
    with Workspace.open(root) as ws:
        stored = {s.digest for s in ws.store.list_snapshots("sensors")}  # the killed run stored its batch
    if stage == "commit":
        push(client, stream, readings(50, 10))
    with Workspace.open(root) as ws:
        again = ws.run()
        out = again.steps[0].outputs
        table = table_of(ws, out["snapshot"])
        if stage == "read":  # the pending readings are collected again: the same content-addressed batch
            assert (out["new_rows"], out["batches"]) == (50, 1) and out["batch"] in stored
            assert table["reading_id"].tolist() == list(range(50))  # each reading once, none lost
            assert [e.kind for e in ws.events() if e.kind == "data.collected"] == ["data.collected"]
        else:  # the killed run had committed them: only acknowledged now
            assert table["reading_id"].tolist() == list(range(60))  # each reading once, none lost
            assert (out["new_rows"], out["batches"]) == (10, 2)
            assert again.notes[0].endswith("; 50 entries read before were already collected (acknowledged now)")
            assert ids[-1] in again.notes[0]
    assert pending(client, stream) == 0


def test_two_runs_at_once_count_each_reading_once(tmp_path: Path, keys: tuple[Any, str]) -> None:
    """A run halted after its read; another run of the same consumer collects the same pending readings and
    commits; the first, let go, finds them recorded meanwhile and records nothing."""
    client, prefix = keys
    stream = f"{prefix}:readings"
    push(client, stream, readings(0, 40))
    root = project(tmp_path, stream)
    first, flag = halted_at(root, "read")
    push(client, stream, readings(40, 5))
    with Workspace.open(root) as ws:
        out = ws.run().steps[0].outputs  # the 40 pending (delivered to the halted run) and the 5 new ones
        assert (out["new_rows"], out["batches"]) == (45, 1)
    flag.unlink()
    _, err = first.communicate(timeout=60)
    assert first.returncode == 2
    assert f"another run collected 40 of this batch's readings from stream {stream!r} meanwhile" in err, err
    with Workspace.open(root) as ws:
        again = ws.run().steps[0].outputs
        assert (again["new_rows"], again["batches"]) == (0, 1)
        assert table_of(ws, again["snapshot"])["reading_id"].tolist() == list(range(45))
    assert pending(client, stream) == 0


# -- a broker restart ------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A redis-server of the test's own, persisting every write (append-only file, fsync always)."""

    def __init__(self, folder: Path, *, password: str | None = None) -> None:
        self.folder, self.port, self.password = folder, _free_port(), password
        folder.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Server:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
                "--appendonly", "yes", "--appendfsync", "always", "--save", ""]
        if self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = self.client()
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)

    def client(self) -> Any:
        return redis.Redis(port=self.port, password=self.password, decode_responses=True)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    own = Server(tmp_path / "broker").start()
    yield own
    own.kill()


def test_pending_readings_survive_a_broker_restart_and_are_collected_once(tmp_path: Path, server: Server) -> None:
    client = server.client()
    push(client, "readings", readings(0, 40))
    root = project(tmp_path / "p", "readings", url=server.url)
    killed_at(root, "read")  # read through the group, never acknowledged
    assert pending(client, "readings") == 40
    server.kill()  # the broker dies (SIGKILL: no shutdown save; the append-only file holds every write)
    server.start()
    client = server.client()
    assert pending(client, "readings") == 40  # the group and its pending entries came back
    push(client, "readings", readings(40, 20))
    with Workspace.open(root) as ws:
        out = ws.run().steps[0].outputs
        assert table_of(ws, out["snapshot"])["reading_id"].tolist() == list(range(60))
        assert out["new_rows"] == 60
        server.kill()
        server.start()  # acknowledged before the restart: nothing comes back
        assert ws.run().notes[0].startswith("no new readings on stream 'readings'")
    assert pending(server.client(), "readings") == 0


# -- bad input (issue #14 point 5) ----------------------------------------------------------------------

def test_a_broker_down_at_start_is_one_line_after_a_bounded_retry(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens there
    root = project(tmp_path, "readings", url=url)
    started = time.monotonic()
    proc = tidal(root, "run")
    spent = time.monotonic() - started
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and f"the broker {url} stream readings does not answer" in lines[0], proc.stderr
    assert "tries in 1." in lines[0] and "retry_for" in lines[0]
    assert spent < 25  # retry_for: 1s (the line says how long it tried), plus the interpreter's start
    with Workspace.open(root) as ws:
        assert ws.store.list_snapshots("sensors") == []
        failed = ws.store.list_events(kind="run.failed")
        assert len(failed) == 1 and "does not answer" in failed[0].message


def test_a_wrong_password_is_one_line_without_the_secret_and_no_retry(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    own = Server(tmp_path / "broker", password="right-horse-battery-4711").start()
    try:
        push(own.client(), "readings", readings(0, 40))
        root = project(tmp_path / "p", "readings", url=own.url, extra=', password: "${REDIS_PASSWORD}"',
                       retry_for="30s")
        started = time.monotonic()
        proc = tidal(root, "run", REDIS_PASSWORD="wrong-staple-0815")
        assert time.monotonic() - started < 28  # not retried for retry_for's 30 s (the rest: a loaded machine)
        assert proc.returncode == 2
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and "refused the credentials" in lines[0], proc.stderr
        assert "wrong-staple-0815" not in proc.stdout + proc.stderr
        with Workspace.open(root) as ws:
            assert ws.store.list_snapshots("sensors") == []
            assert len(ws.store.list_events(kind="run.failed")) == 1
        assert not [p for p in root.rglob("*") if p.is_file() and b"wrong-staple-0815" in p.read_bytes()]
        nopass = project(tmp_path / "q", "readings", url=own.url)  # a password is needed, none given
        with Workspace.open(nopass) as ws, pytest.raises(SourceError, match="refused the credentials"):
            ws.run()
        monkeypatch.setenv("REDIS_PASSWORD", "right-horse-battery-4711")  # the right one: read, and never stored
        with Workspace.open(root) as ws:
            assert ws.run().steps[0].outputs["new_rows"] == 40
            assert {s.source for s in ws.store.list_snapshots("sensors")} == {f"{own.url} stream readings"}
        assert not [p for p in root.rglob("*") if p.is_file() and b"right-horse-battery-4711" in p.read_bytes()]
    finally:
        own.kill()


def test_a_reading_that_is_not_json_names_its_entry_and_stores_nothing(tmp_path: Path,
                                                                       keys: tuple[Any, str]) -> None:
    client, prefix = keys
    stream = f"{prefix}:readings"
    push(client, stream, readings(0, 30))
    bad = client.xadd(stream, {"data": "temp=21.5;site=north"})
    push(client, stream, readings(31, 10))
    root = project(tmp_path, stream)
    proc = tidal(root, "run")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert f"stream {stream!r} entry {bad}: the field 'data' is not JSON" in lines[0]
    assert "nothing was stored or acknowledged" in lines[0] and "on_error: skip" in lines[0]
    with Workspace.open(root) as ws:
        assert ws.store.list_snapshots("sensors") == []
        assert len(ws.store.list_events(kind="run.failed")) == 1
    assert pending(client, stream) == 41  # nothing acknowledged: the next run reads them again

    skip = project(tmp_path / "skip", stream, extra=", on_error: skip")  # the same group: the same pending entries
    with Workspace.open(skip) as ws:
        result = ws.run()
        assert result.notes[0].startswith(f"collected 40 new readings from stream {stream!r}")
        assert result.notes[1].startswith(f"stream {stream!r}: 1 entries left out (on_error: skip): {bad} (the field")
        assert result.steps[0].outputs["rows"] == 40
    assert pending(client, stream) == 0


def test_a_stream_that_does_not_exist_is_named(tmp_path: Path, keys: tuple[Any, str]) -> None:
    _, prefix = keys
    with Workspace.open(project(tmp_path, f"{prefix}:nothing")) as ws:
        with pytest.raises(SourceError, match=f"the stream '{prefix}:nothing' does not exist on {SYSTEM}"):
            ws.run()
        assert ws.store.list_snapshots("sensors") == []


def test_reading_the_stream_whole_consumes_nothing(tmp_path: Path, keys: tuple[Any, str]) -> None:
    """``read_source`` (the loop's retrains, ``tidal drift``): XRANGE, no group, nothing acknowledged."""
    from tidal.data.sources import read_source
    from tidal.spec.source import RedisStreamSpec

    client, prefix = keys
    stream = f"{prefix}:readings"
    push(client, stream, readings(0, 25))
    df = read_source(RedisStreamSpec(redis=SYSTEM, stream=stream), base_dir=tmp_path)
    assert len(df) == 25 and "stream_id" not in df.columns and df["temp"].dtype == "float64"
    assert client.xinfo_groups(stream) == []


def test_a_batch_whose_column_changed_type_is_not_acknowledged_and_comes_back(tmp_path: Path,
                                                                          keys: tuple[Any, str]) -> None:
    client, prefix = keys
    stream = f"{prefix}:readings"
    push(client, stream, readings(0, 60))
    root = project(tmp_path, stream)
    with Workspace.open(root) as ws:
        first = ws.run().steps[0].outputs
    changed = [{**r, "temp": f"{r['temp']} C"} for r in readings(60, 20)]  # a firmware update: numbers became text
    push(client, stream, changed)
    with Workspace.open(root) as ws:
        before = len(ws.store.list_snapshots("sensors"))
        with pytest.raises(SourceError, match=f"stream {stream!r}: the readings from entry .* on hold text in 'temp', "
                                              "which held numbers before: nothing was stored or acknowledged"):
            ws.run()
        failed = ws.store.list_events(kind="run.failed")
        assert len(failed) == 1 and "'temp'" in failed[0].message
        assert len(ws.store.list_snapshots("sensors")) == before
        assert [e.kind for e in ws.events() if e.kind == "data.collected"] == ["data.collected"]  # the first only
        assert ws.registry.champion("sensors").version == 1  # nothing trained on the refused batch
    assert pending(client, stream) == 20  # not acknowledged: read again by the next run
    (root / "tidal.yaml").write_text((root / "tidal.yaml").read_text().replace("  time: at\n",
                                                                                "  time: at\n  drop: [temp]\n"))
    with Workspace.open(root) as ws:  # the fix: the model leaves the column out; the same readings come back
        out = ws.run().steps[0].outputs
        assert (out["new_rows"], out["rows"], out["batches"]) == (20, 80, 2)
        assert out["marks"][stream] != first["marks"][stream]
    assert pending(client, stream) == 0


def test_a_batch_refused_by_validation_is_not_acknowledged(tmp_path: Path, keys: tuple[Any, str]) -> None:
    client, prefix = keys
    stream = f"{prefix}:readings"
    push(client, stream, readings(0, 60))
    root = project(tmp_path, stream)
    (root / "tidal.yaml").write_text((root / "tidal.yaml").read_text().replace(
        "  time: at\n", "  time: at\n  checks: {range: error}\n"))
    with Workspace.open(root) as ws:
        ws.run()
        push(client, stream, [{**r, "temp": r["temp"] + 500.0} for r in readings(60, 10)])  # a sensor gone wild
        with pytest.raises(SchemaError, match="temp"):
            ws.run()
        rejected = ws.store.list_events(kind="data.rejected")
        assert len(rejected) == 1 and "temp" in rejected[0].message
        assert [e.kind for e in ws.events() if e.kind == "data.collected"] == ["data.collected"]  # the first only
        champion = ws.registry.champion("sensors")
        assert champion is not None and champion.version == 1  # nothing trained on the refused batch
    assert pending(client, stream) == 10  # read again by the next run, and refused again until fixed


LOOP_SPEC = """\
version: 1
name: sensors
data:
  source: {{redis: "{url}", stream: {stream}, retry_for: 1s}}
  target: failed
  time: at
  collect: 1s
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {{max_iter: 300}}
validate:
  split: {{method: random, test_size: 0.3}}
  gates: []
retrain:
  on: {{drift: {{share: 0.5}}}}
  cooldown: {{rows: 10}}
  min_labelled: 10
"""


def test_the_loop_collects_new_readings_and_retrains_on_their_drift(tmp_path: Path, keys: tuple[Any, str]) -> None:
    """#14 point 4 on a stream: `tidal loop` collects the readings that arrived (through the consumer group, then
    acknowledged), sees them drift, retrains on them and promotes; a batch that changes a column's kind is
    refused, never trains, and stays unacknowledged."""
    client, prefix = keys
    stream = f"{prefix}:readings"
    push(client, stream, readings(0, 150))
    root = tmp_path / "loop"
    root.mkdir()
    (root / "tidal.yaml").write_text(LOOP_SPEC.format(url=SYSTEM, stream=stream))
    first = tidal(root, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert pending(client, stream) == 0

    hot = readings(150, 60, seed=7)
    for r in hot:  # another regime: 15 degrees warmer, failing above 39
        r["temp"] = round(r["temp"] + 15.0, 3)
        r["failed"] = int(r["temp"] > 39.0)
    push(client, stream, hot)
    with Workspace.open(root) as ws:
        report = ws.loop_once()
        kinds = [e.kind for e in report.events]
        collected = next(e for e in ws.events(kind="data.collected", limit=5) if e.data.get("source") == "loop")
        assert collected.data["new_rows"] == 60 and collected.data["acknowledged"] == 60, collected.data
        assert collected.data["drift"]["share"] >= 0.5, collected.data
        assert report.decision is not None and report.decision.trigger == "drift", (report.note, kinds)
        champion = ws.registry.champion("sensors")
        assert champion is not None and champion.version == 2, kinds
        trained = table_of(ws, champion.lineage.snapshot)
        assert len(trained) > 150 and trained["temp"].max() > 35  # the collected readings trained v2
    assert pending(client, stream) == 0

    bad = readings(210, 5)
    for r in bad:
        r["temp"] = "hot"
    push(client, stream, bad)
    with Workspace.open(root) as ws:
        time.sleep(1.1)  # data.collect: 1s
        report = ws.loop_once()
        refused = [e for e in report.events if e.kind in ("data.rejected", "collect.failed")]
        assert refused and "temp" in refused[0].message, [e.kind for e in report.events]
        assert ws.registry.champion("sensors").version == 2  # nothing trained on it
    assert pending(client, stream) == 5  # not acknowledged: read again once fixed, or skipped by on_error


def test_the_loop_s_collection_stores_the_batch_and_no_table(tmp_path: Path, keys: tuple[Any, str]) -> None:
    """``tidal loop``'s collection (``collect``, then ``commit``) stores one snapshot, the new readings' batch: the
    table is checked but not stored (a retrain merges the committed batches); a run then trains on all of them."""
    from tidal.data.stream import StreamIncrement
    from tidal.loop.incremental import IncrementalCollect

    client, prefix = keys
    stream = f"{prefix}:readings"
    push(client, stream, readings(0, 50))
    root = project(tmp_path, stream)
    with Workspace.open(root) as ws:
        ws.run()
        before = {s.digest for s in ws.store.list_snapshots("sensors", limit=1000)}
        push(client, stream, readings(50, 30))
        collector = IncrementalCollect(ws.spec, root, ws.store, ws.artifacts, ws.clock, {})
        inc = collector.collect("loop")
        assert isinstance(inc, StreamIncrement)
        assert inc.batch is not None and inc.table is None and inc.new_rows == 30
        collector.commit()
        after = {s.digest for s in ws.store.list_snapshots("sensors", limit=1000)}
        assert after - before == {inc.batch[0].digest}
        assert pending(client, stream) == 0
        out = ws.run().steps[0].outputs
        assert (out["new_rows"], out["rows"], out["batches"]) == (0, 80, 2)
