"""The controller: observe → decide → act → record, one tick at a time.

Observe: with ``data.collect``, a collection from the source when one is due (:mod:`tidal.loop.collection`);
the champion's recent predictions and feedback (a monitor report), new labelled rows, the clock. Decide: the
retrain policy (``tidal.loop.policy``). Act: a retrain through the same pipeline as ``tidal run``, a
promotion after a canary or shadow trial, a rollback. Record: an Event for every
decision, with the trigger and the figures that fired it.

State lives in the MetadataStore, not in memory, so a controller survives its own restart; a lease in
the store makes sure two controllers on one workspace never both act.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pandas as pd

from tidal.core.entities import Event, Lease, ModelState, ModelVersion
from tidal.core.errors import SnapshotNotFound, TidalError
from tidal.evaluate.metrics import primary_metric
from tidal.loop import collection, rebuild
from tidal.loop.alerts import Alerts
from tidal.loop.context import LoopContext
from tidal.loop.continued import check_loop, new_rows
from tidal.loop.liveness import Heartbeat
from tidal.loop.monitoring import monitor_once
from tidal.loop.pipeline import RunResult, TrainingPipeline
from tidal.loop.policy import Decision, Observation, decide, estimated_observation, growth_rows
from tidal.loop.retention import apply_retention
from tidal.loop.state import Failure, LoopState, Retraining, state_key
from tidal.loop.trials import Trials
from tidal.registry import CHALLENGER, CHAMPION, SERVABLE, subject


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
    #: the error of the retrain this tick started, when it failed (also a ``loop.retrain_failed`` event)
    failed: str | None = None
    #: what this tick's collection did (``data.collect``; None when none was due): outcome, rows, drift
    collected: dict[str, Any] | None = None


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
        controller is dead); recorded as a ``loop.lease_taken_over`` event. With ``retrain.mode: incremental``
        an estimator or a champion that cannot be continued is refused here, before anything is stored
        (:func:`tidal.loop.continued.check_loop`)."""
        check_loop(ctx)
        self.ctx = ctx
        self.name = ctx.spec.name
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_seconds = lease_seconds
        self.source_frame = source_frame
        self.on_retrain = on_retrain
        self.state_key = state_key(self.name)
        self.lease_key = f"loop-lease:{self.name}"
        self._events: list[Event] = []
        self._take_over = take_over
        self._keeper: Heartbeat | None = None
        self.lease_lost = False
        self.trials = Trials(ctx, event=self._event, save=self._save)
        self.alerts = Alerts(ctx, record=self.ctx.store.append_event)
        self._consumed: dict[str, Any] | None = None  # the "retrain now" request this controller acted on
        self._snapshot_rows: dict[str, int | None] = {}  # a snapshot's rows, read once (growth trigger)

    # -- state and lease ------------------------------------------------------------------------
    def load_state(self) -> LoopState:
        return LoopState.from_dict(self.ctx.store.get_state(self.state_key))

    def _save(self, state: LoopState) -> None:
        # ``paused`` and ``retrain_requested`` are written by operators (the API, the SDK) while a tick runs:
        # keep what is stored now, not the copy this tick read, except for the request this tick consumed
        stored = self.ctx.store.get_state(self.state_key) or {}
        state.paused = stored.get("paused") or None
        asked = stored.get("retrain_requested") or None
        if asked is not None and asked != self._consumed:
            state.retrain_requested = asked
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

    def _record(self, event: Event) -> Event:
        stored = self.ctx.store.append_event(event)
        self._events.append(stored)
        return stored

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
        self._alerting(prime=True)
        report = self._tick(now, report)
        report.events += self._alerting()
        return report

    def _alerting(self, *, prime: bool = False) -> list[Event]:
        """Prime the alert cursor (before a tick acts) or deliver the alerts of what it recorded: a webhook
        that fails is an ``alert.failed`` event (:mod:`tidal.loop.alerts`), and anything else that breaks
        here is one too, never the end of the loop."""
        try:
            if prime:
                self.alerts.prime()
                return []
            return self.alerts.deliver()
        except Exception as exc:  # alerts are a side channel: the loop goes on without them
            event = self.ctx.store.append_event(Event(
                kind="alert.failed", subject=f"project:{self.name}", time=self.ctx.clock.now(),
                message=f"alerts not delivered this tick: {type(exc).__name__}: {exc}",
                data={"error": f"{type(exc).__name__}: {exc}"}))
            return [event]

    def _tick(self, now: datetime, report: TickReport) -> TickReport:
        state = self.load_state()
        if state.paused is not None:  # paused by an operator: no retention, no trial, no retrain until resumed
            champion = self.ctx.registry.champion(self.name)
            report.champion = champion.version if champion else None
            report.note = (f"paused by {state.paused.get('by')} since {state.paused.get('at')}"
                           + (f" ({state.paused['reason']})" if state.paused.get("reason") else "")
                           + ": not acting until resumed")
            return report
        apply_retention(self.ctx, now, record=self._record)
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
            report.acted |= self.trials.check_rollback(state, champion)
            champion = self.ctx.registry.champion(self.name) or champion
        if state.trial is not None:
            report.acted |= self.trials.check_trial(state, champion)
            champion = self.ctx.registry.champion(self.name) or champion

        if spec.data.collect is not None and collection.due(spec.data.collect, state.collect_checked, now):
            report.collected = self._collect(state, champion, now)
        obs = self._observe(champion, now)
        if spec.data.collect is not None:
            obs = self._with_collected(obs, state, champion)
        report.drift_share, report.value, report.metric = obs.drift_share, obs.value, obs.metric
        decision = decide(spec.retrain, obs, state)
        if state.retrain_requested is not None and not decision.retrain:  # "retrain now", asked by an operator
            asked = state.retrain_requested
            decision = Decision(retrain=True, trigger="manual", reasons=[
                f"retrain requested by {asked.get('by')}" + (f": {asked['reason']}" if asked.get("reason") else "")])
        if decision.retrain and state.trial is None and state.watch is None:
            self._consumed, state.retrain_requested = state.retrain_requested, None
        report.decision = decision
        if spec.retrain.on.schedule:
            state.schedule_checked = now
        if decision.retrain and state.trial is None and state.watch is None:
            state.in_progress = Retraining(trigger=decision.trigger or "manual", reasons=list(decision.reasons),
                                           started=now, labelled_total=obs.labelled_total,
                                           collected_total=obs.collected_total)
            self._save(state)
            self._event("loop.retrain", f"retrain triggered by {decision.trigger}: {'; '.join(decision.reasons)}",
                        {"trigger": decision.trigger, "reasons": decision.reasons,
                         "labelled_total": obs.labelled_total, "collected_total": obs.collected_total,
                         "drift_share": obs.drift_share, "collected_drift": state.collected_drift,
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
        report.failed = next((str(e.data.get("error")) for e in report.events if e.kind == "loop.retrain_failed"),
                             None)
        return report

    def _observe(self, champion: ModelVersion, now: datetime) -> Observation:
        spec = self.ctx.spec
        rep = monitor_once(self.ctx, champion)
        perf_cfg = spec.retrain.on.performance
        metric = (perf_cfg.metric if perf_cfg and perf_cfg.metric else None) or primary_metric(
            champion.task, spec.validate.metric_names())
        perf = rep.body.get("performance") or {}
        value = (perf.get("metrics") or {}).get(metric)
        # archived ones too (monitor.retention): the total only grows, as the cooldown and growth triggers expect
        labelled_total = self.ctx.predictions.count(model=self.name, labelled=True, archived=True)
        return Observation(
            now=now, labelled_total=labelled_total, **self._growth(champion, labelled_total),
            drift_share=rep.drift_share, window_rows=int(rep.window.get("rows", 0)), metric=metric,
            value=value, labelled_in_window=int(perf.get("labelled", 0) or 0),
            validation=champion.metrics.get(metric), min_labelled_for_perf=spec.monitor.performance.min_labelled,
            **estimated_observation(spec.retrain.on.estimated_performance, rep, champion))

    def _collect(self, state: LoopState, champion: ModelVersion, now: datetime) -> dict[str, Any]:
        """Collect from the source (:mod:`tidal.loop.collection`) and count what came in ``state``."""
        done = collection.collect(self.ctx, champion, previous_table=state.collected_table)
        self._events.extend(done.events)
        state.collect_checked = now
        if done.outcome == "failed":
            state.collect_failures += 1
        elif done.outcome == "rejected":
            state.collect_rejected += 1
        else:
            state.collected_table = done.table or state.collected_table
        if done.outcome == "collected":
            state.collections += 1
            state.collected_total += done.labelled
            if done.drift is not None and done.drift.get("share") is not None:
                state.collected_drift = done.drift
        state.last_collection = {"time": now.isoformat(), **done.to_dict()}
        self._save(state)
        return done.to_dict()

    def _with_collected(self, obs: Observation, state: LoopState, champion: ModelVersion) -> Observation:
        """``obs`` with the labelled rows collected so far and the latest collected batch's drift, when it was
        measured against this champion (a new champion was trained on those rows: their drift is past)."""
        drift = state.collected_drift
        if drift is None or drift.get("version") != champion.version:
            return replace(obs, collected_total=state.collected_total)
        return replace(obs, collected_total=state.collected_total, collected_drift_share=float(drift["share"]),
                       collected_rows=int(drift.get("rows") or 0))

    def _growth(self, champion: ModelVersion, labelled_total: int) -> dict[str, Any]:
        """The growth trigger's :class:`Observation` fields: the rows of the champion's training table and
        the rows a retrain would train on now (empty when the trigger is off or the table is unknown). A
        champion the loop made trained on the labelled rows known when its retrain started (its lineage's
        ``triggered_by.labelled``), so the rows labelled since are new; one of `tidal run` trained on the
        source alone, so every labelled row is."""
        policy = self.ctx.spec.retrain
        if policy.on.growth is None:
            return {}
        champion = self._growth_base(champion)
        digest = champion.lineage.snapshot
        if digest is None:
            return {}
        if digest not in self._snapshot_rows:
            try:
                self._snapshot_rows[digest] = self.ctx.store.get_snapshot(digest).rows
            except SnapshotNotFound:
                self._snapshot_rows[digest] = None
        trained = self._snapshot_rows[digest]
        made = champion.lineage.extra.get("triggered_by")
        if trained is None or (isinstance(made, dict) and made.get("labelled") is None):
            return {}  # a version registered before tidal recorded it: its growth is not known
        if isinstance(made, dict):
            kept, since = trained, labelled_total - int(made["labelled"])
        else:
            kept, since = (trained if policy.include_source else 0), labelled_total
        return {"trained_version": champion.version, "trained_rows": trained,
                "retrain_rows": growth_rows(policy, kept, since)}

    def _growth_base(self, champion: ModelVersion) -> ModelVersion:
        """The version growth counts from: the champion, or the newest retrain of it that the gate rejected.
        A rejected attempt trained on the rows there were then; growth waits until they grow by the factor
        again, rather than trying again at every cooldown with a few more rows."""
        rejected = [mv for mv in self.ctx.registry.list(self.name)
                    if mv.version > champion.version and mv.state is ModelState.REJECTED
                    and isinstance(made := mv.lineage.extra.get("triggered_by"), dict)
                    and made.get("version") == champion.version and made.get("labelled") is not None]
        return max(rejected, key=lambda mv: mv.version) if rejected else champion

    # -- acting ---------------------------------------------------------------------------------
    def training_frame(self) -> tuple[pd.DataFrame, str]:
        """The rows a retrain trains on: the source again (unless ``include_source`` is false) and every
        labelled prediction, typed as the source is, cut to ``retrain.window`` (see :mod:`tidal.loop.rebuild`).
        With ``data.collect``, the source rows are those the loop collected and validated
        (:func:`tidal.loop.collection.collected_source`), never rows that no validation saw."""
        source = self.source_frame
        if source is None and self.ctx.spec.data.collect is not None:
            table = self.load_state().collected_table
            source = lambda: collection.collected_source(self.ctx, table)  # noqa: E731
        return rebuild.training_frame(self.ctx, source)

    def _retrain(self, state: LoopState, champion: ModelVersion, trigger: str, reasons: list[str],
                 *, retry: bool = False) -> None:
        """Train a challenger on :meth:`training_frame` and act on the outcome. Every attempt ends in one
        outcome, each an event: promoted (``alias.moved``), a challenger on trial (``loop.<kind>_started``),
        rejected (``gate.failed``), unchanged (``loop.retrain_unchanged``) or failed (``loop.retrain_failed``,
        counted in the state, and shown by the monitor report until a retrain succeeds)."""
        spec = self.ctx.spec
        kind = spec.deploy.strategy.kind
        started = state.in_progress.started if state.in_progress else self.ctx.clock.now()
        labelled_total = state.in_progress.labelled_total if state.in_progress else 0
        collected_total = state.in_progress.collected_total if state.in_progress else state.collected_total
        result: RunResult | None = None
        error: str | None = None
        try:  # incremental: the champion learns the rows labelled since it was trained (tidal.loop.continued)
            parent = champion if spec.retrain.mode == "incremental" else None
            frame, label = self.training_frame() if parent is None else new_rows(self.ctx, parent)
            pipeline = TrainingPipeline(self.ctx, trigger=f"loop:{trigger}", frame=frame, frame_source=label,
                                        promote=CHAMPION if kind == "direct" else CHALLENGER, refit=spec.retrain.refit,
                                        parent=parent, triggered_by=self._triggered_by(champion, trigger, reasons,
                                                                                       started, labelled_total),
                                        tuned=self._tuned(champion))
            result = pipeline.run()
        except Exception as exc:  # whatever broke the retrain, the loop records it and goes on
            # A user's mistake reads as its message; anything else keeps its type so it can be reported.
            error = str(exc) if isinstance(exc, TidalError) else f"{type(exc).__name__}: {exc}"
        now = self.ctx.clock.now()
        state.in_progress = None
        state.last_retrain = now
        state.last_retrain_labelled = labelled_total
        state.last_retrain_collected = collected_total
        state.retrain_times = [t for t in state.retrain_times if t > now - timedelta(days=1)] + [now]
        if error is not None or result is None or result.model is None:
            error = error or "the training run registered no model"
            state.failures += 1
            state.last_failure = Failure(time=now, trigger=trigger, error=error)
            with self.ctx.store.atomic():  # the event and the count that says it: together
                self._event("loop.retrain_failed", f"retrain ({trigger}) failed: {error}",
                            {"trigger": trigger, "error": error, "failures": state.failures}, champion.version)
                self._save(state)
            return
        state.last_failure = None
        self._save(state)
        if self.on_retrain is not None:
            self.on_retrain(result)
        mv = result.model
        resumed = retry and mv.created_at >= started  # registered by the killed controller, alias not moved
        if "register" in result.reused and not resumed:
            # the retrain trained, bit for bit, a model registered before: nothing to gate or deploy
            self._event("loop.retrain_unchanged",
                        f"retrain ({trigger}) reproduced {self.name}:{mv.version} exactly (already registered, "
                        f"{mv.state.value}); the champion {self.name}:{champion.version} stays",
                        {"trigger": trigger, "version": mv.version, "state": mv.state.value}, mv.version)
            return
        if mv.state not in SERVABLE:
            return  # rejected: the pipeline recorded why (gate.failed); the champion stays
        alias = CHAMPION if kind == "direct" else CHALLENGER
        current = self.ctx.store.get_alias(self.name, alias)
        if resumed and (current is None or current.version != mv.version):
            self.ctx.registry.set_alias(self.name, alias, mv.version, trigger=f"loop:{trigger}",
                                        reason=f"passed the gate in run {result.run.id[:8]} (retried)", serves=True)
        if kind == "direct":
            self.trials.start_watch(state, new=mv, old=champion)
        elif mv.version != champion.version:
            self.trials.start_trial(state, new=mv, champion=champion, kind=kind)
        self._save(state)

    def _tuned(self, champion: ModelVersion) -> dict[str, Any] | None:
        """With ``model.search`` and ``retrain.tune: every N retrains``, the champion's params for a retrain that
        refits instead of searching; None when this retrain searches (every N-th retrain the loop makes, and
        any retrain whose champion no search of this estimator made)."""
        spec = self.ctx.spec
        every = spec.retrain.tune
        if spec.model.search is None or every is None:
            return None
        nth = 1 + sum(1 for mv in self.ctx.registry.list(self.name) if mv.lineage.extra.get("triggered_by"))
        searched = champion.lineage.extra.get("search")
        if nth % every == 0 or not isinstance(searched, dict) or champion.lineage.estimator != spec.model.estimator:
            return None
        return {"params": dict(champion.lineage.params or {}), "search": dict(searched),
                "from": f"{champion.name}:{champion.version}",
                "note": f"retrain.tune: every {every} retrains; retrain {nth} refits the params of "
                        f"{champion.name}:{champion.version} (study {searched.get('study')})"}

    def _triggered_by(self, champion: ModelVersion, trigger: str, reasons: list[str],
                      started: datetime, labelled: int) -> dict[str, Any]:
        """What started a retrain, for its run and its version's lineage: the champion serving then, the
        trigger and why, the labelled predictions then (``labelled``: what the growth trigger counts from),
        and the ``loop.retrain`` event that recorded it (the tick's, or the newest one
        about that champion when a retrain left by a killed controller is run again)."""
        event = next((e for e in reversed(self._events) if e.kind == "loop.retrain"), None)
        if event is None:
            found = self.ctx.store.list_events(subject=subject(self.name, champion.version), kind="loop.retrain",
                                               limit=1)
            event = found[-1] if found else None
        return {"name": self.name, "version": champion.version, "trigger": trigger, "why": "; ".join(reasons),
                "time": started.isoformat(timespec="seconds"), "labelled": labelled,
                "event": None if event is None else event.id}

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
