"""The built-in ``cnn`` of tidal.nn (issue #13, point 3): its shapes, the image shape it takes from the
``prepare.images`` step (and keeps in the stored model), the same bytes for the same seed, ``device``, the
refusals in one line, and the per-epoch curves of scikit-learn's MLP under the epoch table's names."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from sklearn.neural_network import MLPClassifier, MLPRegressor

from tests.images_data import digits, picks
from tests.unit.train.test_torch_flavor import cancer_frame
from tidal.core.errors import TrainingError
from tidal.data.prepare import as_model_input
from tidal.nn import TorchClassifier
from tidal.nn.cnn import CNN
from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.testing import check_flavor
from tidal.train.estimator import iteration_curves
from tidal.train.fit import TrainResult, fit_pipeline
from tidal.train.flavors import flavor_for

CURVES = {"curve.train.loss", "curve.train.accuracy", "curve.valid.loss", "curve.valid.accuracy"}


def digits_frame(per_class: int = 8) -> pd.DataFrame:
    """Real digits as PNG bytes in an ``image`` column (what a snapshot of class folders holds)."""
    images, labels = digits()
    rows = []
    for i in picks(per_class):
        buf = io.BytesIO()
        Image.fromarray(images[i]).save(buf, format="PNG")
        rows.append({"image": buf.getvalue(), "digit": int(labels[i])})
    return pd.DataFrame(rows)


def fit_cnn(seed: int = 0, frame: pd.DataFrame | None = None, **params: Any) -> tuple[TrainResult, pd.DataFrame]:
    frame = digits_frame() if frame is None else frame
    kinds = {"image": "image"}
    spec = ModelSpec(estimator="tidal.nn.TorchClassifier", seed=seed,
                     params={"module": "cnn", "module_params": {"channels": [4, 8], "hidden": 16}, "epochs": 3,
                             "lr": 0.01, "batch_size": 16, **params})
    result = fit_pipeline(frame, target="digit", columns=["image"], kinds=kinds, prepare=PrepareSpec(), model=spec)
    return result, as_model_input(frame, ["image"], kinds)


@pytest.mark.parametrize(("shape", "channels", "kernel"), [((1, 8, 8), [16, 32], 3), ((3, 12, 10), [4], 5),
                                                           ((1, 1, 1), [2, 2], 1), ((2, 5, 7), [3, 3, 3], 2)])
def test_the_cnn_takes_rows_of_any_image_shape_and_gives_one_output_each(shape: tuple[int, int, int],
                                                                         channels: list[int], kernel: int) -> None:
    c, h, w = shape
    net = CNN(in_features=c * h * w, out_features=4, input_shape=list(shape), channels=channels, kernel=kernel,
              hidden=8, dropout=0.1)
    out = net(torch.zeros(5, c * h * w))
    assert out.shape == (5, 4)
    assert sum(isinstance(m, torch.nn.Conv2d) for m in net.modules()) == len(channels)


@pytest.mark.parametrize(("kwargs", "words"), [
    ({"input_shape": [1, 8, 8], "kernel": 9}, "kernel 9 is larger than the 8x8 image"),
    ({"input_shape": [1, 4, 4]}, "input_shape 1x4x4 holds 16 numbers, but the rows have 64"),
    ({"input_shape": [1, 8, 8], "channels": []}, "channels must be a list of positive channel counts"),
    ({"input_shape": [8, 8]}, "input_shape must be (channels, height, width)"),
])
def test_the_cnn_refuses_sizes_that_do_not_fit(kwargs: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as caught:
        CNN(in_features=64, out_features=10, **kwargs)
    assert words in str(caught.value)


def test_a_cnn_learns_the_shape_from_prepare_passes_check_flavor_and_loads_with_it() -> None:
    result, X = fit_cnn()
    net = result.model.named_steps["model"]
    assert net.input_shape == [1, 8, 8] and isinstance(net.module_, CNN)
    flavor = flavor_for(result.model)
    assert flavor.name == "torch"
    check_flavor(flavor, result.model, X)
    loaded = flavor.load(flavor.save(result.model))
    assert loaded.named_steps["model"].input_shape == [1, 8, 8]
    np.testing.assert_array_equal(loaded.predict_proba(X), result.model.predict_proba(X))
    assert set(result.curves) == CURVES and all(len(v) == 3 for v in result.curves.values())
    assert result.curves["curve.train.loss"][-1] < result.curves["curve.train.loss"][0]


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() -> None:
    first, _ = fit_cnn(seed=1)
    flavor = flavor_for(first.model)
    again, other = fit_cnn(seed=1)[0], fit_cnn(seed=2)[0]
    assert flavor.save(first.model) == flavor.save(again.model)
    assert flavor.save(first.model) != flavor.save(other.model)


def test_device_cpu_and_auto_train_on_the_cpu_and_store_cpu_weights() -> None:
    cpu, _ = fit_cnn(device="cpu")
    assert next(cpu.model.named_steps["model"].module_.parameters()).device.type == "cpu"
    if not torch.cuda.is_available():  # auto is the CPU here: the same weights as cpu
        auto, _ = fit_cnn(device="auto")
        want = cpu.model.named_steps["model"].module_.state_dict()
        got = auto.model.named_steps["model"].module_.state_dict()
        assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
        with pytest.raises(TrainingError, match=r"model\.params\.device: cuda, and torch sees no GPU"):
            fit_cnn(device="cuda")
    with pytest.raises(TrainingError, match=r"model\.params\.device: unknown device 'tpu'"):
        fit_cnn(device="tpu")


@pytest.mark.parametrize(("params", "words"), [
    ({"epochs": 0}, "model.params.epochs: 0 is not a whole number >= 1"),
    ({"epochs": -3}, "model.params.epochs: -3 is not a whole number >= 1"),
    ({"batch_size": 0}, "model.params.batch_size: 0 is not a whole number >= 1"),
    ({"module_params": {"kernel": 9}}, "architecture 'cnn' refused them: kernel 9 is larger than the 8x8 image"),
    ({"module_params": {"input_shape": [1, 8, 8]}}, "model.params.module_params.input_shape: tidal sets input_shape"),
    ({"input_shape": "1x8x8"}, "model.params.input_shape: '1x8x8' is not [channels, height, width]"),
])
def test_bad_training_params_are_one_line(params: dict[str, Any], words: str) -> None:
    with pytest.raises(TrainingError) as caught:
        fit_cnn(**params)
    assert words in caught.value.message and "\n" not in caught.value.message


def test_a_cnn_on_rows_that_are_not_images_is_refused_in_one_line() -> None:
    frame = cancer_frame().head(60)
    columns = [c for c in frame.columns if c != "target"]
    spec = ModelSpec(estimator="tidal.nn.TorchClassifier", seed=0, params={"module": "cnn", "epochs": 1})
    with pytest.raises(TrainingError, match=r"architecture 'cnn' needs images, and this data has no image shape"):
        fit_pipeline(frame, target="target", columns=columns, kinds=dict.fromkeys(columns, "numeric"),
                     prepare=PrepareSpec(), model=spec)
    X = np.zeros((20, 64), dtype=np.float32)  # given by hand, the shape makes plain rows images
    net = TorchClassifier(module="cnn", input_shape=[1, 8, 8], epochs=1, random_state=0).fit(X, np.arange(20) % 2)
    assert net.predict(X).shape == (20,)


def test_each_epoch_is_reported_to_a_listener_and_the_step_printer_draws_it() -> None:
    from rich.console import Console

    from tidal.cli.render import StepPrinter
    from tidal.core.entities import StepRecord, StepStatus
    from tidal.core.progress import listening

    console = Console(record=True, force_terminal=True, width=100)
    printer = StepPrinter(console, explain=False)
    heard: list[tuple[str, int, int]] = []

    def both(what: str, done: int, total: int) -> None:
        heard.append((what, done, total))
        printer.progress(what, done, total)

    printer(StepRecord(run_id="r", name="train", status=StepStatus.RUNNING))
    with listening(both):
        fit_cnn()
    printer.close()
    assert heard == [("epoch", 1, 3), ("epoch", 2, 3), ("epoch", 3, 3)]
    fit_cnn()  # nobody listening: nothing heard, nothing fails
    assert len(heard) == 3


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_scikit_learns_mlp_logs_its_epochs_under_the_tables_names() -> None:
    X, y = np.random.default_rng(0).normal(size=(120, 4)), np.arange(120) % 2
    clf = MLPClassifier(hidden_layer_sizes=(4,), max_iter=15, early_stopping=True, random_state=0,
                        n_iter_no_change=50).fit(X, y)
    curves = iteration_curves(clf)
    assert set(curves) == {"curve.loss", "curve.valid.accuracy"}
    assert curves["curve.valid.accuracy"] == [float(v) for v in clf.validation_scores_]
    reg = MLPRegressor(hidden_layer_sizes=(4,), max_iter=15, early_stopping=True, random_state=0,
                       n_iter_no_change=50).fit(X, X[:, 0])
    assert set(iteration_curves(reg)) == {"curve.loss", "curve.validation_score"}  # R², not an accuracy


def test_the_cnn_example_in_docs_images_parses_and_builds() -> None:
    from pathlib import Path

    from tidal.spec import parse_spec
    from tidal.train.estimator import build_estimator

    doc = (Path(__file__).resolve().parents[3] / "docs" / "images.md").read_text()
    spec = parse_spec(doc.split("```yaml\n")[2].split("```")[0])
    assert spec.model.params["module"] == "cnn" and spec.prepare.images is not None
    net = build_estimator(spec.model.estimator, spec.model.params, spec.model.seed)
    net.check_params()
    assert net.device == "auto" and net.random_state == 0
