"""The JSON shapes of tidal's objects, as ``tidal ... --json`` prints them and ``/api/v1`` answers them.

One function per shape, used by both faces, so that the CLI, the API and the dashboard give the same
answer to the same question (``tests/ui/test_api_parity.py`` compares them). :func:`dumps` is the one JSON
encoding both faces use: a value JSON has no type for (a datetime in a run's fields) is written as ``str``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from tidal.core.entities import Event, Metric, ModelVersion, Report, Run, SnapshotInfo

if TYPE_CHECKING:
    from tidal.workspace import Workspace
    from tidal.workspace.catalog import RunDetail


def dumps(data: Any) -> str:
    """``data`` as JSON text, datetimes (and anything else JSON has no type for) written with ``str``."""
    return json.dumps(data, default=str)


def plain(data: Any) -> Any:
    """``data`` with JSON's types only: what a client reading :func:`dumps` gets back."""
    return json.loads(dumps(data))


def curves(metrics: Iterable[Metric]) -> dict[str, list[float]]:
    """Every ``curve.*`` metric as its values in step order (what ``--json`` gives)."""
    points: dict[str, dict[int, float]] = {}
    for m in metrics:
        if m.key.startswith("curve."):
            points.setdefault(m.key, {})[m.step] = m.value
    return {key: [steps[s] for s in sorted(steps)] for key, steps in sorted(points.items())}


def run_summary(r: Run) -> dict[str, Any]:
    """A run in a list (``tidal runs ls``)."""
    return {"id": r.id, "status": r.status.value, "started_at": r.started_at, "ended_at": r.ended_at,
            "trigger": r.trigger, "error": r.error, "model": r.info.get("model")}


def run_detail(d: RunDetail, log: str | None) -> dict[str, Any]:
    """One run with its steps, params, last metrics, curves and log (``tidal runs show``)."""
    last: dict[str, Any] = {}
    for m in d.metrics:
        last[m.key] = m.value
    return {"id": d.run.id, "status": d.run.status.value, "trigger": d.run.trigger,
            "started_at": d.run.started_at, "ended_at": d.run.ended_at, "error": d.run.error,
            "spec_digest": d.run.spec_digest, "info": d.run.info, "params": d.params,
            "tags": d.tags, "metrics": last, "curves": curves(d.metrics), "log": log,
            "steps": [{"name": s.name, "status": s.status.value, "explain": s.explain,
                       "seconds": s.duration_s, "outputs": s.outputs} for s in d.steps]}


def model_to_dict(mv: ModelVersion, aliases: list[str]) -> dict[str, Any]:
    """A model version (``tidal models ls``)."""
    return {"name": mv.name, "version": mv.version, "state": mv.state.value, "aliases": aliases,
            **({"stored_state": mv.info["stored_state"]} if "stored_state" in mv.info else {}),
            "created_at": mv.created_at.isoformat(), "run_id": mv.run_id, "artifact": mv.artifact_digest,
            "format": mv.format, "task": mv.task, "signature": mv.signature.to_dict(), "metrics": mv.metrics,
            "lineage": mv.lineage.to_dict(), "reasons": mv.reasons}


def models_list(ws: Workspace, name: str | None = None) -> list[dict[str, Any]]:
    """Every registered version (of ``name``), with its aliases (``tidal models ls``)."""
    aliases: dict[tuple[str, int], list[str]] = {}
    for a in ws.models.aliases(name):
        aliases.setdefault((a.name, a.version), []).append(a.alias)
    # without profiles (model_to_dict shows none): decoding them was most of the time of a long list
    return [model_to_dict(mv, aliases.get((mv.name, mv.version), []))
            for mv in ws.models.list(name, profiles=False)]


def model_detail(ws: Workspace, ref: str) -> dict[str, Any]:
    """One version with its state history, why it serves (or not) and its events (``tidal models show``)."""
    mv = ws.models.get(ref)
    return {**model_to_dict(mv, ws.models.aliases_of(mv)),
            "history": [t.to_dict() for t in ws.models.states(mv)],
            "serving": ws.models.serving(mv).to_dict(),
            "events": [event_to_dict(e) for e in ws.models.history(mv)]}


def snapshot_to_dict(s: SnapshotInfo) -> dict[str, Any]:
    """A snapshot in a list (``tidal snapshots ls --json``): what it holds, from where, when."""
    stream = (s.profile or {}).get("stream")
    return {"digest": s.digest, "source": s.source, "rows": s.rows, "columns": len(s.columns),
            "created_at": s.created_at.isoformat(), **({"stream": stream} if stream else {})}


def snapshot_detail(ws: Workspace, ref: str) -> dict[str, Any]:
    """One snapshot (``tidal snapshots show --json``): its schema, each column's profile (statistics,
    histogram, top categories; the raw sample left out), what was found in it and the versions trained on it."""
    s = ws.snapshots.get(ref)
    columns = (s.profile or {}).get("columns") or {}
    return {**snapshot_to_dict(s), "column_names": s.columns, "schema": s.schema,
            "profile": {name: {k: v for k, v in (columns.get(name) or {}).items() if k != "sample"}
                        for name in s.columns},
            "events": [event_to_dict(e) for e in ws.snapshots.events(s)],
            "versions": [{"name": mv.name, "version": mv.version, "state": mv.state.value}
                         for mv in ws.snapshots.versions(s)]}


def event_to_dict(e: Event) -> dict[str, Any]:
    return {"id": e.id, "time": e.time.isoformat(), "kind": e.kind, "subject": e.subject,
            "message": e.message, "data": e.data}


def report_to_dict(r: Report, *, body: bool = True) -> dict[str, Any]:
    out = {"id": r.id, "model": r.model, "version": r.version, "created_at": r.created_at.isoformat(),
           "window": r.window, "drift_share": r.drift_share, "drifted": r.drifted, "alerts": r.alerts}
    # the body's own "alerts" are structured (kind, columns, message); the top level keeps the messages
    return {**r.body, **out, "alert_details": r.body.get("alerts", [])} if body else out


def tick_to_dict(t: Any) -> dict[str, Any]:
    """One controller tick (``tidal loop --json``)."""
    d = t.decision
    lease = t.blocked_by
    return {"time": t.time.isoformat(), "champion": t.champion, "acted": t.acted, "note": t.note,
            "blocked_by": None if lease is None else {"owner": lease.owner, "until": lease.until.isoformat()},
            "drift_share": t.drift_share, "metric": t.metric, "value": t.value, "failed": getattr(t, "failed", None),
            "collected": getattr(t, "collected", None),
            "decision": None if d is None else {"retrain": d.retrain, "trigger": d.trigger, "reasons": d.reasons,
                                                "blocked_by": d.blocked_by},
            "events": [event_to_dict(e) for e in t.events]}


__all__ = ["curves", "dumps", "event_to_dict", "model_detail", "model_to_dict", "models_list", "plain",
           "report_to_dict", "run_detail", "run_summary", "snapshot_detail", "snapshot_to_dict", "tick_to_dict"]
