"""One monitoring pass: the champion's window of predictions → a stored Report, and an Event on alert.

Shared by ``Workspace.monitor`` (``tidal monitor``) and the controller's ticks, so both behave the same.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime
from typing import Any

from tidal.core.entities import Event, ModelState, ModelVersion, Report, UnreadableBatch
from tidal.core.errors import TidalError
from tidal.core.text import count
from tidal.loop.context import LoopContext
from tidal.loop.state import state_key
from tidal.monitor import build_report
from tidal.monitor.embedding import Embedding, embedder_of, fit_embedding
from tidal.registry import subject
from tidal.spec.metrics import metrics_for


def monitored_metrics(ctx: LoopContext, mv: ModelVersion) -> list[str]:
    """The metrics a report computes: the spec's (and its gates'), else the task's defaults."""
    return list(ctx.spec.validate.metric_names()) or list(metrics_for(mv.task))


def monitor_once(
    ctx: LoopContext, mv: ModelVersion, *, window: int | None = None, since: datetime | None = None,
    all_versions: bool = False, record: bool = True,
) -> Report:
    """Build (and store, when ``record``) a report over ``mv``'s most recent predictions.

    A window with no predictions has nothing to judge: its report is built (``window["rows"]`` is 0; the
    controller reads it as "no drift seen") but never stored and never alerted on.
    """
    cfg = ctx.spec.monitor
    last = None if since is not None and window is None else (window or cfg.window)
    preds = ctx.predictions.window(model=mv.name, version=None if all_versions else mv.version, since=since,
                                   last=last)
    embedding, why_not = model_embedding(ctx, mv) if preds else (None, None)
    report = build_report(mv, preds, cfg, metrics=monitored_metrics(ctx, mv), report_id=uuid.uuid4().hex,
                          now=ctx.clock.now(), embedding=embedding, stored=_stored(ctx))
    if why_not is not None:
        report.body["embedding"] = why_not
    skipped = note_unreadable(ctx, mv.name) if record else ctx.predictions.skipped()
    if skipped:
        report.window["unreadable"] = {"batches": len(skipped), "predictions": sum(b.predictions for b in skipped)}
    failed, collecting = last_failure(ctx, mv.name), collection_problem(ctx, mv.name)
    if failed is not None or collecting is not None:
        # a loop that cannot retrain, or cannot collect, is part of the model's health: the report says so
        report.body["loop"] = {**({"last_retrain_failed": failed} if failed else {}),
                               **({"last_collection_failed": collecting} if collecting else {})}
    if record and preds:
        own = sum(1 for p in preds if p.version == mv.version)
        first = bool(own) and mv.state is ModelState.DEPLOYED
        # the first report on a deployed version's own live traffic makes it ``monitored``: stored together
        with ctx.store.atomic() if first else contextlib.nullcontext():
            ctx.store.save_report(report)
            if report.alerts:
                ctx.store.append_event(Event(
                    kind="monitor.alert", subject=subject(mv.name, mv.version), time=ctx.clock.now(),
                    message=f"{mv.name}:{mv.version}: " + "; ".join(report.alerts),
                    data={"report": report.id, "alerts": report.alerts,
                          "kinds": [a.get("kind") for a in report.body.get("alerts") or []],
                          "drift_share": report.drift_share,
                          "drifted": report.drifted, "window": report.window}))
            if first:
                ctx.registry.transition(mv.name, mv.version, ModelState.MONITORED, only_from=[ModelState.DEPLOYED],
                                        reason=f"first monitoring report since it was deployed ({report.id[:8]}), on "
                                               f"{count(own, 'live prediction')}: {_summary(report)}",
                                        data={"report": report.id})
    return report


def model_embedding(ctx: LoopContext, mv: ModelVersion) -> tuple[Embedding | None, dict[str, Any] | None]:
    """The embedding reference of ``mv``'s image column (:mod:`tidal.monitor.embedding`), made once per version:
    its training images (the ``train`` snapshot) through the model the registry loads. ``(None, None)`` for a
    model on tables or one without an embedding; ``(None, {"column", "skipped"})`` when it could not be made
    (the report says why; the image statistics are judged as before)."""
    columns = (mv.profile.get("features") or {}).get("columns") or {}
    column = next((c for c in mv.signature.names if (columns.get(c) or {}).get("kind") == "image"), None)
    if column is None:
        return None, None

    def make() -> tuple[Embedding | None, dict[str, Any] | None]:
        from tidal.data.snapshot import read_snapshot_bytes

        try:
            embed = embedder_of(ctx.registry.load(mv), column)
            if embed is None:
                return None, None
            digest = mv.lineage.train
            if not digest or not ctx.artifacts.exists(digest):
                return None, {"column": column, "skipped": "the training snapshot is not in the artifact store"}
            frame = read_snapshot_bytes(ctx.artifacts.get(digest))
            if column not in frame.columns:
                return None, {"column": column, "skipped": f"the training snapshot has no column {column!r}"}
            made = fit_embedding(column, frame[column].tolist(), embed)
        except (TidalError, ImportError, OSError, ValueError, RuntimeError) as exc:
            return None, {"column": column, "skipped": f"{type(exc).__name__}: {exc}"}
        if made is None:
            return None, {"column": column, "skipped": "too few readable training images"}
        return made, None

    found: tuple[Embedding | None, dict[str, Any] | None] = ctx.embeddings.get((mv.name, mv.version), make)
    return found


