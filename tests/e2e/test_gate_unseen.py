"""The gate compares challenger and champion on the holdout rows the champion did not train on.

A champion refit after its gate has learned its whole window, holdout included; when the next retrain's
holdout overlaps that window (a cooldown shorter than the holdout), comparing the two on the whole
holdout would favour the champion. The gate then compares them on the unseen rows alone, and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from tests.e2e.test_loop import _rows
from tidal import Workspace
from tidal.core.clock import SimulatedClock
from tidal.evaluate import MIN_COMPARED_ROWS
from tidal.loop.pipeline import TrainingPipeline
from tidal.registry import CHAMPION

ELEC2 = Path(__file__).resolve().parents[2] / "examples" / "elec2"


def _retrain(ws: Workspace, frame: pd.DataFrame, *, refit: bool) -> dict[str, Any]:
    ctx = ws.context()
    result = TrainingPipeline(ctx, trigger="test", frame=frame, frame_source="test frame", promote=CHAMPION,
                              refit=refit).run()
    assert result.decision is not None
    return {**(result.decision.champion or {}), "reasons": result.decision.reasons}


def test_the_gate_compares_on_rows_the_refit_champion_did_not_see(small_project: Path) -> None:
    with Workspace.open(small_project, clock=SimulatedClock()) as ws:
        first = _rows(1000, 3000)
        assert "compared" not in _retrain(ws, first, refit=True)  # no champion yet
        # the same rows again: the refit champion has seen every holdout row (200): compared on all, with a note
        again = _retrain(ws, pd.concat([first.iloc[1:], first.iloc[:1]], ignore_index=True), refit=True)
        assert again["compared"]["champion_trained_on"] >= again["compared"]["of"] - MIN_COMPARED_ROWS
        assert "favours it" in again["compared"]["note"]
        assert again["compared"]["rows"] == again["compared"]["of"]
        # 100 rows on: the holdout (the last 200 rows) holds 100 the champion saw and 100 it did not
        decision = _retrain(ws, _rows(1000, 3100), refit=False)
        compared = decision["compared"]
        assert compared["of"] == 200 and compared["rows"] == 100 and compared["champion_trained_on"] == 100
        assert "note" not in compared
        assert any("compared on the 100 of the 200 holdout rows it had not trained on" in r
                   for r in decision["reasons"])
        assert set(decision["candidate_metrics"]) >= {"accuracy"}


def test_a_champion_that_never_saw_the_holdout_is_compared_on_all_of_it(small_project: Path) -> None:
    with Workspace.open(small_project, clock=SimulatedClock()) as ws:
        ws.run()  # trained on the first 80 % of the 3,000 rows, no refit
        decision = _retrain(ws, _rows(1000, 3000), refit=False)
        assert decision["compared"] == {"rows": 200, "of": 200}
        assert not any("compared on" in r or "favours" in r for r in decision["reasons"])
        assert "candidate_metrics" not in decision
