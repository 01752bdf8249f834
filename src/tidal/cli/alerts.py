"""``tidal alerts test``: post a test alert to each ``monitor.alerts`` webhook and say what each answered."""

from __future__ import annotations

import typer
from rich.markup import escape

from tidal.cli.app import JsonOpt, ProjectOpt, app, console, open_workspace
from tidal.core.errors import TidalError

alerts_app = typer.Typer(help="Alert webhooks (monitor.alerts).", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(alerts_app, name="alerts")


@alerts_app.command("test")
def alerts_test(json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Send a test alert to every webhook of monitor.alerts, whatever it is set to receive; exits non-zero when
    one was not delivered. Each outcome is also an event (alert.sent or alert.failed)."""
    from tidal.cli.render import dump_json

    with open_workspace(project) as ws:
        outcomes = ws.test_alerts()
    failed = [e for e in outcomes if e.kind != "alert.sent"]
    if json_out:
        dump_json(console, [{"webhook": e.data.get("webhook"), "to": e.data.get("to"), "sent": e.kind == "alert.sent",
                             "message": e.message} for e in outcomes])
    else:
        for e in outcomes:
            mark = "[green]sent[/]" if e.kind == "alert.sent" else "[red]failed[/]"
            console.print(f"webhook {e.data.get('webhook')}: {mark}: {escape(e.message)}")
    if failed:
        raise TidalError(f"{len(failed)} of {len(outcomes)} alert webhooks did not take the test alert",
                         hint="check each URL (and the environment variables it names) in monitor.alerts")
