"""The ``tidal`` command's Typer app, its consoles and the options every command shares.

The commands live in :mod:`tidal.cli.project` (the pipeline and the registry) and
:mod:`tidal.cli.operate` (serving, monitoring, the loop); :mod:`tidal.cli.main` runs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from tidal.cli.exits import help_epilog

# rich_markup_mode=None: click's plain help. Typer's rich help prints a type after every flag ("--json
# <bool>"), as if it took a value; the plain help shows a value only where an option takes one.
app = typer.Typer(help="tidal: the whole machine-learning lifecycle as one closed loop.",
                  epilog=help_epilog(), no_args_is_help=True, pretty_exceptions_enable=False,
                  add_completion=False, rich_markup_mode=None)
runs_app = typer.Typer(help="Runs of the pipeline.", no_args_is_help=True, rich_markup_mode=None)
models_app = typer.Typer(help="The model registry.", no_args_is_help=True, rich_markup_mode=None)
reports_app = typer.Typer(help="Monitoring reports.", no_args_is_help=True, rich_markup_mode=None)
predictions_app = typer.Typer(help="The prediction log.", no_args_is_help=True, rich_markup_mode=None)
for _sub, _name in ((runs_app, "runs"), (models_app, "models"), (reports_app, "reports"),
                    (predictions_app, "predictions")):
    app.add_typer(_sub, name=_name)

console = Console()
err = Console(stderr=True)
#: Set by the root callback and by :func:`tidal.cli.main.main` before a command runs.
state: dict[str, Any] = {"project": Path("."), "debug": False}

ProjectOpt = Annotated[Path | None, typer.Option("--project", "-C", help="The project folder (holds tidal.yaml).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts (an error too: {\"error\", \"hint\"}).")]


@app.callback()
def _root(
    project: Annotated[
        Path, typer.Option("--project", "-C", help="The project folder (holds tidal.yaml).")
    ] = Path("."),
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the traceback of an error (also accepted after the command).")] = False,
) -> None:
    state["project"] = project
    state["debug"] = state["debug"] or debug


def open_workspace(project: Path | None = None) -> Any:
    """The workspace of ``-C`` (or of the command's own ``--project``)."""
    from tidal.workspace import Workspace

    return Workspace.open(project or state["project"])


def project_flag(directory: Path) -> str:
    """How the next command names ``directory``: nothing for the current folder, ``-C DIR`` otherwise."""
    return "" if directory in (Path("."), Path("")) else f"-C {directory} "
