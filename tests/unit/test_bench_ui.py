"""bench/ui.py without a browser: the workspace it builds holds what it says (runs with their params, metrics and
curves, versions with their states, champion and events, predictions in the log with some labels, reports),
its pages answer through the management API, and its verdict fails a run whose page showed an error, whose
console logged one or whose workspace is short of what was asked — never one that is merely slow. Not a timing
test: no figure is held to an aim."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def ui() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("ui")
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def built(ui: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("bench-ui") / "elec2"
    out: dict[str, Any] = ui.build_tidal(root, runs=12, versions=11, predictions=3000, curve_points=7)
    out["root"] = root
    return out


def test_the_workspace_holds_what_was_asked(ui: Any, built: dict[str, Any]) -> None:
    from tidal.core.entities import ModelState
    from tidal.workspace import Workspace

    assert (built["runs"], built["versions"], built["predictions"]) == (12, 11, 3000)
    with Workspace.open(built["root"]) as ws:
        runs = ws.runs.list(limit=100)
        synthetic = ws.runs.get(runs[1].id)  # runs[0]: the real run, the newest
        assert len(synthetic.params) == ui.PARAMS
        assert sorted({m.key for m in synthetic.metrics if not m.key.startswith("curve.")}) == [
            f"metric_{k}" for k in range(ui.METRICS)]
        assert [len([m for m in synthetic.metrics if m.key == c]) for c in ui.CURVES] == [7, 7]
        assert [s.name for s in synthetic.steps] == list(ui.STEPS)
        versions = ws.models.list(built["name"])
        states = {mv.version: mv.state for mv in versions}
        assert states[3] is states[8] is ModelState.REJECTED
        assert states[1] is states[10] is ModelState.RETIRED
        champion = ws.models.get(f"{built['name']}:champion")
        assert champion.version == built["champion"] == 11 and champion.state is ModelState.MONITORED
        assert champion.profile == ws.models.get(f"{built['name']}:1").profile != {}
        assert ws.predictions.count(labelled=True) == 3000  # every batch is among the last five: all labelled
        assert ws.predictions.count(version=11) == 1000
        assert len(ws.reports(limit=10)) == 3


def test_every_page_the_bench_opens_answers_through_the_api(built: dict[str, Any]) -> None:
    from fastapi.testclient import TestClient

    from tidal.ui.app import create_api
    from tidal.workspace import Workspace

    a, b = built["run_ids"]
    with Workspace.open(built["root"]) as ws:
        api = TestClient(create_api(ws, auth=False))
        for path in ("/models?limit=1000", f"/models/{built['name']}/versions/{built['champion']}",
                     "/runs?limit=200", f"/runs/{a}", f"/runs/{b}", "/reports?limit=30", "/loop",
                     "/events?limit=100", "/snapshots?limit=200"):
            assert api.get("/api/v1" + path).status_code == 200, path
        models = api.get("/api/v1/models?limit=1000").json()["items"]
        assert len(models) == 11 and [m["aliases"] for m in models if m["aliases"]] == [["champion"]]
        assert len(api.get("/api/v1/runs?limit=200").json()["items"]) == 12


def _results(**tidal_pages: dict[str, Any]) -> dict[str, Any]:
    pages = {"Overview": {"fcp_ms": 40.0, "data_ms": 120.0, "error": None},
             "Runs": {"fcp_ms": 40.0, "data_ms": 4000.0, "error": None}, **tidal_pages}
    return {"tidal": {**pages, "_console_errors": []},
            "mlflow": {"fcp_ms": 300.0, "data_ms": 3000.0, "rows_shown": 100, "error": None},
            "workspace": {"runs": 1000, "versions": 100, "predictions": 1_000_000}}


def test_a_slow_page_is_reported_not_failed(ui: Any) -> None:
    assert ui.failures(_results(), asked=(1000, 100, 1_000_000), mlflow_runs=1000) == []


def test_an_error_a_console_error_or_a_short_workspace_fails(ui: Any) -> None:
    broken = _results(Loop={"fcp_ms": 40.0, "data_ms": None, "error": "no endpoint at /api/v1/loop"})
    broken["tidal"]["_console_errors"] = ["TypeError: x is undefined"]
    broken["mlflow"].update(rows_shown=0)
    got = ui.failures(broken, asked=(1000, 100, 2_000_000), mlflow_runs=999)
    assert got == ["Loop: no endpoint at /api/v1/loop", "console errors: ['TypeError: x is undefined']",
                   "MLflow runs page: no run shown", "MLflow holds 999 runs, not 1000",
                   "the workspace holds 1000 runs, 100 versions, 1000000 predictions, not 1000, 100, 2000000"]
    # without the anchor (--no-mlflow), MLflow's page is not judged
    assert ui.failures(_results(), asked=(1000, 100, 1_000_000), mlflow_runs=None) == []
