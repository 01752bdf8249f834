"""`tidal run` trains tidal.nn's built-in cnn on real digits in PNG class folders (issue #13, point 3): the
image shape comes from the prepare step, the version is registered once its stored form predicts the
holdout as the trained network did, the epoch table is printed after training and by `tidal runs show`
(every point in `--json`), and bad training input is refused in one line with nothing registered."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.e2e.refusals import fails
from tests.e2e.test_booster_flavors import _project as _table_project
from tests.images_data import digits_spec, write_folders
from tests.unit.train.test_torch_flavor import cancer_frame
from tidal import Workspace
from tidal.data.prepare import as_model_input

Cli = Callable[..., subprocess.CompletedProcess[str]]
EPOCHS = 3

SPEC = digits_spec(model="  estimator: tidal.nn.TorchClassifier\n  params: %s\n", checks=None,
                   gates="[accuracy >= 0.5]")
PARAMS = f"{{module: cnn, module_params: {{channels: [16, 32], kernel: 3, hidden: 64}}, epochs: {EPOCHS}, " \
         "lr: 0.01, batch_size: 16, device: cpu}"


def _project(root: Path, params: str) -> Path:
    write_folders(root / "data" / "train", per_class=24)
    (root / "tidal.yaml").write_text(SPEC % params)
    return root


def _table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip("│ ").split(" ")[0] in {str(e) for e in
                                                                                    range(1, EPOCHS + 1)}]


def test_a_cnn_on_digit_images_trains_shows_its_epochs_and_registers(tmp_path: Path, cli: Cli) -> None:
    project = _project(tmp_path, PARAMS)
    run = cli("run", check=True)
    assert "epochs (3" in run.stdout, run.stdout
    header = next(line for line in run.stdout.splitlines() if "Epoch" in line)
    for heading in ("Loss", "Accuracy", "Val loss", "Val accuracy"):
        assert heading in header
    assert len(_table_rows(run.stdout)) == EPOCHS and "deployed" in run.stdout

    with Workspace.open(project) as ws:
        mv = ws.registry.champion("digits")
        assert mv is not None and mv.state.value == "deployed", mv  # validated: served = validated held
        model = ws.registry.load(mv)  # through the torch flavor, as a server loads it
        run_id = mv.run_id
    net = model.named_steps["model"]
    assert net.input_shape == [1, 8, 8] and type(net.module_).__name__ == "CNN"
    files = sorted((project / "data" / "train").glob("*/*.png"))
    frame = pd.DataFrame({"image": [f.read_bytes() for f in files]})
    labels = np.array([f.parent.name for f in files], dtype=object)  # the class folders name the classes
    predicted = model.predict(as_model_input(frame, ["image"], {"image": "image"}))
    assert (predicted == labels).mean() >= 0.5

    shown = cli("runs", "show", run_id[:12], check=True).stdout
    assert "Val accuracy" in shown and len(_table_rows(shown)) == EPOCHS
    data = json.loads(cli("runs", "show", run_id[:12], "--json", check=True).stdout)
    assert {k: len(v) for k, v in data["curves"].items()} == {
        "curve.train.accuracy": EPOCHS, "curve.train.loss": EPOCHS, "curve.valid.accuracy": EPOCHS,
        "curve.valid.loss": EPOCHS}
    assert data["curves"]["curve.train.loss"][-1] < data["curves"]["curve.train.loss"][0]


def test_scikit_learns_mlp_shows_the_epochs_it_measured(tmp_path: Path, cli: Cli) -> None:
    project = _project(tmp_path, "{}")
    spec = (project / "tidal.yaml").read_text().replace(
        "estimator: tidal.nn.TorchClassifier\n  params: {}",
        "estimator: sklearn.neural_network.MLPClassifier\n"
        "  params: {hidden_layer_sizes: [32], max_iter: 12, learning_rate_init: 0.01, early_stopping: true, "
        "n_iter_no_change: 50}")
    (project / "tidal.yaml").write_text(spec)
    out = cli("run", check=True).stdout
    header = next(line for line in out.splitlines() if "Epoch" in line)
    assert "Loss" in header and "Val accuracy" in header and "Val loss" not in header, out
    assert "Accuracy" not in header.replace("Val accuracy", "")  # scikit-learn does not measure it
    assert "epochs (12, best" in out


BAD = [
    ("{module: cnn, epochs: 0}", "model.params.epochs: 0 is not a whole number >= 1"),
    ("{module: cnn, epochs: -2}", "model.params.epochs: -2 is not a whole number >= 1"),
    ("{module: cnn, batch_size: 0}", "model.params.batch_size: 0 is not a whole number >= 1"),
    ("{module: cnn, module_params: {kernel: 9}}", "kernel 9 is larger than the 8x8 image"),
    ("{module: nowhere.Net, epochs: 1}", "cannot import module 'nowhere'"),  # a user's module path that fails
    ("{module: cnn, batch_size: -64}", "model.params.batch_size: -64 is not a whole number >= 1"),
    ("{module: cnn, batch_size: 1.5}", "model.params.batch_size: 1.5 is not a whole number >= 1"),
]


@pytest.mark.parametrize(("params", "words"), BAD)
def test_bad_training_input_is_one_line_with_nothing_registered(tmp_path: Path, params: str, words: str,
                                                                capfd: pytest.CaptureFixture[str]) -> None:
    from tidal.cli.main import main  # in this process: one import of torch for every refusal

    project = _project(tmp_path, params)
    capfd.readouterr()
    code = main(["-C", str(project), "run"])
    out, err = capfd.readouterr()
    fails(subprocess.CompletedProcess(["tidal", "run"], code, out, err), words)
    with Workspace.open(project) as ws:
        assert ws.registry.list("digits") == []


def test_a_cnn_on_a_table_is_one_line_with_nothing_registered(tmp_path: Path,
                                                              capfd: pytest.CaptureFixture[str]) -> None:
    from tidal.cli.main import main

    project = _table_project(tmp_path / "p", cancer_frame().head(120), name="net", target="target",
                             estimator="tidal.nn.TorchClassifier", params="{module: cnn, epochs: 2}", gate="")
    capfd.readouterr()
    code = main(["-C", str(project), "run"])
    out, err = capfd.readouterr()
    fails(subprocess.CompletedProcess(["tidal", "run"], code, out, err),
          "architecture 'cnn' needs images, and this data has no image shape")
    with Workspace.open(project) as ws:
        assert ws.registry.list("net") == []


def test_a_batch_larger_than_the_training_rows_is_one_batch_of_them_all(tmp_path: Path,
                                                                        capfd: pytest.CaptureFixture[str]) -> None:
    """batch_size is clamped, not refused: a batch never holds more than the training rows (already in
    memory), so 100,000 on 180 training images trains on one batch of them all each epoch."""
    from tidal.cli.main import main

    project = _project(tmp_path, "{module: cnn, epochs: 2, batch_size: 100000, device: cpu}")
    capfd.readouterr()
    code = main(["-C", str(project), "run"])  # two steps of gradient descent: trained, then gated out (3)
    out = capfd.readouterr().out
    assert code == 3 and "epochs (2" in out and "Traceback" not in out, out
    with Workspace.open(project) as ws:
        assert [(m.version, m.state.value) for m in ws.registry.list("digits")] == [(1, "rejected")]
