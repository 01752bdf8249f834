"""The torch flavor (issue #12, point 1): tidal.nn's estimators train in tidal's pipeline with the architecture
given as data, pass ``check_flavor``, give the same bytes for the same seed, log per-epoch curves, keep string
classes, and refuse a non-Module class, an architecture that does not match the weights, a tampered archive
or a missing extra in one line."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load as load_tensors
from sklearn.datasets import load_breast_cancer, load_diabetes

from tests.unit.train.test_booster_flavors import iris_frame
from tidal.core.errors import IntegrityError, TrainingError
from tidal.data.prepare import as_model_input
from tidal.nn import TorchClassifier, TorchRegressor, register_module, registered_modules
from tidal.nn import registry as nn_registry
from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.testing import check_flavor
from tidal.train.estimator import build_estimator
from tidal.train.fit import TrainResult, fit_pipeline
from tidal.train.flavors import accepting_flavor, flavor_for, get_flavor

EPOCHS = 6


class Wide(torch.nn.Module):
    """A user's architecture, importable as ``tests.unit.train.test_torch_flavor.Wide``."""

    def __init__(self, in_features: int, out_features: int, width: int = 8) -> None:
        super().__init__()
        self.first = torch.nn.Linear(in_features, width)
        self.out = torch.nn.Linear(width, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.out(torch.tanh(self.first(x)))
        return out


class NotAModule:
    def __init__(self, in_features: int, out_features: int) -> None: ...


def cancer_frame() -> pd.DataFrame:
    """Breast cancer with its classes as the strings ``malignant`` / ``benign``."""
    data = load_breast_cancer(as_frame=True)
    frame = data.frame.rename(columns=lambda c: c.replace(" ", "_"))
    frame["target"] = [str(data.target_names[i]) for i in data.target]
    return frame


FRAMES = {"cancer": (cancer_frame, "target"), "iris": (iris_frame, "species"),
          "diabetes": (lambda: load_diabetes(as_frame=True).frame, "target")}


def fit(data: str = "cancer", seed: int = 0, **params: Any) -> tuple[TrainResult, pd.DataFrame]:
    frame_of, target = FRAMES[data]
    frame = frame_of()
    columns = [c for c in frame.columns if c != target]
    kinds = {c: "numeric" for c in columns}
    estimator = "tidal.nn.TorchRegressor" if data == "diabetes" else "tidal.nn.TorchClassifier"
    spec = ModelSpec(estimator=estimator, seed=seed,
                     params={"module": "mlp", "module_params": {"hidden": [8]}, "epochs": EPOCHS, **params})
    result = fit_pipeline(frame, target=target, columns=columns, kinds=kinds, prepare=PrepareSpec(), model=spec)
    return result, as_model_input(frame, columns, kinds)


@pytest.mark.parametrize("data", sorted(FRAMES))
def test_each_estimator_passes_check_flavor_with_its_curves(data: str) -> None:
    result, X = fit(data)
    flavor = flavor_for(result.model)
    assert flavor.name == "torch" and flavor.format == "torch-safetensors"
    check_flavor(flavor, result.model, X)
    loaded = flavor.load(flavor.save(result.model))
    assert [name for name, _ in loaded.steps] == ["prepare", "model"]
    classifier = data != "diabetes"
    if classifier:
        np.testing.assert_array_equal(loaded.predict_proba(X), result.model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), result.model.predict(X))
    names = {"curve.train.loss", "curve.valid.loss"} | ({"curve.train.accuracy", "curve.valid.accuracy"}
                                                        if classifier else set())
    assert set(result.curves) == names and all(len(v) == EPOCHS for v in result.curves.values()), result.curves
    assert result.curves["curve.train.loss"][-1] < result.curves["curve.train.loss"][0]
    assert not result.warnings, result.warnings
    net = loaded.named_steps["model"]
    assert isinstance(net.module_, torch.nn.Module) and not net.module_.training  # ready for torch.onnx.export
    assert net.n_features_in_ == X.shape[1]


@pytest.mark.parametrize(("data", "classes"), [("cancer", ["benign", "malignant"]),
                                               ("iris", ["setosa", "versicolor", "virginica"])])
