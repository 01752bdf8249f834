"""Issue #11, point 2: a trigger that stays fired for ever is a defect. Drift is judged against the serving
champion's own reference (its training rows, and the drift its own holdout already showed), so that after
a retrain on shifted data the drift share falls back — while a further shift still fires.

The real loop as `tidal backtest` runs it (Workspace.backtest: the controller, the pipeline, the gate, a
SimulatedClock) on a small synthetic stream with two abrupt shifts, every feature kind moved by each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidal import Workspace
from tidal.core.charts import read_specs
from tidal.core.clock import SimulatedClock
from tidal.loop.backtest_html import render_backtest_html

INITIAL, PRE, SHIFT1, SHIFT2 = 400, 100, 500, 300   # rows: first champion, then the stream's three periods
TICK = 50
SPEC = f"""\
version: 1
name: shifty
data: {{source: data.parquet, target: y, time: null}}
model: {{estimator: sklearn.linear_model.LogisticRegression, params: {{}}, seed: 0}}
validate: {{split: {{method: time, test_size: 0.2}}, metrics: [accuracy], gates: []}}
deploy: {{strategy: direct, rollback: null}}
monitor: {{window: 150}}
retrain:
  on: {{drift: {{share: 0.5}}}}
  cooldown: {{rows: 100}}
  max_per_day: 1000
  min_labelled: 300
backtest: {{initial_rows: {INITIAL}, tick_rows: {TICK}, periodic_every: 100000, minutes_per_row: 60}}
"""


def _period(rng: np.random.Generator, n: int, level: int) -> pd.DataFrame:
    """``n`` rows of period ``level`` (0, 1, 2): each feature kind moves with the level."""
    a = rng.normal(3.0 * level, 1.0, n)
    b = pd.array(rng.integers(10 * level, 10 * level + 10, n), dtype="Int64")
    b[rng.random(n) < 0.05] = pd.NA                       # a nullable integer with a few missing values
    cats = [["x", "y", "z"], ["z", "w", "y"], ["v", "u", "w"]][level]
    c = pd.Series(rng.choice(cats, n, p=[0.6, 0.3, 0.1]), dtype="string")
    d = pd.Categorical(rng.choice(["lo", "hi"], n, p=[0.8 - 0.3 * level, 0.2 + 0.3 * level]))
    y = (a - 3.0 * level + rng.normal(0, 0.5, n) > 0).astype(int)
    return pd.DataFrame({"a": a, "b": b, "c": c, "d": d, "y": y})


@pytest.fixture
def shifty(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    frame = pd.concat([_period(rng, INITIAL + PRE, 0), _period(rng, SHIFT1, 1), _period(rng, SHIFT2, 2)],
                      ignore_index=True)
    frame.to_parquet(tmp_path / "data.parquet")
    (tmp_path / "tidal.yaml").write_text(SPEC)
    return tmp_path


def _retrain_rows(result: Any) -> list[int]:
    return [e["row"] for e in result.events if e["kind"] == "loop.retrain"]


def test_the_drift_share_falls_back_after_a_retrain_on_shifted_data(shifty: Path, tmp_path: Path) -> None:
    with Workspace.open(shifty, clock=SimulatedClock()) as ws:
        result = ws.backtest()
    drift = result.drift_share
    shares = dict(zip(drift["rows"], drift["share"], strict=True))
    assert drift["threshold"] == 0.5 and len(shares) == (PRE + SHIFT1 + SHIFT2) // TICK
    # before the first shift the champion's own training rows look like the traffic: nothing fires
    assert all(s is not None and s < 0.5 for r, s in shares.items() if r <= PRE), shares
    retrains = _retrain_rows(result)
    first = [r for r in retrains if PRE < r <= PRE + SHIFT1]
    assert first, (retrains, shares)             # the shift fired the trigger, and the loop retrained
    assert result.loop["promotions"] >= 1
    # once a champion trained on the shifted rows serves, the share falls back and stays down until the
    # next shift: one retrain for the shift, not one per cooldown
    settled = [r for r in shares if first[0] + 2 * TICK < r <= PRE + SHIFT1]
    assert settled and all(shares[r] < 0.5 for r in settled), {r: shares[r] for r in settled}
    assert len(first) == 1, (retrains, shares)
    # a further shift is still drift: it fires again
    assert any(shares[r] >= 0.5 for r in shares if r > PRE + SHIFT1), shares
    assert any(r > PRE + SHIFT1 for r in retrains), (retrains, shares)
    # the backtest's page draws the share at each tick, with the trigger's threshold
    page = render_backtest_html(result, tmp_path / "backtest.html").read_text()
    assert "Drift share at each tick" in page and "retrain.on.drift.share 0.5" in page
    lines = {s["name"]: len(s["series"]) for s in read_specs(page).values()}
    assert lines == {"scores": len(result.curves), "drift-share": 2}  # the share, and the trigger's threshold
    assert result.to_dict(full=True)["drift_share"] == drift
