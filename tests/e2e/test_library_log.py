"""Through `tidal run` (issue #12, point 4b): a library's own parameters pass through unchanged (LightGBM's
`verbose: -1`, XGBoost's `tree_method` and `max_bin`), and what the library prints while it fits is kept in
the run's log (`tidal runs show`), not printed on the terminal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sklearn.datasets import load_diabetes

from tidal import Workspace


def _project(root: Path, estimator: str, params: str) -> Path:
    root.mkdir(parents=True)
    load_diabetes(as_frame=True).frame.to_csv(root / "rows.csv", index=False)
    (root / "tidal.yaml").write_text(f"""version: 1
name: diabetes
data: {{source: rows.csv, target: target}}
model:
  estimator: {estimator}
  params: {params}
  seed: 0
""")
    return root


def test_lightgbm_output_goes_to_the_runs_log_and_verbose_minus_one_passes_through(
        tmp_path: Path, cli: Callable[..., Any]) -> None:
    project = _project(tmp_path / "lgbm", "lightgbm.LGBMRegressor", "{n_estimators: 20, num_leaves: 63}")
    ran = cli("-C", str(project), "run", check=True)
    assert "LightGBM" not in ran.stdout + ran.stderr, ran.stdout + ran.stderr
    with Workspace.open(project) as ws:
        run_id = ws.runs.list()[0].id
        log = ws.runs.log(run_id)
    assert log is not None and "[LightGBM] [Warning] No further splits with positive gain" in log, log
    shown = cli("-C", str(project), "runs", "show", run_id, check=True).stdout
    lines = log.splitlines()
    assert f"log of the training library ({len(lines)} lines, the last 20" in shown, shown
    assert shown.rstrip().endswith(lines[-1].strip())
    assert cli("-C", str(project), "runs", "show", run_id, "--log", check=True).stdout == log
    assert json.loads(cli("-C", str(project), "runs", "show", run_id, "--json", check=True).stdout)["log"] == log

    spec = (project / "tidal.yaml").read_text()
    (project / "tidal.yaml").write_text(spec.replace("num_leaves: 63", "num_leaves: 63, verbose: -1"))
    cli("-C", str(project), "run", check=True)
    with Workspace.open(project) as ws:
        quiet = ws.runs.list()[0]
        mv = ws.registry.get("diabetes", quiet.info["model"]["version"])
        assert ws.runs.log(quiet.id) is None  # LightGBM printed nothing: there is no log
        assert mv.lineage.params == {"n_estimators": 20, "num_leaves": 63, "verbose": -1}
        assert ws.registry.load(mv).named_steps["model"].get_params()["verbose"] == -1


def test_xgboost_library_params_pass_through_tidal_run(tmp_path: Path, cli: Callable[..., Any]) -> None:
    project = _project(tmp_path / "xgb", "xgboost.XGBRegressor",
                       "{n_estimators: 10, tree_method: hist, max_bin: 32, grow_policy: lossguide, verbosity: 2}")
    ran = cli("-C", str(project), "run", check=True)
    assert "INFO:" not in ran.stdout + ran.stderr, ran.stdout + ran.stderr
    with Workspace.open(project) as ws:
        run = ws.runs.list()[0]
        mv = ws.registry.get("diabetes", run.info["model"]["version"])
        params = ws.registry.load(mv).named_steps["model"].get_params()
        assert (params["tree_method"], params["max_bin"], params["grow_policy"]) == ("hist", 32, "lossguide")
        config = json.loads(ws.registry.load(mv).named_steps["model"].get_booster().save_config())
        assert config["learner"]["gradient_booster"]["gbtree_model_param"]["num_trees"] == "10"
        assert "INFO:" in (ws.runs.log(run.id) or "")  # verbosity 2: XGBoost's native info, in the log
