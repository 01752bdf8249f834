"""Issue #4 through the SDK: the controller's decisions on a real workspace (SQLite) with traffic written
to the real prediction log — retrain, rejection, rollback, guards, the lease, and a retry after a crash."""

from __future__ import annotations

import gzip
import io
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidal import Workspace
from tidal.core.clock import SimulatedClock
from tidal.core.entities import Feedback, ModelState, Prediction
from tidal.loop.state import LoopState, Retraining, Watch

ELEC2 = Path(__file__).resolve().parents[2] / "examples" / "elec2"


def _rows(n: int, start: int) -> pd.DataFrame:
    raw = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes())
    return pd.read_csv(io.BytesIO(raw)).iloc[start:start + n].reset_index(drop=True)


def _edit(project: Path, old: str, new: str) -> None:
    text = (project / "tidal.yaml").read_text()
    assert old in text, old
    (project / "tidal.yaml").write_text(text.replace(old, new))


@pytest.fixture
def loop_project(small_project: Path) -> Path:
    """3,000 Elec2 rows; retrain on drift or performance; small cooldown and window for speed."""
    _edit(small_project, "cooldown: {rows: 1000}", "cooldown: {rows: 300}")
    _edit(small_project, "min_labelled: 500", "min_labelled: 200")
    _edit(small_project, "rollback: {metric: accuracy, drop: 0.03, after_rows: 1000}",
          "rollback: {metric: accuracy, drop: 0.03, after_rows: 200}")
    _edit(small_project, "  window: 1000\n", "  window: 300\n")
    return small_project


def _open(project: Path, clock: SimulatedClock) -> Workspace:
    return Workspace.open(project, clock=clock)


def _traffic(ws: Workspace, frame: pd.DataFrame, *, shift: float = 0.0, wrong: bool = False,
             version: int | None = None) -> None:
    """Serve ``frame`` with the champion (as the server would), log it, and send its labels."""
    mv = ws.models.get("elec2:champion") if version is None else ws.models.get("elec2", version)
    X = frame.drop(columns=["up"]).copy()
    if shift:
        for col in ("nswprice", "nswdemand", "vicdemand", "transfer"):
            X[col] = X[col] + shift
    model = ws.models.load(f"elec2:{mv.version}")
    proba = model.predict_proba(X)
    pred = model.predict(X)
    if wrong:
        pred = 1 - pred
    now = ws.clock.now()
    preds = [Prediction(id=uuid.uuid4().hex, time=now, model="elec2", version=mv.version, inputs=row,
                        output=int(p), proba=[float(v) for v in pr])
             for row, p, pr in zip(X.to_dict(orient="records"), pred, proba, strict=True)]
    ws.predictions.append(preds)
    ws.predictions.add_feedback([Feedback(prediction_id=p.id, label=int(y), time=now)
                                 for p, y in zip(preds, frame["up"], strict=True)])


def test_drift_triggers_a_retrain_that_is_gated_promoted_and_explained(loop_project: Path) -> None:
    clock = SimulatedClock()
    with _open(loop_project, clock) as ws:
        ws.run()
        _traffic(ws, _rows(400, 3000), shift=0.5)
        tick = ws.loop_once()
        assert tick.decision is not None and tick.decision.retrain, tick
        assert tick.decision.trigger in ("drift", "performance")
        kinds = [e.kind for e in tick.events]
        assert kinds[0] == "loop.retrain"
        champion = ws.models.get("elec2:champion")
        versions = ws.models.list()
        assert len(versions) == 2
        new = versions[-1]
        if new.state != ModelState.REJECTED:  # promoted: the chain of events tells why
            assert champion.version == 2 and new.state == ModelState.DEPLOYED
            history = [e.kind for e in ws.models.history(new)]
            assert history[:3] == ["model.state", "model.registered", "gate.passed"] and "alias.moved" in history
            assert [t.to for t in ws.models.states(new)] == ["prototype", "validated", "deployed"]
            moved = next(e for e in ws.models.history(new) if e.kind == "alias.moved")
            assert moved.data["trigger"].startswith("loop:")
            assert new.lineage.refit == "train + holdout" and new.lineage.gated_model
        else:
            assert champion.version == 1 and new.reasons
        # the cooldown holds: more drifted traffic right away does not retrain again
        _traffic(ws, _rows(100, 3400), shift=0.5)
        again = ws.loop_once()
        assert again.decision is not None and not again.decision.retrain
        assert again.decision.blocked_by is not None and again.decision.blocked_by.startswith("cooldown")
        assert any(e.kind == "loop.suppressed" for e in again.events)
        # and the suppression is recorded once, not on every tick
        assert not any(e.kind == "loop.suppressed" for e in ws.loop_once().events)


