"""Entities ↔ stored rows, shared by every metadata store adapter.

Both the SQL and the in-memory adapter keep *encoded rows* (plain dicts keyed by column name: JSON
fields as text, datetimes as aware UTC) and rebuild entities from them with the same functions. That is
what makes the in-memory test adapter behave exactly like the database: a value that would not survive
a round trip through SQL (a tuple, a non-JSON object, a naive datetime) is treated the same way in both.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from tidal.core.entities import (
    Alias,
    CacheEntry,
    Event,
    Metric,
    ModelState,
    ModelVersion,
    Report,
    Run,
    RunStatus,
    SnapshotInfo,
    StepRecord,
    StepStatus,
)
from tidal.core.errors import AliasMoved, ModelNotFound, ReportNotFound, RunNotFound, SnapshotNotFound, StorageError
from tidal.core.signature import Lineage, Signature

Row = Mapping[Any, Any]  # a dict, or a SQLAlchemy RowMapping (keyed by column name)

#: The metadata store URLs tidal understands, for error messages.
SUPPORTED_METADATA_URLS = (
    "sqlite:///path/to/tidal.db, postgresql+psycopg://user:password@host:5432/dbname, "
    "memory:// (in-process, for tests)"
)

#: Shortest prefix of a run id that ``get_run`` accepts.
MIN_RUN_PREFIX = 4


def utc(value: datetime) -> datetime:
    """``value`` as an aware UTC datetime; a naive datetime is taken to be UTC already."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value)


def dumps(value: Any, what: str) -> str:
    """``value`` as JSON text; ``what`` names the field in the error (``run.info``)."""
    try:
        # ensure_ascii: the text is pure ASCII, so no backend can choke on it (e.g. a lone surrogate).
        return json.dumps(value)
    except (TypeError, ValueError) as exc:
        raise StorageError(
            f"{what} cannot be stored: {exc}",
            hint="store only JSON values (str, int, float, bool, None, lists, dicts with string keys); "
            "convert datetimes with .isoformat() and numpy numbers with float() or int()",
        ) from exc


def loads(text: str) -> Any:
    return json.loads(text)


def metric_value(value: float) -> float | None:
    """NaN is stored as NULL (SQLite cannot store NaN), and read back as NaN."""
    v = float(value)
    return None if math.isnan(v) else v


# -- runs, steps ------------------------------------------------------------------------------------


def encode_run(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "project": run.project,
        "status": RunStatus(run.status).value,
        "started_at": utc(run.started_at),
        "ended_at": utc_or_none(run.ended_at),
        "spec_digest": run.spec_digest,
        "trigger": run.trigger,
        "error": run.error,
        "info": dumps(run.info, "run.info"),
        "heartbeat_at": utc_or_none(run.heartbeat_at),
    }


def decode_run(r: Row) -> Run:
    return Run(
        id=r["id"], project=r["project"], status=RunStatus(r["status"]), started_at=r["started_at"],
        ended_at=r["ended_at"], spec_digest=r["spec_digest"], trigger=r["trigger"], error=r["error"],
        info=loads(r["info"]), heartbeat_at=r["heartbeat_at"],
    )


def encode_step(step: StepRecord) -> dict[str, Any]:
    return {
        "run_id": step.run_id,
        "name": step.name,
        "status": StepStatus(step.status).value,
        "cache_key": step.cache_key,
        "started_at": utc_or_none(step.started_at),
        "ended_at": utc_or_none(step.ended_at),
        "inputs": dumps(step.inputs, "step.inputs"),
        "outputs": dumps(step.outputs, "step.outputs"),
        "explain": step.explain,
        "position": int(step.position),
    }


def decode_step(r: Row) -> StepRecord:
    return StepRecord(
        run_id=r["run_id"], name=r["name"], status=StepStatus(r["status"]), cache_key=r["cache_key"],
        started_at=r["started_at"], ended_at=r["ended_at"], inputs=loads(r["inputs"]),
        outputs=loads(r["outputs"]), explain=r["explain"], position=r["position"],
    )


def encode_metric(run_id: str, m: Metric) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "key": m.key,
        "value": metric_value(m.value),
        "step": int(m.step),
        "timestamp": None if m.timestamp is None else utc(m.timestamp),
    }


