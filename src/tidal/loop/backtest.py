"""Backtest: replay a project's time-ordered data through the real loop with a simulated clock.

The first part trains the first champion; the rest arrives in order as production traffic, its labels
arriving as feedback after ``backtest.label_delay`` rows; the same controller, policy, gate and rollback
act as they would live. On the same rows it scores, prequentially (each row predicted before its label
is known):

- ``loop``: tidal's closed loop, with its retrains, promotions, rejections and rollbacks counted;
- ``static``: the first champion, never retrained;
- ``periodic``: retrained every K rows regardless (no gate);
- ``last_label``: the most recent label seen (a strong baseline on autocorrelated data).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.clock import SimulatedClock
from tidal.core.entities import Feedback, Prediction
from tidal.core.errors import DataError
from tidal.data.prepare import as_model_input
from tidal.loop.context import LoopContext
from tidal.loop.controller import Controller, TickReport
from tidal.loop.pipeline import TrainingPipeline
from tidal.loop.scoring import plain
from tidal.registry import CHAMPION
from tidal.train.fit import fit_pipeline, predict_frame

Progress = Callable[[int, int, TickReport | None], None]


@dataclass
class BacktestResult:
    """Scores of the four strategies on the same rows, with the loop's story."""

    metric: str
    rows: int
    loop: dict[str, Any]
    static: dict[str, Any]
    periodic: dict[str, Any]
    last_label: dict[str, Any]
    curves: dict[str, list[float]] = field(default_factory=dict)
    curve_rows: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    initial_rows: int = 0
    #: the loop's drift share at each tick: {"rows": [row replayed], "share": [share or None], "threshold"}
    drift_share: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "rows": self.rows, "initial_rows": self.initial_rows,
                               "loop": self.loop, "static": self.static, "periodic": self.periodic,
                               "last_label": self.last_label}
        if full:
            out.update(curves=self.curves, curve_rows=self.curve_rows, events=self.events,
                       drift_share=self.drift_share)
        return out


def _score(task: str, y: np.ndarray, pred: np.ndarray) -> float:
    if task == "classification":
        return float(np.mean(y == pred))
    return float(np.sqrt(np.mean((y.astype(float) - pred.astype(float)) ** 2)))


def _rolling(task: str, y: np.ndarray, pred: np.ndarray, width: int, points: np.ndarray) -> list[float]:
    hit = (y == pred).astype(float) if task == "classification" else (y.astype(float) - pred.astype(float)) ** 2
    csum = np.concatenate([[0.0], np.cumsum(hit)])
    out = []
    for p in points:
        lo = max(0, p - width)
        mean = (csum[p] - csum[lo]) / max(1, p - lo)
        out.append(float(mean if task == "classification" else np.sqrt(mean)))
    return out


