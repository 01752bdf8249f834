"""``tidal serve``, ``monitor``, ``reports``, ``predictions``, ``loop``, ``backtest`` and ``demo``: the model in
service. Each parses, calls :class:`tidal.Workspace` and renders; nothing else."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from tidal.cli import exits
from tidal.cli.app import (
    JsonOpt,
    ProjectOpt,
    app,
    console,
    err,
    open_workspace,
    predictions_app,
    reports_app,
)
from tidal.core.errors import TidalError


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (deploy.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (deploy.port); 0 picks a free one.")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes (deploy.workers).")] = None,
    bundle: Annotated[Path | None, typer.Option(
        help="Serve this bundle (tidal export) instead of a project's champion; no workspace needed.")] = None,
    log_dir: Annotated[Path | None, typer.Option(
        help="With --bundle: the folder of its prediction log (default: .tidal-bundle inside the bundle).")]
    = None,
    log_url: Annotated[str | None, typer.Option(
        help="With --bundle: the prediction log's database URL (e.g. postgresql://...).")] = None,
    ui: Annotated[bool, typer.Option("--ui", help="Also serve the management API (/api/v1) in this process "
                                                  "(one worker; see tidal ui).")] = False,
    project: ProjectOpt = None,
) -> None:
    """Serve the champion over HTTP: /predict, /feedback, /healthz, /readyz, /metrics, /model, /docs."""
    import os

    from tidal.serve import run_server
    from tidal.workspace import Workspace

    if bundle is not None:
        # the bundle's own workspace names its stores: settings meant for a project's workspace do not apply
        for key in ("TIDAL_STORE_URL", "TIDAL_ARTIFACTS_URL", "TIDAL_PREDICTIONS_URL"):
            os.environ.pop(key, None)
        root = Workspace.open_bundle(bundle, log_dir=log_dir, log_url=log_url)
        with Workspace.open(root) as ws:
            deploy = ws.spec.deploy
        run_server(root, host=host or deploy.host, port=deploy.port if port is None else port,
                   workers=workers or deploy.workers)
        return
    if log_dir is not None or log_url is not None:
        raise TidalError("--log-dir and --log-url go with --bundle",
                         hint="a project's prediction log is set in tidal.yaml (storage.predictions)")
    with open_workspace(project) as ws:
        deploy = ws.spec.deploy
        root = ws.settings.root
    if ui:
        from tidal.ui import run_ui

        if (workers or deploy.workers) > 1:
            raise TidalError("--ui serves in one process", hint="drop --workers, or run tidal ui beside the server")
        run_ui(root, host=host or deploy.host, port=deploy.port if port is None else port, with_model=True)
        return
    run_server(root, host=host or deploy.host, port=deploy.port if port is None else port,
               workers=workers or deploy.workers)


@app.command()
def monitor(
    window: Annotated[int | None, typer.Option(help="The newest N predictions (monitor.window).")] = None,
    since: Annotated[str | None, typer.Option(help="Predictions since a time: ISO 8601, or 30m, 6h, 2d ago.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report with plots to this file.")] = None,
    all_versions: Annotated[bool, typer.Option("--all-versions", help="Include predictions of earlier versions.")]
    = False,
    json_out: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Drift per feature, prediction drift and performance on labelled feedback, over one window. A window
    with no predictions has nothing to judge: no report is stored, and the command says so."""
    from tidal.cli.render import dump_json, report_table
    from tidal.monitor import summarize
    from tidal.monitor.estimate import describe as describe_estimate
    from tidal.workspace.shapes import report_to_dict

    with open_workspace(project) as ws:
        report = ws.monitor(window=window, since=_parse_since(since), html=html, all_versions=all_versions)
        if not report.window.get("rows"):
            _nothing_to_judge(report, since=since, all_versions=all_versions, json_out=json_out,
                              html=html, lines=summarize(report))
            return
        if json_out:
            dump_json(console, {**report_to_dict(report), "outcome": "reported", "stored": True})
            return
        console.print(report_table(report))
        if report.body.get("estimate"):
            console.print(escape(describe_estimate(report.body["estimate"])))
        for line in summarize(report):
            console.print(escape(line))
        if html is not None:
            console.print(f"HTML report: [bold]{escape(str(html))}[/]")


def _nothing_to_judge(report: Any, *, since: str | None, all_versions: bool, json_out: bool,
                      html: Path | None, lines: list[str]) -> None:
    from tidal.cli.render import dump_json

    whose = report.model if all_versions else f"{report.model}:{report.version}"
    when = f" since {since}" if since else " yet"
    message = (f"nothing to judge: no predictions of {whose}{when}, so no report was stored"
               + ("" if html is None else " and no HTML written"))
    hint = "serve the champion (tidal serve), send it requests, then run tidal monitor again"
    if json_out:
        dump_json(console, {"outcome": "no_predictions", "stored": False, "model": report.model,
                            "version": report.version, "window": report.window, "message": message, "hint": hint,
                            "alerts": lines})
        return
    console.print(f"[yellow]{escape(message)}[/] — {escape(hint)}")
    for line in lines:
        console.print(escape(line))


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    from datetime import UTC, timedelta

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd])\s*", text)
    if m:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[m.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: float(m.group(1))})
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise TidalError(f"--since {text!r} is not a time",
                         hint="use ISO 8601 (2026-11-25T10:00) or an age like 30m, 6h, 2d") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@reports_app.command("ls")
