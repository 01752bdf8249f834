"""Schema inference and every validation rule, on small frames and on the real Elec2 data."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tidal.core.errors import SchemaError
from tidal.data.schema import column_kind, infer_schema, schema_kinds
from tidal.data.sources import read_source
from tidal.data.validate import Anomaly, errors_of, raise_for_errors, validate_frame
from tidal.spec.model import ChecksSpec

ELEC2_DIR = Path(__file__).resolve().parents[3] / "examples" / "elec2"


@pytest.fixture(scope="module")
def elec2() -> pd.DataFrame:
    return read_source("data/elec2.csv.gz", base_dir=ELEC2_DIR)


def _base() -> pd.DataFrame:
    return pd.DataFrame({
        "price": [0.1, 0.5, 0.9, 0.3],
        "n": [1, 2, 3, 4],
        "day": pd.Series(["mon", "tue", "mon", None], dtype="str"),
        "y": [0, 1, 0, 1],
    })


def _kinds(anomalies: list[Anomaly]) -> list[tuple[str, str, str | None]]:
    return [(a.severity, a.kind, a.column) for a in anomalies]


# -- kinds and schema -----------------------------------------------------------------------------


@pytest.mark.parametrize(("values", "kind"), [
    (pd.Series([1.0, 2.0]), "numeric"),
    (pd.Series([1, 2]), "integer"),
    (pd.Series(pd.array([1, None], dtype="Int64")), "integer"),
    (pd.Series([True, False]), "boolean"),
    (pd.Series([True, None], dtype=object), "boolean"),
    (pd.Series(["a", "b"]), "categorical"),
    (pd.Series(pd.Categorical([1, 2])), "categorical"),
    (pd.Series(pd.to_datetime(["2024-01-01"])), "datetime"),
    (pd.Series(pd.to_datetime(["2024-01-01"]).tz_localize("UTC")), "datetime"),
    (pd.Series(pd.to_timedelta([1], unit="s")), "numeric"),
    (pd.Series([1, "a"], dtype=object), "categorical"),
])
def test_column_kind(values: pd.Series, kind: str) -> None:
    assert column_kind(values) == kind


def test_infer_schema_format() -> None:
    schema = infer_schema(_base(), target="y")
    assert (schema["version"], schema["rows"], schema["target"], schema["time"]) == (1, 4, "y", None)
    assert schema["columns"]["price"] == {
        "kind": "numeric", "dtype": "float64", "nullable": False, "null_share": 0.0, "min": 0.1, "max": 0.9,
    }
    assert schema["columns"]["day"] == {
        "kind": "categorical", "dtype": "str", "nullable": True, "null_share": 0.25,
        "n_unique": 2, "categories": ["mon", "tue"],
    }
    assert schema_kinds(schema) == {"price": "numeric", "n": "integer", "day": "categorical", "y": "integer"}
    assert json.loads(json.dumps(schema, allow_nan=False)) == schema


def test_infer_schema_caps_categories() -> None:
    df = pd.DataFrame({"id": [f"u{i}" for i in range(300)], "y": [0, 1] * 150})
    entry = infer_schema(df, target="y", max_categories=200)["columns"]["id"]
    assert entry["categories"] is None and entry["n_unique"] == 300


def test_infer_schema_needs_the_target() -> None:
    with pytest.raises(SchemaError, match="target column 'label' is not in the data"):
        infer_schema(_base(), target="label")


def test_elec2_schema_and_clean_validation(elec2: pd.DataFrame) -> None:
    schema = infer_schema(elec2, target="up")
    assert schema_kinds(schema) == {
        "period": "numeric", "nswprice": "numeric", "nswdemand": "numeric", "vicprice": "numeric",
        "vicdemand": "numeric", "transfer": "numeric", "up": "integer",
    }
    assert validate_frame(elec2, None, target="up") == []
    assert validate_frame(elec2, schema, target="up") == []


# -- table-level checks ---------------------------------------------------------------------------


def test_empty_table() -> None:
    assert _kinds(validate_frame(_base().iloc[:0], None, target="y")) == [("error", "empty_table", None)]
    assert validate_frame(pd.DataFrame(), None, target="y")[0].message == "the table has no columns"


def test_missing_target_lists_columns_and_the_nearest(elec2: pd.DataFrame) -> None:
    [anomaly] = validate_frame(elec2, None, target="upp")
    assert (anomaly.severity, anomaly.kind, anomaly.column) == ("error", "missing_target", "upp")
    assert anomaly.message == (
        "target column 'upp' not found; columns present: period, nswprice, nswdemand, vicprice, vicdemand, "
        "transfer, up (did you mean 'up'?)"
    )


def test_missing_target_nearest_is_case_insensitive() -> None:
    [anomaly] = validate_frame(_base(), None, target="Y")
    assert anomaly.message.endswith("(did you mean 'y'?)")


def test_constant_target() -> None:
    [anomaly] = validate_frame(_base().assign(y=1), None, target="y")
    assert anomaly.kind == "constant_target" and anomaly.severity == "error"
    assert anomaly.message == (
        "target column 'y' has the single value 1 in all 4 non-null rows: a model cannot learn from it; set "
        "data.target to the column to predict, or collect rows with at least one other value"
    )


def test_target_all_null() -> None:
    [anomaly] = validate_frame(_base().assign(y=np.nan), None, target="y")
    assert anomaly.kind == "target_all_null"
    assert anomaly.message == "target column 'y' is empty (every value is null)"


def test_duplicate_columns() -> None:
    df = pd.DataFrame([[1, 2, 0], [3, 4, 1]], columns=["a", "a", "y"])
    assert _kinds(validate_frame(df, None, target="y")) == [("error", "duplicate_columns", None)]


def test_text_in_a_numeric_csv_column_on_the_first_snapshot(tmp_path: Path) -> None:
    # The real Elec2 file with one typo: pandas reads the whole column as text.
    lines = gzip.decompress((ELEC2_DIR / "data" / "elec2.csv.gz").read_bytes()).decode().splitlines()
    cells = lines[18].split(",")  # line 0 is the header: line 18 is row 17
    cells[1] = "abc"
    lines[18] = ",".join(cells)
    (tmp_path / "elec2.csv").write_text("\n".join(lines) + "\n")
    df = read_source("elec2.csv", base_dir=tmp_path)
    assert column_kind(df["nswprice"]) == "categorical"
    [anomaly] = validate_frame(df, None, target="up")
    assert (anomaly.severity, anomaly.kind, anomaly.column) == ("error", "text_in_numeric", "nswprice")
    expected = "column 'nswprice' is numeric but 1 value(s) are text (first bad value 'abc' at row 17)"
    assert expected in anomaly.message
    assert len(anomaly.message) < 250  # no dump of the values


def test_text_columns_are_not_mistaken_for_numbers() -> None:
    codes = pd.Series([str(i) for i in range(100)] + ["K1A"], dtype="str")
    df = pd.DataFrame({"code": codes, "y": [0, 1] * 50 + [0]})
    assert _kinds(validate_frame(df, None, target="y")) == [("error", "text_in_numeric", "code")]
    assert validate_frame(df, None, target="y", text_columns={"code"}) == []
    # Mostly text, or numbers below the threshold: plainly a text column.
    half = pd.DataFrame({"code": ["1", "2", "a", "b"], "y": [0, 1, 0, 1]})
    assert validate_frame(half, None, target="y") == []


# -- against a stored schema ----------------------------------------------------------------------


def test_missing_and_new_columns() -> None:
    schema = infer_schema(_base(), target="y")
    df = _base().drop(columns=["n"]).assign(extra=1.0)
    assert _kinds(validate_frame(df, schema, target="y")) == [
        ("warning", "new_column", "extra"), ("error", "missing_column", "n"),
    ]


def test_missing_target_is_reported_once() -> None:
    schema = infer_schema(_base(), target="y")
    assert _kinds(validate_frame(_base().drop(columns=["y"]), schema, target="y")) == [
        ("error", "missing_target", "y"),
    ]


def test_numeric_column_now_text_names_the_row(elec2: pd.DataFrame) -> None:
    schema = infer_schema(elec2, target="up")
    df = elec2.astype({"nswprice": "str"})
    df.loc[17, "nswprice"] = "abc"
    anomalies = validate_frame(df, schema, target="up")
    assert _kinds(anomalies) == [("error", "kind_changed", "nswprice")]
    assert anomalies[0].message == (
        "column 'nswprice' was numeric, now text (first bad value 'abc' at row 17; 1 bad value(s)): fix those "
        "values in the source, or leave the column out (data.drop)"
    )


def test_other_kind_changes() -> None:
    schema = infer_schema(_base(), target="y")
    df = _base().assign(day=[1.0, 2.0, 3.0, 4.0], n=[1.5, 2.5, 3.5, 4.5])  # integer → numeric is fine
    anomalies = validate_frame(df, schema, target="y")
    assert _kinds(anomalies) == [("error", "kind_changed", "day")]
    assert anomalies[0].message == (
        "column 'day' was categorical, now numeric: the model was trained on categorical values; fix the column in "
        "the source, or leave the column out (data.drop)"
    )
    quoted = _base().astype({"price": "str"})
    assert validate_frame(quoted, schema, target="y")[0].message == (
        "column 'price' was numeric, now text (numbers stored as text): store them as numbers, or leave the column "
        "out (data.drop)"
    )


def test_an_all_null_column_fits_any_kind_but_warns_about_nulls() -> None:
    schema = infer_schema(_base(), target="y")
    df = _base().assign(price=pd.Series([None] * 4, dtype=object))
    anomalies = validate_frame(df, schema, target="y")
    assert _kinds(anomalies) == [("warning", "null_share", "price")]
    assert anomalies[0].message == "column 'price' is 100.0% null, was 0.0% (+100.0 points)"


def test_unseen_categories_lists_up_to_five() -> None:
    schema = infer_schema(_base(), target="y")
    new_days = ["mon", "a", "b", "c", "d", "e", "f", "f"]
    df = pd.DataFrame({"price": [0.5] * 8, "n": [1] * 8, "day": new_days, "y": [0, 1] * 4})
    [anomaly] = validate_frame(df, schema, target="y")
    assert (anomaly.severity, anomaly.kind) == ("warning", "unseen_categories")
    assert anomaly.message == (
        "column 'day' has 6 categories not seen before: 'f', 'a', 'b', 'c', 'd' and 1 more"
    )


def test_no_unseen_check_over_the_cap() -> None:
    df = pd.DataFrame({"id": [f"u{i}" for i in range(300)], "y": [0, 1] * 150})
    schema = infer_schema(df, target="y")
    assert validate_frame(df.assign(id=[f"v{i}" for i in range(300)]), schema, target="y") == []


def test_values_far_outside_the_seen_range() -> None:
    schema = infer_schema(_base(), target="y")  # price seen in [0.1, 0.9]: allowed [-0.3, 1.3]
    inside = _base().assign(price=[-0.29, 1.29, 0.5, 0.5])
    assert validate_frame(inside, schema, target="y") == []
    outside = _base().assign(price=[-0.5, 2.0, 0.5, 0.5])
    [anomaly] = validate_frame(outside, schema, target="y")
    assert (anomaly.severity, anomaly.kind, anomaly.column) == ("warning", "out_of_range", "price")
    assert anomaly.message == (
        "column 'price' has 2 value(s) outside [-0.3, 1.3] (the seen range [0.1, 0.9] widened by 50%): "
        "min -0.5, max 2"
    )
    strict = ChecksSpec(range_tolerance=0.0)
    assert _kinds(validate_frame(inside, schema, target="y", checks=strict)) == [
        ("warning", "out_of_range", "price"),
    ]


def test_policies_make_range_and_categories_errors() -> None:
    schema = infer_schema(_base(), target="y")
    df = _base().assign(price=[5.0, 0.5, 0.5, 0.5], day=["sun", "mon", "mon", "tue"])
    assert _kinds(validate_frame(df, schema, target="y")) == [
        ("warning", "out_of_range", "price"), ("warning", "unseen_categories", "day"),
    ]
    strict = ChecksSpec(range="error", unseen_category="error")
    assert _kinds(validate_frame(df, schema, target="y", checks=strict)) == [
        ("error", "out_of_range", "price"), ("error", "unseen_categories", "day"),
    ]


def test_range_of_a_column_that_had_one_value() -> None:
    df = _base().assign(price=2.0)
    schema = infer_schema(df, target="y")  # band = 0.5 * |2| → allowed [1, 3]
    assert validate_frame(df.assign(price=2.9), schema, target="y") == []
    assert _kinds(validate_frame(df.assign(price=3.1), schema, target="y")) == [
        ("warning", "out_of_range", "price"),
    ]


def test_null_share_jump() -> None:
    schema = infer_schema(_base(), target="y")  # day: 25% null
    df = pd.concat([_base()] * 5, ignore_index=True)
    df.loc[:1, "day"] = None  # 5 of 20 rows were null, 2 more: 35%, +10 points: not above the threshold
    assert validate_frame(df, schema, target="y") == []
    df.loc[:2, "day"] = None  # 8 of 20: 40%, +15 points
    anomalies = validate_frame(df, schema, target="y")
    assert _kinds(anomalies) == [("warning", "null_share", "day")]
    assert anomalies[0].message == "column 'day' is 40.0% null, was 25.0% (+15.0 points)"


def test_new_column_that_is_numbers_with_a_typo() -> None:
    schema = infer_schema(_base(), target="y")
    df = pd.concat([_base()] * 10, ignore_index=True)
    df["extra"] = [str(i) for i in range(39)] + ["oops"]
    assert _kinds(validate_frame(df, schema, target="y")) == [
        ("warning", "new_column", "extra"), ("error", "text_in_numeric", "extra"),
    ]


# -- anomalies and raising ------------------------------------------------------------------------


def test_anomaly_is_frozen_and_serialisable() -> None:
    anomaly = Anomaly("error", "missing_column", "n", "column 'n' is missing")
    with pytest.raises(dataclasses.FrozenInstanceError):
        anomaly.message = "x"  # type: ignore[misc]
    assert anomaly.to_dict() == {"severity": "error", "kind": "missing_column", "column": "n",
                                 "message": "column 'n' is missing"}
    assert str(anomaly) == "error: column 'n' is missing"


def test_raise_for_errors_lists_every_error() -> None:
    warning = Anomaly("warning", "new_column", "x", "column 'x' is new")
    raise_for_errors([warning])  # warnings pass
    errors = [Anomaly("error", "missing_column", c, f"column {c!r} is missing") for c in ("a", "b")]
    assert errors_of([warning, *errors]) == errors
    with pytest.raises(SchemaError) as info:
        raise_for_errors([warning, *errors])
    assert info.value.violations == ["column 'a' is missing", "column 'b' is missing"]
    assert str(info.value).startswith("the data was refused: column 'a' is missing (and 1 more)")
