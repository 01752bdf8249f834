"""The retrain policy as pure functions: given what the controller observed and its stored state,
should it retrain now, and if not, why not? No I/O here, so every rule is tested directly."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tidal.core.entities import ModelVersion, Report
from tidal.loop.state import LoopState
from tidal.spec.metrics import LOWER_IS_BETTER
from tidal.spec.policy import EstimatedPerformanceTrigger, RetrainSpec


@dataclass(frozen=True)
class Observation:
    """What one tick saw."""

    now: datetime
    labelled_total: int                     # labelled predictions of the model so far (every version)
    drift_share: float | None = None        # of this tick's monitor window
    window_rows: int = 0
    metric: str | None = None               # the performance trigger's metric
    value: float | None = None              # its value on the window's labelled rows
    labelled_in_window: int = 0
    validation: float | None = None         # the champion's value at validation
    min_labelled_for_perf: int = 30
    estimated_metric: str | None = None     # the estimated_performance trigger's metric
    estimated: float | None = None          # its estimate on the window's unlabelled rows
    estimated_rows: int = 0                 # how many unlabelled rows the estimate covers
    estimated_validation: float | None = None
    trained_version: int | None = None     # the serving champion (the growth trigger's figures)
    trained_rows: int | None = None         # the rows of its training table (None: not known)
    retrain_rows: int | None = None         # the rows a retrain would train on now (see growth_rows)
    collected_total: int = 0                # labelled rows the loop collected from the source so far (data.collect)
    collected_drift_share: float | None = None  # the latest collected batch's drift against the champion
    collected_rows: int = 0                 # the rows of that batch

    @property
    def rows_total(self) -> int:
        """Labelled rows known so far: labelled predictions and labelled rows collected from the source."""
        return self.labelled_total + self.collected_total


def new_rows_since(obs: Observation, state: LoopState) -> tuple[int, int]:
    """The labelled predictions and the labelled collected rows that came since the last retrain started."""
    return (obs.labelled_total - state.last_retrain_labelled,
            max(0, obs.collected_total - state.last_retrain_collected))


@dataclass(frozen=True)
class Decision:
    """Retrain or not; ``trigger`` and ``reasons`` say what fired, ``blocked_by`` what held it back."""

    retrain: bool
    trigger: str | None = None
    reasons: list[str] = field(default_factory=list)
    blocked_by: str | None = None


def worse(metric: str, value: float, than: float) -> bool:
    """True when ``value`` is worse than ``than`` for ``metric`` (lower is better for losses/errors)."""
    return value > than if metric in LOWER_IS_BETTER else value < than


def fired_triggers(policy: RetrainSpec, obs: Observation, state: LoopState) -> list[tuple[str, str]]:
    """Every configured trigger that fires now, with the figures that fired it."""
    on = policy.on
    out: list[tuple[str, str]] = []
    if on.drift is not None and obs.drift_share is not None and obs.window_rows > 0 \
            and obs.drift_share >= on.drift.share:
        out.append(("drift", f"drift share {obs.drift_share:.2f} >= {on.drift.share:.2f} "
                             f"over {obs.window_rows} predictions"))
    elif on.drift is not None and obs.collected_drift_share is not None and obs.collected_rows > 0 \
            and obs.collected_drift_share >= on.drift.share:
        out.append(("drift", f"drift share {obs.collected_drift_share:.2f} >= {on.drift.share:.2f} "
                             f"over {obs.collected_rows} rows collected from the source"))
    perf = on.performance
    if perf is not None and obs.metric and obs.value is not None \
            and obs.labelled_in_window >= obs.min_labelled_for_perf:
        if perf.below is not None and worse(obs.metric, obs.value, perf.below):
            out.append(("performance", f"{obs.metric} {obs.value:.3f} worse than the floor {perf.below:.3f} "
                                       f"on {obs.labelled_in_window} labelled predictions"))
        elif perf.or_drop is not None and obs.validation is not None:
            limit = obs.validation + perf.or_drop if obs.metric in LOWER_IS_BETTER else obs.validation - perf.or_drop
            if worse(obs.metric, obs.value, limit):
                out.append(("performance", f"{obs.metric} {obs.value:.3f} dropped more than {perf.or_drop:.3f} "
                                           f"from {obs.validation:.3f} at validation"))
    out += _estimated(policy, obs)
    predicted, collected = new_rows_since(obs, state)
    new_rows = predicted + collected
    if on.new_data is not None and new_rows >= on.new_data.rows:
        parts = f" ({predicted} labelled predictions, {collected} collected)" if collected else ""
        out.append(("new_data", f"{new_rows} new labelled rows since the last training{parts} "
                                f"(>= {on.new_data.rows})"))
    out += _growth(policy, obs)
    if on.schedule is not None and state.schedule_checked is not None:
        from croniter import croniter

        due = croniter(on.schedule, state.schedule_checked).get_next(datetime)
        if due <= obs.now:
            out.append(("schedule", f"schedule {on.schedule!r} was due at {due.isoformat(timespec='minutes')}"))
    return out


def growth_rows(policy: RetrainSpec, kept_rows: int, labelled_since: int) -> int:
    """The rows a retrain would train on now: ``kept_rows`` of the champion's training table that a retrain
    reads again (all of them for a table the loop built; the source's, or none without
    ``include_source``, for a champion of `tidal run`) and the ``labelled_since`` rows labelled since, cut
    to ``retrain.window.last_rows`` as the training table is (once that window is full, it stops growing)."""
    rows = max(0, kept_rows) + max(0, labelled_since)
    last = policy.window.last_rows
    return rows if last is None else min(rows, last)


def _growth(policy: RetrainSpec, obs: Observation) -> list[tuple[str, str]]:
    """The growth trigger: the rows a retrain would train on reached ``factor`` times the rows the champion
    was trained on."""
    cfg = policy.on.growth
    if cfg is None or obs.trained_rows is None or obs.trained_rows <= 0 or obs.retrain_rows is None:
        return []
    now = obs.retrain_rows
    ratio = now / obs.trained_rows
    if ratio < cfg.factor:
        return []
    of = "" if obs.trained_version is None else f" since version {obs.trained_version} was trained"
    return [("growth", f"training rows grew {ratio:.2f} times{of} ({obs.trained_rows:,} → {now:,}, "
                       f"factor {cfg.factor:g})")]


def estimated_observation(cfg: EstimatedPerformanceTrigger | None, report: Report,
                          champion: ModelVersion) -> dict[str, Any]:
    """The :class:`Observation` fields of the estimated_performance trigger, read from a monitor report's
    ``estimate`` section (empty when the trigger is not configured)."""
    if cfg is None:
        return {}
    est = report.body.get("estimate") or {}
    metric = cfg.metric or str(est.get("metric") or "accuracy")
    return {"estimated_metric": metric, "estimated": (est.get("metrics") or {}).get(metric),
            "estimated_rows": int(est.get("rows") or 0), "estimated_validation": champion.metrics.get(metric)}


def _estimated(policy: RetrainSpec, obs: Observation) -> list[tuple[str, str]]:
    """The estimated_performance trigger: the estimate on enough unlabelled rows is below the floor, or
    further below validation than ``or_drop`` (every estimable metric is higher-is-better)."""
    cfg = policy.on.estimated_performance
    if cfg is None or obs.estimated is None or not obs.estimated_metric or obs.estimated_rows < cfg.min_rows:
        return []
    name, value, rows = obs.estimated_metric, obs.estimated, obs.estimated_rows
    if cfg.below is not None and value < cfg.below:
        return [("estimated_performance", f"estimated {name} {value:.3f} below the floor {cfg.below:.3f} on "
                                          f"{rows} unlabelled predictions")]
    if cfg.or_drop is not None and obs.estimated_validation is not None \
            and value < obs.estimated_validation - cfg.or_drop:
        return [("estimated_performance", f"estimated {name} {value:.3f} dropped more than {cfg.or_drop:.3f} "
                                          f"from {obs.estimated_validation:.3f} at validation on {rows} "
                                          "unlabelled predictions")]
    return []


def blocking_guard(policy: RetrainSpec, obs: Observation, state: LoopState) -> str | None:
    """Why a retrain may not start now (cooldown, max_per_day, min_labelled), or None."""
    if obs.rows_total < policy.min_labelled:
        return f"min_labelled: only {obs.rows_total} labelled rows (need {policy.min_labelled})"
    if state.last_retrain is not None:
        since_rows = sum(new_rows_since(obs, state))
        cool = policy.cooldown
        if cool.rows is not None and since_rows < cool.rows:
            return f"cooldown: {since_rows} labelled rows since the last retrain (need {cool.rows})"
        if cool.minutes is not None:
            elapsed = (obs.now - state.last_retrain).total_seconds() / 60
            if elapsed < cool.minutes:
                return f"cooldown: {elapsed:.0f} minutes since the last retrain (need {cool.minutes:g})"
    day_ago = obs.now - timedelta(days=1)
    recent = [t for t in state.retrain_times if t > day_ago]
    if len(recent) >= policy.max_per_day:
        return f"max_per_day: {len(recent)} retrains in the last 24 hours (limit {policy.max_per_day})"
    return None


def decide(policy: RetrainSpec, obs: Observation, state: LoopState) -> Decision:
    """Retrain when a trigger fires and no guard holds it back."""
    fired = fired_triggers(policy, obs, state)
    if not fired:
        return Decision(retrain=False)
    reasons = [why for _, why in fired]
    guard = blocking_guard(policy, obs, state)
    if guard is not None:
        return Decision(retrain=False, trigger=fired[0][0], reasons=reasons, blocked_by=guard)
    return Decision(retrain=True, trigger=fired[0][0], reasons=reasons)
