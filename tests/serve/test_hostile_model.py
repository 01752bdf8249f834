"""A hostile model file, stored under its correct digest and made challenger, never runs in a real server.

The server's load check used to build the model and predict a row with it: a pipeline whose
FunctionTransformer calls ``numpy._core._methods._dump(X, file=PATH)`` wrote PATH then. Now the file is
refused before anything in it is built: the canary never starts, PATH never appears, the champion serves.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from tests.serve.server import ServerProcess
from tests.serve.test_trials import deployment, row, set_strategy
from tests.unit.train.hostile_models import gallery

pytestmark = pytest.mark.slow  # a real server


def test_a_hostile_challenger_is_refused_and_never_runs(project: Path, tmp_path: Path) -> None:
    from tidal import Workspace
    from tidal.registry import CHALLENGER

    target = tmp_path / "pwned"
    hostile = gallery(target)["FunctionTransformer(numpy._core._methods._dump, file=T)"]
    with Workspace.open(project) as ws:
        good = ws.registry.get("elec2", 2)
        bad = ws.registry.register(replace(good, version=0, artifact_digest=ws.artifacts.put(hostile)),
                                   reason="a hostile model file, for the test")
        ws.registry.set_alias("elec2", CHALLENGER, bad.version, reason="test")
    set_strategy(project, "{canary: {percent: 50}}")
    with ServerProcess(project) as srv, httpx.Client(base_url=srv.url, timeout=10) as http:
        doc = deployment(http)
        assert doc["challenger"] is None and "could not be loaded" in doc["challenger_status"], doc
        assert "numpy._core._methods._dump" in doc["challenger_status"], doc
        answers = Counter()
        for i in range(20):
            answer = http.post("/predict", json={"instances": [row(i)]})
            answers[(answer.status_code, answer.json().get("model", {}).get("version"))] += 1
        assert answers == {(200, 1): 20}
    assert not target.exists()
