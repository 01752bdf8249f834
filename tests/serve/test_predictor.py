"""The fast path gives exactly the generic path's outputs, or is not used (in process, no server)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tidal.core.signature import Signature
from tidal.data.prepare import as_model_input, build_preprocessor
from tidal.data.profile import profile_frame
from tidal.predict.inputs import InputSchema
from tidal.predict.predictor import FastPredictor, GenericPredictor, build_predictor
from tidal.predict.samples import UNSEEN
from tidal.predict.trees import CompiledTrees


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> None:
    """As the server does: OpenMP's spinning threads make these tests crawl on a busy 2-core machine."""
    from tidal.serve.threads import cap_threads

    cap_threads()


def frame(n: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({
        "x": rng.normal(size=n), "k": rng.integers(0, 5, size=n), "flag": rng.random(n) > 0.5,
        "color": rng.choice(["red", "green", "blue"], size=n),
    })
    df.loc[df.sample(frac=0.1, random_state=1).index, "x"] = np.nan
    df.loc[df.sample(frac=0.1, random_state=2).index, "color"] = None
    df["y"] = ((df["x"].fillna(0) > 0) ^ (df["color"] == "red")).astype(int) + (df["k"] > 3)
    return df


KINDS = {"x": "numeric", "k": "integer", "flag": "boolean", "color": "categorical"}


def fitted(estimator: Any, *, scale: str = "standard", encode: str = "onehot", numeric: str = "median",
           target: str = "y") -> tuple[Any, dict[str, Any], dict[str, Any], pd.DataFrame]:
    from sklearn.pipeline import Pipeline

    df = frame()
    prepare = SimpleNamespace(scale=scale, encode=encode,
                              impute=SimpleNamespace(numeric=numeric, categorical="most_frequent"))
    cols = list(KINDS)
    model = Pipeline([("prepare", build_preprocessor(prepare, KINDS, cols)), ("model", estimator)])
    model.fit(as_model_input(df, cols, KINDS), df[target])
    signature = Signature(columns=KINDS, target=target)
    return model, signature, {"features": profile_frame(df[[*cols, target]])}, df


def json_rows(df: pd.DataFrame) -> list[dict[str, Any]]:
    out = []
    for rec in df[list(KINDS)].to_dict("records"):
        out.append({k: (None if (isinstance(v, float) and np.isnan(v)) or v is None else
                        bool(v) if k == "flag" else int(v) if k == "k" else v) for k, v in rec.items()})
    return out


def estimators() -> list[Any]:
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    return [
        pytest.param(HistGradientBoostingClassifier(max_iter=30, random_state=0), "classification", id="hgb-multi"),
        pytest.param(HistGradientBoostingRegressor(max_iter=30, random_state=0), "regression", id="hgb-reg"),
        pytest.param(LogisticRegression(max_iter=500), "classification", id="logreg"),
        pytest.param(Ridge(), "regression", id="ridge"),
    ]


@pytest.mark.parametrize(("estimator", "task"), estimators())
@pytest.mark.parametrize(("scale", "encode"), [("standard", "onehot"), ("minmax", "ordinal"), ("none", "onehot")])
def test_fast_path_is_chosen_and_identical(estimator: Any, task: str, scale: str, encode: str) -> None:
    model, signature, profile, df = fitted(estimator, scale=scale, encode=encode)
    built = build_predictor(model, signature, profile, task=task)
    assert built.predictor.path == "fast", built.report
    assert built.schema.nullable == set(KINDS)  # every column is imputed
    generic = GenericPredictor(model, list(KINDS), KINDS, task == "classification")
    rows = json_rows(df.sample(60, random_state=3))
    rows[0]["color"] = "purple"  # unseen: one-hot zeros / ordinal -1, in both paths
    for batch in (rows, rows[:1], rows[:5]):
        fast_out, generic_out = built.predictor.arrays(batch), generic.arrays(batch)
        assert fast_out[0].tolist() == generic_out[0].tolist()
        if task == "classification":
            assert np.array_equal(fast_out[1], generic_out[1])
    # and what training saw: the generic path is the training path on the same rows
    X = as_model_input(df.iloc[:30], list(KINDS), KINDS)
    assert generic.arrays(json_rows(df.iloc[:30]))[0].tolist() == model.predict(X).tolist()


def test_identity_prepare_step_is_replayed() -> None:
    """impute: none and scale: none: the fitted ColumnTransformer holds an identity FunctionTransformer."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    model, signature, profile, df = fitted(HistGradientBoostingClassifier(max_iter=20, random_state=0),
                                           scale="none", numeric="none")
    built = build_predictor(model, signature, profile, task="classification")
    assert built.predictor.path == "fast", built.report
    rows = json_rows(df.iloc[:40])
    generic = GenericPredictor(model, list(KINDS), KINDS, True)
    assert np.array_equal(built.predictor.arrays(rows)[1], generic.arrays(rows)[1])


def test_hgb_compiled_trees_match_scikit_learn_bit_for_bit() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 8))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (np.nan_to_num(X[:, 0]) + np.nan_to_num(X[:, 1]) ** 2 > 0.5).astype(int)
    model = HistGradientBoostingClassifier(max_iter=80, random_state=0).fit(X, y)
    trees = CompiledTrees(model)
    test = rng.normal(size=(200, 8))
    test[rng.random(test.shape) < 0.1] = np.nan
    test[0, 0], test[1, 1] = np.inf, -np.inf
    assert np.array_equal(trees.raw(test), model._raw_predict(test))
    for i in range(10):
        assert np.array_equal(trees.raw(test[i:i + 1]), model._raw_predict(test[i:i + 1]))
    # several classes: one tree per class and iteration, summed class by class (single rows take a walk of
    # their own, see CompiledTrees.raw)
    three = HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, y + (X[:, 2] > 1))
    trees = CompiledTrees(three)
    assert trees.n_per_iter == 3
    assert np.array_equal(trees.raw(test), three._raw_predict(test))
    for i in range(20):
        assert np.array_equal(trees.raw(test[i:i + 1]), three._raw_predict(test[i:i + 1]))


def test_unknown_transformers_fall_back_to_the_generic_path() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder, PolynomialFeatures

    df = frame()
    prepare = ColumnTransformer([("numeric", PolynomialFeatures(), ["k"]),
                                 ("categorical", OrdinalEncoder(), ["color"])])
    model = Pipeline([("prepare", prepare), ("model", LogisticRegression(max_iter=2000))])
    model.fit(df[["k", "color"]].fillna("red").astype(object), df["y"])
    kinds = {"k": "integer", "color": "categorical"}
    built = build_predictor(model, Signature(columns=kinds), {"features": profile_frame(df)}, task="classification")
    assert built.predictor.path == "generic" and "does not replay" in built.report["fast_path"]
    assert built.schema.nullable == set()  # NaN reaches LogisticRegression, or an OrdinalEncoder without it


def test_a_model_that_fails_its_samples_is_refused() -> None:
    from tidal.predict.predictor import ModelCheckFailed

    class Broken:
        def predict(self, X: Any) -> Any:
            raise RuntimeError("boom")

    with pytest.raises(ModelCheckFailed, match="fails on sample rows"):
        build_predictor(Broken(), Signature(columns={"a": "numeric"}), None, task="regression")


def test_input_schema_messages() -> None:
    from tidal.predict.errors import ApiError

    schema = InputSchema(["a", "b", "when"], {"a": "numeric", "b": "categorical", "when": "datetime"}, {"a"})
    ok = {"a": None, "b": "x", "when": "2024-05-01T10:00:00+00:00"}
    assert schema.instances({"instances": [ok]}, max_rows=5) == [ok]
    cases = [
        ({"instances": [{**ok, "b": None}]}, 422, "instances[0].b: null is not allowed"),
        ({"instances": [ok, {**ok, "when": "yesterday"}]}, 422, "instances[1].when: expected an ISO 8601"),
        ({"instances": [ok] * 6}, 413, "6 rows is more than the limit of 5"),
        ({"instances": [{**ok, "a": "1"}]}, 422, "instances[0].a: expected a number"),
        ({"instances": [{"a": 1, "b": "x", **{f"c{i}": 0 for i in range(12)}}]}, 422, "and 2 more"),
    ]
    for doc, status, needle in cases:
        with pytest.raises(ApiError) as info:
            schema.instances(doc, max_rows=5)
        assert info.value.status == status and needle in info.value.message, info.value.message


def test_fast_predictor_sample_probes_cover_unseen_categories() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier

    model, signature, profile, _ = fitted(HistGradientBoostingClassifier(max_iter=10, random_state=0))
    built = build_predictor(model, signature, profile, task="classification")
    assert isinstance(built.predictor, FastPredictor)
    row = {"x": 0.1, "k": 2, "flag": True, "color": UNSEEN}
    generic = GenericPredictor(model, list(KINDS), KINDS, True)
    assert np.array_equal(built.predictor.arrays([row])[1], generic.arrays([row])[1])
