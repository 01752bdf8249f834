"""The XGBoost and LightGBM flavors (issue #12, point 1): each trains in tidal's pipeline, passes
``check_flavor``, gives the same bytes for the same fit, logs its boosting rounds, keeps string classes,
and refuses a tampered archive or a missing extra in one line."""

from __future__ import annotations

import io
import json
import sys
import zipfile
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.datasets import load_diabetes, load_iris
from sklearn.preprocessing import FunctionTransformer

from tidal.core.errors import IntegrityError, TrainingError, UntrustedModel
from tidal.data.prepare import as_model_input
from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.testing import check_flavor
from tidal.train.estimator import build_estimator
from tidal.train.fit import TrainResult, fit_pipeline
from tidal.train.flavors import flavor_for, get_flavor

#: estimator → (flavor, task, params)
CASES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "xgboost.XGBClassifier": ("xgboost", "classification", {"n_estimators": 15, "max_depth": 3}),
    "xgboost.XGBRegressor": ("xgboost", "regression", {"n_estimators": 15, "max_depth": 3}),
    "lightgbm.LGBMClassifier": ("lightgbm", "classification",
                                {"n_estimators": 15, "min_child_samples": 5, "verbose": -1}),
    "lightgbm.LGBMRegressor": ("lightgbm", "regression", {"n_estimators": 15, "verbose": -1}),
}


def iris_frame() -> pd.DataFrame:
    """Iris with its class names as string labels."""
    data = load_iris(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = [str(data.target_names[i]) for i in data.target]
    return frame.drop(columns=["target"])


def diabetes_frame() -> pd.DataFrame:
    return load_diabetes(as_frame=True).frame


def fit(estimator: str, seed: int = 0, params: dict[str, Any] | None = None) -> tuple[TrainResult, pd.DataFrame]:
    _, task, defaults = CASES[estimator]
    frame, target = (iris_frame(), "species") if task == "classification" else (diabetes_frame(), "target")
    columns = [c for c in frame.columns if c != target]
    kinds = {c: "numeric" for c in columns}
    spec = ModelSpec(estimator=estimator, params=params if params is not None else defaults, seed=seed)
    result = fit_pipeline(frame, target=target, columns=columns, kinds=kinds, prepare=PrepareSpec(), model=spec)
    return result, as_model_input(frame, columns, kinds)


@pytest.mark.parametrize("estimator", sorted(CASES))
def test_each_booster_passes_check_flavor_with_its_curves(estimator: str) -> None:
    result, X = fit(estimator)
    flavor = flavor_for(result.model)
    assert flavor.name == CASES[estimator][0]
    check_flavor(flavor, result.model, X)
    loaded = flavor.load(flavor.save(result.model))
    assert [name for name, _ in loaded.steps] == ["prepare", "model"]
    if hasattr(result.model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(X), result.model.predict_proba(X))
    else:
        np.testing.assert_array_equal(loaded.predict(X), result.model.predict(X))
    # every boosting round's training loss, one value per round
    curves = {k: v for k, v in result.curves.items() if k.startswith("curve.train.")}
    assert curves and all(len(v) == 15 for v in curves.values()), result.curves
    assert not result.warnings, result.warnings


@pytest.mark.parametrize("estimator", ["xgboost.XGBClassifier", "lightgbm.LGBMClassifier"])
def test_string_classes_come_back_as_strings(estimator: str) -> None:
    result, X = fit(estimator)
    flavor = flavor_for(result.model)
    loaded = flavor.load(flavor.save(result.model))
    assert list(loaded.classes_) == ["setosa", "versicolor", "virginica"]
    predicted = loaded.predict(X)
    assert set(predicted.tolist()) == {"setosa", "versicolor", "virginica"}
    assert (predicted == iris_frame()["species"].to_numpy()).mean() > 0.9


def test_integer_classes_keep_the_plain_xgboost_classifier() -> None:
    frame = iris_frame()
    frame["species"] = frame["species"].map({"setosa": 0, "versicolor": 1, "virginica": 2})
    columns = [c for c in frame.columns if c != "species"]
    kinds = {c: "numeric" for c in columns}
    result = fit_pipeline(frame, target="species", columns=columns, kinds=kinds, prepare=PrepareSpec(),
                          model=ModelSpec(estimator="xgboost.XGBClassifier", params={"n_estimators": 5}, seed=0))
    loaded = get_flavor("xgboost").load(get_flavor("xgboost").save(result.model))
    assert type(loaded.steps[-1][1]).__name__ == "XGBClassifier"
    assert loaded.classes_.tolist() == [0, 1, 2]


@pytest.mark.parametrize("estimator", sorted(CASES))
def test_the_same_fit_and_seed_give_the_same_bytes(estimator: str) -> None:
    first, second = fit(estimator, seed=3)[0], fit(estimator, seed=3)[0]
    flavor = flavor_for(first.model)
    assert flavor.save(first.model) == flavor.save(second.model)


def test_the_seed_reaches_random_state_and_params_pass_through() -> None:
    xgb = build_estimator("xgboost.XGBClassifier", {"n_estimators": 3}, 7)
    assert xgb.get_params()["random_state"] == 7
    lgbm = build_estimator("lightgbm.LGBMClassifier", {"verbose": -1, "num_leaves": 7}, 5)
    assert lgbm.get_params()["verbose"] == -1 and lgbm.get_params()["random_state"] == 5
    # scikit-learn estimators (no **kwargs) still have their unknown params refused
    with pytest.raises(TrainingError, match="max_iterr"):
        build_estimator("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iterr": 3}, 0)


