"""Hostile model files are refused before anything in them runs; every model tidal trains still loads.

The gallery (tests/unit/train/hostile_models.py) holds real skops files whose functions, gadgets or
constructors write a target file when the model is built or used. Each is refused by the sklearn flavor,
by ``Workspace.models.load`` and by the server's load path (``load_state``), stored with its correct
digest; the target never appears and no prediction is attempted.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.preprocessing import FunctionTransformer

from tests.unit.train.hostile_models import X, gallery, injected, pipeline
from tidal import Workspace
from tidal.core.entities import ModelState, ModelVersion
from tidal.core.errors import IntegrityError, UntrustedModel
from tidal.core.signature import Signature
from tidal.data.prepare import as_model_input
from tidal.spec.model import ModelSpec
from tidal.train.fit import fit_pipeline
from tidal.train.flavors import get_flavor
from tidal.train.flavors.skops_trust import trusted_class

NAMES = sorted(gallery(Path("T")))
# Gallery entries that really write the target when skops is told to trust what they name.
WRITERS = [
    "FunctionTransformer(numpy._core._methods._dump, file=T)",
    "FunctionTransformer(sklearn.datasets.dump_svmlight_file, f=T)",
    "FunctionTransformer(operator.methodcaller('tofile', T))",
    "FunctionTransformer(functools.partial(numpy.save, T))",
    "LossNode constructor os.system('touch T')",
    "ConstructorFromReduceNode subprocess.Popen(['touch', T])",
    "ConstructorFromReduceNode numpy.memmap(T, mode='w+')",
    "dict key type builtins.exec(...)",
]


@dataclass
class Gallery:
    target: Path
    files: dict[str, bytes]

    def written(self) -> list[str]:
        return sorted(p.name for p in self.target.parent.iterdir() if p.name.startswith(self.target.name))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Gallery:
    folder = tmp_path_factory.mktemp("hostile")
    return Gallery(folder / "pwned", gallery(folder / "pwned"))


def test_the_gallery_is_hostile(tmp_path: Path) -> None:
    """Trusting what the files name (what a prefix allow-list did for numpy.*/sklearn.*) runs them."""
    for i, name in enumerate(WRITERS):
        target = tmp_path / str(i) / "pwned"
        target.parent.mkdir()
        data = gallery(target)[name]
        with contextlib.suppress(Exception):  # many gadgets break the prediction after doing their harm
            sio.loads(data, trusted=sio.get_untrusted_types(data=data)).predict(X)
        deadline = time.monotonic() + 10  # Popen's touch runs beside the test
        while not any(p.name.startswith("pwned") for p in target.parent.iterdir()):
            assert time.monotonic() < deadline, name
            time.sleep(0.02)


@pytest.mark.parametrize("name", NAMES)
def test_the_flavor_refuses_each_hostile_file(hostile: Gallery, name: str) -> None:
    with pytest.raises(UntrustedModel, match="refused before anything in it was built") as caught:
        get_flavor("sklearn").load(hostile.files[name])
    assert caught.value.refused, name
    for refused in caught.value.refused:
        assert refused in str(caught.value)
    assert hostile.written() == []


def test_refusals_name_what_and_why() -> None:
    files = gallery(Path("/nonexistent/pwned"))
    flavor = get_flavor("sklearn")
    cases = {
        "FunctionTransformer(numpy._core._methods._dump, file=T)": "numpy._core._methods._dump (a function",
        "FunctionTransformer(sklearn.datasets.dump_svmlight_file, f=T)":
            "sklearn.datasets._svmlight_format_io.dump_svmlight_file (a function",
        "FunctionTransformer(operator.methodcaller('tofile', T))": "operator.methodcaller (an operator gadget",
        "FunctionTransformer(functools.partial(numpy.save, T))": "functools.partial (functools.partial, which",
        "FunctionTransformer(bound method StandardScaler.transform)":
            "sklearn.preprocessing._data.StandardScaler.transform (a bound method",
        "ConstructorFromReduceNode numpy.memmap(T, mode='w+')": "numpy.memmap (opens files or URLs)",
        "ConstructorFromReduceNode subprocess.Popen(['touch', T])": "subprocess.Popen (not a class tidal loads",
        "LossNode constructor os.system('touch T')": "os.system (a function or other callable, not a class",
        "Generator whose bit generator is numpy.random.seed": "numpy.random.seed (called to build a random gen",
    }
    for name, needle in cases.items():
        with pytest.raises(UntrustedModel) as caught:
            flavor.load(files[name])
        assert needle in str(caught.value), (name, str(caught.value))


def test_a_module_named_by_the_file_is_never_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    marker = tmp_path / "imported"
    (tmp_path / "tidal_test_evil_module.py").write_text(f"open({str(marker)!r}, 'w').close()\nclass Gadget: pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    data = injected({"__class__": "Gadget", "__module__": "tidal_test_evil_module", "__loader__": "ObjectNode"})
    with pytest.raises(UntrustedModel, match=r"tidal_test_evil_module\.Gadget"):
        get_flavor("sklearn").load(data)
    assert not marker.exists() and "tidal_test_evil_module" not in sys.modules


def test_functions_are_never_trusted_not_even_numpy_ufuncs() -> None:
    data = sio.dumps(pipeline(FunctionTransformer(func=np.log1p).fit(X)))  # skops itself trusts ufuncs
    with pytest.raises(UntrustedModel, match=r"numpy\.log1p"):
        get_flavor("sklearn").load(data)
    for name in ("numpy.save", "numpy.load", "numpy.memmap", "sklearn.datasets._svmlight_format_io.dump_svmlight_file",
                 "sklearn.utils.estimator_checks.check_estimator", "sklearn.base.clone", "scipy.sparse.save_npz",
                 "builtins.eval", "subprocess.Popen", "os.system", "sklearn.base.BaseEstimator.fit"):
        assert trusted_class(name) is None, name
    assert trusted_class("sklearn.linear_model._logistic.LogisticRegression") is not None
    assert trusted_class("sklearn.tree._tree.Tree") is not None
    assert trusted_class("numpy.random._generator.Generator") is not None


def test_the_identity_function_transformer_loads() -> None:
    """ColumnTransformer's passthrough is FunctionTransformer(func=None): no function, so it loads."""
    model = pipeline()
    loaded = get_flavor("sklearn").load(get_flavor("sklearn").save(model))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_a_garbled_node_is_refused_not_a_traceback() -> None:
    data = injected({"__class__": ["x"], "__module__": None, "__loader__": "ObjectNode"})
    with pytest.raises(UntrustedModel, match="malformed"):
        get_flavor("sklearn").load(data)
    with pytest.raises(IntegrityError, match="not a valid skops archive"):
        get_flavor("sklearn").load(b"PK\x03\x04 not really a zip")


