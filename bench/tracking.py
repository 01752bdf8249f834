"""Tracking throughput: tidal against MLflow's SQLite-backed tracking, in one run.

Logs N metric values one call per value, then the same N in batches, through each tool, each on its
own fresh SQLite file; prints calls/s and values/s and the ratios. Then checks durability: a child
process logs values one call at a time and kills itself with SIGKILL; every value logged before the
kill must be there when the store is opened again.

Run it with ``make bench`` (it needs MLflow, installed into .venv-bench by bench/run.sh), or
``python bench/tracking.py --n 10000``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

SPEC = """version: 1
name: bench
data: {source: data.csv, target: y}
model: {estimator: sklearn.linear_model.LogisticRegression}
"""


def _workspace(folder: Path) -> Any:
    from tidal import Workspace

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "tidal.yaml").write_text(SPEC)
    return Workspace.open(folder)


def bench_tidal(folder: Path, n: int, batch: int) -> dict[str, float]:
    ws = _workspace(folder)
    with ws.start_run(trigger="bench") as tracker:
        start = time.perf_counter()
        for i in range(n):
            tracker.log_metric("loss", 1.0 / (i + 1), step=i)
        per_call = time.perf_counter() - start
    with ws.start_run(trigger="bench") as tracker:
        start = time.perf_counter()
        for lo in range(0, n, batch):
            with tracker.batch(flush_every=batch):
                for i in range(lo, min(n, lo + batch)):
                    tracker.log_metric("loss", 1.0 / (i + 1), step=i)
        batched = time.perf_counter() - start
    stored = sum(len(ws.store.get_metrics(r.id)) for r in ws.runs.list())
    ws.close()
    assert stored == 2 * n, f"tidal stored {stored} of {2 * n} values"
    return {"per_call_s": per_call, "batched_s": batched}


def bench_mlflow(folder: Path, n: int, batch: int) -> dict[str, float]:
    import mlflow
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    folder.mkdir(parents=True, exist_ok=True)
    os.chdir(folder)  # MLflow writes artifacts under ./mlruns
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(uri)
    exp = client.create_experiment("bench")
    run = client.create_run(exp)
    start = time.perf_counter()
    for i in range(n):
        client.log_metric(run.info.run_id, "loss", 1.0 / (i + 1), step=i)
    per_call = time.perf_counter() - start
    run2 = client.create_run(exp)
    start = time.perf_counter()
    ts = int(time.time() * 1000)
    for lo in range(0, n, batch):
        metrics = [Metric("loss", 1.0 / (i + 1), ts, i) for i in range(lo, min(n, lo + batch))]
        client.log_batch(run2.info.run_id, metrics=metrics)
    batched = time.perf_counter() - start
    stored = len(client.get_metric_history(run2.info.run_id, "loss"))
    assert stored == n, f"MLflow stored {stored} of {n} values"
    return {"per_call_s": per_call, "batched_s": batched}


def _crash_child(folder: str, n: int) -> None:
    ws = _workspace(Path(folder))
    with ws.start_run(trigger="crash") as tracker:
        for i in range(n):
            tracker.log_metric("loss", float(i), step=i)
        os.kill(os.getpid(), signal.SIGKILL)


def crash_check(folder: Path, n: int) -> dict[str, int]:
    proc = subprocess.run([sys.executable, __file__, "--crash-child", str(folder), "--n", str(n)], check=False)
    ws = _workspace(folder)
    runs = ws.runs.list()
    found = len(ws.store.get_metrics(runs[0].id)) if runs else 0
    ws.close()
    return {"logged": n, "found_after_sigkill": found, "child_exit": proc.returncode}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=1_000, help="values per batch (MLflow's limit is 1,000)")
    parser.add_argument("--crash-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "tracking.json"))
    args = parser.parse_args()
    if args.crash_child:
        _crash_child(args.crash_child, args.n)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        tidal_t = bench_tidal(root / "tidal", args.n, args.batch)
        mlflow_t = bench_mlflow(root / "mlflow", args.n, args.batch)
        crash = crash_check(root / "crash", 2_000)
    n = args.n
    rows = {
        "tidal": {"calls_per_s": n / tidal_t["per_call_s"], "batched_values_per_s": n / tidal_t["batched_s"]},
        "mlflow": {"calls_per_s": n / mlflow_t["per_call_s"], "batched_values_per_s": n / mlflow_t["batched_s"]},
    }
    ratio_call = rows["tidal"]["calls_per_s"] / rows["mlflow"]["calls_per_s"]
    ratio_batch = rows["tidal"]["batched_values_per_s"] / rows["mlflow"]["batched_values_per_s"]
    print(f"tracking: {n:,} metric values, SQLite, one process")
    print(f"{'tool':<8}{'one call per value':>22}{'batches of ' + str(args.batch):>24}")
    for tool, r in rows.items():
        print(f"{tool:<8}{r['calls_per_s']:>16,.0f} calls/s{r['batched_values_per_s']:>17,.0f} values/s")
    print(f"{'ratio':<8}{ratio_call:>20.1f}x{ratio_batch:>23.1f}x   (aim: >= 20x per call, >= 3x in batches)")
    print(f"durability: {crash['found_after_sigkill']:,} of {crash['logged']:,} values logged before SIGKILL "
          "are in the store")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"n": n, "batch": args.batch, "results": rows, "ratio_per_call": ratio_call,
                               "ratio_batched": ratio_batch, "durability": crash}, indent=2))
    ok = crash["found_after_sigkill"] == crash["logged"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
