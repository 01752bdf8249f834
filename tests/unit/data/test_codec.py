"""The table codec (tidal.data.codec) and how a time column is read (tidal.data.timecol)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest

from tidal.core.errors import DataError
from tidal.data.codec import (
    column_types,
    datetime_texts,
    decode_column,
    decode_frame,
    decode_like,
    encode_records,
    encode_value,
    target_array,
)
from tidal.data.timecol import format_times, parse_times, time_kind
from tidal.storage.testing import prediction_value, prediction_value_text


def _every_kind() -> pd.DataFrame:
    return pd.DataFrame({
        "f": [1.5, np.nan, 3.0],
        "i": [1, 2, 3],
        "ni": pd.array([1, None, 3], dtype="Int64"),
        "nb": pd.array([True, None, False], dtype="boolean"),
        "b": [True, False, True],
        "s": pd.Series(["a", None, "c"], dtype="str"),
        "c": pd.Categorical(["x", None, "y"]),
        "naive": pd.to_datetime(["2024-01-01 10:00:00", None, "2024-01-03 00:00:00.123456"], format="ISO8601"),
        "aware": pd.to_datetime(["2024-03-31 01:30", "2024-03-31 03:30", None]).tz_localize("Europe/Paris"),
        "d": [date(2024, 1, 1), None, date(2024, 1, 3)],
    })


def test_encode_value_writes_every_missing_kind_as_null_and_times_as_iso_text() -> None:
    assert [encode_value(v) for v in (None, np.nan, pd.NaT, pd.NA, np.datetime64("NaT"))] == [None] * 5
    assert encode_value(pd.Timestamp("2024-01-01 10:00", tz="Europe/Paris")) == "2024-01-01T10:00:00+01:00"
    assert encode_value(pd.Timestamp("2024-01-01 10:00")) == "2024-01-01T10:00:00"
    assert encode_value(date(2024, 1, 2)) == "2024-01-02"
    assert encode_value(np.int64(3)) == 3 and type(encode_value(np.int64(3))) is int
    assert encode_value(np.bool_(True)) is True


def test_every_column_kind_comes_back_with_its_dtype_through_the_log_json() -> None:
    frame = _every_kind()
    types = column_types(frame)
    assert types["d"] == "date" and types["ni"] == "Int64" and types["c"] == "category"
    rows = [prediction_value(prediction_value_text(r, "inputs")) for r in encode_records(frame)]
    back = decode_frame(pd.DataFrame.from_records(rows), types)
    pd.testing.assert_frame_equal(back, frame)


def test_a_value_that_cannot_take_the_type_keeps_the_data() -> None:
    # a null in an int64 column (a served row without the value): float64, as pandas itself gives
    out = decode_column([1, None, 3], "int64")
    assert out.dtype == "float64" and np.isnan(out[1]) and out[2] == 3
    # a zone-less text in an aware column is read as UTC and shown in the column's zone
    aware = decode_column(["2024-01-01T12:00:00"], "datetime64[us, Europe/Paris]")
    assert aware[0] == pd.Timestamp("2024-01-01 13:00", tz="Europe/Paris")


@pytest.mark.parametrize(("series", "dtype", "values"), [
    (pd.Series(["yes", "no"], dtype="str"), object, ["yes", "no"]),
    (pd.Series(pd.Categorical(["b", "a"])), object, ["b", "a"]),
    (pd.Series(pd.Categorical([2, 1])), np.int64, [2, 1]),
    (pd.Series(pd.array([1, 0], dtype="Int64")), np.int64, [1, 0]),
    (pd.Series(pd.array([True, False], dtype="boolean")), np.bool_, [True, False]),
    (pd.Series([1.0, 0.0]), np.float64, [1.0, 0.0]),
])
def test_target_array_is_plain_numpy(series: pd.Series, dtype: type, values: list[object]) -> None:
    out = target_array(series)
    assert isinstance(out, np.ndarray) and out.dtype == np.dtype(dtype) and out.tolist() == values


def test_datetime_features_reach_the_model_as_utc_text_however_they_are_written() -> None:
    paris = pd.Series(pd.to_datetime(["2024-01-01 13:00"]).tz_localize("Europe/Paris"))
    assert datetime_texts(paris).tolist() == ["2024-01-01T12:00:00+00:00"]
    assert datetime_texts(["2024-01-01T12:00:00Z", "2024-01-01T13:00:00+01:00"]).tolist() == [
        "2024-01-01T12:00:00+00:00"] * 2
    assert datetime_texts([date(2024, 1, 1), "2024-01-01", None])[:2].tolist() == ["2024-01-01T00:00:00"] * 2
    assert np.isnan(datetime_texts([None])[0])


# -- time columns --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "kind", "first"), [
    (pd.to_datetime(["2024-01-01 10:00", "2024-01-01 09:00"]), "datetime", "2024-01-01T10:00:00+00:00"),
    (pd.to_datetime(["2024-01-01 10:00", "2024-01-01 09:00"]).tz_localize("Asia/Tokyo"), "datetime",
     "2024-01-01T01:00:00+00:00"),
    ([date(2024, 1, 2), date(2024, 1, 1)], "date", "2024-01-02T00:00:00+00:00"),
    (["2024-01-01T10:00:00+02:00", "2024-01-01T09:00:00"], "iso", "2024-01-01T08:00:00+00:00"),
    ([1999, 1998], "year", "1999-01-01T00:00:00+00:00"),
    ([1_700_000_000, 1_600_000_000], "epoch", "2023-11-14T22:13:20+00:00"),
])
def test_each_time_kind_is_read_as_the_spec_says(values: object, kind: str, first: str) -> None:
    series = pd.Series(values, name="t")
    assert time_kind(series) == kind
    times = parse_times(series)
    assert str(times.dtype).endswith("UTC]") and times[0].isoformat() == first
    again = format_times([t.to_pydatetime() for t in times], series)  # written back in the column's own type
    assert str(again.dtype) == str(series.dtype)
    if kind == "iso":  # the same instants, written in UTC
        pd.testing.assert_series_equal(parse_times(again), times, check_names=False)
    else:
        pd.testing.assert_series_equal(again, series, check_names=False)


def test_a_column_that_is_not_time_is_refused_naming_it() -> None:
    with pytest.raises(DataError, match="'flag' holds booleans"):
        parse_times(pd.Series([True, False], name="flag"))
    with pytest.raises(DataError, match="'when' cannot be read as time"):
        parse_times(pd.Series(["yesterday", "today"], name="when"))


def test_iso_text_orders_by_instant_not_by_text() -> None:
    series = pd.Series(["2024-01-01T10:00:00+05:00", "2024-01-01T06:00:00"], name="t")  # 05:00Z, then 06:00Z
    assert parse_times(series).is_monotonic_increasing
    assert format_times([datetime(2024, 1, 1, 7, tzinfo=UTC)], series).tolist() == ["2024-01-01T07:00:00+00:00"]


def test_a_category_column_keeps_its_categories_order_and_ordered_flag() -> None:
    reference = pd.Series(pd.Categorical(["low", "high"], categories=["low", "mid", "high"], ordered=True))
    back = decode_like(["high", None, "top"], reference)  # a category the reference never had comes last
    assert back.dtype == pd.CategoricalDtype(["low", "mid", "high", "top"], ordered=True)
    assert back.tolist()[0] == "high" and pd.isna(back[1])


@pytest.mark.parametrize("values", [
    ["2024-01-01T10:00:00+05:00", "2024-01-01T04:00:00", "2024-01-01T06:00:00Z"],  # 05:00Z, 04:00Z, 06:00Z
    [1_704_085_200, 1_704_081_600, 1_704_088_800],
    [2005, 2004, 2006],
    [date(2024, 1, 5), date(2024, 1, 4), date(2024, 1, 6)],
])
def test_the_time_ordered_split_orders_by_instant(values: list[object]) -> None:
    from tidal.data.prepare import split_rows

    df = pd.DataFrame({"t": values, "y": [0, 1, 0]})
    split = split_rows(df, method="time", test_size=0.34, target="y", time="t", task="classification", seed=0)
    assert split.train.tolist() == [0, 1] and split.test.tolist() == [2]  # the latest row is the holdout
