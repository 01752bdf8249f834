"""The ``tidal`` command. It parses, calls :class:`tidal.Workspace`, and renders; nothing else.

A :class:`~tidal.core.errors.TidalError` becomes one line on stderr and exit code 2; ``--debug`` shows
the traceback instead.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from tidal.core.errors import TidalError

app = typer.Typer(help="tidal: the whole machine-learning lifecycle as one closed loop.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
runs_app = typer.Typer(help="Runs of the pipeline.", no_args_is_help=True)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(models_app, name="models")
reports_app = typer.Typer(help="Monitoring reports.", no_args_is_help=True)
app.add_typer(reports_app, name="reports")
predictions_app = typer.Typer(help="The prediction log.", no_args_is_help=True)
app.add_typer(predictions_app, name="predictions")

#: Exit code of ``tidal predictions check`` when it found unreadable predictions and left them in place.
EXIT_PROBLEMS = 4
#: Exit code of ``tidal loop --once`` when another controller held the lease and the tick did nothing.
EXIT_BUSY = 5

console = Console()
err = Console(stderr=True)
_state: dict[str, Any] = {"project": Path("."), "debug": False}

ProjectOpt = Annotated[Path | None, typer.Option("--project", "-C", help="The project folder (holds tidal.yaml).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@app.callback()
def _root(
    project: Annotated[
        Path, typer.Option("--project", "-C", help="The project folder (holds tidal.yaml).")
    ] = Path("."),
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
) -> None:
    _state["project"] = project
    _state["debug"] = debug


def _ws(project: Path | None = None) -> Any:
    from tidal.workspace import Workspace

    return Workspace.open(project or _state["project"])


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path("."),
    example: Annotated[str | None, typer.Option(help="Copy a bundled example (elec2).")] = None,
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder's name).")] = None,
    source: Annotated[str | None, typer.Option(help="data.source of the new tidal.yaml.")] = None,
    target: Annotated[str | None, typer.Option(help="data.target of the new tidal.yaml.")] = None,
    force: Annotated[bool, typer.Option(help="Overwrite an existing tidal.yaml.")] = False,
) -> None:
    """Create a project: a bundled example, or a commented tidal.yaml to fill in."""
    from tidal.workspace import Workspace

    path = Workspace.init(directory, example=example, name=name, source=source, target=target, force=force)
    console.print(f"[green]created[/] {path}")
    console.print(f"next: [bold]tidal -C {directory} run[/]" if str(directory) != "." else "next: [bold]tidal run[/]")


@app.command()
def run(
    explain: Annotated[bool, typer.Option("--explain", help="Say for each step why it was or was not reused.")] = False,
    json_out: JsonOpt = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step, reusing nothing.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Run the pipeline: collect → validate → split → profile → train → evaluate → gate → register."""
    from tidal.cli.render import StepPrinter, dump_json
    from tidal.core.errors import GateFailed

    with _ws(project) as ws:
        printer = None if json_out else StepPrinter(console, explain=explain)
        try:
            result = ws.run(listener=printer, use_cache=not no_cache)
        finally:
            if printer is not None:
                printer.close()
        if json_out:
            dump_json(console, result.to_dict())
        else:
            _print_result(ws, result)
        if result.decision is not None and not result.decision.passed:
            champ = f"the champion stays {ws.spec.name}:{result.champion}" if result.champion else "no champion"
            raise GateFailed(f"{ws.spec.name}:{result.model.version} failed the gate and is rejected "
                             f"({'; '.join(result.decision.failed)}); {champ}",
                             reasons=result.decision.failed,
                             hint="improve the model or relax validate.gates in tidal.yaml")


