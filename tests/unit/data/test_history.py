"""Label features (issue #11, point 5): built from the labels known before each row, the same way over a table
(training, backtest) and over the newest labels of the log (serving), for every kind of target column."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidal.core.errors import DataError
from tidal.data.history import add_label_features, drop_label_features, feature_kinds, features_from_labels
from tidal.spec.model import LabelFeaturesSpec

SPEC = LabelFeaturesSpec(lags=[1, 2], windows=[3])


def test_binary_lags_and_share_see_only_earlier_labels() -> None:
    frame = pd.DataFrame({"x": range(5), "y": [0, 1, 1, 0, 1]})
    out = add_label_features(frame, target="y", time=None, spec=SPEC, task="classification")
    assert list(out.columns) == ["x", "y", "label_lag_1", "label_lag_2", "label_share_3"]
    assert out["label_lag_1"].tolist() == [None, "0", "1", "1", "0"]
    assert out["label_lag_2"].tolist() == [None, None, "0", "1", "1"]
    # the share of class 1 among the newest 3 labels before each row (none known before the first)
    assert np.allclose(out["label_share_3"].to_numpy(), [np.nan, 0.0, 0.5, 2 / 3, 2 / 3], equal_nan=True)


def test_a_delay_hides_the_newest_labels() -> None:
    frame = pd.DataFrame({"y": ["a", "b", "a", "b", "b"]})
    out = add_label_features(frame, target="y", time=None, spec=LabelFeaturesSpec(lags=[1]),
                             task="classification", delay=2)
    assert out["label_lag_1"].tolist() == [None, None, None, "a", "b"]


@pytest.mark.parametrize("tz", [None, "Europe/Paris"])
def test_rows_out_of_time_order_see_the_labels_of_earlier_times(tz: str | None) -> None:
    times = pd.to_datetime(["2024-01-03", "2024-01-01", "2024-01-02"]).tz_localize(tz)
    frame = pd.DataFrame({"when": times, "y": pd.Series(["c", "a", "b"], dtype="string")})
    out = add_label_features(frame, target="y", time="when", spec=LabelFeaturesSpec(lags=[1]),
                             task="classification")
    assert out["label_lag_1"].tolist() == ["b", None, "a"]  # row order kept, values by time


def test_multiclass_shares_one_column_per_class_and_categorical_targets() -> None:
    y = pd.Series(["cat", "dog", "emu", "dog"], dtype="category")
    out = add_label_features(pd.DataFrame({"y": y}), target="y", time=None,
                             spec=LabelFeaturesSpec(lags=[], windows=[2]), task="classification")
    assert list(out.columns[1:]) == ["label_share_2_cat", "label_share_2_dog", "label_share_2_emu"]
    assert out["label_share_2_dog"].tolist()[1:] == [0.0, 0.5, 0.5]


def test_regression_lags_and_means_with_missing_labels() -> None:
    frame = pd.DataFrame({"y": pd.array([1.0, None, 3.0, 5.0], dtype="Float64")})
    out = add_label_features(frame, target="y", time=None, spec=LabelFeaturesSpec(lags=[1], windows=[2]),
                             task="regression")
    assert feature_kinds(LabelFeaturesSpec(lags=[1], windows=[2]), "regression") == {
        "label_lag_1": "numeric", "label_mean_2": "numeric"}
    assert np.allclose(out["label_lag_1"].to_numpy(dtype=float), [np.nan, 1.0, np.nan, 3.0], equal_nan=True)
    assert np.allclose(out["label_mean_2"].to_numpy(dtype=float), [np.nan, 1.0, 1.0, 3.0], equal_nan=True)


@pytest.mark.parametrize("values", [[True, False, True], pd.array([1, 0, None], dtype="Int64"), [1.0, 0.0, 1.0]])
def test_booleans_nullable_and_float_codes_are_named_as_classes(values: Any) -> None:
    out = add_label_features(pd.DataFrame({"y": values}), target="y", time=None, spec=LabelFeaturesSpec(lags=[1]),
                             task="classification")
    assert out["label_lag_1"].tolist()[1] in ("True", "1")  # 1.0 and 1 are the same class, named "1"


def test_a_data_column_named_like_a_label_feature_is_refused_not_overwritten() -> None:
    frame = pd.DataFrame({"y": [0, 1], "label_lag_1": [5, 6]})
    with pytest.raises(DataError, match="label_lag_1"):
        add_label_features(frame, target="y", time=None, spec=LabelFeaturesSpec(lags=[1]), task="classification")
    assert drop_label_features(frame, LabelFeaturesSpec()).columns.tolist() == ["y"]
    assert drop_label_features(frame, None).columns.tolist() == ["y", "label_lag_1"]


@settings(max_examples=60, deadline=None)
@given(labels=st.lists(st.sampled_from(["a", "b", "c", None]), min_size=1, max_size=60),
       lags=st.lists(st.integers(1, 5), min_size=1, max_size=3), windows=st.lists(st.integers(2, 8), max_size=2))
def test_serving_computes_what_training_computed(labels: list[str | None], lags: list[int],
                                                 windows: list[int]) -> None:
    """The features the server builds for the next row from the known labels are the ones the training
    table gives that row (the row after them), whatever the labels, lags and windows."""
    spec = LabelFeaturesSpec(lags=lags, windows=windows)
    classes = ["a", "b", "c"]
    frame = pd.DataFrame({"y": pd.Series([*labels, "a"], dtype=object)})
    table = add_label_features(frame, target="y", time=None, spec=spec, task="classification", classes=classes)
    served = features_from_labels(labels, spec, "classification", classes)
    expected = table.iloc[-1].drop("y").to_dict()
    assert served.keys() == expected.keys()
    for name, value in expected.items():
        if isinstance(value, float) and np.isnan(value):
            assert served[name] is None
        else:
            assert served[name] == pytest.approx(value) if isinstance(value, float) else served[name] == value
