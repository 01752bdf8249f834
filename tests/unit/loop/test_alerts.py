"""Alerts that reach people (issue #15, point 4): ``monitor.alerts`` webhooks, posted by the loop's ticks to a
real HTTP server on 127.0.0.1.

A real project (scikit-learn's iris, a LogisticRegression trained once per module) in a SQLite workspace; the
receiver is the standard library's HTTP server, whose routes answer 200, fail then succeed, always fail, or
refuse. What it received is what a person's chat or pager would.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tidal.core.clock import SimulatedClock
from tidal.core.entities import Event
from tidal.core.errors import SpecError
from tidal.loop.alerts import Alerts, alert_kinds
from tidal.spec.loading import parse_spec
from tidal.workspace import Workspace

START = datetime(2026, 6, 1, 8, tzinfo=UTC)
SECRET = "T0000/B0000/s3cr3t-hook-path"  # the part of a Slack webhook URL that is its credential
SPEC = """\
name: iris
data: {source: data/iris.csv, target: species}
model: {estimator: sklearn.linear_model.LogisticRegression, params: {max_iter: 300}}
validate: {gates: []}
"""


class Receiver:
    """A webhook receiver: ``/ok`` answers 200, ``/flaky`` 503 once then 200, ``/down`` always 503,
    ``/gone`` 404. It keeps each body it was sent, by path, and counts every request."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[dict[str, Any]]] = {}
        self.hits: dict[str, int] = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                path = self.path.split("/")[1]
                data = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                receiver.hits[path] = receiver.hits.get(path, 0) + 1
                status = {"ok": 200, "down": 503, "gone": 404}.get(path, 200)
                if path == "flaky":
                    status = 503 if receiver.hits[path] == 1 else 200
                if status == 200:
                    receiver.bodies.setdefault(path, []).append(data)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_iris

    root = tmp_path_factory.mktemp("alerts") / "iris"
    (root / "data").mkdir(parents=True)
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"}).sample(frac=1.0, random_state=0)
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    frame.to_csv(root / "data" / "iris.csv", index=False)
    (root / "tidal.yaml").write_text(SPEC)
    with Workspace.open(root) as ws:
        assert ws.run().model.version == 1
    return root


def project(trained: Path, tmp_path: Path, alerts: str) -> Path:
    dest = tmp_path / "iris"
    shutil.copytree(trained, dest)
    (dest / "tidal.yaml").write_text(SPEC + "monitor:\n  window: 60\n  alerts:\n" + alerts)
    return dest


def event(kind: str, version: int = 1, **data: Any) -> Event:
    return Event(kind=kind, subject=f"model:iris:{version}", message=f"{kind} of iris:{version}", time=START,
                 data=data)


def alerts_of(ws: Workspace, **kw: Any) -> Alerts:
    ctx = ws.context()
    return Alerts(ctx, record=ctx.store.append_event, max_wait=0.01, **kw)


def test_what_happened_since_the_last_round_is_posted_once_and_history_is_not(trained: Path, tmp_path: Path,
                                                                               receiver: Receiver) -> None:
    root = project(trained, tmp_path, f"    - webhook: {receiver.url}/ok\n      on: [retrain_failed, rollback, "
                                      "promotion, rejected]\n")
    with Workspace.open(root, clock=SimulatedClock(START)) as ws:
        ws.store.append_event(event("loop.retrain_failed", error="before alerts were primed"))
        sender = alerts_of(ws)
        assert sender.deliver() == []  # the first round starts at the newest event: history is not sent
        for e in (event("loop.retrain_failed", error="boom"), event("gate.failed", 2),
                  event("alias.moved", 1, alias="champion", rollback=True), event("run.finished"),
                  Event(kind="loop.retrain_failed", subject="model:other:1", message="another project's",
                        time=START)):
            ws.store.append_event(e)
        out = sender.deliver()
        assert [e.kind for e in out] == ["alert.sent"] * 3
        assert sender.deliver() == []  # nothing new: nothing sent again
    got = receiver.bodies["ok"]
    assert [b["alert"] for b in got] == ["retrain_failed", "rejected", "rollback"]
    first = got[0]
    assert first["text"] == "[tidal] iris: retrain failed: loop.retrain_failed of iris:1"
    assert first["project"] == "iris" and first["subject"] == "model:iris:1"
    assert first["event"]["kind"] == "loop.retrain_failed" and first["event"]["data"] == {"error": "boom"}


