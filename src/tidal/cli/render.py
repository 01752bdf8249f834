"""Rendering for people: rich tables and live step progress. Scripts use ``--json`` instead."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tidal.core.entities import Event, ModelVersion, Run, StepRecord, StepStatus

STATUS_STYLE = {
    StepStatus.DONE: ("✓", "green"), StepStatus.REUSED: ("↺", "cyan"), StepStatus.FAILED: ("✗", "red"),
    StepStatus.SKIPPED: ("-", "dim"), StepStatus.RUNNING: ("…", "yellow"),
}


def when(t: datetime | None) -> str:
    return "" if t is None else t.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def dump_json(console: Console, data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


class StepPrinter:
    """Prints one line per finished step while a run goes on (the listener of ``Workspace.run``)."""

    def __init__(self, console: Console, *, explain: bool) -> None:
        self.console = console
        self.explain = explain
        self._status: Any = None

    def __call__(self, step: StepRecord) -> None:
        if step.status == StepStatus.RUNNING:
            if self._status is None:
                self._status = self.console.status(f"[yellow]{step.name}[/] running…")
                self._status.start()
            else:
                self._status.update(f"[yellow]{step.name}[/] running…")
            return
        if self._status is not None:
            self._status.stop()
            self._status = None
        mark, style = STATUS_STYLE[step.status]
        secs = f"{step.duration_s:6.2f}s" if step.duration_s is not None else "       "
        line = f"[{style}]{mark} {step.name:<9}[/] [{style}]{step.status.value:<7}[/] {secs}"
        if self.explain or step.status in (StepStatus.FAILED, StepStatus.DONE):
            line += f"  [dim]{escape(step.explain)}[/]"
        self.console.print(line)

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()


def runs_table(runs: list[Run]) -> Table:
    table = Table(title="runs", title_justify="left")
    for col in ("id", "started", "status", "trigger", "model", "seconds"):
        table.add_column(col)
    for r in runs:
        model = r.info.get("model") or {}
        label = f"{model.get('name')}:{model.get('version')} ({model.get('state')})" if model else ""
        secs = f"{(r.ended_at - r.started_at).total_seconds():.1f}" if r.ended_at else ""
        style = {"succeeded": "green", "failed": "red"}.get(r.status.value, "yellow")
        table.add_row(r.id[:12], when(r.started_at), f"[{style}]{r.status.value}[/]", r.trigger, label, secs)
    return table


def steps_table(steps: list[StepRecord]) -> Table:
    table = Table(title="steps", title_justify="left")
    for col in ("step", "status", "seconds", "why"):
        table.add_column(col, overflow="fold")
    for s in steps:
        mark, style = STATUS_STYLE[s.status]
        table.add_row(s.name, Text(f"{mark} {s.status.value}", style=style),
                      f"{s.duration_s:.2f}" if s.duration_s is not None else "", Text(s.explain))
    return table


def models_table(versions: list[ModelVersion], aliases: dict[tuple[str, int], list[str]]) -> Table:
    table = Table(title="models", title_justify="left")
    for col in ("model", "version", "state", "aliases", "created", "metrics", "run"):
        table.add_column(col)
    for mv in versions:
        style = {"validated": "green", "rejected": "red", "deployed": "bold green"}.get(mv.state.value, "")
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in list(mv.metrics.items())[:3])
        table.add_row(Text(mv.name), str(mv.version), Text(mv.state.value, style=style),
                      ", ".join(aliases.get((mv.name, mv.version), [])), when(mv.created_at), metrics,
                      mv.run_id[:12])
    return table


def events_table(events: list[Event]) -> Table:
    table = Table(title="events", title_justify="left")
    for col in ("#", "time", "kind", "subject", "what"):
        table.add_column(col, overflow="fold")
    for e in events:
        style = "red" if e.kind.endswith(("failed", "rejected")) else "green" if "passed" in e.kind else ""
        table.add_row(str(e.id), when(e.time), Text(e.kind, style=style), Text(e.subject), Text(e.message))
    return table


def model_to_dict(mv: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    return {"name": mv.name, "version": mv.version, "state": mv.state.value, "aliases": aliases,
            "created_at": mv.created_at.isoformat(), "run_id": mv.run_id, "artifact": mv.artifact_digest,
            "format": mv.format, "task": mv.task, "signature": mv.signature, "metrics": mv.metrics,
            "lineage": mv.lineage, "reasons": mv.reasons}


def event_to_dict(e: Event) -> dict[str, Any]:
    return {"id": e.id, "time": e.time.isoformat(), "kind": e.kind, "subject": e.subject,
            "message": e.message, "data": e.data}
