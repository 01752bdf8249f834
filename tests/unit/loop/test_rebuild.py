"""The training frame a retrain rebuilds from the prediction log has the source's dtypes (issue #11, point 1).

The property test generates frames of every column kind, logs each row as a labelled prediction in the
real SQLite prediction log and in the memory log, reads the window back and rebuilds the frame: it must
equal the generated one, dtypes included.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidal.core.entities import Prediction
from tidal.core.ports import PredictionLog
from tidal.data.codec import encode_records, encode_value
from tidal.data.snapshot import canonical_parquet_bytes, read_snapshot_bytes
from tidal.data.timecol import parse_times
from tidal.loop.rebuild import concat_typed, labelled_frame
from tidal.storage import open_prediction_log

_NAMES = itertools.count()
_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
_INSTANTS = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1))


def _maybe(values: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    return st.one_of(st.none(), values)


#: column kind → (values of n rows → the column)
_KINDS = {
    "int64": lambda n: st.lists(st.integers(-(2**53), 2**53), min_size=n, max_size=n).map(
        lambda v: pd.Series(v, dtype="int64")),
    "float64": lambda n: st.lists(_maybe(st.floats(allow_infinity=False, allow_nan=False)), min_size=n,
                                  max_size=n).map(lambda v: pd.Series([np.nan if x is None else x for x in v],
                                                                      dtype="float64")),
    "Int64": lambda n: st.lists(_maybe(st.integers(-1000, 1000)), min_size=n, max_size=n).map(
        lambda v: pd.Series(pd.array(v, dtype="Int64"))),
    "boolean": lambda n: st.lists(_maybe(st.booleans()), min_size=n, max_size=n).map(
        lambda v: pd.Series(pd.array(v, dtype="boolean"))),
    "bool": lambda n: st.lists(st.booleans(), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=bool)),
    "str": lambda n: st.lists(_maybe(_TEXT), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype="str")),
    "string[pyarrow]": lambda n: st.lists(_maybe(_TEXT), min_size=n, max_size=n).map(
        lambda v: pd.Series(v, dtype="string[pyarrow]")),
    "string[python]": lambda n: st.lists(_maybe(_TEXT), min_size=n, max_size=n).map(
        lambda v: pd.Series(v, dtype="string[python]")),
    "object": lambda n: st.lists(_maybe(_TEXT), min_size=n, max_size=n).map(lambda v: pd.Series(v, dtype=object)),
    "category": lambda n: st.lists(_maybe(st.sampled_from(["a", "b", "c"])), min_size=n, max_size=n).map(
        lambda v: pd.Series(v, dtype="category")),
    "naive": lambda n: st.lists(_maybe(_INSTANTS), min_size=n, max_size=n).map(
        lambda v: pd.Series(pd.to_datetime(v)).astype("datetime64[us]")),
    "aware": lambda n: st.lists(_maybe(_INSTANTS), min_size=n, max_size=n).map(
        lambda v: pd.Series(pd.to_datetime(v)).astype("datetime64[us]").dt.tz_localize("UTC")
        .dt.tz_convert("America/New_York")),
    "date": lambda n: st.lists(_maybe(st.dates(date(1900, 1, 1), date(2100, 1, 1))), min_size=n, max_size=n).map(
        lambda v: pd.Series(v, dtype=object)),
}
_TARGETS = ("int64", "float64", "Int64", "boolean", "bool", "str", "object", "category")


def _times(kind: str, n: int) -> st.SearchStrategy[pd.Series]:
    """A time column of ``kind``, strictly increasing (the log reads a window back in time order)."""
    steps = st.lists(st.integers(1, 10**6), min_size=n, max_size=n)

    def build(deltas: list[int]) -> pd.Series:
        seconds = np.cumsum(deltas)
        stamps = pd.Series(pd.Timestamp("2001-01-01") + pd.to_timedelta(seconds, unit="s")).astype("datetime64[us]")
        if kind == "naive":
            return stamps
        if kind == "aware":
            return stamps.dt.tz_localize("Asia/Kolkata")
        if kind == "date":
            return pd.Series([date(2001, 1, 1) + timedelta(days=int(s)) for s in seconds], dtype=object)
        if kind == "iso":
            return pd.Series([t.tz_localize("UTC").isoformat() for t in stamps], dtype="str")
        if kind == "year":
            return pd.Series(1900 + np.cumsum([d % 3 + 1 for d in deltas]), dtype="int64")
        return pd.Series(978_307_200 + seconds, dtype="int64")  # epoch seconds

    return steps.map(build)


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 6))
    kinds = draw(st.lists(st.sampled_from(sorted(_KINDS)), min_size=1, max_size=5))
    columns = {f"x{i}_{kind}": draw(_KINDS[kind](n)) for i, kind in enumerate(kinds)}
    columns["y"] = draw(st.sampled_from(_TARGETS).flatmap(lambda k: _KINDS[k](n)).filter(
        lambda s: not s.isna().any()))  # a missing label is no label: never in a labelled window
    columns["t"] = draw(st.sampled_from(["naive", "aware", "date", "iso", "year", "epoch"]).flatmap(
        lambda k: _times(k, n)))
    return pd.DataFrame(columns)


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[PredictionLog]]:
    sqlite = open_prediction_log(f"sqlite:///{tmp_path_factory.mktemp('log') / 'predictions.db'}")
    yield [sqlite, open_prediction_log("memory://")]
    close = getattr(sqlite, "close", None)
    if close is not None:
        close()


def _log_and_rebuild(log: PredictionLog, frame: pd.DataFrame) -> pd.DataFrame:
    model = f"m{next(_NAMES)}"
    inputs = encode_records(frame, [c for c in frame.columns if c not in ("y", "t")])
    times = parse_times(frame["t"])
    log.append([Prediction(id=f"{model}-{i}", time=times[i].to_pydatetime(), model=model, version=1,
                           inputs=inputs[i], output=encode_value(frame["y"][i]), label=encode_value(frame["y"][i]))
                for i in range(len(frame))])
    labelled = log.window(model=model, labelled=True)
    return labelled_frame(labelled, frame, target="y", time="t")[list(frame.columns)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(frame=frames())
def test_a_frame_of_every_column_kind_survives_the_prediction_log(logs: list[PredictionLog],
                                                                  frame: pd.DataFrame) -> None:
    for log in logs:
        rebuilt = _log_and_rebuild(log, frame)
        if frame["t"].dtype == "str":  # ISO text comes back as the same instants, written in UTC
            pd.testing.assert_series_equal(parse_times(rebuilt["t"]), parse_times(frame["t"]))
            rebuilt["t"] = frame["t"]
        pd.testing.assert_frame_equal(rebuilt, frame)


def test_source_and_rebuilt_rows_make_one_storable_frame_with_a_timestamp_time_column(
        logs: list[PredictionLog]) -> None:
    """The bug of issue #11: every retrain of a project whose data.time holds timestamps failed with "the
    table cannot be stored as Parquet: Expected bytes, got a 'Timestamp' object"."""
    source = pd.DataFrame({"x": [1.0, 2.0], "kind": pd.Categorical(["a", "b"]),
                           "y": pd.Series(["no", "yes"], dtype="str"),
                           "t": pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00"])})
    new = pd.DataFrame({"x": [3.0], "kind": pd.Categorical(["c"]),  # a category the source never had
                        "y": pd.Series(["yes"], dtype="str"), "t": pd.to_datetime(["2024-01-01 02:00"])})
    rebuilt = _log_and_rebuild(logs[0], new)
    frame = concat_typed([source, rebuilt], source)
    assert frame.dtypes.astype(str).to_dict() == {"x": "float64", "kind": "category", "y": "str",
                                                  "t": "datetime64[us]"}
    assert frame["t"].tolist() == list(pd.to_datetime(["2024-01-01 00:00", "2024-01-01 01:00", "2024-01-01 02:00"]))
    stored = read_snapshot_bytes(canonical_parquet_bytes(frame))  # what the retrain's snapshot does
    pd.testing.assert_frame_equal(stored, frame)


def test_the_rebuilt_time_is_the_prediction_time_in_the_columns_zone(tmp_path: Path) -> None:
    log = open_prediction_log("memory://")
    source = pd.DataFrame({"x": [1], "y": [0],
                           "t": pd.to_datetime(["2024-06-01 12:00"]).tz_localize("Europe/Paris")})
    log.append([Prediction(id="p", time=datetime(2024, 6, 2, 10, tzinfo=UTC), model="m", version=1,
                           inputs={"x": 2}, output=1, label=1)])
    rebuilt = labelled_frame(log.window(model="m", labelled=True), source, target="y", time="t")
    assert rebuilt["t"].dtype == source["t"].dtype
    assert rebuilt["t"][0] == pd.Timestamp("2024-06-02 12:00", tz="Europe/Paris")
    assert rebuilt["y"].dtype == "int64" and rebuilt["x"].dtype == "int64"


def test_the_retrain_window_in_days_reads_an_integer_year_time_column_as_years(tmp_path: Path) -> None:
    """``retrain.window.last_days`` cuts by the time column read as the spec says: years, not nanoseconds."""
    from tidal.core.clock import SimulatedClock
    from tidal.executors import open_executor
    from tidal.loop.context import LoopContext
    from tidal.loop.rebuild import training_frame
    from tidal.registry import Registry
    from tidal.spec import parse_spec
    from tidal.storage import open_artifact_store, open_metadata_store

    spec = parse_spec("""version: 1
name: years
data: {source: data.csv, target: y, time: year}
model: {estimator: sklearn.linear_model.LogisticRegression}
retrain: {window: {last_days: 1100}}
""")
    clock = SimulatedClock(datetime(2011, 6, 1, tzinfo=UTC))
    store, artifacts = open_metadata_store("memory://"), open_artifact_store(str(tmp_path / "artifacts"))
    log = open_prediction_log("memory://")
    ctx = LoopContext(spec=spec, root=tmp_path, store=store, artifacts=artifacts, predictions=log,
                      registry=Registry(store, artifacts, clock), executor=open_executor("local"), clock=clock)
    source = pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": ["a", "b", "a"], "year": [2000, 2005, 2009]})
    log.append([Prediction(id="p", time=datetime(2011, 1, 1, tzinfo=UTC), model="years", version=1,
                           inputs={"x": 4.0}, output="b", label="b")])
    frame, label = training_frame(ctx, lambda: source)
    # 1,100 days before 2011-06-01 is 2008-05-28: the rows of 2009 and of the labelled prediction (2011)
    assert frame["year"].tolist() == [2009, 2011] and frame["year"].dtype == "int64"
    assert frame["y"].tolist() == ["a", "b"] and frame["y"].dtype == source["y"].dtype
    assert label == "loop window: 2 rows (3 from the source, 1 labelled predictions before the window cut)"
