"""``prepare.label_features.relative: true``: a regressor that learns the change from the last known label
(tidal.train.relative). Fitted, predicted, stored and loaded back, served by the in-process predictor from the
labels of the prediction log, replayed by the backtest, and refused in one line where it cannot work."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml

from tidal.core.clock import SimulatedClock
from tidal.core.entities import Feedback, ModelState
from tidal.core.errors import DataError, SpecError
from tidal.data.history import add_label_features, feature_kinds
from tidal.data.prepare import as_model_input
from tidal.executors.local import LocalExecutor
from tidal.loop import pipeline as pipeline_module
from tidal.loop.backtest import run_backtest
from tidal.loop.context import LoopContext
from tidal.loop.pipeline import TrainingPipeline
from tidal.predict.local import LocalPredictor
from tidal.registry import Registry
from tidal.spec import Spec
from tidal.spec.loading import parse_spec
from tidal.spec.model import LabelFeaturesSpec, ModelSpec, PrepareSpec
from tidal.storage.artifacts import FsspecArtifactStore
from tidal.storage.memory import MemoryMetadataStore
from tidal.storage.predictions.memory_log import MemoryPredictionLog
from tidal.train.fit import fit_pipeline
from tidal.train.flavors import flavor_for, get_flavor
from tidal.train.flavors.sklearn import check_trusted
from tidal.train.relative import RelativeRegressor

from ..fast._tiny import T0

HGB = "sklearn.ensemble.HistGradientBoostingRegressor"
RELATIVE = LabelFeaturesSpec(lags=[1, 2], windows=[5], relative=True)


def trend(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """A series that keeps rising (0.5 a step) with a weekly wave and noise: each label lies past the last."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame({"t": t, "x": np.sin(t / 7 * 2 * np.pi),
                         "y": 0.5 * t + np.sin(t / 7 * 2 * np.pi) + rng.normal(scale=0.1, size=n)})


def _fit(df: pd.DataFrame, lf: LabelFeaturesSpec, estimator: str = HGB) -> tuple[Any, pd.DataFrame, dict[str, str]]:
    made = add_label_features(df, target="y", time="t", spec=lf, task="regression")
    kinds = {"x": "numeric", **feature_kinds(lf, "regression")}
    fitted = fit_pipeline(made.iloc[:180], target="y", columns=list(kinds), kinds=kinds,
                          prepare=PrepareSpec(label_features=lf), model=ModelSpec(estimator=estimator, seed=0))
    return fitted.model, as_model_input(made.iloc[180:], list(kinds), kinds), kinds


def _rmse(pred: Any, y: Any) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(y)) ** 2)))


def test_a_relative_model_follows_a_trend_past_its_training_labels() -> None:
    df = trend()
    relative, X, _ = _fit(df, RELATIVE)
    plain, _, _ = _fit(df, LabelFeaturesSpec(lags=[1, 2], windows=[5]))
    assert isinstance(relative, RelativeRegressor) and type(plain).__name__ == "Pipeline"
    y = df["y"].iloc[180:].to_numpy()
    # the tree stops at the highest training label (about 90); the relative one carries on with the series
    assert _rmse(plain.predict(X), y) > 10 and _rmse(relative.predict(X), y) < 1.0
    # its prediction is label_lag_1 plus what the pipeline inside predicts: the change
    inner = relative.estimator_.predict(X)
    assert np.array_equal(relative.predict(X), X["label_lag_1"].to_numpy() + inner)


def test_a_missing_last_label_falls_back_to_the_next_lag_then_to_the_training_mean() -> None:
    model, X, _ = _fit(trend(), RELATIVE)
    rows = X.iloc[:3].copy()
    rows.loc[rows.index[1], "label_lag_1"] = np.nan  # the label before never arrived: label_lag_2 is the base
    rows.loc[rows.index[2], ["label_lag_1", "label_lag_2"]] = np.nan  # no history: the training labels' mean
    base = model.base(rows)
    assert base[0] == rows["label_lag_1"].iloc[0]
    assert base[1] == rows["label_lag_2"].iloc[1]
    assert base[2] == model.mean_ == pytest.approx(trend()["y"].iloc[:180].mean())
    assert np.array_equal(model.predict(rows), base + model.estimator_.predict(rows))
    with pytest.raises(DataError, match="label_lag_1"):
        model.predict(rows.drop(columns=["label_lag_1"]))


def test_the_first_rows_without_history_are_learnt_as_they_are_predicted() -> None:
    """The first row of a table has no lag at all: training takes the mean as its base too, so fitting works
    and the model is finite there."""
    model, _, kinds = _fit(trend(), RELATIVE)
    made = add_label_features(trend(), target="y", time="t", spec=RELATIVE, task="regression")
    first = as_model_input(made.iloc[:1], list(kinds), kinds)
    assert first["label_lag_1"].isna().all()
    assert np.isfinite(model.predict(first)).all()


