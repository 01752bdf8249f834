"""Backtest: replay a project's time-ordered data through the real loop with a simulated clock.

The first part trains the first champion; the rest arrives in order as production traffic, its labels
arriving as feedback after ``backtest.label_delay`` rows; the same controller, policy, gate and rollback
act as they would live. On the same rows it scores, prequentially (each row predicted before its label
is known):

- ``loop``: tidal's closed loop, with its retrains and how each ended (promoted, rejected, failed, or still
  on trial: ``pending``; see :mod:`tidal.loop.outcomes`), its rollbacks, and the first failure's message;
- ``static``: the first champion, never retrained;
- ``periodic``: retrained every K rows regardless (no gate);
- ``last_label``: the most recent label seen (a strong baseline on autocorrelated data);
- ``online`` (when ``backtest.online`` names one): an online learner (river) that learns each label as it
  arrives, what a user with streaming labels would otherwise pick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.clock import SimulatedClock
from tidal.core.entities import Feedback, Prediction
from tidal.core.errors import DataError
from tidal.data.codec import encode_records, target_array
from tidal.data.history import add_label_features
from tidal.data.prepare import as_model_input
from tidal.data.roles import check_replay, check_time
from tidal.data.timecol import parse_times
from tidal.data.validate import raise_for_errors
from tidal.evaluate.metrics import compute_metrics
from tidal.loop.backtest_estimate import EstimateTracker
from tidal.loop.context import LoopContext
from tidal.loop.continued import check_loop
from tidal.loop.controller import Controller, TickReport
from tidal.loop.online import replay_online, resolve_learner
from tidal.loop.outcomes import STORY, tally
from tidal.loop.pipeline import TrainingPipeline
from tidal.loop.scoring import plain
from tidal.registry import CHAMPION
from tidal.spec import Spec
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
    online: dict[str, Any] | None = None
    curves: dict[str, list[float]] = field(default_factory=dict)
    curve_rows: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    initial_rows: int = 0
    #: how far the estimate before the labels was from the truth (tidal.loop.backtest_estimate)
    estimate: dict[str, Any] = field(default_factory=dict)
    #: what the curves show (see :func:`curve_metric`); empty: ``metric``
    curve_metric: str = ""
    #: the loop's drift share at each tick: {"rows": [row replayed], "share": [share or None], "threshold"}
    drift_share: dict[str, Any] = field(default_factory=dict)
    #: the seconds the periodic strategy took (a timing, so not in :meth:`to_dict`, which two runs of the
    #: same backtest give alike): what running it beside the loop's replay saves at most
    periodic_seconds: float | None = None

    def to_dict(self, *, full: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"metric": self.metric, "rows": self.rows, "initial_rows": self.initial_rows,
                               "loop": self.loop, "static": self.static, "periodic": self.periodic,
                               "last_label": self.last_label, "estimate": self.estimate}
        if self.online is not None:
            out["online"] = self.online
        if full:
            out.update(curves=self.curves, curve_rows=self.curve_rows, events=self.events,
                       drift_share=self.drift_share)
        return out


#: The metrics a backtest may score with: those that need no probabilities (the last-label baseline has none).
BACKTEST_METRICS = {"classification": ("accuracy", "balanced_accuracy", "f1"), "regression": ("rmse", "mae", "r2")}


def backtest_metric(task: str, named: str | None) -> str:
    """The metric a backtest scores ``task`` with: ``backtest.metric``, or accuracy / RMSE; DataError for a
    metric of the other task."""
    if named is None:
        return BACKTEST_METRICS[task][0]
    if named not in BACKTEST_METRICS[task]:
        raise DataError(f"backtest.metric {named!r} does not measure {task} (the first champion is a "
                        f"{'classifier' if task == 'classification' else 'regressor'})",
                        hint=f"use one of {', '.join(BACKTEST_METRICS[task])}, or null")
    return named


def _score(task: str, y: np.ndarray, pred: np.ndarray, metric: str | None = None) -> float:
    metric = metric or BACKTEST_METRICS[task][0]
    if metric == "accuracy":
        return float(np.mean(y == pred))
    if metric == "rmse":
        return float(np.sqrt(np.mean((y.astype(float) - pred.astype(float)) ** 2)))
    value = compute_metrics(task, y, pred).get(metric)
    return float("nan") if value is None else float(value)


def curve_metric(task: str, metric: str | None = None) -> str:
    """The metric of the rolling curves: ``metric`` when it is a mean over rows (accuracy, RMSE, MAE), else
    accuracy or RMSE (balanced accuracy, F1 and R² of a window are not means of its rows)."""
    return metric if metric in ("accuracy", "rmse", "mae") else BACKTEST_METRICS[task][0]


def _rolling(metric: str, y: np.ndarray, pred: np.ndarray, width: int, points: np.ndarray) -> list[float]:
    if metric == "accuracy":
        per_row = (y == pred).astype(float)
    else:
        error = y.astype(float) - pred.astype(float)
        per_row = np.abs(error) if metric == "mae" else error ** 2
    csum = np.concatenate([[0.0], np.cumsum(per_row)])
    out = []
    for p in points:
        lo = max(0, p - width)
        mean = (csum[p] - csum[lo]) / max(1, p - lo)
        out.append(float(np.sqrt(mean) if metric == "rmse" else mean))
    return out


def rolling_curves(task: str, y: np.ndarray, predictions: dict[str, np.ndarray],
                   metric: str | None = None) -> tuple[list[int], dict[str, list[float]]]:
    """Each strategy's score over a sliding window of the stream (:func:`curve_metric` of ``metric``: by
    default accuracy for classification, RMSE for regression), at up to 200 rows; returns those rows and a
    curve per name in ``predictions``. The window is a 40th of the stream (at least 200 rows), wide enough
    to smooth out noise, narrow enough to show a drift and the recovery after a retrain; on a stream shorter
    than that, the whole stream."""
    width = min(len(y), max(200, len(y) // 40))  # never past the stream's end: a short replay has no row 200
    points = np.unique(np.linspace(width, len(y), num=min(200, len(y)), dtype=int))
    name = curve_metric(task, metric)
    curves = {strategy: _rolling(name, y, pred, width, points) for strategy, pred in predictions.items()}
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
    check_loop(ctx)  # retrain.mode: incremental with an estimator that cannot learn new rows: before any fit
    # before sorting: with data.time_order: sorted, the source's own order is what is checked
    raise_for_errors(check_time(data, spec.data.time, spec.data.time_order))
    stamps = None  # the time column read once, as aware UTC: it orders the rows and sets the clock
    if spec.data.time is not None:  # in time order, as time: ISO texts with offsets or epoch seconds too
        stamps = parse_times(data[spec.data.time])
        order = np.argsort(stamps.to_numpy(), kind="stable")
        data, stamps = data.iloc[order], stamps.iloc[order]
    data = data.reset_index(drop=True)
    n0 = round(len(data) * cfg.initial_rows) if cfg.initial_rows < 1 else int(cfg.initial_rows)
    if n0 < 20 or n0 >= len(data) - 10:
        raise DataError(f"backtest.initial_rows gives {n0} initial rows of {len(data)}",
                        hint="use a share such as 0.2, or a count that leaves rows to replay")
    end = len(data) if cfg.max_rows is None else min(len(data), n0 + cfg.max_rows)
    initial, stream = data.iloc[:n0], data.iloc[n0:end].reset_index(drop=True)
    unchecked = [c for c in (*spec.data.drop, spec.data.time) if c]  # the time column has its own check
    raise_for_errors(check_replay(initial, stream, target=target, skip=unchecked, offset=n0,
                                  in_time_order=spec.data.time is not None))
    clock: SimulatedClock = ctx.clock
    times = _row_times(stamps, len(data), cfg.minutes_per_row)
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
    metric = backtest_metric(task, cfg.metric)
    # checked before the replay, so a wrong online learner costs seconds, not the whole backtest
    learner = resolve_learner(cfg.online, task) if cfg.online is not None else None
    y = target_array(stream[target])
    raw_columns = [c for c in columns if c not in first.signature.derived]
    if (lf := spec.prepare.label_features) is not None:
        # each row with the labels known when it is predicted, as the first champion's training rows had them
        data = add_label_features(data, target=target, time=None, spec=lf, task=task,
                                  classes=first.signature.classes, delay=cfg.label_delay)
        stream = data.iloc[n0:end].reset_index(drop=True)
    X_stream = as_model_input(stream, columns, kinds)
    static_model = ctx.registry.load(first)
    static_pred = predict_frame(static_model, X_stream)[0]
    # The strategies that need no store go to the executor now, and are collected after the loop's replay: on
    # Ray they run beside it (the loop's own retrains are Ray tasks too); the local executor runs them when
    # they are collected, in the order it always did.
    delay = cfg.label_delay
    periodic_every = cfg.periodic_every or spec.retrain.cooldown.rows or 2000
    periodic_task = ctx.executor.submit(_periodic, spec, data, n0, stream, columns, kinds, periodic_every, task)
    online_task = None
    if learner is not None:
        # on the data's own columns: the online learner as a user would run it, without tidal's label features
        online_task = ctx.executor.submit(replay_online, learner, data, initial=n0, end=end, columns=raw_columns,
                                          kinds=kinds, target=target, label_delay=delay)

    controller = Controller(ctx, source_frame=lambda: initial, owner="backtest")
    models: dict[int, Any] = {first.version: static_model}
    loop_pred = np.empty(len(stream), dtype=_answer_dtype(task, y))
    delivered = 0
    estimate = EstimateTracker()
    start_event = ctx.store.list_events(limit=1)
    first_event_id = (start_event[-1].id or 0) if start_event else 0
    drift_rows: list[int] = []
    drift_shares: list[float | None] = []
    records = _logged_records(ctx, stream, [c for c in stream.columns if c in columns], kinds)
    for lo in range(0, len(stream), cfg.tick_rows):
        hi = min(len(stream), lo + cfg.tick_rows)
        champ = ctx.registry.champion(spec.name) or first
        if champ.version not in models:
            models[champ.version] = ctx.registry.load(champ)
        pred, proba = predict_frame(models[champ.version], X_stream.iloc[lo:hi])
        loop_pred[lo:hi] = pred
        estimate.add(champ, proba, pred, y[lo:hi])  # before these rows' labels arrive
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

    periodic_pred, periodic_retrains, periodic_seconds = periodic_task.result()
    full_y = target_array(data[target])
    last_label = full_y[[n0 + i - 1 - delay for i in range(len(stream))]]
    strategies = {"loop": loop_pred, "static": static_pred, "periodic": periodic_pred, "last_label": last_label}
    online = None
    if learner is not None and online_task is not None:
        online_pred, seconds = online_task.result()
        strategies["online"] = online_pred
        online = {"score": _score(task, y, online_pred, metric), "model": learner.name,
                  "seconds": round(seconds, 2)}

    events = ctx.store.list_events(since_id=first_event_id, limit=100_000)
    row_of = {t: i for i, t in enumerate(times[n0:end])}
    story = [{"row": _row_at(row_of, times[n0:end], e.time), "kind": e.kind, "message": e.message} for e in events
             if e.kind in STORY]
    # a canary/shadow trial still running when the replay ends: its retrain has no outcome yet
    outcomes = tally(events, pending=int(controller.load_state().trial is not None))
    curve_rows, curves = rolling_curves(task, y, strategies, metric)
    return BacktestResult(
        metric=metric, rows=len(stream), initial_rows=n0,
        loop={"score": _score(task, y, loop_pred, metric), **outcomes},
        static={"score": _score(task, y, static_pred, metric), "version": first.version},
        periodic={"score": _score(task, y, periodic_pred, metric), "every": periodic_every,
                  "retrains": periodic_retrains}, periodic_seconds=round(periodic_seconds, 2),
        last_label={"score": _score(task, y, last_label, metric)}, online=online,
        curves=curves, curve_rows=curve_rows, events=story, estimate=estimate.to_dict(),
        curve_metric=curve_metric(task, metric),
        drift_share={"rows": drift_rows, "share": drift_shares,
                     "threshold": spec.retrain.on.drift.share if spec.retrain.on.drift else None},
    )


def _logged_records(ctx: LoopContext, stream: pd.DataFrame, columns: list[str],
                    kinds: dict[str, str]) -> list[dict[str, Any]]:
    """Each stream row's inputs as the prediction log keeps them. An image is logged as a server logs it
    (docs/images.md, "Serving"): its digest and a thumbnail in the log, the canonical PNG put in the
    (throw-away) artifact store under that digest, where a retrain reads it back."""
    images = [c for c in columns if kinds.get(c) == "image"]
    records = encode_records(stream, [c for c in columns if c not in images])
    if images:
        from tidal.data.images.serving import logged_image

        for c in images:
            for record, png in zip(records, stream[c].tolist(), strict=True):
                ctx.artifacts.put(png)
                record[c] = logged_image(png)
    return records


def _periodic(spec: Spec, data: pd.DataFrame, n0: int, stream: pd.DataFrame, columns: list[str],
              kinds: dict[str, str], every: int, task: str) -> tuple[np.ndarray, int, float]:
    """Retrain every ``every`` rows on the rows whose labels have arrived, no gate, no questions (a function
    of its arguments: the executor runs it). Gives the answers, the retrains, and the seconds it took (what
    running it beside the loop's replay can save at most)."""
    started = time.perf_counter()
    delay, window = spec.backtest.label_delay, spec.retrain.window.last_rows
    out = np.empty(len(stream), dtype=_answer_dtype(task, target_array(stream[spec.data.target])))
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
    return out, retrains - 1, time.perf_counter() - started  # the first fit is the initial model, not a retrain


def _answer_dtype(task: str, y: np.ndarray) -> np.dtype[Any]:
    """What holds a strategy's answers: the labels' dtype for a classifier, floats for a regressor (an
    integer target's predictions are not integers)."""
    return np.dtype(np.float64) if task == "regression" else y.dtype


def _row_times(stamps: pd.Series | None, rows: int, minutes: float) -> list[datetime]:
    """Each row's time: its time column read as the spec says (docs/spec.md, data.time), or, without one,
    ``minutes`` apart from 2000-01-01 UTC."""
    if stamps is not None:
        return [t.to_pydatetime() for t in stamps]
    start = datetime(2000, 1, 1, tzinfo=UTC)
    return [start + timedelta(minutes=minutes * i) for i in range(rows)]


def _row_at(row_of: dict[datetime, int], times: list[datetime], when: datetime) -> int:
    if when in row_of:
        return row_of[when]
    import bisect

    return max(0, min(len(times) - 1, bisect.bisect_left(times, when)))


__all__ = ["BACKTEST_METRICS", "BacktestResult", "backtest_metric", "curve_metric", "rolling_curves", "run_backtest"]
