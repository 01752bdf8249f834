"""Issue #12, point 4 (ONNX): ``tidal export --format onnx`` converts scikit-learn, XGBoost and LightGBM
pipelines (the prepare step included) and checks the ONNX form on the holdout; ``tidal serve --bundle``
serves it with onnxruntime, and ``deploy.runtime: onnx`` makes the workspace server do the same. Answers
agree with the native model within the tolerance (labels equal); what cannot be converted, a form outside
the tolerance and a missing onnx extra are one line, exit 2, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.conftest import _cli
from tests.serve.server import ServerProcess
from tidal.core.errors import TidalError
from tidal.core.hashing import sha256_bytes
from tidal.data.prepare import as_model_input
from tidal.train.fit import predict_frame
from tidal.train.flavors import get_flavor
from tidal.train.onnx import CannotConvert
from tidal.workspace import Workspace

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")

TOLERANCE = 1e-5


def _frame(n: int = 240) -> pd.DataFrame:
    """Numeric, integer and categorical inputs with missing values; string labels and a numeric target."""
    rng = np.random.default_rng(7)
    a = rng.normal(size=n)
    b = rng.integers(0, 6, n)
    c = rng.choice(["red", "green", "blue"], n)
    frame = pd.DataFrame({"a": a, "b": b, "c": c})
    frame.loc[::9, "a"] = np.nan
    frame.loc[::13, "c"] = None
    score = np.nan_to_num(a) + 0.4 * (c == "red") - 0.1 * b + rng.normal(scale=0.3, size=n)
    frame["label"] = np.where(score > -0.2, "yes", "no")
    frame["amount"] = 3 * np.nan_to_num(a) + b + rng.normal(scale=0.1, size=n)
    return frame


def _project(root: Path, *, estimator: str, params: str = "{}", target: str = "label", scale: str = "standard",
             deploy: str = "") -> Path:
    (root / "data").mkdir(parents=True)
    frame = _frame()
    frame.drop(columns=["amount" if target == "label" else "label"]).to_csv(root / "data" / "rows.csv", index=False)
    (root / "tidal.yaml").write_text(f"""version: 1
name: shop
data: {{source: data/rows.csv, target: {target}}}
prepare: {{scale: {scale}}}
model:
  estimator: {estimator}
  params: {params}
  seed: 0
validate:
  split: {{method: random, test_size: 0.25}}
  gates: []
deploy: {{reload_seconds: 0.2{deploy}}}
""")
    return root


def _rows(n: int = 8) -> list[dict[str, Any]]:
    rows = _frame().drop(columns=["label", "amount"]).head(n).to_dict(orient="records")
    return [{k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()} for row in rows]


def _one_line_error(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for word in words:
        assert word in lines[0], lines[0]


def _close(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Same labels, probabilities within the tolerance, same model."""
    assert ours["predictions"] == theirs["predictions"]
    assert ours["model"] == theirs["model"]
    if "probabilities" in theirs:
        gap = np.abs(np.array(ours["probabilities"]) - np.array(theirs["probabilities"]))
        assert gap.shape == (len(theirs["predictions"]), 2) and gap.max() <= TOLERANCE


