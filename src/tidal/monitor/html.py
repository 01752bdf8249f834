"""The HTML report: one self-contained file, nothing fetched (it opens offline).

The newest report in detail — alerts, performance with its interval against validation, the
performance estimated on the unlabelled rows beside the realised one, the drift statistic of each feature
against its threshold, the drift table (test, statistic, threshold, verdict, sizes, nulls, unseen
categories), prediction drift, and per feature the reference against the window on the feature's own values
— and, over all the reports given, the primary metric with its interval, the share of drifted features and
each feature's drift statistic. The charts are the dashboard's (uPlot and its ``charts.js``, inlined once:
~61 KB whatever the number of charts; see :mod:`tidal.core.charts`). Only what the report body holds is shown
(counts and statistics), never raw rows, so the rest stays small: ~2 KB a feature.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from tidal.core.charts import Charts, short
from tidal.core.entities import ModelVersion, Report
from tidal.core.text import count
from tidal.monitor.report import loop_failure

_CSS = """
body{font-family:system-ui,sans-serif;margin:24px;color:#1f2937;max-width:1200px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px;border-bottom:1px solid #e5e7eb;padding-bottom:4px}
table{border-collapse:collapse;font-size:12px}td,th{padding:3px 8px;border-bottom:1px solid #eee;text-align:left}
th{background:#f9fafb}td.num{text-align:right;font-variant-numeric:tabular-nums}
.bad{color:#dc2626;font-weight:600}.ok{color:#15803d}.muted{color:#6b7280}
.alerts{background:#fef2f2;border:1px solid #fecaca;padding:8px 12px;border-radius:6px}
.fine{background:#f0fdf4;border:1px solid #bbf7d0;padding:8px 12px;border-radius:6px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{border:1px solid #e5e7eb;border-radius:6px;padding:8px}
.card h3{font-size:13px;margin:0 0 4px}.legend span{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
"""


def render_html(reports: Sequence[Report], mv: ModelVersion, path: Path) -> Path:
    """Write the HTML report of ``reports`` (the newest in detail, all of them as trends) to ``path``."""
    path = Path(path)
    ordered = sorted(reports, key=lambda r: r.created_at)
    title = f"tidal monitor — {mv.name}:{mv.version}"
    charts = Charts()
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
             f"<style>{_CSS}</style>{charts.style()}</head><body><h1>{escape(title)}</h1>"]
    if not ordered:
        parts.append("<p>No monitoring reports yet: run <code>tidal monitor</code> after the model has "
                     "served some predictions.</p>")
    else:
        newest = ordered[-1]
        body = newest.body or {}
        parts.append(_header(newest, body))
        parts.append(_alerts(body))
        if (failed := loop_failure(body)) is not None:
            parts.append(f"<div class='alerts loop-failed'><b>Retraining</b><p>{escape(failed)}</p></div>")
        parts.append(_performance(body.get("performance") or {}))
        parts.append(_estimate(body.get("estimate") or {}))
        parts.append(_trends(ordered, charts))
        drift = body.get("drift") or {}
        parts.append("<h2>Data drift</h2>" + _drift_summary(drift) + _statistics(drift.get("columns") or [], charts)
                     + _drift_table(drift.get("columns") or []))
        parts.append(_legend() + _cards(drift.get("columns") or [], charts))
        parts.append(_images(body.get("images") or []))
        outputs = body.get("prediction_drift") or {}
        parts.append("<h2>Prediction drift</h2>")
        if outputs.get("note"):
            parts.append(f"<p class='muted'>{escape(str(outputs['note']))}</p>")
        parts.append(_drift_table(outputs.get("columns") or []) + _cards(outputs.get("columns") or [], charts))
    parts.append(charts.scripts() + "</body></html>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(parts), encoding="utf-8")
    return path


def _header(report: Report, body: Mapping[str, Any]) -> str:
    window = body.get("window") or report.window or {}
    span = ""
    if window.get("first"):
        span = f", {escape(str(window['first']))} → {escape(str(window.get('last')))}"
    return (f"<p>Report <code>{escape(report.id)}</code> made {escape(report.created_at.isoformat())} · window "
            f"{count(int(window.get('rows') or 0), 'prediction')}{span} · {int(window.get('labelled') or 0):,} "
            "labelled</p>")


def _alerts(body: Mapping[str, Any]) -> str:
    alerts, notes = body.get("alerts") or [], body.get("notes") or []
    out = "<div class='fine'>No alerts.</div>"
    if alerts:
        items = "".join(f"<li>{escape(str(a.get('message', '')))}</li>" for a in alerts)
        out = f"<div class='alerts'><b>Alerts</b><ul>{items}</ul></div>"
    if notes:
        items = "".join(f"<li>{escape(str(n.get('message', '')))}</li>" for n in notes)
        out += f"<div class='muted'><b>Notes</b><ul>{items}</ul></div>"
    return out


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return escape(str(value))


def _performance(perf: Mapping[str, Any]) -> str:
    if not perf:
        return ""
    ci = perf.get("ci")
    interval = f"{_fmt(ci[0])} to {_fmt(ci[1])}" if ci else "—"
    status = escape(str(perf.get("status", "")))
    cls = "bad" if perf.get("alert") else ("ok" if status == "ok" else "muted")
    rows = [("metric", escape(str(perf.get("metric")))), ("value", _fmt(perf.get("value"))),
            (f"{int(100 * (perf.get('confidence') or 0.95))}% interval", f"{interval} "
             f"<span class='muted'>({escape(str(perf.get('ci_method') or 'n/a'))})</span>"),
            ("validation", _fmt(perf.get("validation"))), ("floor", _fmt(perf.get("floor"))),
            ("labelled rows", f"{int(perf.get('labelled') or 0):,} (min {perf.get('min_labelled')})"),
            ("status", f"<span class='{cls}'>{status}</span> {escape(str(perf.get('why') or ''))}")]
    others = perf.get("metrics") or {}
    if others:
        rows.append(("all metrics", ", ".join(f"{escape(str(k))} {_fmt(v)}" for k, v in others.items())))
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<h2>Performance</h2><table>{table}</table>"


def _estimate(est: Mapping[str, Any]) -> str:
    """The estimate before the labels arrive, beside the realised value (tidal.monitor.estimate)."""
    if not est:
        return ""
    metric = escape(str(est.get("metric")))
    se = est.get("se")
    value = _fmt(est.get("value")) + (f" <span class='muted'>± {_fmt(1.96 * se)} (95%)</span>" if se else "")
    check = est.get("check") or {}
    cal = est.get("calibration") or {}
    rows = [("status", f"{escape(str(est.get('status')))} <span class='muted'>{escape(str(est.get('why') or ''))}"
                       "</span>"),
            (f"estimated {metric}", value),
            ("unlabelled rows covered", f"{int(est.get('rows') or 0):,} of {int(est.get('unlabelled') or 0):,}"),
            (f"realised {metric}", f"{_fmt(est.get('realised'))} on {int(est.get('labelled') or 0):,} labelled"),
            ("check on the labelled rows", "—" if not check else
             f"estimated {_fmt(check.get('estimated'))}, realised {_fmt(check.get('realised'))} "
             f"({int(check.get('rows') or 0):,} rows)"),
            ("calibration", f"{escape(str(cal.get('method') or 'none'))} <span class='muted'>ECE raw "
                            f"{_fmt(cal.get('ece_raw'))}, with a map {_fmt(cal.get('ece_calibrated'))}; "
                            f"{escape(str(cal.get('why') or ''))}</span>")]
    table = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows)
    return f"<h2>Performance before the labels arrive</h2><table>{table}</table>"


def _trends(reports: Sequence[Report], charts: Charts) -> str:
    """Over the reports given: the primary metric with its interval, the share of drifted features against
    the dataset's threshold, and each feature's drift statistic; x is each report's time (UTC)."""
    metric = None
    xs: list[float] = []
    value: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    share: list[float | None] = []
    threshold = None
    for report in reports:
        body = report.body or {}
        perf = body.get("performance") or {}
        metric = metric or perf.get("metric")
        ci = perf.get("ci") or [None, None]
        v = perf.get("value") if perf.get("metric") == metric else None
        xs.append(report.created_at.timestamp())
        value.append(short(v))
        low.append(short(ci[0]) if v is not None else None)
        high.append(short(ci[1]) if v is not None else None)
        share.append(short(report.drift_share))
        threshold = (body.get("drift") or {}).get("share_threshold", threshold)
    performance = {"title": f"{metric or 'metric'} with its 95% interval (shaded)", "name": "performance",
                   "time": True, "xlabel": "report", "x": xs, "band": [3, 2],
                   "series": [{"label": metric or "metric", "values": value},
                              {"label": "lower", "values": low, "dash": [4, 4], "stroke": "#90a4ae"},
                              {"label": "upper", "values": high, "dash": [4, 4], "stroke": "#90a4ae"}]}
    lines: list[dict[str, Any]] = [{"label": "drift share", "values": share}]
    if threshold is not None:
        lines.append({"label": "threshold", "values": [short(threshold)] * len(xs), "dash": [4, 3],
                      "stroke": "#dc2626"})
    drift = {"title": "share of drifted features", "name": "drift", "time": True, "xlabel": "report", "x": xs,
             "percent": True, "series": lines}
    columns: dict[str, list[float | None]] = {}
    for i, report in enumerate(reports):
        for c in ((report.body or {}).get("drift") or {}).get("columns") or []:
            columns.setdefault(str(c.get("column")), [None] * len(reports))[i] = short(c.get("statistic"), 4)
    per_feature = {"title": "drift statistic per feature (each its own test: see the table)",
                   "name": "drift-per-feature", "time": True, "xlabel": "report", "x": xs, "height": 260,
                   "series": [{"label": name, "values": values} for name, values in columns.items()]}
    return ("<h2>Recent windows</h2><div class='grid'><div class='card'>" + charts.box({**performance, "width": 560})
            + "</div><div class='card'>" + charts.box({**drift, "width": 560}) + "</div></div>"
            + "<h3>Drift per feature over time</h3>" + charts.box({**per_feature, "width": 1140})
            + f"<p class='muted'>{count(len(reports), 'report')}.</p>")


def _statistics(columns: Sequence[Mapping[str, Any]], charts: Charts) -> str:
    """The newest report's drift statistic of each tested feature beside its threshold, as bars."""
    tested = [c for c in columns if c.get("statistic") is not None]
    if not tested:
        return ""
    spec = {"kind": "bars", "title": "drift statistic per feature, beside its threshold", "name": "statistics",
            "x": list(range(len(tested))), "categories": [str(c.get("column")) for c in tested], "xlabel": "feature",
            "height": 240, "width": 1140,
            "series": [{"label": "statistic", "values": [short(c.get("statistic"), 4) for c in tested]},
                       {"label": "threshold", "values": [short(c.get("threshold"), 4) for c in tested],
                        "stroke": "#dc2626"}]}
    return charts.box(spec)


def _drift_summary(drift: Mapping[str, Any]) -> str:
    verdict = "<span class='bad'>drifted</span>" if drift.get("drifted") else "<span class='ok'>stable</span>"
    return (f"<p>{verdict}: {int(drift.get('n_drifted') or 0)} of {int(drift.get('counted') or 0)} features "
            f"drifted ({float(drift.get('share') or 0):.0%}; the dataset drifts at "
            f"{float(drift.get('share_threshold') or 0):.0%}). Method: {escape(str(drift.get('method')))}.</p>")


def _drift_table(columns: Sequence[Mapping[str, Any]]) -> str:
    if not columns:
        return ""
    head = ("<tr><th>column</th><th>kind</th><th>test</th><th>statistic</th><th>threshold</th><th>verdict</th>"
            "<th>n ref</th><th>n window</th><th>nulls ref → window</th><th>unseen</th><th>why</th></tr>")
    rows = []
    for c in columns:
        verdict = "<span class='bad'>drift</span>" if c.get("drifted") else (
            "<span class='ok'>ok</span>" if c.get("status") == "tested" else escape(str(c.get("status"))))
        relation = "p &lt;" if c.get("is_pvalue") else "≥"
        threshold = f"{relation} {_fmt(c.get('threshold'))}" if c.get("threshold") is not None else "—"
        nulls_now = c.get("null_share_current")
        nulls = f"{float(c.get('null_share_reference') or 0):.1%} → " + (
            "—" if nulls_now is None else f"{float(nulls_now):.1%}")
        unseen = "" if c.get("unseen") is None else f"{int(c['unseen']):,}"
        rows.append(
            f"<tr><td>{escape(str(c.get('column')))}</td><td>{escape(str(c.get('kind')))}</td>"
            f"<td>{escape(str(c.get('test') or '—'))}</td><td class='num'>{_fmt(c.get('statistic'))}</td>"
            f"<td class='num'>{threshold}</td><td>{verdict}</td>"
            f"<td class='num'>{int(c.get('n_reference') or 0):,}</td>"
            f"<td class='num'>{int(c.get('n_current') or 0):,}</td>"
            f"<td class='num'>{nulls}</td><td class='num'>{unseen}</td>"
            f"<td class='muted'>{escape(str(c.get('why') or ''))}</td></tr>")
    return f"<table class='drift'>{head}{''.join(rows)}</table>"


def _images(panels: Sequence[Mapping[str, Any]]) -> str:
    """Per image column: which statistic moved (the means on both sides), and a few thumbnails of the window
    beside a few of the training images (``data:`` URIs: the file stays self-contained)."""
    if not panels:
        return ""
    out = ["<h2>Images</h2><p class='muted'>A column of images is judged on statistics of its thumbnails "
           "(brightness and contrast: mean and standard deviation of the luminance in [0, 1]; sharpness: "
           "variance of its Laplacian; orientation: the share of horizontal gradients; pc1...: its pixels on the "
           "training images' principal components; emb1...: the network's own embedding of the image, its penultimate "
           "layer, on the principal components of the training images' embeddings), each a feature above.</p>"]
    for panel in panels:
        rows = []
        for stat in panel.get("statistics") or []:
            verdict = "<span class='bad'>moved</span>" if stat.get("drifted") else "<span class='ok'>ok</span>"
            rows.append(f"<tr><td>{escape(str(stat.get('name')))}</td><td class='num'>{_fmt(stat.get('reference'))}"
                        f"</td><td class='num'>{_fmt(stat.get('window'))}</td><td>{verdict}</td></tr>")
        table = ("<table class='image-stats'><tr><th>statistic</th><th>reference mean</th><th>window mean</th>"
                 f"<th>verdict</th></tr>{''.join(rows)}</table>")
        out.append(f"<h3>{escape(str(panel.get('column')))}</h3>{table}<div class='grid'>"
                   + _strip("this window", panel.get("window") or [])
                   + _strip("reference (training)", panel.get("reference") or []) + "</div>")
    return "".join(out)


def _strip(title: str, thumbnails: Sequence[str]) -> str:
    images = "".join(f"<img class='thumb' src='data:image/png;base64,{escape(str(t))}' width='48' height='48' "
                     "style='image-rendering:pixelated;margin:2px;object-fit:contain' alt=''>" for t in thumbnails)
    return f"<div class='card'><h3>{escape(title)}</h3>{images or '<p class=muted>none</p>'}</div>"


def _legend() -> str:
    return ("<p class='legend muted'>Per feature:<span style='background:#7b8794'></span>reference (training)"
            "<span style='background:#1565c0'></span>this window; a numeric feature on its own values (its "
            "training-quantile bins), a categorical one per category. Hover for values, drag to zoom, double-click "
            "to reset.</p>")


def _cards(columns: Sequence[Mapping[str, Any]], charts: Charts) -> str:
    cards = []
    for c in columns:
        plot = c.get("plot")
        name = str(c.get("column"))
        mark = " <span class='bad'>drift</span>" if c.get("drifted") else ""
        chart = f"<p class='muted'>{escape(str(c.get('why') or 'no plot'))}</p>"
        if plot:
            chart = charts.box({"kind": "distribution", "title": name, "name": f"dist-{name}", "width": 370,
                                "plot": _plot(plot)}, name=f"dist-{name}")
        extra = ""
        below, above = int((plot or {}).get("below") or 0), int((plot or {}).get("above") or 0)
        if below or above:  # window values outside the training range: no bin of the reference holds them
            extra += (f"<div class='muted'>outside the training range (no bin above): {below:,} window rows "
                      f"below, {above:,} above</div>")
        unseen = c.get("unseen_categories") or {}
        if unseen:
            extra += "<div class='muted'>unseen: " + ", ".join(
                f"{escape(str(k))} ({int(v):,})" for k, v in unseen.items()) + "</div>"
        cards.append(f"<div class='card'><h3>{escape(name)}{mark}</h3>{chart}{extra}</div>")
    return f"<div class='grid'>{''.join(cards)}</div>"


def _plot(plot: Mapping[str, Any]) -> dict[str, Any]:
    """The plot as the chart needs it: counts, and the edges to 6 significant digits (not the raw values)."""
    out = {k: plot[k] for k in ("type", "categories", "reference", "current") if k in plot}
    if "edges" in plot:
        out["edges"] = [short(e) for e in plot["edges"]]
    return out


__all__ = ["render_html"]
