"""Projects for the serve tests, trained once per session and copied per test.

``served_template``: the Elec2 example cut to 6,000 rows, a fast HistGradientBoosting model; version 1
is the champion, version 2 (other parameters, trained with ``deploy.auto_promote: false``) waits as
challenger, ready for a hot swap. ``colors_template``: a hand-registered model whose prepare step has
an OrdinalEncoder that raises on an unseen category (a model that fails inside predict) and a numeric
column without an imputer in front of a LogisticRegression (a column that may not be null).
"""

from __future__ import annotations

import gzip
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ELEC2
from tests.serve.server import ServerProcess
from tidal.core.signature import Signature

ROWS = 6000

SPEC = """\
version: 1
name: elec2
data: {{source: data/elec2.csv, target: up}}
prepare: {{impute: {{numeric: median, categorical: most_frequent}}, scale: standard, encode: onehot}}
model:
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  params: {{max_iter: {max_iter}}}
  seed: 0
validate: {{split: {{method: time, test_size: 0.2}}, metrics: [accuracy], gates: []}}
deploy: {{auto_promote: {auto_promote}, reload_seconds: 0.2, max_request_bytes: 4096, max_rows: 20}}
"""


def write_spec(root: Path, *, max_iter: int = 20, auto_promote: bool = True, extra: str = "") -> None:
    text = SPEC.format(max_iter=max_iter, auto_promote=str(auto_promote).lower())
    (root / "tidal.yaml").write_text(text + extra)


@pytest.fixture(scope="session")
def served_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tidal import Workspace

    root = tmp_path_factory.mktemp("serve") / "elec2"
    (root / "data").mkdir(parents=True)
    lines = gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes()).decode().splitlines()
    (root / "data" / "elec2.csv").write_text("\n".join(lines[:ROWS + 1]) + "\n")
    write_spec(root, max_iter=20)
    with Workspace.open(root) as ws:
        assert ws.run().model.version == 1
    write_spec(root, max_iter=12, auto_promote=False)
    with Workspace.open(root) as ws:
        second = ws.run()
        assert second.model.version == 2 and ws.registry.champion("elec2").version == 1
    write_spec(root, max_iter=20)
    return root


@pytest.fixture
def project(served_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the served template (its stores included)."""
    dest = tmp_path / "elec2"
    shutil.copytree(served_template, dest)
    return dest


@pytest.fixture(scope="session")
def colors_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OrdinalEncoder

    from tidal import Workspace
    from tidal.core.entities import ModelState, ModelVersion
    from tidal.data.profile import profile_frame
    from tidal.registry import CHAMPION
    from tidal.train.flavors import flavor_for

    root = tmp_path_factory.mktemp("serve") / "colors"
    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"color": rng.choice(["red", "green", "blue"], 300), "size": rng.normal(size=300)})
    df["y"] = ((df["color"] == "red") ^ (df["size"] > 0)).astype(int)
    df.to_csv(root / "data" / "colors.csv", index=False)
    (root / "tidal.yaml").write_text(
        "version: 1\nname: colors\ndata: {source: data/colors.csv, target: y}\n"
        "model: {estimator: sklearn.linear_model.LogisticRegression}\n")
    model = Pipeline([
        ("prepare", ColumnTransformer([("categorical", OrdinalEncoder(), ["color"]),
                                       ("numeric", "passthrough", ["size"])])),
        ("model", LogisticRegression()),
    ]).fit(df[["color", "size"]].astype({"color": object}), df["y"])
    with Workspace.open(root) as ws:
        flavor = flavor_for(model)
        digest = ws.artifacts.put(flavor.save(model))
        mv = ws.registry.register(ModelVersion(
            name="colors", version=0, state=ModelState.VALIDATED, created_at=ws.clock.now(), run_id="handmade",
            artifact_digest=digest, format=flavor.format, task="classification",
            signature=Signature(columns={"color": "categorical", "size": "numeric"}, target="y", classes=[0, 1]),
            profile={"features": profile_frame(df)}, info={"flavor": flavor.name}), reason="a test model")
        ws.registry.set_alias("colors", CHAMPION, mv.version, reason="test")
    return root


@pytest.fixture
def colors(colors_template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "colors"
    shutil.copytree(colors_template, dest)
    return dest


@pytest.fixture
def server(project: Path) -> Iterator[ServerProcess]:
    """A one-worker server on a fresh copy of the served template."""
    with ServerProcess(project) as srv:
        yield srv
