"""Rendering for people: rich tables and live step progress. Scripts use ``--json`` instead."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from tidal.core.entities import Event, ModelVersion, Report, Run, StepRecord, StepStatus
from tidal.core.text import count
from tidal.spec.metrics import LOWER_IS_BETTER
from tidal.workspace.shapes import dumps

if TYPE_CHECKING:
    from tidal.registry import Transition

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
    console.print_json(dumps(data))


class StepPrinter:
    """Prints one line per finished step while a run goes on (the listener of ``Workspace.run``)."""

    def __init__(self, console: Console, *, explain: bool, live: Console | None = None) -> None:
        self.console = console
        self.explain = explain
        #: where the spinner and the epoch bar are drawn: a console on a copy of the terminal's descriptor
        #: keeps drawing while a fit captures descriptors 1 and 2 into the run's log (tidal.train.capture)
        self.live = live or console
        self._status: Any = None
        self._running = ""

    def __call__(self, step: StepRecord) -> None:
        if step.status == StepStatus.RUNNING:
            self._running = step.name
            if self._status is None:
                self._status = self.live.status(f"[yellow]{step.name}[/] running…")
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

    def progress(self, what: str, done: int, total: int) -> None:
        """A progress bar under the running step's spinner (a network's epochs: ``tidal.core.progress``)."""
        if self._status is None:
            return
        from rich.progress_bar import ProgressBar

        line = Table.grid(padding=(0, 1))
        line.add_row(Text(self._running, style="yellow"), Text(f"{what} {done}/{total}"),
                     ProgressBar(total=float(total), completed=float(done), width=30))
        self._status.update(line)

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
        if r.trigger == "search" and "trial" in r.info:  # a trial of a search: which one, of which run, how it ended
            label = f"trial {r.info['trial']} of {str(r.info.get('parent_run', ''))[:12]} ({r.info.get('state', '')})"
        secs = f"{(r.ended_at - r.started_at).total_seconds():.1f}" if r.ended_at else ""
        style = {"succeeded": "green", "failed": "red", "abandoned": "magenta"}.get(r.status.value, "yellow")
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


#: how each model state is shown
STATE_STYLE = {"prototype": "dim", "validated": "green", "rejected": "red", "deployed": "bold green",
               "monitored": "bold green", "improved": "cyan", "retired": "dim", "unknown": "yellow"}


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def states_table(transitions: list[Transition]) -> Table:
    """A version's state history: each move with its time, from, to and why."""
    table = Table(title="state history", title_justify="left")
    for col in ("time", "from", "to", "why"):
        table.add_column(col, overflow="fold")
    for t in transitions:
        table.add_row(when(t.time), state_text(t.from_state) if t.from_state else Text("—", style="dim"),
                      state_text(t.to), Text(t.reason))
    return table


