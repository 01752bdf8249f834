"""Scaling out (issue #16, point 6), in one run on this machine:

- **search**: N trials of a HistGradientBoosting search on the Elec2 example — Optuna alone in one process (the
  script a user would write: the same time split, the same space, TPE with the same seed, one trial after the
  other) beside `tidal run` with ``model.search`` on the local executor and on a local Ray (``storage.executor:
  ray``, trials in parallel, one per CPU). Ratio: Optuna alone's seconds over tidal on Ray's. The best value of
  each is printed: equal within noise is the check that both searched the same problem.
- **backtest**: `tidal backtest` of the Elec2 example, its strategies one after the other (local) and on a local
  Ray (the periodic and online strategies as tasks beside the loop's replay). Ratio: local over Ray. The
  scores must be equal to the last digit (the bench exits 1 otherwise).

Ray's own start (a local Ray, started on demand by the first step) is inside tidal's time: a user pays it.

    python bench/scale.py [--trials 40] [--only search,backtest]

Writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "scale.json"
ELEC2 = ROOT / "examples" / "elec2"
AIM = 1.7
SPACE = {"max_iter": (20, 200), "learning_rate": (0.01, 0.3)}
SEARCH_SPEC = """\
version: 1
name: elec2
data: {{source: data/elec2.csv.gz, target: up}}
prepare: {{impute: {{numeric: median, categorical: most_frequent}}, scale: none, encode: onehot}}
model:
  estimator: sklearn.ensemble.HistGradientBoostingClassifier
  seed: 0
  search:
    params: {{max_iter: {{int: [20, 200]}}, learning_rate: {{float: [0.01, 0.3], log: true}}}}
    trials: {trials}
    metric: accuracy
validate: {{split: {{method: time, test_size: 0.2}}, metrics: [accuracy], gates: []}}
"""


def _project(root: Path, spec: str | None = None) -> Path:
    shutil.copytree(ELEC2, root)
    if spec is not None:
        (root / "tidal.yaml").write_text(spec)
    return root


def optuna_alone(trials: int) -> dict[str, Any]:
    """The script: Optuna's TPE (seed 0) over the same space, HistGradientBoosting on the same time split."""
    import optuna
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    frame = pd.read_csv(io.BytesIO(gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes())))
    cut = int(len(frame) * 0.8)
    X, y = frame.drop(columns=["up"]), frame["up"]

    def objective(trial: Any) -> float:
        model = HistGradientBoostingClassifier(
            max_iter=trial.suggest_int("max_iter", *SPACE["max_iter"]),
            learning_rate=trial.suggest_float("learning_rate", *SPACE["learning_rate"], log=True), random_state=0)
        model.fit(X.iloc[:cut], y.iloc[:cut])
        return float(accuracy_score(y.iloc[cut:], model.predict(X.iloc[cut:])))

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=trials)
    return {"seconds": time.perf_counter() - start, "best": round(study.best_value, 4)}


def tidal_search(root: Path, trials: int, executor: str) -> dict[str, Any]:
    from tidal import Workspace

    _project(root, SEARCH_SPEC.format(trials=trials))
    start = time.perf_counter()
    with Workspace.open(root, executor=executor) as ws:
        result = ws.run()
        assert result.model is not None
        best = result.model.metrics.get("accuracy")
    return {"seconds": time.perf_counter() - start, "best": round(float(best), 4) if best is not None else None}


def tidal_backtest(root: Path, executor: str) -> dict[str, Any]:
    from tidal import Workspace

    _project(root)
    start = time.perf_counter()
    with Workspace.open(root, executor=executor) as ws:
        result = ws.backtest()
    scores = {name: (part or {}).get("score") for name, part in
              (("loop", result.loop), ("static", result.static), ("periodic", result.periodic),
               ("last_label", result.last_label), ("online", result.online))}
    return {"seconds": time.perf_counter() - start, "scores": scores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--only", default="search,backtest")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local Ray of the bench's own: no token file written
    only = {n for n in args.only.split(",") if n}
    out: dict[str, Any] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="tidal-bench-scale-") as tmp:
        base = Path(tmp)
        if "search" in only:
            print(f"== search: {args.trials} trials", flush=True)
            alone = optuna_alone(args.trials)
            print(f"   optuna alone      {alone['seconds']:7.1f} s  best accuracy {alone['best']}", flush=True)
            local = tidal_search(base / "search-local", args.trials, "local")
            print(f"   tidal, local      {local['seconds']:7.1f} s  best accuracy {local['best']}", flush=True)
            ray = tidal_search(base / "search-ray", args.trials, "ray")
            print(f"   tidal, local Ray  {ray['seconds']:7.1f} s  best accuracy {ray['best']}", flush=True)
            out["search"] = {"trials": args.trials, "optuna_alone": alone, "tidal_local": local, "tidal_ray": ray,
                             "ratio_optuna_over_tidal_ray": round(alone["seconds"] / ray["seconds"], 2),
                             "ratio_tidal_local_over_ray": round(local["seconds"] / ray["seconds"], 2)}
        if "backtest" in only:
            print("== backtest of the Elec2 example", flush=True)
            local = tidal_backtest(base / "backtest-local", "local")
            print(f"   local             {local['seconds']:7.1f} s", flush=True)
            ray = tidal_backtest(base / "backtest-ray", "ray")
            print(f"   local Ray         {ray['seconds']:7.1f} s", flush=True)
            same = local["scores"] == ray["scores"]
            ok &= same
            out["backtest"] = {"local": local, "ray": ray, "same_scores": same,
                               "ratio_local_over_ray": round(local["seconds"] / ray["seconds"], 2)}
    out["aim"] = AIM
    out["environment"] = {"cpus": os.cpu_count(), "python": platform.python_version(),
                          "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                          "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    print("\n| bench | sequential | on a local Ray | ratio | aim |")
    print("| --- | ---: | ---: | ---: | ---: |")
    if "search" in out:
        s = out["search"]
        print(f"| search, {s['trials']} trials (Optuna alone / tidal on Ray) | {s['optuna_alone']['seconds']:.1f} s | "
              f"{s['tidal_ray']['seconds']:.1f} s | {s['ratio_optuna_over_tidal_ray']:.2f}x | >= {AIM}x |")
    if "backtest" in out:
        b = out["backtest"]
        print(f"| backtest, Elec2 (local / Ray) | {b['local']['seconds']:.1f} s | {b['ray']['seconds']:.1f} s | "
              f"{b['ratio_local_over_ray']:.2f}x | >= {AIM}x |" + ("" if b["same_scores"] else " SCORES DIFFER"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