def test_sklearn_onnx_bundle_serves_what_the_workspace_serves(tmp_path: Path) -> None:
    project = _project(tmp_path / "p", estimator="sklearn.linear_model.LogisticRegression")
    cli = _cli(project)
    cli("run", check=True)
    out = tmp_path / "out"
    done = cli("export", "shop@champion", str(out), "--format", "onnx", check=True)
    assert "ONNX parity on" in done.stdout and "labels differ" in done.stdout, done.stdout
    assert {p.name for p in out.iterdir()} == {"MANIFEST", "model.json", "model.onnx", "requirements.txt",
                                               "Dockerfile"}
    model = json.loads((out / "model.json").read_text())
    assert (model["flavor"], model["format"], model["serve"]["deploy"]["runtime"]) == ("onnx", "onnx", "onnx")
    assert model["artifact"]["sha256"] == sha256_bytes((out / "model.onnx").read_bytes())
    parity = model["onnx"]
    assert parity["passed"] and parity["labels_differ"] == 0 and parity["compared"] == "probabilities"
    assert 0 <= parity["max_difference"] <= TOLERANCE and parity["tolerance"] == TOLERANCE
    with Workspace.open(project) as ws:
        mv = ws.models.get("shop:champion")
        assert parity["rows"] == 60 and parity["converted_from"]["sha256"] == mv.artifact_digest
    assert any(p.startswith("onnxruntime==") for p in (out / "requirements.txt").read_text().split())
    again = tmp_path / "again"
    cli("export", "shop", str(again), "--format", "onnx", check=True)
    assert (again / "model.onnx").read_bytes() == (out / "model.onnx").read_bytes()  # deterministic bytes

    moved = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    rows = _rows()
    with ServerProcess(project) as ws_server:
        theirs = httpx.post(f"{ws_server.url}/predict", json={"instances": rows}, timeout=30).json()
    with ServerProcess(moved, bundle=True, log=tmp_path / "bundle-server.log") as server:
        answer = httpx.post(f"{server.url}/predict", json={"instances": rows}, timeout=30)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        _close(body, theirs)
        info = httpx.get(f"{server.url}/model", timeout=30).json()
        assert info["serving"]["path"] == "generic"
        pid = body["prediction_ids"][0]
        fed = httpx.post(f"{server.url}/feedback", json={"prediction_id": pid, "label": "yes"}, timeout=30)
        assert fed.status_code == 200 and fed.json() == {"stored": 1}, fed.text
    with Workspace.open(moved / ".tidal-bundle") as private:
        assert private.predictions.get(pid).label == "yes"


CASES = {
    # estimator: (params, target, scale)
    "sklearn.ensemble.RandomForestClassifier": ("{n_estimators: 15, max_depth: 4}", "label", "standard"),
    "lightgbm.LGBMClassifier": ("{n_estimators: 20, verbose: -1}", "label", "standard"),
    "lightgbm.LGBMRegressor": ("{n_estimators: 20, verbose: -1}", "amount", "standard"),
    "sklearn.linear_model.Ridge": ("{}", "amount", "minmax"),
    # XGBoost splits at float32 training values (the integer column, scaled, lands exactly on them): passes
    # only because the graph computes prepare in float64, as scikit-learn does (tidal.train.onnx.graphs)
    "xgboost.XGBClassifier": ("{n_estimators: 20, max_depth: 3}", "label", "standard"),
    "xgboost.XGBRegressor": ("{n_estimators: 20, max_depth: 3}", "amount", "standard"),
    # torch: prepare through skl2onnx, the network through torch.onnx, softmax / the target's scale after it
    "tidal.nn.TorchClassifier": ("{module: mlp, module_params: {hidden: [8]}, epochs: 3}", "label", "standard"),
    "tidal.nn.TorchRegressor": ("{module: mlp, module_params: {hidden: [8]}, epochs: 3}", "amount", "standard"),
}
FLAVOR_OF = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm", "tidal": "torch"}


@pytest.mark.parametrize("estimator", sorted(CASES))
def test_each_flavor_exports_within_the_tolerance(estimator: str, tmp_path: Path) -> None:
    pytest.importorskip("torch" if estimator.startswith("tidal.nn") else estimator.split(".")[0])
    params, target, scale = CASES[estimator]
    project = _project(tmp_path / "p", estimator=estimator, params=params, target=target, scale=scale)
    with Workspace.open(project) as ws:
        ws.run()
        ws.export("shop", tmp_path / "out", format="onnx")
        mv = ws.models.get("shop:champion")
        native = ws.models.load("shop:champion")
    model = json.loads((tmp_path / "out" / "model.json").read_text())
    parity = model["onnx"]
    assert parity["passed"] and parity["max_difference"] <= TOLERANCE and parity["labels_differ"] == 0, parity
    assert parity["converted_from"]["flavor"] == FLAVOR_OF[estimator.split(".")[0]]
    assert parity["compared"] == ("probabilities" if target == "label" else "predictions")
    # the bundle's graph, loaded as the bundle server loads it, answers as the native model does
    onnx = get_flavor("onnx").load((tmp_path / "out" / "model.onnx").read_bytes())
    X = as_model_input(_frame().head(40), mv.signature.names, dict(mv.signature.columns))
    (pred, proba), (pred2, proba2) = predict_frame(native, X), predict_frame(onnx, X)
    assert pred.tolist() == pred2.tolist() if target == "label" else np.allclose(pred, pred2, atol=1e-4)
    if proba is not None:
        assert proba2 is not None and float(np.abs(proba - proba2).max()) <= TOLERANCE


