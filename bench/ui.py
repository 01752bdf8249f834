"""The dashboard's speed (issue #15, point 6): time to first paint and to data of each page of `tidal ui` on a
large workspace, beside MLflow's UI showing the same number of runs, in one run and one Chromium.

The tidal workspace (SQLite metadata store and prediction log, the defaults) is built through tidal's own
APIs, without 1,000 real trainings:

- one real ``Workspace.run()`` on Elec2's first 3,000 rows: a real run, snapshots with profiles, and version 1
  (a real artifact, signature, profile and lineage) as champion;
- ``--runs`` runs in all: the others recorded by ``store.create_run``, ``store.log_batch`` (``PARAMS`` params,
  ``METRICS`` single-valued metrics and ``len(CURVES)`` curves of ``--curve-points`` steps each),
  ``store.save_step`` (the five pipeline steps, some reused from the cache with their explanation) and
  ``store.finish_run``, one run a transaction or four, started a minute apart;
- ``--versions`` versions in all: the others registered through the registry (``ws.registry.register``, with
  their prototype and gate events) as copies of version 1 made by those runs, a fifth rejected, and every
  tenth promoted to champion (``ws.promote``: the alias move, deployed / retired state events), the newest
  passing one last;
- ``--predictions`` predictions in the prediction log through its batch write path (``PredictionBatch`` of
  1,000 rows under one ``new_ids`` prefix, as ``tidal serve`` writes them), Elec2's rows cycled as inputs,
  spread over 30 days and over the versions, the newest tenth by the champion; a tenth of them get a label
  (``add_feedback`` in batches of 10,000); then ``ws.monitor()`` three times (three reports).

Each page (Overview, Models, a model version, Runs, a run, compare, Monitoring, Loop, Data) is loaded
``--loads`` times from scratch in a signed-in Chromium (Playwright, ``/usr/bin/chromium``) against ``tidal ui``
started as a real process on a free loopback port: first paint is the page's ``first-contentful-paint``
(PerformancePaintTiming, from navigation start), time to data the moment ``main[data-ready=<page>]`` is set
(app.js sets it once the page's fetches are rendered), from navigation start too; the medians are reported.

MLflow gets the same number of runs, each with the same number of params, metrics and curve points
(``log_batch``, SQLite backend), and ``mlflow server`` on a free loopback port; its experiment's runs page
is loaded the same number of times in the same Chromium, after one uncounted load that fills the browser's
cache (tidal's is filled by signing in): first paint, and time to data until the runs table shows a row of
the experiment's runs (a run's name in the grid). Each page shows its first page of runs: MLflow's grid its
newest 100 (its page size), tidal's Runs page its newest 200. Ratio = MLflow's runs page time to data /
tidal's Runs page time to data. Aim: every tidal page < 1 s to data, and the ratio >= 3.

The anchor needs MLflow (``make bench`` / bench/run.sh installs it and Playwright into .venv-bench from
bench/requirements.txt); ``--no-mlflow`` measures tidal's pages alone.

    python bench/ui.py [--quick]

Writes bench/results/ui.json; exits 1 when a page does not render its data (an error page, a timeout, a
console error) or a count in the workspace is not what was asked for.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results" / "ui.json"
CHROMIUM = os.environ.get("TIDAL_TEST_CHROMIUM", "/usr/bin/chromium")
PARAMS = 10
METRICS = 5
CURVES = ("curve.train_score", "curve.validation_score")
STEPS = ("collect", "validate_data", "prepare", "train", "evaluate")
PAGE_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- the tidal workspace -------------------------------------------------------------------------------------
def _project(root: Path) -> Path:
    """Elec2's first 3,000 rows as a project (one real training takes a few seconds)."""
    shutil.copytree(REPO / "examples" / "elec2", root)
    lines = gzip.decompress((root / "data" / "elec2.csv.gz").read_bytes()).decode().splitlines()
    (root / "data" / "elec2.csv.gz").unlink()
    (root / "data" / "elec2.csv").write_text("\n".join(lines[:3001]) + "\n")
    spec = (root / "tidal.yaml").read_text().replace("data/elec2.csv.gz", "data/elec2.csv")
    (root / "tidal.yaml").write_text(spec.replace("max_iter: 200", "max_iter: 20"))
    return root


def _params(i: int) -> dict[str, str]:
    return {f"param_{k}": str((i * 7 + k) % 13) for k in range(PARAMS)}