def _print_result(ws: Any, result: Any) -> None:
    if result.source.get("outside_project"):
        src = result.source
        console.print(f"[yellow]note[/] data.source {escape(src['uri'])} reads {escape(src['path'])}, outside the "
                      "project folder (recorded in the run and the model's lineage)")
    for w in result.warnings:
        console.print(f"[yellow]warning[/] {escape(w)}")
    mv = result.model
    if mv is None:
        return
    aliases = ws.models.aliases_of(mv)
    style = "green" if mv.state.value == "validated" else "red"
    label = f"[bold]{mv.name}:{mv.version}[/] [{style}]{mv.state.value}[/]" + (
        f" ({', '.join(aliases)})" if aliases else "")
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if v is not None)
    console.print(f"model {label}   {metrics}")
    if result.decision is not None:
        for reason in result.decision.reasons:
            console.print(f"  gate: {escape(reason)}")
    console.print(f"[dim]run {result.run.id[:12]} · store {ws.settings.store_url} · "
                  f"artifacts {ws.artifacts.url}[/]")


@runs_app.command("ls")
def runs_ls(limit: int = 20, json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """List runs, newest first."""
    from tidal.cli.render import dump_json, runs_table

    with _ws(project) as ws:
        runs = ws.runs.list(limit=limit)
        if json_out:
            dump_json(console, [{"id": r.id, "status": r.status.value, "started_at": r.started_at,
                                 "ended_at": r.ended_at, "trigger": r.trigger, "error": r.error,
                                 "model": r.info.get("model")} for r in runs])
        else:
            console.print(runs_table(runs))


@runs_app.command("show")
def runs_show(run_id: str, json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Show one run: steps, params, metrics, lineage."""
    from tidal.cli.render import dump_json, fmt, steps_table, when

    with _ws(project) as ws:
        d = ws.runs.get(run_id)
        last: dict[str, Any] = {}
        for m in d.metrics:
            last[m.key] = m.value
        if json_out:
            dump_json(console, {"id": d.run.id, "status": d.run.status.value, "trigger": d.run.trigger,
                                "started_at": d.run.started_at, "ended_at": d.run.ended_at, "error": d.run.error,
                                "spec_digest": d.run.spec_digest, "info": d.run.info, "params": d.params,
                                "tags": d.tags, "metrics": last,
                                "steps": [{"name": s.name, "status": s.status.value, "explain": s.explain,
                                           "seconds": s.duration_s, "outputs": s.outputs} for s in d.steps]})
            return
        console.print(f"[bold]run {d.run.id}[/]  {d.run.status.value}  trigger {d.run.trigger}  "
                      f"started {when(d.run.started_at)}")
        if d.run.error:
            console.print(f"[red]error[/] {escape(d.run.error)}")
        console.print(steps_table(d.steps))
        console.print("params: " + ", ".join(f"{k}={v}" for k, v in sorted(d.params.items())))
        console.print("metrics: " + ", ".join(f"{k}={fmt(v)}" for k, v in sorted(last.items())
                                              if not k.startswith("curve.")))
        console.print(f"spec {d.run.spec_digest[:12]} · git {(d.run.info.get('git') or {}).get('commit', '-')}"
                      f" · environment {str(d.run.info.get('environment_digest', ''))[:12]}")


@models_app.command("ls")
def models_ls(json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """List every registered model version."""
    from tidal.cli.render import dump_json, model_to_dict, models_table

    with _ws(project) as ws:
        versions = ws.models.list()
        aliases: dict[tuple[str, int], list[str]] = {}
        for a in ws.models.aliases():
            aliases.setdefault((a.name, a.version), []).append(a.alias)
        if json_out:
            dump_json(console, [model_to_dict(mv, aliases.get((mv.name, mv.version), [])) for mv in versions])
        else:
            console.print(models_table(versions, aliases))


@models_app.command("show")
def models_show(ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME:ALIAS")],
                json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Show a model version: state, metrics, signature, lineage, and the events that explain it."""
    from tidal.cli.render import dump_json, event_to_dict, events_table, fmt, model_to_dict, when

    with _ws(project) as ws:
        mv = ws.models.get(ref)
        aliases = ws.models.aliases_of(mv)
        history = ws.models.history(mv)
        if json_out:
            dump_json(console, {**model_to_dict(mv, aliases), "events": [event_to_dict(e) for e in history]})
            return
        console.print(f"[bold]{mv.name}:{mv.version}[/]  {mv.state.value}"
                      + (f"  aliases: {', '.join(aliases)}" if aliases else "") + f"  created {when(mv.created_at)}")
        if mv.reasons:
            console.print("[red]rejected because[/] " + escape("; ".join(mv.reasons)))
        console.print("metrics (holdout): " + ", ".join(f"{k} {fmt(v)}" for k, v in mv.metrics.items()))
        console.print("inputs: " + ", ".join(f"{c} ({k})" for c, k in mv.signature.columns.items()))
        lin = mv.lineage
        console.print(f"lineage: run {str(lin.run_id)[:12]} · snapshot {str(lin.snapshot)[:12]} · "
                      f"spec {str(lin.spec_digest)[:12]} · git {(lin.git or {}).get('commit', '-')}"
                      f" · environment {str(lin.environment_digest)[:12]} · artifact {mv.artifact_digest[:12]}")
        console.print(events_table(history))


@app.command()
def promote(name: str, version: int,
            alias: Annotated[str, typer.Option(help="The alias to move.")] = "champion",
            reason: Annotated[str | None, typer.Option(help="Why, recorded in the event.")] = None,
            project: ProjectOpt = None) -> None:
    """Point an alias (champion by default) at a version."""
    with _ws(project) as ws:
        previous = ws.promote(name, version, alias=alias, reason=reason)
        console.print(f"{alias} of {name}: {previous if previous is not None else '(none)'} → {version}")


@app.command()
def events(limit: int = 50, subject: str | None = None, kind: str | None = None,
           json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """The recorded decisions: data rejected, gates passed or failed, promotions."""
    from tidal.cli.render import dump_json, event_to_dict, events_table

    with _ws(project) as ws:
        evs = ws.events(limit=limit, subject=subject, kind=kind)
        if json_out:
            dump_json(console, [event_to_dict(e) for e in evs])
        else:
            console.print(events_table(evs))


@app.command()
def rollback(name: str, reason: Annotated[str | None, typer.Option(help="Why, recorded in the event.")] = None,
             project: ProjectOpt = None) -> None:
    """Move the champion alias back to the previous champion (a running server follows within seconds)."""
    with _ws(project) as ws:
        current = ws.models.get(f"{name}:champion").version
        previous = ws.rollback(name, reason=reason)
        console.print(f"champion of {name}: {current} → {previous} (rolled back)")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on (deploy.host).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (deploy.port); 0 picks a free one.")] = None,
    workers: Annotated[int | None, typer.Option(help="Server processes (deploy.workers).")] = None,
    project: ProjectOpt = None,
) -> None:
    """Serve the champion over HTTP: /predict, /feedback, /healthz, /readyz, /metrics, /model, /docs."""
    from tidal.serve import run_server

    with _ws(project) as ws:
        deploy = ws.spec.deploy
        root = ws.settings.root
    run_server(root, host=host or deploy.host, port=deploy.port if port is None else port,
               workers=workers or deploy.workers)


@app.command()
def monitor(
    window: Annotated[int | None, typer.Option(help="The newest N predictions (monitor.window).")] = None,
    since: Annotated[str | None, typer.Option(help="Predictions since a time: ISO 8601, or 30m, 6h, 2d ago.")] = None,
    html: Annotated[Path | None, typer.Option(help="Write an HTML report with plots to this file.")] = None,
    all_versions: Annotated[bool, typer.Option(help="Include predictions of earlier versions.")] = False,
    json_out: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Drift per feature, prediction drift and performance on labelled feedback, over one window."""
    from tidal.cli.render import dump_json, report_table, report_to_dict
    from tidal.monitor import summarize

    with _ws(project) as ws:
        report = ws.monitor(window=window, since=_parse_since(since), html=html, all_versions=all_versions)
        if json_out:
            dump_json(console, report_to_dict(report))
            return
        console.print(report_table(report))
        for line in summarize(report):
            console.print(escape(line))
        if html is not None:
            console.print(f"HTML report: [bold]{html}[/]")


def _parse_since(text: str | None) -> Any:
    if text is None:
        return None
    import re
    from datetime import UTC, datetime, timedelta

    from tidal.core.errors import TidalError

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
def reports_ls(limit: int = 20, json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """List stored monitoring reports, newest first."""
    from tidal.cli.render import dump_json, report_to_dict, reports_table

    with _ws(project) as ws:
        reports = ws.reports(limit=limit)
        if json_out:
            dump_json(console, [report_to_dict(r, body=False) for r in reports])
        else:
            console.print(reports_table(reports))


@reports_app.command("show")
def reports_show(report_id: str, json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Show one stored report."""
    from tidal.cli.render import dump_json, report_table, report_to_dict
    from tidal.monitor import summarize

    with _ws(project) as ws:
        report = ws.report(report_id)
        if json_out:
            dump_json(console, report_to_dict(report))
            return
        console.print(report_table(report))
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

    with _ws(project) as ws:
        found = ws.check_predictions(quarantine=quarantine)
    if json_out:
        dump_json(console, {"batches": found.batches, "predictions": found.predictions, "ok": found.ok,
                            "quarantined": found.quarantined,
                            "unreadable": [{"ref": b.ref, "model": b.model, "version": b.version, "time": b.time,
                                            "predictions": b.predictions, "reason": b.reason}
                                           for b in found.unreadable]})
    else:
        console.print(f"read back {found.predictions:,} predictions in {found.batches:,} batches")
        for b in found.unreadable:
            console.print(f"[red]unreadable[/] {b.ref}: {b.predictions} predictions of {b.model}:{b.version} "
                          f"at {when(b.time)}: {escape(b.reason)}")
        if found.quarantined:
            console.print(f"[yellow]moved {found.quarantined} to quarantine[/]: reads no longer meet them")
        elif found.unreadable:
            console.print("run [bold]tidal predictions check --quarantine[/] to move them aside")
        else:
            console.print("[green]every stored prediction reads back[/]")
    if found.unreadable and not found.quarantined:
        raise typer.Exit(EXIT_PROBLEMS)


@app.command("loop")
def loop_cmd(
    interval: Annotated[str, typer.Option(help="Time between ticks: 30s, 5m, 1h.")] = "30s",
    once: Annotated[bool, typer.Option("--once", help="One tick, then exit.")] = False,
    max_ticks: Annotated[int | None, typer.Option(help="Stop after this many ticks.")] = None,
    take_over: Annotated[bool, typer.Option(
        "--take-over", help="Take the controller lease from the controller holding it (only when you know that "
                            "process is dead; recorded as an event).")] = False,
    json_out: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Run the controller: observe → decide (the retrain policy) → act → record, every INTERVAL. One
    controller acts per project at a time (a lease); with --once, exit code 5 says another controller held
    it and this tick did nothing."""
    from tidal.cli.render import TickPrinter, tick_to_dict

    seconds = _parse_interval(interval)
    with _ws(project) as ws:
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
                raise typer.Exit(EXIT_BUSY)
            return
        if not json_out:
            console.print(f"controller on [bold]{ws.spec.name}[/], a tick every {seconds:g}s (Ctrl-C stops)")
        ws.controller(take_over=take_over).run(interval_s=seconds, max_ticks=max_ticks, on_tick=show)


def _parse_interval(text: str) -> float:
    import re

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
    last-label baselines."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from tidal.cli.render import dump_json
    from tidal.loop.backtest_html import render_backtest_html

    with _ws(project) as ws:
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
            return
        from tidal.cli.render import backtest_table

        console.print(backtest_table(result))
        if html is not None:
            console.print(f"HTML: [bold]{html}[/]")


@app.command()
def demo(directory: Annotated[Path, typer.Argument(help="A folder for the demo project.")] = Path("demo")) -> None:
    """The whole lifecycle on Elec2, live: train, serve, stream, monitor, retrain, promote; then compare."""
    from tidal.cli.demo import run_demo

    run_demo(directory, console)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tidal`` script."""
    try:
        app(args=argv, standalone_mode=True)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else 1
    except TidalError as exc:
        if _state.get("debug"):
            raise
        err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        return exc.exit_code
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    except Exception as exc:  # a bug in tidal, not a user mistake: still one line, with the way to see more
        if _state.get("debug"):
            raise
        err.print(f"[bold red]error:[/] internal error ({type(exc).__name__}: {escape(str(exc))}) — "
                  "re-run with --debug for the traceback and report it", highlight=False, soft_wrap=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
