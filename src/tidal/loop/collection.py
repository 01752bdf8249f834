"""The loop collects (``data.collect``): ``tidal loop`` polls the source on a schedule, validates what came,
and hands the rows that passed to the retrain policy and to the next retrain.

One collection, on a tick that is due (:func:`due`):

- a ``data.incremental`` source or a stream (``data.source: {redis: ...}``):
  :class:`tidal.loop.incremental.IncrementalCollect` reads the rows past the watermark (a stream: the readings
  its consumer group has not acknowledged; they are acknowledged once the batch is committed) as a batch (the
  same reading as ``tidal run``'s collect step). The batch is checked against the project's stored schema with
  the validate step's checks (:func:`tidal.data.steps.validate`); only a batch that passed is committed (its
  batch joins the collected table and the watermark moves). A refused batch is a ``data.rejected`` event
  naming the problems; it is never merged and never trains, and the watermark stays, so the next collection
  reads the same rows again: once the rows are fixed at the source (or deleted), the batch passes.
- any other source: the whole source is read again (a snapshot) and validated the same way; the rows not in
  the previous collected table (the champion's training table, at the first collection) are the new ones.
  The validated snapshot becomes the source rows of the next retrain.

Then the new rows are compared with the serving champion's reference profile (the drift tests of
``monitor.drift``): the share of drifted features is kept on the collection's event and in the loop state, and
feeds ``retrain.on.drift`` beside the drift of the served predictions. The labelled new rows count for
``retrain.on.new_data``, the ``min_labelled`` guard and a ``cooldown`` of rows, beside labelled predictions.

A source that cannot be read is a ``collect.failed`` event; the loop goes on and tries again when the next
collection is due. Every outcome is counted in the loop state (:class:`tidal.loop.state.LoopState`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import pandas as pd

from tidal.core.entities import Event, ModelVersion
from tidal.core.errors import DataError, SchemaError, SnapshotNotFound, SourceError, TidalError
from tidal.core.text import count
from tidal.loop.context import LoopContext
from tidal.loop.incremental import IncrementalCollect, read_state
from tidal.spec.collect import CollectSpec
from tidal.spec.source import source_label

Outcome = Literal["collected", "no_new_rows", "rejected", "failed"]


@dataclass
class Collection:
    """What one collection did: its outcome, the new rows (and how many carry a label), their drift against
    the champion, and the events that record it."""

    outcome: Outcome
    message: str
    rows: int = 0
    labelled: int = 0
    drift: dict[str, Any] | None = None
    table: str | None = None  # a plain source: the validated snapshot (the retrain's source rows)
    events: list[Event] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "message": self.message, "rows": self.rows, "labelled": self.labelled,
                "drift": self.drift}


def due(cfg: CollectSpec, last: datetime | None, now: datetime) -> bool:
    """Whether a collection is due at ``now``: always at a loop's first tick (``last`` None), then ``every``
    after the last one, or at the next time of ``cron`` after it."""
    if last is None:
        return True
    if cfg.seconds is not None:
        return (now - last).total_seconds() >= cfg.seconds
    from croniter import croniter

    return bool(croniter(str(cfg.cron), last).get_next(datetime) <= now)


def collect(ctx: LoopContext, champion: ModelVersion, *, previous_table: str | None) -> Collection:
    """Collect once (see the module docstring). Never raises for the source's or the data's faults: they are
    the ``failed`` and ``rejected`` outcomes, each with its event. ``previous_table``: a plain source's latest
    collected snapshot (None: the champion's training table is what was seen)."""
    try:
        if collects_batches(ctx):
            return _incremental(ctx, champion)
        return _whole(ctx, champion, previous_table)
    except DataError as exc:
        if isinstance(exc, SourceError):
            return _failed(ctx, str(exc))
        # rows that cannot even be stored (a column of numbers and text): the batch is refused, as by validation
        return _rejected(ctx, None, None, [str(exc)], [], _watermark(ctx))
    except Exception as exc:  # a source that is down, a query that broke: recorded, and the loop goes on
        return _failed(ctx, str(exc) if isinstance(exc, TidalError) else f"{type(exc).__name__}: {exc}")


def _failed(ctx: LoopContext, error: str) -> Collection:
    message = f"collection from {source_label(ctx.spec.data.source)} failed: {error}"
    return Collection("failed", message, events=[_event(ctx, "collect.failed", f"project:{ctx.spec.name}",
                                                        message, {"error": error})])


def _watermark(ctx: LoopContext) -> dict[str, Any]:
    """The watermark a refused batch leaves where it was (for its event), for an incremental source."""
    if ctx.spec.data.incremental is None:
        return {}
    mark = read_state(ctx.store, ctx.spec)["watermark"]
    return {"watermark": None if mark is None else mark["value"]}


def collects_batches(ctx: LoopContext) -> bool:
    """Whether the source is collected in batches past a watermark (:class:`IncrementalCollect`), rather than
    read whole: a ``data.incremental`` source, or a stream (its consumer group's offsets are its watermark)."""
    from tidal.data.stream import is_stream

    return ctx.spec.data.incremental is not None or is_stream(ctx.spec.data)


def _incremental(ctx: LoopContext, champion: ModelVersion) -> Collection:
    spec = ctx.spec
    collector = IncrementalCollect(spec, ctx.root, ctx.store, ctx.artifacts, ctx.clock, {})
    seen: dict[str, Any] = {}

    def check(batch: pd.DataFrame) -> None:  # before the batch is merged: refused by the schema's checks
        seen["rows"], (seen["errors"], seen["warnings"]) = len(batch), _check(ctx, batch)
        if seen["errors"]:
            raise SchemaError(f"the collected batch failed validation: {'; '.join(seen['errors'])}",
                              violations=seen["errors"])

    try:
        inc = collector.collect("loop", check)
    except SchemaError:
        if not seen.get("errors"):
            raise
        return _rejected(ctx, None, seen["rows"], seen["errors"], seen["warnings"], _watermark(ctx))
    if inc.batch is None:
        event = collector.commit()
        return Collection("no_new_rows", inc.message, events=[event] if event else [])
    _, payload = inc.batch
    from tidal.data.snapshot import read_snapshot_bytes

    batch = read_snapshot_bytes(payload)
    drift = _drift(ctx, champion, batch)
    labelled = _labelled(ctx, batch)
    event = collector.commit({"source": "loop", "labelled": labelled, "drift": drift,
                              "warnings": seen.get("warnings") or []})
    return Collection("collected", inc.message, rows=len(batch), labelled=labelled, drift=drift,
                      events=[event] if event else [])


def _whole(ctx: LoopContext, champion: ModelVersion, previous_table: str | None) -> Collection:
    from tidal.data.incremental import unseen_rows
    from tidal.data.snapshot import make_snapshot
    from tidal.data.steps import read_table

    spec = ctx.spec
    frame = read_table(spec.data, base_dir=ctx.root)
    info, payload = make_snapshot(frame, project=spec.name, source=source_label(spec.data.source),
                                  created_at=ctx.clock.now())
    ctx.artifacts.put(payload)
    ctx.store.put_snapshot(info)  # kept, refused or not, so that a person can look at what came
    errors, warnings = _check(ctx, frame)
    if errors:
        return _rejected(ctx, info.digest, len(frame), errors, warnings, {})
    seen = _same_source(ctx, previous_table) or champion.lineage.snapshot
    previous = _snapshot_frame(ctx, seen)
    new = unseen_rows(frame, [] if previous is None else [previous])
    subject = f"snapshot:{info.digest}"
    if new.empty:
        message = f"no new rows in {source_label(spec.data.source)} ({count(len(frame), 'row')}, all seen before)"
        return Collection("no_new_rows", message, table=info.digest, events=[_event(
            ctx, "data.no_new_rows", subject, message, {"source": "loop", "new_rows": 0, "rows": len(frame)})])
    drift = _drift(ctx, champion, new)
    labelled = _labelled(ctx, new)
    message = (f"collected {count(len(new), 'new row')} from {source_label(spec.data.source)} "
               f"({count(len(frame), 'row')} in all)")
    return Collection("collected", message, rows=len(new), labelled=labelled, drift=drift, table=info.digest,
                      events=[_event(ctx, "data.collected", subject, message,
                                     {"source": "loop", "new_rows": len(new), "rows": len(frame),
                                      "labelled": labelled, "drift": drift, "warnings": warnings})])


def _check(ctx: LoopContext, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """The validate step's errors and warnings for ``frame`` against the project's stored schema."""
    from tidal.data.steps import validate

    stored = ctx.store.get_state(f"schema:{ctx.spec.name}")
    found = validate(frame, stored["schema"] if stored else None, ctx.spec.data)
    return ([a.message for a in found if a.severity == "error"],
            [a.message for a in found if a.severity == "warning"])


def _rejected(ctx: LoopContext, digest: str | None, rows: int | None, errors: list[str], warnings: list[str],
              data: dict[str, Any]) -> Collection:
    """A refused batch: ``digest`` its snapshot (None: it could not be stored), ``rows`` its rows (None: not
    known)."""
    problems = count(len(errors), "problem")
    what = "the collected batch" if digest is None else f"collected batch {digest[:12]}"
    size = "" if rows is None else f" ({count(rows, 'row')})"
    message = f"{what}{size} rejected, never merged or trained on ({problems}): {'; '.join(errors)}"
    subject = f"snapshot:{digest}" if digest is not None else f"project:{ctx.spec.name}"
    event = _event(ctx, "data.rejected", subject, message,
                   {"source": "loop", "violations": errors, "warnings": warnings, "rows": rows, **data})
    return Collection("rejected", message, rows=rows or 0, events=[event])


def _drift(ctx: LoopContext, champion: ModelVersion, frame: pd.DataFrame) -> dict[str, Any] | None:
    """The drift of ``frame``'s features against ``champion``'s reference profile (``monitor.drift``'s tests
    and share), or None when it cannot be judged (no reference, image columns, no rows)."""
    from tidal.monitor.drift import detect_drift

    features = champion.profile.get("features") or {}
    reference = features.get("columns") or {}
    cfg = ctx.spec.monitor.drift
    columns = [c for c in (cfg.columns or champion.signature.names) if c in reference]
    if frame.empty or not columns or any((reference[c] or {}).get("kind") == "image" for c in columns):
        return None
    try:
        found = detect_drift(features, frame, columns=columns, method=cfg.method, threshold=cfg.threshold,
                             share=cfg.share, plots=False,
                             baseline=(champion.profile.get("holdout_drift") or {}).get("columns"))
    except (TidalError, ValueError, TypeError) as exc:  # the collection stands; its drift is unknown, and why
        return {"share": None, "rows": len(frame), "version": champion.version, "error": str(exc)}
    return {"share": round(found.share, 4), "rows": len(frame), "version": champion.version,
            "drifted": found.drifted_columns, "counted": found.counted}


def _labelled(ctx: LoopContext, frame: pd.DataFrame) -> int:
    target = ctx.spec.data.target
    return int(frame[target].notna().sum()) if target in frame.columns else 0


def _snapshot_frame(ctx: LoopContext, digest: str | None) -> pd.DataFrame | None:
    from tidal.data.snapshot import read_snapshot_bytes

    if digest is None or not ctx.artifacts.exists(digest):
        return None
    return read_snapshot_bytes(ctx.artifacts.get(digest))


def collected_source(ctx: LoopContext, table: str | None) -> pd.DataFrame:
    """The source rows a retrain trains on when the loop collects: for a ``data.incremental`` source, every
    committed batch merged and cut to ``data.window`` (only rows that passed validation); for another source,
    the latest validated collection (``table``), or the source read afresh before the first one."""
    from tidal.data.incremental import merge_batches, window_table
    from tidal.data.steps import read_table

    data = ctx.spec.data
    if collects_batches(ctx) and data.incremental is None:  # a stream: its committed batches, labels joined
        return _stream_table(ctx)
    if collects_batches(ctx) and data.incremental is not None:
        batches = [f for b in read_state(ctx.store, ctx.spec)["batches"]
                   if (f := _snapshot_frame(ctx, b["snapshot"])) is not None]
        if not batches:
            return read_table(data, base_dir=ctx.root)
        table = merge_batches(batches, data.incremental.column, data.incremental.key)
        return window_table(table, data, ctx.clock.now())
    frame = _snapshot_frame(ctx, _same_source(ctx, table))
    return frame if frame is not None else read_table(data, base_dir=ctx.root)


def _stream_table(ctx: LoopContext) -> pd.DataFrame:
    """A stream's training table for a retrain: the committed batches of readings, their labels joined, cut to
    ``data.window`` (the same table ``tidal run`` builds), or the stream read whole before any collection."""
    from tidal.data.steps import read_table
    from tidal.data.stream import build_table
    from tidal.loop.stream import read_stream_state

    state = read_stream_state(ctx.store, ctx.spec)
    readings = [f for b in state["batches"] if (f := _snapshot_frame(ctx, b["snapshot"])) is not None]
    if not readings:
        return read_table(ctx.spec.data, base_dir=ctx.root)
    labels = [f for b in state["label_batches"] if (f := _snapshot_frame(ctx, b["snapshot"])) is not None]
    table, _ = build_table(ctx.spec.data, readings, labels, ctx.clock.now())
    return table


def _same_source(ctx: LoopContext, digest: str | None) -> str | None:
    """``digest`` when it is a snapshot of the spec's source as it is now; None for one of a source the spec
    no longer names (``data.source`` was changed since that collection)."""
    if digest is None:
        return None
    try:
        info = ctx.store.get_snapshot(digest)
    except SnapshotNotFound:
        return None
    return digest if info.source == source_label(ctx.spec.data.source) else None


def _event(ctx: LoopContext, kind: str, subject: str, message: str, data: dict[str, Any]) -> Event:
    return ctx.store.append_event(Event(kind=kind, subject=subject, message=message, time=ctx.clock.now(),
                                        data=data))


__all__ = ["Collection", "collect", "collected_source", "collects_batches", "due"]
