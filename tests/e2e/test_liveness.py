"""Killed processes leave no stale state (issue #9, point 5), on a real project (Elec2, SQLite):

- a ``tidal run`` killed with SIGKILL is shown ``abandoned`` by the next ``tidal runs ls`` (its process is
  gone), not ``running`` for ever; a run on another host is judged by its heartbeat;
- a ``tidal loop`` killed with SIGKILL blocks a new controller for one lease length at most, with a message
  that names the holder and when its lease ends, and ``--take-over`` for an operator who knows it is dead;
- two runs that gate against the same champion cannot both promote over it: the second is gated again
  against the champion the first made.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tidal import Workspace
from tidal.core.entities import RunStatus, StepStatus
from tidal.loop.controller import Controller
from tidal.loop.liveness import abandoned_because, mark_abandoned

REPO = Path(__file__).resolve().parents[2]


def _tidal(project: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", "PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen([sys.executable, "-m", "tidal", "-C", str(project), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(probe: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def test_a_killed_run_is_shown_abandoned_not_running(small_project: Path, cli: Callable[..., Any]) -> None:
    proc = _tidal(small_project, "run", "--no-cache")

    def running() -> str | None:
        try:
            with Workspace.open(small_project) as ws:
                found = [r for r in ws.store.list_runs() if r.status == RunStatus.RUNNING]
        except Exception:  # the store is being created by the run
            return None
        return found[0].id if found else None

    run_id = _wait_for(running, 60, "the run to start")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    listed = cli("-C", str(small_project), "runs", "ls", "--json")
    assert listed.returncode == 0, listed.stderr
    (run,) = [r for r in json.loads(listed.stdout) if r["id"] == run_id]
    assert run["status"] == "abandoned", run
    assert "its process" in run["error"] and "is gone" in run["error"]
    with Workspace.open(small_project) as ws:
        (event,) = ws.events(kind="run.abandoned")
        assert event.subject == f"run:{run_id}"
        # the next run works, and finds nothing more to mark
        assert ws.run().run.status == RunStatus.SUCCEEDED
        assert len(ws.events(kind="run.abandoned")) == 1


def test_a_run_on_another_host_is_judged_by_its_heartbeat(small_project: Path) -> None:
    with Workspace.open(small_project) as ws:
        result = ws.run()
        now = ws.clock.now()
        run = replace(result.run, status=RunStatus.RUNNING, info={"owner": {"host": "elsewhere", "pid": 1}})
        fresh = replace(run, heartbeat_at=now - timedelta(seconds=20))
        stale = replace(run, heartbeat_at=now - timedelta(seconds=75))
        assert abandoned_because(fresh, now) is None  # beating: alive, whatever its host
        why = abandoned_because(stale, now)
        assert why is not None and "last heartbeat was 75 s ago on elsewhere" in why
        never = replace(run, heartbeat_at=None, started_at=now - timedelta(seconds=5))
        assert abandoned_because(never, now) is None
        assert mark_abandoned(ws.store, "elec2", ws.clock) == []  # the finished run is left alone


def test_a_killed_controller_holds_the_lease_for_one_lease_length_at_most(small_project: Path,
                                                                          cli: Callable[..., Any]) -> None:
    assert cli("-C", str(small_project), "run").returncode == 0
    proc = _tidal(small_project, "loop", "--interval", "1h")

    def holder() -> Any:
        with Workspace.open(small_project) as ws:
            return ws.controller().holder()

    lease = _wait_for(holder, 60, "the controller to take its lease")
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)

    blocked = cli("-C", str(small_project), "loop", "--once")
    assert blocked.returncode == 5, (blocked.stdout, blocked.stderr)
    out = " ".join(blocked.stdout.split())
    assert "champion v1" in out and "no champion" not in out
    assert f"another controller holds the lease: {lease.owner}" in out and "tidal loop --take-over" in out
    left = (lease.until - lease.until.now(lease.until.tzinfo)).total_seconds()
    assert 0 < left <= 30  # the dead controller's lease ends within one lease length

    taken = cli("-C", str(small_project), "loop", "--once", "--take-over", "--json")
    assert taken.returncode == 0, taken.stderr
    tick = json.loads(taken.stdout)
    assert tick["blocked_by"] is None and tick["champion"] == 1
    with Workspace.open(small_project) as ws:
        (event,) = ws.events(kind="loop.lease_taken_over")
        assert event.data["from"] == lease.owner
        assert ws.controller().holder() is None  # --once released it at the end


def test_a_live_controller_keeps_its_lease_and_a_dead_one_loses_it(small_project: Path) -> None:
    with Workspace.open(small_project) as ws:
        ws.run()
        alive = Controller(ws.context(), owner="alive", lease_seconds=1.5)
        other = Controller(ws.context(), owner="other", lease_seconds=1.5)
        assert alive.acquire()
        time.sleep(2.5)  # longer than the lease: the heartbeat renewed it
        assert not other.acquire()
        alive._keeper.stop()  # type: ignore[union-attr]  # the process "dies": no more renewals
        _wait_for(other.acquire, 5, "the dead controller's lease to expire")
        report = alive.tick()
        assert report.blocked_by is not None and report.blocked_by.owner == "other"
        other.release()
        alive.release()


def test_a_run_gated_against_a_champion_that_moved_is_gated_again(small_project: Path) -> None:
    """Two runs gate against champion v1; the first promotes v2 while the second is between its gate and
    its registration (a listener on the gate step plays the first). The second must not replace v2 without
    being compared with it."""
    with Workspace.open(small_project) as ws:
        assert ws.run().model.version == 1
        spec = (small_project / "tidal.yaml").read_text()
        # a gate that only a model at least as good as the champion passes, on the same rows
        (small_project / "tidal.yaml").write_text(spec.replace("max_iter: 30", "max_iter: 31"))
    with Workspace.open(small_project) as ws:
        first = ws.run()  # the "concurrent" winner, registered before the second run's registration
        assert first.model.version == 2 and ws.registry.champion("elec2").version == 2
        ws.promote("elec2", 1, reason="back to v1, so that the next run gates against v1")

    (small_project / "tidal.yaml").write_text(spec.replace("max_iter: 30", "max_iter: 32"))
    with Workspace.open(small_project) as ws:
        moved = []

        def listener(step: Any) -> None:
            if step.name == "gate" and step.status == StepStatus.DONE and not moved:
                moved.append(ws.promote("elec2", 2, reason="a concurrent run promoted v2"))

        second = ws.run(listener=listener)
        assert moved == [1]
        decision = second.decision.to_dict()
        assert decision["champion"]["label"] == "elec2:2", decision  # compared with the champion of the move
        gate = next(s for s in second.steps if s.name == "gate")
        assert "the champion moved to 2 while this run was gated" in gate.explain
        register = next(s for s in second.steps if s.name == "register")
        assert register.outputs["regated"] == ["the champion moved to 2 while this run was gated: gated again "
                                               "against it"]
        champion = ws.registry.champion("elec2").version
        assert champion in (2, second.model.version)
        moves = [e.data for e in ws.events(kind="alias.moved", limit=1000) if e.data["alias"] == "champion"]
        if second.model.state.value != "rejected":
            assert moves[-1]["from"] == 2 and moves[-1]["to"] == second.model.version
        else:
            assert champion == 2
