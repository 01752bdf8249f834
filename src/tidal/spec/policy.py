"""The closed loop's policy in tidal.yaml: when to retrain (``retrain``), how a winner is deployed and
rolled back (``deploy.strategy``, ``deploy.rollback``), and how a backtest replays the data
(``backtest``)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from tidal.spec.errors import spec_problem
from tidal.spec.section import Metric, NonEmpty, Section

# -- retrain ------------------------------------------------------------------------------------------


class DriftTrigger(Section):
    """Retrain when the share of drifted features in the last monitor window reaches ``share``."""

    share: float = Field(0.5, gt=0, le=1, description="a share of drifted features in (0, 1]")


class PerformanceTrigger(Section):
    """Retrain when labelled performance falls below ``below``, or drops ``or_drop`` under validation."""

    metric: Metric | None = Field(None, description="a metric name, or null for the first of validate.metrics")
    below: float | None = Field(None, description="a number: retrain when the metric is worse than this")
    or_drop: float | None = Field(
        None, ge=0, description="a number >= 0: retrain when the metric is this much worse than at validation"
    )


#: The metrics an estimate without labels gives (from an expected confusion matrix: tidal.monitor.estimate).
ESTIMABLE_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "f1")


class EstimatedPerformanceTrigger(Section):
    """Retrain when the performance estimated on unlabelled predictions (from the model's calibrated
    probabilities) falls below ``below``, or drops ``or_drop`` under validation: a classifier's decline is
    acted on before its labels arrive."""

    metric: Literal["accuracy", "balanced_accuracy", "f1"] | None = Field(
        None, description="accuracy, balanced_accuracy or f1, or null for the monitored metric when it is one "
                          "of them (else accuracy)")
    below: float | None = Field(None, description="a number: retrain when the estimate is below this")
    or_drop: float | None = Field(
        None, ge=0, description="a number >= 0: retrain when the estimate is this much below validation")
    min_rows: int = Field(200, ge=1, description="the fewest unlabelled predictions to act on an estimate")

    @model_validator(mode="after")
    def _a_limit(self) -> EstimatedPerformanceTrigger:
        if self.below is None and self.or_drop is None:
            raise spec_problem("no_limit", "estimated_performance needs a limit: below or or_drop",
                               hint="e.g. estimated_performance: {or_drop: 0.05}")
        return self


class NewDataTrigger(Section):
    """Retrain when this many new labelled rows arrived since the last training."""

    rows: int = Field(ge=1, description="a number of rows (at least 1)")


class GrowthTrigger(Section):
    """Retrain when the rows a retrain would train on have grown by ``factor`` over the rows the serving
    champion was trained on: with 2, retrains come at twice, four times, eight times the first training
    table, logarithmically few. More rows make a better model even where nothing drifts, which neither the
    drift nor the performance trigger sees."""

    factor: float = Field(gt=1, description="a growth factor greater than 1, e.g. 2 (retrain at x2, x4, ...)")

    @model_validator(mode="before")
    @classmethod
    def _number(cls, data: Any) -> Any:
        # `growth: 2` is short for `growth: {factor: 2}`
        return {"factor": data} if isinstance(data, int | float) and not isinstance(data, bool) else data


class TriggersSpec(Section):
    """What starts a retrain; any one suffices. None configured: the loop never retrains by itself."""

    drift: DriftTrigger | None = Field(None, description="a drift: section (share), or null")
    performance: PerformanceTrigger | None = Field(
        None, description="a performance: section (metric, below, or_drop), or null"
    )
    estimated_performance: EstimatedPerformanceTrigger | None = Field(
        None, description="an estimated_performance: section (metric, below, or_drop, min_rows), or null")
    new_data: NewDataTrigger | None = Field(None, description="a new_data: section (rows), or null")
    growth: GrowthTrigger | None = Field(
        None, description="a growth factor greater than 1 (e.g. 2), a growth: section (factor), or null")
    schedule: NonEmpty | None = Field(None, description="a cron expression such as '0 3 * * *', or null")

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from croniter import croniter

        if not croniter.is_valid(value):
            raise spec_problem("bad_cron", f"{value!r} is not a cron expression; expected five fields "
                               "(minute hour day month weekday)", hint="e.g. '0 3 * * *' for 03:00 every day")
        return value


class CooldownSpec(Section):
    """No retrain until this many labelled rows (and/or minutes) passed since the last one."""

    rows: int | None = Field(None, ge=0, description="a number of labelled rows, or null")
    minutes: float | None = Field(None, ge=0, description="a number of minutes, or null")


class WindowSpec(Section):
    """Which rows a retrain trains on: all of them, the newest ``last_rows``, or the last ``last_days``."""

    last_rows: int | None = Field(None, ge=10, description="a number of rows (at least 10), or null")
    last_days: float | None = Field(None, gt=0, description="a number of days, or null")

    @model_validator(mode="before")
    @classmethod
    def _all(cls, data: Any) -> Any:
        return {} if data == "all" else data


_EVERY = re.compile(r"^\s*every\s+(\d+)\s+retrains?\s*$")


def _every_n_retrains(value: Any) -> Any:
    """``every 5 retrains`` → 5 (a whole number passes as it is)."""
    if isinstance(value, str) and (match := _EVERY.match(value)) is not None:
        return int(match.group(1))
    if isinstance(value, str):
        raise spec_problem("bad_tune", f"{value!r} is not 'every N retrains'",
                           hint="write e.g. 'every 5 retrains', or a whole number")
    return value


class RetrainSpec(Section):
    """When the loop retrains, with guards against retrain storms and too little feedback."""

    on: TriggersSpec = Field(default_factory=TriggersSpec, description="an on: section (drift, performance, "
                             "estimated_performance, new_data, growth, schedule)")
    cooldown: CooldownSpec = Field(default_factory=lambda: CooldownSpec(rows=2000),
                                   description="a cooldown: section (rows and/or minutes)")
    max_per_day: int = Field(4, ge=1, description="a number of retrains per day (at least 1)")
    window: WindowSpec = Field(default_factory=WindowSpec, description="all, or a section (last_rows, last_days)")
    min_labelled: int = Field(500, ge=1, description="the fewest labelled rows a retrain may use")
    include_source: bool = Field(
        True, description="true or false: train on the data source again as well as on labelled predictions"
    )
    refit: bool = Field(
        True, description="true or false: refit a challenger that passed its gate on every row, holdout included"
    )
    mode: Literal["refit", "incremental"] = Field(
        "refit", description="refit (a challenger is fitted from scratch on the rebuilt training rows) or "
        "incremental (the champion's fitted pipeline learns the rows labelled since it was trained, by its "
        "estimator's partial_fit; its prepare step stays as fitted)")
    tune: Annotated[int | None, BeforeValidator(_every_n_retrains)] = Field(
        None, ge=1, description="'every N retrains', a whole number N >= 1, or null (every retrain searches)")

    @model_validator(mode="after")
    def _growth_can_be_measured(self) -> RetrainSpec:
        if self.on.growth is None:
            return self
        if self.mode == "incremental":
            raise spec_problem("growth_incremental", "growth compares the rows a refit would train on with the "
                               "champion's, but retrain.mode is incremental (a retrain learns only the new rows)",
                               hint="use retrain.on.new_data with mode: incremental, or mode: refit",
                               at=("on", "growth"))
        if self.window.last_days is not None:
            raise spec_problem("growth_days", "growth cannot be measured with retrain.window.last_days (a "
                               "window of days does not grow with the rows)",
                               hint="use window: all or {last_rows: N} with growth, or drop growth",
                               at=("on", "growth"))
        return self


# -- deploy strategy and rollback ----------------------------------------------------------------------


class StrategySpec(Section):
    """How a challenger that passed its gate reaches traffic: ``direct``, ``canary`` or ``shadow``."""

    kind: Literal["direct", "canary", "shadow"] = Field("direct", description="direct, canary or shadow")
    percent: float = Field(10, gt=0, lt=100, description="the share of traffic for a canary, in percent")
    min_requests: int = Field(500, ge=1, description="labelled challenger requests before deciding")
    patience: float = Field(
        5, ge=1, description="a trial whose challenger still has fewer than min_requests labelled answers after "
                             "patience times the traffic that should have brought them is abandoned (rejected)")


def strategy_from_yaml(value: Any) -> Any:
    """``direct`` | ``canary`` | ``{canary: {percent: 10, min_requests: 500}}`` | ``{shadow: {...}}``."""
    if isinstance(value, str):
        return {"kind": value}
    if isinstance(value, dict) and len(value) == 1:
        (kind, opts), = value.items()
        if kind in ("direct", "canary", "shadow"):
            return {"kind": kind, **(opts or {})} if isinstance(opts, dict) or opts is None else value
    return value


class RollbackSpec(Section):
    """After a promotion, move the alias back when the new champion does worse than the old one did."""

    metric: Metric | None = Field(None, description="a metric name, or null for the first of validate.metrics")
    drop: float = Field(0.03, ge=0, description="how much worse (a number >= 0) triggers the rollback")
    after_rows: int = Field(1000, ge=1, description="labelled rows of the new champion before judging it")


# -- backtest ----------------------------------------------------------------------------------------


class OnlineSpec(Section):
    """An online learner replayed beside the loop as the backtest's ``online`` baseline (river)."""

    model: NonEmpty = Field(description="a river classifier or regressor, e.g. river.forest.ARFClassifier")
    params: dict[str, Any] = Field(default_factory=dict, description="keyword arguments of the river class")
    scale: bool = Field(True, description="standardise numeric columns online before the learner")


