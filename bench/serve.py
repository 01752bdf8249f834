"""Serving throughput: tidal (prediction log on) against ``mlflow models serve``, BentoML and a minimal
FastAPI endpoint (the floor), the same model, the same load generator, in one run.

The model is a HistGradientBoostingClassifier (default parameters) trained by ``tidal run`` on
scikit-learn's breast_cancer data (569 rows, 30 features, shipped with scikit-learn), written as CSV in
a temporary tidal project whose ``prepare`` step is the identity (no imputation, no scaling), so the
three servers serve one fitted model:

1. tidal: ``tidal.serve.run_server`` on the project, one worker; every prediction is committed to the
   prediction log (SQLite, in the project) before it is answered.
2. MLflow: the same fitted pipeline saved by ``mlflow.sklearn.save_model`` (skops, with the trusted
   types it needs), served by ``mlflow models serve --env-manager local`` (one worker), which runs
   ``uvicorn`` from PATH: bench/run.sh puts the bench venv's bin first.
3. BentoML: bench/_bento.py, the ``@bentoml.service`` a BentoML user would write (typed input, the same
   estimator's ``predict_proba``), served by ``bentoml serve`` (one worker) from its own environment
   (``.venv-bentoml``; bench/run.sh sets ``TIDAL_BENCH_BENTOML`` to its ``bentoml``). Skipped, and said so,
   when that is not set.
4. the floor: bench/_floor.py, FastAPI + ``predict_proba`` of the same estimator on a NumPy array, no
   validation and no log: the least a server can do.
5. tidal_v2: the tidal server once more, answering the same rows sent as Open Inference Protocol v2 JSON
   tensors (``POST /v2/models/cancer/infer``, one FP64 tensor per column): the ``tidal_v2/tidal`` ratio is
   the protocol's cost against ``/predict`` (the issue's aim: within 10 %). When both run, they run on one
   server and take turns: each cell is measured in 4 turns of ``--seconds``/4 for each, who goes first
   alternating, so that a change in the machine's load falls on both alike (p50: the median of the turns',
   p99: the largest).

The servers run one at a time, alone, each with ``OMP_NUM_THREADS=1`` (tidal caps its threads itself;
the anchors get the same setting, so the comparison is not about OpenMP spinning). ``mlflow_default`` is
MLflow once more as a user would start it, without that setting: on this 2-core machine scikit-learn's
OpenMP threads spin, which is what the issue's own MLflow figures (113 and 75 req/s) show. The aims are
checked against the capped MLflow, the stricter comparison. Cells: single-row
requests at concurrency 1 and 8, and 1,000-row requests (concurrency 1 by default); each measured for
``--seconds`` (20) after a short warm-up, by wrk (bench/_load.py). Before measuring, one request to each
server checks that they give the same predictions. Prints a table with tidal/MLflow and tidal/floor ratios
and writes bench/results/serve.json.

The boosters (issue 12, point 6): an XGBoost and a LightGBM classifier (``xgboost.XGBClassifier`` and
``lightgbm.LGBMClassifier``, default parameters but ``n_jobs: 1``), each trained by ``tidal run`` on the same
data with the same identity ``prepare``, each served by

- ``<model>_tidal``: tidal, prediction log on, ``/predict``;
- ``<model>_floor``: bench/_floor.py with the very estimator tidal serves (loaded from the project's
  registry), its own ``predict_proba`` behind the minimal FastAPI endpoint;
- ``<model>_onnx``: tidal serving the ONNX form (``deploy.runtime: onnx``, onnxruntime), from a project of
  its own trained with that setting (the ONNX form is made at registration), measured only where this
  tidal's ``tidal.yaml`` has that setting; otherwise the table says "not available", never a figure.

at 1 row and ``--batch-rows`` (1,000) rows, concurrency 1; the ratio column is tidal's fastest path over the
floor (aims: >= 1x at 1 row, >= 0.9x at 1,000 rows). ``n_jobs: 1`` gives the floor its best setting: with
the default (every core), LightGBM's and XGBoost's own ``predict_proba`` start a team of threads on every
call, which on this 2-core machine costs milliseconds a row (measured: LightGBM 7.6 ms against 0.36 ms).

Run it with ``make bench`` (``bash bench/run.sh serve``), or ``python bench/serve.py --seconds 5`` for a
quick run. ``--only`` picks servers or whole models without MLflow or BentoML, e.g.
``python bench/serve.py --only xgboost,lightgbm,tidal_v2 --seconds 3`` (``tidal_v2`` brings ``tidal``, its
ratio's denominator).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import ensure_wrk, run_load

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "serve.json"
#: The servers of the HistGradientBoosting model (their labels in the results are these names).
SERVERS = ("tidal", "tidal_v2", "mlflow", "mlflow_default", "bentoml", "floor")
#: The booster models: name → (model.estimator, model.params).
BOOSTERS = {"xgboost": ("xgboost.XGBClassifier", "{n_jobs: 1}"),
            "lightgbm": ("lightgbm.LGBMClassifier", "{n_jobs: 1, verbose: -1}")}
#: The servers each booster is measured on, labelled ``<model>_<kind>``: kind → (the :class:`Server` that
#: runs, the ``deploy`` settings of the project it serves; each distinct one is trained once). ``onnx`` runs
#: only where :func:`unavailable` finds nothing missing.
BOOSTER_KINDS = {"tidal": ("tidal", ""), "onnx": ("tidal", "runtime: onnx, "), "floor": ("floor", "")}
#: The kinds that are tidal (the ratio column takes the fastest of them over the floor).
TIDAL_KINDS = ("tidal", "onnx")
#: How many turns tidal's /predict and v2 infer take on each cell (see the module docstring).
TURNS = 4
ANCHOR_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

SPEC = """\
version: 1
name: cancer
data: {{source: data/breast_cancer.csv, target: target}}
prepare: {{impute: {{numeric: none, categorical: most_frequent}}, scale: none, encode: onehot}}
model: {{estimator: {estimator}, params: {params}, seed: 0}}
validate: {{split: {{method: random, test_size: 0.2}}, metrics: [accuracy, roc_auc], gates: []}}
deploy: {{{deploy}max_request_bytes: 16777216, max_rows: 10000}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Plan:
    """What one run measures: the HistGradientBoosting servers, and the booster models."""

    servers: list[str]
    boosters: list[str]


def plan(only: str | None, servers: str) -> Plan:
    """``--only`` (models and servers, mixed) or ``--servers`` (the HistGradientBoosting servers)."""
    if only is None:
        return Plan([s for s in servers.split(",") if s], list(BOOSTERS))
    names = [n for n in only.split(",") if n]
    unknown = [n for n in names if n not in SERVERS and n not in BOOSTERS and n != "hgb"]
    if unknown:
        raise SystemExit(f"--only: unknown {', '.join(unknown)}; name models ({', '.join(['hgb', *BOOSTERS])}) "
                         f"or servers of the HistGradientBoosting model ({', '.join(SERVERS)})")
    picked = list(SERVERS) if "hgb" in names else [s for s in SERVERS if s in names]
    if "tidal_v2" in picked and "tidal" not in picked:
        picked.insert(0, "tidal")  # the denominator of tidal_v2's ratio
    return Plan(picked, [b for b in BOOSTERS if b in names])


def unavailable(kind: str) -> str | None:
    """Why a booster server kind cannot run with this tidal, or None when it can."""
    if kind != "onnx":
        return None
    from tidal.spec.model import DeploySpec

    if "runtime" not in DeploySpec.model_fields:
        return "not available: this tidal has no deploy.runtime (the ONNX runtime path, issue 12 point 4)"
    return None


# -- the models ---------------------------------------------------------------------------------------------


def train(project: Path, estimator: str, params: str, deploy: str = "") -> dict[str, Any]:
    """A tidal project on breast_cancer, trained: its champion's columns, holdout metrics and model."""
    from sklearn.datasets import load_breast_cancer
    from threadpoolctl import threadpool_limits

    from tidal import Workspace

    df = load_breast_cancer(as_frame=True).frame
    (project / "data").mkdir(parents=True)
    df.to_csv(project / "data" / "breast_cancer.csv", index=False)
    (project / "tidal.yaml").write_text(SPEC.format(estimator=estimator, params=params, deploy=deploy))
    with Workspace.open(project) as ws, threadpool_limits(1):  # OpenMP spinning slows training on 2 busy cores
        result = ws.run()
        mv = result.model
        assert mv is not None and ws.registry.champion("cancer").version == mv.version
        pipeline = ws.registry.load(mv)
        columns = mv.signature.names
        metrics = {k: round(v, 4) for k, v in mv.metrics.items()}
    rows = [{c: float(v) for c, v in rec.items()} for rec in df[columns].to_dict("records")]
    return {"project": project, "columns": columns, "rows": rows, "metrics": metrics, "pipeline": pipeline,
            "frame": df}


def build(folder: Path, servers: list[str]) -> dict[str, Any]:
    """The HistGradientBoosting project (trained), the MLflow model folder (when an MLflow server runs) and
    the floor's skops file."""
    import skops.io as sio

    built = train(folder / "tidal", "sklearn.ensemble.HistGradientBoostingClassifier", "{}")
    pipeline = built.pop("pipeline")
    df = built.pop("frame")
    if any(s.startswith("mlflow") for s in servers):
        import mlflow.sklearn

        mlflow_dir = folder / "mlflow-model"
        trusted = sorted(set(sio.get_untrusted_types(data=sio.dumps(pipeline))))
        sample = df[built["columns"]].iloc[:2].astype("float64")
        mlflow.sklearn.save_model(pipeline, str(mlflow_dir), serialization_format="skops",
                                  skops_trusted_types=trusted, input_example=sample)
        built["mlflow_dir"] = mlflow_dir
    floor_model = folder / "floor.skops"
    sio.dump(pipeline.named_steps["model"], floor_model)
    built.update(floor_model=floor_model, trees=int(pipeline.named_steps["model"].n_iter_))
    return built


def build_booster(folder: Path, model: str, deploy: str = "") -> dict[str, Any]:
    """A booster's project (trained); its floor loads the same fitted estimator from that project."""
    estimator, params = BOOSTERS[model]
    name = model + ("-" + deploy.split(":")[1].strip(" ,") if deploy else "")  # e.g. xgboost-onnx
    built = train(folder / name, estimator, params, deploy)
    fitted = built.pop("pipeline").named_steps["model"]
    built.pop("frame")
    # the boosting rounds the booster holds (XGBoost's n_estimators stays None when left to its default)
    booster = fitted.get_booster() if model == "xgboost" else fitted.booster_
    built["trees"] = int(booster.num_boosted_rounds() if model == "xgboost" else booster.current_iteration())
    return built


# -- servers ------------------------------------------------------------------------------------------------


class Server:
    """One server process, started alone, stopped by its own pid. ``kind`` says which server (one of
    :data:`SERVERS`); ``label`` names it in the results."""

    def __init__(self, label: str, kind: str, built: dict[str, Any], log: Path) -> None:
        self.name = label
        self.kind = kind
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, **ANCHOR_ENV}
        if kind == "mlflow_default":  # MLflow as a user starts it: no thread cap, scikit-learn's OpenMP as it comes
            env = {k: v for k, v in os.environ.items() if k not in ANCHOR_ENV}
        self.columns: list[str] = built["columns"]
        if kind in ("tidal", "tidal_v2"):
            project = Path(built["project"])
            code = ("import sys; from pathlib import Path; from tidal.serve import run_server; "
                    "run_server(Path(sys.argv[1]), host='127.0.0.1', port=int(sys.argv[2]))")
            cmd = [sys.executable, "-c", code, str(project), str(self.port)]
            self.path = f"/v2/models/{built.get('name', 'cancer')}/infer" if kind == "tidal_v2" else "/predict"
            self.ready = "/readyz"
        elif kind in ("mlflow", "mlflow_default"):
            mlflow_bin = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
            cmd = [mlflow_bin, "models", "serve", "-m", str(built["mlflow_dir"]), "--env-manager", "local",
                   "-h", "127.0.0.1", "-p", str(self.port), "-w", "1"]
            self.path, self.ready = "/invocations", "/ping"
        elif kind == "bentoml":
            env.update(FLOOR_MODEL=str(built["floor_model"]), FLOOR_COLUMNS=json.dumps(built["columns"]))
            cmd = [os.environ["TIDAL_BENCH_BENTOML"], "serve", "_bento:Cancer", "--working-dir", str(HERE),
                   "--host", "127.0.0.1", "--port", str(self.port)]
            self.path, self.ready = "/predict", "/readyz"
        elif kind == "floor":
            if "floor_model" in built:
                env.update(FLOOR_MODEL=str(built["floor_model"]))
            else:  # a booster: the estimator tidal serves, from the project's registry
                env.update(FLOOR_PROJECT=str(built["project"]))
            env.update(FLOOR_COLUMNS=json.dumps(built["columns"]), **built.get("floor_env", {}))
            # bench/images.py's floor is an app of its own (bench/_floor_images.py)
            app = f"{built.get('floor_app', '_floor')}:app"
            cmd = [sys.executable, "-m", "uvicorn", app, "--app-dir", str(HERE), "--host", "127.0.0.1",
                   "--port", str(self.port), "--no-access-log", "--log-level", "warning"]
            self.path, self.ready = "/predict", "/ping"
        else:
            raise ValueError(f"unknown server kind {kind!r}")
        self.url = self.base + self.path
        self.log = log
        with open(log, "wb") as out:
            # a session of its own, so that stopping it stops the workers MLflow's CLI starts under it
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait_ready(self, timeout: float = 120.0) -> None:
        import urllib.request

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.base + self.ready, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"{self.name} was not ready within {timeout} s:\n{self.log.read_text()[-3000:]}")

    def body(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        """The request body for ``rows``: ``{"instances": rows}``, or v2 JSON tensors (one per column)."""
        if self.kind != "tidal_v2":
            return {"instances": rows}
        return {"inputs": [{"name": c, "shape": [len(rows)], "datatype": "FP64", "data": [r[c] for r in rows]}
                           for c in self.columns]}

    def predictions(self, rows: list[dict[str, Any]]) -> list[Any]:
        answer = self.post(self.body(rows))
        if self.kind == "tidal_v2":
            return list(next(o["data"] for o in answer["outputs"] if o["name"] == "predict"))
        return list(answer["predictions"])

    def post(self, doc: dict[str, Any]) -> dict[str, Any]:
        import urllib.request

        req = urllib.request.Request(self.url, data=json.dumps(doc).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return dict(json.loads(resp.read()))

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the group of the process started above, and only it
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


# -- where tidal's time goes -------------------------------------------------------------------------------


def stages(built: dict[str, Any], n_rows: int, folder: Path, tag: str = "hgb") -> dict[str, float]:
    """Microseconds per request for each step of tidal's /predict on ``n_rows`` rows, in this process (best
    of 3 runs): the generic path it replaced, then each step of the path it takes. The log appends go to a
    log of their own (SQLite, like the server's), so the server's log starts empty."""
    import orjson
    from threadpoolctl import threadpool_limits

    from tidal import Workspace
    from tidal.core.batches import PredictionBatch
    from tidal.core.ids import new_ids
    from tidal.predict.predictor import GenericPredictor, build_predictor, to_json

    threadpool_limits(1)
    with Workspace.open(built["project"], predictions_url=f"sqlite:///{folder / f'stages-{tag}-{n_rows}.db'}") as ws:
        mv = ws.registry.champion("cancer")
        model = ws.registry.load(mv)
        fast = build_predictor(model, mv.signature, mv.profile, task=mv.task)
        generic = GenericPredictor(model, built["columns"], mv.signature.columns, classifier=True)
        body = json.dumps({"instances": (built["rows"] * 2)[:n_rows]}).encode()
        rows = orjson.loads(body)["instances"]
        out = fast.predictor.arrays(rows)
        now = ws.clock.now()

        def records() -> PredictionBatch:  # what the server builds (service.py: make_records)
            preds, probas = to_json(out)
            return PredictionBatch(ids=new_ids(len(rows)), time=now, model="cancer", version=1, inputs=rows,
                                   outputs=preds, probas=probas, request_id="r")

        answer = {"predictions": to_json(out)[0], "probabilities": to_json(out)[1],
                  "prediction_ids": list(new_ids(n_rows))}
        log = ws.predictions
        steps = {
            "generic path (DataFrame, predict, predict_proba)": lambda: generic.arrays(rows),
            "parse JSON": lambda: orjson.loads(body),
            "check rows against the signature": lambda: fast.schema.check_rows(rows),
            f"{fast.predictor.path} path predictor": lambda: fast.predictor.arrays(rows),
            "ids and the column-wise prediction batch": records,
            "prediction log append (commit)": lambda: log.append(records()),
            "answer JSON": lambda: orjson.dumps(answer),
        }
        result = best_of_3(steps, 200 if n_rows == 1 else 5)
    return result


def best_of_3(steps: dict[str, Callable[[], Any]], reps: int) -> dict[str, float]:
    """Microseconds per call of each step (one call first, to warm it), the best of 3 runs of ``reps`` calls:
    on a busy machine someone else's work slows a run, never speeds one. Shared by bench/images.py."""
    result = {}
    for name, step in steps.items():
        step()
        best = min(_timed(step, reps) for _ in range(3))
        result[name] = round(best * 1e6, 1)
    return result


def _timed(step: Callable[[], Any], reps: int) -> float:
    start = time.perf_counter()
    for _ in range(reps):
        step()
    return (time.perf_counter() - start) / reps


# -- the run ------------------------------------------------------------------------------------------------


def cells(args: argparse.Namespace) -> list[dict[str, Any]]:
    return [{"cell": "1 row, concurrency 1", "rows": 1, "connections": 1},
            {"cell": "1 row, concurrency 8", "rows": 1, "connections": 8},
            {"cell": f"{args.batch_rows} rows, concurrency {args.batch_connections}", "rows": args.batch_rows,
             "connections": args.batch_connections}]


def booster_cells(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The issue's booster cells: 1 row and the batch, one connection (no concurrency-8 cell)."""
    return [c for c in cells(args) if c["connections"] == 1 or c["rows"] != 1]


def measure(server: Server, built: dict[str, Any], cell_list: list[dict[str, Any]], args: argparse.Namespace,
            wrk: str | None) -> dict[str, Any]:
    """Each cell on a started server: a warm-up, then ``--seconds`` of load."""
    out: dict[str, Any] = {}
    for cell in cell_list:
        body = json.dumps(server.body((built["rows"] * 2)[:cell["rows"]])).encode()
        run_load(server.url, body, connections=cell["connections"], seconds=min(2.0, args.seconds / 4),
                 wrk=wrk)  # warm-up
        r = run_load(server.url, body, connections=cell["connections"], seconds=args.seconds, wrk=wrk)
        out[cell["cell"]] = r
        print(f"{server.name:15s} {cell['cell']:28s} {r['rps']:9.1f} req/s   p50 {r['p50_ms']:8.2f} ms   "
              f"p99 {r['p99_ms']:8.2f} ms   failed {r['failed']}", flush=True)
    return out


def serve_and_measure(label: str, kind: str, built: dict[str, Any], cell_list: list[dict[str, Any]],
                      args: argparse.Namespace, wrk: str | None, folder: Path,
                      reference: list[Any] | None) -> tuple[dict[str, Any], list[Any]]:
    """Start one server, check it predicts as the model's first server did, measure it, stop it."""
    server = Server(label, kind, built, folder / f"{label}.log")
    try:
        server.wait_ready()
        answer = server.predictions(built["rows"][:50])
        assert reference is None or answer == reference, f"{label} predicts differently from the first server"
        return measure(server, built, cell_list, args, wrk), answer
    finally:
        server.stop()


def serve_in_turns(built: dict[str, Any], cell_list: list[dict[str, Any]], args: argparse.Namespace,
                   wrk: str | None, folder: Path, reference: list[Any] | None) -> tuple[tuple[dict[str, Any], ...],
                                                                                      list[Any]]:
    """tidal's /predict and its v2 infer on one tidal server, each cell measured in :data:`TURNS` turns of
    each (see the module docstring); both checked to predict as the model's first server did."""
    server = Server("tidal", "tidal", built, folder / "tidal.log")
    v2 = copy.copy(server)  # the same process, reached at the infer route with v2 bodies
    v2.name, v2.kind = "tidal_v2", "tidal_v2"
    v2.path = f"/v2/models/{built.get('name', 'cancer')}/infer"
    v2.url = v2.base + v2.path
    pair = (server, v2)
    try:
        server.wait_ready()
        answer = server.predictions(built["rows"][:50])
        assert reference is None or answer == reference, "tidal predicts differently from the first server"
        assert v2.predictions(built["rows"][:50]) == answer, "tidal's v2 infer predicts differently from /predict"
        out: tuple[dict[str, Any], ...] = ({}, {})
        for cell in cell_list:
            bodies = [json.dumps(s.body((built["rows"] * 2)[:cell["rows"]])).encode() for s in pair]
            for s, body in zip(pair, bodies, strict=True):  # warm-up
                run_load(s.url, body, connections=cell["connections"], seconds=min(2.0, args.seconds / 4), wrk=wrk)
            turns: list[list[dict[str, Any]]] = [[], []]
            for k in range(TURNS):
                for i in ((0, 1) if k % 2 == 0 else (1, 0)):  # who goes first alternates
                    turns[i].append(run_load(pair[i].url, bodies[i], connections=cell["connections"],
                                             seconds=args.seconds / TURNS, wrk=wrk))
            for i, s in enumerate(pair):
                r = merged(turns[i])
                out[i][cell["cell"]] = r
                print(f"{s.name:15s} {cell['cell']:28s} {r['rps']:9.1f} req/s   p50 {r['p50_ms']:8.2f} ms   "
                      f"p99 {r['p99_ms']:8.2f} ms   failed {r['failed']}", flush=True)
        return out, answer
    finally:
        server.stop()


def merged(turns: list[dict[str, Any]]) -> dict[str, Any]:
    """One cell's figures from its turns: requests/s over all of them, the median of their p50s, the largest
    of their p99s."""
    requests = sum(t["requests"] for t in turns)
    seconds = sum(t["requests"] / t["rps"] for t in turns if t["rps"])
    p50s = sorted(t["p50_ms"] for t in turns)
    return {"generator": turns[0]["generator"], "requests": requests, "rps": requests / seconds if seconds else 0.0,
            "p50_ms": p50s[len(p50s) // 2], "p99_ms": max(t["p99_ms"] for t in turns),
            "failed": sum(t["failed"] for t in turns), "turns": len(turns)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per cell (default 20)")
    parser.add_argument("--batch-rows", type=int, default=1000)
    parser.add_argument("--batch-connections", type=int, default=1)
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help="the HistGradientBoosting model's servers, comma-separated (default: all)")
    parser.add_argument("--only", default=None,
                        help="only these models and servers, comma-separated: hgb (every server of the "
                             "HistGradientBoosting model), xgboost, lightgbm, or one of " + ", ".join(SERVERS)
                             + "; e.g. xgboost,lightgbm,tidal_v2 (needs neither MLflow nor BentoML)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    chosen = plan(args.only, args.servers)
    servers = chosen.servers
    if "bentoml" in servers and not os.environ.get("TIDAL_BENCH_BENTOML"):
        print("bentoml: skipped (TIDAL_BENCH_BENTOML is not set: run this through bench/run.sh, which makes "
              ".venv-bentoml)")
        servers.remove("bentoml")
    wrk = ensure_wrk()
    print(f"load generator: {'wrk' if wrk else 'python (wrk not found: apt-get install -y wrk)'}")
    results: dict[str, Any] = {"servers": {}, "cells": [c["cell"] for c in cells(args)],
                               "booster_cells": [c["cell"] for c in booster_cells(args)], "boosters": {},
                               "load_average_at_start": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory(prefix="tidal-bench-serve-") as tmp:
        folder = Path(tmp)
        if servers:
            t0 = time.perf_counter()
            built = build(folder, servers)
            print(f"model: HistGradientBoostingClassifier, {built['trees']} trees, 30 features, holdout "
                  f"{built['metrics']} (built in {time.perf_counter() - t0:.1f} s)")
            if "tidal" in servers:
                results["tidal_stages_us"] = {"1 row": stages(built, 1, folder),
                                              f"{args.batch_rows} rows": stages(built, args.batch_rows, folder)}
                print_stages("tidal /predict", results["tidal_stages_us"])
            reference: list[Any] | None = None
            paired = "tidal" in servers and "tidal_v2" in servers
            for name in servers:
                if name == "tidal_v2" and paired:
                    continue  # measured in turns with tidal, on its server
                if name == "tidal" and paired:
                    (results["servers"]["tidal"], results["servers"]["tidal_v2"]), answer = serve_in_turns(
                        built, cells(args), args, wrk, folder, reference)
                else:
                    results["servers"][name], answer = serve_and_measure(name, name, built, cells(args), args, wrk,
                                                                         folder, reference)
                reference = reference or answer
                if name == "tidal":
                    results["tidal_log_rows"] = log_rows(built["project"])
        for model in chosen.boosters:
            t0 = time.perf_counter()
            built = build_booster(folder, model)
            print(f"model: {BOOSTERS[model][0]}, {built['trees']} trees, 30 features, holdout {built['metrics']} "
                  f"(built in {time.perf_counter() - t0:.1f} s)")
            entry: dict[str, Any] = {"estimator": BOOSTERS[model][0], "params": BOOSTERS[model][1], "servers": {},
                                     "not_available": {}}
            entry["tidal_stages_us"] = {"1 row": stages(built, 1, folder, model),
                                        f"{args.batch_rows} rows": stages(built, args.batch_rows, folder, model)}
            print_stages(f"{model}: tidal /predict", entry["tidal_stages_us"])
            reference = None
            projects = {"": built}  # by deploy settings
            for kind, (server_kind, deploy) in BOOSTER_KINDS.items():
                label = f"{model}_{kind}"
                why = unavailable(kind)
                if why is not None:
                    entry["not_available"][kind] = why
                    print(f"{label:15s} {why}")
                    continue
                try:
                    if deploy not in projects:
                        projects[deploy] = build_booster(folder, model, deploy)
                    entry["servers"][kind], answer = serve_and_measure(label, server_kind, projects[deploy],
                                                                       booster_cells(args), args, wrk, folder,
                                                                       reference)
                except Exception as exc:
                    if kind in ("tidal", "floor"):
                        raise
                    # a path of its own (ONNX) that fails is said so, in one line, and the others still run
                    entry["not_available"][kind] = f"failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
                    print(f"{label:15s} {entry['not_available'][kind]}")
                    continue
                reference = reference or answer
            entry["tidal_log_rows"] = {Path(b["project"]).name: log_rows(b["project"]) for b in projects.values()}
            results["boosters"][model] = entry
    results.update(ratios(results), environment=environment(args, wrk))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    print_booster_tables(results)
    print(f"wrote {args.out}")
    return 0


def log_rows(project: Path) -> int:
    from tidal import Workspace

    with Workspace.open(project) as ws:
        return int(ws.predictions.count(model="cancer"))


def print_stages(what: str, table: dict[str, dict[str, float]]) -> None:
    for label, steps in table.items():
        print(f"{what}, {label}, microseconds per request, in process:")
        for step, us in steps.items():
            print(f"   {us:10.1f}  {step}")


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"ratios": {}, "aims": {}}
    s = results["servers"]
    for cell in results["cells"] if "tidal" in s else []:
        tidal = s["tidal"][cell]
        row: dict[str, float] = {}
        for anchor in ("mlflow", "mlflow_default", "bentoml", "floor"):
            if anchor in s:
                row[f"tidal/{anchor}"] = round(tidal["rps"] / s[anchor][cell]["rps"], 2)
        if "tidal_v2" in s:
            row["tidal_v2/tidal"] = round(s["tidal_v2"][cell]["rps"] / tidal["rps"], 2)
        out["ratios"][cell] = row
        aims: dict[str, bool] = {}
        # The multiples of MLflow and BentoML are about single-row requests (its anchor figures are
        # single-row). At 1,000 rows the model's own work dominates every server: even the floor is only
        # ~8x MLflow and ~1.3x BentoML there, so those multiples are not checked; the floor's is.
        single = cell.startswith("1 row")
        if "tidal/mlflow" in row and single:
            aims[">= 10x mlflow"] = row["tidal/mlflow"] >= 10
        if "tidal/bentoml" in row and single:
            aims[">= 2.5x bentoml"] = row["tidal/bentoml"] >= 2.5
        if "tidal/floor" in row:
            aims[">= 0.8x floor"] = row["tidal/floor"] >= 0.8
        if "tidal_v2/tidal" in row:
            aims["v2 >= 0.9x /predict"] = row["tidal_v2/tidal"] >= 0.9
        if "concurrency 8" in cell:
            aims["p99 <= 10 ms"] = tidal["p99_ms"] <= 10
        out["aims"][cell] = aims
    for model, entry in results.get("boosters", {}).items():
        b = entry["servers"]
        for cell in results["booster_cells"]:
            fastest = max((k for k in TIDAL_KINDS if k in b), key=lambda k: b[k][cell]["rps"], default=None)
            if fastest is None or "floor" not in b:
                continue
            ratio = round(b[fastest][cell]["rps"] / b["floor"][cell]["rps"], 2)
            row = {f"{k}/floor": round(b[k][cell]["rps"] / b["floor"][cell]["rps"], 2) for k in TIDAL_KINDS if k in b}
            out["ratios"][f"{model}, {cell}"] = {**row, "fastest": fastest, "fastest/floor": ratio}
            aim = 1.0 if cell.startswith("1 row") else 0.9
            out["aims"][f"{model}, {cell}"] = {f"fastest tidal path ({fastest}) >= {aim}x floor": ratio >= aim}
    return out


def environment(args: argparse.Namespace, wrk: str | None) -> dict[str, Any]:
    import sklearn

    env = {"seconds_per_cell": args.seconds, "generator": "wrk -t1" if wrk else "python", "cpus": os.cpu_count(),
           "load_average_at_end": [round(x, 2) for x in os.getloadavg()], "python": platform.python_version(),
           "platform": platform.platform(), "scikit-learn": sklearn.__version__,
           "bentoml": _bentoml_version(), "anchor_env": ANCHOR_ENV, "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    for library in ("mlflow", "xgboost", "lightgbm"):
        try:
            env[library] = __import__(library).__version__
        except ImportError:
            env[library] = None
    return env


def _bentoml_version() -> str | None:
    exe = os.environ.get("TIDAL_BENCH_BENTOML")
    if not exe:
        return None
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    return out.rsplit(" ", 1)[-1] or None


def print_table(results: dict[str, Any]) -> None:
    if not results["servers"]:
        return
    print()
    keys = [f"tidal/{a}" for a in ("mlflow", "mlflow_default", "bentoml", "floor") if a in results["servers"]]
    keys += ["tidal_v2/tidal"] if "tidal_v2" in results["servers"] and "tidal" in results["servers"] else []
    print(f"{'cell':28s} " + " ".join(f"{s + ' req/s':>13s} {'p50':>7s} {'p99':>7s}" for s in results["servers"])
          + "  " + " ".join(f"{k:>20s}" for k in keys))
    for cell in results["cells"]:
        parts = []
        for s in results["servers"]:
            r = results["servers"][s][cell]
            parts.append(f"{r['rps']:13.1f} {r['p50_ms']:7.2f} {r['p99_ms']:7.2f}")
        ratio = results.get("ratios", {}).get(cell, {})
        print(f"{cell:28s} " + " ".join(parts) + "  " + " ".join(f"{ratio.get(k, float('nan')):20.2f}" for k in keys))
    print()
    for cell, aims in results.get("aims", {}).items():
        if cell in results["cells"]:
            print(f"aims, {cell}: " + ", ".join(f"{aim} {'met' if ok else 'MISSED'}" for aim, ok in aims.items()))
    if "tidal_log_rows" in results:
        print(f"tidal prediction log: {results['tidal_log_rows']} predictions stored")


def print_booster_tables(results: dict[str, Any]) -> None:
    for model, entry in results.get("boosters", {}).items():
        print()
        print(f"{model} ({entry['estimator']}, params {entry['params']}):")
        kinds = [k for k in BOOSTER_KINDS if k in entry["servers"] or k in entry["not_available"]]
        print(f"{'cell':28s} " + " ".join(f"{k + ' req/s':>13s} {'p50':>7s} {'p99':>7s}" for k in kinds)
              + f"  {'tidal/floor':>12s}")
        for cell in results["booster_cells"]:
            parts = []
            for k in kinds:
                r = entry["servers"].get(k)
                parts.append(f"{'n/a':>13s} {'':7s} {'':7s}" if r is None else
                             f"{r[cell]['rps']:13.1f} {r[cell]['p50_ms']:7.2f} {r[cell]['p99_ms']:7.2f}")
            ratio = results.get("ratios", {}).get(f"{model}, {cell}", {}).get("fastest/floor", float("nan"))
            print(f"{cell:28s} " + " ".join(parts) + f"  {ratio:12.2f}")
        for kind, why in entry["not_available"].items():
            print(f"   {kind}: {why}")
        for cell in results["booster_cells"]:
            aims = results.get("aims", {}).get(f"{model}, {cell}", {})
            if aims:
                print(f"aims, {cell}: " + ", ".join(f"{a} {'met' if ok else 'MISSED'}" for a, ok in aims.items()))
        for project, n in entry["tidal_log_rows"].items():
            print(f"tidal prediction log ({project}): {n} predictions stored")


if __name__ == "__main__":
    sys.exit(main())