def models_table(versions: list[ModelVersion], aliases: dict[tuple[str, int], list[str]]) -> Table:
    table = Table(title="models", title_justify="left")
    for col in ("model", "version", "state", "aliases", "created", "metrics", "run"):
        table.add_column(col)
    for mv in versions:
        metrics = "  ".join(f"{k} {v:.4f}" for k, v in list(mv.metrics.items())[:3])
        table.add_row(Text(mv.name), str(mv.version), state_text(mv.state.value),
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








def reports_table(reports: list[Report]) -> Table:
    table = Table(title="reports", title_justify="left")
    for col in ("id", "created", "model", "rows", "drift share", "drifted", "alerts"):
        table.add_column(col, overflow="fold")
    for r in reports:
        table.add_row(r.id[:12], when(r.created_at), f"{r.model}:{r.version}", str(r.window.get("rows", "")),
                      f"{r.drift_share:.2f}", Text("yes", style="red") if r.drifted else Text("no", style="green"),
                      Text("; ".join(r.alerts)))
    return table




def collected_part(c: dict[str, Any]) -> str:
    """A tick's collection (``data.collect``), for its line: what came, and its drift."""
    outcome = c.get("outcome")
    if outcome == "collected":
        drift = c.get("drift") or {}
        share = f", drift {drift['share']:.2f}" if drift.get("share") is not None else ""
        return f"[green]collected {c.get('rows', 0)} rows[/] ({c.get('labelled', 0)} labelled{share})"
    if outcome == "no_new_rows":
        return "collected nothing new"
    return f"[bold red]collection {escape(str(outcome))}[/] (see the event below)"


class TickPrinter:
    """One line per controller tick, then one line per event it recorded."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def __call__(self, t: Any) -> None:
        parts = [when(t.time), f"champion v{t.champion}" if t.champion else "no champion"]
        if t.drift_share is not None:
            parts.append(f"drift {t.drift_share:.2f}")
        if t.value is not None:
            parts.append(f"{t.metric} {t.value:.3f}")
        if (c := getattr(t, "collected", None)) is not None:
            parts.append(collected_part(c))
        d = t.decision
        if d is not None and d.retrain:
            parts.append(f"[bold]retrain[/] ({d.trigger})")
        elif d is not None and d.blocked_by:
            parts.append(f"[yellow]{escape(d.trigger or '')} held back[/]: {escape(d.blocked_by)}")
        if t.note:
            parts.append(f"[dim]{escape(t.note)}[/]")
        if getattr(t, "failed", None):
            parts.append("[bold red]retrain failed[/] (see the event below; the champion stays)")
        self.console.print(" · ".join(parts))
        for e in t.events:
            style = "red" if e.kind.endswith("failed") else "cyan"
            self.console.print(f"   [{style}]{escape(e.kind)}[/] {escape(e.message)}")


def backtest_table(result: Any) -> Table:
    """The four strategies' scores and what each did; failed retrains, when any, in the caption."""
    from tidal.loop.backtest_estimate import estimate_line
    from tidal.loop.outcomes import describe, failure_line

    table = Table(title=f"backtest: {count(result.rows, 'row')} after {count(result.initial_rows, 'initial row')} "
                        f"(prequential {result.metric})", title_justify="left")
    for col in ("strategy", result.metric, "what it did"):
        table.add_column(col)
    loop = result.loop
    best = min if result.metric in LOWER_IS_BETTER else max  # rmse, mae: the smallest error is the best
    rows = [
        ("loop", loop, describe(loop)),
        ("static", result.static, "the first champion, never retrained"),
        ("periodic", result.periodic, f"retrained every {count(result.periodic['every'], 'row')} "
                                      f"({count(result.periodic['retrains'], 'retrain')})"),
        ("last_label", result.last_label, "predicts the most recent label seen"),
    ]
    if result.online is not None:
        rows.append(("online", result.online, f"{result.online['model']}, learning each label as it arrives "
                                              f"({result.online['seconds']:.1f} s)"))
    top = best(data["score"] for _, data, _ in rows)
    for name, data, what in rows:
        style = "bold green" if data["score"] == top else ""
        table.add_row(name, Text(f"{data['score']:.4f}", style=style), what)
    caption = Text()
    failed = failure_line(loop)
    if failed is not None:  # a failed retrain is never a quiet one: it is the table's caption, in red
        caption.append(f"loop: {failed}", style="red")
    estimated = estimate_line(getattr(result, "estimate", None))
    if estimated is not None:
        caption.append(("\n" if caption else "") + estimated)
    if caption:
        table.caption = caption
        table.caption_justify = "left"
    return table


def report_table(r: Report) -> Table:
    """The drift table of a report, one row per feature, with its performance line as the caption."""
    drift = r.body.get("drift") or {}
    table = Table(title=f"{r.model}:{r.version} · {count(r.window.get('rows', 0), 'prediction')} · drift share "
                        f"{r.drift_share:.2f} ({'drifted' if r.drifted else 'no dataset drift'})",
                  title_justify="left")
    for col in ("feature", "test", "statistic", "threshold", "drifted", "nulls now"):
        table.add_column(col)
    for c in drift.get("columns", []):
        stat = c.get("statistic")
        table.add_row(Text(c["column"]), c.get("test") or c.get("status", ""),
                      "" if stat is None else f"{stat:.4f}" + (" (p)" if c.get("is_pvalue") else ""),
                      "" if c.get("threshold") is None else f"{c['threshold']:.4g}",
                      Text("yes", style="red") if c.get("drifted") else Text("no", style="green"),
                      "" if c.get("null_share_current") is None else f"{c['null_share_current']:.1%}")
    perf = r.body.get("performance") or {}
    if perf.get("value") is not None:
        ci = perf.get("ci")
        table.caption = (f"{perf['metric']} {perf['value']:.4f}"
                         + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "")
                         + f" on {count(perf['labelled'], 'labelled prediction')}; validation "
                         + ("n/a" if perf.get("validation") is None else f"{perf['validation']:.4f}"))
    elif perf:
        table.caption = f"performance: {perf.get('why') or perf.get('status')}"
    return table
