"""Issue #11, point 2: no silent failure. Every retrain of the loop ends in one counted outcome
(promoted, rejected, failed, or still on trial), a failed one is an event and a visible line wherever the
loop reports, and `tidal backtest` exits 6 when every retrain failed.

The failures are real: the projects say ``data.checks.unseen_category: error`` and their later rows bring
a category the first champion never saw, so the retrain's validate step refuses its training table (the
champion itself answers those rows: it encodes an unseen category as none of the known ones)."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import _cli
from tidal import Workspace
from tidal.cli import exits
from tidal.core.clock import SimulatedClock
from tidal.core.entities import Feedback, Prediction
from tidal.loop.controller import Controller

SPEC = """\
version: 1
name: outcomes
data:
  source: data.csv
  target: y
  checks: {{unseen_category: error}}
model:
  estimator: sklearn.linear_model.LogisticRegression
  seed: 0
validate:
  split: {{method: time, test_size: 0.2}}
  metrics: [accuracy]
  gates: [accuracy >= champion - 0.02]
deploy:
  strategy: {strategy}
  rollback: {{metric: accuracy, drop: 0.03, after_rows: 150}}
monitor: {{window: 300}}
retrain:
  on:
    new_data: {{rows: 300}}
  cooldown: {{rows: 300}}
  max_per_day: 1000
  min_labelled: 100
  window: {{last_rows: {window}}}
backtest:
  initial_rows: 600
  max_rows: 1500
  tick_rows: 150
"""


def _frame(n: int, *, flip_at: int, unseen: tuple[int, int] | None, seed: int = 0) -> pd.DataFrame:
    """Rows whose concept flips at ``flip_at`` (the sign of x1's effect), with a text column that takes an
    unseen value ("violet") in the rows ``unseen`` (start, stop), and an integer column with gaps."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n).astype(object)
    if unseen is not None:
        colour[unseen[0]:unseen[1]] = "violet"
    visits = pd.array(rng.integers(0, 5, n), dtype="Int64")
    visits[::7] = pd.NA
    sign = np.where(np.arange(n) < flip_at, 1.0, -1.0)
    logit = 2.5 * sign * x1 + 0.5 * x2 + (colour == "red") + 0.2 * visits.fillna(0).to_numpy(dtype=float)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "visits": visits, "y": y})


def _project(root: Path, frame: pd.DataFrame, *, strategy: str = "direct", window: int = 600) -> Path:
    root.mkdir(parents=True)
    frame.to_csv(root / "data.csv", index=False)
    (root / "tidal.yaml").write_text(SPEC.format(strategy=strategy, window=window))
    return root