class BacktestSpec(Section):
    """How `tidal backtest` replays the time-ordered data through the loop."""

    initial_rows: float = Field(
        0.2, gt=0, description="the first rows that train the first champion: a share (< 1) or a count"
    )
    label_delay: int = Field(0, ge=0, description="rows between a prediction and its label arriving")
    periodic_every: int | None = Field(
        None, ge=10, description="rows between retrains of the periodic baseline (null: the cooldown)"
    )
    tick_rows: int = Field(250, ge=1, description="rows between two ticks of the controller")
    minutes_per_row: float = Field(
        30.0, gt=0, description="simulated minutes per row when data.time is null (Elec2: 30)"
    )
    max_rows: int | None = Field(None, ge=10, description="replay at most this many rows after the first part")
    online: OnlineSpec | None = Field(
        None, description="an online learner (river, the online extra) replayed on the same rows as a baseline"
    )
    metric: Literal["accuracy", "balanced_accuracy", "f1", "rmse", "mae", "r2"] | None = Field(
        None, description="what the strategies are scored with: accuracy, balanced_accuracy or f1 for a "
        "classifier, rmse, mae or r2 for a regressor; null: accuracy or rmse"
    )


__all__ = [
    "ESTIMABLE_METRICS", "BacktestSpec", "CooldownSpec", "DriftTrigger", "EstimatedPerformanceTrigger", "GrowthTrigger",
    "NewDataTrigger", "OnlineSpec", "PerformanceTrigger", "RetrainSpec",
    "RollbackSpec", "StrategySpec", "TriggersSpec", "WindowSpec", "strategy_from_yaml",
]
