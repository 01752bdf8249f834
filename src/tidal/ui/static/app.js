// tidal's dashboard: a small client of the management API (/api/v1). It signs in with a token (the API sets
// an HttpOnly session cookie), reads JSON with that cookie, and sends the session's CSRF token on every action.
// Every text from the API goes into the page as a text node (never as HTML), so no value can inject markup.
"use strict";

const POLL_MS = 5000;            // the Overview refreshes itself this often (while it is shown)
const S = { me: null, csrf: null, timer: null, charts: [] };

// -- building the page ----------------------------------------------------------------------------------
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}
const main = () => document.getElementById("main");
function fmt(x, digits = 3) {
  if (x === null || x === undefined) return "—";
  if (typeof x === "number") return Number.isInteger(x) ? x.toLocaleString("en") : x.toFixed(digits);
  return String(x);
}
const pct = (x) => (x === null || x === undefined ? "—" : (100 * x).toFixed(1) + "%");
const when = (t) => (t ? String(t).replace("T", " ").slice(0, 19) : "—");
const short = (id) => String(id || "").slice(0, 8);
const state = (s) => h("span", { class: `state ${s}` }, s);
const aliases = (list) => (list || []).map((a) => h("span", { class: "alias" }, a));
function table(head, rows, attrs) {
  return h("table", attrs || {}, h("thead", {}, h("tr", {}, head.map((x) => h("th", {}, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => (c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c)))))));
}
const kv = (obj) => table(["key", "value"], Object.entries(obj || {}).map(([k, v]) =>
  [h("code", {}, k), typeof v === "object" && v !== null ? JSON.stringify(v) : fmt(v, 4)]));
function flash(text, error) {
  const el = document.getElementById("flash");
  el.textContent = text; el.className = error ? "error" : ""; el.hidden = !text;
}

