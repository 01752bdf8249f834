"""`tidal demo`: the whole lifecycle on the Elec2 example (or, with ``--example digits-drift``, on images), live.

A fresh project trains its first champion on the first 20 % of Elec2; the real server starts on a free
loopback port; the rest of Elec2 streams through it over HTTP in time order, each label sent as feedback
after a delay; the controller monitors, retrains, gates and promotes in the background while the server
hot-swaps; a live display shows the window accuracy, drift and every event. It ends with the comparison
table (the loop against the static first champion and the last-label baseline) and HTML reports.

``--example digits-drift`` does the same with scikit-learn's digits as base64 PNGs: the stream whose images
turn and darken from row 800 on (``tidal.data.images.examples``), the drift trigger on the image statistics
and the network's embedding added to the example's performance trigger, and 4 epochs instead of 8. It says
when the drift was detected and how far the accuracy recovered after the change.

The demo writes into a folder it makes (marked by a ``.tidal-demo`` file), and replaces only such a folder:
a folder with anything else in it is refused. SIGTERM and SIGHUP stop it as Ctrl-C does, server included.
"""

from __future__ import annotations

import gzip
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from tidal.cli.failures import signals_as_interrupts

HISTORY_SHARE = 0.2
BATCH = 50          # rows per /predict request
LABEL_DELAY = 0     # rows before a label is sent back
TICK_ROWS = 500     # rows between two ticks of the controller
WINDOW = 1000       # rows of the live accuracy window


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


#: The file that marks a folder as made by ``tidal demo``.
MARKER = ".tidal-demo"
#: What a demo puts in its folder besides the example's own files.
MADE_HERE = (MARKER, ".tidal", "reports", "server.log")


def _made_by_demo() -> set[str]:
    from tidal.workspace import examples_dir

    return {p.name for name in EXAMPLES for p in (examples_dir() / name).iterdir()} | {"data"} | set(MADE_HERE)


def claim_folder(directory: Path) -> None:
    """Make ``directory`` the demo's: create it, take it if empty, or clear what an earlier demo made in it.
    Anything else is refused before a file is touched: tidal removes only what it made."""
    from tidal.core.errors import TidalError

    hint = "choose a new or empty folder: tidal demo OTHER_FOLDER"
    if directory.exists() and not directory.is_dir():
        raise TidalError(f"{directory} is a file, not a folder", hint=hint)
    entries = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []
    if entries and MARKER not in entries and not _made_before_the_marker(directory):
        raise TidalError(f"{directory} is not empty ({_names(entries)}) and tidal demo did not make it; the demo "
                         "replaces only a folder it made", hint=hint)
    foreign = [name for name in entries if name not in _made_by_demo()]
    if foreign:
        raise TidalError(f"{directory} holds files an earlier tidal demo did not make ({_names(foreign)}), and a "
                         "new demo replaces the folder", hint=f"move them out, or {hint}")
    for name in entries:
        path = directory / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("Made by `tidal demo`: the next `tidal demo` in this folder replaces what the "
                                    "demo made here, and refuses if anything else is in it.\n")


#: A line only the demo writes into its tidal.yaml: it also marks the folders of demos run before the marker.
DEMO_SPEC_LINE = "max_per_day: 1000   # the demo compresses years into minutes"


def _made_before_the_marker(directory: Path) -> bool:
    """A demo folder from a tidal that wrote no marker: only what a demo makes, and the tidal.yaml line
    that only the demo writes."""
    spec = directory / "tidal.yaml"
    try:
        text = spec.read_text() if spec.is_file() else ""
    except OSError:
        return False
    return DEMO_SPEC_LINE in text and {p.name for p in directory.iterdir()} <= _made_by_demo()