def _backtest(root: Path, *args: str) -> tuple[int, dict, str]:
    proc = _cli(root)("backtest", "--json", *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def _adds_up(loop: dict) -> None:
    ends = loop["promotions"] + loop["rejections"] + loop["failures"] + loop["pending"]
    assert loop["retrains"] > 0 and ends == loop["retrains"], loop


def test_every_retrain_failed_exits_6_with_one_line_and_is_shown_everywhere(tmp_path: Path) -> None:
    # every streamed row brings the unseen category: no retrain can pass its validate step
    root = _project(tmp_path / "p", _frame(2100, flip_at=1200, unseen=(600, 2100)))
    proc = _cli(root)("backtest", "--html", "bt.html")
    assert proc.returncode == exits.RETRAINS_FAILED, (proc.returncode, proc.stdout, proc.stderr)
    # the numbers, as `backtest --json` prints them, are also the backtest.done event's data
    done = json.loads(_cli(root)("events", "--json", "--kind", "backtest.done", check=True).stdout)[-1]
    loop = done["data"]["loop"]
    _adds_up(loop)
    assert loop["failures"] == loop["retrains"] >= 3 and loop["promotions"] == loop["rejections"] == 0
    assert "not seen before" in loop["first_failure"] and "'violet'" in loop["first_failure"]
    assert loop["score"] == done["data"]["static"]["score"]  # nothing was promoted: the first champion served on
    # one line on stderr, no traceback; the table says it too, under the scores
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [f"error: loop: every retrain failed; the first: {loop['first_failure']}"], proc.stderr
    table = proc.stdout.replace("\n", " ")
    assert f"{loop['retrains']} retrains (0 promotions, 0 rejections, {loop['failures']} failed)" in table
    assert re.search(r"loop: every retrain failed; the first: .*violet", table), proc.stdout
    page = (root / "bt.html").read_text()
    assert "Failed retrains" in page and "loop.retrain_failed" in page and f"{loop['failures']} failed" in page
    assert f"{loop['retrains']} retrains (0 promotions, 0 rejections, {loop['failures']} failed)" in done["message"]
    assert "every retrain failed; the first:" in done["message"]


def test_the_outcomes_add_up_to_the_retrains_on_real_backtests(tmp_path: Path) -> None:
    # the unseen category only in rows 800-900: retrains whose window holds them fail, later ones do not
    mixed = _frame(2100, flip_at=1300, unseen=(800, 900))
    code, result, _ = _backtest(_project(tmp_path / "direct", mixed))
    loop = result["loop"]
    assert code == 0
    _adds_up(loop)
    assert loop["failures"] >= 1 and loop["promotions"] >= 1 and "'violet'" in loop["first_failure"]
    assert loop["pending"] == 0  # a direct promotion is never left pending
    # a canary trial cannot get answers in a backtest (only the champion answers there): each is abandoned,
    # which is a rejection, or still waiting when the replay ends, which is pending
    # (through the SDK: the same Workspace.backtest that the command calls, without a new interpreter)
    with Workspace.open(_project(tmp_path / "canary", mixed, strategy="canary")) as ws:
        loop = ws.backtest().loop
    _adds_up(loop)
    assert loop["failures"] >= 1 and loop["promotions"] == 0 and loop["rejections"] + loop["pending"] >= 1
    # no failure at all, and a gate that asks for a gain: promotions and rejections, no first failure
    clean = _project(tmp_path / "clean", _frame(2100, flip_at=1300, unseen=None))
    spec = (clean / "tidal.yaml").read_text()
    (clean / "tidal.yaml").write_text(spec.replace("accuracy >= champion - 0.02", "accuracy >= champion + 0.01"))
    with Workspace.open(clean) as ws:
        loop = ws.backtest().loop
    assert loop["failures"] == 0 and loop["first_failure"] is None
    assert loop["promotions"] >= 1 and loop["rejections"] >= 1
    _adds_up(loop)


def _serve(ws: Workspace, frame: pd.DataFrame) -> None:
    """Answer ``frame`` with the champion, log the answers and their labels, as the server would."""
    mv = ws.models.get("outcomes:champion")
    model = ws.models.load(f"outcomes:{mv.version}")
    X = frame.drop(columns=["y"])
    pred = model.predict(X)
    now = ws.clock.now()
    preds = [Prediction(id=uuid.uuid4().hex, time=now, model="outcomes", version=mv.version,
                        inputs={k: (None if pd.isna(v) else v) for k, v in row.items()}, output=int(p))
              for row, p in zip(X.to_dict(orient="records"), pred, strict=True)]
    ws.predictions.append(preds)
    ws.predictions.add_feedback([Feedback(prediction_id=p.id, label=int(y), time=now)
                                 for p, y in zip(preds, frame["y"], strict=True)])


def test_a_failed_retrain_shows_in_loop_events_and_monitor(tmp_path: Path) -> None:
    frame = _frame(1000, flip_at=10_000, unseen=(600, 1000))
    root = _project(tmp_path / "p", frame.iloc[:600])
    cli = _cli(root)
    clock = SimulatedClock()
    with Workspace.open(root, clock=clock) as ws:
        ws.run()
        _serve(ws, frame.iloc[600:1000])  # 400 labelled answers, each with the unseen category
    once = cli("loop", "--once")
    assert once.returncode == 6, (once.stdout, once.stderr)  # a failed retrain is not a tick that went well
    assert "retrain failed" in once.stdout and "loop.retrain_failed" in once.stdout, once.stdout
    assert "'violet'" in once.stdout
    shown = cli("events", "--kind", "loop.retrain_failed", check=True).stdout
    assert "retrain (new_data) failed: the data failed validation" in shown.replace("\n", " "), shown
    shown = cli("monitor", "--html", "monitor.html", check=True).stdout
    assert "the loop's last retrain (new_data" in shown and "violet" in shown, shown
    page = (root / "monitor.html").read_text()
    assert "loop-failed" in page and "the loop&#x27;s last retrain (new_data" in page
    with Workspace.open(root, clock=clock) as ws:
        failed = ws.reports(limit=1)[0].body["loop"]["last_retrain_failed"]
        assert failed["trigger"] == "new_data" and "violet" in failed["error"] and failed["failures"] == 1
        (event,) = ws.events(kind="loop.retrain_failed")
        assert event.data["failures"] == 1 and event.data["error"] == failed["error"]
    # once a retrain succeeds, the line is gone (the category is now allowed)
    text = (root / "tidal.yaml").read_text()
    (root / "tidal.yaml").write_text(text.replace("unseen_category: error", "unseen_category: warn"))
    with Workspace.open(root, clock=clock) as ws:
        _serve(ws, frame.iloc[:400])
    assert "retrain failed" not in cli("loop", "--once", check=True).stdout
    with Workspace.open(root, clock=clock) as ws:
        assert "loop" not in ws.monitor().body
        assert ws.controller().load_state().failures == 1  # the count stays: it is the loop's history


def test_a_stable_population_with_an_integer_year_reports_every_retrain(tmp_path: Path) -> None:
    """Issue #11's third bug: an integer `year` as data.time. Each retrain is counted in one outcome, and one
    that fails says why (it failed silently before, so the loop ended exactly at the static score)."""
    rng = np.random.default_rng(1)
    n = 2100
    frame = _frame(n, flip_at=10 * n, unseen=None, seed=1)
    frame.insert(0, "year", np.sort(rng.integers(1990, 2020, n)))
    root = _project(tmp_path / "p", frame)
    text = (root / "tidal.yaml").read_text().replace("  target: y\n", "  target: y\n  time: year\n")
    (root / "tidal.yaml").write_text(text)
    code, result, stderr = _backtest(root)
    loop = result["loop"]
    _adds_up(loop)
    if loop["failures"]:
        assert loop["first_failure"], loop
    assert (code == exits.RETRAINS_FAILED) == (loop["failures"] == loop["retrains"]), (code, stderr)


def test_a_retrain_broken_by_anything_is_recorded_and_the_loop_goes_on(tmp_path: Path) -> None:
    """Not only a TidalError: an OSError while reading the training rows fails the retrain the same way,
    with the error's type in its message, and the next tick runs."""
    frame = _frame(1000, flip_at=10_000, unseen=None)
    root = _project(tmp_path / "p", frame.iloc[:600])

    def unreadable() -> pd.DataFrame:
        raise OSError("the source's disk is gone")

    with Workspace.open(root, clock=SimulatedClock()) as ws:
        ws.run()
        _serve(ws, frame.iloc[600:1000])
        controller = Controller(ws.context(), source_frame=unreadable)
        try:
            tick = controller.tick()
            assert tick.failed == "OSError: the source's disk is gone", tick
            assert [e.kind for e in tick.events][-2:] == ["loop.retrain", "loop.retrain_failed"]
            state = controller.load_state()
            assert state.failures == 1 and state.last_failure is not None and state.in_progress is None
            assert state.last_failure.error == tick.failed and state.last_failure.trigger == "new_data"
            again = controller.tick()  # the cooldown holds the next retrain back; the loop itself runs on
            assert again.failed is None and again.champion == tick.champion == 1
        finally:
            controller.release()