// -- the API --------------------------------------------------------------------------------------------
class ApiError extends Error { constructor(status, body) { super(body.error || `HTTP ${status}`); this.status = status; this.hint = body.hint; } }
async function api(path, { method = "GET", body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && S.csrf) headers["X-CSRF-Token"] = S.csrf;
  const r = await fetch("/api/v1" + path, { method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    if (r.status === 401 && path !== "/session") { S.me = null; signIn(data.error); }
    throw new ApiError(r.status, data);
  }
  return data;
}
const canOperate = () => S.me && (S.me.role === "operator" || S.me.role === "admin");

// -- signing in -----------------------------------------------------------------------------------------
function signIn(message) {
  stop();
  document.getElementById("nav").hidden = true;
  document.getElementById("who").textContent = "";
  const input = h("input", { type: "password", id: "token", placeholder: "tidal_<id>_<secret>", autocomplete: "off" });
  const err = h("p", { class: "bad", id: "signin-error" }, message && message !== "no credentials: this API needs a token" ? message : "");
  const form = h("form", { class: "card signin", id: "signin", onsubmit: async (ev) => {
    ev.preventDefault();
    try {
      await api("/session", { method: "POST", body: { token: input.value.trim() } });
      if (await loadMe()) route();
    } catch (e) { err.textContent = e.message + (e.hint ? ` (${e.hint})` : ""); }
  } },
  h("h1", {}, "Sign in"),
  h("p", { class: "muted" }, "Paste an API token (tidal tokens create --role viewer --name you). The page keeps an HttpOnly session cookie; the token itself is not stored."),
  input, h("button", { type: "submit" }, "Sign in"), err);
  main().replaceChildren(form);
  document.body.dataset.page = "signin";
  input.focus();
}
async function loadMe() {
  const me = await api("/session");
  if (!me.signed_in) { S.me = null; return false; }
  S.me = me;
  S.csrf = S.me.csrf_token;
  document.getElementById("nav").hidden = false;
  document.getElementById("who").replaceChildren(`${S.me.actor} · ${S.me.role}`,
    S.me.via === "cookie" ? h("button", { id: "signout", onclick: async () => {
      await api("/session", { method: "DELETE" }); S.me = null; signIn();
    } }, "Sign out") : "");
  return true;
}

// -- charts: through charts.js (uPlot; the offline HTML reports draw theirs with the same file): axes in value
// units, hover shows the values, drag to zoom, double-click to reset ------------------------------------------
function chart(title, xs, series, { xlabel = "", time = false, height = 220, band = null, name = "" } = {}) {
  return chartOf({ title, x: xs, series, xlabel, time, height, band }, name || title);
}
function chartOf(spec, name) {
  const box = h("div", { class: "chart", dataset: { chart: name } });
  box.dataset.points = String(TidalCharts.points(spec.kind === "distribution" ? TidalCharts.distribution(spec.plot, spec.title) : spec));
  // drawn once the page holds the box (route() calls draw after it swaps the content in)
  box.draw = () => S.charts.push(TidalCharts.draw(box, spec, spec.width || Math.max(320, Math.min(1150, main().clientWidth - 24))));
  return box;
}
const seconds = (t) => new Date(t).getTime() / 1000;

// -- pages ----------------------------------------------------------------------------------------------
async function overview() {
  const [models, reports, events, loop, project] = await Promise.all([
    api("/models?limit=1000"), api("/reports?limit=1"), api("/events?limit=15"), api("/loop"), api("/project")]);
  const champ = models.items.find((m) => m.aliases.includes("champion"));
  const others = models.items.filter((m) => m.aliases.some((a) => a !== "champion"));
  const report = reports.items.length ? await api(`/reports/${reports.items[0].id}`) : null;
  let why = null;
  if (champ) why = (await api(`/models/${encodeURIComponent(champ.name)}/versions/${champ.version}`)).serving;
  const perf = report && report.performance, est = report && report.estimate;
  const cards = h("div", { class: "cards" },
    h("div", { class: "card", id: "champion" }, h("div", { class: "label" }, "Champion"),
      champ ? [h("div", { class: "value" }, `${champ.name}:${champ.version}`), state(champ.state),
        h("div", { class: "muted" }, `since ${when(why && why.since)}`)] : h("div", { class: "value" }, "none")),
    h("div", { class: "card", id: "challenger" }, h("div", { class: "label" }, `Challenger (strategy: ${project.strategy})`),
      others.length ? others.map((m) => h("div", {}, `${m.name}:${m.version} `, aliases(m.aliases), " ", state(m.state)))
        : h("div", { class: "value muted" }, "none"),
      loop.state.trial ? h("div", { class: "muted", id: "trial" }, `trial: ${JSON.stringify(loop.state.trial).slice(0, 160)}`) : ""),
    h("div", { class: "card", id: "drift" }, h("div", { class: "label" }, report ? `Drift share (newest report, ${report.model}:${report.version})` : "Drift share"),
      h("div", { class: "value" + (report && report.drifted ? " bad" : "") }, report ? pct(report.drift_share) : "no report"),
      report ? h("div", { class: "muted" }, `${report.drift.n_drifted} of ${report.drift.counted} features drifted`,
        report.drift.drifted_columns.length ? `: ${report.drift.drifted_columns.join(", ")}` : "") : ""),
    h("div", { class: "card", id: "accuracy" }, h("div", { class: "label" }, `Live ${perf ? perf.metric : "accuracy"}`),
      h("div", { class: "value" + (perf && perf.alert ? " bad" : "") }, perf ? fmt(perf.value) : "—"),
      perf ? h("div", { class: "muted" }, perf.ci ? `${Math.round(100 * perf.confidence)}% interval ${fmt(perf.ci[0])} – ${fmt(perf.ci[1])}` : "",
        ` on ${fmt(perf.labelled)} labelled rows (validation ${fmt(perf.validation)})`) : ""),
    h("div", { class: "card", id: "estimate" }, h("div", { class: "label" }, `Estimated ${est ? est.metric : "accuracy"} (labels late)`),
      h("div", { class: "value" }, est && est.value !== null ? fmt(est.value) : "—"),
      est ? h("div", { class: "muted" }, est.value !== null ? `± ${fmt(est.se)} on ${fmt(est.unlabelled)} unlabelled rows` : `${est.status}: ${est.why}`) : ""),
    h("div", { class: "card", id: "loopcard" }, h("div", { class: "label" }, "Loop"),
      h("div", { class: "value" }, loop.paused ? "paused" : loop.controller ? "running" : "idle"),
      h("div", { class: "muted" }, `${fmt(loop.state.ticks)} ticks, ${fmt(loop.state.failures)} failures`),
      loop.state.last_note ? h("div", { class: "muted" }, loop.state.last_note) : ""));
  return [h("h1", {}, "Overview"), cards,
    why ? [h("h2", {}, `Why is ${champ.name}:${champ.version} serving?`), h("div", { class: "chain", id: "why" }, why.text)] : "",
    h("h2", {}, "Latest decisions"), eventsTable(events.items.slice().reverse(), "events"),
    h("p", { class: "muted" }, `Refreshes every ${POLL_MS / 1000} s · ${when(new Date().toISOString())} UTC`)];
}
function eventsTable(items, id) {
  return table(["time", "kind", "subject", "message", "by"], items.map((e) => [when(e.time),
    h("span", { class: "kind" }, e.kind), e.subject || "", e.message, (e.data && e.data.actor) || ""]), { id });
}

async function action(path, body, done) {
  try {
    const out = await api(path, { method: "POST", body });
    flash(done(out));
    await route();
  } catch (e) { flash(`${e.message}${e.hint ? ` (${e.hint})` : ""}`, true); }
}
const reason = () => (document.getElementById("reason") || {}).value || null;
function actionBar(extra) {
  if (!canOperate()) return h("p", { class: "muted", id: "readonly" }, `Read-only: your role is ${S.me.role}; promote and rollback need operator.`);
  return h("div", { class: "actions" }, h("label", {}, "Reason ", h("input", { type: "text", id: "reason", placeholder: "why (recorded in the event)" })), extra);
}

async function models() {
  const found = await api("/models?limit=1000");
  const names = [...new Set(found.items.map((m) => m.name))];
  const out = [h("h1", {}, "Models")];
  for (const name of names) {
    const versions = found.items.filter((m) => m.name === name).sort((a, b) => b.version - a.version);
    const metricKeys = [...new Set(versions.flatMap((m) => Object.keys(m.metrics)))].slice(0, 4);
    out.push(h("h2", {}, name), actionBar(h("button", { class: "danger", id: `rollback-${name}`,
      onclick: () => action(`/models/${encodeURIComponent(name)}/rollback`, { reason: reason() },
        (o) => `rolled ${o.name} back: champion ${o.from} → ${o.to}`) }, "Roll back the champion")),
    table(["version", "state", "aliases", ...metricKeys, "created", "run", ""], versions.map((m) => [
      h("a", { href: `#/models/${encodeURIComponent(name)}/${m.version}` }, `${name}:${m.version}`), state(m.state),
      aliases(m.aliases), ...metricKeys.map((k) => h("td", { class: "num" }, fmt(m.metrics[k]))), when(m.created_at),
      h("a", { href: `#/runs/${m.run_id}` }, short(m.run_id)),
      canOperate() && !m.aliases.includes("champion") && m.state !== "rejected" && m.state !== "prototype"
        ? h("button", { id: `promote-${name}-${m.version}`, dataset: { promote: m.version },
          onclick: () => action(`/models/${encodeURIComponent(name)}/promote`, { version: m.version, reason: reason() },
            (o) => `promoted ${o.name}:${o.to} to ${o.alias} (was ${o.from})`) }, "Promote") : ""]), { id: `versions-${name}` }));
  }
  if (!names.length) out.push(h("p", { class: "muted" }, "No model registered yet: run tidal run."));
  return out;
}

async function modelDetail(name, version) {
  const m = await api(`/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`);
  return [h("h1", {}, `${m.name}:${m.version} `, state(m.state), " ", aliases(m.aliases)),
    h("h2", {}, m.serving.serving ? `Why is ${m.name}:${m.version} serving?` : "Serving"),
    h("div", { class: "chain", id: "why" }, m.serving.text),
    canOperate() && !m.aliases.includes("champion") ? actionBar(h("button", { id: "promote", onclick: () =>
      action(`/models/${encodeURIComponent(m.name)}/promote`, { version: m.version, reason: reason() },
        (o) => `promoted ${o.name}:${o.to} to ${o.alias} (was ${o.from})`) }, "Promote to champion")) : "",
    h("h2", {}, "State history"),
    table(["time", "from", "to", "reason"], m.history.map((t) => [when(t.time), t.from ? state(t.from) : "—", state(t.to), t.reason]), { id: "history" }),
    h("h2", {}, "Metrics (holdout)"), kv(m.metrics),
    h("h2", {}, "Lineage"),
    h("div", { class: "lineage", id: "lineage-chain" }, [
      ["predictions", "logged with this version"], ["version", `${m.name}:${m.version}`, `#/models/${encodeURIComponent(m.name)}/${m.version}`],
      ["run", short(m.lineage.run_id), `#/runs/${m.lineage.run_id}`], ["snapshot", short(m.lineage.snapshot), m.lineage.snapshot ? `#/data/${m.lineage.snapshot}` : null],
      ["spec", short(m.lineage.spec_digest)], ["commit", m.lineage.git ? short(m.lineage.git) : "not in git"],
      ["environment", short(m.lineage.environment_digest)]].map(([k, v, href], i) => [i ? h("span", { class: "arrow" }, "→") : "",
      h("div", { class: "node" }, h("div", { class: "label" }, k), href ? h("a", { href }, v) : h("code", {}, v))])),
    table(["step", "value"], [["version", `${m.name}:${m.version} (artifact ${short(m.artifact)}, ${m.format})`],
      ["run", h("a", { href: `#/runs/${m.lineage.run_id}` }, m.lineage.run_id)], ["snapshot", m.lineage.snapshot],
      ["train / holdout", `${short(m.lineage.train)} / ${short(m.lineage.holdout)}`], ["spec", m.lineage.spec_digest],
      ["commit", m.lineage.git || "not in git"], ["environment", m.lineage.environment_digest],
      ["estimator", `${m.lineage.estimator} ${JSON.stringify(m.lineage.params)}`]], { id: "lineage" }),
    h("h2", {}, "Events"), eventsTable(m.events, "model-events")];
}

async function runs() {
  const found = await api("/runs?limit=200");
  const picked = () => [...document.querySelectorAll("input[data-run]:checked")].map((x) => x.dataset.run);
  const compare = h("button", { id: "compare", disabled: true, onclick: () => {
    const [a, b] = picked(); location.hash = `#/compare/${a}/${b}`; } }, "Compare the two ticked runs");
  const tick = () => { compare.disabled = picked().length !== 2; };
  return [h("h1", {}, "Runs"), h("div", { class: "actions" }, compare),
    table(["", "run", "status", "trigger", "model", "started", "seconds"], found.items.map((r) => [
    h("input", { type: "checkbox", dataset: { run: r.id }, onchange: tick, "aria-label": `pick run ${short(r.id)}` }),
    h("a", { href: `#/runs/${r.id}` }, short(r.id)), h("span", { class: r.status === "failed" ? "bad" : "" }, r.status), r.trigger || "",
    r.model ? h("a", { href: `#/models/${encodeURIComponent(r.model.name)}/${r.model.version}` }, `${r.model.name}:${r.model.version} (${r.model.state})`) : "",
    when(r.started_at), h("td", { class: "num" }, r.ended_at ? fmt(seconds(r.ended_at.replace(" ", "T")) - seconds(r.started_at.replace(" ", "T")), 2) : "…")]),
    { id: "runs" })];
}

async function runDetail(id) {
  const r = await api(`/runs/${encodeURIComponent(id)}`);
  const curves = Object.entries(r.curves);
  return [h("h1", {}, `Run ${short(r.id)} `, h("span", { class: r.status === "failed" ? "bad" : "ok" }, r.status)),
    h("p", { class: "muted" }, `trigger ${r.trigger || "—"} · started ${when(r.started_at)} · spec ${short(r.spec_digest)}`,
      r.info.model ? [" · model ", h("a", { href: `#/models/${encodeURIComponent(r.info.model.name)}/${r.info.model.version}` },
        `${r.info.model.name}:${r.info.model.version}`)] : ""),
    r.error ? h("p", { class: "bad" }, r.error) : "",
    h("h2", {}, "Steps"), table(["step", "status", "seconds", "why (cache)"], r.steps.map((s) =>
      [s.name, s.status, h("td", { class: "num" }, fmt(s.seconds, 3)), s.explain || ""]), { id: "steps" }),
    h("h2", {}, "Curves"), curves.length ? curves.map(([key, values]) => chart(key, values.map((_, i) => i + 1),
      [{ label: key.replace(/^curve\./, ""), values }], { xlabel: "round / epoch", name: key }))
      : h("p", { class: "muted" }, "This estimator records no curve."),
    h("h2", {}, "Metrics"), kv(r.metrics), h("h2", {}, "Params"), kv(r.params),
    r.log ? [h("h2", {}, "Log"), h("details", {}, h("summary", {}, "show"), h("pre", {}, r.log))] : ""];
}

async function compareRuns(a, b) {
  const [x, y] = await Promise.all([api(`/runs/${encodeURIComponent(a)}`), api(`/runs/${encodeURIComponent(b)}`)]);
  const A = `run ${short(x.id)}`, B = `run ${short(y.id)}`;
  const side = (one, two, diff) => {
    const keys = [...new Set([...Object.keys(one), ...Object.keys(two)])].sort();
    return keys.map((k) => {
      const differs = JSON.stringify(one[k]) !== JSON.stringify(two[k]);
      return [h("code", {}, k), h("td", { class: differs ? "warn" : "" }, fmt(one[k], 4)), h("td", { class: differs ? "warn" : "" }, fmt(two[k], 4)),
        ...(diff ? [h("td", { class: "num" }, typeof one[k] === "number" && typeof two[k] === "number" ? fmt(two[k] - one[k], 4) : "—")] : [])];
    });
  };
  const keys = [...new Set([...Object.keys(x.curves), ...Object.keys(y.curves)])].sort();
  return [h("h1", {}, "Two runs side by side"),
    h("p", {}, h("a", { href: `#/runs/${x.id}` }, A), ` (${x.status}, ${when(x.started_at)}) against `,
      h("a", { href: `#/runs/${y.id}` }, B), ` (${y.status}, ${when(y.started_at)})`),
    h("h2", {}, "Params (differences highlighted)"), table(["param", A, B], side(x.params, y.params, false), { id: "compare-params" }),
    h("h2", {}, "Metrics"), table(["metric", A, B, `${B} − ${A}`], side(x.metrics, y.metrics, true), { id: "compare-metrics" }),
    h("h2", {}, "Curves"), keys.length ? keys.map((k) => {
      const n = Math.max((x.curves[k] || []).length, (y.curves[k] || []).length);
      const pad = (v) => Array.from({ length: n }, (_, i) => (v && i < v.length ? v[i] : null));
      return chart(k, Array.from({ length: n }, (_, i) => i + 1), [{ label: A, values: pad(x.curves[k]) },
        { label: B, values: pad(y.curves[k]) }], { xlabel: "round / epoch", name: k });
    }) : h("p", { class: "muted" }, "Neither run records a curve.")];
}

async function monitoring() {
  const list = await api("/reports?limit=30");
  const reports = (await Promise.all(list.items.map((x) => api(`/reports/${x.id}`)))).reverse();  // oldest first
  const out = [h("h1", {}, "Monitoring")];
  if (!reports.length) return [...out, h("p", { class: "muted" }, "No monitoring report yet: tidal monitor, or the loop, makes them.")];
  const xs = reports.map((r) => seconds(r.created_at));
  const perf = reports.map((r) => r.performance || {});
  out.push(chart("Drift share", xs, [{ label: "drift share", values: reports.map((r) => r.drift_share) }],
    { time: true, xlabel: "report", name: "drift" }));
  out.push(chart(`Live ${perf[0].metric || "metric"} with its interval`, xs, [
    { label: "value", values: perf.map((p) => (p.value === undefined ? null : p.value)) },
    { label: "lower", values: perf.map((p) => (p.ci ? p.ci[0] : null)), dash: [4, 4], stroke: "#90a4ae" },
    { label: "upper", values: perf.map((p) => (p.ci ? p.ci[1] : null)), dash: [4, 4], stroke: "#90a4ae" },
    { label: "estimated", values: reports.map((r) => (r.estimate ? r.estimate.value : null)), stroke: "#b26a00" }],
  { time: true, xlabel: "report", band: [3, 2], name: "performance" }));
  const columns = [...new Set(reports.flatMap((r) => r.drift.columns.map((c) => c.column)))];
  // one line per feature, as the monitor's HTML report draws it; the table below says which test each one is
  const stat = (r, col) => { const c = r.drift.columns.find((x) => x.column === col); return c && c.statistic !== null && c.statistic !== undefined ? c.statistic : null; };
  out.push(h("h2", {}, "Drift per feature over time"), chart("drift statistic per feature (each its own test: see the table)", xs,
    columns.map((col) => ({ label: col, values: reports.map((r) => stat(r, col)) })), { time: true, xlabel: "report", height: 260, name: "drift-per-feature" }));
  out.push(table(["feature", ...reports.map((r) => when(r.created_at).slice(5, 16))],
    columns.map((col) => [h("code", {}, col), ...reports.map((r) => {
      const c = r.drift.columns.find((x) => x.column === col);
      return h("td", { class: "num" + (c && c.drifted ? " bad" : ""), title: c ? c.why : "" },
        c ? `${c.test || c.status} ${c.statistic === null || c.statistic === undefined ? "—" : c.statistic.toPrecision(3)}${c.drifted ? " ▲" : ""}` : "—");
    })]), { id: "drift-table" }));
  const newest = reports[reports.length - 1];
  out.push(h("h2", {}, `Reference vs window, newest report (${when(newest.created_at)})`));
  // every column with a plot: a numeric one on its own values, a categorical one per category (the report's too)
  out.push(h("div", { class: "dists" }, newest.drift.columns.filter((x) => x.plot).map((c) =>
    chartOf({ kind: "distribution", plot: c.plot, title: c.column, width: 360 }, `dist-${c.column}`))));
  out.push(h("h2", {}, "Reports"), table(["time", "version", "rows", "labelled", "drift share", "live", "interval", "estimated", "alerts"],
    reports.slice().reverse().map((r) => [when(r.created_at), `${r.model}:${r.version}`, fmt(r.window.rows), fmt(r.window.labelled),
      pct(r.drift_share), fmt(r.performance && r.performance.value), r.performance && r.performance.ci ? `${fmt(r.performance.ci[0])} – ${fmt(r.performance.ci[1])}` : "—",
      fmt(r.estimate && r.estimate.value), r.alerts.join("; ")]), { id: "reports" }));
  return out;
}

async function loopPage() {
  const [loop, events, backtests] = await Promise.all([api("/loop"), api("/events?limit=100"), api("/backtests")]);
  const btn = (what, label) => h("button", { id: `loop-${what}`, onclick: () => action(`/loop/${what}`, { reason: reason() },
    () => `loop: ${what} recorded`) }, label);
  return [h("h1", {}, "Loop"),
    h("div", { class: "cards" }, h("div", { class: "card" }, h("div", { class: "label" }, "State"),
      h("div", { class: "value" }, loop.paused ? `paused by ${loop.paused.by}` : "not paused"),
      h("div", { class: "muted" }, `champion ${fmt(loop.champion)} · ${fmt(loop.state.ticks)} ticks · last retrain ${when(loop.state.last_retrain)}`),
      loop.retrain_requested ? h("div", { class: "warn" }, `retrain requested by ${loop.retrain_requested.by}`) : "")),
    actionBar([btn("pause", "Pause"), btn("resume", "Resume"), btn("retrain", "Retrain now")]),
    h("h2", {}, "Timeline (newest first)"), eventsTable(events.items.slice().reverse(), "timeline"),
    h("h2", {}, "Backtests"), backtests.items.length ? [backtestChart(backtests.items),
      eventsTable(backtests.items.slice().reverse(), "backtests")]
      : h("p", { class: "muted" }, "No backtest yet (tidal backtest).")];
}
// each past backtest's score per strategy (the loop, the first champion never retrained, periodic retraining,
// the last label seen, online learning), at the time it ran: does the loop keep beating the baselines?
const STRATEGIES = [["loop", "#1f77b4"], ["static", "#d62728"], ["periodic", "#2ca02c"], ["last_label", "#7f7f7f"], ["online", "#8c564b"]];
function backtestChart(items) {
  const data = items.map((e) => e.data || {});
  const metric = (data.find((d) => d.metric) || {}).metric || "score";
  const series = STRATEGIES.filter(([k]) => data.some((d) => d[k] && d[k].score !== undefined && d[k].score !== null))
    .map(([k, stroke]) => ({ label: k, stroke, values: data.map((d) => (d[k] && d[k].score !== undefined ? d[k].score : null)) }));
  return chart(`Backtest ${metric} per strategy`, items.map((e) => seconds(e.time)), series,
    { time: true, xlabel: "backtest", name: "backtests" });
}

async function data() {
  const found = await api("/snapshots?limit=200");
  return [h("h1", {}, "Data"), h("p", { class: "muted" }, "Snapshots, newest first: each table collected (and each batch of an incremental source or a stream), content-addressed."),
    found.items.length ? table(["snapshot", "rows", "columns", "source", "created"], found.items.map((x) => [
      h("a", { href: `#/data/${x.digest}` }, short(x.digest)), h("td", { class: "num" }, fmt(x.rows)),
      h("td", { class: "num" }, fmt(x.columns)), x.source, when(x.created_at)]), { id: "snapshots" })
      : h("p", { class: "muted" }, "No snapshot yet: tidal run collects the first.")];
}

async function snapshotDetail(digest) {
  const d = await api(`/snapshots/${encodeURIComponent(digest)}`);
  const rows = d.column_names.map((name) => {
    const p = d.profile[name] || {};
    const top = Object.entries(p.top || {}).slice(0, 3).map(([k, v]) => `${k} (${fmt(v)})`).join(", ");
    return [h("code", {}, name), p.kind || d.schema[name] || "", h("td", { class: "num" }, pct(p.null_share)),
      h("td", { class: "num" }, fmt(p.min)), h("td", { class: "num" }, fmt(p.mean)), h("td", { class: "num" }, fmt(p.max)),
      p.n_unique !== undefined ? `${fmt(p.n_unique)} distinct: ${top}` : ""];
  });
  const histograms = d.column_names.filter((n) => (d.profile[n] || {}).histogram && d.profile[n].histogram.edges.length > 2)
    .map((n) => {
      const { edges, counts } = d.profile[n].histogram;
      // the profile's bins hold equal shares of the rows (quantiles): rows per unit of the column shows its
      // shape; a bin of no width (a column of a few values) keeps its count
      const widths = counts.map((_, i) => edges[i + 1] - edges[i]);
      const density = widths.every((w) => w > 0);
      return chart(`${n}: ${density ? "rows per unit" : "rows per bin"}`, edges.slice(0, -1).map((e, i) => (e + edges[i + 1]) / 2),
        [{ label: density ? "density" : "rows", values: density ? counts.map((c, i) => c / widths[i]) : counts }],
        { xlabel: n, height: 150, name: `hist-${n}` });
    });
  return [h("h1", {}, `Snapshot ${short(d.digest)}`),
    h("p", { class: "muted" }, `${fmt(d.rows)} rows, ${fmt(d.columns)} columns, from ${d.source}, ${when(d.created_at)}`),
    h("h2", {}, "Columns"), table(["column", "kind", "nulls", "min", "mean", "max", "categories"], rows, { id: "columns" }),
    h("h2", {}, "What was found in it"), d.events.length ? eventsTable(d.events.slice().reverse(), "findings")
      : h("p", { class: "muted", id: "findings" }, "No finding recorded: it passed validation without a warning."),
    h("h2", {}, "Versions trained on it"), d.versions.length ? h("ul", { id: "trained" }, d.versions.map((v) =>
      h("li", {}, h("a", { href: `#/models/${encodeURIComponent(v.name)}/${v.version}` }, `${v.name}:${v.version}`), " ", state(v.state))))
      : h("p", { class: "muted", id: "trained" }, "none"),
    h("h2", {}, "Distributions"), histograms.length ? histograms : h("p", { class: "muted" }, "No numeric column.")];
}

// -- routing --------------------------------------------------------------------------------------------
const ROUTES = [
  [/^#?\/?$/, "overview", overview], [/^#\/models$/, "models", models],
  [/^#\/models\/([^/]+)\/([^/]+)$/, "model", modelDetail], [/^#\/runs$/, "runs", runs],
  [/^#\/runs\/([^/]+)$/, "run", runDetail], [/^#\/compare\/([^/]+)\/([^/]+)$/, "compare", compareRuns], [/^#\/monitoring$/, "monitoring", monitoring], [/^#\/loop$/, "loop", loopPage],
  [/^#\/data$/, "data", data], [/^#\/data\/([0-9a-f]+)$/, "snapshot", snapshotDetail],
];
function stop() { if (S.timer) { clearTimeout(S.timer); S.timer = null; } }
let rendering = 0;
async function route() {
  stop();
  if (!S.me) return;
  const hash = location.hash || "#/";
  const found = ROUTES.find(([re]) => re.test(hash));
  const [re, name, page] = found || [null, "missing", async () => [h("h1", {}, "No such page"), h("a", { href: "#/" }, "Overview")]];
  const args = re ? hash.match(re).slice(1).map(decodeURIComponent) : [];
  const mine = ++rendering;
  const started = performance.now();
  document.body.dataset.page = name;
  const nav = { model: "models", run: "runs", compare: "runs", snapshot: "data" }[name] || name;
  for (const a of document.querySelectorAll("[data-nav]")) a.classList.toggle("active", a.dataset.nav === nav);
  try {
    const content = await page(...args);
    if (mine !== rendering) return;           // another page was asked for meanwhile
    S.charts.forEach((c) => c.destroy()); S.charts = [];
    main().replaceChildren(...[content].flat(Infinity).filter((x) => x !== null && x !== undefined && x !== ""));
    for (const box of main().querySelectorAll(".chart")) box.draw();
    main().dataset.ready = name;
    main().dataset.ms = String(Math.round(performance.now() - started));
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    main().replaceChildren(h("h1", {}, "Could not load this page"), h("p", { class: "bad" }, e.message), e.hint ? h("p", { class: "muted" }, e.hint) : "");
    main().dataset.ready = "error";
  }
  if (name === "overview") S.timer = setTimeout(() => { if (!document.hidden) route(); else S.timer = setTimeout(route, POLL_MS); }, POLL_MS);
}

window.addEventListener("hashchange", () => { flash(""); route(); });
window.addEventListener("DOMContentLoaded", async () => {
  try { if (!(await loadMe())) { signIn(); return; } } catch (e) { signIn(e.message); return; }   // e.g. "the session's token is revoked or expired"
  route();
});
