"""The corpus: every project under examples/corpus/ through ``tidal backtest --json``, in one table.

Each data set ships inside an installed package (the ``corpus`` extra); ``examples/corpus/export.py``
writes its ``data.parquet`` first. Then the real CLI runs as a subprocess per project, as a user would run
it, and the table shows, per data set: rows replayed, the metric (accuracy, or RMSE for regression:
lower is better), the loop's score against the static, periodic and last-label baselines, the loop's
retrains, failures, promotions and rollbacks, and the seconds the backtest took. A project whose backtest
exits non-zero shows its one-line error instead, and counts as an internal error or a failure.

``failures`` is taken from the backtest JSON (``loop.failures``) when tidal reports it; otherwise it is
derived as retrains - promotions - rejections (with the direct strategy every retrain that did not fail
ends in a promotion or a rejection) and marked with ``*``.

Run with ``make corpus``, or ``python bench/corpus.py [NAME ...] [--max-rows N]``. Writes
bench/results/corpus.json. The aims, from issue #11, are checked and printed under the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "examples" / "corpus"
RESULTS = ROOT / "bench" / "results" / "corpus.json"
# The sets whose documentation records a change over time (examples/corpus/README.md cites it), and the
# no-drift control; the aims treat them apart.
DOCUMENTED_CHANGE = ("co2", "cars", "trump_approval")
STABLE_CONTROL = "digits"


def projects(names: list[str] | None = None) -> list[str]:
    """Every corpus project (a folder with a tidal.yaml), or the ``names`` asked for, in order."""
    found = sorted(p.parent.name for p in CORPUS.glob("*/tidal.yaml"))
    if not names:
        return found
    unknown = [n for n in names if n not in found]
    if unknown:
        raise SystemExit(f"unknown corpus project(s): {', '.join(unknown)} — choose from {', '.join(found)}")
    return names


def tidal_command() -> list[str]:
    """The ``tidal`` CLI of this interpreter's environment (``python -m`` would not be what users run)."""
    exe = Path(sys.executable).parent / "tidal"
    return [str(exe)] if exe.exists() else [sys.executable, "-c", "from tidal.cli.main import main; main()"]


def _with_max_rows(folder: Path, max_rows: int, into: Path) -> Path:
    """A copy of the project whose backtest replays at most ``max_rows`` rows (the corpus spec is untouched)."""
    import yaml

    spec = yaml.safe_load((folder / "tidal.yaml").read_text())
    retrain = spec.get("retrain") or {}
    if True in retrain:  # PyYAML reads YAML 1.1, where the key `on` is True; tidal reads it as text
        retrain["on"] = retrain.pop(True)
    spec.setdefault("backtest", {})["max_rows"] = max_rows
    into.mkdir(parents=True)
    (into / "tidal.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (into / "data.parquet").symlink_to(folder / "data.parquet")
    return into


def backtest(name: str, *, max_rows: int | None = None, timeout: float = 1800,
             executor: str | None = None) -> dict[str, Any]:
    """Run ``tidal backtest --json`` on one corpus project; its JSON plus ``seconds``, or ``error``.
    ``executor``: its ``TIDAL_EXECUTOR`` (``ray://host:port``: the backtest's steps and strategies run on that
    cluster, which every project of the corpus then shares; docs/ray.md)."""
    with tempfile.TemporaryDirectory(prefix=f"corpus-{name}-") as tmp:
        folder = CORPUS / name
        if max_rows is not None:
            folder = _with_max_rows(folder, max_rows, Path(tmp) / name)
        env = {**os.environ, "TIDAL_STORE_URL": f"sqlite:///{tmp}/tidal.db", "TIDAL_ARTIFACTS_URL": f"{tmp}/artifacts",
               "TIDAL_PREDICTIONS_URL": f"sqlite:///{tmp}/predictions.db", "COLUMNS": "200",
               **({"TIDAL_EXECUTOR": executor} if executor else {})}
        start = time.perf_counter()
        try:
            proc = subprocess.run([*tidal_command(), "backtest", "--json", "--project", str(folder)], env=env,
                                  capture_output=True, text=True, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            return {"name": name, "error": f"timed out after {timeout:.0f} s", "seconds": timeout}
        seconds = time.perf_counter() - start
    out: dict[str, Any] = {"name": name, "seconds": round(seconds, 1), "exit": proc.returncode}
    try:
        out.update(json.loads(proc.stdout))
    except json.JSONDecodeError:
        out["error"] = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1][:300]
        return out
    if proc.returncode != 0 and "error" not in out:
        out["error"] = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1][:300]
    loop = out.get("loop") or {}
    if "failures" in loop:
        out["failures"], out["failures_derived"] = loop["failures"], False
    elif "retrains" in loop:
        out["failures"] = max(0, loop["retrains"] - loop.get("promotions", 0) - loop.get("rejections", 0))
        out["failures_derived"] = True
    return out