def test_the_loop_posts_drift_from_its_own_monitoring(trained: Path, tmp_path: Path, receiver: Receiver) -> None:
    import pandas as pd

    root = project(trained, tmp_path, f"    - webhook: {receiver.url}/ok\n      format: slack\n")
    clock = SimulatedClock(START)
    with Workspace.open(root, clock=clock) as ws:
        assert ws.loop_once().events == []  # primes the cursor; nothing served yet
        rows = pd.read_csv(root / "data" / "iris.csv").drop(columns=["species"])
        shifted = rows.assign(petal_length=rows["petal_length"] + 4.0, sepal_width=rows["sepal_width"] * 3)
        ws.predict(shifted.head(60))
        clock.advance(timedelta(minutes=5))
        report = ws.loop_once()
        sent = [e for e in report.events if e.kind == "alert.sent"]
        assert len(sent) == 1 and sent[0].data["alert"] == "drift", report.events
        ws.predict(shifted.tail(60))
        clock.advance(timedelta(minutes=5))
        assert not [e for e in ws.loop_once().events if e.kind == "alert.sent"]  # still drifted: sent once an hour
        clock.advance(timedelta(hours=1, minutes=1))
        assert [e.data["alert"] for e in ws.loop_once().events if e.kind == "alert.sent"] == ["drift"]
    bodies = receiver.bodies["ok"]
    assert len(bodies) == 2 and set(bodies[0]) == {"text"}  # Slack's form: text alone
    assert bodies[0]["text"].startswith("[tidal] iris: drift: iris:1: data drift: ")


def test_a_rate_limit_holds_alerts_back_and_counts_them_in_the_next_one(trained: Path, tmp_path: Path,
                                                                        receiver: Receiver) -> None:
    root = project(trained, tmp_path, f"    - webhook: {receiver.url}/ok\n      on: [rejected]\n"
                                      "      max_per_hour: 2\n")
    clock = SimulatedClock(START)
    with Workspace.open(root, clock=clock) as ws:
        sender = alerts_of(ws)
        sender.prime()
        for version in (2, 3, 4, 5):
            ws.store.append_event(event("gate.failed", version))
        out = sender.deliver()
        assert [e.kind for e in out] == ["alert.sent", "alert.sent", "alert.held"]
        assert "2 were sent in the last hour" in out[-1].message
        clock.advance(timedelta(hours=1, minutes=1))
        ws.store.append_event(event("gate.failed", 6))
        assert [e.kind for e in sender.deliver()] == ["alert.sent"]
    texts = [b["text"] for b in receiver.bodies["ok"]]
    assert len(texts) == 3 and texts[-1].endswith("(2 more alerts held back by the rate limit before this one)")


