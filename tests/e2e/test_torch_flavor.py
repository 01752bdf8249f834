"""PyTorch models through the whole loop (issue #12, points 1 and 2): `tidal run` trains a
tidal.nn.TorchClassifier (breast cancer, its classes as strings) and a TorchRegressor (diabetes) whose
architecture is data in tidal.yaml, logs per-epoch curves, registers the version validated once its stored
form (safetensors weights, JSON manifest) predicts the holdout exactly as the trained network did, and a real
`tidal serve` answers `/predict` in the usual shape, logs the answer, takes `/feedback` and hot-swaps to a
retrained network. A bad architecture in the spec stops `tidal run` in one line, with nothing registered."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from sklearn.datasets import load_diabetes

from tests.e2e.refusals import fails
from tests.e2e.test_booster_flavors import _project
from tests.serve.server import ServerProcess
from tests.unit.train.test_torch_flavor import cancer_frame
from tidal import Workspace

EPOCHS = 8
CURVES = {"curve.train.loss", "curve.valid.loss", "curve.train.accuracy", "curve.valid.accuracy"}


def _torch_project(root: Path, frame: pd.DataFrame, *, target: str, estimator: str, params: str,
                   gate: str = "") -> Path:
    return _project(root, frame, name="net", target=target, estimator=estimator, params=params, gate=gate)


def _steps(ws: Workspace, run_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for metric in ws.store.get_metrics(run_id):
        if metric.key.startswith("curve."):
            counts[metric.key] = counts.get(metric.key, 0) + 1
    return counts


def _serve_and_feed(project: Path, rows: list[dict[str, Any]], label: Any, classifier: bool,
                    then: Callable[[httpx.Client], None] | None = None) -> dict[str, Any]:
    with ServerProcess(project) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/model").json()["version"] == 1
        answer = client.post("/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert set(body) == ({"predictions", "probabilities", "prediction_ids", "model"} if classifier
                             else {"predictions", "prediction_ids", "model"})
        assert len(body["predictions"]) == len(body["prediction_ids"]) == len(rows)
        assert body["model"] == {"name": "net", "version": 1}
        if classifier:
            assert set(body["predictions"]) <= {"benign", "malignant"}
            assert all(abs(sum(p) - 1) < 1e-9 for p in body["probabilities"])
        fed = client.post("/feedback", json={"prediction_id": body["prediction_ids"][-1], "label": label})
        assert fed.status_code == 200, fed.text
        bad = client.post("/predict", json={"instances": [{"nope": 1}]})
        assert bad.status_code == 422 and set(bad.json()) == {"error"}, bad.text
        if then is not None:
            then(client)
    with Workspace.open(project) as ws:
        stored = ws.predictions.get(body["prediction_ids"][-1])
        assert stored.version == 1 and stored.output == body["predictions"][-1] and stored.label == label
        assert ws.predict(rows).predictions == body["predictions"]  # the SDK loads and runs the same network
    return body


def test_a_torch_classifier_runs_serves_takes_feedback_and_hot_swaps(tmp_path: Path,
                                                                     cli: Callable[..., Any]) -> None:
    frame = cancer_frame()
    params = f"{{module: mlp, module_params: {{hidden: [16]}}, epochs: {EPOCHS}, lr: 0.01}}"
    project = _torch_project(tmp_path / "p", frame, target="target", estimator="tidal.nn.TorchClassifier",
                             params=params, gate="accuracy >= 0.85")
    cli("-C", str(project), "run", check=True)
    with Workspace.open(project) as ws:
        mv = ws.registry.champion("net")
        assert mv is not None and mv.state.value == "deployed", mv  # validated (served = validated), champion
        assert mv.info["flavor"] == "torch" and mv.format == "torch-safetensors"
        assert mv.signature.classes == ["benign", "malignant"]
        assert _steps(ws, mv.run_id) == dict.fromkeys(CURVES, EPOCHS)
    rows = frame.drop(columns=["target"]).tail(3).to_dict(orient="records")

    def retrain(client: httpx.Client) -> None:  # a retrained network replaces the champion in the running server
        spec = (project / "tidal.yaml").read_text()
        (project / "tidal.yaml").write_text(spec.replace(f"epochs: {EPOCHS}", f"epochs: {EPOCHS + 2}"))
        cli("-C", str(project), "run", check=True)
        deadline, answer = time.monotonic() + 15, {"model": {"version": 1}}
        while answer["model"]["version"] == 1 and time.monotonic() < deadline:
            answer = client.post("/predict", json={"instances": rows[:1]}).json()
            time.sleep(0.1)
        assert answer["model"]["version"] == 2 and answer["predictions"][0] in {"benign", "malignant"}, answer

    _serve_and_feed(project, rows, frame["target"].tolist()[-1], classifier=True, then=retrain)


def test_a_torch_regressor_runs_and_serves(tmp_path: Path, cli: Callable[..., Any]) -> None:
    frame = load_diabetes(as_frame=True).frame
    project = _torch_project(tmp_path / "r", frame, target="target", estimator="tidal.nn.TorchRegressor",
                             params=f"{{module_params: {{hidden: [8], activation: tanh}}, epochs: {EPOCHS}}}")
    cli("-C", str(project), "run", check=True)
    with Workspace.open(project) as ws:
        mv = ws.registry.champion("net")
        assert mv is not None and mv.info["flavor"] == "torch" and mv.state.value == "deployed"
        assert _steps(ws, mv.run_id) == {"curve.train.loss": EPOCHS, "curve.valid.loss": EPOCHS}
        ws.export("net@champion", tmp_path / "bundle")  # a bundle pins what loading the network needs
        lines = (tmp_path / "bundle" / "requirements.txt").read_text().split()
        pinned = [line.split("==")[0] for line in lines]
        assert {"torch", "safetensors"} <= set(pinned), pinned
        assert not any("+" in line for line in lines), lines  # torch's "+cpu" label: no public index has it
    rows = frame.drop(columns=["target"]).head(2).to_dict(orient="records")
    body = _serve_and_feed(project, rows, float(frame["target"].iloc[1]), classifier=False)
    assert all(isinstance(p, float) for p in body["predictions"])


BAD = [
    ("{module: resnet9000}", "model.params.module: unknown architecture 'resnet9000' (registered: cnn, mlp)"),
    ("{module: subprocess.Popen}", "not a torch.nn.Module subclass; tidal never calls it"),
    ("{module_params: {hiden: [8]}}", "model.params.module_params.hiden: architecture 'mlp' has no parameter "
                                      "'hiden'"),
    ("{module_params: {hidden: [-3]}}", "model.params.module_params: architecture 'mlp' refused them: hidden must "
                                        "be a list of positive layer widths"),
]


def test_a_bad_architecture_stops_tidal_run_in_one_line_with_nothing_registered(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from tidal.cli.main import main  # in this process: one import of torch for the four refusals

    for i, (params, words) in enumerate(BAD):
        project = _torch_project(tmp_path / f"bad{i}", cancer_frame().head(120), target="target",
                                 estimator="tidal.nn.TorchClassifier", params=params)
        capfd.readouterr()
        code = main(["-C", str(project), "run"])
        out, err = capfd.readouterr()
        fails(subprocess.CompletedProcess(["tidal", "run"], code, out, err), words)
        with Workspace.open(project) as ws:
            assert ws.registry.list("net") == []
