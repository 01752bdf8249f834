"""Retention: the loop moves predictions older than ``monitor.retention`` out of the prediction log.

At most once an hour (of the loop's clock) a tick asks the log to archive the project's predictions made
before ``now - monitor.retention`` (:meth:`~tidal.core.ports.PredictionLog.archive`: Parquet files in the
artifact store, one per UTC day and model). When there is nothing that old, that is one indexed query. What
was moved is recorded as a ``predictions.archived`` event; a failure (the artifact store unreachable) as a
``predictions.archive_failed`` event, and nothing is deleted from the log: the next check tries again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from tidal.core.entities import ArchiveOutcome, Event
from tidal.core.errors import TidalError
from tidal.core.text import count
from tidal.loop.context import LoopContext

#: How often the loop checks for predictions to archive (archives are per day: an hour keeps the log
#: within its retention plus an hour).
CHECK_EVERY = timedelta(hours=1)


def state_key(name: str) -> str:
    return f"retention:{name}"


def archive_before(ctx: LoopContext, before: datetime, now: datetime, *,
                   record: Callable[[Event], Event] | None = None) -> ArchiveOutcome:
    """Archive the project's predictions made before ``before``; a ``predictions.archived`` event (stored by
    ``record``, default the metadata store's ``append_event``) says what moved. Raises what the log raises."""
    name = ctx.spec.name
    outcome = ctx.predictions.archive(before, model=name)
    if outcome.moved:
        days = sorted({f.day.isoformat() for f in outcome.files})
        (record or ctx.store.append_event)(Event(
            kind="predictions.archived", subject=f"project:{name}", time=now,
            message=f"{count(outcome.moved, 'prediction')} of {name} made before "
                    f"{outcome.before.isoformat(timespec='seconds')} archived to "
                    f"{count(len(outcome.files), 'file')} ({days[0]} to {days[-1]})",
            data={"before": outcome.before.isoformat(), "moved": outcome.moved,
                  "unreadable_left": outcome.unreadable_left,
                  "files": [{"day": f.day.isoformat(), "model": f.model, "rows": f.rows, "digest": f.digest}
                            for f in outcome.files]}))
    return outcome


def apply_retention(ctx: LoopContext, now: datetime, *, force: bool = False,
                    record: Callable[[Event], Event] | None = None) -> ArchiveOutcome | None:
    """Archive the project's predictions older than ``monitor.retention`` if the last check is an hour old
    (``force``: now). None when there is no retention, it was checked within the hour, or it failed (a
    ``predictions.archive_failed`` event says why). ``record`` stores an event (default: the metadata store's
    ``append_event``)."""
    period = ctx.spec.monitor.retention_period
    if period is None:
        return None
    key = state_key(ctx.spec.name)
    last = ctx.store.get_state(key)
    if not force and isinstance(last, str) and now - datetime.fromisoformat(last) < CHECK_EVERY:
        return None
    before = now - period
    try:
        outcome = archive_before(ctx, before, now, record=record)
    except TidalError as exc:
        (record or ctx.store.append_event)(Event(
            kind="predictions.archive_failed", subject=f"project:{ctx.spec.name}", time=now,
            message=f"archiving the predictions of {ctx.spec.name} made before "
                    f"{before.isoformat(timespec='seconds')} (monitor.retention {ctx.spec.monitor.retention}) "
                    f"failed; they stay in the log: {exc}",
            data={"before": before.isoformat(), "error": str(exc)}))
        outcome = None
    ctx.store.put_state(key, now.isoformat())
    return outcome


__all__ = ["CHECK_EVERY", "apply_retention", "archive_before", "state_key"]
