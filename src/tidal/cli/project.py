"""``tidal init``, ``run``, ``runs``, ``models``, ``promote``, ``rollback`` and ``events``: the pipeline and
the registry. Each parses, calls :class:`tidal.Workspace` and renders; nothing else."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from tidal.cli import exits
from tidal.cli.app import (
    JsonOpt,
    ProjectOpt,
    app,
    console,
    err,
    models_app,
    open_workspace,
    project_flag,
    runs_app,
)
from tidal.cli.failures import report_failure

#: How many of the last lines of a run's log ``tidal runs show`` prints (``--log``: all of them).
LOG_TAIL = 20


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to create the project.")] = Path("."),
    example: Annotated[str | None, typer.Option(
        help="Create a bundled example: elec2, digits, mnist or digits-drift.")] = None,
    name: Annotated[str | None, typer.Option(help="Project name (default: the folder's name).")] = None,
    source: Annotated[str | None, typer.Option(
        help="data.source of the new tidal.yaml: a file (relative to the current folder), a glob or a URL.")]
    = None,
    target: Annotated[str | None, typer.Option(help="data.target of the new tidal.yaml.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing tidal.yaml.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a project: a bundled example, or a commented tidal.yaml to fill in."""
    from tidal.cli.render import dump_json
    from tidal.workspace import Workspace

    path = Workspace.init(directory, example=example, name=name, source=source, target=target, force=force)
    # the drift example is a stream to replay: its first command is the backtest
    following = f"tidal {project_flag(directory)}{'backtest' if example == 'digits-drift' else 'run'}"
    if json_out:
        dump_json(console, {"created": str(path), "project": str(directory), "next": following})
        return
    console.print(f"[green]created[/] {escape(str(path))}")
    console.print(f"next: [bold]{escape(following)}[/]")


@app.command()
def run(
    explain: Annotated[bool, typer.Option("--explain", help="Say for each step why it was or was not reused.")] = False,
    json_out: JsonOpt = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Run every step, reusing nothing.")] = False,
    project: ProjectOpt = None,
) -> None:
    """Run the pipeline: collect → validate → split → profile → train → evaluate → gate → register. A model
    that fails its gate is registered as rejected and the command exits 3."""
    from tidal.cli.render import StepPrinter, dump_json
    from tidal.core.errors import GateFailed
    from tidal.core.progress import listening

    with open_workspace(project) as ws, _terminal(json_out) as live:
        printer = None if json_out else StepPrinter(console, explain=explain, live=live)
        try:
            with listening(None if printer is None else printer.progress):  # a network's epochs, as a bar
                result = ws.run(listener=printer, use_cache=not no_cache)
        finally:
            if printer is not None:
                printer.close()
        failed = result.decision is not None and not result.decision.passed
        if not failed:
            if json_out:
                dump_json(console, result.to_dict())
            else:
                _print_result(ws, result)
            return
        champ = f"the champion stays {ws.spec.name}:{result.champion}" if result.champion else "no champion"
        failure = GateFailed(f"{ws.spec.name}:{result.model.version} failed the gate and is rejected "
                             f"({'; '.join(result.decision.failed)}); {champ}",
                             reasons=result.decision.failed,
                             hint="improve the model or relax validate.gates in tidal.yaml")
        if not json_out:
            _print_result(ws, result)
            raise failure
        # one JSON document on stdout: the run's result, with the error and its hint
        report_failure(err, failure.message, failure.hint, json_mode=True, document=result.to_dict())
        raise typer.Exit(exits.GATE_FAILED)