def _stored(ctx: LoopContext) -> Any:
    """Reads a served image back from the artifact store by its digest (None when it is not there)."""
    def stored(digest: str) -> bytes | None:
        try:
            return ctx.artifacts.get(digest) if ctx.artifacts.exists(digest) else None
        except (TidalError, OSError):
            return None

    return stored


def _summary(report: Report) -> str:
    """What a report found, in a few words: the drift share, the performance if labelled rows were scored,
    and its alerts."""
    perf = report.body.get("performance") or {}
    metrics = {k: v for k, v in (perf.get("metrics") or {}).items() if isinstance(v, int | float)}
    parts = [f"drift share {report.drift_share:.2f}"]
    if metrics:
        parts.append(", ".join(f"{k} {v:.3f}" for k, v in list(metrics.items())[:2])
                     + f" on {count(int(perf.get('labelled', 0) or 0), 'labelled row')}")
    parts.append(f"{count(len(report.alerts), 'alert')}")
    return "; ".join(parts)


def last_failure(ctx: LoopContext, name: str) -> dict[str, Any] | None:
    """The loop's latest retrain of ``name`` if it failed (``time``, ``trigger``, ``error``, and
    ``failures``: how many have failed in all); None if it succeeded or none ran."""
    stored = ctx.store.get_state(state_key(name)) or {}
    failed = stored.get("last_failure")
    if not isinstance(failed, dict):
        return None
    return {"time": failed.get("time"), "trigger": failed.get("trigger"), "error": failed.get("error"),
            "failures": int(stored.get("failures", 0) or 0)}


def collection_problem(ctx: LoopContext, name: str) -> dict[str, Any] | None:
    """The loop's latest collection (``data.collect``) of ``name`` if it failed or its batch was rejected
    (``time``, ``outcome``, ``message``); None if it went well or none ran."""
    stored = ctx.store.get_state(state_key(name)) or {}
    last = stored.get("last_collection")
    if not isinstance(last, dict) or last.get("outcome") not in ("failed", "rejected"):
        return None
    return {"time": last.get("time"), "outcome": last.get("outcome"), "message": last.get("message"),
            "rejected": int(stored.get("collect_rejected", 0) or 0),
            "failures": int(stored.get("collect_failures", 0) or 0)}


def note_unreadable(ctx: LoopContext, name: str) -> list[UnreadableBatch]:
    """The unreadable batches of model ``name`` that reads of this workspace's log skipped; each is recorded
    once (a ``predictions.unreadable`` event, whichever process met it first) with the way to repair it."""
    skipped = [b for b in ctx.predictions.skipped() if b.model == name]
    if not skipped:
        return []
    events = ctx.store.list_events(subject=subject(name), kind="predictions.unreadable", limit=10_000)
    reported = {ref for e in events for ref in e.data.get("refs", [])}
    new = [b for b in skipped if b.ref not in reported]
    if new:
        lost = sum(b.predictions for b in new)
        shown = "; ".join(f"{b.ref} ({count(b.predictions, 'prediction')} of {b.model}:{b.version}): {b.reason}"
                          for b in new[:5]) + (f"; and {len(new) - 5} more" if len(new) > 5 else "")
        ctx.store.append_event(Event(
            kind="predictions.unreadable", subject=subject(name), time=ctx.clock.now(),
            message=f"{count(len(new), 'stored prediction batch', 'stored prediction batches')} "
                    f"({count(lost, 'prediction')}) "
                    f"cannot be read and {'were' if len(new) > 1 else 'was'} skipped: {shown} — run "
                    "`tidal predictions check --quarantine` to move them aside",
            data={"refs": [b.ref for b in new], "predictions": lost,
                  "reasons": {b.ref: b.reason for b in new}}))
    return skipped
