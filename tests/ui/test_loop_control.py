"""Pause, resume and "retrain now" through the SDK (the API and the CLI call the same methods): a paused
controller acts on nothing and says so, each control is an event naming who, a requested retrain runs at the
next tick with the trigger ``manual``."""

from __future__ import annotations

import shutil
from pathlib import Path

from tidal.workspace import Workspace


def test_a_paused_loop_does_not_act_and_a_requested_retrain_runs_once_resumed(project: Path, tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(project, root)
    with Workspace.open(root) as ws:
        before = ws.loop.status()["state"]["ticks"]
        ws.loop.pause(actor="token:ops#0123456789ab", reason="maintenance")
        ws.loop.retrain_now(actor="token:ops#0123456789ab")
        tick = ws.loop_once()
        assert tick.note.startswith("paused by token:ops#0123456789ab since ") and "(maintenance)" in tick.note
        assert not tick.acted and tick.decision is None
        status = ws.loop.status()
        assert status["state"]["ticks"] == before and status["retrain_requested"]["by"] == "token:ops#0123456789ab"
        ops = "token:ops#0123456789ab"
        kinds = [(e.kind, e.data.get("actor")) for e in ws.events(limit=2)]
        assert kinds == [("loop.paused", ops), ("loop.retrain_requested", ops)]

        ws.loop.resume()  # from this machine: the event names the local user
        assert ws.events(limit=1)[0].data["actor"].startswith("local:")
        tick = ws.loop_once()
        assert tick.acted and tick.decision is not None and tick.decision.trigger == "manual"
        assert tick.decision.reasons == ["retrain requested by token:ops#0123456789ab"]
        assert ws.loop.status()["retrain_requested"] is None  # consumed: the next tick does not retrain again
        assert not ws.loop_once().acted
