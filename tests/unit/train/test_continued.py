"""Continued fit (retrain.mode: incremental): the champion's pipeline learns new rows by partial_fit, its
prepare step untouched, bit for bit what partial_fit by hand gives; what cannot be continued is refused."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import Pipeline

from tidal.core.errors import DataError, SpecError, TrainingError
from tidal.data.codec import target_array
from tidal.data.prepare import as_model_input
from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.train.continued import check_incremental, check_parent, continue_fit
from tidal.train.fit import fit_pipeline
from tidal.train.flavors import get_flavor

KINDS = {"x1": "numeric", "x2": "numeric", "colour": "categorical"}
COLUMNS = list(KINDS)


def _frame(n: int, seed: int, *, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.normal(shift, 1, n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], n).astype(object)
    colour[::11] = None  # the imputer's fitted value is part of what must not move
    y = (x1 - 0.5 * x2 + (colour == "red") + rng.normal(0, 0.5, n) > shift).astype(int)
    amount = 3 * x1 - x2 + rng.normal(0, 0.1, n)
    return pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "y": y, "amount": amount})


def _fit(estimator: str, target: str, params: dict | None = None) -> Pipeline:
    return fit_pipeline(_frame(400, 0), target=target, columns=COLUMNS, kinds=KINDS, prepare=PrepareSpec(),
                        model=ModelSpec(estimator=estimator, params=params or {})).model


def _bytes(model: object) -> bytes:
    return get_flavor("sklearn").save(model)


CASES = [
    ("sklearn.linear_model.SGDClassifier", "y", {"loss": "log_loss"}),
    ("sklearn.naive_bayes.GaussianNB", "y", {}),
    ("sklearn.linear_model.SGDRegressor", "amount", {}),
]


@pytest.mark.parametrize(("estimator", "target", "params"), CASES)
def test_the_continued_model_is_partial_fit_by_hand_and_prepare_stays(estimator: str, target: str,
                                                                       params: dict) -> None:
    parent = _fit(estimator, target, params)
    before = _bytes(parent)
    prepare_before = _bytes(parent.named_steps["prepare"])
    new = _frame(300, 1, shift=0.7)  # the scales moved: the prepare step must not follow them
    classes = None if target == "amount" else [0, 1]

    continued = continue_fit(parent, new, target=target, columns=COLUMNS, kinds=KINDS, classes=classes).model

    by_hand = copy.deepcopy(parent)
    X = by_hand.named_steps["prepare"].transform(as_model_input(new, COLUMNS, KINDS))
    kwargs = {} if classes is None else {"classes": np.asarray(classes)}
    by_hand.named_steps["model"].partial_fit(X, target_array(new[target]), **kwargs)
    assert _bytes(continued) == _bytes(by_hand)  # bit for bit, the whole pipeline
    assert _bytes(continued.named_steps["prepare"]) == prepare_before  # fitted on the first rows, kept as it is
    assert _bytes(parent) == before  # the parent is never changed
    assert _bytes(continued.named_steps["model"]) != _bytes(parent.named_steps["model"])  # it did learn
    # and the continued pipeline survives the round trip the registry makes
    loaded = get_flavor("sklearn").load(_bytes(continued))
    X_new = as_model_input(new, COLUMNS, KINDS)
    np.testing.assert_array_equal(loaded.predict(X_new), continued.predict(X_new))


def test_a_new_class_is_refused_naming_it_and_the_fix() -> None:
    parent = _fit("sklearn.linear_model.SGDClassifier", "y")
    new = _frame(50, 2)
    new.loc[3, "y"] = 2
    with pytest.raises(DataError) as caught:
        continue_fit(parent, new, target="y", columns=COLUMNS, kinds=KINDS, classes=[0, 1], label="p:1")
    text = str(caught.value)
    assert "the class 2 that p:1 was not trained on (0, 1)" in text and "retrain.mode: refit" in text


def test_what_fit_pipeline_did_not_make_is_refused() -> None:
    bare = SGDClassifier().fit(np.eye(4), [0, 1, 0, 1])
    with pytest.raises(TrainingError, match=r"p:2 cannot be continued: it is a SGDClassifier, not a pipeline made"):
        check_parent(bare, "p:2")
    other = Pipeline([("scale", _fit("sklearn.linear_model.SGDClassifier", "y").named_steps["prepare"]),
                      ("clf", SGDClassifier())])
    with pytest.raises(TrainingError, match=r"the steps \['scale', 'clf'\]"):
        check_parent(other, "p:2")
    forest = _fit("sklearn.ensemble.RandomForestClassifier", "y", {"n_estimators": 3})
    with pytest.raises(TrainingError, match="RandomForestClassifier has no partial_fit"):
        check_parent(forest, "p:2")


def test_an_estimator_without_partial_fit_is_refused_from_the_spec() -> None:
    check_incremental(ModelSpec(estimator="sklearn.ensemble.HistGradientBoostingClassifier"), "refit")  # not asked
    check_incremental(ModelSpec(estimator="sklearn.linear_model.SGDClassifier"), "incremental")
    with pytest.raises(SpecError) as caught:
        check_incremental(ModelSpec(estimator="sklearn.ensemble.HistGradientBoostingClassifier"), "incremental")
    text = str(caught.value)
    assert text.startswith("retrain.mode: incremental needs an estimator that learns new rows (partial_fit), and "
                           "sklearn.ensemble.HistGradientBoostingClassifier has none")
    assert caught.value.hint is not None and "retrain.mode: refit" in caught.value.hint
    assert "sklearn.linear_model.SGDClassifier" in caught.value.hint
    # partial_fit that depends on the parameters: MLPClassifier has it with sgd/adam, not with lbfgs
    check_incremental(ModelSpec(estimator="sklearn.neural_network.MLPClassifier"), "incremental")
    with pytest.raises(SpecError, match=r"MLPClassifier with these model\.params has none"):
        check_incremental(ModelSpec(estimator="sklearn.neural_network.MLPClassifier",
                                    params={"solver": "lbfgs"}), "incremental")