def decode_metric(r: Row) -> Metric:
    value = r["value"]
    return Metric(key=r["key"], value=math.nan if value is None else value, step=r["step"],
                  timestamp=r["timestamp"])


# -- snapshots, cache -------------------------------------------------------------------------------


def encode_snapshot(s: SnapshotInfo) -> dict[str, Any]:
    return {
        "digest": s.digest,
        "project": s.project,
        "source": s.source,
        "rows": int(s.rows),
        "columns": dumps(list(s.columns), "snapshot.columns"),
        "schema": dumps(s.schema, "snapshot.schema"),
        "profile": dumps(s.profile, "snapshot.profile"),
        "created_at": utc(s.created_at),
    }


def decode_snapshot(r: Row) -> SnapshotInfo:
    return SnapshotInfo(
        digest=r["digest"], project=r["project"], source=r["source"], rows=r["rows"],
        columns=loads(r["columns"]), schema=loads(r["schema"]), profile=loads(r["profile"]),
        created_at=r["created_at"],
    )


def encode_cache_entry(e: CacheEntry) -> dict[str, Any]:
    return {
        "key": e.key,
        "step": e.step,
        "run_id": e.run_id,
        "outputs": dumps(e.outputs, "cache_entry.outputs"),
        "created_at": utc(e.created_at),
        "fingerprint": dumps(e.fingerprint, "cache_entry.fingerprint"),
    }


def decode_cache_entry(r: Row) -> CacheEntry:
    return CacheEntry(
        key=r["key"], step=r["step"], run_id=r["run_id"], outputs=loads(r["outputs"]),
        created_at=r["created_at"], fingerprint=loads(r["fingerprint"]),
    )


# -- registry ---------------------------------------------------------------------------------------


def encode_model_version(mv: ModelVersion, version: int) -> dict[str, Any]:
    return {
        "name": mv.name,
        "version": version,
        "state": ModelState(mv.state).value,
        "created_at": utc(mv.created_at),
        "run_id": mv.run_id,
        "artifact_digest": mv.artifact_digest,
        "format": mv.format,
        "task": mv.task,
        "signature": dumps(mv.signature.to_dict(), "model_version.signature"),
        "metrics": dumps(mv.metrics, "model_version.metrics"),
        "profile": dumps(mv.profile, "model_version.profile"),
        "lineage": dumps(mv.lineage.to_dict(), "model_version.lineage"),
        "reasons": dumps(list(mv.reasons), "model_version.reasons"),
        "info": dumps(mv.info, "model_version.info"),
    }


def decode_model_version(r: Row, *, profile: bool = True) -> ModelVersion:
    """A version from its row; ``profile=False``: its profile left empty (the row need not hold the column)."""
    # A state this tidal does not know (a row edited by hand) reads as ``unknown``, never as an error; what
    # was stored is kept in ``info["stored_state"]`` so it can be shown (the row itself is not rewritten).
    state, info = ModelState.read(r["state"]), loads(r["info"])
    if state is ModelState.UNKNOWN and r["state"] != ModelState.UNKNOWN.value:
        info = {**info, "stored_state": r["state"]}
    return ModelVersion(
        name=r["name"], version=r["version"], state=state, created_at=r["created_at"],
        run_id=r["run_id"], artifact_digest=r["artifact_digest"], format=r["format"], task=r["task"],
        signature=Signature.from_dict(loads(r["signature"]), task=r["task"]), metrics=loads(r["metrics"]),
        profile=loads(r["profile"]) if profile else {}, lineage=Lineage.from_dict(loads(r["lineage"])),
        reasons=loads(r["reasons"]),
        info=info,
    )


def model_version_changes(
    current: Row, *, state: ModelState | None, reasons: Any, metrics: Any, info: Any,
) -> dict[str, Any]:
    """The columns ``update_model_version`` rewrites: ``metrics`` and ``info`` merge into what is stored."""
    changes: dict[str, Any] = {}
    if state is not None:
        changes["state"] = ModelState(state).value
    if reasons is not None:
        changes["reasons"] = dumps(list(reasons), "model_version.reasons")
    if metrics is not None:
        changes["metrics"] = dumps({**loads(current["metrics"]), **metrics}, "model_version.metrics")
    if info is not None:
        changes["info"] = dumps({**loads(current["info"]), **info}, "model_version.info")
    return changes


