"""Issue #4 end to end: a canary or shadow trial run by the controller through the real server.

The champion serves over HTTP; labelled traffic makes the controller retrain; the new version passes its
gate and gets the ``challenger`` alias (not ``champion``); the server picks it up and runs it as canary or
shadow; more traffic and feedback flow through the server; the controller judges the trial from the
prediction log and promotes or rejects the challenger; the server then serves the outcome.

The labels of the trial's traffic are chosen so that the outcome is known in advance (the challenger
always right, or always wrong): what is tested is the wiring between server, log and controller, not
which of two models happens to be better on a few dozen rows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import httpx
import pandas as pd
import pytest

from tests.e2e.test_loop import _edit, _rows
from tests.serve.server import ServerProcess, eventually
from tidal import Workspace
from tidal.core.entities import ModelState
from tidal.core.errors import PredictionNotFound
from tidal.registry import CHALLENGER

pytestmark = pytest.mark.slow  # a real server, two trainings and a few hundred requests

ELEC2 = Path(__file__).resolve().parents[2] / "examples" / "elec2"
T = TypeVar("T")


def _trial_project(project: Path, strategy: str) -> Path:
    """Retrain after 60 new labels, once (the cooldown holds the next); every retrain passes its gate."""
    _edit(project, "  strategy: direct", f"  reload_seconds: 0.2\n  strategy: {strategy}")
    _edit(project, "    drift: {share: 0.5}\n    performance: {metric: accuracy, below: 0.75, or_drop: 0.05}\n",
          "    new_data: {rows: 60}\n")
    _edit(project, "min_labelled: 500", "min_labelled: 60")
    _edit(project, "    - accuracy >= champion - 0.03", "    - accuracy >= 0.0")
    _edit(project, "    - accuracy >= 0.60", "    - accuracy >= 0.50")
    return project


def _predict(http: httpx.Client, frame: pd.DataFrame) -> list[dict[str, Any]]:
    """One request per row; returns the answers (each with its one prediction id)."""
    answers = []
    for row in frame.drop(columns=["up"]).to_dict(orient="records"):
        answer = http.post("/predict", json={"instances": [row]})
        assert answer.status_code == 200, answer.text
        answers.append(answer.json())
    return answers


def _label(http: httpx.Client, items: list[tuple[str, int]]) -> None:
    answer = http.post("/feedback", json=[{"prediction_id": pid, "label": label} for pid, label in items])
    assert answer.status_code == 200 and answer.json() == {"stored": len(items)}, answer.text


def _deployment(http: httpx.Client) -> dict[str, Any]:
    doc: dict[str, Any] = http.get("/model").json()["deployment"]
    return doc


def _start_trial(project: Path, http: httpx.Client, kind: str) -> int:
    """True labels for 80 champion answers, then a controller tick: a retrain whose model becomes the
    challenger; returns its version once the server runs it beside the champion."""
    answers = _predict(http, _rows(80, 3000))
    _label(http, [(a["prediction_ids"][0], int(y)) for a, y in zip(answers, _rows(80, 3000)["up"], strict=True)])
    with Workspace.open(project) as ws:
        tick = ws.loop_once()
        assert tick.decision is not None and tick.decision.trigger == "new_data", tick
        started = next(e for e in tick.events if e.kind == f"loop.{kind}_started")
        version = int(started.data["version"])
        assert ws.models.get("elec2:champion").version == 1
        assert ws.store.get_alias("elec2", CHALLENGER).version == version  # type: ignore[union-attr]
    eventually(lambda: (_deployment(http)["challenger"] or {}).get("version") == version,
                what=f"the server running the {kind}")
    return version


def test_a_canary_trial_rejects_a_worse_challenger_and_the_champion_serves_on(small_project: Path) -> None:
    project = _trial_project(small_project, "{canary: {percent: 50, min_requests: 30}}")
    with Workspace.open(project) as ws:
        assert ws.run().model.version == 1
    with ServerProcess(project) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        challenger = _start_trial(project, http, "canary")
        answers = _predict(http, _rows(80, 3080))
        by_version = {1: 0, challenger: 0}
        labels = []
        for a in answers:
            version, pid, out = a["model"]["version"], a["prediction_ids"][0], a["predictions"][0]
            by_version[version] += 1
            # the challenger is always wrong, the champion always right
            labels.append((pid, 1 - out if version == challenger else out))
        assert by_version == {1: 40, challenger: 40}
        _label(http, labels)
        with Workspace.open(project) as ws:
            ws.loop_once()
            rejected = ws.models.get("elec2", challenger)
            assert rejected.state == ModelState.REJECTED and "canary trial" in rejected.reasons[0]
            assert [t.to for t in ws.models.states(rejected)] == ["prototype", "validated", "deployed", "rejected"]
            assert ws.store.get_alias("elec2", CHALLENGER) is None
            assert ws.models.get("elec2:champion").version == 1
        eventually(lambda: _deployment(http)["challenger"] is None, what="the server ending the canary")
        after = {a["model"]["version"] for a in _predict(http, _rows(20, 3160))}
        assert after == {1}
    assert f"canary trial of elec2:{challenger} ended" in srv.log_text()


def test_a_shadow_trial_promotes_a_better_challenger_and_the_server_swaps(small_project: Path) -> None:
    project = _trial_project(small_project, "{shadow: {min_requests: 30}}")
    with Workspace.open(project) as ws:
        assert ws.run().model.version == 1
    with ServerProcess(project) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        challenger = _start_trial(project, http, "shadow")
        answers = _predict(http, _rows(40, 3080))
        assert {a["model"]["version"] for a in answers} == {1}  # the shadow never answers
        ids = [a["prediction_ids"][0] for a in answers]
        with Workspace.open(project) as ws:
            log = ws.predictions

            def shadows() -> list[Any] | None:
                try:
                    return [log.get(f"{pid}.shadow") for pid in ids]
                except PredictionNotFound:
                    return None

            found = eventually(shadows, what="the shadow answers logged")
        assert {(s.version, s.deployment, s.served) for s in found} == {(challenger, "shadow", False)}
        # the truth is what the challenger said: it wins (or ties) on the same rows
        _label(http, [(pid, s.output) for pid, s in zip(ids, found, strict=True)])
        with Workspace.open(project) as ws:
            tick = ws.loop_once()
            assert ws.models.get("elec2:champion").version == challenger, tick
            assert ws.store.get_alias("elec2", CHALLENGER) is None
            promoted = [e for e in ws.events() if e.kind == "alias.moved" and e.data.get("to") == challenger
                        and e.data.get("alias") == "champion"]
            assert promoted and promoted[-1].data["trigger"] == "loop:shadow"
            assert promoted[-1].data["rows"] == 40 and promoted[-1].data["challenger"] == 1.0
            # states: the shadow served as deployed from its start; the champion whose retrain made it: improved
            states = [t.to for t in ws.models.states(ws.models.get("elec2", challenger))]
            assert states == ["prototype", "validated", "deployed"], states
            assert ws.models.get("elec2", 1).state == ModelState.IMPROVED
        doc = eventually(lambda: (d := _deployment(http))["champion"]["version"] == challenger and d,
                          what="the server serving the new champion")
        assert doc["challenger"] is None
        after = _predict(http, _rows(20, 3120))
        assert {a["model"]["version"] for a in after} == {challenger}
        with Workspace.open(project) as ws:
            stored = [ws.predictions.get(a["prediction_ids"][0]) for a in after]
            assert {(p.version, p.deployment) for p in stored} == {(challenger, "direct")}
            assert ws.predictions.count(model="elec2", served=False) == 40  # no shadow after the trial
    assert "the shadow challenger, loaded already" in srv.log_text()
