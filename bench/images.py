"""Images: tidal's CNN training and image serving against what a person would write with plain PyTorch
(and FastAPI), side by side in one run (issue 13, point 8).

1. Training. The digits example (scikit-learn's 1,797 8x8 digits as PNG class folders, written by
   ``tidal init --example digits`` into a temporary folder) is trained by ``tidal run --json`` in a process
   of its own; its wall time and each step's seconds come from the run (``steps[].seconds``), the fit's own
   seconds from the run's ``fit_seconds`` metric. Then, in a fresh process too, the plain loop: the same
   PNGs decoded with Pillow into float32 tensors (scaled to [0, 1], normalised by the training images' mean
   and std), the same 75/25 split sizes, the same 10 % of the training rows held out and scored each epoch
   (tidal's ``validation_fraction``), and the very same network, built through tidal.nn's registry
   (``resolve_module(module)(in_features, out_features, input_shape, **module_params)``: the ``cnn`` class
   tidal trains), with the same epochs, batch size, optimizer and learning rate, one thread
   (``torch.set_num_threads(1)``, as tidal's ``n_jobs: 1``), shuffled index slices of one tensor per batch
   (no DataLoader: the fastest loop, so the stricter comparison). The epochs are timed in both: the
   plain loop's by its own clock, tidal's by a second run of the same example through the SDK
   (``Workspace.run``, what ``tidal run`` calls) listening to the training loop's per-epoch progress reports
   (:mod:`tidal.core.progress`, which draws ``tidal run``'s progress bar); the first epoch (warm-up) is left
   out of both. tidal's overhead is (tidal's epoch - the plain loop's epoch) / the plain loop's epoch; the
   aim is <= 10 %. Beside it: tidal's whole train step against the plain decoding + loop (the difference is
   the train step's fixed part: importing torch, decoding the images, storing the model), and the whole
   ``tidal run`` process (collect, validate, split, profile, evaluate, gate, register, Python's start)
   against the whole plain script's process.
2. Serving. The model ``tidal run`` registered, served by tidal (``run_server``, one worker, prediction
   log on: a digest and a thumbnail per image in the log, the image in the artifact store) and by the floor,
   bench/_floor_images.py (FastAPI, Pillow and the same torch module loaded from the same registry artifact,
   nothing else), one at a time, each with one thread. 1 image and 64 images per request (base64 PNG, the
   digits themselves), concurrency 1, wrk (bench/_load.py) for ``--seconds`` after a warm-up; before that,
   one request of 50 images checks that both give the same predictions. The aim: tidal >= 0.8x the floor.
   Then, in this process, where the time goes: each step of tidal's ``/predict`` on 1 and 64 images
   (checking and canonicalising the images, the predictor, the log record's digest and thumbnail, the
   artifact store) beside the floor's whole work.

Prints both tables and the aims as met or missed, and writes bench/results/images.json. Run it with
``make bench`` (``bash bench/run.sh images``), or ``python bench/images.py --quick`` (3 epochs, 3 s a cell).
"""

from __future__ import annotations