def _metrics(i: int, rng: random.Random) -> dict[str, float]:
    return {f"metric_{k}": round(0.6 + 0.3 * rng.random(), 4) for k in range(METRICS)}


def _curve(i: int, k: int, points: int) -> list[float]:
    return [0.5 + 0.4 * (1 - 1 / (1 + s / (5 + k + i % 7))) for s in range(points)]


def build_tidal(root: Path, *, runs: int, versions: int, predictions: int, curve_points: int) -> dict[str, Any]:
    """The workspace described in the module's docstring; what was built, and how long it took."""
    import dataclasses

    import pandas as pd

    from tidal.core.batches import PredictionBatch
    from tidal.core.entities import Feedback, Metric, ModelState, Run, RunStatus, StepRecord, StepStatus
    from tidal.core.ids import new_ids
    from tidal.workspace import Workspace

    started = time.perf_counter()
    _project(root)
    rng = random.Random(0)
    with Workspace.open(root) as ws:
        ws.run()
        base = ws.models.get(f"{ws.spec.name}:1")
        name = base.name
        t0 = datetime.now(UTC) - timedelta(minutes=runs + 10)
        run_ids: list[str] = []
        for i in range(runs - 1):
            run_id = f"{rng.getrandbits(128):032x}"
            at = t0 + timedelta(minutes=i)
            ws.store.create_run(Run(id=run_id, project=ws.spec.name, status=RunStatus.RUNNING, started_at=at,
                                    spec_digest=ws.spec.digest, trigger="bench" if i % 3 else "drift"))
            metrics = [Metric(k, v, 0, at) for k, v in _metrics(i, rng).items()]
            metrics += [Metric(key, v, s, at) for k, key in enumerate(CURVES)
                        for s, v in enumerate(_curve(i, k, curve_points))]
            ws.store.log_batch(run_id, metrics=metrics, params=_params(i))
            for pos, step in enumerate(STEPS):
                reused = step != "train" and i % 2 == 0
                ws.store.save_step(StepRecord(
                    run_id=run_id, name=step, status=StepStatus.REUSED if reused else StepStatus.DONE,
                    cache_key=f"{step}-{i % 50}", started_at=at + timedelta(seconds=pos),
                    ended_at=at + timedelta(seconds=pos + 1), position=pos,
                    explain="inputs unchanged: reused" if reused else "the data changed"))
            failed = i % 25 == 24
            ws.store.finish_run(run_id, RunStatus.FAILED if failed else RunStatus.SUCCEEDED,
                                at + timedelta(seconds=30), error="a bench failure" if failed else None)
            run_ids.append(run_id)
        champion = 1
        for v in range(2, versions + 1):
            run_id = run_ids[(v * 9) % len(run_ids)] if run_ids else base.run_id
            rejected = v % 5 == 3 and v != versions
            mv = dataclasses.replace(
                base, version=0, run_id=run_id, created_at=datetime.now(UTC),
                state=ModelState.REJECTED if rejected else ModelState.VALIDATED,
                reasons=["accuracy 0.58 < 0.60"] if rejected else [],
                metrics={k: round(x - 0.001 * (v % 7), 4) for k, x in base.metrics.items()})
            stored = ws.registry.register(mv, reason="passed its gates" if not rejected else "failed a gate")
            if not rejected and (v % 10 == 0 or v == versions):
                ws.promote(name, stored.version, reason=f"bench promotion {v}")
                champion = stored.version
        # the prediction log, through the batch write path
        frame = pd.read_csv(root / "data" / "elec2.csv")
        labels = frame.pop(ws.spec.data.target).tolist()
        rows = frame.to_dict("records")
        batch = 1000
        n_batches = max(1, predictions // batch)
        end = datetime.now(UTC)
        labelled: list[Feedback] = []
        champ_from = n_batches - max(1, n_batches // 10)
        for b in range(n_batches):
            at = end - timedelta(days=30) + timedelta(days=30) * (b / n_batches)
            version = champion if b >= champ_from else 1 + b % max(1, versions)
            lo = (b * batch) % len(rows)
            inputs = [rows[(lo + j) % len(rows)] for j in range(batch)]
            outputs = [labels[(lo + j) % len(rows)] if j % 4 else 1 - labels[(lo + j) % len(rows)]
                       for j in range(batch)]
            ids = new_ids(batch)
            ws.predictions.append(PredictionBatch(
                ids=ids, time=at, model=name, version=version, inputs=inputs, outputs=outputs,
                probas=[[0.3, 0.7] if o else [0.7, 0.3] for o in outputs]))
            if b % 10 == 0 or b >= n_batches - 5:
                labelled += [Feedback(ids[j], labels[(lo + j) % len(rows)], at + timedelta(hours=1))
                             for j in range(batch)]
            if len(labelled) >= 10_000:
                ws.predictions.add_feedback(labelled)
                labelled = []
        if labelled:
            ws.predictions.add_feedback(labelled)
        for _ in range(3):
            ws.monitor()
        built = {"runs": len(ws.store.list_runs(ws.spec.name, limit=runs + 10)),
                 "versions": len(ws.models.list(name)), "champion": champion, "name": name,
                 "predictions": ws.predictions.count(), "run_ids": [r.id for r in ws.runs.list(limit=2)],
                 "snapshot": ws.snapshots.list(limit=1)[0].digest}
        ws.tokens.create("bench", role="viewer")
        built["token"] = ws.tokens.create("bench-ui", role="viewer")[1]
    built["seconds"] = time.perf_counter() - started
    return built


# -- the MLflow anchor ---------------------------------------------------------------------------------------
def build_mlflow(folder: Path, *, runs: int, curve_points: int) -> dict[str, Any]:
    """``runs`` runs in one experiment, each with the params, metrics and curve points a tidal run has."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    started = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("bench", artifact_location=(folder / "artifacts").as_uri())
    rng = random.Random(0)
    ts = int(time.time() * 1000)
    for i in range(runs):
        run = client.create_run(exp, run_name=f"bench-run-{i:04d}")
        metrics = [Metric(k, v, ts, 0) for k, v in _metrics(i, rng).items()]
        metrics += [Metric(key.replace("curve.", ""), v, ts, s) for k, key in enumerate(CURVES)
                    for s, v in enumerate(_curve(i, k, curve_points))]
        params = [Param(k, v) for k, v in _params(i).items()]
        for lo in range(0, len(metrics), 1000):  # MLflow takes at most 1,000 metrics a batch
            client.log_batch(run.info.run_id, metrics=metrics[lo:lo + 1000], params=params if lo == 0 else [])
        client.set_terminated(run.info.run_id)
    found = len(client.search_runs([exp], max_results=runs + 10))
    return {"uri": uri, "experiment": exp, "runs": found, "seconds": time.perf_counter() - started}


# -- servers ---------------------------------------------------------------------------------------------------
class Server:
    """A server process started here, stopped by its own pid (and its process group's: ``mlflow server``
    starts workers)."""

    def __init__(self, argv: list[str], url: str, probe: str, log: Path, env: dict[str, str]) -> None:
        self.url, self.log, self.name = url, log, Path(argv[0]).name
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self._wait(probe)

    def _wait(self, probe: str, timeout: float = 90.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log.read_text()[-2000:]
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}:\n{tail}")
            try:
                if httpx.get(self.url + probe, timeout=2).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"no answer from {self.url} in {timeout:.0f} s:\n{self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_tidal(root: Path) -> Server:
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO / "src")}
    return Server([sys.executable, "-m", "tidal", "-C", str(root), "ui", "--port", str(port)],
                  f"http://127.0.0.1:{port}", "/api/v1/openapi.json", root.parent / "tidal-ui.log", env)


def start_mlflow(folder: Path, uri: str) -> Server:
    port = free_port()
    beside = Path(sys.executable).with_name("mlflow")  # .venv-bench's, else the one on PATH
    argv = [str(beside) if beside.exists() else shutil.which("mlflow") or "mlflow", "server",
            "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--default-artifact-root", (folder / "artifacts").as_uri()]
    return Server(argv, f"http://127.0.0.1:{port}", "/health", folder / "mlflow-server.log", dict(os.environ))


# -- measuring in Chromium -------------------------------------------------------------------------------------
FCP_JS = """() => {
  const e = performance.getEntriesByName('first-contentful-paint')[0];
  return e ? e.startTime : null;
}"""
NOW_JS = "() => performance.now()"


def _load(page: Any, url: str, ready: str) -> dict[str, float | None]:
    """Load ``url`` from scratch, wait for ``ready`` (a selector); first paint and time to data in ms from
    the navigation's start."""
    page.goto("about:blank")
    page.goto(url, wait_until="commit")
    page.wait_for_selector(ready, timeout=int(PAGE_TIMEOUT_S * 1000))
    data_ms = page.evaluate(NOW_JS)
    fcp = None
    for _ in range(50):  # the paint entry can be queued a frame after the data is drawn
        fcp = page.evaluate(FCP_JS)
        if fcp is not None:
            break
        page.wait_for_timeout(20)
    return {"fcp_ms": fcp, "data_ms": float(data_ms)}


def _median(loads: list[dict[str, float | None]], key: str) -> float | None:
    values = [v for x in loads if (v := x[key]) is not None]
    return float(statistics.median(values)) if values else None


def measure_tidal(browser: Any, url: str, token: str, built: dict[str, Any], loads: int) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + "/")
    page.wait_for_selector("#signin")
    page.fill("#token", token)
    page.click("#signin button[type=submit]")
    page.wait_for_selector('main[data-ready="overview"]', timeout=int(PAGE_TIMEOUT_S * 1000))
    a, b = built["run_ids"]
    pages = [("Overview", "/", "overview"), ("Models", "/models", "models"),
             ("Model version", f"/models/{built['name']}/{built['champion']}", "model"),
             ("Runs", "/runs", "runs"), ("Run", f"/runs/{a}", "run"), ("Compare", f"/compare/{a}/{b}", "compare"),
             ("Monitoring", "/monitoring", "monitoring"), ("Loop", "/loop", "loop"), ("Data", "/data", "data")]
    out: dict[str, Any] = {}
    for label, hash_, name in pages:
        rows, failure = [], None
        for _ in range(loads):
            try:
                rows.append(_load(page, f"{url}/#{hash_}", f'main[data-ready="{name}"], main[data-ready="error"]'))
            except Exception as exc:  # a timeout: the page never showed its data
                failure = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
                break
            if page.get_attribute("main", "data-ready") == "error":
                failure = page.inner_text("main")[:200]
                break
        out[label] = {"hash": hash_, "fcp_ms": _median(rows, "fcp_ms"), "data_ms": _median(rows, "data_ms"),
                      "loads": rows, "error": failure}
    context.close()
    out["_console_errors"] = errors
    return out


def measure_mlflow(browser: Any, url: str, experiment: str, loads: int) -> dict[str, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    # MLflow 3 opens its runs page at #/experiments/<id>/runs (older: #/experiments/<id>); a row of its grid
    # holds a run's name, a link to the run
    target = f"{url}/#/experiments/{experiment}/runs"
    ready = 'a[href*="/runs/"]:has-text("bench-run-")'
    rows, failure = [], None
    for i in range(loads + 1):
        try:
            one = _load(page, target, ready)
            if i:  # the first load fills the browser's cache (tidal's is filled by signing in): not counted
                rows.append(one)
        except Exception as exc:
            failure = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            break
    shown = page.locator(ready).count() if not failure else 0
    context.close()
    return {"url": target, "fcp_ms": _median(rows, "fcp_ms"), "data_ms": _median(rows, "data_ms"), "loads": rows,
            "rows_shown": shown, "error": failure}


# -- the report ------------------------------------------------------------------------------------------------
def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x:,.0f} ms"


def print_table(results: dict[str, Any]) -> None:
    t, m = results["tidal"], results["mlflow"]
    w = results["workspace"]
    print(f"dashboard: {w['runs']:,} runs, {w['versions']} versions, {w['predictions']:,} predictions "
          f"(SQLite); median of {results['loads']} loads in Chromium")
    print(f"{'page':<16}{'first paint':>14}{'to data':>12}   aim < 1 s")
    for label, r in t.items():
        if label.startswith("_"):
            continue
        verdict = "FAILED: " + r["error"] if r["error"] else ("ok" if (r["data_ms"] or 1e9) < 1000 else "SLOW")
        print(f"{label:<16}{_ms(r['fcp_ms']):>14}{_ms(r['data_ms']):>12}   {verdict}")
    print(f"{'MLflow runs':<16}{_ms(m['fcp_ms']):>14}{_ms(m['data_ms']):>12}   "
          f"{'FAILED: ' + m['error'] if m['error'] else str(m['rows_shown']) + ' rows shown'}")
    ratio = results["ratio"]
    print(f"ratio (MLflow runs page / tidal Runs page, to data): "
          f"{'—' if ratio is None else f'{ratio:.1f}x'}   (aim: >= 3x)")


def failures(results: dict[str, Any], *, asked: tuple[int, int, int], mlflow_runs: int | None) -> list[str]:
    """What went wrong, one line each: a tidal page that showed an error or never its data, a console error,
    MLflow's runs page without a run (when measured), a workspace or MLflow store that does not hold what was
    asked for (runs, versions, predictions). Slowness is reported, never a failure."""
    tidal, mlflow, w = results["tidal"], results["mlflow"], results["workspace"]
    out = [f"{k}: {v['error']}" for k, v in tidal.items() if not k.startswith("_") and v["error"]]
    out += [f"{k}: no time to data" for k, v in tidal.items()
            if not k.startswith("_") and not v["error"] and v["data_ms"] is None]
    if tidal.get("_console_errors"):
        out.append(f"console errors: {tidal['_console_errors'][:3]}")
    if mlflow_runs is not None:
        if mlflow["error"] or not mlflow["rows_shown"]:
            out.append(f"MLflow runs page: {mlflow['error'] or 'no run shown'}")
        if mlflow_runs != asked[0]:
            out.append(f"MLflow holds {mlflow_runs} runs, not {asked[0]}")
    counts = (w["runs"], w["versions"], w["predictions"])
    if counts != asked:
        out.append(f"the workspace holds {counts[0]} runs, {counts[1]} versions, {counts[2]} predictions, not "
                   f"{asked[0]}, {asked[1]}, {asked[2]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--predictions", type=int, default=1_000_000)
    parser.add_argument("--curve-points", type=int, default=100, help="steps of each of a run's two curves")
    parser.add_argument("--loads", type=int, default=5, help="loads of each page (the median is reported)")
    parser.add_argument("--quick", action="store_true", help="100 runs, 20 versions, 50,000 predictions, 3 loads")
    parser.add_argument("--no-mlflow", action="store_true", help="tidal's pages only")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.versions, args.predictions, args.loads = 100, 20, 50_000, 3
    if not Path(CHROMIUM).exists():
        print(f"bench/ui.py needs Chromium at {CHROMIUM} (apt-get install chromium)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    results: dict[str, Any] = {"loads": args.loads, "machine": platform.platform(), "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory(prefix="tidal-bench-ui-") as tmp:
        root = Path(tmp)
        built = build_tidal(root / "tidal" / "elec2", runs=args.runs, versions=args.versions,
                            predictions=args.predictions, curve_points=args.curve_points)
        print(f"tidal workspace built in {built['seconds']:.0f} s", flush=True)
        anchor = None if args.no_mlflow else build_mlflow(root / "mlflow", runs=args.runs,
                                                          curve_points=args.curve_points)
        if anchor:
            print(f"MLflow store built in {anchor['seconds']:.0f} s", flush=True)
        servers: list[Server] = []
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
                ui = start_tidal(root / "tidal" / "elec2")
                servers.append(ui)
                tidal = measure_tidal(browser, ui.url, built["token"], built, args.loads)
                mlflow: dict[str, Any] = {"fcp_ms": None, "data_ms": None, "rows_shown": 0,
                                          "error": "not measured (--no-mlflow)"}
                if anchor:
                    ml = start_mlflow(root / "mlflow", anchor["uri"])
                    servers.append(ml)
                    mlflow = {**measure_mlflow(browser, ml.url, anchor["experiment"], args.loads),
                              "runs": anchor["runs"]}
                browser.close()
        finally:
            for s in servers:
                s.stop()
    workspace = {k: built[k] for k in ("runs", "versions", "predictions", "seconds")}
    ratio = None
    if mlflow["data_ms"] and tidal["Runs"]["data_ms"]:
        ratio = mlflow["data_ms"] / tidal["Runs"]["data_ms"]
    results.update({"workspace": workspace, "tidal": tidal, "mlflow": mlflow, "ratio": ratio,
                    "aim": {"page_ms": 1000, "ratio": 3.0}})
    print_table(results)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    failed = failures(results, asked=(args.runs, args.versions, max(1, args.predictions // 1000) * 1000),
                      mlflow_runs=None if anchor is None else anchor["runs"])
    for f in failed:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