def decode_alias(r: Row) -> Alias:
    return Alias(name=r["name"], alias=r["alias"], version=r["version"], updated_at=r["updated_at"])


# -- events -----------------------------------------------------------------------------------------


def encode_event(e: Event) -> dict[str, Any]:
    return {
        "kind": e.kind,
        "subject": e.subject,
        "message": e.message,
        "time": utc(e.time),
        "data": dumps(e.data, "event.data"),
    }


def decode_event(r: Row) -> Event:
    return Event(kind=r["kind"], subject=r["subject"], message=r["message"], time=r["time"],
                 data=loads(r["data"]), id=r["id"])


def subject_prefix(subject: str) -> str | None:
    """``"model:x:*"`` → ``"model:x:"``; an exact subject (no trailing ``*``) → None."""
    return subject[:-1] if subject.endswith("*") else None


# -- errors with one wording in every adapter ---------------------------------------------------------


def no_run(run_id: str) -> RunNotFound:
    return RunNotFound(f"no run {run_id!r}")


def ambiguous_run(prefix: str, matches: list[str]) -> RunNotFound:
    shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
    return RunNotFound(f"run id prefix {prefix!r} is ambiguous: it matches {shown}; give more characters")


def short_run_prefix(prefix: str) -> RunNotFound:
    return RunNotFound(
        f"no run {prefix!r} (a run id prefix needs at least {MIN_RUN_PREFIX} characters to match)"
    )


def check_expected_alias(name: str, alias: str, current: int | None, expected: int | None) -> None:
    """Raise AliasMoved when ``expected`` is given and ``alias`` does not point there now (0: nowhere)."""
    if expected is None or (current or 0) == expected:
        return
    now = f"points at {current}" if current is not None else "points nowhere"
    was = f"at {expected}" if expected else "nowhere"
    raise AliasMoved(f"the {alias} alias of {name} moved meanwhile: it {now}, not {was}", current=current,
                     hint="compare with the version it points at now, then move it again")


def no_model_version(name: str, version: int) -> ModelNotFound:
    return ModelNotFound(f"no model version {name!r} v{version}")


def no_snapshot(digest: str) -> SnapshotNotFound:
    return SnapshotNotFound(f"no snapshot {digest!r}")


def duplicate_run(run_id: str) -> StorageError:
    return StorageError(f"run {run_id!r} already exists", hint="give each run a new id")


def param_conflict(run_id: str, key: str, old: str, new: str) -> StorageError:
    return StorageError(
        f"param {key!r} of run {run_id!r} is already {old!r}; refusing to change it to {new!r}",
        hint="params are fixed once logged (they say how the run was made): log the new value as a "
        "tag or a metric, or start a new run",
    )


# -- monitoring reports -----------------------------------------------------------------------------


def encode_report(r: Report) -> dict[str, Any]:
    return {
        "id": r.id,
        "model": r.model,
        "version": int(r.version),
        "created_at": utc(r.created_at),
        "window": dumps(r.window, "report.window"),
        "drift_share": metric_value(r.drift_share),
        "drifted": bool(r.drifted),
        "alerts": dumps(list(r.alerts), "report.alerts"),
        "body": dumps(r.body, "report.body"),
    }


def decode_report(r: Row) -> Report:
    share = r["drift_share"]
    return Report(
        id=r["id"], model=r["model"], version=r["version"], created_at=r["created_at"],
        window=loads(r["window"]), drift_share=math.nan if share is None else share,
        drifted=bool(r["drifted"]), alerts=loads(r["alerts"]), body=loads(r["body"]),
    )


def no_report(report_id: str) -> ReportNotFound:
    return ReportNotFound(f"no report {report_id!r}")


def short_report_prefix(prefix: str) -> ReportNotFound:
    return ReportNotFound(
        f"no report {prefix!r} (a report id prefix needs at least {MIN_RUN_PREFIX} characters to match)"
    )


def ambiguous_report(prefix: str, matches: list[str]) -> ReportNotFound:
    shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
    return ReportNotFound(f"report id prefix {prefix!r} is ambiguous: it matches {shown}; give more characters")