def test_string_classes_come_back_as_strings(data: str, classes: list[str]) -> None:
    result, X = fit(data, epochs=30, lr=0.01)
    flavor = flavor_for(result.model)
    loaded = flavor.load(flavor.save(result.model))
    assert loaded.classes_.tolist() == classes
    frame_of, target = FRAMES[data]
    predicted = loaded.predict(X)
    assert set(predicted.tolist()) <= set(classes)
    assert (predicted == frame_of()[target].to_numpy()).mean() > 0.85
    np.testing.assert_allclose(loaded.predict_proba(X).sum(axis=1), 1.0, atol=1e-12)


def test_the_same_seed_gives_the_same_bytes_and_another_seed_other_bytes() -> None:
    flavor = get_flavor("torch")
    first, again, other = (flavor.save(fit(seed=s, module_params={"hidden": [8], "dropout": 0.2})[0].model)
                           for s in (3, 3, 4))
    assert first == again
    assert first != other
    weights = [zipfile.ZipFile(io.BytesIO(b)).read("weights.safetensors") for b in (first, other)]
    assert weights[0] != weights[1]  # the weights themselves differ, not only the recorded seed


_DIGEST = """
import hashlib
from tests.unit.train.test_torch_flavor import fit
from tidal.train.flavors import get_flavor
print(hashlib.sha256(get_flavor("torch").save(fit(seed=3, module_params={"hidden": [8], "dropout": 0.2})[0].model))
      .hexdigest())
"""


def test_another_process_gives_the_same_bytes() -> None:
    import hashlib

    here = hashlib.sha256(get_flavor("torch").save(fit(seed=3, module_params={"hidden": [8], "dropout": 0.2})[0]
                                                   .model)).hexdigest()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    there = subprocess.run([sys.executable, "-c", _DIGEST], capture_output=True, text=True, env=env, timeout=120,
                           check=True).stdout.strip()
    assert here == there


def test_a_fit_leaves_torch_global_state_as_it_was() -> None:
    torch.manual_seed(1234)
    state, deterministic = torch.get_rng_state(), torch.are_deterministic_algorithms_enabled()
    threads = torch.get_num_threads()
    for n_jobs in (1, 2, -1):
        result, X = fit(epochs=1, n_jobs=n_jobs)
        result.model.predict_proba(X)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.are_deterministic_algorithms_enabled() == deterministic
    assert torch.get_num_threads() == threads


def test_early_stopping_stops_and_keeps_the_best_epoch() -> None:
    result, _ = fit(epochs=300, lr=0.05, early_stopping=True, patience=3)
    net = result.model.named_steps["model"]
    valid = result.curves["curve.valid.loss"]
    assert net.n_epochs_ < 300 and len(valid) == net.n_epochs_ == len(result.curves["curve.train.loss"])
    assert net.best_epoch_ == net.n_epochs_ - 3 and valid[net.best_epoch_ - 1] == min(valid)
    with pytest.raises(TrainingError, match="early_stopping needs validation rows"):
        fit(early_stopping=True, validation_fraction=0.0)


def test_no_validation_rows_gives_the_training_curves_alone() -> None:
    result, _ = fit(validation_fraction=0.0)
    assert set(result.curves) == {"curve.train.loss", "curve.train.accuracy"}


def test_a_registered_architecture_or_an_import_path_trains_and_loads() -> None:
    flavor = get_flavor("torch")
    by_path, X = fit(module="tests.unit.train.test_torch_flavor.Wide", module_params={"width": 4})
    np.testing.assert_array_equal(flavor.load(flavor.save(by_path.model)).predict_proba(X),
                                  by_path.model.predict_proba(X))
    register_module("wide_net", Wide)
    try:
        assert "wide_net" in registered_modules()
        by_name, _ = fit(module="wide_net", module_params={"width": 4})
        data = flavor.save(by_name.model)
        assert flavor.load(data).named_steps["model"].module_.__class__ is Wide
    finally:
        del nn_registry._MODULES["wide_net"]
    # a server that never ran register_module finds the class by the path stored beside the name
    np.testing.assert_array_equal(flavor.load(data).predict_proba(X), by_name.model.predict_proba(X))