@pytest.mark.parametrize(("module", "dotted"), [("xgboost", "xgboost.XGBClassifier"),
                                                ("lightgbm", "lightgbm.LGBMRegressor")])
def test_a_missing_extra_is_one_line(module: str, dotted: str, monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = fit(dotted)
    data = flavor_for(result.model).save(result.model)
    monkeypatch.setitem(sys.modules, module, None)  # as if the extra were not installed
    with pytest.raises(TrainingError) as refused:
        build_estimator(dotted, {}, 0)
    assert str(refused.value) == f"model.estimator {dotted} needs the {module} extra: pip install 'tidal[{module}]'"
    with pytest.raises(TrainingError, match=rf"needs the {module} extra") as on_load:
        get_flavor(module).load(data)
    assert "\n" not in str(on_load.value)


def _rewrite(data: bytes, **replace: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, replace.get(name.replace(".", "_"), src.read(name)))
    return out.getvalue()


def _double(x: np.ndarray) -> np.ndarray:
    return x * 2


@pytest.mark.parametrize("estimator", ["xgboost.XGBClassifier", "lightgbm.LGBMClassifier"])
def test_a_tampered_archive_is_refused_in_one_line(estimator: str) -> None:
    result, _ = fit(estimator)
    flavor = flavor_for(result.model)
    data = flavor.save(result.model)
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
    hostile = {**manifest, "estimator": "subprocess.Popen"}
    bad_classes = {**manifest, "classes": {"dtype": "O", "values": [{"__reduce__": "os.system"}]}}
    cases: list[tuple[bytes, type[Exception], str]] = [
        (b"not a zip", IntegrityError, "not a valid"),
        (_rewrite(data, manifest_json=json.dumps(hostile).encode()), IntegrityError, "subprocess.Popen"),
        (_rewrite(data, manifest_json=json.dumps(bad_classes).encode()), IntegrityError, "classes"),
        (_rewrite(data, manifest_json=b"{"), IntegrityError, "not a valid"),
        (_rewrite(data, prepare_skops=sio.dumps(FunctionTransformer(_double))), UntrustedModel, "never loads"),
        (_rewrite(data, **{("booster_ubj" if "xgb" in estimator else "booster_txt"): b"garbage"}), IntegrityError,
         "booster cannot be read"),
    ]
    for payload, error, words in cases:
        with pytest.raises(error, match=words) as refused:
            flavor.load(payload)
        assert "\n" not in str(refused.value), str(refused.value)