def _names(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def prepare_digits(directory: Path) -> tuple[Path, Any]:
    """The digits-drift example with the first 20 % of its stream as the source and the rest kept to stream;
    the drift trigger joins the performance one, and the network trains 4 epochs (a shorter demo)."""
    import pandas as pd

    from tidal.workspace import Workspace

    Workspace.init(directory, example="digits-drift")
    data = pd.read_parquet(directory / "data" / "stream.parquet")
    n0 = int(len(data) * HISTORY_SHARE)
    data.iloc[:n0].to_parquet(directory / "data" / "history.parquet", index=False)
    spec = (directory / "tidal.yaml").read_text()
    for old, new in (("source: data/stream.parquet", "source: data/history.parquet"),
                     ("    epochs: 8\n", "    epochs: 4\n"),
                     ("retrain:\n  on:\n", f"retrain:\n  {DEMO_SPEC_LINE}\n  on:\n    drift: {{share: 0.5}}\n")):
        if old not in spec:
            raise RuntimeError(f"the digits-drift example's tidal.yaml has no {old.strip()!r}: the demo cannot "
                               "adapt it")
        spec = spec.replace(old, new)
    (directory / "tidal.yaml").write_text(spec)
    return directory, data.iloc[n0:].reset_index(drop=True)


def _image_rows(stream: Any, columns: list[str]) -> list[dict[str, Any]]:
    """Each row's images as the base64 PNG text a client sends."""
    import base64

    return [{c: base64.b64encode(row[c]).decode("ascii") for c in columns} for _, row in stream.iterrows()]


def _table_rows(stream: Any, columns: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = stream[columns].to_dict(orient="records")
    return rows


@dataclass(frozen=True)
class DemoExample:
    """What the demo streams: the example, its target, the project it prepares and how a row is sent."""

    title: str
    target: str
    prepare: Callable[[Path], tuple[Path, Any]]
    rows: Callable[[Any, list[str]], list[dict[str, Any]]]
    tick_rows: int
    window: int
    #: the stream row from which the data was changed on purpose (None: it changes by itself, as Elec2 does)
    changed_at: int | None = None


def _examples() -> dict[str, DemoExample]:
    from tidal.data.images.examples import DRIFT_AT

    return {"elec2": DemoExample("Elec2", "up", lambda d: prepare_project(d), _table_rows, TICK_ROWS, WINDOW),
            "digits-drift": DemoExample("digits-drift (images)", "digit", prepare_digits, _image_rows, 150, 300,
                                        changed_at=DRIFT_AT - int(1797 * HISTORY_SHARE))}


#: The examples ``tidal demo --example`` streams.
EXAMPLES = ("elec2", "digits-drift")


def prepare_project(directory: Path) -> tuple[Path, Any]:
    """The Elec2 example with its history (first 20 %) as the source and the rest kept to stream, in a
    folder :func:`claim_folder` took."""
    import pandas as pd

    from tidal.workspace import Workspace

    Workspace.init(directory, example="elec2")
    raw = gzip.decompress((directory / "data" / "elec2.csv.gz").read_bytes())
    data = pd.read_csv(io.BytesIO(raw))
    n0 = int(len(data) * HISTORY_SHARE)
    data.iloc[:n0].to_csv(directory / "data" / "history.csv", index=False)
    spec = (directory / "tidal.yaml").read_text()
    spec = spec.replace("source: data/elec2.csv.gz", "source: data/history.csv")
    # the demo replays 2.5 years in minutes: a per-day cap meant for wall-clock days would stop it cold
    spec = spec.replace("max_per_day: 4", DEMO_SPEC_LINE)
    (directory / "tidal.yaml").write_text(spec)
    return directory, data.iloc[n0:].reset_index(drop=True)


def run_demo(directory: Path, console: Console, example: str = "elec2") -> dict[str, Any]:
    """Run the demo of ``example`` (one of :data:`EXAMPLES`) in ``directory``, showing it on ``console``;
    returns the comparison (``--json``).

    SIGTERM and SIGHUP stop it as Ctrl-C does: the server it started is stopped before it exits.
    """
    from tidal.core.errors import TidalError

    if example not in EXAMPLES:
        raise TidalError(f"tidal demo has no example {example!r}", hint=f"choose one of {', '.join(EXAMPLES)}")
    with signals_as_interrupts(signal.SIGTERM, signal.SIGHUP):
        return _run_demo(directory, console, _examples()[example])


def _run_demo(directory: Path, console: Console, ex: DemoExample) -> dict[str, Any]:
    import httpx
    from threadpoolctl import threadpool_limits

    from tidal.cli.render import StepPrinter
    from tidal.workspace import Workspace

    # OpenMP's spinning threads cost a 2-core machine dearly while a server and a controller share it
    threadpool_limits(limits=1)
    started = time.monotonic()
    claim_folder(directory)  # refuses before anything is shown or written
    console.rule(f"[bold]tidal demo[/] · {ex.title} · {directory}")
    project, stream = ex.prepare(directory)
    console.print(f"1. train the first champion on the first {HISTORY_SHARE:.0%} of {ex.title} "
                  f"(the other {len(stream):,} rows will arrive as live traffic)")
    with Workspace.open(project) as ws:
        printer = StepPrinter(console, explain=False)
        try:
            first = ws.run(listener=printer).model
        finally:
            printer.close()
        assert first is not None
        name = first.name
        console.print(f"   champion [bold]{name}:{first.version}[/]: holdout accuracy {first.metrics['accuracy']:.3f}")
        static_model = ws.models.load(f"{name}:{first.version}")
        columns = first.signature.names

    port = _free_port()
    log = open(project / "server.log", "w")  # noqa: SIM115 - closed in finally
    events: deque[str] = deque(maxlen=10)
    state: dict[str, Any] = {"drift": None, "champion": first.version, "ticks": 0, "retrains": 0, "failures": 0,
                             "story": [], "outcomes": [], "drift_rows": [], "drift_shares": [], "name": name,
                             "window": ex.window}
    y = stream[ex.target].to_numpy()
    served = np.zeros(len(stream), dtype=int)
    versions = np.zeros(len(stream), dtype=int)
    server: subprocess.Popen[bytes] | None = None
    try:
        # its own session: a Ctrl-C in the terminal reaches the demo only, which then stops the server itself
        server = subprocess.Popen([sys.executable, "-m", "tidal", "-C", str(project), "serve", "--port", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, server, project)
        console.print(f"2. the server answers on {url} (prediction log on); the controller ticks every "
                      f"{ex.tick_rows} rows")
        features = ex.rows(stream, columns)
        pending: deque[tuple[str, int]] = deque()
        with httpx.Client(base_url=url, timeout=60) as client, Workspace.open(project) as cws, \
                Live(console=console, refresh_per_second=4) as live:
            controller = cws.controller(owner="demo")
            # a stored event always has its id; `or 0` only tells mypy so
            state["last_event"] = max((e.id or 0 for e in cws.events(limit=1)), default=0)
            next_tick = ex.tick_rows
            try:
                for lo in range(0, len(stream), BATCH):
                    hi = min(len(stream), lo + BATCH)
                    body = client.post("/predict", json={"instances": features[lo:hi]}).raise_for_status().json()
                    served[lo:hi] = body["predictions"]
                    versions[lo:hi] = body["model"]["version"]
                    pending.extend(zip(body["prediction_ids"], y[lo:hi].tolist(), strict=True))
                    due = [pending.popleft() for _ in range(max(0, len(pending) - LABEL_DELAY))]
                    if due:
                        client.post("/feedback", json=[{"prediction_id": p, "label": int(v)} for p, v in due]
                                    ).raise_for_status()
                    if hi >= next_tick or hi == len(stream):
                        next_tick += ex.tick_rows
                        _tick(controller, cws, state, events, row=hi)
                        _wait_serving(client, state["champion"])
                    live.update(_panel(hi, len(stream), served, y, versions, state, events))
            finally:
                controller.release()
        console.print()
        console.print(f"3. streamed {len(stream):,} rows in {time.monotonic() - started:.0f} s")
    finally:
        if server is not None:
            _stop(server)
        log.close()
    summary = _summary(console, project, stream, columns, static_model, served, y, state, ex)
    summary["seconds"] = round(time.monotonic() - started, 1)
    console.print(f"done in {summary['seconds']:.0f} s")
    return summary


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server's process group: SIGTERM (a graceful stop), SIGKILL after 20 s."""
    for sig, wait in ((signal.SIGTERM, 20), (signal.SIGKILL, 5)):
        try:
            os.killpg(server.pid, sig)
        except ProcessLookupError:
            return
        try:
            server.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def _tick(controller: Any, ws: Any, state: dict[str, Any], events: deque[str], *, row: int) -> None:
    from tidal.loop.outcomes import STORY

    tick = controller.tick()
    state.update(drift=tick.drift_share, champion=tick.champion, ticks=state["ticks"] + 1)
    # the drift share at each tick, for the page's drift chart: it should fall back after a retrain
    state.setdefault("drift_rows", []).append(row)
    state.setdefault("drift_shares", []).append(tick.drift_share)
    for e in tick.events:
        failed = e.kind == "loop.retrain_failed"
        events.append(f"[{'red' if failed else 'cyan'}]{escape(e.kind)}[/] {escape(e.message)}")
        state["retrains"] += e.kind == "loop.retrain"
        state["failures"] = state.get("failures", 0) + failed
    # the tick's own events, and those of the run a retrain made (gate, registration, promotion), all placed
    # at the streamed row the tick came after: where they show on the chart
    recorded = [e for e in ws.events(limit=500) if e.id > state["last_event"]]
    for e in recorded:
        if e.kind in STORY:
            state["story"].append({"row": row, "kind": e.kind, "message": e.message})
            state.setdefault("outcomes", []).append(e)  # counted at the end: tidal.loop.outcomes.tally
    state["last_event"] = max([state["last_event"], *(e.id for e in recorded)])


def _wait_serving(client: Any, version: int | None, timeout: float = 15.0) -> None:
    """After a promotion or rollback, wait (briefly) until the server has hot-swapped to ``version``."""
    deadline = time.monotonic() + timeout
    while version is not None and time.monotonic() < deadline:
        if client.get("/model").json().get("version") == version:
            return
        time.sleep(0.1)


def _wait_ready(url: str, server: subprocess.Popen[bytes], project: Path) -> None:
    import httpx

    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError("the server stopped: " + (project / "server.log").read_text()[-2000:])
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready in 90 s")


def _panel(done: int, total: int, served: np.ndarray, y: np.ndarray, versions: np.ndarray,
           state: dict[str, Any], events: deque[str]) -> Group:
    window = int(state.get("window", WINDOW))
    lo = max(0, done - window)
    acc = float(np.mean(served[lo:done] == y[lo:done])) if done > lo else float("nan")
    table = Table.grid(padding=(0, 3))
    table.add_row(f"rows [bold]{done:,}[/]/{total:,}",
                  f"serving [bold]{state.get('name', 'elec2')}:{versions[done - 1]}[/]",
                  f"accuracy (last {window:,}) [bold]{acc:.3f}[/]",
                  "drift share " + ("-" if state["drift"] is None else f"[bold]{state['drift']:.2f}[/]"),
                  f"retrains [bold]{state['retrains']}[/]"
                  + (f" ([red]{state['failures']} failed[/])" if state.get("failures") else ""),
                  f"ticks {state['ticks']}")
    return Group(table, *events)


def _summary(console: Console, project: Path, stream: Any, columns: list[str], static_model: Any,
             served: np.ndarray, y: np.ndarray, state: dict[str, Any], ex: DemoExample) -> dict[str, Any]:
    from tidal.data.prepare import as_model_input
    from tidal.loop.backtest import BacktestResult, rolling_curves
    from tidal.loop.backtest_html import render_backtest_html
    from tidal.loop.outcomes import describe, failure_line, tally
    from tidal.workspace import Workspace

    with Workspace.open(project) as ws:
        name = state["name"]
        kinds = dict(ws.models.get(f"{name}:1").signature.columns)
        static = np.asarray(static_model.predict(as_model_input(stream, columns, kinds)))
        last_label = np.concatenate([[y[0]], y[:-1]]) if LABEL_DELAY == 0 else np.roll(y, LABEL_DELAY + 1)
        story = state["story"]
        # a canary/shadow trial still running when the stream ended: its retrain has no outcome yet
        on_trial = ws.controller(owner="demo").load_state().trial is not None
        outcomes = tally(state["outcomes"], pending=int(on_trial))
        curve_rows, curves = rolling_curves("classification", y, {"loop": served, "static": static,
                                                                   "last_label": last_label})
        result = BacktestResult(
            metric="accuracy", rows=len(y), initial_rows=int(len(y) * HISTORY_SHARE / (1 - HISTORY_SHARE)),
            loop={"score": float(np.mean(served == y)), **outcomes},
            static={"score": float(np.mean(static == y))},
            periodic={},  # not run live: retraining blindly is what `tidal backtest` compares against
            last_label={"score": float(np.mean(last_label == y))},
            curves=curves, curve_rows=curve_rows, events=story,
            drift_share={"rows": state["drift_rows"], "share": state["drift_shares"],
                         "threshold": ws.spec.retrain.on.drift.share if ws.spec.retrain.on.drift else None})
        loop = result.loop
        table = Table(title="the live run: prequential accuracy on the streamed rows", title_justify="left")
        for col in ("strategy", "accuracy", "what it did"):
            table.add_column(col)
        table.add_row("loop", f"{loop['score']:.4f}", describe(loop))
        table.add_row("static", f"{result.static['score']:.4f}", "the first champion, never retrained")
        table.add_row("last_label", f"{result.last_label['score']:.4f}", "predicts the most recent label seen")
        console.print(table)
        if (failed := failure_line(loop)) is not None:
            console.print(f"[red]loop: {escape(failed)}[/]")
        verdict = "beats" if loop["score"] > result.static["score"] else "does not beat"
        console.print(f"the loop {verdict} the static model by "
                      f"{(loop['score'] - result.static['score']) * 100:+.1f} accuracy points")
        recovery = _recovery(console, ws, state, served, static, y, ex)
        monitor_html = project / "reports" / "monitor.html"
        if not ws.monitor(html=monitor_html).window.get("rows"):
            # a champion promoted by the last tick has answered nothing yet: the report is on the stream's window
            ws.monitor(html=monitor_html, all_versions=True)
        comparison_html = render_backtest_html(result, project / "reports" / "loop.html",
                                               title=f"tidal demo · {ex.title} live loop")
        console.print(f"HTML reports: [bold]{comparison_html}[/] (scores over time, events marked) and "
                      f"[bold]{monitor_html}[/] (drift and performance of the serving champion)")
        console.print(f"the whole story: [bold]tidal -C {project} events[/] · why this champion: "
                      f"[bold]tidal -C {project} models show {name}[/]")
        return {"project": str(project), "metric": "accuracy", "rows": len(y), "loop": loop,
                "static": result.static, "last_label": result.last_label,
                "beats_static": loop["score"] > result.static["score"], **recovery,
                "reports": {"loop": str(comparison_html), "monitor": str(monitor_html)}}


def _recovery(console: Console, ws: Any, state: dict[str, Any], served: np.ndarray, static: np.ndarray,
              y: np.ndarray, ex: DemoExample) -> dict[str, Any]:
    """When the drift was first detected (the first tick whose drift share reached the trigger's), and, for a
    stream changed on purpose, the accuracy of the loop and of the static model on its last ``window`` rows
    (after the change): what the loop recovered. Printed, and returned for ``--json``."""
    trigger = ws.spec.retrain.on.drift
    shares = [(r, s) for r, s in zip(state["drift_rows"], state["drift_shares"], strict=True) if s is not None]
    detected = next((r for r, s in shares if trigger is not None and s >= trigger.share), None)
    out: dict[str, Any] = {"drift_detected_at": detected}
    if detected is not None:
        console.print(f"drift detected at streamed row {detected:,} (drift share "
                      f"{dict(shares)[detected]:.2f} >= {trigger.share:.2f})"
                      + (f"; the images changed from row {ex.changed_at:,}" if ex.changed_at is not None else ""))
    elif trigger is not None:
        console.print("no drift detected")
    if ex.changed_at is not None and len(y) - ex.changed_at >= ex.window:
        tail = slice(len(y) - ex.window, len(y))
        loop, still = float(np.mean(served[tail] == y[tail])), float(np.mean(static[tail] == y[tail]))
        console.print(f"accuracy on the last {ex.window:,} rows, after the change: loop {loop:.3f}, static {still:.3f}"
                      + (": [bold]accuracy recovered[/]" if loop > still else ""))
        out["after_change"] = {"rows": ex.window, "loop": loop, "static": still, "recovered": loop > still}
    return out