@pytest.mark.parametrize(("params", "words"), [
    ({"module": "mlpp"}, "model.params.module: unknown architecture 'mlpp' (registered: cnn, mlp"),
    ({"module": "subprocess.Popen"}, "'subprocess.Popen' is the class subprocess.Popen, not a torch.nn.Module"),
    ({"module": "os.system"}, "'os.system' is a builtin_function_or_method, not a torch.nn.Module subclass"),
    ({"module": "tests.unit.train.test_torch_flavor.NotAModule"}, "not a torch.nn.Module subclass"),
    ({"module": "nowhere.Net"}, "cannot import module 'nowhere'"),
    ({"module_params": {"hidden": [8], "widht": 3}}, "model.params.module_params.widht: architecture 'mlp' has "
                                                      "no parameter 'widht'"),
    ({"module_params": {"hidden": "wide"}}, "model.params.module_params: architecture 'mlp' refused them"),
    ({"module_params": {"in_features": 3}}, "tidal sets in_features from the data"),
    ({"optimizer": "adagrad"}, "model.params.optimizer: unknown optimizer 'adagrad'"),
    ({"epochs": 0}, "model.params.epochs: 0 is not a whole number >= 1"),
    ({"lr": -1}, "model.params.lr: -1 is not a number > 0.0"),
    ({"n_jobs": 0}, "model.params.n_jobs: 0 is not a whole number >= 1"),
])
def test_a_bad_architecture_or_parameter_is_one_line_before_anything_is_called(params: dict[str, Any],
                                                                              words: str) -> None:
    with pytest.raises(TrainingError) as refused:
        fit(**params)
    assert words in str(refused.value) and "\n" not in str(refused.value), str(refused.value)


def test_an_unknown_estimator_parameter_is_refused_when_the_estimator_is_built() -> None:
    with pytest.raises(TrainingError, match="did you mean 'epochs'"):
        build_estimator("tidal.nn.TorchClassifier", {"epoch": 3}, 0)
    assert build_estimator("tidal.nn.TorchRegressor", {}, 7).get_params()["random_state"] == 7
    assert accepting_flavor(TorchClassifier).name == "torch"  # type: ignore[union-attr]
    assert accepting_flavor(TorchRegressor).name == "torch"  # type: ignore[union-attr]
    with pytest.raises(TrainingError, match=r"name tidal\.nn\.TorchClassifier or tidal\.nn\.TorchRegressor"):
        fit_pipeline(cancer_frame(), target="target", columns=["mean_radius"], kinds={"mean_radius": "numeric"},
                     prepare=PrepareSpec(), model=ModelSpec(estimator="tidal.nn.TorchEstimator"))


def _rewrite(data: bytes, **replace: bytes) -> bytes:
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            dst.writestr(name, replace.get(name.replace(".", "_"), src.read(name)))
    return out.getvalue()


def _with_manifest(data: bytes, **changes: Any) -> bytes:
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(data)).read("manifest.json"))
    params = {**manifest["params"], **changes.pop("params", {})}
    return _rewrite(data, manifest_json=json.dumps({**manifest, "params": params, **changes}).encode())


def test_an_architecture_that_does_not_match_the_weights_is_one_line() -> None:
    result, _ = fit()
    flavor = get_flavor("torch")
    data = flavor.save(result.model)
    tensors = load_tensors(zipfile.ZipFile(io.BytesIO(data)).read("weights.safetensors"))
    assert sorted(tensors) == ["net.0.bias", "net.0.weight", "net.2.bias", "net.2.weight"]
    cases: list[tuple[bytes, str]] = [
        (_with_manifest(data, params={"module_params": {"hidden": [16]}}),
         "do not match architecture 'mlp' with module_params {'hidden': [16]}: net.0.weight is [8, 30] in the "
         "file, [16, 30] in the architecture"),
        (_with_manifest(data, params={"module_params": {"hidden": [8, 8]}}), "missing net.4.bias, net.4.weight"),
        (_with_manifest(data, params={"module_params": {"hidden": []}}), "unexpected net.2.bias, net.2.weight"),
        (_with_manifest(data, params={"module_params": {"hidden": [8], "depth": 2}}),
         "the model file's module_params.depth: architecture 'mlp' has no parameter 'depth'"),
        (_with_manifest(data, params={"module": "tests.unit.train.test_torch_flavor.Wide"},
                        architecture="tests.unit.train.test_torch_flavor.Wide"), "has no parameter 'hidden'"),
        (_with_manifest(data, fitted={"n_features_in": 31, "n_outputs": 2, "n_epochs": 1, "best_epoch": 1}),
         "net.0.weight is [8, 30] in the file, [8, 31] in the architecture"),
    ]
    for payload, words in cases:
        with pytest.raises(IntegrityError) as refused:
            flavor.load(payload)
        assert words in str(refused.value) and "\n" not in str(refused.value), str(refused.value)


