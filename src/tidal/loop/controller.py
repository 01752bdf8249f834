"""The controller: observe → decide → act → record, one tick at a time.

Observe: the champion's recent predictions and feedback (a monitor report), new labelled rows, the
clock. Decide: the retrain policy (``tidal.loop.policy``). Act: a retrain through the same pipeline as
``tidal run``, a promotion after a canary or shadow trial, a rollback. Record: an Event for every
decision, with the trigger and the figures that fired it.

State lives in the MetadataStore, not in memory, so a controller survives its own restart; a lease in
the store makes sure two controllers on one workspace never both act.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from tidal.core.entities import Event, Lease, ModelState, ModelVersion
from tidal.core.errors import AliasMoved, PredictionNotFound, TidalError
from tidal.data.validate import kind_changes, raise_for_errors
from tidal.evaluate.metrics import primary_metric
from tidal.loop.context import LoopContext
from tidal.loop.liveness import Heartbeat
from tidal.loop.monitoring import monitor_once, note_unreadable
from tidal.loop.pipeline import RunResult, TrainingPipeline
from tidal.loop.policy import Decision, Observation, decide, worse
from tidal.loop.scoring import plain, score
from tidal.loop.state import LoopState, Retraining, Trial, Watch
from tidal.monitor.frame import inputs_frame
from tidal.registry import CHALLENGER, CHAMPION, subject
from tidal.spec.metrics import LOWER_IS_BETTER


@dataclass
class TickReport:
    """What one tick did, for people (the live display) and tests."""

    time: datetime
    acted: bool = False
    champion: int | None = None
    decision: Decision | None = None
    drift_share: float | None = None
    value: float | None = None
    metric: str | None = None
    events: list[Event] = field(default_factory=list)
    note: str = ""
    #: the lease of another controller that kept this tick from acting (None: the tick held the lease)
    blocked_by: Lease | None = None


#: Seconds a controller's lease lasts; it is renewed every third of that while the controller lives, so a
#: controller killed without releasing it blocks a new one for this long at most.
LEASE_S = 30.0


class Controller:
    """Runs the closed loop of one workspace."""

    def __init__(
        self, ctx: LoopContext, *, owner: str | None = None, lease_seconds: float = LEASE_S,
        source_frame: Callable[[], pd.DataFrame] | None = None,
        on_retrain: Callable[[RunResult], None] | None = None, take_over: bool = False,
    ) -> None:
        """``take_over``: take the lease even from a controller that holds it (an operator who knows that
        controller is dead); recorded as a ``loop.lease_taken_over`` event."""
        self.ctx = ctx
        self.name = ctx.spec.name
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_seconds = lease_seconds
        self.source_frame = source_frame
        self.on_retrain = on_retrain
        self.state_key = f"loop:{self.name}"
        self.lease_key = f"loop-lease:{self.name}"
        self._events: list[Event] = []
        self._take_over = take_over
        self._keeper: Heartbeat | None = None
        self.lease_lost = False

    # -- state and lease ------------------------------------------------------------------------
    def load_state(self) -> LoopState:
        return LoopState.from_dict(self.ctx.store.get_state(self.state_key))

    def _save(self, state: LoopState) -> None:
        self.ctx.store.put_state(self.state_key, state.to_dict())

    def acquire(self) -> bool:
        """Take (or renew) the workspace's controller lease; False when another controller holds it. While
        it is held in real time, a background heartbeat renews it (see :data:`LEASE_S`)."""
        now = self.ctx.clock.now()
        until = now + timedelta(seconds=self.lease_seconds)
        if self._take_over:
            before = self.ctx.store.get_lease(self.lease_key)
            with self.ctx.store.atomic():
                self.ctx.store.acquire_lease(self.lease_key, self.owner, until, now, force=True)
                if before is not None and before.owner != self.owner and before.until > now:
                    self._event("loop.lease_taken_over", f"controller lease taken over from {before.owner} (it held "
                                f"it until {before.until.isoformat()}) by {self.owner}",
                                {"from": before.owner, "until": before.until.isoformat(), "by": self.owner})
            self._take_over = False
            ok = True
        else:
            ok = self.ctx.store.acquire_lease(self.lease_key, self.owner, until, now)
        if ok:
            self.lease_lost = False
            if self._keeper is None and self.ctx.heartbeat_s is not None:
                self._keeper = Heartbeat(self._renew, self.lease_seconds / 3, name="tidal-lease").start()
        return ok

    def _renew(self) -> None:
        now = self.ctx.clock.now()
        if not self.ctx.store.acquire_lease(self.lease_key, self.owner, now + timedelta(seconds=self.lease_seconds),
                                            now):
            self.lease_lost = True  # taken over: the next tick finds out and does not act

    def holder(self) -> Lease | None:
        """Who holds the controller lease of this workspace now, and until when."""
        return self.ctx.store.get_lease(self.lease_key)

    def release(self) -> None:
        """Stop renewing the lease and give it up (a no-op if another controller holds it)."""
        if self._keeper is not None:
            self._keeper.stop()
            self._keeper = None
        self.ctx.store.release_lease(self.lease_key, self.owner)

    def _event(self, kind: str, message: str, data: dict[str, Any], version: int | None = None) -> None:
        event = self.ctx.store.append_event(Event(kind=kind, subject=subject(self.name, version), message=message,
                                                  time=self.ctx.clock.now(), data=data))
        self._events.append(event)

    # -- the tick -------------------------------------------------------------------------------
    def tick(self) -> TickReport:
        """One round: observe, decide, act, record."""
        now = self.ctx.clock.now()
        self._events = []
        report = TickReport(time=now)
        if not self.acquire():
            lease = self.holder()
            champion = self.ctx.registry.champion(self.name)
            report.champion = champion.version if champion else None
            report.blocked_by = lease
            report.note = blocked_note(lease, now)
            return report
        state = self.load_state()
        state.ticks += 1
        champion = self.ctx.registry.champion(self.name)
        if champion is None:
            report.note = "no champion yet: run `tidal run` first"
            self._save(state)
            return report
        report.champion = champion.version
        spec = self.ctx.spec
        if spec.retrain.on.schedule and state.schedule_checked is None:
            state.schedule_checked = now

        if state.in_progress is not None:  # a retrain that a killed controller left behind
            self._retrain(state, champion, state.in_progress.trigger, list(state.in_progress.reasons), retry=True)
            report.acted = True
            champion = self.ctx.registry.champion(self.name) or champion
        if state.watch is not None:
            report.acted |= self._check_rollback(state, champion)
            champion = self.ctx.registry.champion(self.name) or champion
        if state.trial is not None:
            report.acted |= self._check_trial(state, champion)
            champion = self.ctx.registry.champion(self.name) or champion

        obs = self._observe(champion, now)
        report.drift_share, report.value, report.metric = obs.drift_share, obs.value, obs.metric
        decision = decide(spec.retrain, obs, state)
        report.decision = decision
        if spec.retrain.on.schedule:
            state.schedule_checked = now
        if decision.retrain and state.trial is None and state.watch is None:
            state.in_progress = Retraining(trigger=decision.trigger or "manual", reasons=list(decision.reasons),
                                           started=now, labelled_total=obs.labelled_total)
            self._save(state)
            self._event("loop.retrain", f"retrain triggered by {decision.trigger}: {'; '.join(decision.reasons)}",
                        {"trigger": decision.trigger, "reasons": decision.reasons,
                         "labelled_total": obs.labelled_total, "drift_share": obs.drift_share,
                         "metric": obs.metric, "value": obs.value}, champion.version)
            self._retrain(state, champion, decision.trigger or "manual", decision.reasons)
            report.acted = True
        elif decision.trigger is not None:
            why = decision.blocked_by or ("a canary/shadow trial or a rollback watch is running")
            note = f"{decision.trigger}|{why.split(':')[0]}"
            if note != state.last_note:  # record a suppression once, not on every tick
                self._event("loop.suppressed", f"{decision.trigger} fired but no retrain: {why}",
                            {"trigger": decision.trigger, "reasons": decision.reasons, "blocked_by": why},
                            champion.version)
                state.last_note = note
        else:
            state.last_note = None
        champ_after = self.ctx.registry.champion(self.name)
        report.champion = champ_after.version if champ_after else None
        self._save(state)
        report.events = list(self._events)
        return report

    def _observe(self, champion: ModelVersion, now: datetime) -> Observation:
        spec = self.ctx.spec
        rep = monitor_once(self.ctx, champion)
        perf_cfg = spec.retrain.on.performance
        metric = (perf_cfg.metric if perf_cfg and perf_cfg.metric else None) or primary_metric(
            champion.task, spec.validate.metric_names())
        perf = rep.body.get("performance") or {}
        value = (perf.get("metrics") or {}).get(metric)
        return Observation(
            now=now, labelled_total=self.ctx.predictions.count(model=self.name, labelled=True),
            drift_share=rep.drift_share, window_rows=int(rep.window.get("rows", 0)), metric=metric,
            value=value, labelled_in_window=int(perf.get("labelled", 0) or 0),
            validation=champion.metrics.get(metric), min_labelled_for_perf=spec.monitor.performance.min_labelled)

    # -- acting ---------------------------------------------------------------------------------
    def training_frame(self) -> tuple[pd.DataFrame, str]:
        """The rows a retrain trains on: the source again (unless ``include_source`` is false) and every
        labelled prediction, in time order, cut to ``retrain.window``."""
        spec = self.ctx.spec
        data, policy = spec.data, spec.retrain
        parts: list[pd.DataFrame] = []
        n_source = 0
        if policy.include_source:
            if self.source_frame is not None:
                source = self.source_frame()
            else:
                from tidal.data.sources import read_source

                source = read_source(data.source, base_dir=self.ctx.root, query=data.query)
            source = source.drop(columns=list(data.drop), errors="ignore")  # not trained on: may change as it likes
            if (champion := self.ctx.registry.champion(self.name)) is not None:  # said in the source's own rows
                raise_for_errors(kind_changes(source, champion.signature.columns))
            n_source = len(source)
            parts.append(source)
        labelled = self.ctx.predictions.window(model=self.name, labelled=True)
        note_unreadable(self.ctx, self.name)
        if labelled:
            rows = inputs_frame(labelled)
            rows[data.target] = [p.label for p in labelled]
            if data.time is not None:
                rows[data.time] = [p.time for p in labelled]
            parts.append(rows)
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        if policy.window.last_days is not None and data.time is not None and len(frame):
            times = pd.to_datetime(frame[data.time], utc=True)
            frame = frame[times >= pd.Timestamp(self.ctx.clock.now()) - pd.Timedelta(days=policy.window.last_days)]
        if policy.window.last_rows is not None:
            frame = frame.tail(policy.window.last_rows)
        label = (f"loop window: {len(frame)} rows ({n_source} from the source, {len(labelled)} labelled "
                 f"predictions before the window cut)")
        return frame.reset_index(drop=True), label

    def _retrain(self, state: LoopState, champion: ModelVersion, trigger: str, reasons: list[str],
                 *, retry: bool = False) -> None:
        spec = self.ctx.spec
        kind = spec.deploy.strategy.kind
        started = state.in_progress.started if state.in_progress else self.ctx.clock.now()
        labelled_total = state.in_progress.labelled_total if state.in_progress else 0
        try:
            frame, label = self.training_frame()
            pipeline = TrainingPipeline(self.ctx, trigger=f"loop:{trigger}", frame=frame, frame_source=label,
                                        promote=CHAMPION if kind == "direct" else CHALLENGER, refit=spec.retrain.refit)
            result = pipeline.run()
        except TidalError as exc:
            self._event("loop.retrain_failed", f"retrain ({trigger}) failed: {exc}", {"trigger": trigger,
                        "error": str(exc)}, champion.version)
            result = None
        now = self.ctx.clock.now()
        state.in_progress = None
        state.last_retrain = now
        state.last_retrain_labelled = labelled_total
        state.retrain_times = [t for t in state.retrain_times if t > now - timedelta(days=1)] + [now]
        self._save(state)
        if result is None or result.model is None:
            return
        if self.on_retrain is not None:
            self.on_retrain(result)
        mv = result.model
        if mv.state != ModelState.VALIDATED:
            return  # rejected: the pipeline recorded why; the champion stays
        alias = CHAMPION if kind == "direct" else CHALLENGER
        current = self.ctx.store.get_alias(self.name, alias)
        if retry and mv.created_at >= started and (current is None or current.version != mv.version):
            # the killed controller registered the version but did not get to move the alias
            self.ctx.registry.set_alias(self.name, alias, mv.version, trigger=f"loop:{trigger}",
                                        reason=f"passed the gate in run {result.run.id[:8]} (retried)")
        if kind == "direct":
            self._start_watch(state, new=mv, old=champion)
        elif mv.version != champion.version:
            state.trial = Trial(version=mv.version, kind=kind, since=now, champion=champion.version)
            self._event(f"loop.{kind}_started",
                        f"{self.name}:{mv.version} deployed as {kind} beside champion {self.name}:{champion.version}"
                        + (f" ({spec.deploy.strategy.percent:g}% of traffic)" if kind == "canary" else ""),
                        {"version": mv.version, "champion": champion.version, "kind": kind}, mv.version)
        self._save(state)

    def _metric(self, mv: ModelVersion) -> str:
        rb = self.ctx.spec.deploy.rollback
        return (rb.metric if rb and rb.metric else None) or primary_metric(
            mv.task, self.ctx.spec.validate.metric_names())

    def _start_watch(self, state: LoopState, *, new: ModelVersion, old: ModelVersion) -> None:
        rb = self.ctx.spec.deploy.rollback
        if rb is None or new.version == old.version:
            return
        state.watch = Watch(version=new.version, previous=old.version, metric=self._metric(new),
                            since=self.ctx.clock.now())

    def _check_rollback(self, state: LoopState, champion: ModelVersion) -> bool:
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

    def _check_trial(self, state: LoopState, champion: ModelVersion) -> bool:
        trial = state.trial
        if trial is None:
            return False
        strategy = self.ctx.spec.deploy.strategy
        try:
            challenger = self.ctx.registry.get(self.name, trial.version)
        except TidalError:
            state.trial = None
            return False
        since, kind = trial.since, trial.kind
        metric = self._metric(champion)
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
                self._start_watch(state, new=challenger, old=champion)
            else:
                self.ctx.registry.set_state(self.name, challenger.version, ModelState.REJECTED,
                                            [f"{kind} trial: {metric} {chall_value} worse than the champion's "
                                             f"{champ_value} on {len(chall_preds)} labelled requests"])
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

    # -- running --------------------------------------------------------------------------------
    def run(self, *, interval_s: float, max_ticks: int | None = None,
            on_tick: Callable[[TickReport], None] | None = None, stop: Callable[[], bool] | None = None) -> None:
        """Tick every ``interval_s`` seconds until ``stop()`` or ``max_ticks``; releases the lease at the end."""
        import time

        n = 0
        try:
            while (max_ticks is None or n < max_ticks) and not (stop and stop()):
                started = time.monotonic()
                report = self.tick()
                if on_tick is not None:
                    on_tick(report)
                n += 1
                if max_ticks is not None and n >= max_ticks:
                    break
                time.sleep(max(0.0, interval_s - (time.monotonic() - started)))
        finally:
            self.release()


def blocked_note(lease: Lease | None, now: datetime) -> str:
    """Why a tick did not act: who holds the controller lease, until when, and what an operator can do."""
    if lease is None:  # released between the two reads: the next tick takes it
        return "another controller held the lease a moment ago; not acting this tick"
    left = int((lease.until - now).total_seconds())
    return (f"another controller holds the lease: {lease.owner}, until {lease.until.isoformat(timespec='seconds')} "
            f"({max(left, 0)} s from now); not acting. If that process is dead, the lease frees itself then, or run "
            "`tidal loop --take-over`")


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
