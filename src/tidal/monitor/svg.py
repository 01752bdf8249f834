"""Small inline SVG charts for the HTML report, written by hand: no plotting library, no JavaScript,
nothing fetched from a network (users read reports offline).

Every function returns one ``<svg>`` element as text; every piece of text in it is escaped, since
column and category names come from user data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

REFERENCE_COLOUR = "#9aa5b1"
CURRENT_COLOUR = "#2563eb"
DRIFT_COLOUR = "#dc2626"
FONT = 'font-family="system-ui,sans-serif" font-size="10"'


def _n(value: float) -> str:
    """A coordinate, short: SVG size matters when a report has many charts."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _label(value: float) -> str:
    """A number for an axis: 4 significant digits."""
    return f"{value:.4g}"


def _shares(counts: Sequence[float]) -> list[float]:
    total = float(sum(counts))
    return [c / total if total else 0.0 for c in counts]


def distribution_svg(plot: Mapping[str, Any], *, width: int = 380, height: int = 150) -> str:
    """Reference (grey) against window (blue) for one column's ``plot`` (see ``ColumnDrift``)."""
    if plot.get("type") == "categorical":
        return _categories_svg(plot, width=width)
    edges = list(plot.get("edges") or [])
    if len(edges) >= 2 and edges[-1] == edges[-2]:
        # one bin per value (a flag, a rating): label the bars with the values
        names = [_label(e) for e in edges[:-1]]
        return _bars_svg(names, plot["reference"], plot["current"], width=width, height=height,
                         caption="share of rows per value")
    names = [""] * len(plot.get("reference") or [])
    reference = list(plot.get("reference") or [])
    current = list(plot.get("current") or [])
    below, above = int(plot.get("below") or 0), int(plot.get("above") or 0)
    ticks = {0: _label(edges[0]), len(names): _label(edges[-1])} if edges else {}
    if len(edges) > 2:
        ticks[len(names) // 2] = _label(edges[len(names) // 2])
    if below:
        names, reference, current = ["<", *names], [0, *reference], [below, *current]
        ticks = {k + 1: v for k, v in ticks.items()}
    if above:
        names, reference, current = [*names, ">"], [*reference, 0], [*current, above]
    return _bars_svg(names, reference, current, width=width, height=height, ticks=ticks,
                     caption=f"share of rows per training-quantile bin (1/{max(1, len(plot.get('reference') or []))}"
                             " of training rows each)")


def _bars_svg(
    names: Sequence[str], reference: Sequence[float], current: Sequence[float], *, width: int, height: int,
    caption: str, ticks: Mapping[int, str] | None = None,
) -> str:
    left, right, top, bottom = 34, 10, 8, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    ref, cur = _shares(reference), _shares(current)
    top_share = max([*ref, *cur, 1e-9])
    slot = plot_w / max(1, len(names))
    bar = max(0.6, slot * 0.42)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" {FONT}>']
    base = top + plot_h
    parts.append(f'<line x1="{left}" y1="{base}" x2="{width - right}" y2="{base}" stroke="#444"/>')
    parts.append(f'<text x="{left - 3}" y="{top + 8}" text-anchor="end">{top_share:.0%}</text>')
    for i, (r, c) in enumerate(zip(ref, cur, strict=True)):
        x = left + i * slot + slot * 0.08
        for offset, share, colour in ((0.0, r, REFERENCE_COLOUR), (bar, c, CURRENT_COLOUR)):
            h = plot_h * share / top_share
            if h > 0:
                parts.append(f'<rect x="{_n(x + offset)}" y="{_n(base - h)}" width="{_n(bar)}" '
                             f'height="{_n(h)}" fill="{colour}"/>')
    labels = ticks if ticks is not None else {i: n for i, n in enumerate(names)}
    if ticks is None and len(names) > 12:  # too many to read: every other one
        labels = {i: n for i, n in enumerate(names) if i % 2 == 0}
    for i, text in labels.items():
        x = left + (i + (0.5 if ticks is None else 0)) * slot
        parts.append(f'<text x="{_n(x)}" y="{base + 11}" text-anchor="middle">{escape(text)}</text>')
    if ticks is not None:
        for i, text in enumerate(names):
            if text in ("<", ">"):  # window values outside the training range, on a second line
                word = "below range" if text == "<" else "above range"
                parts.append(f'<text x="{_n(left + (i + 0.5) * slot)}" y="{base + 22}" '
                             f'text-anchor="{"start" if text == "<" else "end"}" fill="{DRIFT_COLOUR}">{word}</text>')
    parts.append(f'<text x="{left}" y="{height - 4}" fill="#666">{escape(caption)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _categories_svg(plot: Mapping[str, Any], *, width: int) -> str:
    names = [("(other)" if n == "__other__" else str(n)) for n in plot.get("categories") or []]
    ref, cur = _shares(plot.get("reference") or []), _shares(plot.get("current") or [])
    if names and names[-1] == "(other)" and ref[-1] == 0 and cur[-1] == 0:
        names, ref, cur = names[:-1], ref[:-1], cur[:-1]  # nothing outside the listed categories
    row, label_w, top = 16, 110, 4
    height = top + row * len(names) + 16
    bar_w = width - label_w - 44
    top_share = max([*ref, *cur, 1e-9])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" {FONT}>']
    for i, name in enumerate(names):
        y = top + i * row
        short = name if len(name) <= 18 else name[:17] + "…"
        parts.append(f'<text x="{label_w - 4}" y="{y + 11}" text-anchor="end">{escape(short)}</text>')
        for offset, share, colour in ((1, ref[i], REFERENCE_COLOUR), (8, cur[i], CURRENT_COLOUR)):
            w = bar_w * share / top_share
            if w > 0:
                parts.append(f'<rect x="{label_w}" y="{y + offset}" width="{_n(w)}" height="6" fill="{colour}"/>')
        parts.append(f'<text x="{_n(label_w + bar_w + 4)}" y="{y + 11}">{cur[i]:.0%}</text>')
    parts.append(f'<text x="4" y="{height - 4}" fill="#666">share of rows per category</text></svg>')
    return "".join(parts)


def line_svg(
    points: Sequence[tuple[str, float | None, float | None, float | None]], *, title: str,
    threshold: float | None = None, width: int = 380, height: int = 140, percent: bool = False,
) -> str:
    """A small line chart over reports: ``(x label, value, low, high)`` per point, a shaded band for
    the interval where there is one, a dashed line at ``threshold``."""
    left, right, top, bottom = 40, 8, 16, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [v for _, v, lo, hi in points for v in (v, lo, hi) if v is not None and math.isfinite(v)]
    if threshold is not None:
        values.append(threshold)
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    if high - low < 1e-9:
        low, high = low - 0.5 if low else 0.0, high + 0.5 if high else 1.0
    pad = (high - low) * 0.08
    low, high = low - pad, high + pad

    def x(i: int) -> float:
        return left + (plot_w * i / (len(points) - 1) if len(points) > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h * (1 - (v - low) / (high - low))

    fmt = (lambda v: f"{v:.0%}") if percent else _label
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" {FONT}>',
             f'<text x="{left}" y="11" font-weight="bold">{escape(title)}</text>',
             f'<text x="{left - 3}" y="{_n(y(high - pad) + 4)}" text-anchor="end">{fmt(high - pad)}</text>',
             f'<text x="{left - 3}" y="{_n(y(low + pad) + 4)}" text-anchor="end">{fmt(low + pad)}</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="#444"/>']
    band = [(i, lo, hi) for i, (_, _, lo, hi) in enumerate(points) if lo is not None and hi is not None]
    if len(band) > 1:
        upper = " ".join(f"{_n(x(i))},{_n(y(hi))}" for i, _, hi in band)
        lower = " ".join(f"{_n(x(i))},{_n(y(lo))}" for i, lo, _ in reversed(band))
        parts.append(f'<polygon points="{upper} {lower}" fill="{CURRENT_COLOUR}" fill-opacity="0.15"/>')
    if threshold is not None:
        parts.append(f'<line x1="{left}" y1="{_n(y(threshold))}" x2="{width - right}" y2="{_n(y(threshold))}" '
                     f'stroke="{DRIFT_COLOUR}" stroke-dasharray="4 3"/>')
    line = [(i, v) for i, (_, v, _, _) in enumerate(points) if v is not None and math.isfinite(v)]
    if len(line) > 1:
        parts.append('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}"/>'.format(
            CURRENT_COLOUR, " ".join(f"{_n(x(i))},{_n(y(v))}" for i, v in line)))
    for i, v in line:
        parts.append(f'<circle cx="{_n(x(i))}" cy="{_n(y(v))}" r="2.5" fill="{CURRENT_COLOUR}"/>')
    if points:
        parts.append(f'<text x="{left}" y="{height - 6}">{escape(points[0][0])}</text>')
        if len(points) > 1:
            parts.append(f'<text x="{width - right}" y="{height - 6}" text-anchor="end">{escape(points[-1][0])}</text>')
    if not line:
        parts.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h / 2}" text-anchor="middle" fill="#666">'
                     "no values yet</text>")
    parts.append("</svg>")
    return "".join(parts)


__all__ = ["distribution_svg", "line_svg"]