def test_a_tampered_archive_is_refused_in_one_line() -> None:
    result, _ = fit()
    flavor = get_flavor("torch")
    data = flavor.save(result.model)
    hostile = "subprocess.Popen"
    cases: list[tuple[bytes, str]] = [
        (b"not a zip", "not a valid"),
        (_with_manifest(data, estimator=hostile), "names estimator 'subprocess.Popen'"),
        (_with_manifest(data, params={"module": hostile}, architecture=hostile), "not a torch.nn.Module subclass"),
        (_with_manifest(data, params={"module": "os.system"}, architecture="os.system"),
         "not a torch.nn.Module subclass"),
        (_with_manifest(data, params={"module": "never_registered"}, architecture=None),
         "unknown architecture 'never_registered'"),
        (_with_manifest(data, params={"module_params": {"hidden": [8], "activation": "nope"}}),
         "cannot be built with its module_params"),
        (_with_manifest(data, classes={"dtype": "O", "values": [{"__reduce__": "os.system"}]}), "classes"),
        (_with_manifest(data, classes={"dtype": "<U9", "values": ["a", "b", "c"]}), "3 classes for a network of 2"),
        (_with_manifest(data, dtype="float64"), "float32"),
        (_rewrite(data, weights_safetensors=b"garbage"), "weights cannot be read"),
    ]
    for payload, words in cases:
        with pytest.raises(IntegrityError) as refused:
            flavor.load(payload)
        assert words in str(refused.value) and "\n" not in str(refused.value), str(refused.value)


def test_a_missing_extra_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    result, _ = fit(epochs=1)
    data = get_flavor("torch").save(result.model)
    monkeypatch.setitem(sys.modules, "torch", None)  # as if the extra were not installed
    with pytest.raises(TrainingError) as refused:
        fit(epochs=1)
    assert str(refused.value) == ("model.estimator tidal.nn.TorchClassifier needs the torch extra: "
                                  "pip install 'tidal[torch]'")
    with pytest.raises(TrainingError, match=r"needs the torch extra") as on_load:
        get_flavor("torch").load(data)
    assert "\n" not in str(on_load.value)


_WITHOUT_TORCH = """
import sys


class Blocked:  # as if the torch extra were not installed (sys.modules["torch"] = None would trip scipy)
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "safetensors"):
            raise ImportError(f"No module named {name!r}")


sys.meta_path.insert(0, Blocked())
import numpy as np, pandas as pd
import tidal
from tidal.nn import TorchClassifier
from tidal.spec.model import ModelSpec, PrepareSpec
from tidal.train.fit import fit_pipeline
from tidal.train.flavors import flavor_for
from tidal.core.errors import TrainingError
rng = np.random.default_rng(0)
frame = pd.DataFrame({"a": rng.normal(size=80), "b": rng.normal(size=80)})
frame["y"] = np.where(frame["a"] + frame["b"] > 0, "up", "down")
kinds = {"a": "numeric", "b": "numeric"}
for estimator, params in [("sklearn.linear_model.LogisticRegression", {}),
                          ("xgboost.XGBClassifier", {"n_estimators": 3})]:
    result = fit_pipeline(frame, target="y", columns=["a", "b"], kinds=kinds, prepare=PrepareSpec(),
                          model=ModelSpec(estimator=estimator, params=params))
    flavor = flavor_for(result.model)
    assert flavor.load(flavor.save(result.model)).predict(frame[["a", "b"]]).tolist() == \\
        result.model.predict(frame[["a", "b"]]).tolist()
    print(flavor.name)
try:
    fit_pipeline(frame, target="y", columns=["a", "b"], kinds=kinds, prepare=PrepareSpec(),
                 model=ModelSpec(estimator="tidal.nn.TorchClassifier"))
except TrainingError as exc:
    print(exc)
try:
    TorchClassifier().fit(frame[["a", "b"]], frame["y"])
except TrainingError as exc:
    print(exc)
print(sorted(m for m in sys.modules if m.startswith("tidal.nn")))
"""


def test_tidal_and_the_other_flavors_work_without_torch() -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run([sys.executable, "-c", _WITHOUT_TORCH], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "sklearn", "xgboost",
        "model.estimator tidal.nn.TorchClassifier needs the torch extra: pip install 'tidal[torch]'",
        "tidal.nn.TorchClassifier needs the torch extra: pip install 'tidal[torch]'",
        "['tidal.nn', 'tidal.nn.estimators', 'tidal.nn.registry']"], proc.stdout