def test_a_relative_model_is_stored_by_skops_and_loads_back_bit_for_bit() -> None:
    model, X, _ = _fit(trend(), RELATIVE)
    flavor = flavor_for(model)
    assert flavor.name == "sklearn"
    data = flavor.save(model)
    assert data == flavor.save(model)  # the same model, the same bytes (the step cache and digests rely on it)
    assert "tidal.train.relative.RelativeRegressor" in check_trusted(data)
    back = get_flavor("sklearn").load(data)
    assert isinstance(back, RelativeRegressor)
    assert np.array_equal(back.predict(X), model.predict(X))


def test_a_search_trial_fits_and_scores_the_relative_model() -> None:
    """model.search's trials go through fit_pipeline too: each is scored as the relative model it would be."""
    from tidal.loop.search import fit_trial

    made = add_label_features(trend(), target="y", time="t", spec=RELATIVE, task="regression")
    kinds = {"x": "numeric", **feature_kinds(RELATIVE, "regression")}
    trial = fit_trial(made.iloc[:180], made.iloc[180:], target="y", columns=list(kinds), kinds=kinds,
                      prepare=PrepareSpec(label_features=RELATIVE), model=ModelSpec(estimator=HGB, seed=0),
                      task="regression")
    assert trial.metrics["rmse"] is not None and trial.metrics["rmse"] < 1.0


def test_the_trusted_wrapper_trusts_nothing_it_holds() -> None:
    """Trusting RelativeRegressor trusts no code: what it wraps is checked node by node like any model, so a
    file that hides a function inside it is refused before anything in it is built."""
    import skops.io as sio
    from sklearn.preprocessing import FunctionTransformer

    from tidal.core.errors import UntrustedModel

    hostile = RelativeRegressor(FunctionTransformer(np.save))
    hostile.estimator_, hostile.mean_ = FunctionTransformer(np.save), 0.0
    with pytest.raises(UntrustedModel, match=r"numpy\.save"):
        get_flavor("sklearn").load(sio.dumps(hostile))


def _spec(**label_features: Any) -> dict[str, Any]:
    return {"name": "rel", "data": {"source": "unused.csv", "target": "y", "time": "t"},
            "prepare": {"label_features": {"lags": [1, 2], "windows": [5], "relative": True, **label_features}},
            "model": {"estimator": HGB, "params": {"max_iter": 30}},
            "validate": {"split": {"method": "time", "test_size": 0.25}, "gates": ["rmse <= 1000"]},
            "backtest": {"initial_rows": 0.4}, "retrain": {"cooldown": {"rows": 40}}}


def _context(tmp_path: Path, spec: Spec) -> LoopContext:
    store, artifacts = MemoryMetadataStore(), FsspecArtifactStore(f"memory://tidal-rel-{uuid.uuid4().hex}")
    clock = SimulatedClock(T0)
    return LoopContext(spec=spec, root=tmp_path, store=store, artifacts=artifacts, predictions=MemoryPredictionLog(),
                       registry=Registry(store, artifacts, clock), executor=LocalExecutor(), clock=clock)


@pytest.fixture
def no_git(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_module, "git_commit", lambda root: None)


def test_a_run_registers_it_and_the_predictor_adds_the_newest_logged_label(tmp_path: Path, no_git: None) -> None:
    """The pipeline trains, gates and registers it (the registry loads the stored model back and checks the
    holdout bit for bit: a version that failed that would be rejected), and the in-process predictor, which
    fills label features as the server does, answers the newest label plus the learnt change."""
    ctx = _context(tmp_path, Spec.model_validate(_spec()))
    df = trend(200)
    result = TrainingPipeline(ctx, frame=df, frame_source="trend rows").run()
    assert result.model is not None and result.model.state == ModelState.DEPLOYED, result.decision
    assert result.metrics["rmse"] < 1.0  # on the last 50 rows, all above the training labels
    model = ctx.registry.load(result.model)
    assert isinstance(model, RelativeRegressor)
    predictor = LocalPredictor(ctx.registry, ctx.predictions, ctx.clock, name="rel")
    row = {"x": float(np.sin(200 / 7 * 2 * np.pi))}
    # no labelled prediction yet: no lag, so the training labels' mean plus the change learnt for such rows
    first = predictor.predict([row])
    assert ctx.predictions.get(first.prediction_ids[0]).inputs["label_lag_1"] is None
    assert first.predictions[0] == pytest.approx(model.base(pd.DataFrame({"label_lag_1": [np.nan],
                                                                          "label_lag_2": [np.nan]}))[0], abs=5)
    ctx.predictions.add_feedback([Feedback(prediction_id=first.prediction_ids[0], label=100.4, time=T0)])
    second = predictor.predict([row])
    seen = ctx.predictions.get(second.prediction_ids[0]).inputs
    assert seen["label_lag_1"] == 100.4
    frame = as_model_input(pd.DataFrame([seen]), result.model.signature.names, dict(result.model.signature.columns))
    assert second.predictions[0] == model.predict(frame)[0]
    assert 100.4 - 3 < second.predictions[0] < 100.4 + 3  # near the last label, not stuck at the training top


