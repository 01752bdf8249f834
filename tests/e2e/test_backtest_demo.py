"""Issue #4, points 5 and 6: `tidal backtest --json` on the whole Elec2 example, and `tidal demo`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.conftest import _cli


@pytest.mark.slow
def test_backtest_on_elec2(elec2_project: Path) -> None:
    proc = _cli(elec2_project)("backtest", "--json", "--html", "backtest.html", check=True)
    result = json.loads(proc.stdout)
    assert result["metric"] == "accuracy" and result["rows"] == 36_250
    loop, static, periodic = result["loop"], result["static"], result["periodic"]
    assert set(loop) == {"score", "retrains", "promotions", "rejections", "rollbacks"}
    assert loop["retrains"] > 0 and loop["promotions"] > 0
    assert loop["score"] > static["score"] + 0.02             # the loop clearly beats the model it started from
    assert loop["retrains"] < periodic["retrains"]            # with fewer retrains than retraining blindly
    assert periodic["every"] == 1000                          # the cooldown: retrain as often as the loop may
    assert 0.5 < result["last_label"]["score"] < 1
    html = (elec2_project / "backtest.html").read_text()
    assert html.count("<polyline") == 4 and "loop.retrain" in html
    events = json.loads(_cli(elec2_project)("events", "--json", "--kind", "backtest.done", check=True).stdout)
    assert events[-1]["data"]["loop"]["score"] == loop["score"]


@pytest.mark.slow
def test_demo_runs_the_whole_loop_and_beats_the_static_model(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _cli(tmp_path)("demo", "demo", check=True)
    assert time.monotonic() - started < 300
    out = proc.stdout
    assert "the loop beats the static model" in out, out[-3000:]
    for line in ("loop", "static", "last_label"):
        assert any(ln.strip("│ ").startswith(line) for ln in out.splitlines()), line
    assert (tmp_path / "demo" / "reports" / "loop.html").is_file()
    assert (tmp_path / "demo" / "reports" / "monitor.html").is_file()