# -- every model tidal trains still loads --------------------------------------------------------------

ESTIMATORS = [
    ("sklearn.ensemble.HistGradientBoostingClassifier", {"max_iter": 10}, "y3"),
    ("sklearn.ensemble.HistGradientBoostingRegressor", {"max_iter": 10, "loss": "quantile", "quantile": 0.3}, "r"),
    ("sklearn.ensemble.RandomForestClassifier", {"n_estimators": 5}, "y"),
    ("sklearn.ensemble.GradientBoostingClassifier", {"n_estimators": 5}, "y3"),
    ("sklearn.ensemble.GradientBoostingRegressor", {"n_estimators": 5, "loss": "huber"}, "r"),
    ("sklearn.linear_model.LogisticRegression", {}, "y"),
    ("sklearn.linear_model.SGDClassifier", {}, "y"),
    ("sklearn.neural_network.MLPClassifier", {"max_iter": 30}, "y"),
    ("sklearn.neighbors.KNeighborsClassifier", {"algorithm": "ball_tree"}, "y"),
    ("sklearn.neighbors.KNeighborsRegressor", {"algorithm": "kd_tree"}, "r"),
    ("sklearn.svm.SVC", {"probability": True}, "y"),
]
PREPARES = [
    SimpleNamespace(impute=SimpleNamespace(numeric="median", categorical="most_frequent"), scale="standard",
                    encode="onehot"),
    SimpleNamespace(impute=SimpleNamespace(numeric="zero", categorical="constant"), scale="minmax", encode="ordinal"),
    SimpleNamespace(impute=SimpleNamespace(numeric="mean", categorical="constant"), scale="none", encode="onehot"),
]
KINDS = {"a": "numeric", "b": "integer", "c": "categorical"}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=200), "b": rng.integers(0, 5, 200), "c": rng.choice(list("xyz"), 200)})
    df.loc[::17, "a"] = np.nan
    df.loc[::19, "c"] = None
    df["y"] = (df["a"].fillna(0) + (df["c"] == "x") > 0).astype(int)
    df["y3"] = rng.integers(0, 3, 200)
    df["r"] = df["a"].fillna(0) * 2 + rng.normal(size=200)
    return df


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(("estimator", "params", "target"), ESTIMATORS,
                         ids=[e[0].rsplit(".", 1)[1] for e in ESTIMATORS])