def rolling_curves(task: str, y: np.ndarray,
                   predictions: dict[str, np.ndarray]) -> tuple[list[int], dict[str, list[float]]]:
    """Each strategy's score over a sliding window of the stream (accuracy for classification, RMSE for
    regression), at up to 200 rows; returns those rows and a curve per name in ``predictions``. The window
    is a 40th of the stream (at least 200 rows), wide enough to smooth out noise, narrow enough to show a
    drift and the recovery after a retrain."""
    width = max(200, len(y) // 40)
    points = np.unique(np.linspace(width, len(y), num=min(200, len(y)), dtype=int))
    curves = {name: _rolling(task, y, pred, width, points) for name, pred in predictions.items()}
    return [int(p) for p in points], curves


def run_backtest(
    ctx: LoopContext, data: pd.DataFrame, *, progress: Progress | None = None,
) -> BacktestResult:
    """Replay ``data`` (in time order) through the loop of ``ctx`` (fresh stores, a SimulatedClock).

    BLAS/OpenMP run single-threaded meanwhile: a backtest fits and predicts many small models, and on a
    small or busy machine OpenMP's spinning threads made it 15x slower (measured: 117 s against 7 s).
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return _run_backtest(ctx, data, progress)


def _run_backtest(ctx: LoopContext, data: pd.DataFrame, progress: Progress | None) -> BacktestResult:
    spec = ctx.spec
    cfg, target = spec.backtest, spec.data.target
    if not isinstance(ctx.clock, SimulatedClock):
        raise TypeError("a backtest needs a SimulatedClock")
    if spec.data.time is not None:
        data = data.sort_values(spec.data.time, kind="stable")
    data = data.reset_index(drop=True)
    n0 = round(len(data) * cfg.initial_rows) if cfg.initial_rows < 1 else int(cfg.initial_rows)
    if n0 < 20 or n0 >= len(data) - 10:
        raise DataError(f"backtest.initial_rows gives {n0} initial rows of {len(data)}",
                        hint="use a share such as 0.2, or a count that leaves rows to replay")
    end = len(data) if cfg.max_rows is None else min(len(data), n0 + cfg.max_rows)
    initial, stream = data.iloc[:n0], data.iloc[n0:end].reset_index(drop=True)
    clock: SimulatedClock = ctx.clock
    times = _row_times(data, spec.data.time, cfg.minutes_per_row)
    clock.set(times[n0 - 1])

    # the first champion, through the same pipeline as `tidal run`
    TrainingPipeline(ctx, trigger="backtest:initial", frame=initial, frame_source=f"backtest: the first {n0} rows",
                     promote=CHAMPION).run()
    first = ctx.registry.champion(spec.name)
    if first is None:
        raise DataError("the first champion failed its gate, so there is nothing to backtest",
                        hint="relax validate.gates or use more backtest.initial_rows")
    columns = first.signature.names
    kinds = dict(first.signature.columns)
    task = first.task
    y = stream[target].to_numpy()
    X_stream = as_model_input(stream, columns, kinds)
    static_model = ctx.registry.load(first)
    static_pred = predict_frame(static_model, X_stream)[0]

    controller = Controller(ctx, source_frame=lambda: initial, owner="backtest")
    models: dict[int, Any] = {first.version: static_model}
    loop_pred = np.empty(len(stream), dtype=object if y.dtype == object else y.dtype)
    delivered = 0
    start_event = ctx.store.list_events(limit=1)
    first_event_id = (start_event[-1].id or 0) if start_event else 0
    drift_rows: list[int] = []
    drift_shares: list[float | None] = []
    records = stream.drop(columns=[c for c in stream.columns if c not in columns]).to_dict(orient="records")
    for lo in range(0, len(stream), cfg.tick_rows):
        hi = min(len(stream), lo + cfg.tick_rows)
        champ = ctx.registry.champion(spec.name) or first
        if champ.version not in models:
            models[champ.version] = ctx.registry.load(champ)
        pred, proba = predict_frame(models[champ.version], X_stream.iloc[lo:hi])
        loop_pred[lo:hi] = pred
        ctx.predictions.append([
            Prediction(id=f"bt-{lo + i}", time=times[n0 + lo + i], model=spec.name, version=champ.version,
                       inputs=records[lo + i], output=plain(pred[i]),
                       proba=None if proba is None else [float(v) for v in proba[i]], deployment="backtest")
            for i in range(hi - lo)])
        clock.set(times[n0 + hi - 1])
        upto = hi - cfg.label_delay  # labels of rows before this have arrived
        if upto > delivered:
            ctx.predictions.add_feedback([Feedback(prediction_id=f"bt-{j}", label=plain(y[j]), time=clock.now())
                                          for j in range(delivered, upto)])
            delivered = upto
        report = controller.tick()
        drift_rows.append(hi)
        drift_shares.append(report.drift_share)
        if progress is not None:
            progress(hi, len(stream), report)

    periodic_every = cfg.periodic_every or spec.retrain.cooldown.rows or 2000
    periodic_pred, periodic_retrains = _periodic(ctx, data, n0, stream, columns, kinds, periodic_every, task)
    delay = cfg.label_delay
    full_y = data[target].to_numpy()
    last_label = np.array([full_y[n0 + i - 1 - delay] for i in range(len(stream))])

    events = ctx.store.list_events(since_id=first_event_id, limit=100_000)
    row_of = {t: i for i, t in enumerate(times[n0:end])}
    story = [{"row": _row_at(row_of, times[n0:end], e.time), "kind": e.kind, "message": e.message} for e in events
             if e.kind in ("loop.retrain", "alias.moved", "gate.failed", "loop.rollback")]
    promotions = sum(1 for e in events if e.kind == "alias.moved" and e.data.get("alias") == CHAMPION
                     and not e.data.get("rollback") and str(e.data.get("trigger", "")).startswith("loop"))
    metric = "accuracy" if task == "classification" else "rmse"
    curve_rows, curves = rolling_curves(task, y, {"loop": loop_pred, "static": static_pred,
                                                  "periodic": periodic_pred, "last_label": last_label})
    return BacktestResult(
        metric=metric, rows=len(stream), initial_rows=n0,
        loop={"score": _score(task, y, loop_pred), "retrains": sum(e.kind == "loop.retrain" for e in events),
              "promotions": promotions, "rejections": sum(e.kind == "gate.failed" for e in events),
              "rollbacks": sum(e.kind == "loop.rollback" for e in events)},
        static={"score": _score(task, y, static_pred), "version": first.version},
        periodic={"score": _score(task, y, periodic_pred), "every": periodic_every, "retrains": periodic_retrains},
        last_label={"score": _score(task, y, last_label)},
        curves=curves, curve_rows=curve_rows, events=story,
        drift_share={"rows": drift_rows, "share": drift_shares,
                     "threshold": spec.retrain.on.drift.share if spec.retrain.on.drift else None},
    )


def _periodic(ctx: LoopContext, data: pd.DataFrame, n0: int, stream: pd.DataFrame, columns: list[str],
              kinds: dict[str, str], every: int, task: str) -> tuple[np.ndarray, int]:
    """Retrain every ``every`` rows on the rows whose labels have arrived, no gate, no questions."""
    spec = ctx.spec
    delay, window = spec.backtest.label_delay, spec.retrain.window.last_rows
    out = np.empty(len(stream), dtype=object if stream[spec.data.target].dtype == object else
                   stream[spec.data.target].dtype)
    X = as_model_input(stream, columns, kinds)
    retrains = 0
    for lo in range(0, len(stream), every):
        known = data.iloc[: max(1, n0 + lo - delay)]
        if window is not None:
            known = known.tail(window)
        fitted = fit_pipeline(known, target=spec.data.target, columns=columns, kinds=kinds, prepare=spec.prepare,
                              model=spec.model)
        retrains += 1
        hi = min(len(stream), lo + every)
        out[lo:hi] = predict_frame(fitted.model, X.iloc[lo:hi])[0]
    return out, retrains - 1  # the first fit is the initial model, not a retrain


def _row_times(data: pd.DataFrame, time: str | None, minutes: float) -> list[datetime]:
    if time is not None:
        stamps = pd.to_datetime(data[time], utc=True)
        return [t.to_pydatetime() for t in stamps]
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return [start + timedelta(minutes=minutes * i) for i in range(len(data))]


def _row_at(row_of: dict[datetime, int], times: list[datetime], when: datetime) -> int:
    if when in row_of:
        return row_of[when]
    import bisect

    return max(0, min(len(times) - 1, bisect.bisect_left(times, when)))


__all__ = ["BacktestResult", "rolling_curves", "run_backtest"]
