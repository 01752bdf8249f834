"""``tidal tokens create/ls/revoke`` and ``tidal ui``: the management API and who may use it. Each parses,
calls :class:`tidal.Workspace` and renders; nothing else."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tidal.cli.app import JsonOpt, ProjectOpt, app, console, err, open_workspace
from tidal.core.errors import TidalError

tokens_app = typer.Typer(help="API tokens of the management API (tidal ui).", no_args_is_help=True,
                         rich_markup_mode=None)
app.add_typer(tokens_app, name="tokens")


def _lifetime(text: str | None) -> timedelta | None:
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([hd])\s*", text)
    if not m or float(m.group(1)) <= 0:
        raise TidalError(f"--expires {text!r} is not a lifetime", hint="use e.g. 12h or 30d")
    return timedelta(**{"hours" if m.group(2) == "h" else "days": float(m.group(1))})


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option(help="Who or what uses the token (shown in events as its actor).")],
    role: Annotated[str, typer.Option(help="viewer (read), operator (also promote, rollback, loop control), "
                                           "admin (also tokens), or none (serving scopes only).")] = "viewer",
    scope: Annotated[list[str] | None, typer.Option(
        help="A serving scope, for deploy.auth: predict or feedback (repeat for both).")] = None,
    expires: Annotated[str | None, typer.Option(help="Lifetime: 12h, 30d (default: none).")] = None,
    json_out: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Create a token and print it once: it is stored hashed and cannot be shown again."""
    from tidal.cli.render import dump_json

    with open_workspace(project) as ws:
        token, text = ws.tokens.create(name, role=role, scopes=scope or [], expires_in=_lifetime(expires))
    if json_out:
        dump_json(console, {**token.to_dict(), "token": text})
        return
    console.print(text, highlight=False, soft_wrap=True)
    err.print(f"token [bold]{escape(token.name)}[/] ({token.id}, role {token.role}"
              + (f", scopes {', '.join(token.scopes)}" if token.scopes else "")
              + "): shown this once, keep it secret", highlight=False)


@tokens_app.command("ls")
def tokens_ls(json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """List the tokens (never their secrets), revoked ones included."""
    from tidal.cli.render import dump_json, when

    with open_workspace(project) as ws:
        tokens = ws.tokens.list()
    if json_out:
        dump_json(console, [t.to_dict() for t in tokens])
        return
    table = Table(title="tokens", title_justify="left")
    for col in ("id", "name", "role", "scopes", "created", "by", "expires", "revoked"):
        table.add_column(col, overflow="fold")
    for t in tokens:
        table.add_row(t.id, t.name, t.role, ", ".join(t.scopes), when(t.created_at), t.created_by,
                      when(t.expires_at), when(t.revoked_at))
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(ref: Annotated[str, typer.Argument(help="The token's id (or its name, when unique).")],
                  json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Revoke a token: every server refuses it from the next request on."""
    from tidal.cli.render import dump_json

    with open_workspace(project) as ws:
        token = ws.tokens.revoke(ref)
    if json_out:
        dump_json(console, token.to_dict())
        return
    console.print(f"revoked token {escape(token.name)} ({token.id})")


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Address to listen on (loopback unless told otherwise).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port.")] = 8800,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="Every request acts as an admin named anonymous (only on a loopback address).")] = False,
    project: ProjectOpt = None,
) -> None:
    """Serve the dashboard (at /) and the management API (/api/v1, docs at /api/docs). Refuses to start while
    no token exists: create an admin one first with `tidal tokens create --role admin --name NAME`."""
    from tidal.ui import run_ui

    with open_workspace(project) as ws:
        root = ws.settings.root
    run_ui(root, host=host, port=port, no_auth=no_auth)


__all__ = ["tokens_app"]
