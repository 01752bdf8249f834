"""The checks of the target and time columns (tidal.data.roles): every kind of time a user has is accepted,
and what cannot be learned from is refused with a message that names the column and the fix."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from tidal.core.errors import SpecError
from tidal.data.roles import (
    MAX_CLASSES,
    check_classes,
    check_numeric_target,
    check_replay,
    check_time,
    check_training_classes,
)
from tidal.data.schema import infer_schema
from tidal.data.steps import validate
from tidal.data.validate import kind_changes
from tidal.spec import parse_spec
from tidal.spec.model import DataSpec

N = 6
NAIVE = pd.date_range("2024-01-01", periods=N, freq="D")

TIMES = {
    "naive datetime": pd.Series(NAIVE),
    "datetime with a time zone": pd.Series(NAIVE.tz_localize("Europe/Paris")),
    "dates": pd.Series([d.date() for d in NAIVE], dtype=object),
    "ISO strings": pd.Series(NAIVE.strftime("%Y-%m-%dT%H:%M:%S")),
    "ISO strings with offsets": pd.Series(["2024-01-01T10:00+02:00", "2024-01-01T09:00+00:00",
                                           "2024-01-01T10:00+00:00", "2024-01-02", "2024-01-03 08:00",
                                           "2024-01-04T00:00:00Z"]),
    "nullable strings": pd.Series(NAIVE.strftime("%Y-%m-%d"), dtype="string"),
    "categorical strings": pd.Series(NAIVE.strftime("%Y-%m-%d"), dtype="category"),
    "written dates": pd.Series(NAIVE.strftime("%d %b %Y")),
    "integer years": pd.Series(np.arange(2000, 2000 + N)),
    "nullable integer years": pd.Series(np.arange(2000, 2000 + N), dtype="Int64"),
    "years as text": pd.Series([str(y) for y in range(2000, 2000 + N)]),
    "epoch seconds": pd.Series(1.7e9 + np.arange(N) * 3600.0),
}


def _frame(time: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"t": time, "x": np.arange(N, dtype=float), "y": [0, 1] * (N // 2)})


@pytest.mark.parametrize("kind", list(TIMES))
def test_every_kind_of_time_in_order_is_accepted(kind: str) -> None:
    assert check_time(_frame(TIMES[kind]), "t", "sorted") == []


@pytest.mark.parametrize("kind", list(TIMES))
def test_every_kind_of_time_out_of_order_is_refused_only_when_the_spec_says_sorted(kind: str) -> None:
    time = TIMES[kind]
    swapped = pd.Series(time.to_numpy()[[0, 1, 2, 4, 3, 5]], dtype=time.dtype)
    assert check_time(_frame(swapped), "t", "any") == []
    [anomaly] = check_time(_frame(swapped), "t", "sorted")
    assert anomaly.kind == "time_order" and anomaly.column == "t" and anomaly.severity == "error"
    assert "row 4 " in anomaly.message and "than row 3 " in anomaly.message
    assert "sort the source by 't', or set data.time_order: any" in anomaly.message


def test_times_in_one_format_that_is_not_iso_and_in_several_formats() -> None:
    many = pd.Series(pd.date_range("2020-01-01", periods=50_000, freq="min").strftime("%d %b %Y %H:%M"))
    assert check_time(pd.DataFrame({"t": many}), "t", "sorted") == []  # one inferred format: read at once
    several = pd.Series(["2024-01-01", "02 Jan 2024", "2024/01/03", "Jan 4, 2024", "05.01.2024 10:00"])
    assert check_time(pd.DataFrame({"t": several}), "t", "sorted") == []  # each value by itself
    [anomaly] = check_time(pd.DataFrame({"t": several[[0, 2, 1, 3, 4]]}), "t", "sorted")
    assert "row 2 ('02 Jan 2024') is earlier than row 1 ('2024/01/03')" in anomaly.message


def test_the_order_of_times_with_offsets_is_their_order_in_utc() -> None:
    # 10:00+02:00 is 08:00 UTC: before 09:00 UTC, though its text sorts after it
    times = pd.Series(["2024-01-01T10:00+02:00", "2024-01-01T09:00+00:00", "2024-01-01T08:30+00:00"])
    [anomaly] = check_time(_frame(pd.concat([times, TIMES["ISO strings"][:3]], ignore_index=True)), "t", "sorted")
    assert "row 2 ('2024-01-01T08:30+00:00') is earlier than row 1" in anomaly.message


@pytest.mark.parametrize(("time", "first"), [
    (["2024-01-01", "2024-01-02", "soon", "2024-01-04", "later", "2024-01-06"], "'soon' at row 2"),
    (pd.Series([True, False] * 3), "True at row 0"),
    (pd.Series([dt.date(2024, 1, 1)] * 5 + ["n.d."], dtype=object), "'n.d.' at row 5"),
])
def test_values_that_are_not_times_are_named(time: object, first: str) -> None:
    [anomaly] = check_time(_frame(pd.Series(time)), "t", "any")
    assert anomaly.kind == "time_unparsed" and anomaly.column == "t"
    assert f"(first {first})" in anomaly.message
    assert "or set data.time: null" in anomaly.message


def test_an_empty_time_is_refused() -> None:
    time = pd.Series(NAIVE.tz_localize("UTC")).where(lambda s: s.index != 3)
    [anomaly] = check_time(_frame(time), "t", "any")
    assert anomaly.kind == "time_null"
    assert anomaly.message.startswith("time column 't' is empty in 1 row (first at row 3): give every row its time")


def test_a_missing_time_column_suggests_the_nearest() -> None:
    [anomaly] = check_time(_frame(TIMES["naive datetime"]), "T", "any")
    assert anomaly.kind == "missing_time" and "did you mean 't'?" in anomaly.message
    assert check_time(_frame(TIMES["naive datetime"]), None, "any") == []


def test_sorted_needs_a_time_column() -> None:
    text = "version: 1\nname: p\ndata: {source: d.csv, target: y, time_order: sorted}\nmodel: {estimator: a.B}\n"
    with pytest.raises(SpecError) as err:
        parse_spec(text)
    assert "data.time_order" in str(err.value) and "data.time" in str(err.value)
    assert parse_spec(text.replace("time_order", "time: t, time_order")).data.time_order == "sorted"


# -- the target -----------------------------------------------------------------------------------


def _target(values: object, **columns: object) -> pd.DataFrame:
    y = pd.Series(values)
    return pd.DataFrame({"x": np.arange(len(y), dtype=float), "y": y, **columns})


@pytest.mark.parametrize("dtype", [object, "string", "category"])
def test_an_identifier_as_target_is_refused(dtype: object) -> None:
    ids = pd.Series([f"id-{i:05d}" for i in range(10_000)], dtype=dtype)  # type: ignore[call-overload]
    [anomaly] = check_classes(_target(ids), "y", "classification")
    assert anomaly.kind == "too_many_classes" and anomaly.column == "y"
    assert anomaly.message.startswith("target column 'y' has 10,000 distinct values in 10,000 rows (like 'id-00000')")
    assert "looks like an identifier" in anomaly.message
    assert "set data.target to the column to predict" in anomaly.message


def test_numbers_stored_as_text_as_target_are_refused() -> None:
    prices = [f"${v:,.2f}" for v in np.random.default_rng(0).uniform(900, 1100, 10_000)]
    [anomaly] = check_classes(_target(prices), "y", "classification")
    assert "numbers stored as text" in anomaly.message and "regression" in anomaly.message


def test_a_quantity_taken_for_classes_is_refused_with_regression_as_the_fix() -> None:
    [anomaly] = check_classes(_target(np.random.default_rng(0).normal(size=3000)), "y", "classification")
    assert "too many classes for a classifier" in anomaly.message and "model.task: regression" in anomaly.message


def test_too_many_classes_even_with_rows_each() -> None:
    names = [f"c{i}" for i in range(MAX_CLASSES + 1)] * 3
    [anomaly] = check_classes(_target(names), "y", "classification")
    assert f"{MAX_CLASSES + 1:,} distinct values" in anomaly.message and "too many classes" in anomaly.message


@pytest.mark.parametrize("values", [
    ["a", "b", "c"] * 100,                                   # strings
    pd.Series([f"c{i % 50}" for i in range(500)], dtype="category"),
    pd.Series([0, 1, None] * 100, dtype="Int64"),            # nullable integers with missing labels
    [True, False] * 50,
    [f"c{i}" for i in range(MAX_CLASSES)] * 2,               # many classes, each with rows to learn from
    [f"row{i}" for i in range(15)],                          # too few rows to call it an identifier
])
def test_learnable_classes_pass(values: object) -> None:
    assert check_classes(_target(values), "y", "classification") == []


def test_a_regression_target_is_not_counted_in_classes() -> None:
    assert check_classes(_target(np.random.default_rng(0).normal(size=3000)), "y", "regression") == []


def test_a_regression_target_that_holds_text() -> None:
    prices = pd.Series(["$1,250.00", "980.5", None, "$1,010.25"])
    [anomaly] = check_numeric_target(_target(prices), "y", "regression")
    assert anomaly.kind == "text_target" and anomaly.message == (
        "target column 'y' is to be predicted by regression but 2 values are not numbers (first '$1,250.00' at row "
        "0): store them as plain numbers (no currency signs, units or thousands separators)")
    [anomaly] = check_numeric_target(_target(["low", "1.5", "high"]), "y", "regression")
    assert anomaly.message.endswith("(first 'low' at row 0): fix those values, or if the column holds classes, use "
                                    "a classifier (model.task: classification)")
    for fine in (pd.Series([1.5, None, 2.5]), pd.Series([1, 2, None], dtype="Int64"), pd.Series(["1.5", "2"])):
        assert check_numeric_target(_target(fine), "y", "regression") == []
    assert check_numeric_target(_target(prices), "y", "classification") == []


def test_training_rows_of_a_single_class() -> None:
    df = _target([0] * 80 + [1] * 20)
    train, holdout = df.iloc[:80], df.iloc[80:]
    [anomaly] = check_training_classes(train, holdout, "y", "classification", "time")
    assert anomaly.kind == "single_class"
    assert anomaly.message.startswith("target column 'y' has a single class ('0') in the 80 rows a model is "
                                      "trained on (the rows before the holdout in time order); '1' only comes in "
                                      "the holdout")
    assert anomaly.message.endswith("use validate.split.method: random, or data in which every class appears early")
    assert check_training_classes(df.iloc[10:90], holdout, "y", "classification", "time") == []
    assert check_training_classes(train, holdout, "y", "regression", "time") == []


# -- a feature whose type changed -----------------------------------------------------------------


def test_numbers_that_become_text_in_replayed_rows() -> None:
    x = pd.Series([str(v) for v in range(60)] + ["12", "unknown", "13", "?"], dtype=object)
    df = _target([0, 1] * 32, x=x, s=pd.Series(["a", "b"] * 32, dtype="string"),
                 c=pd.Series(["1", "2"] * 30 + ["a", "b"] * 2, dtype="category"))
    [anomaly] = check_replay(df.iloc[:50], df.iloc[50:].reset_index(drop=True), offset=50, in_time_order=True)
    assert anomaly.kind == "kind_changed" and anomaly.column == "x"
    assert anomaly.message == ("column 'x' was numeric (the first 50 rows, which train the first model), now text "
                               "from row 61 in time order ('unknown'; 2 values in all): fix those values in the "
                               "source, or leave the column out (data.drop)")
    assert check_replay(df.iloc[:50], df.iloc[50:], skip=["x"]) == []


def test_validate_leaves_out_dropped_columns() -> None:
    old = _target([0, 1] * 5, day=["mon", "tue"] * 5)
    schema = infer_schema(old, target="y")
    new = old.assign(x=["a"] * 10)
    data = DataSpec(source="d.csv", target="y")
    [anomaly] = validate(new, schema, data)
    assert anomaly.kind == "kind_changed" and anomaly.message.startswith("column 'x' was numeric, now text")
    assert validate(new, schema, DataSpec(source="d.csv", target="y", drop=["x"])) == []


def test_kind_changes_against_a_signature() -> None:
    df = pd.DataFrame({"a": ["1.5", "x", None], "b": [1.0, 2.0, None], "c": [None, None, None],
                       "d": pd.Series(["p", "q", "p"], dtype="category")})
    found = kind_changes(df, {"a": "numeric", "b": "integer", "c": "numeric", "d": "numeric", "gone": "numeric"})
    assert [(x.kind, x.column) for x in found] == [("kind_changed", "a"), ("kind_changed", "d")]
    assert found[0].message == ("column 'a' was numeric, now text (first bad value 'x' at row 1; 1 bad value(s)): "
                                "fix those values in the source, or leave the column out (data.drop)")
    assert found[1].message.startswith("column 'd' was numeric, now categorical: the model was trained on numeric")
