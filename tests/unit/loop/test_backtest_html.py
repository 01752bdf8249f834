"""The backtest's HTML page: the dashboard's charts (uPlot and charts.js inlined once), its data as JSON in
value units (rows replayed, the metric, the drift share), the loop's events marked, and a bounded size."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tidal.core.charts import HELPER, LIBRARY, STYLE, asset, read_specs
from tidal.loop.backtest import BacktestResult
from tidal.loop.backtest_html import EVENT_COLORS, render_backtest_html

#: the library and the helper alone: what any page with charts carries (measured: 61 KB)
LIBRARY_BYTES = sum(len(asset(n).encode()) for n in (LIBRARY, HELPER, STYLE))


def sample_result(points: int = 40) -> BacktestResult:
    """A backtest of 40,000 rows: four strategies' rolling accuracy every 1,000 rows, two retrains (one
    promoted), a rollback, and the drift share at each tick against a threshold of 0.5."""
    rows = [1000 * (i + 1) for i in range(points)]
    curves = {"loop": [0.8 + 0.001 * i for i in range(points)], "static": [0.8 - 0.002 * i for i in range(points)],
              "periodic": [0.78] * points, "last_label": [0.6] * points}
    events = [{"row": 10_000, "kind": "loop.retrain", "message": "retrain triggered by drift"},
              {"row": 10_000, "kind": "alias.moved", "message": "champion of toy: 1 → 2"},
              {"row": 25_000, "kind": "loop.retrain", "message": "retrain triggered by performance"},
              {"row": 25_000, "kind": "gate.failed", "message": "accuracy 0.7 < 0.75"},
              {"row": 30_000, "kind": "loop.rollback", "message": "rolled back to 1"}]
    shares = [None if i == 3 else (0.7 if 8 <= i < 10 else 0.1) for i in range(points)]
    return BacktestResult(metric="accuracy", rows=rows[-1], initial_rows=10_000,
                          loop={"score": 0.83, "retrains": 2, "promotions": 1, "rejections": 1, "rollbacks": 1},
                          static={"score": 0.74}, periodic={"score": 0.78, "every": 1000, "retrains": 39},
                          last_label={"score": 0.6}, curves=curves, curve_rows=rows, events=events,
                          drift_share={"rows": rows, "share": shares, "threshold": 0.5})


def test_the_page_inlines_the_library_once_and_embeds_the_scores_in_value_units(tmp_path: Path) -> None:
    result = sample_result()
    page = render_backtest_html(result, tmp_path / "bt.html").read_text(encoding="utf-8")
    assert page.count(asset(LIBRARY)) == 1 and page.count(asset(HELPER)) == 1 and page.count(asset(STYLE)) == 1
    assert not re.search(r"(src|href)=['\"]?https?:", page)  # nothing fetched when it opens
    specs = {s["name"]: s for s in read_specs(page).values()}
    assert set(specs) == {"scores", "drift-share"}
    scores = specs["scores"]
    # x: the rows replayed; a series per strategy, the metric's values; the events at their rows
    assert scores["x"] == result.curve_rows and scores["xlabel"] == "rows replayed"
    lines = {s["label"]: s["values"] for s in scores["series"]}
    assert list(lines) == list(result.curves)
    assert all(lines[k] == pytest.approx(v, rel=1e-4) for k, v in result.curves.items())
    assert [(m["x"], m["color"]) for m in scores["marks"]] == [(e["row"], EVENT_COLORS[e["kind"]])
                                                               for e in result.events]
    drift = specs["drift-share"]
    assert drift["percent"] and len(drift["x"]) == 39  # the tick with no share is left out
    assert [s["label"] for s in drift["series"]] == ["drift share", "retrain.on.drift.share 0.5"]
    assert [m["x"] for m in drift["marks"]] == [10_000, 25_000]  # retrains only
    # the sections the page always had
    assert "What the loop did" in page and "Drift share at each tick" in page
    assert "<tr><td>10,000</td><td>loop.retrain</td>" in page and "retrained every 1,000 rows" in page


def test_the_page_stays_small_whatever_the_rows(tmp_path: Path) -> None:
    small = render_backtest_html(sample_result(40), tmp_path / "a.html").stat().st_size
    big = render_backtest_html(sample_result(400), tmp_path / "b.html").stat().st_size
    # the library once (~61 KB), then ~25 bytes a point of each of the five lines
    assert small < LIBRARY_BYTES + 10_000 and big - small < 360 * 5 * 30
    assert LIBRARY_BYTES < 65_000


def test_names_from_the_events_cannot_close_the_script(tmp_path: Path) -> None:
    result = sample_result()
    result.events.append({"row": 35_000, "kind": "loop.retrain", "message": "</script><script>alert(1)</script>"})
    page = render_backtest_html(result, tmp_path / "x.html").read_text(encoding="utf-8")
    assert "<script>alert(1)" not in page
    assert read_specs(page)["c0"]["marks"][-1]["label"].endswith("</script><script>alert(1)</script>")
