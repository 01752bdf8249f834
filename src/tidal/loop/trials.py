"""Trials and watches: how the controller judges a new model on live traffic after a retrain.

A canary or shadow challenger is judged against the champion on the same labelled requests, then promoted
or rejected (or abandoned when it gets no answers); a directly promoted champion is watched for its first
labelled rows and rolled back if it does worse than the one it replaced on those same rows. Every move is
an Event, committed together with the loop's state so that a controller killed half way judges again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tidal.core.entities import ModelState, ModelVersion
from tidal.core.errors import AliasMoved, PredictionNotFound, TidalError
from tidal.evaluate.metrics import primary_metric
from tidal.loop.context import LoopContext
from tidal.loop.policy import worse
from tidal.loop.scoring import plain, score
from tidal.loop.state import LoopState, Trial, Watch
from tidal.monitor.frame import inputs_frame
from tidal.registry import CHALLENGER, CHAMPION
from tidal.spec.metrics import LOWER_IS_BETTER

#: records an Event: (kind, message, data, version)
EventSink = Callable[[str, str, dict[str, Any], "int | None"], None]


class Trials:
    """The trial and rollback-watch half of :class:`tidal.loop.controller.Controller`: it reads and moves
    aliases, and records through the controller's ``event`` and ``save`` (so that its events are the tick's)."""

    def __init__(self, ctx: LoopContext, *, event: EventSink, save: Callable[[LoopState], None]) -> None:
        self.ctx = ctx
        self.name = ctx.spec.name
        self._event = event
        self._save = save

    def start_trial(self, state: LoopState, *, new: ModelVersion, champion: ModelVersion, kind: str) -> None:
        """Deploy ``new`` as a canary or shadow challenger beside ``champion`` (the tick judges it later)."""
        strategy = self.ctx.spec.deploy.strategy
        state.trial = Trial(version=new.version, kind="canary" if kind == "canary" else "shadow",
                            since=self.ctx.clock.now(), champion=champion.version)
        with self.ctx.store.atomic():
            # deployed as it got the challenger alias (the registration); a version that got it otherwise
            # (a controller killed before this step) is deployed here, with the trial's start
            self.ctx.registry.transition(self.name, new.version, ModelState.DEPLOYED, only_from=[ModelState.VALIDATED],
                                         reason=f"serving as {kind} challenger beside champion "
                                                f"{self.name}:{champion.version}",
                                         data={"alias": CHALLENGER, "trigger": f"loop:{kind}"})
            self._event(f"loop.{kind}_started",
                        f"{self.name}:{new.version} deployed as {kind} beside champion {self.name}:{champion.version}"
                        + (f" ({strategy.percent:g}% of traffic)" if kind == "canary" else ""),
                        {"version": new.version, "champion": champion.version, "kind": kind}, new.version)

    def metric(self, mv: ModelVersion) -> str:
        rb = self.ctx.spec.deploy.rollback
        return (rb.metric if rb and rb.metric else None) or primary_metric(
            mv.task, self.ctx.spec.validate.metric_names())

    def start_watch(self, state: LoopState, *, new: ModelVersion, old: ModelVersion) -> None:
        rb = self.ctx.spec.deploy.rollback
        if rb is None or new.version == old.version:
            return
        state.watch = Watch(version=new.version, previous=old.version, metric=self.metric(new),
                            since=self.ctx.clock.now())

    def check_rollback(self, state: LoopState, champion: ModelVersion) -> bool:
        """Once the new champion has ``after_rows`` labelled answers, score the old champion on the same
        rows (their inputs are in the log) and move the alias back if the new one is worse by ``drop``.
        Comparing on the same rows matters: under drift, later rows are harder for every model."""
        watch, rb = state.watch, self.ctx.spec.deploy.rollback
        if watch is None or rb is None or champion.version != watch.version:
            state.watch = None  # the champion moved on by other means: nothing to watch
            return False
        preds = self.ctx.predictions.window(model=self.name, version=champion.version, labelled=True)
        if len(preds) < rb.after_rows:
            return False
        preds = preds[: rb.after_rows]
        state.watch = None
        previous = self.ctx.registry.get(self.name, watch.previous)
        metric = watch.metric
        value = score(champion, preds, metric)
        baseline = score(previous, _answers_of(self.ctx, previous, preds), metric)
        if value is None or baseline is None:
            return False
        limit = baseline + rb.drop if metric in LOWER_IS_BETTER else baseline - rb.drop
        figures = {"metric": metric, "value": value, "baseline": baseline, "drop": rb.drop,
                   "rows": rb.after_rows, "from": champion.version, "to": previous.version}
        if worse(metric, value, limit):
            try:
                self._roll_back(state, champion, previous, figures, after_rows=rb.after_rows)
            except AliasMoved as moved:  # promoted or rolled back by hand meanwhile: that decision stands
                self._event("loop.watch_ended", f"{self.name}:{champion.version} was no longer champion when its "
                            f"watch ended (champion: {moved.current}); no rollback", figures, champion.version)
                return False
            return True
        with self.ctx.store.atomic():
            self._event("loop.kept", f"{self.name}:{champion.version} kept: {metric} {value:.3f} on its first "
                        f"{rb.after_rows} labelled rows; {self.name}:{previous.version} would have scored "
                        f"{baseline:.3f} (allowed drop {rb.drop:g})", figures, champion.version)
            self._save(state)
        return False

    def _roll_back(self, state: LoopState, champion: ModelVersion, previous: ModelVersion, figures: dict[str, Any],
                   *, after_rows: int) -> None:
        """Move the champion back to ``previous``, with its events and the loop's state, all or nothing;
        AliasMoved (nothing changed) if ``champion`` is no longer champion."""
        metric, value, baseline, drop = figures["metric"], figures["value"], figures["baseline"], figures["drop"]
        with self.ctx.store.atomic():  # the move, its events and the loop's state: all or nothing
            self.ctx.registry.rollback(
                self.name, to=previous.version, expected=champion.version, trigger="loop:rollback",
                reason=f"{self.name}:{champion.version} {metric} {value:.3f} on its first {after_rows} "
                       f"labelled rows is worse than {self.name}:{previous.version}'s {baseline:.3f} on the same "
                       f"rows by more than {drop:g}", data=figures)
            self._event("loop.rollback", f"rolled back {self.name}:{champion.version} → {previous.version}: "
                        f"{metric} {value:.3f} vs {baseline:.3f} on the same {after_rows} rows "
                        f"(allowed drop {drop:g})", figures, champion.version)
            self._save(state)

    def check_trial(self, state: LoopState, champion: ModelVersion) -> bool:
        trial = state.trial
        if trial is None:
            return False
        strategy = self.ctx.spec.deploy.strategy
        try:
            challenger = self.ctx.registry.get(self.name, trial.version)
        except TidalError as exc:  # deleted meanwhile: the trial ends, and its retrain's outcome is said
            state.trial = None
            self._event("loop.trial_abandoned", f"{self.name}:{trial.version} {trial.kind} trial abandoned: the "
                        f"challenger cannot be read ({exc})", {"kind": trial.kind, "error": str(exc)}, trial.version)
            return False
        since, kind = trial.since, trial.kind
        metric = self.metric(champion)
        if kind == "shadow":
            mine = self.ctx.predictions.window(model=self.name, version=champion.version, since=since,
                                               labelled=True)
            pairs: list[tuple[Any, Any]] = []
            for p in mine:
                try:
                    pairs.append((p, self.ctx.predictions.get(f"{p.id}.shadow")))
                except PredictionNotFound:
                    continue
            if len(pairs) < strategy.min_requests:
                # every labelled champion answer should have its shadow: min_requests of them should do
                return self._abandon_trial(state, challenger, trial, got=len(pairs), champion_labelled=len(mine),
                                           expected=strategy.min_requests * strategy.patience)
            champ_preds = [p for p, _ in pairs]
            chall_preds = [_relabel(s, p.label) for p, s in pairs]
        else:
            chall_preds = self.ctx.predictions.window(model=self.name, version=challenger.version, since=since,
                                                      labelled=True)
            if len(chall_preds) < strategy.min_requests:
                # the champion answers (100 - percent) requests for every `percent` of the challenger's
                mine_n = self.ctx.predictions.count(model=self.name, version=champion.version, since=since,
                                                    labelled=True)
                share = strategy.percent / 100
                return self._abandon_trial(state, challenger, trial, got=len(chall_preds), champion_labelled=mine_n,
                                           expected=strategy.min_requests * strategy.patience * (1 - share) / share)
            champ_preds = self.ctx.predictions.window(model=self.name, version=champion.version, since=since,
                                                      labelled=True)
        champ_value, chall_value = score(champion, champ_preds, metric), score(challenger, chall_preds, metric)
        state.trial = None
        figures = {"metric": metric, "champion": champ_value, "challenger": chall_value,
                   "rows": len(chall_preds), "kind": kind}
        won = chall_value is not None and (champ_value is None or not worse(metric, chall_value, champ_value))
        # The alias moves, their events and the loop's state commit together: a controller killed half way
        # leaves the trial as it was, and the next tick judges it again.
        with self.ctx.store.atomic():
            self.ctx.registry.remove_alias(self.name, CHALLENGER, reason=f"the {kind} trial ended",
                                           trigger=f"loop:{kind}")
            if won:
                self.ctx.registry.set_alias(
                    self.name, CHAMPION, challenger.version, trigger=f"loop:{kind}",
                    reason=f"{kind} trial: {metric} {chall_value:.3f} vs champion "
                           + (f"{champ_value:.3f}" if champ_value is not None else "n/a")
                           + f" on {len(chall_preds)} labelled requests", data=figures)
                self.start_watch(state, new=challenger, old=champion)
            else:
                why = (f"{kind} trial: {metric} {_fmt(chall_value)} worse than the champion's {_fmt(champ_value)} "
                       f"on {len(chall_preds)} labelled requests")
                self.ctx.registry.set_state(self.name, challenger.version, ModelState.REJECTED, [why])
                # the retrain's outcome, as its own event: the backtest counts it among the rejections
                self._event("loop.trial_lost", f"{self.name}:{challenger.version} rejected: {why}", figures,
                            challenger.version)
            self._save(state)
        return True

    def _abandon_trial(self, state: LoopState, challenger: ModelVersion, trial: Trial, *, got: int,
                       champion_labelled: int, expected: float) -> bool:
        """End a trial whose challenger is not getting labelled answers (it fails every request it is given,
        or the server does not run it), once the champion has ``expected`` labelled answers since it began:
        otherwise a broken challenger would hold the loop (no retrain starts during a trial) for ever.
        Returns whether it ended."""
        if champion_labelled < expected:
            return False
        kind, need = trial.kind, self.ctx.spec.deploy.strategy.min_requests
        why = (f"{kind} trial abandoned: {got} labelled challenger answers of the {need} needed, while the "
               f"champion got {champion_labelled} (deploy.strategy.patience); is the server running the "
               "challenger? (GET /model shows it; the server log says why it is not)")
        state.trial = None
        with self.ctx.store.atomic():
            self.ctx.registry.remove_alias(self.name, CHALLENGER, reason=f"the {kind} trial was abandoned",
                                           trigger=f"loop:{kind}")
            self.ctx.registry.set_state(self.name, challenger.version, ModelState.REJECTED, [why])
            self._event("loop.trial_abandoned", f"{self.name}:{challenger.version} {why}",
                        {"kind": kind, "challenger_labelled": got, "needed": need,
                         "champion_labelled": champion_labelled}, challenger.version)
            self._save(state)
        return True


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _answers_of(ctx: LoopContext, mv: ModelVersion, preds: list[Any]) -> list[Any]:
    """What ``mv`` would have answered to the logged ``preds`` (same inputs, same labels)."""
    from dataclasses import replace

    from tidal.data.prepare import as_model_input
    from tidal.train.fit import predict_frame

    columns = dict(mv.signature.columns)
    frame = inputs_frame(preds)
    if any(c not in frame.columns for c in columns):
        return []
    out, proba = predict_frame(ctx.registry.load(mv), as_model_input(frame, list(columns), columns))
    return [replace(p, output=plain(out[i]), proba=None if proba is None else [float(v) for v in proba[i]])
            for i, p in enumerate(preds)]


def _relabel(p: Any, label: Any) -> Any:
    from dataclasses import replace

    return replace(p, label=label)
