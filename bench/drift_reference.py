"""Does the drift trigger fall back after a retrain? Elec2 replayed as `tidal backtest` does, before and after.

Issue #11: in `make demo` the drift share reached 0.83 around row 8,700 and stayed there to the end, so
the drift trigger fired at every cooldown — periodic retraining under another name. The reason: a drift
test (KS on a few hundred autocorrelated rows) flags any week of Elec2 against the weeks before it, however
fresh the champion's training rows are. The fix judges a window against the serving champion's own
reference: its training profile *and* the drift its own holdout already showed, which its validation
figure accounts for (:mod:`tidal.monitor.baseline`).

Two replays of the bundled Elec2 project, each through ``Workspace.backtest`` (the real loop, a simulated
clock, throw-away stores):

- ``before``: versions registered without the holdout baseline, so each window is judged as before the
  fix (the test's verdict alone, against the training profile);
- ``after``: as tidal runs now.

For each it prints the ticks, the ticks at which the drift trigger fired (share >= its threshold), the
drift share over time (its mean in each fifth of the stream), the retrains (and what triggered them),
promotions, and the loop's score beside the static model's and periodic retraining's. It writes
``bench/results/drift_reference.json`` and a figure of both drift share curves,
``bench/results/drift_reference.svg``.

    python bench/drift_reference.py [--only before|after] [--max-rows N]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def replay(mode: str, max_rows: int | None) -> dict[str, Any]:
    """One backtest of Elec2; ``mode`` ``before`` registers versions without a holdout baseline."""
    import tidal.loop.pipeline as pipeline
    from tidal.monitor.baseline import holdout_drift
    from tidal.workspace import Workspace, examples_dir

    def no_baseline(*args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"pieces": 0, "rows": 0, "columns": {}}  # what a version registered before the fix holds

    pipeline.holdout_drift = no_baseline if mode == "before" else holdout_drift  # type: ignore[assignment]
    with tempfile.TemporaryDirectory(prefix="tidal-drift-bench-") as tmp:
        project = Path(tmp) / "elec2"
        shutil.copytree(examples_dir() / "elec2", project)
        ws = Workspace.open(project)
        if max_rows is not None:
            ws.spec.backtest.max_rows = max_rows
        started = time.perf_counter()
        result = ws.backtest()
        seconds = time.perf_counter() - started
    pipeline.holdout_drift = holdout_drift  # type: ignore[assignment]
    drift = result.drift_share
    rows, shares, threshold = drift["rows"], drift["share"], drift["threshold"]
    fired = [r for r, s in zip(rows, shares, strict=True) if s is not None and threshold is not None and s >= threshold]
    triggers = Counter(m.group(1) for e in result.events if e["kind"] == "loop.retrain"
                       for m in [re.search(r"retrain triggered by (\w+)", e["message"])] if m)
    fifths = []
    for k in range(5):
        lo, hi = result.rows * k // 5, result.rows * (k + 1) // 5
        part = [s for r, s in zip(rows, shares, strict=True) if lo < r <= hi and s is not None]
        fifths.append(round(sum(part) / len(part), 3) if part else None)
    # the longest run of consecutive ticks with the trigger fired: "fired for ever" in one number
    longest = run = 0
    for s in shares:
        run = run + 1 if s is not None and threshold is not None and s >= threshold else 0
        longest = max(longest, run)
    return {"mode": mode, "rows": result.rows, "ticks": len(rows), "threshold": threshold,
            "drift_fired_ticks": len(fired), "longest_fired_run": longest,
            "first_fired_row": fired[0] if fired else None,
            "share_mean_by_fifth": fifths, "share_rows": rows, "share": shares,
            "retrains": result.loop["retrains"], "retrains_by_trigger": dict(triggers),
            "promotions": result.loop["promotions"], "rejections": result.loop["rejections"],
            "rollbacks": result.loop["rollbacks"], "loop": round(result.loop["score"], 4),
            "static": round(result.static["score"], 4), "periodic": round(result.periodic["score"], 4),
            "periodic_retrains": result.periodic["retrains"], "seconds": round(seconds, 1)}


def figure(runs: list[dict[str, Any]], path: Path, width: int = 900, height: int = 220) -> None:
    """Both drift share curves on one self-contained SVG, with the trigger's threshold."""
    pad_l, pad_r, pad_t, pad_b = 50, 110, 10, 30
    x_max = max(r["rows"] for r in runs) or 1
    colors = {"before": "#d62728", "after": "#1f77b4"}

    def x(row: float) -> float:
        return pad_l + (width - pad_l - pad_r) * row / x_max

    def y(v: float) -> float:
        return pad_t + (height - pad_t - pad_b) * (1 - v)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">',
             '<rect width="100%" height="100%" fill="white"/>']
    for v in (0.0, 0.5, 1.0):
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(v)}" y2="{y(v)}" stroke="#eee"/>'
                     f'<text x="{pad_l - 6}" y="{y(v) + 4}" font-size="11" text-anchor="end">{v:.1f}</text>')
    threshold = runs[0]["threshold"]
    if threshold is not None:
        parts.append(f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(threshold)}" y2="{y(threshold)}" '
                     'stroke="#555" stroke-dasharray="4,3"/>')
    for i, run in enumerate(runs):
        pts = " ".join(f"{x(r):.1f},{y(s):.1f}" for r, s in zip(run["share_rows"], run["share"], strict=True)
                       if s is not None)
        color = colors.get(run["mode"], "#000")
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.4" points="{pts}"/>')
        parts.append(f'<text x="{width - pad_r + 8}" y="{pad_t + 14 + 16 * i}" font-size="12" fill="{color}">'
                     f'{run["mode"]}: {run["drift_fired_ticks"]} fired</text>')
    parts.append(f'<text x="{(width - pad_r) / 2}" y="{height - 6}" font-size="12" text-anchor="middle">'
                 'Elec2 rows replayed (drift share at each tick)</text></svg>')
    path.write_text("".join(parts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("before", "after"), help="run one replay only")
    parser.add_argument("--max-rows", type=int, default=None, help="replay at most this many rows")
    args = parser.parse_args()
    modes = [args.only] if args.only else ["before", "after"]
    runs = [replay(mode, args.max_rows) for mode in modes]
    keys = ("rows", "ticks", "drift_fired_ticks", "longest_fired_run", "first_fired_row", "share_mean_by_fifth",
            "retrains", "retrains_by_trigger", "promotions", "rejections", "rollbacks", "loop", "static",
            "periodic", "periodic_retrains", "seconds")
    print(f"{'':22}" + "".join(f"{r['mode']:>34}" for r in runs))
    for key in keys:
        print(f"{key:22}" + "".join(f"{json.dumps(r[key]):>34}" for r in runs))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drift_reference.json").write_text(json.dumps(runs, indent=1) + "\n")
    figure(runs, RESULTS / "drift_reference.svg")
    print(f"wrote {RESULTS / 'drift_reference.json'} and {RESULTS / 'drift_reference.svg'}")


if __name__ == "__main__":
    main()
