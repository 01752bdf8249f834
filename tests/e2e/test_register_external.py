"""Bring your own model (issue #12, point 4b): `Workspace.models.register` takes a model fitted in the user's
own code (a scikit-learn Pipeline, a bare XGBoost classifier, a LightGBM regressor, on real public data
sets), stores its data as a snapshot, gates it, checks served = validated, and records it with a run and
the lineage "trained outside tidal"; a real `tidal serve` then answers as the model in memory does and takes
feedback. Bad input is one line, with nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

from tests.serve.server import ServerProcess
from tidal import Workspace
from tidal.core.entities import ModelState
from tidal.core.errors import DataError, PluginNotFound, RegistryError, TidalError, TrainingError
from tidal.loop.external import ORIGIN


def _project(root: Path, frame: pd.DataFrame, *, name: str, target: str, gates: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    frame.to_csv(root / "rows.csv", index=False)
    (root / "tidal.yaml").write_text(f"""version: 1
name: {name}
data: {{source: rows.csv, target: {target}}}
model: {{estimator: sklearn.linear_model.LogisticRegression}}
validate: {{gates: [{gates}]}}
deploy: {{reload_seconds: 0.2}}
""")
    return root


def _cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Breast cancer (569 rows), split in the user's code: rows to fit on, rows to score on."""
    frame = load_breast_cancer(as_frame=True).frame.sample(frac=1.0, random_state=0).reset_index(drop=True)
    return frame.iloc[:400].reset_index(drop=True), frame.iloc[400:].reset_index(drop=True)


def _sklearn_pipeline() -> tuple[Any, pd.DataFrame, str]:
    """A scikit-learn Pipeline with its own preprocessing, over a numeric and a text column."""
    train, scored = _cancer()
    for part in (train, scored):
        part["size"] = np.where(part["mean area"] > 700, "large", "small")
    X = train.drop(columns=["target"])
    numeric = [c for c in X.columns if c != "size"]
    model = Pipeline([("prep", ColumnTransformer([("num", StandardScaler(), numeric),
                                                  ("cat", OneHotEncoder(handle_unknown="ignore"), ["size"])])),
                      ("clf", LogisticRegression(max_iter=2000))]).fit(X, train["target"])
    return model, scored, "target"


def _xgboost_classifier() -> tuple[Any, pd.DataFrame, str]:
    train, scored = _cancer()
    model = xgb.XGBClassifier(n_estimators=30, max_depth=3, tree_method="hist", max_bin=64)
    return model.fit(train.drop(columns=["target"]), train["target"]), scored, "target"


def _lightgbm_regressor() -> tuple[Any, pd.DataFrame, str]:
    frame = load_diabetes(as_frame=True).frame
    train, scored = frame.iloc[:320], frame.iloc[320:].reset_index(drop=True)
    model = lgb.LGBMRegressor(n_estimators=30, num_leaves=7, verbose=-1)
    return model.fit(train.drop(columns=["target"]), train["target"]), scored, "target"


CASES: dict[str, Callable[[], tuple[Any, pd.DataFrame, str]]] = {
    "sklearn": _sklearn_pipeline, "xgboost": _xgboost_classifier, "lightgbm": _lightgbm_regressor}


