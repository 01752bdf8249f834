"""Data that must be refused, through the real CLI (#11, point 6): a target with a single class, a target with
10,000 distinct strings, a time column that cannot be read or is out of order where the spec says it is sorted,
a feature whose type changed in new data. Each gets one line naming the column and the fix, exit code 2, no
traceback, and nothing already stored changes.

One project (built here, with every column kind: floats with missing values, nullable integers, strings,
categories, a time column with a time zone) is trained once and then fed bad data; a second, fresh project
shows that data refused on a first run leaves nothing behind that the corrected data would be compared with.
"""

from __future__ import annotations

import hashlib
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.conftest import _cli
from tests.e2e.refusals import fails
from tidal import Workspace

Cli = Callable[..., subprocess.CompletedProcess[str]]
ROWS = 800

SPEC = """\
version: 1
name: bad
data:
  source: data/rows.parquet
  target: y
  time: t
model:
  estimator: sklearn.linear_model.LogisticRegression
  params: {max_iter: 200}
validate:
  metrics: [accuracy]
backtest:
  initial_rows: 0.5
  max_rows: 200
"""


def _rows(n: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Every column kind, with missing values, and a target the features explain."""
    rng = np.random.default_rng(seed)
    num = rng.normal(size=n)
    city = rng.choice(["oslo", "lima", "pune"], size=n)
    frame = pd.DataFrame({
        "t": pd.date_range("2024-01-01", periods=n, freq="h", tz="Europe/Paris"),
        "num": np.where(rng.random(n) < 0.05, np.nan, num.round(4)),
        "count": pd.array(np.where(rng.random(n) < 0.05, None, rng.integers(0, 9, n)), dtype="Int64"),
        "city": pd.array(city, dtype="string"),
        "grade": pd.Categorical(rng.choice(["a", "b"], size=n)),
        "y": ((num + (city == "oslo") + rng.normal(scale=0.5, size=n)) > 0.5).astype(int),
    })
    return frame


def _project(root: Path) -> Path:
    (root / "data").mkdir(parents=True)
    (root / "tidal.yaml").write_text(SPEC)
    _rows().to_parquet(root / "data" / "rows.parquet")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Cli]:
    project = _project(tmp_path_factory.mktemp("bad") / "project")
    cli = _cli(project)
    cli("run", check=True)
    return project, cli


@pytest.fixture
def project(trained: tuple[Path, Cli]) -> Iterator[tuple[Path, Cli]]:
    """The trained project; its source and spec are put back after each test."""
    path, cli = trained
    source, spec = path / "data" / "rows.parquet", path / "tidal.yaml"
    kept = source.read_bytes(), spec.read_text()
    yield path, cli
    source.write_bytes(kept[0])
    spec.write_text(kept[1])


def _stored(project: Path) -> dict[str, Any]:
    """What the workspace holds that a refusal must leave as it was."""
    with Workspace.open(project) as ws:
        models = [(m.version, m.state.value, m.artifact_digest) for m in ws.models.list()]
        champion = ws.models.get("bad:champion").version
        schema = ws.store.get_state("schema:bad")
        events = [(e.kind, e.message) for e in ws.events(limit=10_000)]
        runs = [(r.id, r.status.value) for r in ws.runs.list()]
    files = {str(p.relative_to(project)): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in (project / ".tidal" / "artifacts").rglob("*") if p.is_file()}
    return {"models": models, "champion": champion, "schema": schema, "events": events, "runs": runs, "files": files}


def _unchanged(before: dict[str, Any], after: dict[str, Any], *, failed_run: bool) -> None:
    """Nothing stored before is changed or gone. A refused ``tidal run`` adds its failed run and the events that
    say so (and may keep the refused snapshot's bytes); a refused backtest, run in throw-away stores, adds nothing."""
    for key in ("models", "champion", "schema"):
        assert after[key] == before[key], key
    assert after["runs"][1:] == before["runs"] if failed_run else after["runs"] == before["runs"]
    if failed_run:
        assert after["runs"][0][1] == "failed"
        assert after["events"][: len(before["events"])] == before["events"]
        assert any(kind == "run.failed" for kind, _ in after["events"][len(before["events"]):])
    else:
        assert after["events"] == before["events"]
    assert {p: d for p, d in after["files"].items() if p in before["files"]} == before["files"]


def _refused(project: Path, cli: Cli, command: str, frame: pd.DataFrame, *needles: str) -> str:
    frame.to_parquet(project / "data" / "rows.parquet")
    before = _stored(project)
    line = fails(cli(command), *needles)
    _unchanged(before, _stored(project), failed_run=command == "run")
    return line


def _as_text(numbers: pd.Series) -> pd.Series:
    """Numbers as text, as a source that stores them so has them (missing values stay missing)."""
    return numbers.map(lambda v: None if pd.isna(v) else str(v)).astype(object)


def _edit_spec(project: Path, old: str, new: str) -> None:
    text = (project / "tidal.yaml").read_text()
    assert old in text, old
    (project / "tidal.yaml").write_text(text.replace(old, new))


# -- the target -----------------------------------------------------------------------------------


def test_a_target_with_a_single_class(project: tuple[Path, Cli]) -> None:
    path, cli = project
    _refused(path, cli, "run", _rows().assign(y=1), "target column 'y'", "single value 1",
             "set data.target to the column to predict")
    # two classes in the table, but one only in the holdout of the time split
    late = _rows().assign(y=[0] * (ROWS - 60) + [0, 1] * 30)
    _refused(path, cli, "run", late, "target column 'y' has a single class (", "in the 640 rows a model is trained on",
             "use validate.split.method: random")


def test_a_target_of_numbers_stored_as_text(project: tuple[Path, Cli]) -> None:
    path, cli = project
    prices = [f"${v:,.2f}" for v in np.random.default_rng(1).uniform(900, 1100, ROWS)]
    _refused(path, cli, "backtest", _rows().assign(y=prices), "target column 'y'", "numbers stored as text",
             "store them as plain numbers")
    # and with a regressor, as the numbers are meant
    _edit_spec(path, "sklearn.linear_model.LogisticRegression", "sklearn.linear_model.Ridge")
    _edit_spec(path, "metrics: [accuracy]", "metrics: [rmse]")
    _refused(path, cli, "backtest", _rows().assign(y=prices), "target column 'y' is to be predicted by regression but "
             f"{ROWS // 2} values are not numbers (first {prices[0]!r} at row 0", "store them as plain numbers")


def test_an_identifier_as_target_leaves_nothing_for_the_corrected_data_to_trip_on(tmp_path: Path) -> None:
    path = _project(tmp_path / "fresh")
    cli = _cli(path)
    data = _rows(10_000).assign(y=[f"order-{i:05d}" for i in range(10_000)])
    data.to_parquet(path / "data" / "rows.parquet")
    fails(cli("run"), "target column 'y' has 10,000 distinct values in 10,000 rows", "looks like an identifier",
           "set data.target to the column to predict")
    with Workspace.open(path) as ws:
        assert ws.store.get_state("schema:bad") is None  # the refused table is not the reference
        assert ws.models.list() == []
    _rows().to_parquet(path / "data" / "rows.parquet")
    cli("run", check=True)  # the corrected target is not compared with the refused one


# -- the time column ------------------------------------------------------------------------------


def test_a_time_column_that_cannot_be_read(tmp_path: Path) -> None:
    path = _project(tmp_path / "fresh")
    cli = _cli(path)
    times = _rows()["t"].dt.strftime("%Y-%m-%dT%H:%M:%S%z").astype(object)
    times[123] = "tomorrow"
    _rows().assign(t=times).to_parquet(path / "data" / "rows.parquet")
    fails(cli("run"), "time column 't'", "(first 'tomorrow' at row 123)", "or set data.time: null")
    with Workspace.open(path) as ws:
        assert ws.store.get_state("schema:bad") is None and ws.models.list() == []


def test_a_time_column_out_of_order_where_the_spec_says_sorted(project: tuple[Path, Cli]) -> None:
    path, cli = project
    shuffled = _rows().iloc[[*range(300), 301, 300, *range(302, ROWS)]].reset_index(drop=True)
    _edit_spec(path, "  time: t\n", "  time: t\n  time_order: sorted\n")
    for command in ("run", "backtest"):
        _refused(path, cli, command, shuffled, "time column 't' is not in time order",
                 # the rows as they stand in the source, their times in the column's own zone
                 "row 301 ('2024-01-13T12:00:00+01:00') is earlier than row 300 ('2024-01-13T13:00:00+01:00')",
                 "sort the source by 't', or set data.time_order: any")


# -- a feature whose type changed -----------------------------------------------------------------


def test_a_retrain_by_the_loop_on_a_source_whose_feature_now_holds_text(project: tuple[Path, Cli]) -> None:
    path, cli = project
    (path / "tidal.yaml").write_text(SPEC + "retrain:\n  on: {new_data: {rows: 20}}\n  cooldown: {rows: 0}\n"
                                            "  min_labelled: 20\n")
    served = _rows(40, seed=2)
    with Workspace.open(path) as ws:
        answer = ws.predict(served.drop(columns=["t", "y"]))
        ws.feedback([{"prediction_id": i, "label": int(y)} for i, y in zip(answer.prediction_ids, served["y"],
                                                                             strict=True)])
    source = _rows()
    num = _as_text(source["num"])
    num[77] = "unknown"
    source.assign(num=num).to_parquet(path / "data" / "rows.parquet")
    before = _stored(path)
    proc = cli("loop", "--once")
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 6, (proc.stdout, proc.stderr)  # the tick's retrain failed, and the code says so
    after = _stored(path)
    new_events = after["events"][len(before["events"]):]
    failed = [message for kind, message in new_events if kind == "loop.retrain_failed"]
    assert len(failed) == 1, new_events
    assert "column 'num' was numeric, now text (first bad value 'unknown' at row 77" in failed[0]
    assert "fix those values in the source, or leave the column out (data.drop)" in failed[0]
    # the tick's monitoring report is the champion's first on live traffic: deployed -> monitored (its own
    # model.state event), which is the monitor's doing, not the failed retrain's
    assert after["models"] == [(v, "monitored" if state == "deployed" else state, digest)
                               for v, state, digest in before["models"]]
    for key in ("champion", "schema"):
        assert after[key] == before[key], key


def test_a_numeric_feature_that_holds_text_in_new_data(project: tuple[Path, Cli]) -> None:
    path, cli = project
    new = _rows(seed=1)
    num = _as_text(new["num"])
    num[40] = "unknown"
    _refused(path, cli, "run", new.assign(num=num), "column 'num' was numeric, now text",
             "(first bad value 'unknown' at row 40", "fix those values in the source, or leave the column out")
    # replayed by a backtest: numbers in the rows that train the first model, text after them
    stream = _rows().assign(num=_as_text(_rows()["num"]))
    stream.loc[500:, "num"] = "n.a."
    _refused(path, cli, "backtest", stream, "column 'num' was numeric (the first 400 rows",
             "now text from row 500 in time order ('n.a.'", "or leave the column out (data.drop)")
    _edit_spec(path, "  time: t\n", "  time: t\n  drop: [num]\n")  # the fix the line gives works
    new.assign(num=num).to_parquet(path / "data" / "rows.parquet")
    cli("run", check=True)
