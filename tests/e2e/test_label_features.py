"""Label features (issue #11, point 5) through the whole loop on real data (Elec2): `tidal run` trains with
them, a real server fills them from the labels in its prediction log (a client need not send them), the
SDK does the same, the backtest and its periodic baseline build them as training did, and a retrain builds
them again over its own rows. A data column named like a label feature is refused in one line."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd

from tests.e2e.refusals import fails
from tests.serve.server import ServerProcess
from tidal import Workspace

LABELS = "  label_features: {lags: [1, 2], windows: [10]}\n"


def _with_labels(project: Path) -> None:
    spec = (project / "tidal.yaml").read_text()
    marker = "  encode: onehot"
    at = spec.index(marker)
    end = spec.index("\n", at) + 1
    (project / "tidal.yaml").write_text(spec[:end] + LABELS + spec[end:])


def _rows(project: Path, n: int) -> list[dict[str, Any]]:
    frame = pd.read_csv(project / "data" / "elec2.csv").tail(n)
    return frame.drop(columns=["up"]).to_dict(orient="records")


def test_run_trains_on_label_features_and_the_server_fills_them_from_its_log(
        small_project: Path, cli: Callable[..., Any]) -> None:
    _with_labels(small_project)
    cli("-C", str(small_project), "run", check=True)
    with Workspace.open(small_project) as ws:
        mv = ws.registry.champion("elec2")
        assert mv is not None
        assert mv.signature.derived == ["label_lag_1", "label_lag_2", "label_share_10"]
        assert mv.signature.columns["label_lag_1"] == "categorical"
        assert mv.signature.label_features == {"lags": [1, 2], "windows": [10]}
    rows = _rows(small_project, 3)
    with ServerProcess(small_project) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        inputs = client.get("/model").json()["inputs"]
        assert inputs["filled"] == ["label_lag_1", "label_lag_2", "label_share_10"]
        assert set(inputs["filled"]) <= set(inputs["nullable"])
        first = client.post("/predict", json={"instances": rows[:1]})
        assert first.status_code == 200, first.text
        pid = first.json()["prediction_ids"][0]
        # no label known yet: the features are missing values, imputed as in training
        with Workspace.open(small_project) as ws:
            stored = ws.predictions.get(pid)
        assert stored.inputs["label_lag_1"] is None and stored.inputs["label_share_10"] is None
        assert client.post("/feedback", json={"prediction_id": pid, "label": 1}).status_code == 200
        second = client.post("/predict", json={"instances": rows[1:2]})
        assert second.status_code == 200, second.text
        pid2 = second.json()["prediction_ids"][0]
        assert client.post("/feedback", json={"prediction_id": pid2, "label": 0}).status_code == 200
        third = client.post("/predict", json={"instances": [rows[2]]})
        # a client that knows better may send the features itself; they are checked like any input
        sent = client.post("/predict", json={"instances": [{**rows[2], "label_lag_1": "1", "label_lag_2": None,
                                                            "label_share_10": 1.0}]})
        bad = client.post("/predict", json={"instances": [{**rows[2], "label_share_10": "many"}]})
    assert third.status_code == sent.status_code == 200
    assert bad.status_code == 422 and "label_share_10" in bad.json()["error"]
    with Workspace.open(small_project) as ws:
        seen = ws.predictions.get(third.json()["prediction_ids"][0]).inputs
        kept = ws.predictions.get(sent.json()["prediction_ids"][0]).inputs
        # newest label first: 0, then 1; the share of class 1 over the two known labels
        assert (seen["label_lag_1"], seen["label_lag_2"], seen["label_share_10"]) == ("0", "1", 0.5)
        assert kept["label_lag_1"] == "1" and kept["label_share_10"] == 1.0
        # the SDK fills them the same way, from the same log
        answer = ws.predict(rows[2:3])
        assert ws.predictions.get(answer.prediction_ids[0]).inputs["label_lag_1"] == "0"


def test_backtest_and_retrains_build_label_features_as_training_did(
        small_project: Path, cli: Callable[..., Any]) -> None:
    plain = json.loads(cli("-C", str(small_project), "backtest", "--json", check=True).stdout)
    _with_labels(small_project)
    result = json.loads(cli("-C", str(small_project), "backtest", "--json", check=True).stdout)
    loop = result["loop"]
    assert loop["failures"] == 0 and loop["retrains"] >= 1, loop
    assert loop["promotions"] + loop["rejections"] + loop["pending"] == loop["retrains"]
    # the same rows, the same policy: the newest labels carry much of Elec2's signal, so each strategy that
    # trains on them (a feature built wrongly in the replay, or from the future, would not score like this)
    # gains; the baselines that do not train are unchanged
    assert result["last_label"] == plain["last_label"]
    for strategy in ("static", "periodic", "loop"):
        assert result[strategy]["score"] > plain[strategy]["score"] + 0.02, (strategy, result, plain)
    assert result["periodic"]["score"] < 0.95  # ... and no leak of the row's own label


def test_a_data_column_named_like_a_label_feature_is_refused(small_project: Path, cli: Callable[..., Any]) -> None:
    _with_labels(small_project)
    frame = pd.read_csv(small_project / "data" / "elec2.csv")
    frame["label_lag_1"] = 0
    frame.to_csv(small_project / "data" / "elec2.csv", index=False)
    fails(cli("-C", str(small_project), "run"), "label_lag_1", "rename the column")


def test_the_elec2_labels_example_runs_its_backtest(tmp_path: Path, cli: Callable[..., Any]) -> None:
    """examples/elec2-labels (the README's figures) reads the Elec2 example's data and replays: a short run."""
    import shutil

    from tests.conftest import ELEC2

    shutil.copytree(ELEC2, tmp_path / "elec2")
    project = tmp_path / "elec2-labels"
    project.mkdir()
    spec = (ELEC2.parent / "elec2-labels" / "tidal.yaml").read_text()
    spec = spec.replace("  initial_rows: 0.2\n", "  initial_rows: 3000\n  max_rows: 1500\n")
    spec = "\n".join(line for line in spec.splitlines() if not line.startswith("  online:")) + "\n"
    (project / "tidal.yaml").write_text(spec)
    result = json.loads(cli("-C", str(project), "backtest", "--json", check=True).stdout)
    assert result["rows"] == 1500 and result["loop"]["failures"] == 0
    # the label features at work: 0.893 on these rows, 0.863 without them, 0.827 for the last label alone
    assert result["static"]["score"] > 0.88 > result["last_label"]["score"]


def test_incremental_retrains_take_label_features_too(tmp_path: Path, cli: Callable[..., Any]) -> None:
    """retrain.mode: incremental with label features: each increment's rows get their features built again
    (the server's logged ones are left out), and every version continues its parent."""
    from tests.e2e.test_backtest_incremental import _elec2, _project

    project = _project(tmp_path / "inc", _elec2(4000))
    spec = (project / "tidal.yaml").read_text()
    (project / "tidal.yaml").write_text(spec.replace("model:\n", "prepare:\n" + LABELS + "model:\n", 1))
    result = json.loads(cli("-C", str(project), "backtest", "--json", check=True).stdout)
    loop = result["loop"]
    assert loop["retrains"] >= 3 and loop["failures"] == 0, loop
    assert loop["promotions"] >= 1
    # the same loop on Elec2's own columns scores 0.786 on these rows, the last label 0.835
    assert result["loop"]["score"] > 0.84


def test_a_relative_regressor_is_served_as_the_newest_label_plus_the_learnt_change(
        tmp_path: Path, cli: Callable[..., Any]) -> None:
    """prepare.label_features.relative: true through `tidal run` and a real server: the model registered
    (the registry loaded it back and checked its holdout bit for bit), and each answer is the newest label
    the server read from its log plus the change the model learnt, past every label it trained on."""
    import numpy as np

    project = tmp_path / "rising"
    project.mkdir()
    t = np.arange(300)
    wave = np.sin(t / 7 * 2 * np.pi)
    pd.DataFrame({"t": t, "wave": wave, "level": 0.5 * t + wave}).to_csv(project / "data.csv", index=False)
    (project / "tidal.yaml").write_text(
        "version: 1\nname: rising\ndata: {source: data.csv, target: level, time: t}\n"
        "prepare:\n  label_features: {lags: [1, 2], windows: [7], relative: true}\n"
        "model: {estimator: sklearn.ensemble.HistGradientBoostingRegressor, params: {max_iter: 50}}\n"
        "validate:\n  split: {method: time, test_size: 0.2}\n  gates: ['rmse <= 1']\n")
    cli("-C", str(project), "run", check=True)
    with Workspace.open(project) as ws:
        mv = ws.registry.champion("rising")
        assert mv is not None and mv.metrics["rmse"] < 1  # the holdout lies above every training label
    with ServerProcess(project) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        first = client.post("/predict", json={"instances": [{"wave": 0.0}]})
        assert first.status_code == 200, first.text
        pid = first.json()["prediction_ids"][0]
        assert client.post("/feedback", json={"prediction_id": pid, "label": 400.0}).status_code == 200
        answer = client.post("/predict", json={"instances": [{"wave": float(np.sin(2 * np.pi / 7))}]})
        assert answer.status_code == 200, answer.text
    # one step of the series after 400.0: about 400.5 plus the wave's step; a tree alone stops near 150
    assert 399.0 < answer.json()["predictions"][0] < 403.0
    with Workspace.open(project) as ws:
        assert ws.predictions.get(answer.json()["prediction_ids"][0]).inputs["label_lag_1"] == 400.0
