"""The backtest as a self-contained HTML page: each strategy's rolling score over the replayed rows, with
the loop's events marked, and the loop's drift share at each tick. The charts are the dashboard's (uPlot and
its ``charts.js``, inlined once; see :mod:`tidal.core.charts`): hover for the values, drag to zoom, double-click
to reset. Nothing is fetched: it opens on an offline machine."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from tidal.core.charts import Charts, short
from tidal.core.text import count
from tidal.loop.backtest import BacktestResult
from tidal.loop.backtest_estimate import estimate_line
from tidal.loop.outcomes import describe, failure_line

COLORS = {"loop": "#1f77b4", "static": "#d62728", "periodic": "#2ca02c", "last_label": "#7f7f7f",
          "online": "#8c564b"}
EVENT_COLORS = {"loop.retrain": "#ff7f0e", "alias.moved": "#1f77b4", "gate.failed": "#d62728",
                "loop.trial_lost": "#d62728", "loop.trial_abandoned": "#d62728", "loop.retrain_unchanged": "#999999",
                "loop.retrain_failed": "#000000", "loop.rollback": "#9467bd"}


def _marks(result: BacktestResult, kinds: set[str] | None = None) -> list[dict[str, Any]]:
    return [{"x": e["row"], "label": f"{e['kind']}: {e['message']}", "color": EVENT_COLORS.get(e["kind"], "#999999")}
            for e in result.events if kinds is None or e["kind"] in kinds]


def _chart(result: BacktestResult, charts: Charts) -> str:
    """Each strategy's rolling score at each replayed row (x: rows replayed), the loop's events as dashed lines."""
    metric = result.curve_metric or result.metric
    spec = {"title": f"rolling {metric}", "name": "scores", "xlabel": "rows replayed", "x": list(result.curve_rows),
            "width": 900, "height": 320, "marks": _marks(result),
            "series": [{"label": name, "values": [short(v, 4) for v in curve], "stroke": COLORS.get(name, "#000000")}
                       for name, curve in result.curves.items()]}
    return charts.box(spec)


def _drift_chart(result: BacktestResult, charts: Charts) -> str:
    """The loop's drift share at each tick (0 to 1), with the drift trigger's threshold: a trigger that
    stays above the line for ever has become periodic retraining; after a retrain it should fall back."""
    drift = result.drift_share or {}
    points = [(r, v) for r, v in zip(drift.get("rows") or [], drift.get("share") or [], strict=False)
              if v is not None]
    if not points:
        return ""
    xs = [r for r, _ in points]
    series: list[dict[str, Any]] = [{"label": "drift share", "values": [short(v, 4) for _, v in points],
                                     "stroke": "#8c564b"}]
    threshold = drift.get("threshold")
    if threshold is not None:
        series.append({"label": f"retrain.on.drift.share {threshold:g}", "values": [short(threshold)] * len(xs),
                       "stroke": "#d62728", "dash": [4, 3]})
    spec = {"title": "drift share", "name": "drift-share", "xlabel": "rows replayed", "x": xs, "width": 900,
            "height": 180, "percent": True, "series": series, "marks": _marks(result, {"loop.retrain"})}
    return charts.box(spec)


def render_backtest_html(result: BacktestResult, path: Path, *, title: str = "tidal backtest") -> Path:
    """Write the page to ``path`` and return it."""
    # a strategy that was not run (the live demo runs no periodic retraining) has no score: no row
    rows = "".join(
        f"<tr><td><span style='color:{COLORS[name]}'>■</span> {name}</td><td>{data['score']:.4f}</td>"
        f"<td>{html.escape(_detail(name, data))}</td></tr>"
        for name, data in (("loop", result.loop), ("static", result.static), ("periodic", result.periodic),
                           ("last_label", result.last_label), ("online", result.online or {}))
        if data.get("score") is not None)
    legend = " · ".join(f"<span style='color:{c}'>┆ {k}</span>" for k, c in EVENT_COLORS.items())
    events = "".join(
        f"<tr><td>{e['row']:,}</td><td>{html.escape(e['kind'])}</td><td>{html.escape(e['message'])}</td></tr>"
        for e in result.events)
    failed_line = failure_line(result.loop)
    failed = "" if failed_line is None else (
        f"<p class='failed' style='color:#b91c1c'><b>Failed retrains:</b> {html.escape(failed_line)}</p>")
    charts = Charts()
    estimated_line = estimate_line(result.estimate)
    if estimated_line is not None:
        failed += f"<p class='estimate'>{html.escape(estimated_line)}</p>"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:960px}}table{{border-collapse:collapse}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;font-size:14px}}</style>{charts.style()}
</head><body>
<h1>{html.escape(title)}</h1>
<p>{count(result.rows, 'row')} replayed in time order after {count(result.initial_rows, 'initial row')}; prequential
{result.metric} (each row predicted before its label arrived).</p>
<table><tr><th>strategy</th><th>{result.metric}</th><th></th></tr>{rows}</table>{failed}
<h2>Rolling {result.curve_metric or result.metric}</h2>{_chart(result, charts)}<p style="font-size:12px">{legend}</p>
{_drift_section(result, charts)}
<h2>What the loop did</h2><table><tr><th>row</th><th>event</th><th>what</th></tr>{events}</table>
{charts.scripts()}</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path


def _drift_section(result: BacktestResult, charts: Charts) -> str:
    chart = _drift_chart(result, charts)
    if not chart:
        return ""
    return ("<h2>Drift share at each tick</h2>" + chart + "<p style='font-size:12px'>the share of features "
            "drifted beyond the serving champion's own reference (its training rows, and the drift its holdout "
            "already showed); dashed red: the drift trigger's threshold; dashed orange: retrains</p>")


def _detail(name: str, data: dict[str, Any]) -> str:
    if name == "loop":
        return describe(data)
    if name == "periodic":
        return f"retrained every {count(data['every'], 'row')} ({count(data['retrains'], 'retrain')})"
    if name == "static":
        return "the first champion, never retrained"
    if name == "online":
        return f"{data['model']}, learning each label as it arrives ({data['seconds']:.1f} s)"
    return "the most recent label seen"