def gain(result: dict[str, Any], baseline: str) -> float | None:
    """The loop's lead over a baseline in points: accuracy points, or percent of the baseline's RMSE."""
    try:
        loop, base = result["loop"]["score"], result[baseline]["score"]
    except (KeyError, TypeError):
        return None
    if result.get("metric") == "rmse":
        return 100.0 * (base - loop) / base if base else 0.0
    return 100.0 * (loop - base)


def aims(results: list[dict[str, Any]]) -> list[tuple[str, bool, str]]:
    """Issue #11's aims on the corpus: (aim, met, the figures behind it)."""
    ok = [r for r in results if "error" not in r]
    errors = [r["name"] for r in results if "error" in r]
    failures = sum(r.get("failures") or 0 for r in ok)
    out = [("0 failures and 0 internal errors", not errors and failures == 0,
            f"{failures} failed retrains; errors in: {', '.join(errors) or 'none'}")]
    behind = [f"{r['name']} {g:+.2f}" for r in ok if (g := gain(r, "static")) is not None
              and g < (-0.5 if r["name"] == STABLE_CONTROL else 0.0)]
    out.append(("loop >= static everywhere (-0.5 on the control)", not behind and not errors,
                f"behind: {', '.join(behind) or 'none'}"))
    control = next((r for r in ok if r["name"] == STABLE_CONTROL), None)
    if control is not None:
        retrains = control["loop"]["retrains"]
        out.append((f"at most 2 retrains on the control ({STABLE_CONTROL})", retrains <= 2, f"{retrains} retrains"))
    beat = [r["name"] for r in ok if (g := gain(r, "periodic")) is not None and g >= 0
            and r["loop"]["retrains"] < r["periodic"].get("retrains", 0)]
    out.append(("loop >= periodic with fewer retrains on 2/3", len(beat) * 3 >= 2 * len(results),
                f"{len(beat)} of {len(results)}: {', '.join(beat) or 'none'}"))
    online = [r for r in ok if r.get("online")]
    under = [f"{r['name']} {g:+.2f}" for r in online if (g := gain(r, "online")) is not None and g < 0]
    out.append(("loop >= online (river) where labels arrive without delay", bool(online) and not under,
                f"{len(online) - len(under)} of {len(online)}; behind: {', '.join(under) or 'none'}"))
    documented = [r for r in results if r["name"] in DOCUMENTED_CHANGE]
    short = [f"{r['name']} {'error' if 'error' in r else format(gain(r, 'static') or 0.0, '+.2f')}"
             for r in documented if "error" in r or (gain(r, "static") or 0.0) < 2.0]
    out.append(("loop >= static + 2 points on the documented changes", not short,
                f"short: {', '.join(short) or 'none'}"))
    return out