@pytest.mark.parametrize("flavor", sorted(CASES))
def test_register_serve_predict_and_feedback(flavor: str, tmp_path: Path, cli: Callable[..., Any]) -> None:
    model, scored, target = CASES[flavor]()
    project = _project(tmp_path / flavor, scored, name="byom", target=target)
    with Workspace.open(project) as ws:
        mv = ws.models.register(model, name="byom", data=scored, promote=True)
        assert mv.state is ModelState.DEPLOYED and mv.version == 1 and not mv.reasons, mv
        assert mv.info["flavor"] == flavor and mv.lineage.extra["origin"] == ORIGIN == "trained outside tidal"
        assert mv.signature.names == [c for c in scored.columns if c != target]
        assert mv.lineage.snapshot is not None and mv.lineage.holdout == mv.lineage.snapshot
        snap = ws.store.get_snapshot(mv.lineage.snapshot)
        assert snap.rows == len(scored)
        # the run that registered it: params are the model's own, metrics the scored rows'
        run = ws.runs.get(mv.run_id)
        assert run.run.trigger == "register" and run.run.info["model"]["version"] == 1
        assert run.run.info["origin"] == ORIGIN and run.run.info["snapshot"] == snap.digest
        if flavor == "xgboost":
            assert run.params["max_bin"] == "64" and run.params["tree_method"] == "hist"
            assert mv.lineage.params["max_bin"] == 64 and mv.lineage.estimator == "xgboost.sklearn.XGBClassifier"
        metric = "accuracy" if flavor != "lightgbm" else "rmse"
        assert f"validation.{metric}" in {m.key for m in run.metrics} and metric in mv.metrics
    shown = cli("-C", str(project), "models", "show", "byom:1", check=True).stdout
    assert "trained outside tidal" in shown and f"snapshot {snap.digest[:12]}" in shown, shown
    rows = scored.drop(columns=[target]).head(5)
    want = model.predict(rows)
    with ServerProcess(project) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        answer = client.post("/predict", json={"instances": rows.to_dict(orient="records")})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model"] == {"name": "byom", "version": 1}
        assert body["predictions"] == want.tolist()  # the model in memory, in the user's process
        if flavor != "lightgbm":
            np.testing.assert_allclose(body["probabilities"], model.predict_proba(rows), rtol=0, atol=1e-12)
        label = scored[target].iloc[0].item()
        fed = client.post("/feedback", json={"prediction_id": body["prediction_ids"][0], "label": label})
        assert fed.status_code == 200, fed.text
    with Workspace.open(project) as ws:
        stored = ws.predictions.get(body["prediction_ids"][0])
        assert stored.version == 1 and stored.label == label


@pytest.fixture
def cancer_project(tmp_path: Path) -> Path:
    _, scored = _cancer()
    return _project(tmp_path / "bc", scored, name="bc", target="target", gates="accuracy >= champion - 0.01")


def test_the_gate_compares_with_the_champion_on_the_given_rows(cancer_project: Path) -> None:
    model, scored, _ = _xgboost_classifier()
    with Workspace.open(cancer_project) as ws:
        first = ws.models.register(model, name="bc", data=scored, promote=True)
        assert first.state is ModelState.DEPLOYED
        X = scored.drop(columns=["target"])
        weak = DummyClassifier(strategy="constant", constant=0).fit(X, scored["target"])
        second = ws.models.register(weak, name="bc", data=scored, promote=True)
        assert second.state is ModelState.REJECTED, second
        assert second.reasons[0].startswith("accuracy 0.385 >= champion 0.976"), second.reasons
        champion = ws.registry.champion("bc")
        assert champion is not None and champion.version == 1
        gate = second.info["gate"]
        assert gate["champion"]["label"] == "bc:1" and gate["champion"]["metrics"]["accuracy"] == \
            pytest.approx(first.metrics["accuracy"])
        # the rows given by snapshot digest and by file: the same snapshot
        third = ws.models.register(model, name="bc", data=first.lineage.snapshot or "")
        path = cancer_project / "scored.csv"
        scored.to_csv(path, index=False)
        fourth = ws.models.register(model, name="bc", data=path)
        assert third.lineage.snapshot == first.lineage.snapshot and fourth.state is ModelState.VALIDATED


def test_a_model_that_does_not_serve_as_validated_is_rejected_and_never_promoted(cancer_project: Path,
                                                                                 cli: Callable[..., Any]) -> None:
    train, scored = _cancer()
    # numpy.log1p is a function: its flavor stores it, but the server would refuse to load it
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=2000))
    model.fit(train.drop(columns=["target"]), train["target"])
    with Workspace.open(cancer_project) as ws:
        mv = ws.models.register(model, name="bc", data=scored, promote=True)
        assert mv.state is ModelState.REJECTED and ws.registry.champion("bc") is None
        assert mv.reasons and mv.reasons[0].startswith("served = validated: the stored model cannot be loaded"), \
            mv.reasons
        failed = [e for e in ws.models.history(mv) if e.kind == "gate.failed"]
        assert failed and "numpy.log1p" in failed[0].message
    shown = cli("-C", str(cancer_project), "models", "show", "bc:1", check=True).stdout
    assert "rejected" in shown and "served = validated" in shown


