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
        console.print("inputs: " + ", ".join(f"{c} ({k})" for c, k in mv.signature.get("columns", {}).items()))
        lin = mv.lineage
        console.print(f"lineage: run {str(lin.get('run_id'))[:12]} · snapshot {str(lin.get('snapshot'))[:12]} · "
                      f"spec {str(lin.get('spec_digest'))[:12]} · git {(lin.get('git') or {}).get('commit', '-')}"
                      f" · environment {str(lin.get('environment_digest'))[:12]} · artifact {mv.artifact_digest[:12]}")
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
def demo(directory: Annotated[Path, typer.Argument(help="A folder for the demo project.")] = Path("demo")) -> None:
    """Initialise the Elec2 example in a fresh folder and run it twice: the second run reuses every step."""
    import shutil

    from tidal.cli.render import StepPrinter
    from tidal.workspace import Workspace

    if directory.exists():
        shutil.rmtree(directory)
    Workspace.init(directory, example="elec2")
    console.rule(f"[bold]tidal demo[/] · Elec2 in {directory}")
    for i in (1, 2):
        console.rule(f"run {i}" + (" (nothing changed: every step is reused)" if i == 2 else ""))
        with Workspace.open(directory) as ws:
            printer = StepPrinter(console, explain=i == 2)
            try:
                result = ws.run(listener=printer)
            finally:
                printer.close()
            _print_result(ws, result)
    console.print(f"\nThe project is in [bold]{directory}/[/]: tidal.yaml, data/, and .tidal/ (tidal.db, artifacts/).")
    console.print(f"Try: [bold]tidal -C {directory} models show elec2[/] · [bold]tidal -C {directory} events[/]")


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
