"""The backtest as a self-contained HTML page: each strategy's rolling score over the replayed rows, with
the loop's events marked. Inline SVG, no scripts, nothing fetched: it opens on an offline machine."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from tidal.core.text import count
from tidal.loop.backtest import BacktestResult
from tidal.loop.backtest_estimate import estimate_line
from tidal.loop.outcomes import describe, failure_line

COLORS = {"loop": "#1f77b4", "static": "#d62728", "periodic": "#2ca02c", "last_label": "#7f7f7f",
          "online": "#8c564b"}
EVENT_COLORS = {"loop.retrain": "#ff7f0e", "alias.moved": "#1f77b4", "gate.failed": "#d62728",
                "loop.trial_lost": "#d62728", "loop.trial_abandoned": "#d62728", "loop.retrain_unchanged": "#999999",
                "loop.retrain_failed": "#000000", "loop.rollback": "#9467bd"}


def _chart(result: BacktestResult, width: int = 900, height: int = 320) -> str:
    pad_l, pad_r, pad_t, pad_b = 50, 20, 20, 40
    rows = result.curve_rows or [0, 1]
    values = [v for curve in result.curves.values() for v in curve] or [0.0, 1.0]
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    lo, hi = lo - 0.05 * span, hi + 0.05 * span
    x_max = max(result.rows, 1)

    def x(row: float) -> float:
        return pad_l + (width - pad_l - pad_r) * row / x_max

    def y(value: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - (value - lo) / (hi - lo))

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="rolling {result.curve_metric or result.metric}">']
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:.3f}</text>')
    for e in result.events:
        color = EVENT_COLORS.get(e["kind"], "#999")
        parts.append(f'<line x1="{x(e["row"]):.1f}" x2="{x(e["row"]):.1f}" y1="{pad_t}" y2="{height - pad_b}" '
                     f'stroke="{color}" stroke-opacity="0.35" stroke-dasharray="3,3">'
                     f'<title>row {e["row"]:,}: {html.escape(e["message"])}</title></line>')
    for name, curve in result.curves.items():
        pts = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in zip(rows, curve, strict=False))
        parts.append(f'<polyline fill="none" stroke="{COLORS.get(name, "#000")}" stroke-width="1.8" '
                     f'points="{pts}"><title>{name}</title></polyline>')
    parts.append(f'<text x="{width / 2}" y="{height - 8}" font-size="12" text-anchor="middle">rows replayed</text>')
    parts.append("</svg>")
    return "".join(parts)


def _drift_chart(result: BacktestResult, width: int = 900, height: int = 160) -> str:
    """The loop's drift share at each tick (0 to 1), with the drift trigger's threshold: a trigger that
    stays above the line for ever has become periodic retraining; after a retrain it should fall back."""
    drift = result.drift_share or {}
    points = [(r, v) for r, v in zip(drift.get("rows") or [], drift.get("share") or [], strict=False)
              if v is not None]
    if not points:
        return ""
    pad_l, pad_r, pad_t, pad_b = 50, 20, 10, 30
    x_max = max(result.rows, 1)

    def x(row: float) -> float:
        return pad_l + (width - pad_l - pad_r) * row / x_max

    def y(value: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - value)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="drift share">']
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                     f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" font-size="11" text-anchor="end">{v:.1f}</text>')
    threshold = drift.get("threshold")
    if threshold is not None:
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(threshold):.1f}" y2="{y(threshold):.1f}" '
                     f'stroke="#d62728" stroke-dasharray="4,3"><title>retrain.on.drift.share '
                     f'{threshold:g}</title></line>')
    for e in result.events:
        if e["kind"] == "loop.retrain":
            parts.append(f'<line x1="{x(e["row"]):.1f}" x2="{x(e["row"]):.1f}" y1="{pad_t}" y2="{height - pad_b}" '
                         f'stroke="{EVENT_COLORS["loop.retrain"]}" stroke-opacity="0.35" stroke-dasharray="3,3"/>')
    pts = " ".join(f"{x(r):.1f},{y(v):.1f}" for r, v in points)
    parts.append(f'<polyline fill="none" stroke="#8c564b" stroke-width="1.5" points="{pts}">'
                 '<title>drift share</title></polyline>')
    parts.append(f'<text x="{width / 2}" y="{height - 6}" font-size="12" text-anchor="middle">rows replayed</text>')
    parts.append("</svg>")
    return "".join(parts)


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
    estimated_line = estimate_line(result.estimate)
    if estimated_line is not None:
        failed += f"<p class='estimate'>{html.escape(estimated_line)}</p>"
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:960px}}table{{border-collapse:collapse}}
td,th{{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;font-size:14px}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{count(result.rows, 'row')} replayed in time order after {count(result.initial_rows, 'initial row')}; prequential
{result.metric} (each row predicted before its label arrived).</p>
<table><tr><th>strategy</th><th>{result.metric}</th><th></th></tr>{rows}</table>{failed}
<h2>Rolling {result.curve_metric or result.metric}</h2>{_chart(result)}<p style="font-size:12px">{legend}</p>
{_drift_section(result)}
<h2>What the loop did</h2><table><tr><th>row</th><th>event</th><th>what</th></tr>{events}</table>
</body></html>"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


def _drift_section(result: BacktestResult) -> str:
    chart = _drift_chart(result)
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