def test_a_worse_challenger_is_rejected_and_the_champion_keeps_serving(loop_project: Path) -> None:
    clock = SimulatedClock()
    with _open(loop_project, clock) as ws:
        ws.run()
    _edit(loop_project, "accuracy >= 0.60", "accuracy >= 0.99")
    with _open(loop_project, clock) as ws:
        _traffic(ws, _rows(400, 3000), shift=0.5)
        tick = ws.loop_once()
        assert tick.decision is not None and tick.decision.retrain
        rejected = ws.models.list()[-1]
        assert rejected.state == ModelState.REJECTED and any("0.99" in r for r in rejected.reasons)
        assert ws.models.get("elec2:champion").version == 1
        assert any(e.kind == "gate.failed" for e in ws.events())


def test_a_regressing_new_champion_is_rolled_back(loop_project: Path) -> None:
    clock = SimulatedClock()
    with _open(loop_project, clock) as ws:
        ws.run()
        _edit(loop_project, "max_iter: 30", "max_iter: 31")
    with _open(loop_project, clock) as ws:
        ws.run()
        assert ws.models.get("elec2:champion").version == 2
        controller = ws.controller(owner="t")
        state = LoopState(watch=Watch(version=2, previous=1, metric="accuracy", since=clock.now()))
        ws.store.put_state("loop:elec2", state.to_dict())
        # the new champion answers badly on its first labelled rows; the old one, on the same rows, well
        _traffic(ws, _rows(250, 3000), wrong=True, version=2)
        tick = controller.tick()
        controller.release()
        assert ws.models.get("elec2:champion").version == 1
        rollback = next(e for e in tick.events if e.kind == "loop.rollback")
        assert rollback.data["baseline"] > rollback.data["value"] + 0.03


def test_two_controllers_never_both_act(loop_project: Path) -> None:
    clock = SimulatedClock()
    with _open(loop_project, clock) as ws:
        ws.run()
        first, second = ws.controller(owner="a"), ws.controller(owner="b")
        assert first.acquire() and not second.acquire()
        _traffic(ws, _rows(400, 3000), shift=0.5)
        assert "another controller" in second.tick().note and len(ws.models.list()) == 1
        first.release()
        clock.advance(timedelta(seconds=1))
        assert second.acquire()
        second.release()


def test_a_controller_killed_mid_retrain_is_retried_cleanly(loop_project: Path) -> None:
    clock = SimulatedClock()
    with _open(loop_project, clock) as ws:
        ws.run()
        _traffic(ws, _rows(400, 3000), shift=0.5)
        # what a controller killed during its retrain leaves behind: the intent, no new version
        ws.store.put_state("loop:elec2", LoopState(in_progress=Retraining(
            trigger="drift", reasons=["drift share 0.67 >= 0.50"], started=clock.now(), labelled_total=400)).to_dict())
        tick = ws.loop_once()
        assert tick.acted
        state = LoopState.from_dict(ws.store.get_state("loop:elec2"))
        assert state.in_progress is None and state.last_retrain is not None
        versions = ws.models.list()
        assert len(versions) == 2 and versions[-1].state in (ModelState.DEPLOYED, ModelState.REJECTED)
        assert np.isfinite(versions[-1].metrics["accuracy"])
