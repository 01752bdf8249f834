"""What a tidal.yaml may execute, through ``Workspace.run`` and ``tidal run`` on small real projects.

``model.estimator`` must name an estimator class: anything else (``subprocess.Popen`` with arguments that
would run a command, a function, a plain class) is refused before it is called, in every step. A relative
``data.source`` may leave the project folder: it is read, and the run and the model's lineage say so.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import _cli
from tidal import Workspace
from tidal.core.entities import RunStatus
from tidal.core.errors import TrainingError


def _project(root: Path, *, source: str = "data/d.csv", model: str = "") -> Path:
    """A tiny classification project at ``root`` (60 rows, two numeric features)."""
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x0": rng.normal(size=60), "x1": rng.normal(size=60)})
    df["y"] = (df["x0"] + df["x1"] > 0).astype(int)
    (root / "data").mkdir(parents=True, exist_ok=True)
    df.to_csv(root / "data" / "d.csv", index=False)
    model = model or "{estimator: sklearn.linear_model.LogisticRegression}"
    (root / "tidal.yaml").write_text(f"version: 1\nname: p\ndata: {{source: {source}, target: y}}\nmodel: {model}\n"
                                     "validate: {gates: []}\n")
    return root


@pytest.mark.parametrize(("estimator", "needle"), [
    ("subprocess.Popen", "is a class but not an estimator"),
    ("os.system", "not a class"),
    ("builtins.eval", "not a class"),
    ("collections.OrderedDict", "is a class but not an estimator"),
])
def test_a_spec_estimator_that_is_not_an_estimator_class_is_never_called(tmp_path: Path, estimator: str,
                                                                         needle: str) -> None:
    target = tmp_path / "pwned"
    args = {"subprocess.Popen": f"{{args: [touch, {target}]}}", "os.system": f"{{command: touch {target}}}",
            "builtins.eval": f"{{source: \"open('{target}', 'w')\"}}"}.get(estimator, "{}")
    root = _project(tmp_path / "p", model=f"{{estimator: {estimator}, params: {args}}}")
    with Workspace.open(root) as ws, pytest.raises(TrainingError) as caught:
        ws.run()
    message = str(caught.value)
    assert f"model.estimator: {estimator!r}" in message and needle in message, message
    assert "BaseEstimator" in message  # says what is expected
    time.sleep(0.2)  # a Popen would have run its command beside us by now
    assert not target.exists()
    with Workspace.open(root) as ws:
        run = ws.runs.list()[0]
        assert run.status == RunStatus.FAILED and estimator in (run.error or "")
        train = next(s for s in ws.runs.get(run.id).steps if s.name == "train")
        assert train.status.value == "failed"


def test_the_cli_names_the_refused_estimator_in_one_line(tmp_path: Path) -> None:
    target = tmp_path / "pwned"
    root = _project(tmp_path / "p", model=f"{{estimator: subprocess.Popen, params: {{args: [touch, {target}]}}}}")
    proc = _cli(root)("run")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "subprocess.Popen" in proc.stderr and "not an estimator" in proc.stderr
    assert not target.exists()


def test_a_source_outside_the_project_is_read_and_recorded(tmp_path: Path) -> None:
    outside = _project(tmp_path / "shared") / "data" / "d.csv"
    root = _project(tmp_path / "team" / "p", source="../../shared/data/d.csv")
    (root / "data" / "d.csv").unlink()
    with Workspace.open(root) as ws:
        result = ws.run()
        assert result.source == {"uri": "../../shared/data/d.csv", "path": str(outside.resolve()),
                                 "outside_project": True}
        assert result.to_dict()["source"]["outside_project"] is True
        assert ws.runs.get(result.run.id).run.info["source"]["outside_project"] is True
        assert result.model is not None and result.model.lineage.source["path"] == str(outside.resolve())
    proc = _cli(root)("run", "--no-cache")
    assert proc.returncode == 0, proc.stderr
    assert "outside the project folder" in proc.stdout and str(outside.resolve()) in proc.stdout
    doc = json.loads(_cli(root)("run", "--json").stdout)
    assert doc["source"] == {"uri": "../../shared/data/d.csv", "path": str(outside.resolve()),
                             "outside_project": True}


def test_a_source_inside_the_project_is_recorded_as_inside(tmp_path: Path) -> None:
    root = _project(tmp_path / "p")
    with Workspace.open(root) as ws:
        result = ws.run()
        assert result.source["outside_project"] is False
        assert result.model is not None and result.model.lineage.source["outside_project"] is False
    assert "outside the project" not in _cli(root)("run").stdout
