"""bench/serve.py's choices and arithmetic, without running a server: which servers ``--only`` picks, the
booster ratio (tidal's fastest path over the floor) and its aims, how the turns of /predict and v2 on one
server make a cell, and the ONNX cell said to be unavailable exactly when this tidal's ``deploy`` section has
no ``runtime``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def serve() -> Any:
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module("serve")
    finally:
        sys.path.remove(str(BENCH))


def test_only_picks_models_and_servers(serve: Any) -> None:
    plan = serve.plan("xgboost,lightgbm,tidal_v2", "")
    assert plan.servers == ["tidal", "tidal_v2"] and plan.boosters == ["xgboost", "lightgbm"]
    assert serve.plan("hgb", "").servers == list(serve.SERVERS) and serve.plan("hgb", "").boosters == []
    assert serve.plan(None, "tidal,floor") == serve.Plan(["tidal", "floor"], list(serve.BOOSTERS))
    with pytest.raises(SystemExit, match="unknown catboost"):
        serve.plan("xgboost,catboost", "")


def _cell(rps: float) -> dict[str, float]:
    return {"rps": rps, "p50_ms": 1.0, "p99_ms": 2.0}


def test_booster_ratio_is_the_fastest_tidal_path_over_the_floor(serve: Any) -> None:
    one, batch = "1 row, concurrency 1", "1000 rows, concurrency 1"
    results = {"servers": {}, "cells": [], "booster_cells": [one, batch], "boosters": {
        "xgboost": {"servers": {"tidal": {one: _cell(900), batch: _cell(20)},
                                "onnx": {one: _cell(1200), batch: _cell(15)},
                                "floor": {one: _cell(1000), batch: _cell(25)}}},
        "lightgbm": {"servers": {"tidal": {one: _cell(500), batch: _cell(23)}}},  # no floor: no ratio
    }}
    out = serve.ratios(results)
    assert out["ratios"][f"xgboost, {one}"] == {"tidal/floor": 0.9, "onnx/floor": 1.2, "fastest": "onnx",
                                                "fastest/floor": 1.2}
    assert out["ratios"][f"xgboost, {batch}"]["fastest"] == "tidal"
    assert out["aims"][f"xgboost, {one}"] == {"fastest tidal path (onnx) >= 1.0x floor": True}
    assert out["aims"][f"xgboost, {batch}"] == {"fastest tidal path (tidal) >= 0.9x floor": False}  # 20/25
    assert not any(key.startswith("lightgbm") for key in out["ratios"])


def test_onnx_cell_runs_only_where_tidal_has_the_runtime(serve: Any) -> None:
    from tidal.spec.model import DeploySpec

    why = serve.unavailable("onnx")
    assert (why is None) == ("runtime" in DeploySpec.model_fields)
    assert why is None or why.startswith("not available:")
    assert serve.unavailable("tidal") is None and serve.unavailable("floor") is None


def test_turns_merge_into_one_cell(serve: Any) -> None:
    """/predict and v2 take turns on one server: a cell's req/s is over all its turns' requests and time, its
    p50 the median of the turns', its p99 the largest, its failures all of them."""
    turns = [{"generator": "wrk", "requests": 300, "rps": 100.0, "p50_ms": 1.0, "p99_ms": 5.0, "failed": 0},
             {"generator": "wrk", "requests": 600, "rps": 300.0, "p50_ms": 3.0, "p99_ms": 4.0, "failed": 1},
             {"generator": "wrk", "requests": 100, "rps": 50.0, "p50_ms": 2.0, "p99_ms": 9.0, "failed": 0}]
    cell = serve.merged(turns)
    assert cell["requests"] == 1000 and cell["rps"] == pytest.approx(1000 / 7.0)
    assert (cell["p50_ms"], cell["p99_ms"], cell["failed"], cell["turns"]) == (2.0, 9.0, 1, 3)
