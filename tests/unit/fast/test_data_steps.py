"""The data stage's steps (data/steps.py): collect, validate, split and profile, on tables of a few dozen
rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tidal.core.errors import DataError
from tidal.data import steps
from tidal.data.schema import infer_schema
from tidal.data.snapshot import read_snapshot_bytes
from tidal.spec.model import ChecksSpec, DataSpec, SplitSpec

from ._tiny import T0

DATA = DataSpec(source="rows.csv", target="y", time="t")


def rows(n: int = 40) -> pd.DataFrame:
    """``n`` rows in scrambled time order: ``t`` is a permutation of 0..n-1, ``x = t`` and ``y`` alternates."""
    order = [(7 * i) % n for i in range(n)]  # 7 is coprime with the sizes used here
    return pd.DataFrame({"t": order, "x": [float(t) for t in order], "c": ["a", "b"] * (n // 2),
                         "y": [t % 2 for t in order]})


# -- collect -----------------------------------------------------------------------------------------------


def test_collect_freezes_a_given_frame_as_a_snapshot() -> None:
    df = rows(10).set_index(pd.Index(range(100, 110)))
    info, payload = steps.collect(DATA, base_dir=Path("/nonexistent"), project="p", created_at=T0, frame=df,
                                  label="window of 10")
    assert (info.rows, info.columns, info.source, info.project) == (10, ["t", "x", "c", "y"], "window of 10", "p")
    assert info.schema == {"t": "integer", "x": "numeric", "c": "categorical", "y": "integer"}
    back = read_snapshot_bytes(payload)
    pd.testing.assert_frame_equal(back, df.reset_index(drop=True), check_dtype=False)
    # the same rows make the same snapshot, whatever their index
    again, _ = steps.collect(DATA, base_dir=Path("/"), project="p", created_at=T0, frame=df.reset_index(drop=True))
    assert again.digest == info.digest


def test_collect_reads_the_source_relative_to_the_project(tmp_path: Path) -> None:
    rows(6).to_csv(tmp_path / "rows.csv", index=False)
    info, payload = steps.collect(DATA, base_dir=tmp_path, project="p", created_at=T0)
    assert info.rows == 6 and info.source == "rows.csv"
    assert read_snapshot_bytes(payload)["t"].tolist() == rows(6)["t"].tolist()


# -- validate ----------------------------------------------------------------------------------------------


def test_validate_a_clean_frame_finds_nothing() -> None:
    df = rows()
    assert steps.validate(df, None, DATA) == []
    assert steps.validate(df, infer_schema(df, target="y", time="t"), DATA) == []


def test_validate_a_frame_without_its_target_says_which_columns_there_are() -> None:
    [anomaly] = steps.validate(rows().rename(columns={"y": "Y"}), None, DATA)
    assert (anomaly.severity, anomaly.kind) == ("error", "missing_target")
    assert anomaly.message == "target column 'y' not found; columns present: t, x, c, Y (did you mean 'Y'?)"


def test_validate_against_the_schema_names_the_column_and_the_problem() -> None:
    schema = infer_schema(rows(), target="y", time="t")
    bad = rows().drop(columns=["c"]).assign(x=["n/a"] + [str(v) for v in rows()["x"][1:]])
    found = {a.kind: a for a in steps.validate(bad, schema, DATA)}
    assert found["missing_column"].severity == "error"
    assert found["missing_column"].message == "column 'c' is missing (it is in the schema)"
    assert found["kind_changed"].column == "x" and "'n/a'" in found["kind_changed"].message


def test_validate_follows_the_checks_of_the_spec() -> None:
    schema = infer_schema(rows(), target="y", time="t")
    unseen = rows().assign(c=["a", "zzz"] * 20)
    [warning] = steps.validate(unseen, schema, DATA)
    assert (warning.severity, warning.kind) == ("warning", "unseen_categories")
    strict = DATA.model_copy(update={"checks": ChecksSpec(unseen_category="error")})
    [error] = steps.validate(unseen, schema, strict)
    assert (error.severity, error.kind) == ("error", "unseen_categories")
    assert "'zzz'" in error.message


# -- split ---------------------------------------------------------------------------------------------------


def test_time_split_holds_out_the_latest_rows_whatever_the_row_order() -> None:
    train, holdout = steps.split(rows(), SplitSpec(method="time", test_size=0.25), target="y", time="t",
                                 task="classification", seed=None)
    assert len(train) == 30 and len(holdout) == 10
    assert sorted(holdout["t"]) == list(range(30, 40))
    assert train["t"].max() < holdout["t"].min()
    # rows keep their order in the table (positions sorted), and a fresh index
    assert list(holdout.index) == list(range(10))
    assert list(holdout["t"]) == [t for t in rows()["t"] if t >= 30]


def test_time_split_without_a_time_column_holds_out_the_last_rows() -> None:
    df = rows(20)
    train, holdout = steps.split(df, SplitSpec(method="time", test_size=0.2), target="y", time=None,
                                 task="classification", seed=None)
    assert train["t"].tolist() == df["t"].tolist()[:16]
    assert holdout["t"].tolist() == df["t"].tolist()[16:]


def test_random_split_is_deterministic_by_seed_and_stratified() -> None:
    how = SplitSpec(method="random", test_size=0.25)
    a = steps.split(rows(), how, target="y", time="t", task="classification", seed=1)
    b = steps.split(rows(), how, target="y", time="t", task="classification", seed=1)
    c = steps.split(rows(), how, target="y", time="t", task="classification", seed=2)
    pd.testing.assert_frame_equal(a[1], b[1])
    assert a[1]["t"].tolist() != c[1]["t"].tolist()
    assert a[1]["y"].value_counts().to_dict() == {0: 5, 1: 5}
    assert sorted(a[0]["t"].tolist() + a[1]["t"].tolist()) == list(range(40))  # every row, once


def test_too_few_rows_to_split() -> None:
    with pytest.raises(DataError, match="only 2 rows: too few to split"):
        steps.split(rows(2), SplitSpec(), target="y", time="t", task="classification", seed=0)


# -- profile -------------------------------------------------------------------------------------------------


def test_profile_covers_the_inputs_and_the_target_only() -> None:
    prof = steps.profile(rows(), ["x", "c"], "y")
    assert list(prof["columns"]) == ["x", "c", "y"]
    assert prof["rows"] == 40
    assert prof["columns"]["x"]["min"] == 0.0 and prof["columns"]["x"]["max"] == 39.0