def test_refusals_are_one_line_and_write_nothing(tmp_path: Path) -> None:
    lr = _project(tmp_path / "lr", estimator="sklearn.linear_model.LogisticRegression")
    with Workspace.open(lr) as ws:
        ws.run()
        with pytest.raises(TidalError, match="unknown export format 'pmml'"):
            ws.export("shop", tmp_path / "fmt", format="pmml")
    assert not (tmp_path / "fmt").exists()
    # float32 arithmetic is never bit-exact: a tolerance of 0 refuses the form, saying by how much it differs
    proc = _cli(lr)("export", "shop", str(tmp_path / "zero"), "--format", "onnx", "--tolerance", "0")
    _one_line_error(proc, "ONNX form of shop:1 differs", "largest probabilities difference", "tolerance 0")
    assert not (tmp_path / "zero").exists()

    # no onnx extra: a stand-in onnxruntime that cannot be imported
    blocked = tmp_path / "blocked" / "onnxruntime"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('not installed')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked.parent), os.environ.get("PYTHONPATH", "")]),
           "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "tidal", "export", "shop", str(tmp_path / "noextra"), "--format",
                           "onnx"], cwd=lr, capture_output=True, text=True, env=env, timeout=300)
    _one_line_error(proc, "onnx extra", "pip install 'tidal[onnx]'")
    assert not (tmp_path / "noextra").exists()

    # an estimator skl2onnx has no converter for: export names the step
    nc = _project(tmp_path / "nc", estimator="sklearn.neighbors.NearestCentroid")
    with Workspace.open(nc) as ws:
        ws.run()
        with pytest.raises(CannotConvert, match=r"^cannot convert step 'model' \(NearestCentroid\) to ONNX"):
            ws.export("shop", tmp_path / "nc-out", format="onnx")
    assert not (tmp_path / "nc-out").exists()


def test_under_runtime_onnx_an_unconvertible_model_is_rejected(tmp_path: Path) -> None:
    """served = validated: under deploy.runtime onnx the ONNX form is what would serve, so a model without
    one never passes (the gate step says why) and is never promoted."""
    nc = _project(tmp_path / "nc", estimator="sklearn.neighbors.NearestCentroid", deploy=", runtime: onnx")
    with Workspace.open(nc) as ws:
        ws.run()
        mv = ws.models.get("shop:1")
        assert mv.state.value == "rejected" and ws.registry.champion("shop") is None
        assert mv.reasons[0].startswith("served = validated: deploy.runtime is onnx, and cannot convert step "
                                        "'model' (NearestCentroid)"), mv.reasons


def test_deploy_runtime_onnx_serves_the_onnx_form(tmp_path: Path) -> None:
    pytest.importorskip("lightgbm")
    project = _project(tmp_path / "p", estimator="lightgbm.LGBMClassifier", params="{n_estimators: 20, verbose: -1}",
                       deploy=", runtime: onnx")
    rows = _rows()
    with Workspace.open(project) as ws:
        ws.run()
        mv = ws.models.get("shop:champion")
        stored = mv.info["onnx"]  # made and checked at registration, stored beside the model
        assert stored["passed"] and stored["max_difference"] <= TOLERANCE and stored["rows"] == 60
        assert get_flavor("onnx").load(ws.artifacts.get(stored["artifact"])).flavor == "lightgbm"
        native = ws.models.load("shop:champion")
        frame = pd.DataFrame(rows)
        pred, proba = predict_frame(native, as_model_input(frame, mv.signature.names, dict(mv.signature.columns)))
        sdk = ws.predict(rows)  # the SDK serves the same form as the server
    with ServerProcess(project) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        info = client.get("/model").json()
        assert info["serving"]["runtime"] == "onnx", info["serving"]
        answer = client.post("/predict", json={"instances": rows})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["predictions"] == pred.tolist() == list(sdk.predictions)
        assert proba is not None and np.abs(np.array(body["probabilities"]) - proba).max() <= TOLERANCE
        assert body["probabilities"] == [list(p) for p in sdk.probabilities or []]
        fed = client.post("/feedback", json={"prediction_id": body["prediction_ids"][0], "label": "no"})
        assert fed.status_code == 200 and fed.json() == {"stored": 1}, fed.text
        # hot swap: a new champion (trained on fewer rows) serves its own ONNX form without a restart
        data = project / "data" / "rows.csv"
        pd.read_csv(data).head(200).to_csv(data, index=False)
        with Workspace.open(project) as ws:
            ws.run()
            assert ws.models.get("shop:champion").version == 2
        deadline = time.monotonic() + 60
        while client.get("/model").json()["version"] != 2:
            assert time.monotonic() < deadline, "the server did not swap to version 2"
            time.sleep(0.2)
        swapped = client.post("/predict", json={"instances": rows}).json()
        assert swapped["model"] == {"name": "shop", "version": 2}
        assert client.get("/model").json()["serving"]["runtime"] == "onnx"