def test_a_failing_webhook_is_retried_then_an_event_that_keeps_the_url_secret(
        trained: Path, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_DOWN", f"{receiver.url}/down/{SECRET}")
    monkeypatch.setenv("HOOK_FLAKY", f"{receiver.url}/flaky/{SECRET}")
    root = project(trained, tmp_path, "    - webhook: ${HOOK_DOWN}\n      on: [rejected]\n      attempts: 2\n"
                                      "    - webhook: ${HOOK_FLAKY}\n      on: [rejected]\n"
                                      f"    - webhook: {receiver.url}/gone\n      on: [rejected]\n"
                                      "    - webhook: ${HOOK_UNSET}\n      on: [rejected]\n")
    with Workspace.open(root, clock=SimulatedClock(START)) as ws:
        sender = alerts_of(ws)
        sender.prime()
        ws.store.append_event(event("gate.failed", 2))
        out = sender.deliver()
        stored = ws.events(limit=1000)
    assert [e.kind for e in out] == ["alert.failed", "alert.sent", "alert.failed", "alert.failed"]
    down, flaky, gone, unset = out
    assert receiver.hits == {"down": 2, "flaky": 2, "gone": 1}  # 503 tried again; 404 is final
    assert down.message == f"alert rejected not delivered to {receiver.url}/…: HTTP 503 after 2 tries"
    assert gone.message == f"alert rejected refused by {receiver.url}/…: HTTP 404 (not tried again: check the " \
                           "webhook URL)"
    assert "the environment variable HOOK_UNSET is not set" in unset.message
    assert flaky.data["status"] == 200
    assert all(SECRET not in json.dumps([e.message, e.data]) for e in stored)


def test_a_dead_webhook_never_stops_the_loop(trained: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = project(trained, tmp_path, f"    - webhook: http://127.0.0.1:{port}/x\n      on: [promotion]\n"
                                      "      attempts: 1\n      timeout: 1\n")
    with Workspace.open(root, clock=SimulatedClock(START)) as ws:
        ws.loop_once()
        ws.promote("iris", 1, reason="again")  # an alias that already points there: no event
        ws.store.append_event(event("alias.moved", 1, alias="champion"))
        report = ws.loop_once()
    failed = [e for e in report.events if e.kind == "alert.failed"]
    assert len(failed) == 1 and failed[0].message.startswith(f"alert promotion not delivered to http://127.0.0.1:"
                                                             f"{port}/…: ConnectError after 1 try")


def test_alert_kinds_of_events() -> None:
    assert alert_kinds(event("monitor.alert", kinds=["data_drift", "performance"])) == ["drift", "performance"]
    assert alert_kinds(event("monitor.alert", drifted=True)) == ["drift"]  # recorded before events named kinds
    assert alert_kinds(event("alias.moved", alias="champion")) == ["promotion"]
    assert alert_kinds(event("alias.moved", alias="challenger")) == []
    assert alert_kinds(event("alias.moved", alias="champion", rollback=True)) == ["rollback"]
    assert alert_kinds(event("loop.retrain")) == ["retrain"]
    assert alert_kinds(event("run.finished")) == []


@pytest.mark.parametrize(("alerts", "says"), [
    ("[{webhook: ftp://example.com/x}]", "'ftp://example.com/x' is not a webhook URL"),
    ("[{webhook: 'http://h/x', on: []}]", "an alert webhook with an empty `on:` would never be sent anything"),
    ("[{webhook: 'http://h/x', on: [drfit]}]", "drfit"),
    ("[{webhook: 'http://h/x', dedupe: soon}]", "'soon' is not a duration"),
    ("[{webhook: 'http://h/x', max_per_hour: 0}]", "max_per_hour"),
])
def test_a_wrong_alert_is_one_spec_error(alerts: str, says: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec(SPEC + f"monitor: {{alerts: {alerts}}}\n")
    assert says in str(err.value) and "\n" not in str(err.value).strip(), str(err.value)


def test_tidal_alerts_test_says_what_each_webhook_answered(trained: Path, tmp_path: Path, receiver: Receiver,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from tidal.cli.main import main

    root = project(trained, tmp_path, f"    - webhook: {receiver.url}/ok\n      on: [rollback]\n"
                                      f"    - webhook: {receiver.url}/gone\n")
    assert main(["-C", str(root), "alerts", "test"]) == 2  # exits.MISTAKE: a webhook to fix
    out = capsys.readouterr()
    printed = " ".join(out.out.split())  # the console wraps long lines
    assert f"webhook 1: sent: alert test sent to {receiver.url}/…" in printed
    assert f"webhook 2: failed: alert test refused by {receiver.url}/…: HTTP 404" in printed
    assert "1 of 2 alert webhooks did not take the test alert" in out.err
    assert receiver.bodies["ok"][0]["alert"] == "test"
    (root / "tidal.yaml").write_text(SPEC)
    assert main(["-C", str(root), "alerts", "test"]) == 2
    assert "this project has no alert webhooks to test" in capsys.readouterr().err
