"""Issue #4, points 5 and 6: `tidal backtest --json` on the whole Elec2 example, and `tidal demo`."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from tests.conftest import _cli
from tidal.core.charts import read_specs


@pytest.mark.slow
def test_backtest_on_elec2(elec2_project: Path) -> None:
    proc = _cli(elec2_project)("backtest", "--json", "--html", "backtest.html", check=True)
    result = json.loads(proc.stdout)
    assert result["metric"] == "accuracy" and result["rows"] == 36_250
    loop, static, periodic = result["loop"], result["static"], result["periodic"]
    assert set(loop) == {"score", "retrains", "promotions", "rejections", "failures", "pending", "rollbacks",
                         "first_failure"}
    assert loop["retrains"] > 0 and loop["promotions"] > 0
    # every retrain ended in one counted outcome, and none failed on Elec2
    assert loop["promotions"] + loop["rejections"] + loop["failures"] + loop["pending"] == loop["retrains"]
    assert loop["failures"] == 0 and loop["first_failure"] is None
    assert loop["score"] > static["score"] + 0.02             # the loop clearly beats the model it started from
    assert loop["retrains"] < periodic["retrains"]            # with fewer retrains than retraining blindly
    assert periodic["every"] == 1000                          # the cooldown: retrain as often as the loop may
    assert 0.5 < result["last_label"]["score"] < 1
    html = (elec2_project / "backtest.html").read_text()
    # the four strategies' rolling accuracy, and the loop's drift share at each tick
    lines = {s["name"]: [x["label"] for x in s["series"]] for s in read_specs(html).values()}
    assert lines["scores"] == ["loop", "static", "periodic", "last_label"] and len(lines["drift-share"]) == 2
    assert "loop.retrain" in html and "Drift share at each tick" in html
    events = json.loads(_cli(elec2_project)("events", "--json", "--kind", "backtest.done", check=True).stdout)
    assert events[-1]["data"]["loop"]["score"] == loop["score"]


@pytest.mark.slow
def test_demo_runs_the_whole_loop_and_beats_the_static_model(tmp_path: Path) -> None:
    started = time.monotonic()
    proc = _cli(tmp_path)("demo", "demo", "--json", check=True)
    assert time.monotonic() - started < 300
    shown = proc.stderr  # with --json the live display goes to stderr, the comparison to stdout
    assert "the loop beats the static model" in shown, shown[-3000:]
    for line in ("loop", "static", "last_label"):
        assert any(ln.strip("│ ").startswith(line) for ln in shown.splitlines()), line
    summary = json.loads(proc.stdout)
    assert summary["beats_static"] and summary["loop"]["score"] > summary["static"]["score"]
    assert summary["rows"] == 36_250 and summary["loop"]["retrains"] > 0
    demo = tmp_path / "demo"
    assert (demo / ".tidal-demo").is_file()
    assert Path(summary["reports"]["monitor"]) == Path("demo") / "reports" / "monitor.html"
    assert (demo / "reports" / "monitor.html").is_file()
    page = (demo / "reports" / "loop.html").read_text()
    # no periodic strategy was run live: no "nan" score, no "retrained every 0 rows"
    assert "nan" not in page and "every 0" not in page
    # each event at the streamed row of the tick that made it, promotions included
    rows = [(int(r.replace(",", "")), k) for r, k in re.findall(r"<tr><td>([\d,]+)</td><td>([a-z.]+)</td>", page)]
    assert {k for _, k in rows} >= {"loop.retrain", "alias.moved"}
    assert min(r for r, _ in rows) > 0 and len({r for r, _ in rows}) > 5