def reports_ls(limit: Annotated[int, typer.Option(help="Show at most this many reports.")] = 20,
               json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """List stored monitoring reports, newest first."""
    from tidal.cli.render import dump_json, reports_table
    from tidal.workspace.shapes import report_to_dict

    with open_workspace(project) as ws:
        reports = ws.reports(limit=limit)
        if json_out:
            dump_json(console, [report_to_dict(r, body=False) for r in reports])
        else:
            console.print(reports_table(reports))


@reports_app.command("show")
def reports_show(report_id: Annotated[str, typer.Argument(help="A report id, or a unique prefix of one.")],
                 json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Show one stored report."""
    from tidal.cli.render import dump_json, report_table
    from tidal.monitor import summarize
    from tidal.monitor.estimate import describe as describe_estimate
    from tidal.workspace.shapes import report_to_dict

    with open_workspace(project) as ws:
        report = ws.report(report_id)
        if json_out:
            dump_json(console, report_to_dict(report))
            return
        console.print(report_table(report))
        if report.body.get("estimate"):
            console.print(escape(describe_estimate(report.body["estimate"])))
        for line in summarize(report):
            console.print(escape(line))


@predictions_app.command("check")
def predictions_check(
    quarantine: Annotated[bool, typer.Option("--quarantine", help="Move unreadable batches aside (kept whole).")]
    = False,
    json_out: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Read every stored prediction back and list the batches that cannot be read (monitoring and retraining
    skip them); --quarantine moves them out of the log, whole, into a quarantine table. Exit code 0 when the
    log reads back whole (or everything unreadable was quarantined), 4 when unreadable batches remain."""
    from tidal.cli.render import dump_json, when
    from tidal.core.text import count

    with open_workspace(project) as ws:
        found = ws.check_predictions(quarantine=quarantine)
    if json_out:
        dump_json(console, {"batches": found.batches, "predictions": found.predictions, "ok": found.ok,
                            "quarantined": found.quarantined,
                            "unreadable": [{"ref": b.ref, "model": b.model, "version": b.version, "time": b.time,
                                            "predictions": b.predictions, "reason": b.reason}
                                           for b in found.unreadable]})
    else:
        console.print(f"read back {count(found.predictions, 'prediction')} in "
                      f"{count(found.batches, 'batch', 'batches')}")
        for b in found.unreadable:
            console.print(f"[red]unreadable[/] {b.ref}: {count(b.predictions, 'prediction')} of "
                          f"{b.model}:{b.version} at {when(b.time)}: {escape(b.reason)}")
        if found.quarantined:
            console.print(f"[yellow]moved {found.quarantined} to quarantine[/]: reads no longer meet them")
        elif found.unreadable:
            console.print("run [bold]tidal predictions check --quarantine[/] to move them aside")
        else:
            console.print("[green]every stored prediction reads back[/]")
    if found.unreadable and not found.quarantined:
        raise typer.Exit(exits.UNREADABLE_PREDICTIONS)


@app.command("loop")
def loop_cmd(
    interval: Annotated[str, typer.Option(help="Time between ticks: 30s, 5m, 1h.")] = "30s",
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit.")] = False,
    max_ticks: Annotated[int | None, typer.Option(help="Stop after this many ticks.")] = None,
    take_over: Annotated[bool, typer.Option(
        "--take-over", help="Take the controller lease from the controller holding it (only when you know that "
                            "process is dead; recorded as an event).")] = False,
    status: Annotated[bool, typer.Option("--status", help="Print the loop's state (paused, retrain asked, "
                                                          "lease) and exit.")] = False,
    pause: Annotated[bool, typer.Option("--pause", help="Pause the controller (it ticks, acting on nothing) "
                                                        "and exit; recorded as an event naming you.")] = False,
    resume: Annotated[bool, typer.Option("--resume", help="Resume a paused controller and exit.")] = False,
    retrain_now: Annotated[bool, typer.Option("--retrain-now", help="Ask the controller to retrain at its next "
                                                                    "tick and exit.")] = False,
    reason: Annotated[str | None, typer.Option(help="With --pause, --resume, --retrain-now: why (in the event).")]
    = None,
    json_out: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Run the controller: observe → decide (the retrain policy) → act → record, every INTERVAL. One
    controller acts per project at a time (a lease); with --once, exit code 5 says another controller held
    it and this tick did nothing, exit code 6 that the retrain this tick started failed (the tick's
    output and the loop.retrain_failed event say why), and exit code 7 that its collection (data.collect)
    failed or was rejected."""
    from tidal.cli.render import TickPrinter
    from tidal.workspace.shapes import tick_to_dict

    seconds = _parse_interval(interval)
    controls = [flag for flag, on in (("--status", status), ("--pause", pause), ("--resume", resume),
                                      ("--retrain-now", retrain_now)) if on]
    if len(controls) > 1:
        raise TidalError(f"{' and '.join(controls)} do not go together", hint="give one of them")
    with open_workspace(project) as ws:
        if controls:
            _loop_control(ws, controls[0], reason, json_out)
            return
        printer = TickPrinter(console)

        def show(report: Any) -> None:
            if json_out:
                console.print_json(data=tick_to_dict(report))
            else:
                printer(report)

        if once:
            report = ws.loop_once(take_over=take_over)
            show(report)
            if report.blocked_by is not None:
                raise typer.Exit(exits.LEASE_HELD)
            if report.failed is not None:  # a failed retrain is not a tick that went well: scripts can tell
                raise typer.Exit(exits.RETRAINS_FAILED)
            if (report.collected or {}).get("outcome") in ("failed", "rejected"):  # nor is a failed collection
                raise typer.Exit(exits.COLLECT_FAILED)
            return
        if not json_out:
            console.print(f"controller on [bold]{ws.spec.name}[/], a tick every {seconds:g}s (Ctrl-C stops)")
        ws.controller(take_over=take_over).run(interval_s=seconds, max_ticks=max_ticks, on_tick=show)


def _loop_control(ws: Any, flag: str, reason: str | None, json_out: bool) -> None:
    from tidal.cli.render import dump_json

    if flag == "--status":
        found = ws.loop.status()
    else:
        act = {"--pause": ws.loop.pause, "--resume": ws.loop.resume, "--retrain-now": ws.loop.retrain_now}[flag]
        found = act(reason=reason)
    if json_out:
        dump_json(console, found)
        return
    paused, asked = found["paused"], found["retrain_requested"]
    console.print(f"loop of [bold]{escape(found['project'])}[/]: "
                  + (f"[yellow]paused[/] by {escape(str(paused.get('by')))} since {paused.get('at')}" if paused
                     else "[green]running[/]")
                  + (f"; retrain asked by {escape(str(asked.get('by')))}" if asked else "")
                  + (f"; controller {escape(found['controller']['owner'])}" if found["controller"] else
                     "; no controller holds the lease"))


def _parse_interval(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise TidalError(f"--interval {text!r} is not a duration", hint="use e.g. 30s, 5m or 1h")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


@app.command()
def backtest(
    json_out: JsonOpt = False,
    html: Annotated[Path | None, typer.Option(help="Write the scores over time, with the loop's events, here.")] = None,
    project: ProjectOpt = None,
) -> None:
    """Replay the time-ordered data through the real loop (simulated clock) against static, periodic and
    last-label baselines. Exit code 6 when the loop retrained and every retrain failed (the first error is
    the last line); the report is still printed or written."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tidal.cli.render import backtest_table, dump_json
    from tidal.loop.backtest_html import render_backtest_html
    from tidal.loop.outcomes import all_failed, failure_line

    with open_workspace(project) as ws:
        if json_out:
            result = ws.backtest()
        else:
            columns = (TextColumn("[bold]backtest[/]"), BarColumn(), TextColumn("{task.completed:,} rows"),
                       TextColumn("{task.fields[note]}"), TimeElapsedColumn())
            with Progress(*columns, console=console) as bar:
                task = bar.add_task("replay", total=None, note="training the first champion")

                def progress(done: int, total: int, tick: Any) -> None:
                    note = f"champion v{tick.champion}" if tick is not None and tick.champion else ""
                    if tick is not None and tick.events:
                        note += f" · {tick.events[-1].kind}"
                    bar.update(task, completed=done, total=total, note=note)

                result = ws.backtest(progress=progress)
        if html is not None:
            render_backtest_html(result, html, title=f"tidal backtest · {ws.spec.name}")
        if json_out:
            dump_json(console, result.to_dict())
        else:
            console.print(backtest_table(result))
            if html is not None:
                console.print(f"HTML: [bold]{escape(str(html))}[/]")
    if all_failed(result.loop):
        # the scores above are then the first champion's alone: not a result to pass as the loop's
        err.print(f"[bold red]error:[/] loop: {escape(failure_line(result.loop) or 'every retrain failed')}",
                  highlight=False, soft_wrap=True)
        raise typer.Exit(exits.RETRAINS_FAILED)


@app.command()
def demo(directory: Annotated[Path, typer.Argument(
             help="A folder for the demo project: new, empty, or made by an earlier tidal demo.")] = Path("demo"),
         json_out: Annotated[bool, typer.Option(
             "--json", help="Show the progress on stderr and print the comparison as JSON on stdout.")] = False,
         example: Annotated[str, typer.Option(
             help="elec2 (a table), or digits-drift (images that turn and darken part-way).")] = "elec2",
         ) -> None:
    """The whole lifecycle on Elec2 (or images), live: train, serve, stream, monitor, retrain, promote; then
    compare. Replaces DIR only if an earlier tidal demo made it; any other folder with files in it is refused."""
    from tidal.cli.demo import run_demo
    from tidal.cli.render import dump_json

    summary = run_demo(directory, err if json_out else console, example)
    if json_out:
        dump_json(console, summary)