@contextmanager
def _terminal(json_out: bool) -> Iterator[Console | None]:
    """A console on a copy of the terminal's descriptor, for the live spinner and epoch bar: the train step
    points descriptors 1 and 2 at the run's log while the library fits, and the copy still reaches the
    terminal. None when stdout is no terminal (nothing live is drawn there) or for --json."""
    if json_out or not console.is_terminal:
        yield None
        return
    try:
        fd = os.dup(console.file.fileno())
    except (AttributeError, OSError, ValueError):  # no real descriptor (a test's captured stream)
        yield None
        return
    with os.fdopen(fd, "w", encoding=console.encoding or "utf-8", errors="replace") as out:
        yield Console(file=out, force_terminal=True, width=console.width,
                      color_system="truecolor" if console.color_system == "truecolor" else "auto")


def _print_result(ws: Any, result: Any) -> None:
    if result.source.get("outside_project"):
        src = result.source
        console.print(f"[yellow]note[/] data.source {escape(src['uri'])} reads {escape(src['path'])}, outside the "
                      "project folder (recorded in the run and the model's lineage)")
    for note in result.notes:
        console.print(f"[cyan]note[/] {escape(note)}")
    for w in result.warnings:
        console.print(f"[yellow]warning[/] {escape(w)}")
    mv = result.model
    if mv is None:
        return
    _print_epochs(ws, result.run.id)
    aliases = ws.models.aliases_of(mv)
    style = "red" if mv.state.value == "rejected" else "green"
    label = f"[bold]{mv.name}:{mv.version}[/] [{style}]{mv.state.value}[/]" + (
        f" ({', '.join(aliases)})" if aliases else "")
    metrics = "  ".join(f"{k} {v:.4f}" for k, v in result.metrics.items() if v is not None)
    console.print(f"model {label}   {metrics}")
    if result.decision is not None:
        for reason in result.decision.reasons:
            console.print(f"  gate: {escape(reason)}")
    console.print(f"[dim]run {result.run.id[:12]} · store {ws.settings.store_url} · "
                  f"artifacts {ws.artifacts.url}[/]")


def _print_epochs(ws: Any, run_id: str) -> None:
    """The run's epoch table, when its model logged per-epoch curves (a network, scikit-learn's MLP)."""
    from tidal.cli.epochs import epoch_table

    table = epoch_table(ws.runs.get(run_id).metrics)
    if table is not None:
        console.print(table)