def test_the_server_runs_it_on_the_fast_path_bit_for_bit(tmp_path: Path, no_git: None) -> None:
    """The server's predictor (tidal.predict.predictor) compiles the pipeline inside and adds each row's base
    itself; it is used because it answers every check exactly as the model's own predict does."""
    from tidal.predict.predictor import GenericPredictor, RelativeFastPredictor, build_predictor

    ctx = _context(tmp_path, Spec.model_validate(_spec()))
    result = TrainingPipeline(ctx, frame=trend(200), frame_source="trend rows").run()
    assert result.model is not None
    model, sig = ctx.registry.load(result.model), result.model.signature
    built = build_predictor(model, sig, result.model.profile, task="regression")
    assert isinstance(built.predictor, RelativeFastPredictor), built.report
    assert built.report["compiled_trees"] is True
    rows = [{"x": 0.5, "label_lag_1": 100.0, "label_lag_2": 99.0, "label_mean_5": 98.0},
            {"x": -0.5, "label_lag_1": None, "label_lag_2": 99.0, "label_mean_5": 98.0},
            {"x": 0.0, "label_lag_1": None, "label_lag_2": None, "label_mean_5": None}]
    generic = GenericPredictor(model, sig.names, dict(sig.columns), False)
    fast, slow = built.predictor.arrays(rows)[0], generic.arrays(rows)[0]
    assert fast.tolist() == slow.tolist()
    assert fast[0] == pytest.approx(100.0, abs=3) and fast[1] == pytest.approx(99.0, abs=3)


def test_every_backtest_strategy_that_trains_learns_the_change(tmp_path: Path, no_git: None) -> None:
    df = trend(260)
    plain_spec = _spec()
    plain_spec["prepare"]["label_features"].pop("relative")
    plain = run_backtest(_context(tmp_path / "plain", Spec.model_validate(plain_spec)), df)
    relative = run_backtest(_context(tmp_path / "relative", Spec.model_validate(_spec())), df)
    assert relative.last_label == plain.last_label  # the baseline that trains nothing is the same
    for strategy in ("static", "periodic", "loop"):
        ours, theirs = getattr(relative, strategy)["score"], getattr(plain, strategy)["score"]
        assert ours < 1.0 < theirs, (strategy, ours, theirs)
    assert relative.loop["failures"] == 0


@pytest.mark.parametrize("change, words", [
    ({"lags": [2]}, "lags does not list 1"),
    ({"lags": []}, "lags does not list 1"),
])
def test_relative_without_the_last_label_is_refused(change: dict[str, Any], words: str) -> None:
    with pytest.raises(SpecError, match=words) as caught:
        parse_spec(yaml.safe_dump(_spec(**change)))
    assert "add 1 to label_features.lags" in (caught.value.hint or "")


@pytest.mark.parametrize("changes, words", [
    ({("model", "task"): "classification", ("validate", "gates"): []}, "is for regression"),
    ({("validate", "gates"): ["accuracy >= 0.5"]}, "is for regression"),
    ({("retrain", "mode"): "incremental"}, "retrain.mode: incremental"),
    ({("deploy", "runtime"): "onnx"}, "no ONNX form"),
])
def test_relative_where_it_cannot_work_is_refused(changes: dict[tuple[str, str], Any], words: str) -> None:
    raw = _spec()
    for (section, key), value in changes.items():
        raw.setdefault(section, {})[key] = value
    with pytest.raises(SpecError, match=words) as caught:
        parse_spec(yaml.safe_dump(raw))
    assert "relative" in str(caught.value) and "\n" not in str(caught.value)


def test_a_classifier_estimator_is_refused_when_it_is_trained() -> None:
    with pytest.raises(SpecError, match="works for regression only") as caught:
        _fit(trend(), RELATIVE, estimator="sklearn.ensemble.HistGradientBoostingClassifier")
    assert str(caught.value).startswith("prepare.label_features.relative: true works for regression only")
    assert caught.value.hint == "remove relative: true"


def test_a_project_the_data_makes_a_classification_is_refused_before_training(tmp_path: Path, no_git: None) -> None:
    """No model.task and no metrics: the task comes from the estimator and the data, then is checked."""
    raw = _spec()
    raw["model"] = {"estimator": "sklearn.ensemble.HistGradientBoostingClassifier"}
    raw["validate"].pop("gates")
    ctx = _context(tmp_path, Spec.model_validate(raw))
    labels = trend(120).assign(y=lambda d: np.where(d["x"] > 0, "up", "down"))
    with pytest.raises(SpecError, match="makes this a classification") as caught:
        TrainingPipeline(ctx, frame=labels, frame_source="labels").run()
    assert str(caught.value).startswith("prepare.label_features.relative: true is for regression")