def test_switching_to_runtime_onnx_converts_the_current_champion_at_load(tmp_path: Path) -> None:
    """A version registered under the native runtime has no stored ONNX form: once the project says
    deploy.runtime: onnx, it is converted and checked on its holdout when it loads, no retrain needed."""
    project = _project(tmp_path / "p", estimator="sklearn.linear_model.LogisticRegression")
    rows = _rows()
    with Workspace.open(project) as ws:
        ws.run()
        native = ws.predict(rows)
        assert "onnx" not in ws.models.get("shop:champion").info
    spec = project / "tidal.yaml"
    spec.write_text(spec.read_text().replace("reload_seconds: 0.2", "reload_seconds: 0.2, runtime: onnx"))
    with Workspace.open(project) as ws:
        onnx = ws.predict(rows)
    assert onnx.predictions == native.predictions and onnx.model == native.model
    gap = np.abs(np.array(onnx.probabilities) - np.array(native.probabilities))
    assert 0 < gap.max() <= TOLERANCE  # float32 arithmetic: not the native numbers, within the tolerance


def test_column_names_the_converter_rewrites_still_feed_the_graph(tmp_path: Path) -> None:
    """skl2onnx renames inputs that are not identifiers ("mean radius" → "mean_radius"): the runtime feeds each
    signature column to the graph input made for it, whatever it is called there."""
    project = _project(tmp_path / "p", estimator="sklearn.linear_model.LogisticRegression")
    rows_csv = project / "data" / "rows.csv"
    frame = pd.read_csv(rows_csv).rename(columns={"a": "mean radius", "b": "worst (area)", "c": "colour-name"})
    frame.to_csv(rows_csv, index=False)
    with Workspace.open(project) as ws:
        ws.run()
        ws.export("shop", tmp_path / "out", format="onnx")
        mv = ws.models.get("shop:champion")
        native = ws.models.load("shop:champion")
    parity = json.loads((tmp_path / "out" / "model.json").read_text())["onnx"]
    assert parity["passed"] and parity["labels_differ"] == 0, parity
    onnx = get_flavor("onnx").load((tmp_path / "out" / "model.onnx").read_bytes())
    X = as_model_input(frame.head(40), mv.signature.names, dict(mv.signature.columns))
    (pred, proba), (pred2, proba2) = predict_frame(native, X), predict_frame(onnx, X)
    assert pred.tolist() == pred2.tolist()
    assert proba is not None and proba2 is not None and float(np.abs(proba - proba2).max()) <= TOLERANCE


def test_a_network_without_prepare_converts_from_its_columns() -> None:
    """A TorchClassifier fitted on a bare matrix (as Workspace.models.register takes it) converts too: the
    graph takes the signature's numeric columns, concatenated in order."""
    pytest.importorskip("torch")
    from tidal.core.signature import Signature
    from tidal.nn import TorchClassifier
    from tidal.train.onnx import check_parity, convert, load_onnx

    frame = _frame().dropna()
    X = frame[["a", "b"]].astype(float)
    net = TorchClassifier(module="mlp", module_params={"hidden": [6]}, epochs=3, random_state=0).fit(
        X.to_numpy(), frame["label"].to_numpy())
    signature = Signature(columns={"a": "numeric", "b": "integer"}, target="label",
                          classes=net.classes_.tolist(), task="classification")
    data = convert(net, signature, flavor="torch", task="classification")
    assert convert(net, signature, flavor="torch", task="classification") == data  # the same bytes again
    parity = check_parity(net, load_onnx(data), X)
    assert parity.passed and parity.labels_differ == 0 and parity.max_difference < 1e-6, parity
    wrong = Signature(columns={"a": "numeric", "c": "categorical"}, task="classification")
    with pytest.raises(CannotConvert, match=r"cannot convert step 'model' .*not all numeric"):
        convert(net, wrong, flavor="torch", task="classification")
