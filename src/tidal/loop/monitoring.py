"""One monitoring pass: the champion's window of predictions → a stored Report, and an Event on alert.

Shared by ``Workspace.monitor`` (``tidal monitor``) and the controller's ticks, so both behave the same.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from tidal.core.entities import Event, ModelVersion, Report
from tidal.evaluate.metrics import task_metrics
from tidal.loop.context import LoopContext
from tidal.monitor import build_report
from tidal.registry import subject


def monitored_metrics(ctx: LoopContext, mv: ModelVersion) -> list[str]:
    """The metrics a report computes: the spec's (and its gates'), else the task's defaults."""
    return list(ctx.spec.validate.metric_names()) or list(task_metrics(mv.task))


def monitor_once(
    ctx: LoopContext, mv: ModelVersion, *, window: int | None = None, since: datetime | None = None,
    all_versions: bool = False, record: bool = True,
) -> Report:
    """Build (and store, when ``record``) a report over ``mv``'s most recent predictions."""
    cfg = ctx.spec.monitor
    last = None if since is not None and window is None else (window or cfg.window)
    preds = ctx.predictions.window(model=mv.name, version=None if all_versions else mv.version, since=since,
                                   last=last)
    report = build_report(mv, preds, cfg, metrics=monitored_metrics(ctx, mv), report_id=uuid.uuid4().hex,
                          now=ctx.clock.now())
    if record:
        ctx.store.save_report(report)
        if report.alerts:
            ctx.store.append_event(Event(
                kind="monitor.alert", subject=subject(mv.name, mv.version), time=ctx.clock.now(),
                message=f"{mv.name}:{mv.version}: " + "; ".join(report.alerts),
                data={"report": report.id, "alerts": report.alerts, "drift_share": report.drift_share,
                      "drifted": report.drifted, "window": report.window}))
    return report
