"""Issue #12, point 4 (first part): ``tidal export`` writes a bundle, ``tidal serve --bundle`` serves it from
another folder without a workspace, with the same answers as the workspace server; the refusals are one
line and exit 2 with nothing written."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.conftest import _cli
from tests.serve.server import ServerProcess
from tidal.core.entities import ModelState
from tidal.core.errors import TidalError
from tidal.core.hashing import sha256_bytes
from tidal.workspace import Workspace

Cli = Callable[..., Any]


def _rows(project: Path, n: int = 12) -> list[dict[str, Any]]:
    with open(project / "data" / "elec2.csv") as f:
        rows = list(csv.DictReader(f))[-n:]
    return [{k: float(v) for k, v in row.items() if k != "up"} for row in rows]


def _one_line_error(proc: Any, *words: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    for word in words:
        assert word in lines[0], lines[0]


def _same_answers(project: Path, bundle: Path, rows: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """Predict ``rows`` through the workspace server and the bundle server; both answers must agree exactly.
    Returns the bundle server's answer and the id of the prediction it labelled."""
    with ServerProcess(project) as ws_server:
        theirs = httpx.post(f"{ws_server.url}/predict", json={"instances": rows}, timeout=30).json()
    with ServerProcess(bundle, bundle=True, log=bundle.parent / "bundle-server.log") as server:
        ours = httpx.post(f"{server.url}/predict", json={"instances": rows}, timeout=30)
        assert ours.status_code == 200, ours.text
        body = ours.json()
        for key in ("predictions", "probabilities", "model"):
            assert body[key] == theirs[key], key
        pid = body["prediction_ids"][0]
        fed = httpx.post(f"{server.url}/feedback", json={"prediction_id": pid, "label": 1}, timeout=30)
        assert fed.status_code == 200 and fed.json() == {"stored": 1}, fed.text
        model = httpx.get(f"{server.url}/model", timeout=30).json()
        assert (model["name"], model["version"]) == (theirs["model"]["name"], theirs["model"]["version"])
        invoked = httpx.post(f"{server.url}/invocations", json={"dataframe_records": rows[:2]}, timeout=30)
        assert invoked.status_code == 200, invoked.text
    with Workspace.open(bundle / ".tidal-bundle") as private:  # the bundle's own prediction log
        stored = private.predictions.get(pid)
        assert stored.label == 1 and stored.proba == body["probabilities"][0]
    return body, pid


