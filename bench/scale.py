"""Scaling out (issue #16, point 6), in one run on this machine:

- **search**: N trials of a HistGradientBoosting search on the Elec2 example — Optuna alone in one process (the
  script a user would write for the same problem: the inner split of the training rows that tidal's trials are
  scored on, the same space, TPE with the same seed, the median pruner on the same curve, one trial after the
  other, then the best parameters fitted on the training rows and scored on the holdout) beside `tidal run`
  with ``model.search`` on the local executor and on a local Ray (``storage.executor: ray``, trials in
  parallel, one per CPU). Ratio: Optuna alone's seconds over tidal on Ray's. The best validation accuracy of
  each must agree within ``BEST_TOLERANCE`` (the bench exits 1 otherwise): they searched the same problem.
  The ceiling beside it: the same fits with no search around them, one after the other with every core's
  threads, and in one process per core with one thread each (the most running trials side by side can
  gain here), and the seconds a local Ray takes to start.
- **backtest**: `tidal backtest` of the Elec2 example, its strategies one after the other (local) and on a local
  Ray (the periodic and online strategies as tasks beside the loop's replay). Ratio: local over Ray. The
  scores must be equal to the last digit (the bench exits 1 otherwise). The ceiling beside it: the loop's
  replay is serial, so Ray saves at most the periodic strategy's time.

Ray's own start (a local Ray, started on demand by the first step) is inside tidal's time: a user pays it.
The load of the machine before the bench starts, and before each figure, is recorded: above
``QUIET_LOAD_PER_CPU`` per CPU at the start, the bench says its figures are not clean (other work took the
cores, which slows the sequential runs' OpenMP threads far more than the parallel runs' single threads).

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
TEST_SIZE = 0.2
#: Two searches of the same problem agree on the best validation accuracy to this much (trials in parallel
#: draw from a sampler that knows fewer finished trials, so their path differs a little).
BEST_TOLERANCE = 0.01
#: A 1-minute load above this per CPU before the bench starts means other work shares the machine.
QUIET_LOAD_PER_CPU = 0.25
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


def _elec2_parts() -> tuple[Any, Any, Any, Any]:
    """The Elec2 rows as tidal splits them for a search (docs: tidal.loop.search): the training rows and the
    holdout (validate.split: time, the last 20 %), then the training rows again into the rows a trial fits on
    and the validation rows it is scored on (the last 20 % of them). Every column but ``up`` is numeric with
    no missing value, so the example's preparation (median imputation, one-hot encoding of categoricals, no
    scaling) leaves them as they are."""
    import pandas as pd

    frame = pd.read_csv(io.BytesIO(gzip.decompress((ELEC2 / "data" / "elec2.csv.gz").read_bytes())))

    def cut(rows: Any) -> tuple[Any, Any]:  # tidal.data.prepare.split_rows, method time, no time column
        at = len(rows) - max(1, round(len(rows) * TEST_SIZE))
        return rows.iloc[:at].reset_index(drop=True), rows.iloc[at:].reset_index(drop=True)

    train, holdout = cut(frame)
    fit_rows, valid_rows = cut(train)
    return train, holdout, fit_rows, valid_rows


def _xy(rows: Any) -> tuple[Any, Any]:
    return rows.drop(columns=["up"]), rows["up"]


def _objective(fit_rows: Any, valid_rows: Any) -> Any:
    """The trial of the script: fit on the fitting rows, offer the early-stopping curve to the pruner step by
    step (as tidal does with ``curve.validation_score``), score the validation rows."""
    import optuna
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score

    (Xf, yf), (Xv, yv) = _xy(fit_rows), _xy(valid_rows)

    def objective(trial: Any) -> float:
        model = HistGradientBoostingClassifier(
            max_iter=trial.suggest_int("max_iter", *SPACE["max_iter"]),
            learning_rate=trial.suggest_float("learning_rate", *SPACE["learning_rate"], log=True), random_state=0)
        model.fit(Xf, yf)
        for step, value in enumerate(getattr(model, "validation_score_", [])):
            trial.report(float(value), step)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return float(accuracy_score(yv, model.predict(Xv)))

    return objective


def optuna_alone(trials: int) -> dict[str, Any]:
    """The script a user would write for what `tidal run` does: Optuna alone, in one process, one trial after
    the other (in-memory study), searching the same problem as tidal (the same inner split of the training
    rows, the same space, TPE seeded 0, the median pruner with tidal's settings on the same curve), then the
    best parameters fitted on the training rows and scored on the holdout."""
    import optuna
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start = time.perf_counter()
    train, holdout, fit_rows, valid_rows = _elec2_parts()
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=0),
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=5))
    study.optimize(_objective(fit_rows, valid_rows), n_trials=trials)
    searched = time.perf_counter() - start
    final = HistGradientBoostingClassifier(**study.best_params, random_state=0).fit(*_xy(train))
    X, y = _xy(holdout)
    holdout_accuracy = float(accuracy_score(y, final.predict(X)))
    return {"seconds": time.perf_counter() - start, "search_seconds": round(searched, 2),
            "best": round(study.best_value, 4), "holdout": round(holdout_accuracy, 4),
            "best_params": study.best_params, "params": [t.params for t in study.trials]}


def _fit_one(params: dict[str, Any]) -> float:
    """One trial's fit and score with no search around it (for :func:`parallel_ceiling`)."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import accuracy_score
    from threadpoolctl import threadpool_limits

    _, _, fit_rows, valid_rows = _PARTS or _elec2_parts()
    with threadpool_limits(limits=_THREADS):
        model = HistGradientBoostingClassifier(**params, random_state=0).fit(*_xy(fit_rows))
    X, y = _xy(valid_rows)
    return float(accuracy_score(y, model.predict(X)))


_PARTS: tuple[Any, Any, Any, Any] | None = None
_THREADS: int | None = None


def _init_worker(threads: int) -> None:
    global _PARTS, _THREADS
    _PARTS, _THREADS = _elec2_parts(), threads


def parallel_ceiling(params: list[dict[str, Any]]) -> dict[str, Any]:
    """What 2 cores allow at best for these trials, with no search, no records and no pruning: their fits one
    after the other (HistGradientBoosting's OpenMP threads on every core, as the script's), beside the same fits
    in as many worker processes as cores, one thread each (the data loaded once per worker, before the clock,
    and the workers started before it too). The ratio is the most any executor can gain from running trials
    side by side on this machine."""
    import multiprocessing

    global _PARTS, _THREADS
    cpus = os.cpu_count() or 1
    _PARTS, _THREADS = _elec2_parts(), None
    start = time.perf_counter()
    for p in params:
        _fit_one(p)
    sequential = time.perf_counter() - start
    with multiprocessing.get_context("spawn").Pool(cpus, initializer=_init_worker, initargs=(1,)) as pool:
        pool.map(_fit_one, params[:cpus], chunksize=1)  # started and warm before the clock
        start = time.perf_counter()
        pool.map(_fit_one, params, chunksize=1)
        parallel = time.perf_counter() - start
    _PARTS = None
    return {"trials": len(params), "processes": cpus, "sequential_all_threads": round(sequential, 2),
            "parallel_one_thread_each": round(parallel, 2), "ratio": round(sequential / parallel, 2)}


def tidal_search(root: Path, trials: int, executor: str) -> dict[str, Any]:
    """`tidal run` of the search spec (ingest, checks, split, the search, the final fit, its evaluation on the
    holdout and its registration), timed from the workspace's opening to its close."""
    from tidal import Workspace

    _project(root, SEARCH_SPEC.format(trials=trials))
    start = time.perf_counter()
    with Workspace.open(root, executor=executor) as ws:
        result = ws.run()
        assert result.model is not None
        holdout = result.model.metrics.get("accuracy")
        searched = result.run.info["search"]
    return {"seconds": time.perf_counter() - start, "best": round(float(searched["best_value"]), 4),
            "holdout": round(float(holdout), 4) if holdout is not None else None,
            "best_params": searched["best_params"]}


def tidal_backtest(root: Path, executor: str) -> dict[str, Any]:
    from tidal import Workspace

    _project(root)
    start = time.perf_counter()
    with Workspace.open(root, executor=executor) as ws:
        result = ws.backtest()
    periodic = result.periodic_seconds
    scores = {name: (part or {}).get("score") for name, part in
              (("loop", result.loop), ("static", result.static), ("periodic", result.periodic),
               ("last_label", result.last_label), ("online", result.online))}
    return {"seconds": time.perf_counter() - start, "scores": scores, "periodic_seconds": periodic}


RAY_START = """
import logging, os, time
start = time.perf_counter()
import ray
ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, object_store_memory=256 * 1024**2,
         logging_level=logging.ERROR, log_to_driver=False, configure_logging=False)

@ray.remote(num_cpus=1)
def ready():
    import pandas, sklearn.ensemble, tidal.loop.search  # what a trial's worker imports before its first fit
    return os.getpid()

pids = ray.get([ready.remote() for _ in range(os.cpu_count())])
print(time.perf_counter() - start)
ray.shutdown()
"""


def ray_start() -> float:
    """Seconds for a local Ray as tidal starts it to run a first task on every CPU, in a process of its own
    (its workers importing what a trial needs): a cost tidal on Ray pays once per run, inside its time."""
    import subprocess

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"),
                                                                      os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", RAY_START], capture_output=True, text=True, env=env, check=True)
    return round(float(done.stdout.strip().splitlines()[-1]), 2)


def _load() -> float:
    """The 1-minute load average: on a machine shared with other work, a figure taken under load says so
    (HistGradientBoosting's OpenMP threads slow down badly when other processes take their cores)."""
    return round(os.getloadavg()[0], 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--only", default="search,backtest")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local Ray of the bench's own: no token file written
    only = {n for n in args.only.split(",") if n}
    at_start = _load()  # before the bench runs anything: the load of other work (later ones include the bench's)
    out: dict[str, Any] = {}
    ok = True
    with tempfile.TemporaryDirectory(prefix="tidal-bench-scale-") as tmp:
        base = Path(tmp)
        if "search" in only:
            print(f"== search: {args.trials} trials", flush=True)
            load = _load()
            alone = optuna_alone(args.trials)
            alone["load_before"] = load
            print(f"   optuna alone      {alone['seconds']:7.1f} s  best accuracy {alone['best']}  "
                  f"(holdout {alone['holdout']}), load {alone['load_before']}", flush=True)
            load = _load()
            local = tidal_search(base / "search-local", args.trials, "local")
            local["load_before"] = load
            print(f"   tidal, local      {local['seconds']:7.1f} s  best accuracy {local['best']}  "
                  f"(holdout {local['holdout']}), load {local['load_before']}", flush=True)
            load = _load()
            ray = tidal_search(base / "search-ray", args.trials, "ray")
            ray["load_before"] = load
            print(f"   tidal, local Ray  {ray['seconds']:7.1f} s  best accuracy {ray['best']}  "
                  f"(holdout {ray['holdout']}), load {ray['load_before']}", flush=True)
            ceiling = parallel_ceiling(alone.pop("params"))
            ceiling["ray_start"] = ray_start()
            # the most tidal on Ray could reach: the script's time over the bare parallel fits plus Ray's start
            ceiling["ratio_with_ray_start"] = round(
                alone["seconds"] / (ceiling["parallel_one_thread_each"] + ceiling["ray_start"]), 2)
            print(f"   ceiling: the same {ceiling['trials']} fits, bare: one after the other "
                  f"{ceiling['sequential_all_threads']:.1f} s, {ceiling['processes']} processes of 1 thread "
                  f"{ceiling['parallel_one_thread_each']:.1f} s: {ceiling['ratio']:.2f}x; a local Ray's start "
                  f"{ceiling['ray_start']:.1f} s; optuna alone over (parallel fits + Ray's start): "
                  f"{ceiling['ratio_with_ray_start']:.2f}x", flush=True)
            agree = {name: abs(r["best"] - alone["best"]) <= BEST_TOLERANCE for name, r in
                     (("tidal_local", local), ("tidal_ray", ray))}
            ok &= all(agree.values())
            out["search"] = {"trials": args.trials, "optuna_alone": alone, "tidal_local": local, "tidal_ray": ray,
                             "parallel_ceiling": ceiling, "best_agrees": agree, "best_tolerance": BEST_TOLERANCE,
                             "ratio_optuna_over_tidal_ray": round(alone["seconds"] / ray["seconds"], 2),
                             "ratio_optuna_over_tidal_local": round(alone["seconds"] / local["seconds"], 2),
                             "ratio_tidal_local_over_ray": round(local["seconds"] / ray["seconds"], 2)}
        if "backtest" in only:
            print("== backtest of the Elec2 example", flush=True)
            load = _load()
            local = tidal_backtest(base / "backtest-local", "local")
            local["load_before"] = load
            print(f"   local             {local['seconds']:7.1f} s  load {local['load_before']}", flush=True)
            load = _load()
            ray = tidal_backtest(base / "backtest-ray", "ray")
            ray["load_before"] = load
            print(f"   local Ray         {ray['seconds']:7.1f} s  load {ray['load_before']}", flush=True)
            # the loop's replay is one tick after the other (each depends on the last): only the periodic
            # strategy runs beside it, so the most Ray can save is its time (Amdahl's bound)
            serial = local["seconds"] - (local["periodic_seconds"] or 0.0)
            bound = round(local["seconds"] / serial, 2) if serial > 0 else None
            print(f"   ceiling: the periodic strategy took {local['periodic_seconds']} s of the local "
                  f"{local['seconds']:.1f} s: at most {bound}x with it beside the replay", flush=True)
            same = local["scores"] == ray["scores"]
            ok &= same
            out["backtest"] = {"local": local, "ray": ray, "same_scores": same, "ceiling_ratio": bound,
                               "ratio_local_over_ray": round(local["seconds"] / ray["seconds"], 2)}
    out["aim"] = AIM
    cpus = os.cpu_count() or 1
    quiet = at_start < QUIET_LOAD_PER_CPU * cpus
    out["environment"] = {"cpus": cpus, "python": platform.python_version(), "load_at_start": at_start,
                          "quiet": quiet,
                          "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
                          "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    print("\n| bench | sequential | on a local Ray | ratio | aim |")
    print("| --- | ---: | ---: | ---: | ---: |")
    if "search" in out:
        s = out["search"]
        print(f"| search, {s['trials']} trials (Optuna alone / tidal on Ray) | {s['optuna_alone']['seconds']:.1f} s | "
              f"{s['tidal_ray']['seconds']:.1f} s | {s['ratio_optuna_over_tidal_ray']:.2f}x | >= {AIM}x |"
              + ("" if all(s["best_agrees"].values()) else " BEST VALUES DIFFER"))
        c = s["parallel_ceiling"]
        print(f"| ceiling: the same fits bare, sequential / {c['processes']} processes of 1 thread | "
              f"{c['sequential_all_threads']:.1f} s | {c['parallel_one_thread_each']:.1f} s | {c['ratio']:.2f}x | |")
        print(f"| ceiling: Optuna alone / (those parallel fits + a local Ray's start, {c['ray_start']:.1f} s) | "
              f"{s['optuna_alone']['seconds']:.1f} s | "
              f"{c['parallel_one_thread_each'] + c['ray_start']:.1f} s | {c['ratio_with_ray_start']:.2f}x | |")
    if "backtest" in out:
        b = out["backtest"]
        print(f"| backtest, Elec2 (local / Ray) | {b['local']['seconds']:.1f} s | {b['ray']['seconds']:.1f} s | "
              f"{b['ratio_local_over_ray']:.2f}x | >= {AIM}x |" + ("" if b["same_scores"] else " SCORES DIFFER"))
        print(f"| ceiling: local / (local - its periodic strategy) | | | {b['ceiling_ratio']}x | |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if not quiet:
        print(f"\nNOT A CLEAN FIGURE: the load was {at_start} on {cpus} CPUs before the bench began (other work). "
              "OpenMP fits with a thread per core (the sequential runs) slow down unevenly when other processes "
              "take the cores, one-thread tasks much less: rerun on a quiet machine.")
    args.out.write_text(json.dumps(out, indent=2, default=str) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