@runs_app.command("ls")
def runs_ls(limit: Annotated[int, typer.Option(help="Show at most this many runs.")] = 20,
            json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """List runs, newest first."""
    from tidal.cli.render import dump_json, runs_table
    from tidal.workspace.shapes import run_summary

    with open_workspace(project) as ws:
        runs = ws.runs.list(limit=limit)
        if json_out:
            dump_json(console, [run_summary(r) for r in runs])
        else:
            console.print(runs_table(runs))


@runs_app.command("show")
def runs_show(run_id: Annotated[str, typer.Argument(help="A run id, or a unique prefix of one.")],
              json_out: JsonOpt = False, project: ProjectOpt = None,
              log: Annotated[bool, typer.Option("--log", help="Print the whole log of the training library.")]
              = False) -> None:
    """Show one run: steps, params, metrics, the epoch table of a network, lineage, and the end of what the
    training library printed."""
    from tidal.cli.epochs import epoch_table
    from tidal.cli.render import dump_json, fmt, steps_table, when
    from tidal.workspace.shapes import run_detail

    with open_workspace(project) as ws:
        d = ws.runs.get(run_id)
        text = ws.runs.log(d.run.id)
        if log:
            console.out(text or "", end="", highlight=False)
            return
        last: dict[str, Any] = {}
        for m in d.metrics:
            last[m.key] = m.value
        if json_out:
            dump_json(console, run_detail(d, text))
            return
        console.print(f"[bold]run {d.run.id}[/]  {d.run.status.value}  trigger {d.run.trigger}  "
                      f"started {when(d.run.started_at)}")
        if d.run.error:
            console.print(f"[red]error[/] {escape(d.run.error)}")
        if d.steps:  # a run that registered a model trained outside tidal has none
            console.print(steps_table(d.steps))
        console.print("params: " + ", ".join(f"{k}={v}" for k, v in sorted(d.params.items())))
        console.print("metrics: " + ", ".join(f"{k}={fmt(v)}" for k, v in sorted(last.items())
                                              if not k.startswith("curve.")))
        if (table := epoch_table(d.metrics)) is not None:
            console.print(table)
        console.print(f"spec {d.run.spec_digest[:12]} · git {(d.run.info.get('git') or {}).get('commit', '-')}"
                      f" · environment {str(d.run.info.get('environment_digest', ''))[:12]}")
        if text:
            lines = text.splitlines()
            shown = lines[-LOG_TAIL:]
            console.print(f"log of the training library ({len(lines)} line{'s' if len(lines) != 1 else ''}"
                          + (f", the last {len(shown)}: `tidal runs show {d.run.id[:12]} --log` prints all)"
                             if len(shown) < len(lines) else "):"))
            for line in shown:
                console.print("  " + escape(line), highlight=False)


@models_app.command("ls")
def models_ls(json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """List every registered model version."""
    from tidal.cli.render import dump_json, models_table
    from tidal.workspace.shapes import models_list

    with open_workspace(project) as ws:
        if json_out:
            dump_json(console, models_list(ws))
            return
        aliases: dict[tuple[str, int], list[str]] = {}
        for a in ws.models.aliases():
            aliases.setdefault((a.name, a.version), []).append(a.alias)
        console.print(models_table(ws.models.list(), aliases))


@models_app.command("show")
def models_show(ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME:ALIAS")],
                json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Show a model version: state and its history, why it serves (or not), metrics, signature, lineage, and
    the events that explain it."""
    from tidal.cli.render import dump_json, events_table, fmt, state_text, states_table, when
    from tidal.workspace.shapes import model_detail

    with open_workspace(project) as ws:
        if json_out:
            dump_json(console, model_detail(ws, ref))
            return
        mv = ws.models.get(ref)
        aliases = ws.models.aliases_of(mv)
        history = ws.models.history(mv)
        states = ws.models.states(mv)
        serving = ws.models.serving(mv)
        head = Text.assemble((f"{mv.name}:{mv.version}", "bold"), "  ", state_text(mv.state.value))
        if "stored_state" in mv.info:
            head.append(f" (stored as {mv.info['stored_state']!r}, a state this tidal does not know)", style="yellow")
        head.append((f"  aliases: {', '.join(aliases)}" if aliases else "") + f"  created {when(mv.created_at)}")
        console.print(head)
        console.print(Text.assemble(("why serving: " if serving.serving else "not serving: ", "bold"),
                                    serving.text))
        if mv.reasons:
            console.print("[red]rejected because[/] " + escape("; ".join(mv.reasons)))
        console.print("metrics (holdout): " + ", ".join(f"{k} {fmt(v)}" for k, v in mv.metrics.items()))
        console.print("inputs: " + ", ".join(f"{c} ({k})" for c, k in mv.signature.columns.items()))
        lin = mv.lineage
        console.print(f"lineage: run {str(lin.run_id)[:12]} · snapshot {str(lin.snapshot)[:12]} · "
                      f"spec {str(lin.spec_digest)[:12]} · git {(lin.git or {}).get('commit', '-')}"
                      f" · environment {str(lin.environment_digest)[:12]} · artifact {mv.artifact_digest[:12]}"
                      + (f" · continued from {lin.continued_from.get('name')}:{lin.continued_from.get('version')}"
                         if lin.continued_from else "")
                      + (f" · {lin.extra['origin']}" if lin.extra.get("origin") else ""))
        console.print(states_table(states))
        console.print(events_table(history))


@app.command()
def promote(name: Annotated[str, typer.Argument(help="The model's name.")],
            version: Annotated[int, typer.Argument(help="The version the alias will point at.")],
            alias: Annotated[str, typer.Option(help="The alias to move.")] = "champion",
            reason: Annotated[str | None, typer.Option(help="Why, recorded in the event.")] = None,
            json_out: JsonOpt = False,
            project: ProjectOpt = None) -> None:
    """Point an alias (champion by default) at a version."""
    from tidal.cli.render import dump_json

    with open_workspace(project) as ws:
        previous = ws.promote(name, version, alias=alias, reason=reason)
    if json_out:
        dump_json(console, {"name": name, "alias": alias, "from": previous, "to": version})
        return
    console.print(f"{alias} of {name}: {previous if previous is not None else '(none)'} → {version}")


@app.command()
def export(ref: Annotated[str, typer.Argument(help="NAME, NAME:VERSION or NAME@ALIAS (NAME alone: its champion).")],
           directory: Annotated[Path, typer.Argument(help="A new (or empty) folder for the bundle.")],
           fmt: Annotated[str, typer.Option("--format", help="native (the model's own format) or onnx (converted, "
                                            "checked on the holdout, served with onnxruntime).")] = "native",
           tolerance: Annotated[float | None, typer.Option(
               help="--format onnx: the largest holdout difference accepted (default 1e-5).")] = None,
           json_out: JsonOpt = False,
           project: ProjectOpt = None) -> None:
    """Package a model version for deployment: a folder with its artifact, model.json (signature, metrics,
    reference profile, lineage), a pinned requirements.txt, a Dockerfile and a MANIFEST of digests, served
    anywhere by `tidal serve --bundle DIR`."""
    import json

    from tidal.cli.render import dump_json

    with open_workspace(project) as ws:
        files = ws.export(ref, directory, format=fmt, tolerance=tolerance)
    parity = json.loads((directory / "model.json").read_text()).get("onnx") if fmt == "onnx" else None
    if json_out:
        dump_json(console, {"bundle": str(directory), "files": files, **({"onnx": parity} if parity else {})})
        return
    if parity:
        console.print(f"ONNX parity on {parity['rows']} holdout rows: largest {parity['compared']} difference "
                      f"{parity['max_difference']:.3g} (tolerance {parity['tolerance']:g})"
                      + (f", {parity['labels_differ']} labels differ" if parity["compared"] == "probabilities" else ""))
    console.print(f"exported {escape(ref)} to [bold]{escape(str(directory))}[/]: {escape(', '.join(files))}")
    console.print(f"serve it with: tidal serve --bundle {escape(str(directory))}")


@app.command()
def events(limit: Annotated[int, typer.Option(help="Show at most the newest N events.")] = 50,
           subject: Annotated[str | None, typer.Option(
               help="Only events about this subject (model:NAME, model:NAME:VERSION, project:NAME); a "
                    "trailing * makes it a prefix: model:NAME:* for every version.")] = None,
           kind: Annotated[str | None, typer.Option(
               help="Only events of this kind, e.g. gate.failed, alias.moved, loop.retrain.")] = None,
           json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """The recorded decisions: data rejected, gates passed or failed, promotions."""
    from tidal.cli.render import dump_json, events_table
    from tidal.workspace.shapes import event_to_dict

    with open_workspace(project) as ws:
        evs = ws.events(limit=limit, subject=subject, kind=kind)
        if json_out:
            dump_json(console, [event_to_dict(e) for e in evs])
        else:
            console.print(events_table(evs))


@app.command()
def rollback(name: Annotated[str, typer.Argument(help="The model's name.")],
             reason: Annotated[str | None, typer.Option(help="Why, recorded in the event.")] = None,
             json_out: JsonOpt = False,
             project: ProjectOpt = None) -> None:
    """Move the champion alias back to the previous champion (a running server follows within seconds)."""
    from tidal.cli.render import dump_json

    with open_workspace(project) as ws:
        current = ws.models.get(f"{name}:champion").version
        previous = ws.rollback(name, reason=reason)
    if json_out:
        dump_json(console, {"name": name, "alias": "champion", "from": current, "to": previous})
        return
    console.print(f"champion of {name}: {current} → {previous} (rolled back)")