def test_models_tidal_trains_load_and_predict_identically(frame: pd.DataFrame, estimator: str,
                                                          params: dict[str, Any], target: str) -> None:
    prepare = PREPARES[ESTIMATORS.index((estimator, params, target)) % len(PREPARES)]
    fitted = fit_pipeline(frame, target=target, columns=list(KINDS), kinds=KINDS, prepare=prepare,
                          model=ModelSpec(estimator=estimator, params=params, seed=0))
    flavor = get_flavor("sklearn")
    data = flavor.save(fitted.model)
    assert flavor.save(fitted.model) == data  # still byte-reproducible
    loaded = flavor.load(data)
    rows = as_model_input(frame, list(KINDS), KINDS)
    np.testing.assert_array_equal(loaded.predict(rows), fitted.model.predict(rows))
    if hasattr(fitted.model, "predict_proba"):
        np.testing.assert_array_equal(loaded.predict_proba(rows), fitted.model.predict_proba(rows))


# -- through the workspace and the server's load path ------------------------------------------------


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory, hostile: Gallery) -> Iterator[tuple[Workspace, dict]]:
    """A project whose registry holds every hostile file as a version, stored under its true digest."""
    root = tmp_path_factory.mktemp("ws") / "hostile"
    (root / "data").mkdir(parents=True)
    pd.DataFrame({"x0": X[:, 0], "x1": X[:, 1], "y": (X[:, 0] > 0).astype(int)}).to_csv(root / "data" / "d.csv",
                                                                                       index=False)
    (root / "tidal.yaml").write_text("version: 1\nname: hostile\ndata: {source: data/d.csv, target: y}\n"
                                     "model: {estimator: sklearn.linear_model.LogisticRegression}\n")
    with Workspace.open(root) as ws:
        versions = {}
        for name, data in hostile.files.items():
            mv = ws.registry.register(ModelVersion(
                name="hostile", version=0, state=ModelState.VALIDATED, created_at=ws.clock.now(), run_id="hostile",
                artifact_digest=ws.artifacts.put(data), format="skops", task="classification",
                signature=Signature(columns={"x0": "numeric", "x1": "numeric"}, target="y", classes=[0, 1]),
                profile={}, info={"flavor": "sklearn"}), reason="a hostile file, for the test")
            versions[name] = mv
        yield ws, versions


@pytest.mark.parametrize("name", NAMES)
def test_workspace_and_server_load_refuse_each_hostile_file(workspace: tuple[Workspace, dict], hostile: Gallery,
                                                            name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tidal.predict import state

    ws, versions = workspace
    mv = versions[name]
    predicted: list[Any] = []
    monkeypatch.setattr(state, "build_predictor", lambda *a, **k: predicted.append(a))  # must never be reached
    with pytest.raises(UntrustedModel):
        ws.models.load(f"hostile:{mv.version}")
    with pytest.raises(UntrustedModel):
        state.load_state(ws.registry, mv, now=ws.clock.now())
    assert predicted == [] and hostile.written() == []
