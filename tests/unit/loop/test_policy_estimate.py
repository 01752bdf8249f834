"""The estimated_performance trigger (issue #11, point 4): the policy rule, its spec, and how the
controller's observation reads it from a monitor report."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.unit.spec.test_spec_errors import MINIMAL, error_of
from tidal.core.entities import ModelState, ModelVersion, Report
from tidal.core.signature import Signature
from tidal.loop.policy import Observation, decide, estimated_observation
from tidal.loop.state import LoopState
from tidal.spec import parse_spec
from tidal.spec.policy import RetrainSpec

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def policy(**trigger: object) -> RetrainSpec:
    return RetrainSpec.model_validate({"on": {"estimated_performance": {"or_drop": 0.05, **trigger}},
                                       "min_labelled": 100, "cooldown": {"rows": 0}})


def obs(**kw: object) -> Observation:
    base: dict[str, object] = {"now": NOW, "labelled_total": 1_000, "estimated_metric": "accuracy",
                               "estimated": 0.80, "estimated_rows": 500, "estimated_validation": 0.82}
    base.update(kw)
    return Observation(**base)  # type: ignore[arg-type]


def test_fires_on_a_drop_from_validation_with_its_figures() -> None:
    d = decide(policy(), obs(estimated=0.74), LoopState())
    assert d.retrain and d.trigger == "estimated_performance"
    assert d.reasons == ["estimated accuracy 0.740 dropped more than 0.050 from 0.820 at validation on 500 "
                         "unlabelled predictions"]


def test_fires_below_the_floor() -> None:
    d = decide(policy(below=0.78, or_drop=None), obs(estimated=0.77), LoopState())
    assert d.retrain and "below the floor 0.780" in d.reasons[0]


@pytest.mark.parametrize("change", [{"estimated": 0.79}, {"estimated_rows": 199}, {"estimated": None},
                                    {"estimated_validation": None}])
def test_quiet_within_the_limit_on_too_few_rows_or_without_an_estimate(change: dict[str, object]) -> None:
    assert decide(policy(), obs(**{"estimated": 0.74, **change}), LoopState()).trigger is None


def test_not_configured_never_fires() -> None:
    spec = RetrainSpec.model_validate({"on": {}, "min_labelled": 100})
    assert decide(spec, obs(estimated=0.1), LoopState()).trigger is None


def test_guards_hold_it_like_any_trigger() -> None:
    d = decide(policy(), obs(estimated=0.5, labelled_total=10), LoopState())
    assert not d.retrain and d.trigger == "estimated_performance" and d.blocked_by is not None


def test_spec_needs_a_limit_and_an_estimable_metric() -> None:
    base = MINIMAL + "retrain:\n  on:\n    estimated_performance: {"
    spec = parse_spec(base + "metric: f1, below: 0.6}\n")
    trigger = spec.retrain.on.estimated_performance
    assert trigger is not None and trigger.metric == "f1" and trigger.min_rows == 200
    assert "needs a limit: below or or_drop" in str(error_of(base + "min_rows: 50}\n"))
    message = str(error_of(base + "metric: roc_auc, or_drop: 0.05}\n"))
    assert "retrain.on.estimated_performance.metric" in message and "accuracy" in message


def test_the_observation_reads_the_report_estimate() -> None:
    mv = ModelVersion(name="m", version=1, state=ModelState.VALIDATED, created_at=NOW, run_id="r",
                      artifact_digest="d", format="skops", task="classification",
                      signature=Signature(columns={"x": "numeric"}, target="y", classes=[0, 1]),
                      metrics={"accuracy": 0.9, "f1": 0.7})
    report = Report(id="r", model="m", version=1, created_at=NOW, window={}, drift_share=0.0, drifted=False,
                    body={"estimate": {"metric": "accuracy", "rows": 321,
                                       "metrics": {"accuracy": 0.8, "balanced_accuracy": 0.75, "f1": 0.6}}})
    trigger = policy().on.estimated_performance
    assert estimated_observation(trigger, report, mv) == {
        "estimated_metric": "accuracy", "estimated": 0.8, "estimated_rows": 321, "estimated_validation": 0.9}
    f1 = policy(metric="f1").on.estimated_performance
    assert estimated_observation(f1, report, mv)["estimated"] == 0.6
    assert estimated_observation(None, report, mv) == {}
