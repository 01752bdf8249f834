"""XGBoost and LightGBM models through the whole loop (issue #12, points 1 and 2): `tidal run` trains each
of XGBClassifier, XGBRegressor, LGBMClassifier and LGBMRegressor on real data (Elec2, iris with its class
names as strings, diabetes), registers it validated once its stored form predicts the holdout exactly as
the trained model did, and a real `tidal serve` answers `/predict` in the usual shape, logs the answer and
takes `/feedback`; a champion of one flavor hot-swaps to one of the other."""

from __future__ import annotations

import gzip
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from tests.conftest import ELEC2
from tests.serve.server import ServerProcess
from tests.unit.train.test_booster_flavors import iris_frame
from tidal import Workspace


def _project(root: Path, frame: pd.DataFrame, *, name: str, target: str, estimator: str, params: str,
             split: str = "random", gate: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    frame.to_csv(root / "data" / "rows.csv", index=False)
    (root / "tidal.yaml").write_text(f"""version: 1
name: {name}
data: {{source: data/rows.csv, target: {target}}}
model:
  estimator: {estimator}
  params: {params}
  seed: 0
validate:
  split: {{method: {split}, test_size: 0.25}}
  gates: [{gate}]
deploy: {{reload_seconds: 0.2}}
""")
    return root


def elec2_frame(rows: int = 3000) -> pd.DataFrame:
    with gzip.open(ELEC2 / "data" / "elec2.csv.gz") as f:
        return pd.read_csv(f, nrows=rows)


def diabetes_frame() -> pd.DataFrame:
    return load_diabetes(as_frame=True).frame


CASES: dict[str, tuple[Callable[[], pd.DataFrame], str, str, str, str]] = {
    # estimator: (data, target, params, split, gate)
    "xgboost.XGBClassifier": (iris_frame, "species", "{n_estimators: 20, max_depth: 3}", "random",
                              "accuracy >= 0.8"),
    "lightgbm.LGBMClassifier": (elec2_frame, "up", "{n_estimators: 40, verbose: -1}", "time", "accuracy >= 0.6"),
    "xgboost.XGBRegressor": (diabetes_frame, "target", "{n_estimators: 30, max_depth: 3}", "random", ""),
    "lightgbm.LGBMRegressor": (diabetes_frame, "target", "{n_estimators: 30, verbose: -1}", "random", ""),
}


@pytest.mark.parametrize("estimator", sorted(CASES))
def test_run_serve_predict_and_feedback(estimator: str, tmp_path: Path, cli: Callable[..., Any]) -> None:
    data, target, params, split, gate = CASES[estimator]
    frame = data()
    project = _project(tmp_path / "p", frame, name="boost", target=target, estimator=estimator, params=params,
                       split=split, gate=gate)
    cli("-C", str(project), "run", check=True)
    flavor = estimator.split(".")[0]
    with Workspace.open(project) as ws:
        mv = ws.registry.champion("boost")
        assert mv is not None and mv.state.value == "deployed", mv  # validated, then champion: deployed
        assert mv.info["flavor"] == flavor and mv.format == {"xgboost": "xgboost-ubj",
                                                             "lightgbm": "lightgbm-text"}[flavor]
        keys = {m.key for m in ws.store.get_metrics(mv.run_id)}
        assert any(k.startswith("curve.train.") for k in keys), keys
    rows = frame.drop(columns=[target]).tail(3).to_dict(orient="records")
    classifier = "Classifier" in estimator
    with ServerProcess(project) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        info = client.get("/model").json()
        assert info["version"] == 1
        # the fast path, one call into the booster per request (tidal.predict.boosters)
        assert info["serving"]["path"] == "fast" and info["serving"]["booster"].startswith(flavor), info["serving"]
        answer = client.post("/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert set(body) == ({"predictions", "probabilities", "prediction_ids", "model"} if classifier
                             else {"predictions", "prediction_ids", "model"})
        assert len(body["predictions"]) == len(body["prediction_ids"]) == 3
        assert body["model"] == {"name": "boost", "version": 1}
        label = frame[target].tolist()[-1]
        if classifier:
            classes = mv.signature.classes
            assert classes is not None and all(p in classes for p in body["predictions"])
            assert all(abs(sum(p) - 1) < 1e-6 for p in body["probabilities"])
        fed = client.post("/feedback", json={"prediction_id": body["prediction_ids"][-1], "label": label})
        assert fed.status_code == 200, fed.text
    with Workspace.open(project) as ws:
        stored = ws.predictions.get(body["prediction_ids"][-1])
        assert stored.version == 1 and stored.output == body["predictions"][-1] and stored.label == label
        # the SDK gives the server's answers: the same code loads and runs the model
        assert ws.predict(rows).predictions == body["predictions"]


def test_string_classes_are_served_as_strings_and_a_champion_hot_swaps_across_flavors(
        tmp_path: Path, cli: Callable[..., Any]) -> None:
    frame = iris_frame()
    project = _project(tmp_path / "iris", frame, name="iris", target="species", estimator="xgboost.XGBClassifier",
                       params="{n_estimators: 20, max_depth: 3}", gate="accuracy >= 0.8")
    cli("-C", str(project), "run", check=True)
    row = frame.drop(columns=["species"]).iloc[0].to_dict()
    with ServerProcess(project) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        first = client.post("/predict", json={"instances": [row]}).json()
        assert first["predictions"] == ["setosa"] and first["model"]["version"] == 1
        assert client.post("/feedback", json={"prediction_id": first["prediction_ids"][0],
                                              "label": "setosa"}).status_code == 200
        spec = (project / "tidal.yaml").read_text()
        (project / "tidal.yaml").write_text(spec.replace("xgboost.XGBClassifier", "lightgbm.LGBMClassifier").replace(
            "{n_estimators: 20, max_depth: 3}", "{n_estimators: 20, min_child_samples: 5, verbose: -1}"))
        cli("-C", str(project), "run", check=True)
        deadline, version = time.monotonic() + 15, 1
        while version == 1 and time.monotonic() < deadline:
            answer = client.post("/predict", json={"instances": [row]}).json()
            version = answer["model"]["version"]
            time.sleep(0.1)
        assert version == 2 and answer["predictions"] == ["setosa"], answer
    with Workspace.open(project) as ws:
        assert ws.registry.champion("iris").info["flavor"] == "lightgbm"  # type: ignore[union-attr]


def test_a_missing_extra_stops_tidal_run_in_one_line_with_nothing_registered(small_project: Path) -> None:
    import os
    import subprocess
    import sys

    spec = (small_project / "tidal.yaml").read_text()
    (small_project / "tidal.yaml").write_text(spec.replace("sklearn.ensemble.HistGradientBoostingClassifier",
                                                           "xgboost.XGBClassifier").replace("max_iter", "n_estimators"))
    code = ("import sys; sys.modules['xgboost'] = None  # as if the extra were not installed\n"
            "from tidal.cli.main import main; sys.exit(main(['-C', sys.argv[1], 'run']))")
    proc = subprocess.run([sys.executable, "-c", code, str(small_project)], capture_output=True, text=True,
                          env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]
    assert errors == ["error: model.estimator xgboost.XGBClassifier needs the xgboost extra: "
                      "pip install 'tidal[xgboost]'"], proc.stdout + proc.stderr
    with Workspace.open(small_project) as ws:
        assert ws.registry.list("elec2") == []
