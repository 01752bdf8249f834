"""``tidal snapshots ls`` and ``tidal snapshots show``: the data snapshots a project collected, each one's
columns and profile, what was found in it and the versions trained on it. Each parses, calls
:class:`tidal.Workspace` and renders; ``--json`` prints what ``/api/v1/snapshots`` answers."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tidal.cli.app import JsonOpt, ProjectOpt, app, console, open_workspace

snapshots_app = typer.Typer(help="Data snapshots: what was collected.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(snapshots_app, name="snapshots")


@snapshots_app.command("ls")
def snapshots_ls(limit: Annotated[int, typer.Option(help="Show at most this many snapshots.")] = 20,
                 json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """List the project's snapshots, newest first: the tables collected, their batches, the splits of runs."""
    from tidal.cli.render import dump_json, when
    from tidal.workspace.shapes import snapshot_to_dict

    with open_workspace(project) as ws:
        found = ws.snapshots.list(limit=limit)
    if json_out:
        dump_json(console, [snapshot_to_dict(s) for s in found])
        return
    table = Table("digest", "rows", "columns", "source", "created")
    for s in found:
        table.add_row(s.digest[:12], f"{s.rows:,}", str(len(s.columns)), escape(s.source), when(s.created_at))
    console.print(table)


@snapshots_app.command("show")
def snapshots_show(digest: Annotated[str, typer.Argument(help="A snapshot digest, or a prefix of 6 or more.")],
                   json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Show one snapshot: each column's kind and statistics, what validation and collection found in it, and the
    versions trained on it."""
    from tidal.cli.render import dump_json, fmt
    from tidal.workspace.shapes import snapshot_detail

    with open_workspace(project) as ws:
        d = snapshot_detail(ws, digest)
    if json_out:
        dump_json(console, d)
        return
    console.print(f"[bold]snapshot {d['digest']}[/]  {d['rows']:,} rows, {d['columns']} columns, from "
                  f"{escape(d['source'])}  {d['created_at'][:19].replace('T', ' ')}")
    table = Table("column", "kind", "nulls", "min", "mean", "max", "top")
    for name in d["column_names"]:
        p = d["profile"].get(name) or {}
        top = ", ".join(f"{escape(str(k))} ({v:,})" for k, v in list((p.get("top") or {}).items())[:3])
        table.add_row(escape(name), str(p.get("kind", d["schema"].get(name, ""))), fmt(p.get("null_share")),
                      fmt(p.get("min")), fmt(p.get("mean")), fmt(p.get("max")), top)
    console.print(table)
    for e in d["events"]:
        console.print(f"{e['time'][:19].replace('T', ' ')}  {e['kind']}  {escape(e['message'])}")
    if d["versions"]:
        console.print("trained on it: " + ", ".join(f"{v['name']}:{v['version']} ({v['state']})"
                                                    for v in d["versions"]))