def _listing(ws: Workspace, root: Path) -> tuple[Any, ...]:
    files = sorted(str(p.relative_to(root)) for p in (root / ".tidal").rglob("*")
                   if p.is_file() and p.name != "tidal.db" and not p.name.startswith("tidal.db-"))
    return (tuple((m.name, m.version, m.state) for m in ws.models.list()), tuple(r.id for r in ws.runs.list()),
            tuple(s.digest for s in ws.store.list_snapshots()), len(ws.events(limit=10_000)), tuple(files))


def test_bad_input_is_one_line_and_changes_nothing(cancer_project: Path) -> None:
    model, scored, _ = _xgboost_classifier()
    X = scored.drop(columns=["target"])
    cases: list[tuple[dict[str, Any], type[TidalError], str]] = [
        ({"model": {"weights": [1, 2]}}, PluginNotFound,
         "no flavor handles a builtins.dict: tidal registers fitted models of the flavors lightgbm, onnx, sklearn, "
         "torch, xgboost"),
        ({"model": xgb.XGBClassifier()}, TrainingError, "XGBClassifier is not fitted"),
        ({"data": X}, DataError, "the data has no target column 'target'"),
        ({"data": scored.drop(columns=["mean radius", "worst area"])}, DataError,
         "the data lacks 2 columns XGBClassifier needs: 'mean radius', 'worst area'"),
        ({"data": scored.astype({"mean radius": str})}, DataError, "XGBClassifier refuses the data: ValueError: "),
        ({"data": scored.iloc[:0]}, DataError, "the data given to register XGBClassifier has no rows"),
        ({"name": "9 lives"}, RegistryError, "'9 lives' is not a valid model name"),
        ({"data": "nowhere.csv"}, DataError, "cannot read the data 'nowhere.csv'"),
        ({"data": "0" * 64}, DataError, "no snapshot 000000000000… in this workspace"),
        ({"target": "diagnosis"}, DataError, "the data has no target column 'diagnosis'"),
    ]
    with Workspace.open(cancer_project) as ws:
        ws.models.register(model, name="bc", data=scored, promote=True)  # something stored to keep unchanged
        before = _listing(ws, cancer_project)
        for change, kind, start in cases:
            kwargs: dict[str, Any] = {"model": model, "name": "bc", "data": scored, **change}
            with pytest.raises(kind) as caught:
                ws.models.register(kwargs.pop("model"), **kwargs)
            line = str(caught.value)
            assert line.startswith(start) and "\n" not in line and "Traceback" not in line, line
            assert _listing(ws, cancer_project) == before, change


def test_a_model_fitted_on_an_array_takes_the_columns_of_the_data_in_order(cancer_project: Path) -> None:
    train, scored = _cancer()
    model = lgb.LGBMClassifier(n_estimators=10, verbose=-1).fit(train.drop(columns=["target"]).to_numpy(),
                                                                 train["target"].to_numpy())
    with Workspace.open(cancer_project) as ws:
        before = _listing(ws, cancer_project)
        with pytest.raises(DataError, match=r"^LGBMClassifier takes 30 input columns, the data has 2 besides"):
            ws.models.register(model, name="bc", data=scored[["mean radius", "worst area", "target"]])
        assert _listing(ws, cancer_project) == before
        mv = ws.models.register(model, name="bc", data=scored)
        assert mv.state is ModelState.VALIDATED and mv.signature.names == list(train.columns[:-1])
        assert mv.signature.classes == [0, 1] and mv.metrics["accuracy"] > 0.9
        assert ws.models.load("bc:1").predict(scored.drop(columns=["target"])).tolist() == \
            model.predict(scored.drop(columns=["target"]).to_numpy()).tolist()
