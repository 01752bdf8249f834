// tidal's charts, on uPlot: the one place that turns a chart's description (a "spec", plain JSON) into a uPlot
// chart. The dashboard (app.js) draws every chart through it, and the offline HTML reports (tidal monitor --html,
// tidal backtest --html) inline this file once with uPlot and draw the specs they embed: the same charts.
// Every chart: hover shows the values under the pointer in the legend, drag selects a range to zoom into,
// a double click resets; the axes are in the values' own units (the feature's values, dates or row numbers,
// the metric).
//
// A spec: {title, kind: "line" | "hist" | "bars", x: [...], series: [{label, values, stroke, dash, fill}],
//          xlabel, time (x holds Unix seconds, shown as UTC dates), height, width, band: [upper, lower] (1-based
//          series indices, shaded between), percent (values are shares: shown as %), categories (bars: the
//          name of each x), marks: [{x, label, color}] (vertical dashed lines: the loop's events), name}
// "hist": x holds the bins' edges (one more than the values: a histogram on the value axis).
// {kind: "distribution", plot, title, name}: a column's reference against its window, from a monitoring
// report's ``plot`` (see distribution below), as the dashboard's API and the report's JSON both hold it.
"use strict";
(function (root) {
  const PALETTE = ["#1565c0", "#c62828", "#2e7d32", "#b26a00", "#6a1b9a", "#00838f"];
  const pctText = (v) => (v === null || v === undefined ? "—" : (100 * v).toFixed(1) + "%");
  const numText = (v) => (v === null || v === undefined ? "—" : Number.isInteger(v) ? v.toLocaleString("en") : v.toPrecision(4));

  // the number of points (bins, bars) a chart draws: what the tests count
  function points(spec) { return spec.kind === "hist" ? Math.max(0, spec.x.length - 1) : spec.x.length; }

  // vertical dashed lines at each mark, drawn over the plot (each event of the loop at its row)
  function marksHook(marks) {
    return (u) => {
      const { ctx, bbox } = u;
      ctx.save();
      ctx.setLineDash([4, 4]);
      ctx.lineWidth = 1;
      for (const m of marks) {
        const x = Math.round(u.valToPos(m.x, "x", true));
        if (x < bbox.left || x > bbox.left + bbox.width) continue;
        ctx.strokeStyle = m.color || "#999";
        ctx.globalAlpha = 0.5;
        ctx.beginPath(); ctx.moveTo(x, bbox.top); ctx.lineTo(x, bbox.top + bbox.height); ctx.stroke();
      }
      ctx.restore();
    };
  }

  // hover over a mark: what it is, in a line under the legend (the events at the nearest marked x, within 6 px)
  function marksHover(marks, line) {
    return (u) => {
      const left = u.cursor.left;
      let best = null, gap = 6;
      for (const m of marks) {
        const d = Math.abs(u.valToPos(m.x, "x") - left);
        if (left >= 0 && d <= gap) { best = m.x; gap = d; }
      }
      line.textContent = best === null ? "" : marks.filter((m) => m.x === best).map((m) => `${numText(m.x)}: ${m.label}`).join(" · ");
    };
  }

  function options(spec, width, box) {
    const kind = spec.kind || "line";
    const fmt = spec.percent ? pctText : numText;
    const x = { label: spec.xlabel || "x" };
    const axisX = { label: spec.xlabel || "" };
    const scaleX = { time: !!spec.time };
    if (kind === "bars") {
      const names = spec.categories || spec.x.map(String);
      x.value = (u, v) => (v === null || v === undefined ? "—" : names[Math.round(v)] ?? "");
      axisX.splits = () => names.map((_, i) => i);
      axisX.values = (u, splits) => splits.map((i) => { const n = String(names[i] ?? ""); return n.length > 14 ? n.slice(0, 13) + "…" : n; });
      axisX.rotate = names.length > 8 ? -45 : 0;
      scaleX.range = () => [-0.5, names.length - 0.5];
    } else if (!spec.time) {
      x.value = (u, v) => numText(v);
    }
    const bars = kind === "bars" && root.uPlot.paths.bars;
    const stepped = kind === "hist" && root.uPlot.paths.stepped;
    const n = spec.series.length;
    const series = spec.series.map((s, i) => {
      const stroke = s.stroke || PALETTE[i % PALETTE.length];
      const out = { label: s.label, stroke, width: kind === "bars" ? 1 : 2, dash: s.dash, spanGaps: kind === "line",
        value: (u, v) => fmt(v), points: { show: kind === "line" && spec.x.length < 60 } };
      if (bars) {
        // side by side within each category: the first series left of the tick, the second right
        out.paths = bars({ size: [n > 1 ? 0.4 : 0.7, 80], align: n > 1 ? (i === 0 ? -1 : 1) : 0 });
        out.fill = s.fill || stroke + "b0";
      } else if (stepped) {
        out.paths = stepped({ align: 1 });
        out.fill = s.fill || stroke + "26";
      } else if (s.fill) out.fill = s.fill;
      return out;
    });
    return {
      title: spec.title, width, height: spec.height || 220,
      scales: { x: scaleX, y: spec.percent ? { range: (u, lo, hi) => [0, Math.max(hi, 0.01) * 1.05] } : {} },
      tzDate: (ts) => root.uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"),   // UTC, as every time in the tables
      // y: the metric's own ticks (uPlot's), or percentages for shares
      axes: [axisX, spec.percent ? { size: 60, values: (u, splits) => splits.map((v) => (100 * v).toFixed(0) + "%") } : { size: 60 }],
      series: [x, ...series],
      bands: spec.band ? [{ series: spec.band, fill: "rgba(21,101,192,0.12)" }] : undefined,
      cursor: { drag: { x: true, y: false } },     // drag to zoom on x; a double click resets (uPlot's default)
      hooks: spec.marks && spec.marks.length ? { draw: [marksHook(spec.marks)],
        setCursor: box ? [marksHover(spec.marks, markLine(box))] : [] } : {},
    };
  }

  function markLine(box) {
    const line = root.document.createElement("div");
    line.className = "marks";
    line.style.cssText = "font-size:11px;color:#444;min-height:1.3em;text-align:center";
    box.after(line);
    return line;
  }

  function data(spec) {
    if (spec.kind === "hist") {
      // a step per bin from its left edge; the last value repeated at the right edge closes the last step
      return [spec.x, ...spec.series.map((s) => [...s.values, s.values.length ? s.values[s.values.length - 1] : null])];
    }
    return [spec.x, ...spec.series.map((s) => s.values)];
  }

  const shares = (xs) => { const n = xs.reduce((a, b) => a + b, 0) || 1; return xs.map((v) => v / n); };

  // A monitoring report's ``plot`` of one column as a spec: a numeric column's training-quantile bins as a
  // histogram on the column's own value axis (the share of rows per unit of the value, so bins of unequal
  // width compare); a column of a few values (a flag, a rating: a bin per value) and a categorical column
  // as bars per value or category; reference (grey) beside the window (blue).
  function distribution(plot, title, name) {
    const colours = [{ label: "reference", stroke: "#7b8794" }, { label: "window", stroke: "#1565c0" }];
    const edges = plot.edges || [];
    if (plot.type === "numeric" && edges.length > 2 && edges[edges.length - 1] !== edges[edges.length - 2]) {
      const widths = edges.slice(0, -1).map((e, i) => edges[i + 1] - e);
      const dense = widths.every((w) => w > 0);
      const per = (xs) => shares(xs).map((v, i) => (dense ? v / widths[i] : v));
      return { kind: "hist", title: title + (dense ? ": share of rows per unit" : ": share of rows per bin"), name,
        x: edges, xlabel: title, height: 170, series: [{ ...colours[0], values: per(plot.reference) },
          { ...colours[1], values: per(plot.current) }] };
    }
    let names, ref = plot.reference || [], cur = plot.current || [];
    if (plot.type === "numeric") names = edges.slice(0, -1).map((e) => numText(e));
    else {
      names = (plot.categories || []).map((c) => (c === "__other__" ? "(other)" : String(c)));
      if (names.length && names[names.length - 1] === "(other)" && !ref[ref.length - 1] && !cur[cur.length - 1]) {
        names = names.slice(0, -1); ref = ref.slice(0, -1); cur = cur.slice(0, -1);   // nothing outside the listed
      }
    }
    return { kind: "bars", title: title + (plot.type === "numeric" ? ": share of rows per value" : ": share of rows per category"),
      name, x: names.map((_, i) => i), categories: names, xlabel: title, percent: true, height: 170,
      series: [{ ...colours[0], values: shares(ref) }, { ...colours[1], values: shares(cur) }] };
  }

  // Draw ``spec`` into ``box`` (an element already in the page); the uPlot instance.
  function draw(box, spec, width) {
    if (spec.kind === "distribution") spec = distribution(spec.plot, spec.title, spec.name);
    box.dataset.points = String(points(spec));
    const w = width || spec.width || Math.max(320, Math.min(1150, (box.parentElement || box).clientWidth - 24));
    const u = new root.uPlot(options(spec, w, box), data(spec), box);
    box.uplot = u;   // (for a test, or a reader at the console: its scales, its data)
    return u;
  }

  // The reports: every element with data-spec="KEY" gets the chart of specs[KEY].
  function drawAll(specs, doc) {
    const out = [];
    for (const box of (doc || root.document).querySelectorAll("[data-spec]")) {
      const spec = specs[box.dataset.spec];
      if (spec) out.push(draw(box, spec));
    }
    return out;
  }

  root.TidalCharts = { draw, drawAll, distribution, options, data, points };
})(window);
