"""``retrain.on.growth`` on a small real data set (scikit-learn's breast cancer, 569 rows, shipped in the
wheel), through the same controller in a backtest and live: the loop retrains as its training rows double,
logarithmically few times, and each retrain says the figures that fired it."""

from __future__ import annotations

import uuid
from pathlib import Path

import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from tidal import Workspace
from tidal.core.clock import SimulatedClock
from tidal.core.entities import Feedback, Prediction
from tidal.loop.controller import Controller

SPEC = """\
version: 1
name: growth
data: {source: data.csv, target: malignant}
model:
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {max_iter: 20}
  seed: 0
validate:
  split: {method: time, test_size: 0.2}
  metrics: [accuracy]
  gates: [accuracy >= champion - 0.2]
deploy:
  rollback: {metric: accuracy, drop: 0.5, after_rows: 50}
monitor: {window: 100}
retrain:
  on: {growth: 2}
  cooldown: {rows: 0}
  max_per_day: 1000
  min_labelled: 10
backtest: {initial_rows: 114, tick_rows: 50, periodic_every: 50}
"""


def _data() -> pd.DataFrame:
    """The data set in a random order (it is an i.i.d. sample: the order means nothing), target 0/1."""
    bunch = load_breast_cancer(as_frame=True)
    frame = bunch.frame.rename(columns={"target": "malignant"})
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame["malignant"] = 1 - frame["malignant"]  # scikit-learn's 1 is benign
    return frame.sample(frac=1.0, random_state=0).reset_index(drop=True)


def _project(root: Path, frame: pd.DataFrame) -> Path:
    root.mkdir(parents=True)
    (root / "tidal.yaml").write_text(SPEC)
    frame.to_csv(root / "data.csv", index=False)
    return root


def test_the_backtest_retrains_as_the_rows_double(tmp_path: Path) -> None:
    root = _project(tmp_path / "p", _data())
    reasons: list[str] = []
    with Workspace.open(root) as ws:
        result = ws.backtest(progress=lambda _hi, _n, report: reasons.extend(
            str(e.data["reasons"][0]) for e in (report.events if report else []) if e.kind == "loop.retrain"))
    # 114 rows to start, a tick every 50 rows: the first tick with 228 rows or more is at 150 labelled
    # (264 rows, 2.32x), the next with 528 or more at 450 (564 rows, 2.14x); then the replay ends
    assert reasons == ["training rows grew 2.32 times since version 1 was trained (114 → 264, factor 2)",
                       "training rows grew 2.14 times since version 2 was trained (264 → 564, factor 2)"]
    loop = result.loop
    # a retrain for growth alone is gated without the gates' slack (accuracy >= champion, not champion - 0.2):
    # on this i.i.d. sample both challengers score below the champion on the fresh rows, and are rejected;
    # the second attempt counts from the first's rows (264 -> 564), not from the champion's again
    assert loop["retrains"] == 2 and loop["failures"] == 0, loop
    assert loop["promotions"] + loop["rejections"] == 2, loop
    assert result.periodic["retrains"] > loop["retrains"]


def test_the_live_loop_counts_from_the_champions_table(tmp_path: Path) -> None:
    """`tidal run` on 200 rows, then served rows labelled as they come: no retrain at 1.5x, one at 2x, whose
    version records the labelled rows it counted from, and none after until the rows double again."""
    frame = _data()
    root = _project(tmp_path / "p", frame.iloc[:200])
    with Workspace.open(root, clock=SimulatedClock()) as ws:
        assert ws.run().model is not None
        controller = Controller(ws.context())
        try:
            _serve(ws, frame.iloc[200:300])
            tick = controller.tick()
            assert not tick.acted and tick.decision is not None and tick.decision.trigger is None
            _serve(ws, frame.iloc[300:400])
            tick = controller.tick()
            assert tick.acted and tick.champion == 2, tick
            retrain = next(e for e in tick.events if e.kind == "loop.retrain")
            assert retrain.message == ("retrain triggered by growth: training rows grew 2.00 times since version 1 "
                                       "was trained (200 → 400, factor 2)")
            v2 = ws.models.get("growth:2")
            assert v2.lineage.extra["triggered_by"]["labelled"] == 200
            assert ws.store.get_snapshot(v2.lineage.snapshot or "").rows == 400
            _serve(ws, frame.iloc[400:569])  # 400 + 169 rows: 1.42x
            tick = controller.tick()
            assert tick.decision is not None and tick.decision.trigger is None and tick.champion == 2
        finally:
            controller.release()


def _serve(ws: Workspace, frame: pd.DataFrame) -> None:
    """Answer ``frame`` with the champion, log the answers and their labels, as the server would."""
    mv = ws.models.get("growth:champion")
    model = ws.models.load(f"growth:{mv.version}")
    X = frame.drop(columns=["malignant"])
    now = ws.clock.now()
    preds = [Prediction(id=uuid.uuid4().hex, time=now, model="growth", version=mv.version,
                        inputs={k: float(v) for k, v in row.items()}, output=int(p))
             for row, p in zip(X.to_dict(orient="records"), model.predict(X), strict=True)]
    ws.predictions.append(preds)
    ws.predictions.add_feedback([Feedback(prediction_id=p.id, label=int(y), time=now)
                                 for p, y in zip(preds, frame["malignant"], strict=True)])


pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