import argparse
import base64
import io
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import ensure_wrk
from serve import ANCHOR_ENV, best_of_3, serve_and_measure

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "images.json"
NAME = "digits"
#: The issue's aims: tidal's train step at most this much slower than the plain loop; serving at least this
#: share of the floor's requests per second.
TRAIN_OVERHEAD_AIM = 0.10
SERVE_RATIO_AIM = 0.8
BATCHES = (1, 64)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs for both (default: the example's)")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per serving cell (default 10)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="training comparisons, alternating tidal and the plain loop (default 3; 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a short run: 3 epochs, 3 s a cell, one repeat")
    parser.add_argument("--only", choices=("train", "serve", "both"), default="both",
                        help="train: the training comparison only; serve: train once, then only the serving one")
    parser.add_argument("--plain-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--tidal-child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs = args.epochs if args.epochs is not None else 3
        args.seconds = min(args.seconds, 3.0)
    args.repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if args.repeat < 1:
        parser.error(f"--repeat must be at least 1, not {args.repeat}")
    if args.epochs is not None and args.epochs < 2:  # the first epoch (warm-up) is not timed
        parser.error(f"--epochs must be at least 2, not {args.epochs}")
    if args.seconds <= 0:
        parser.error(f"--seconds must be positive, not {args.seconds}")
    return args


# -- training -----------------------------------------------------------------------------------------------


def write_example(folder: Path, epochs: int | None) -> Path:
    """The digits example, written by tidal's own example writer; ``epochs`` replaces the example's."""
    subprocess.run([sys.executable, "-m", "tidal", "init", "--example", NAME, str(folder)], check=True,
                   capture_output=True)
    if epochs is not None:
        spec = folder / "tidal.yaml"
        text, n = re.subn(r"(?m)^(\s+epochs:\s*)\d+", rf"\g<1>{epochs}", spec.read_text())
        if n != 1:
            raise RuntimeError(f"{spec}: expected one 'epochs:' line to set, found {n}")
        spec.write_text(text)
    return folder


def tidal_run(project: Path) -> dict[str, Any]:
    """``tidal run --json`` in a process of its own: wall seconds, each step's seconds, the fit's seconds, the
    holdout accuracy and the trained estimator's settings (what the plain loop copies)."""
    from tidal import Workspace

    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "tidal", "run", "--json"], cwd=project, capture_output=True,
                          text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"tidal run failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout)
    with Workspace.open(project) as ws:
        run_id = result["run_id"]
        fit = [m.value for m in ws.store.get_metrics(run_id) if m.key == "fit_seconds"]
        mv = ws.registry.champion(NAME)
        pipeline = ws.registry.load(mv)
        params = pipeline.named_steps["model"].get_params()
        column = mv.signature.names[0]
    return {"wall_s": wall, "steps_s": {s["name"]: s["seconds"] for s in result["steps"]},
            "fit_s": fit[0] if fit else None, "holdout_accuracy": result["metrics"].get("accuracy"),
            "params": {k: params[k] for k in ("module", "module_params", "epochs", "batch_size", "lr", "optimizer",
                                              "validation_fraction", "random_state", "n_jobs", "input_shape")},
            "column": column}


def tidal_epochs(project: Path) -> dict[str, Any]:
    """The same run through the SDK (``Workspace.run``, what ``tidal run`` calls) on a fresh copy of the
    example, listening to the training loop's per-epoch progress reports (:mod:`tidal.core.progress`, what
    draws ``tidal run``'s progress bar): the time of each epoch after the first, as the plain loop's are."""
    from tidal import Workspace
    from tidal.core.progress import listening

    marks: list[float] = []

    def heard(what: str, done: int, total: int) -> None:
        if what == "epoch":
            marks.append(time.perf_counter())

    with Workspace.open(project) as ws, listening(heard):
        result = ws.run()
    steps = {s.name: s.duration_s for s in result.steps}
    return {"epochs_s": [b - a for a, b in itertools.pairwise(marks)], "steps_s": steps}


def run_child(flag: str, job: dict[str, Any]) -> tuple[dict[str, Any], float]:
    """This file with ``flag`` in a fresh process (as cold as ``tidal run``'s): its JSON answer, its wall
    seconds (Python's start and the imports included)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, flag, json.dumps(job)], capture_output=True, text=True,
                          check=False, env={**os.environ, **ANCHOR_ENV})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{flag} failed:\n{proc.stderr[-3000:]}")
    return dict(json.loads(proc.stdout.strip().splitlines()[-1])), wall


def plain_loop(project: Path, params: dict[str, Any]) -> dict[str, Any]:
    """The loop a person would write (see the module docstring); run in a process of its own."""
    import numpy as np
    import torch
    from PIL import Image
    from sklearn.model_selection import train_test_split

    from tidal.nn.registry import resolve_module

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    files = sorted((project / "data" / "train").glob("*/*.png"))
    pixels = np.stack([np.asarray(Image.open(f).convert("L"), dtype=np.float32) / 255.0 for f in files])
    labels = np.array([int(f.parent.name) for f in files])
    x_tr, x_te, y_tr, y_te = train_test_split(pixels, labels, test_size=0.25, random_state=params["random_state"])
    mean, std = float(x_tr.mean()), float(x_tr.std())
    X = torch.from_numpy(((x_tr - mean) / std).reshape(len(x_tr), -1))
    y = torch.from_numpy(y_tr.astype(np.int64))
    X_test = torch.from_numpy(((x_te - mean) / std).reshape(len(x_te), -1))
    decode_s = time.perf_counter() - t0

    torch.manual_seed(params["random_state"])
    h, w = pixels.shape[1:]
    net = resolve_module(params["module"])(in_features=h * w, out_features=10, input_shape=[1, h, w],
                                           **params["module_params"])
    optimizer = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}[params["optimizer"]](
        net.parameters(), lr=params["lr"])
    loss_fn = torch.nn.CrossEntropyLoss()
    n_valid = round(len(X) * params["validation_fraction"])
    order = torch.randperm(len(X))
    X_valid, y_valid, X_train, y_train = X[order[:n_valid]], y[order[:n_valid]], X[order[n_valid:]], y[order[n_valid:]]
    batch = params["batch_size"]
    epochs_s = []
    for _ in range(params["epochs"]):
        t = time.perf_counter()
        net.train()
        perm = torch.randperm(len(X_train))
        total, correct = 0.0, 0
        for i in range(0, len(X_train), batch):
            idx = perm[i:i + batch]
            optimizer.zero_grad()
            out = net(X_train[idx])
            loss = loss_fn(out, y_train[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
            correct += int((out.argmax(1) == y_train[idx]).sum())
        net.eval()
        with torch.no_grad():
            valid_out = net(X_valid)
            valid = (float(loss_fn(valid_out, y_valid)), float((valid_out.argmax(1) == y_valid).float().mean()))
        epochs_s.append(time.perf_counter() - t)
    with torch.no_grad():
        accuracy = float((net(X_test).argmax(1).numpy() == y_te).mean())
    return {"decode_s": decode_s, "loop_s": sum(epochs_s), "epochs_s": epochs_s, "holdout_accuracy": accuracy,
            "last_epoch": {"train_loss": total / len(X_train), "train_accuracy": correct / len(X_train),
                           "valid_loss": valid[0], "valid_accuracy": valid[1]},
            "rows": {"train": len(X_train), "valid": n_valid, "holdout": len(X_test)}}


def training_summary(tidal: dict[str, Any], epochs: list[dict[str, Any]], plains: list[dict[str, Any]],
                     plain_wall: float) -> dict[str, Any]:
    """Per-epoch times (the median over every epoch after the first, of every repeat, in both: on a busy
    machine a spike of someone else's work hits one epoch, not the median), tidal's overhead on them (the
    aim), and tidal's train step and whole run beside the plain script's (the first repeat's)."""
    n = tidal["params"]["epochs"]
    tidal_epoch = statistics.median(t for e in epochs for t in e["epochs_s"])
    plain_epoch = statistics.median(t for p in plains for t in p["epochs_s"][1:])
    plain = plains[0]
    overhead = (tidal_epoch - plain_epoch) / plain_epoch
    train_s = tidal["steps_s"]["train"]
    plain_train = plain["decode_s"] + plain["loop_s"]
    return {"epochs": n, "repeats": len(plains), "tidal_epoch_s": tidal_epoch, "plain_epoch_s": plain_epoch,
            "overhead": overhead,
            "tidal_train_step_s": train_s, "tidal_fit_s": tidal["fit_s"], "plain_loop_s": plain["loop_s"],
            "plain_decode_s": plain["decode_s"], "train_step_overhead": (train_s - plain_train) / plain_train,
            "tidal_train_step_fixed_s": train_s - n * tidal_epoch, "plain_fixed_s": plain_train - n * plain_epoch,
            "tidal_run_wall_s": tidal["wall_s"], "plain_script_wall_s": plain_wall,
            "other_steps_s": {k: v for k, v in tidal["steps_s"].items() if k != "train"},
            "outside_steps_s": tidal["wall_s"] - sum(tidal["steps_s"].values()),
            "aim": {f"epoch time overhead <= {TRAIN_OVERHEAD_AIM:.0%}": overhead <= TRAIN_OVERHEAD_AIM}}


def print_training(t: dict[str, Any], tidal: dict[str, Any], plain: dict[str, Any]) -> None:
    p = tidal["params"]
    print(f"training: digits, {p['module']} {p['module_params']}, {t['epochs']} epochs, batch {p['batch_size']}, "
          f"{p['optimizer']} lr {p['lr']}, one thread; rows {plain['rows']}")
    print(f"{'':36s}{'tidal':>10s}{'plain':>10s}{'tidal/plain':>13s}")
    rows = [(f"one epoch (median, {t['repeats']} repeats), s", t["tidal_epoch_s"], t["plain_epoch_s"]),
            ("train step / decode + loop, s", t["tidal_train_step_s"], t["plain_decode_s"] + t["plain_loop_s"]),
            ("  of which not epochs, s", t["tidal_train_step_fixed_s"], t["plain_fixed_s"]),
            ("whole process (tidal run), s", t["tidal_run_wall_s"], t["plain_script_wall_s"]),
            ("holdout accuracy", tidal["holdout_accuracy"], plain["holdout_accuracy"])]
    for label, a, b in rows:
        print(f"{label:36s}{a:10.3f}{b:10.3f}{a / b:13.2f}")
    print(f"tidal's overhead on the epoch time: {t['overhead']:+.1%}; on the train step (with its fixed part: "
          f"importing torch, decoding the images, storing the model): {t['train_step_overhead']:+.1%}")
    if t["tidal_fit_s"] is not None:
        print(f"tidal's fit alone (fit_seconds): {t['tidal_fit_s']:.2f} s")
    steps = ", ".join(f"{k} {v:.2f}" for k, v in t["other_steps_s"].items())
    print(f"tidal run besides train: {steps}; outside the steps (Python, imports, the spec, the store) "
          f"{t['outside_steps_s']:.2f} s")
    print("aims, training: " + ", ".join(f"{a} {'met' if ok else 'MISSED'}" for a, ok in t["aim"].items()))


# -- serving ------------------------------------------------------------------------------------------------


def image_rows(project: Path, column: str, n: int = 64) -> list[dict[str, str]]:
    """The first ``n`` digits' PNGs (one per class in turn), base64, as ``/predict`` instances."""
    classes = sorted((project / "data" / "train").iterdir())
    per_class = [sorted(c.glob("*.png")) for c in classes]
    files = [per_class[i % len(classes)][i // len(classes)] for i in range(n)]
    return [{column: base64.b64encode(f.read_bytes()).decode()} for f in files]


def stages(project: Path, rows: list[dict[str, str]], n: int) -> dict[str, float]:
    """Microseconds per request of ``n`` images for each step of tidal's ``/predict`` (in this process, best
    of 3, one thread), beside the floor's whole work: where tidal's time goes. The log's append (the same
    SQL insert as for tables) and HTTP are not in it."""
    import numpy as np
    import torch
    from PIL import Image

    from tidal import Workspace
    from tidal.data.images.serving import logged_image
    from tidal.predict.predictor import build_predictor

    torch.set_num_threads(1)
    with Workspace.open(project) as ws:
        mv = ws.registry.champion(NAME)
        model = ws.registry.load(mv)
        built = build_predictor(model, mv.signature, mv.profile, task=mv.task)
        prep, est = model.named_steps["prepare"], model.named_steps["model"]
        column = mv.signature.names[0]
        batch = (rows * (n // len(rows) + 1))[:n]
        mean = np.asarray(prep.mean_, dtype=np.float32)[:, None, None]
        std = np.asarray(prep.std_, dtype=np.float32)[:, None, None]

        def floor() -> None:  # bench/_floor_images.py's predict, without HTTP
            x = np.stack([(np.asarray(Image.open(io.BytesIO(base64.b64decode(r[column]))).convert(prep.mode_),
                                      dtype=np.float32)[None] / 255.0 - mean) / std for r in batch])
            with torch.inference_mode():
                torch.softmax(est.module_(torch.from_numpy(x.reshape(n, -1))).double(), dim=1)

        checked = [dict(r) for r in batch]
        built.schema.check_rows(checked)  # base64 text → canonical PNG bytes, in place
        steps = {
            "floor: decode, normalise, one forward (all of it)": floor,
            "tidal: check rows (decode, canonical PNG per image, the decoded image kept)":
                lambda: built.schema.check_rows([dict(r) for r in batch]),
            f"tidal: {built.predictor.path} predictor (prepare + network, once)":
                lambda: built.predictor.arrays(checked),
            "tidal: log record (digest, thumbnail per image)": lambda: [logged_image(r[column]) for r in checked],
            "tidal: images into the artifact store (stored already)": lambda: [ws.artifacts.put(r[column])
                                                                               for r in checked],
        }
        out = best_of_3(steps, 100 if n == 1 else 5)
    return out


def serving_ratios(servers: dict[str, dict[str, Any]], cells: list[str]) -> dict[str, Any]:
    """tidal/floor requests per second per cell, and the aim per cell."""
    out: dict[str, Any] = {"ratios": {}, "aims": {}}
    if "tidal" not in servers or "floor" not in servers:
        return out
    for cell in cells:
        ratio = servers["tidal"][cell]["rps"] / servers["floor"][cell]["rps"]
        out["ratios"][cell] = round(ratio, 3)
        out["aims"][cell] = {f"tidal >= {SERVE_RATIO_AIM}x floor": ratio >= SERVE_RATIO_AIM}
    return out


def serving(project: Path, column: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    wrk = ensure_wrk()
    print(f"load generator: {'wrk' if wrk else 'python (wrk not found: apt-get install -y wrk)'}")
    built = {"project": project, "columns": [column], "rows": image_rows(project, column), "name": NAME,
             "floor_app": "_floor_images", "floor_env": {"FLOOR_COLUMN": column, "FLOOR_MODEL_NAME": NAME}}
    cell_list = [{"cell": f"{n} image{'s' if n > 1 else ''}, concurrency 1", "rows": n, "connections": 1}
                 for n in BATCHES]
    servers: dict[str, Any] = {}
    reference: list[Any] | None = None
    for name in ("tidal", "floor"):
        servers[name], answer = serve_and_measure(name, name, built, cell_list, args, wrk, folder, reference)
        reference = reference or answer
    from tidal import Workspace

    with Workspace.open(project) as ws:
        logged = int(ws.predictions.count(model=NAME))
    cells = [c["cell"] for c in cell_list]
    where = {f"{n} image{'s' if n > 1 else ''}": stages(project, built["rows"], n) for n in BATCHES}
    return {"tidal_stages_us": where, "servers": servers, "cells": cells, "tidal_log_rows": logged,
            "generator": "wrk -t1" if wrk else "python",
            **serving_ratios(servers, cells)}


def print_serving(s: dict[str, Any]) -> None:
    print(f"\n{'cell':28s}" + "".join(f"{n + ' req/s':>14s}{'p50 ms':>8s}{'p99 ms':>8s}" for n in s["servers"])
          + f"{'tidal/floor':>13s}")
    for cell in s["cells"]:
        parts = "".join(f"{r[cell]['rps']:14.1f}{r[cell]['p50_ms']:8.2f}{r[cell]['p99_ms']:8.2f}"
                        for r in s["servers"].values())
        print(f"{cell:28s}{parts}{s['ratios'].get(cell, float('nan')):13.2f}")
    for cell, aims in s["aims"].items():
        print(f"aims, {cell}: " + ", ".join(f"{a} {'met' if ok else 'MISSED'}" for a, ok in aims.items()))
    print(f"tidal prediction log: {s['tidal_log_rows']} predictions stored")
    for label, steps in s["tidal_stages_us"].items():
        print(f"where the time goes, {label} per request, microseconds, in process:")
        for step, us in steps.items():
            print(f"   {us:10.1f}  {step}")


# -- the run ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plain_child:
        job = json.loads(args.plain_child)
        print(json.dumps(plain_loop(Path(job["project"]), job["params"])))
        return 0
    if args.tidal_child:
        print(json.dumps(tidal_epochs(Path(json.loads(args.tidal_child)["project"]))))
        return 0
    results: dict[str, Any] = {"load_average_at_start": [round(x, 2) for x in os.getloadavg()],
                               "cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d %H:%M:%S %z")}
    with tempfile.TemporaryDirectory(prefix="tidal-bench-images-") as tmp:
        project = write_example(Path(tmp) / NAME, args.epochs)
        tidal = tidal_run(project)
        results["tidal_run"] = tidal
        if args.only != "serve":
            epochs, plains, walls = [], [], []
            for k in range(args.repeat):  # alternating, so that the machine's load falls on both alike
                copy = write_example(Path(tmp) / f"{NAME}-sdk-{k}", args.epochs)
                epochs.append(run_child("--tidal-child", {"project": str(copy)})[0])
                plain, wall = run_child("--plain-child", {"project": str(project), "params": tidal["params"]})
                plains.append(plain)
                walls.append(wall)
            results.update(tidal_epochs=epochs, plain=plains)
            results["training"] = training_summary(tidal, epochs, plains, walls[0])
            print_training(results["training"], tidal, plains[0])
        if args.only != "train":
            results["serving"] = serving(project, tidal["column"], args, Path(tmp))
            print_serving(results["serving"])
    results["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average: {results['load_average_at_start']} at start, {results['load_average_at_end']} at end "
          f"({results['cpus']} CPUs)")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
