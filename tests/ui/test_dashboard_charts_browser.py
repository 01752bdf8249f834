"""The dashboard's Monitoring and Loop charts in a real browser (issue #15, point 3): over a small real
workspace with a numeric and a categorical feature (the categorical one shifts), the Monitoring page draws the
reference against the window for both (a histogram on the numeric one's values, a pair of bars per category),
and the Loop page draws each past backtest's score per strategy (the /api/v1/backtests data). No console
error. ``tidal ui --no-auth`` in a subprocess, the system's Chromium through Playwright."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.ui.browser import chromium, needs_chromium
from tests.ui.conftest import UiServer

pytest.importorskip("playwright.sync_api", reason="needs playwright (the dev extra)")
pytestmark = needs_chromium

SPEC = """version: 1
name: toy
data: {source: data/toy.csv, target: y}
prepare: {impute: {numeric: median, categorical: most_frequent}, scale: standard, encode: onehot}
model: {estimator: sklearn.linear_model.LogisticRegression, params: {max_iter: 200}, seed: 0}
validate: {split: {method: time, test_size: 0.2}, metrics: [accuracy]}
monitor: {window: 300}
retrain:
  on: {drift: {share: 0.5}}
  cooldown: {rows: 200}
  window: {last_rows: 800}
  min_labelled: 100
backtest: {initial_rows: 0.25, label_delay: 0}
"""


def _project(root: Path) -> Path:
    """1,600 rows of a numeric ``x`` and a categorical ``colour``, both shifting half way; one run, the last
    300 rows served with their labels, one monitoring report, two backtests (a few seconds in all)."""
    from tidal.workspace import Workspace

    (root / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    n = 1600
    late = np.arange(n) >= n // 2
    colour = np.where(late, rng.choice(["red", "green", "blue"], n, p=[0.2, 0.3, 0.5]),
                      rng.choice(["red", "green", "blue"], n, p=[0.6, 0.3, 0.1]))
    x = rng.normal(0, 1, n) + late * 0.8
    y = ((x + (colour == "blue") + rng.normal(0, 0.5, n)) > 0.5).astype(int)
    pd.DataFrame({"x": x.round(4), "colour": colour, "y": y}).to_csv(root / "data" / "toy.csv", index=False)
    (root / "tidal.yaml").write_text(SPEC)
    with Workspace.open(root) as ws:
        ws.run()
        rows = pd.read_csv(root / "data" / "toy.csv").tail(300)
        answer = ws.predict(rows.drop(columns=["y"]))
        ws.feedback([{"prediction_id": i, "label": int(v)} for i, v in zip(answer.prediction_ids, rows["y"],
                                                                             strict=True)])
        ws.monitor()
        ws.backtest()
        ws.backtest()
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = UiServer(_project(tmp_path_factory.mktemp("charts") / "toy"), "--no-auth")
    try:
        yield srv.wait().url
    finally:
        srv.stop()


@pytest.fixture
def page(site: str) -> Iterator[Any]:
    with chromium() as browser:
        tab = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        yield tab
    assert errors == []


def _get(site: str, path: str) -> Any:
    r = httpx.get(f"{site}/api/v1{path}")
    assert r.status_code == 200, r.text
    return r.json()


def test_monitoring_draws_categorical_bars_and_numeric_histograms(site: str, page: Any) -> None:
    report = _get(site, f"/reports/{_get(site, '/reports')['items'][0]['id']}")
    by = {c["column"]: c for c in report["drift"]["columns"]}
    assert by["colour"]["plot"]["type"] == "categorical" and by["x"]["plot"]["type"] == "numeric"
    page.goto(f"{site}/#/monitoring")
    page.wait_for_selector('main[data-ready="monitoring"]')
    colour = page.locator('.chart[data-chart="dist-colour"]')
    shown = [c for c, r, w in zip(by["colour"]["plot"]["categories"], by["colour"]["plot"]["reference"],
                                  by["colour"]["plot"]["current"], strict=True) if c != "__other__" or r or w]
    assert colour.get_attribute("data-points") == str(len(shown)) == "3"
    assert colour.locator("canvas").count() == 1
    # hover the first category: its name, and the window's share of it, in the legend
    colour.scroll_into_view_if_needed()
    over = colour.locator(".u-over").bounding_box()
    page.mouse.move(over["x"] + over["width"] / 6, over["y"] + over["height"] / 2)
    legend = colour.locator(".u-series")
    assert legend.nth(0).locator(".u-value").inner_text() == shown[0]
    counts = by["colour"]["plot"]["current"]
    assert float(legend.nth(2).locator(".u-value").inner_text().rstrip("%")) == pytest.approx(
        100 * counts[0] / sum(counts), abs=0.06)
    numeric = page.locator('.chart[data-chart="dist-x"]')
    assert numeric.get_attribute("data-points") == str(len(by["x"]["plot"]["edges"]) - 1)
    assert numeric.locator("canvas").count() == 1


def test_the_loop_page_charts_the_backtests(site: str, page: Any) -> None:
    backtests = _get(site, "/backtests")["items"]
    assert len(backtests) == 2
    page.goto(f"{site}/#/loop")
    page.wait_for_selector('main[data-ready="loop"]')
    box = page.locator('.chart[data-chart="backtests"]')
    assert box.get_attribute("data-points") == "2" and box.locator("canvas").count() == 1
    assert box.evaluate("b => b.uplot.series.slice(1).map(s => s.label)") == ["loop", "static", "periodic",
                                                                             "last_label"]
    drawn = box.evaluate("b => b.uplot.data[1]")
    assert drawn == pytest.approx([b["data"]["loop"]["score"] for b in backtests])
    assert page.locator("#backtests tbody tr").count() == 2
