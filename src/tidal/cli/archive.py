"""``tidal predictions archive`` and ``tidal predictions ls``: retention, and what is where (the prediction log
or its archive in the artifact store). Each parses, calls :class:`tidal.Workspace` and renders."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from tidal.cli.app import JsonOpt, ProjectOpt, console, open_workspace, predictions_app
from tidal.core.durations import DURATION_HINT, parse_duration
from tidal.core.errors import TidalError
from tidal.core.text import count


def _cutoff(before: str | None, older_than: str | None) -> datetime | None:
    """The time ``--before`` or ``--older-than`` names (None: neither, the spec's retention decides)."""
    if before is not None and older_than is not None:
        raise TidalError("give --before or --older-than, not both",
                         hint="--before 2026-09-01 archives what was predicted before that day (UTC); "
                              "--older-than 90d what is older than 90 days")
    if older_than is not None:
        try:
            return datetime.now(UTC) - parse_duration(older_than)
        except ValueError as exc:
            raise TidalError(f"--older-than: {exc}", hint=f"write {DURATION_HINT}") from None
    if before is not None:
        try:
            when = datetime.fromisoformat(before)
        except ValueError:
            raise TidalError(f"--before {before!r} is not a date or time",
                             hint="use ISO 8601: 2026-09-01 (midnight UTC) or 2026-09-01T12:00+02:00") from None
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


@predictions_app.command("archive")
def predictions_archive(
    before: Annotated[str | None, typer.Option(help="Archive predictions made before this time (ISO 8601; UTC "
                                                    "unless it names a zone).")] = None,
    older_than: Annotated[str | None, typer.Option(help="Archive predictions older than this: 90d, 12h, 2w.")]
    = None,
    json_out: JsonOpt = False,
    project: ProjectOpt = None,
) -> None:
    """Move old predictions out of the log into Parquet files in the artifact store, one per UTC day (default
    cutoff: monitor.retention ago). Labels that arrive later for them are still accepted; retraining reads
    them back. Running it again is harmless: a day archived twice holds both runs' predictions."""
    from tidal.cli.render import dump_json

    cutoff = _cutoff(before, older_than)
    with open_workspace(project) as ws:
        outcome = ws.archive_predictions(cutoff)
    if json_out:
        dump_json(console, {"before": outcome.before.isoformat(), "moved": outcome.moved,
                            "unreadable_left": outcome.unreadable_left,
                            "files": [{"day": f.day.isoformat(), "model": f.model, "rows": f.rows,
                                       "labels": f.labels + f.late_labels, "digest": f.digest, "path": f.path}
                                      for f in outcome.files]})
        return
    when = outcome.before.isoformat(timespec="seconds")
    if not outcome.moved:
        console.print(f"nothing to archive: no prediction in the log was made before {when}")
    else:
        console.print(f"archived {count(outcome.moved, 'prediction')} made before {when} into "
                      f"{count(len(outcome.files), 'file')}:")
        for f in outcome.files:
            console.print(f"  {f.day.isoformat()} {escape(f.model)}: {count(f.rows, 'row')} in {escape(f.path)}")
    if outcome.unreadable_left:
        console.print(f"[yellow]{count(outcome.unreadable_left, 'unreadable prediction')} left in the log[/]: "
                      "run [bold]tidal predictions check[/]")


@predictions_app.command("ls")
def predictions_ls(json_out: JsonOpt = False, project: ProjectOpt = None) -> None:
    """Per UTC day: predictions and labels in the log, and in the archive (with its file)."""
    from tidal.cli.render import dump_json

    with open_workspace(project) as ws:
        days = ws.prediction_days()
    if json_out:
        dump_json(console, [{"day": d.day.isoformat(), "model": d.model, "logged": d.logged,
                             "logged_labels": d.logged_labels, "archived": d.archived,
                             "archived_labels": d.archived_labels, "path": d.path} for d in days])
        return
    if not days:
        console.print("no predictions, in the log or archived")
        return
    table = Table(title="predictions by day (UTC)", title_justify="left")
    for name in ("day", "model", "in log", "labels", "archived", "labels ", "archive file"):
        table.add_column(name, justify="right" if name.strip() in ("in log", "labels", "archived") else "left",
                         overflow="fold")
    for d in days:
        table.add_row(d.day.isoformat(), escape(d.model), f"{d.logged:,}", f"{d.logged_labels:,}",
                      f"{d.archived:,}", f"{d.archived_labels:,}", escape(d.path or ""))
    console.print(table)
    logged, archived = sum(d.logged for d in days), sum(d.archived for d in days)
    console.print(f"{count(logged, 'prediction')} in the log, {count(archived, 'prediction')} archived")


__all__ = ["predictions_archive", "predictions_ls"]
