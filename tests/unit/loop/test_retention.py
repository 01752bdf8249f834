"""Retention end to end (issue #16): ``monitor.retention`` applied by the loop on its clock, retraining reading
the archived labelled predictions (late labels included), and ``tidal predictions archive|ls``.

A real project: scikit-learn's iris data set, a LogisticRegression trained once per module; its predictions
are logged at controlled times with a simulated clock.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tidal.cli.main import main
from tidal.core.clock import SimulatedClock
from tidal.core.entities import Feedback, Prediction
from tidal.core.ids import new_ids
from tidal.loop.rebuild import training_frame
from tidal.workspace import Workspace

START = datetime(2026, 6, 1, 8, tzinfo=UTC)
SPEC = """\
name: iris
data: {{source: data/iris.csv, target: species}}
model: {{estimator: sklearn.linear_model.LogisticRegression, params: {{max_iter: 300}}}}
validate: {{gates: []}}
monitor: {{retention: {retention}}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_iris

    root = tmp_path_factory.mktemp("retention") / "iris"
    (root / "data").mkdir(parents=True)
    # shuffled: the file is sorted by species, and a split by position would hold out one species only
    frame = load_iris(as_frame=True).frame.rename(columns={"target": "species"}).sample(frac=1.0, random_state=0)
    frame.columns = [c.replace(" (cm)", "").replace(" ", "_") for c in frame.columns]
    frame.to_csv(root / "data" / "iris.csv", index=False)
    (root / "tidal.yaml").write_text(SPEC.format(retention="30d"))
    with Workspace.open(root) as ws:
        assert ws.run().model.version == 1
    return root


@pytest.fixture
def project(trained: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "iris"
    shutil.copytree(trained, dest)
    return dest


def rows(project: Path) -> list[dict[str, Any]]:
    import pandas as pd

    frame = pd.read_csv(project / "data" / "iris.csv")
    return [dict(r) for r in frame.to_dict(orient="records")]


def log(ws: Workspace, project: Path, at: datetime, n: int, *, labelled: bool) -> list[Prediction]:
    made = []
    for i, (pid, row) in enumerate(zip(new_ids(n), rows(project)[::7], strict=False)):
        species = int(row.pop("species"))
        made.append(Prediction(id=pid, time=at + timedelta(minutes=i), model="iris", version=1, inputs=row,
                               output=species, label=species if labelled else None,
                               label_time=at + timedelta(hours=1) if labelled else None))
    ws.predictions.append(made)
    return made


def test_the_loop_archives_what_is_older_than_the_retention_at_most_hourly(project: Path) -> None:
    clock = SimulatedClock(START)
    with Workspace.open(project, clock=clock) as ws:
        old = log(ws, project, START, 12, labelled=False)
        clock.advance(timedelta(days=31))
        recent = log(ws, project, clock.now(), 5, labelled=False)
        tick = ws.loop_once()
        archived = [e for e in tick.events if e.kind == "predictions.archived"]
        assert len(archived) == 1 and archived[0].data["moved"] == len(old)
        assert ws.predictions.count() == len(recent)
        days = ws.prediction_days()
        assert sum(d.archived for d in days) == len(old) and sum(d.logged for d in days) == len(recent)
        # another old prediction: the next tick within the hour does not look, the one after does
        late = log(ws, project, START + timedelta(hours=3), 1, labelled=False)
        clock.advance(timedelta(minutes=20))
        assert not [e for e in ws.loop_once().events if e.kind.startswith("predictions.")]
        clock.advance(timedelta(hours=1))
        again = [e for e in ws.loop_once().events if e.kind == "predictions.archived"]
        assert again and again[0].data["moved"] == 1
        assert {p.id for p in ws.predictions.window(archived=True)} == {p.id for p in old + recent + late}


def test_a_retrain_learns_from_archived_predictions_and_their_late_labels(project: Path) -> None:
    clock = SimulatedClock(START)
    with Workspace.open(project, clock=clock) as ws:
        old = log(ws, project, START, 15, labelled=False)
        labelled_old = log(ws, project, START + timedelta(hours=2), 4, labelled=True)
        clock.advance(timedelta(days=45))
        recent = log(ws, project, clock.now(), 3, labelled=True)
        before, note_before = training_frame(ws.context())
        labels_before = ws.predictions.count(model="iris", labelled=True, archived=True)
        outcome = ws.archive_predictions()
        # the loop's label total (cooldown, growth) does not drop when labelled predictions are archived
        assert ws.predictions.count(model="iris", labelled=True, archived=True) == labels_before == 7
        assert outcome.moved == len(old) + len(labelled_old)
        # labels arrive for archived predictions, after they were archived
        ws.predictions.add_feedback([Feedback(prediction_id=p.id, label=int(p.output), time=clock.now())
                                     for p in old[:6]])
        after, note_after = training_frame(ws.context())
    assert "7 labelled predictions" in note_before
    assert f"{len(labelled_old) + len(recent) + 6} labelled predictions" in note_after
    assert len(after) == len(before) + 6


def tidal(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``tidal ARGS`` in this process: its exit code, stdout and stderr."""
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_archive_and_ls_on_the_command_line(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with Workspace.open(project) as ws:
        now = datetime.now(UTC)
        old = log(ws, project, now - timedelta(days=40), 6, labelled=True)
        log(ws, project, now, 2, labelled=False)
    at = ("-C", str(project), "predictions")
    code, _, err = tidal(capsys, *at, "archive", "--older-than", "-5d")
    assert code == 2 and "'-5d' is not a duration" in err and "Traceback" not in err
    code, _, err = tidal(capsys, *at, "archive", "--before", "2026-01-01", "--older-than", "5d")
    assert code == 2 and "not both" in err
    code, out, _ = tidal(capsys, *at, "archive", "--json")
    assert code == 0 and json.loads(out)["moved"] == len(old)
    assert [f["rows"] for f in json.loads(out)["files"]] == [len(old)]
    code, out, _ = tidal(capsys, *at, "ls", "--json")
    listed = json.loads(out)
    assert [(d["logged"], d["archived"], d["archived_labels"]) for d in listed] == [(0, 6, 6), (2, 0, 0)]
    assert Path(listed[0]["path"]).is_file()
    code, out, _ = tidal(capsys, *at, "ls")
    assert code == 0 and "2 predictions in the log, 6 predictions archived" in out
    code, out, _ = tidal(capsys, *at, "archive")
    assert code == 0 and "nothing to archive" in out


@pytest.mark.parametrize("value, says", [("0d", "not longer than zero"), ("-1d", "is not a duration"),
                                         ("soon", "is not a duration"), ("90", "90 has no unit")])
def test_a_bad_retention_is_one_line(project: Path, capsys: pytest.CaptureFixture[str], value: str,
                                     says: str) -> None:
    (project / "tidal.yaml").write_text(SPEC.format(retention=value))
    code, _, err = tidal(capsys, "-C", str(project), "predictions", "ls")
    assert code == 2 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.strip()]
    assert "monitor.retention" in line and says in line and "90d" in line


def test_without_a_retention_there_is_no_default_cutoff(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (project / "tidal.yaml").write_text(SPEC.format(retention="null"))
    code, _, err = tidal(capsys, "-C", str(project), "predictions", "archive")
    assert code == 2 and "monitor.retention is not set" in err