def test_export_then_serve_the_bundle_from_another_folder(small_project: Path, tmp_path: Path) -> None:
    cli = _cli(small_project)
    cli("run", check=True)
    out = tmp_path / "out"
    done = cli("export", "elec2@champion", str(out), check=True)
    assert "tidal serve --bundle" in done.stdout

    files = {p.name for p in out.iterdir()}
    assert files == {"MANIFEST", "model.json", "model.skops", "requirements.txt", "Dockerfile"}
    manifest = dict(reversed(line.split("  ")) for line in (out / "MANIFEST").read_text().splitlines())
    assert set(manifest) == files - {"MANIFEST"}
    for name, digest in manifest.items():
        assert sha256_bytes((out / name).read_bytes()) == digest
    model = json.loads((out / "model.json").read_text())
    with Workspace.open(small_project) as ws:
        mv = ws.models.get("elec2:champion")
        assert model["signature"] == mv.signature.to_dict()
        assert model["profile"] == json.loads(json.dumps(mv.profile, default=str))
        assert model["lineage"] == mv.lineage.to_dict() and model["metrics"] == mv.metrics
        assert (model["name"], model["version"], model["state"]) == ("elec2", mv.version, mv.state.value)
        assert model["artifact"]["sha256"] == mv.artifact_digest == sha256_bytes((out / "model.skops").read_bytes())
        assert (model["flavor"], model["format"], model["task"]) == ("sklearn", "skops", "classification")
    pins = (out / "requirements.txt").read_text().split()
    for dist in ("tidal", "scikit-learn", "skops", "numpy"):
        assert f"{dist}=={metadata.version(dist)}" in pins
    assert not any(p.startswith(("xgboost", "lightgbm", "pytest")) for p in pins)
    docker = (out / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r /bundle/requirements.txt" in docker
    assert '"serve", "--bundle", "/bundle", "--host", "0.0.0.0"' in docker

    moved = tmp_path / "elsewhere" / "bundle"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    _same_answers(small_project, moved, _rows(small_project))


def test_export_and_bundle_refusals(small_project: Path, tmp_path: Path) -> None:
    cli = _cli(small_project)
    cli("run", check=True)
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    _one_line_error(cli("export", "elec2@champion", str(full)), "not an empty folder")
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    for ref, word in (("elec2:7", "no version 7"), ("nope", "no model named"), ("elec2@nope", "no alias")):
        _one_line_error(cli("export", ref, str(tmp_path / "new")), word)
        assert not (tmp_path / "new").exists()

    ok = tmp_path / "ok"
    cli("export", "elec2", str(ok), check=True)  # NAME alone: its champion
    with Workspace.open(small_project) as ws:
        ws.registry.set_state("elec2", 1, ModelState.REJECTED, ["set by the test"])
    _one_line_error(cli("export", "elec2:1", str(tmp_path / "rejected")), "rejected", "set by the test")
    assert not (tmp_path / "rejected").exists()

    for name, change in (("model.skops", b"x"), ("model.json", b" "), ("requirements.txt", b"evil==1\n")):
        bad = tmp_path / f"bad-{name}"
        shutil.copytree(ok, bad)
        with open(bad / name, "ab") as f:
            f.write(change)
        proc = _cli(tmp_path)("serve", "--bundle", str(bad), "--port", "0")
        _one_line_error(proc, name, "modified")
        assert not (bad / ".tidal-bundle").exists()  # refused before anything was made
    (ok / "model.skops").unlink()
    _one_line_error(_cli(tmp_path)("serve", "--bundle", str(ok), "--port", "0"), "model.skops is missing")
    _one_line_error(_cli(tmp_path)("serve", "--bundle", str(tmp_path), "--port", "0"), "not a tidal bundle")


def test_xgboost_bundle_serves_the_same_answers(small_project: Path, tmp_path: Path) -> None:
    pytest.importorskip("xgboost")
    spec = (small_project / "tidal.yaml").read_text()
    start = spec.index("estimator:")
    end = spec.index("\n", spec.index("params:", start))
    spec = spec[:start] + "estimator: xgboost.XGBClassifier\n  params: {n_estimators: 20, max_depth: 3}" + spec[end:]
    (small_project / "tidal.yaml").write_text(spec)
    cli = _cli(small_project)
    cli("run", check=True)
    out = tmp_path / "xgb"
    cli("export", "elec2@champion", str(out), check=True)
    assert json.loads((out / "model.json").read_text())["flavor"] == "xgboost"
    assert f"xgboost=={metadata.version('xgboost')}" in (out / "requirements.txt").read_text().split()
    moved = tmp_path / "there" / "xgb"
    shutil.copytree(out, moved)
    _same_answers(small_project, moved, _rows(small_project))


def test_bundle_keeps_its_version_number_and_its_log(small_project: Path, tmp_path: Path) -> None:
    cli = _cli(small_project)
    cli("run", check=True)
    spec = (small_project / "tidal.yaml").read_text()
    (small_project / "tidal.yaml").write_text(spec.replace("max_iter: 30", "max_iter: 12"))
    cli("run", check=True)
    cli("promote", "elec2", "2", check=True)
    out = tmp_path / "v2"
    cli("export", "elec2:2", str(out), check=True)
    rows = _rows(small_project, 3)
    with Workspace.open(small_project) as ws:
        expected = ws.models.load("elec2:2").predict_proba(pd.DataFrame(rows)).tolist()

    log_dir = tmp_path / "logs"
    root = Workspace.open_bundle(out, log_dir=log_dir)
    assert root == log_dir.resolve() and not (out / ".tidal-bundle").exists()
    with Workspace.open(root) as private:
        champion = private.models.get("elec2:champion")
        assert champion.version == 2 and champion.info["bundle_state"] == "deployed"
        assert [mv.state.value for mv in private.models.list("elec2")] == ["rejected", "deployed"]
        answer = private.predict(rows)
        assert answer.model["version"] == 2
        assert answer.probabilities == expected
        first = answer.prediction_ids[0]
    assert Workspace.open_bundle(out, log_dir=log_dir) == root  # opened again: the same store, its log kept
    with Workspace.open(root) as private:
        assert private.predictions.get(first).proba == expected[0]
        assert len(private.models.list("elec2")) == 2

    other = tmp_path / "other"
    cli("export", "elec2:1", str(other), check=True)
    with pytest.raises(TidalError, match="serves another model"):
        Workspace.open_bundle(other, log_dir=log_dir)
    _one_line_error(_cli(tmp_path)("serve", "-C", str(small_project), "--log-dir", str(log_dir)), "--bundle")
