"""The offline HTML reports in a real browser (issue #15, point 3): a monitor report and a backtest report,
opened from file:// (nothing served, nothing fetched), draw every chart with uPlot with as many bins, bars and
points as their data, show the values under the pointer, zoom on a drag and reset on a double click, with no
console error. The system's Chromium, driven by Playwright, as in test_dashboard_browser.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.ui.browser import chromium, needs_chromium
from tests.unit.loop.test_backtest_html import sample_result
from tests.unit.monitor._synthetic import START, classifier_rows, predictions_for, toy_version
from tidal.core.charts import read_specs
from tidal.loop.backtest_html import render_backtest_html
from tidal.monitor import build_report, render_html
from tidal.spec.model import MonitorSpec

pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)  # no network at all
    tab = context.new_page()
    errors: list[str] = []
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.on("request", lambda r: errors.append(f"fetched {r.url}") if not r.url.startswith(("file:", "data:")) else None)
    yield tab
    context.close()
    assert errors == []


def _drawn(page: Any, specs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every chart box holds a uPlot canvas; the boxes by their data-chart name."""
    boxes = page.locator(".chart[data-spec]")
    assert boxes.count() == len(specs)
    for i in range(boxes.count()):
        assert boxes.nth(i).locator("canvas").count() == 1, boxes.nth(i).get_attribute("data-chart")
    return {boxes.nth(i).get_attribute("data-chart"): boxes.nth(i) for i in range(boxes.count())}


def _zooms_and_resets(page: Any, box: Any) -> None:
    """A drag across the middle of the plot narrows the x scale; a double click puts it back."""
    box.scroll_into_view_if_needed()
    before = box.evaluate("b => [b.uplot.scales.x.min, b.uplot.scales.x.max]")
    over = box.locator(".u-over").bounding_box()
    y = over["y"] + over["height"] / 2
    page.mouse.move(over["x"] + over["width"] * 0.3, y)
    page.mouse.down()
    page.mouse.move(over["x"] + over["width"] * 0.6, y, steps=5)
    page.mouse.up()
    zoomed = box.evaluate("b => [b.uplot.scales.x.min, b.uplot.scales.x.max]")
    assert before[0] < zoomed[0] < zoomed[1] < before[1], (before, zoomed)
    page.mouse.dblclick(over["x"] + over["width"] / 2, y)
    assert box.evaluate("b => [b.uplot.scales.x.min, b.uplot.scales.x.max]") == before


def test_the_monitor_report_draws_its_charts_from_file(tmp_path: Path, page: Any) -> None:
    mv = toy_version()
    reports = []
    for i in range(3):
        predictions = predictions_for(classifier_rows(2_000, 20 + i, shift=0.2 * i), seed=20 + i)
        reports.append(build_report(mv, predictions, MonitorSpec(), metrics=["accuracy"], report_id=f"r{i}",
                                    now=START + timedelta(hours=i)))
    path = render_html(reports, mv, tmp_path / "monitor.html")
    specs = read_specs(path.read_text(encoding="utf-8"))
    page.goto(path.as_uri())
    boxes = _drawn(page, specs)
    newest = {c["column"]: c for c in reports[-1].body["drift"]["columns"]}
    # a numeric feature: one step per training-quantile bin, on its own values
    assert boxes["dist-f00"].get_attribute("data-points") == str(len(newest["f00"]["plot"]["edges"]) - 1)
    x_axis = boxes["dist-f00"].evaluate("b => [b.uplot.scales.x.min, b.uplot.scales.x.max]")
    edges = newest["f00"]["plot"]["edges"]
    assert x_axis[0] <= edges[0] + 1e-6 and x_axis[1] >= edges[-1] - 1e-6 and edges[0] < -1  # standard normal
    # a categorical one: a pair of bars per category, named on the axis
    assert boxes["dist-colour"].get_attribute("data-points") == "3"
    assert boxes["dist-colour"].evaluate("b => b.uplot.series.map(s => s.label)") == ["colour", "reference", "window"]
    # the trends: a point per report; hovering shows the value in the legend
    assert boxes["performance"].get_attribute("data-points") == "3"
    assert boxes["drift"].get_attribute("data-points") == "3"
    assert boxes["statistics"].get_attribute("data-points") == str(sum(
        1 for c in reports[-1].body["drift"]["columns"] if c.get("statistic") is not None))
    dist = boxes["dist-colour"]
    dist.scroll_into_view_if_needed()
    over = dist.locator(".u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] / 6, over["y"] + over["height"] / 2)  # over the first category
    legend = dist.locator(".u-series")
    assert legend.nth(0).locator(".u-value").inner_text() == "red"
    shown = float(legend.nth(2).locator(".u-value").inner_text().rstrip("%"))
    counts = newest["colour"]["plot"]["current"]
    assert shown == pytest.approx(100 * counts[0] / sum(counts), abs=0.06)
    _zooms_and_resets(page, boxes["dist-f00"])
    page.screenshot(path=str(tmp_path / "monitor.png"), full_page=True)


def test_the_backtest_report_draws_the_scores_with_the_events_from_file(tmp_path: Path, page: Any) -> None:
    result = sample_result()
    path = render_backtest_html(result, tmp_path / "backtest.html")
    specs = read_specs(path.read_text(encoding="utf-8"))
    page.goto(path.as_uri())
    boxes = _drawn(page, specs)
    scores = boxes["scores"]
    assert scores.get_attribute("data-points") == str(len(result.curve_rows))
    assert scores.evaluate("b => b.uplot.series.slice(1).map(s => s.label)") == list(result.curves)
    # x in rows replayed: hovering at the right end shows the last row and the loop's last score
    scores.scroll_into_view_if_needed()
    over = scores.locator(".u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] - 1, over["y"] + over["height"] / 2)
    legend = scores.locator(".u-series")
    assert legend.nth(0).locator(".u-value").inner_text() == f"{result.curve_rows[-1]:,}"
    assert float(legend.nth(1).locator(".u-value").inner_text()) == pytest.approx(result.curves["loop"][-1], abs=1e-3)
    # over an event's dashed line: what happened there, in words under the chart
    at = scores.evaluate("b => b.uplot.valToPos(10000, 'x')")
    page.mouse.move(over["x"] + at, over["y"] + over["height"] / 2)
    assert scores.locator("xpath=following-sibling::div[@class='marks'][1]").inner_text() == (
        "10,000: loop.retrain: retrain triggered by drift · 10,000: alias.moved: champion of toy: 1 → 2")
    assert boxes["drift-share"].get_attribute("data-points") == str(len(result.curve_rows) - 1)
    _zooms_and_resets(page, scores)