def render(results: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="tidal corpus: tidal backtest --json per data set", title_justify="left")
    for column in ("data set", "rows", "metric", "loop", "static", "periodic", "last-label", "online",
                   "estimate err", "retrains", "failures", "promotions", "rollbacks", "seconds"):
        table.add_column(column, justify="left" if column in ("data set", "metric") else "right")
    for r in results:
        if "error" in r:
            table.add_row(r["name"], "", "", f"[red]{r['error']}[/]", "", "", "", "", "", "", "", "", "",
                          f"{r['seconds']:.1f}")
            continue
        loop = r["loop"]
        failures = "-" if r.get("failures") is None else f"{r['failures']}{'*' if r.get('failures_derived') else ''}"
        table.add_row(r["name"], f"{r['rows']:,}", r["metric"], f"{loop['score']:.4f}", f"{r['static']['score']:.4f}",
                      f"{r['periodic']['score']:.4f} ({r['periodic'].get('retrains', '?')})",
                      f"{r['last_label']['score']:.4f}", _online(r), _estimate(r), str(loop["retrains"]), failures,
                      str(loop["promotions"]),
                      str(loop["rollbacks"]), f"{r['seconds']:.1f}")
    console = Console(width=200)
    console.print(table)
    console.print("periodic: its score (its retrains). online: river's learner named in backtest.online, learning "
                  "each label as it arrives. estimate err: mean absolute error per tick of the accuracy estimated "
                  "before the labels (classifiers). failures marked * are derived: retrains - promotions - "
                  "rejections. RMSE: lower is better.")
    for aim, met, figures in aims(results):
        console.print(f"{'[green]met[/]' if met else '[red]not met[/]'}  {aim}: {figures}")


def _online(r: dict[str, Any]) -> str:
    online = r.get("online")
    return "-" if not online else f"{online['score']:.4f}"


def _estimate(r: dict[str, Any]) -> str:
    estimate = r.get("estimate") or {}
    return "-" if estimate.get("mae") is None else f"{estimate['mae']:.3f}"


def markdown(results: list[dict[str, Any]]) -> str:
    """The table as Markdown, for the README."""
    lines = ["| data set | rows | metric | loop | static | periodic (retrains) | last-label | online | estimate err "
             "| retrains | failures | promotions | rollbacks | seconds |", "|" + " --- |" * 14]
    for r in results:
        if "error" in r:
            lines.append(f"| `{r['name']}` | | | {r['error']} | | | | | | | | | | {r['seconds']:.0f} |")
            continue
        loop = r["loop"]
        failures = "-" if r.get("failures") is None else f"{r['failures']}{'*' if r.get('failures_derived') else ''}"
        lines.append(f"| `{r['name']}` | {r['rows']:,} | {r['metric']} | {loop['score']:.4f} "
                     f"| {r['static']['score']:.4f} | {r['periodic']['score']:.4f} "
                     f"({r['periodic'].get('retrains', '?')}) | "
                     f"{r['last_label']['score']:.4f} | {_online(r)} | {_estimate(r)} | {loop['retrains']} | "
                     f"{failures} | {loop['promotions']} | "
                     f"{loop['rollbacks']} | {r['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help="corpus projects to run (default: all)")
    parser.add_argument("--max-rows", type=int, default=None, help="replay at most this many rows per project")
    parser.add_argument("--no-export", action="store_true", help="do not run export.py first")
    parser.add_argument("--executor", default=None,
                        help="TIDAL_EXECUTOR of every backtest, e.g. ray://head:10001 (docs/ray.md)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="projects run at once (with --executor ray://...: they share the cluster)")
    parser.add_argument("--markdown", action="store_true",
                        help="print bench/results/corpus.json as a Markdown table and stop")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(RESULTS.read_text())["results"]))
        return 0
    names = projects(args.names)
    if not args.no_export:
        subprocess.run([sys.executable, str(CORPUS / "export.py"), *names], check=True)
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> dict[str, Any]:
        print(f"== {name}", file=sys.stderr, flush=True)
        r = backtest(name, max_rows=args.max_rows, executor=args.executor)
        # a line as each finishes: the whole corpus takes minutes
        print(f"   {name}: {r['error']}" if "error" in r else
              f"   {name}: {r['metric']} loop {r['loop']['score']:.4f} static {r['static']['score']:.4f} periodic "
              f"{r['periodic']['score']:.4f}, {r['loop']['retrains']} retrains, {r['seconds']:.0f} s",
              file=sys.stderr, flush=True)
        return r

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(one, names))  # in the corpus's order, whichever finished first
    render(results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"results": results, "aims": [
        {"aim": a, "met": m, "figures": f} for a, m, f in aims(results)]}, indent=2) + "\n")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    return 0 if all("error" not in r for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
