"""What the loop controller remembers between ticks, typed.

The state is stored as a JSON document under the controller's key in the metadata store (``put_state``),
so a restarted controller carries on where the last one stopped. In memory every time is an aware
``datetime`` and every pending piece of work is a dataclass; :meth:`LoopState.to_dict` writes the same
document as earlier versions of tidal (ISO strings, plain dicts), and :meth:`LoopState.from_dict` reads
documents from any version: keys it does not know are ignored, missing ones take their defaults, and a
naive time (none is written, but a hand-edited document may hold one) is read as UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tidal.core.errors import StorageError

TrialKind = Literal["canary", "shadow"]


def _time(value: Any) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _maybe_time(value: Any) -> datetime | None:
    return None if value is None else _time(value)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def state_key(name: str) -> str:
    """The metadata store's key of the loop state of the project ``name``."""
    return f"loop:{name}"


@dataclass
class Retraining:
    """A retrain that started and has not finished: a controller killed during it retries it."""

    trigger: str
    reasons: list[str]
    started: datetime
    labelled_total: int  # labelled predictions when it started: the cooldown counts from there
    collected_total: int = 0  # labelled rows the loop had collected when it started (data.collect)

    def to_dict(self) -> dict[str, Any]:
        return {"trigger": self.trigger, "reasons": list(self.reasons), "started": _iso(self.started),
                "labelled_total": self.labelled_total, "collected_total": self.collected_total}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Retraining:
        return cls(trigger=str(data.get("trigger") or "manual"), reasons=[str(r) for r in data.get("reasons") or []],
                   started=_time(data["started"]), labelled_total=int(data.get("labelled_total", 0)),
                   collected_total=int(data.get("collected_total", 0) or 0))


@dataclass
class Watch:
    """A promotion under rollback watch: ``version`` replaced ``previous`` at ``since``."""

    version: int
    previous: int
    metric: str
    since: datetime

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "previous": self.previous, "metric": self.metric,
                "since": _iso(self.since)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Watch:
        return cls(version=int(data["version"]), previous=int(data["previous"]), metric=str(data["metric"]),
                   since=_time(data["since"]))


@dataclass
class Trial:
    """A canary or shadow challenger ``version`` being judged against ``champion`` since ``since``."""

    version: int
    kind: TrialKind
    since: datetime
    champion: int

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "kind": self.kind, "since": _iso(self.since), "champion": self.champion}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Trial:
        kind = data.get("kind")
        if kind not in ("canary", "shadow"):
            raise ValueError(f"a trial's kind is canary or shadow, not {kind!r}")
        return cls(version=int(data["version"]), kind=kind, since=_time(data["since"]),
                   champion=int(data.get("champion", 0)))


@dataclass
class Failure:
    """The loop's latest retrain, when it failed: when, what triggered it and the error's message. Kept
    until a retrain succeeds, so that the monitor report can say the loop is not retraining, and why."""

    time: datetime
    trigger: str
    error: str

    def to_dict(self) -> dict[str, Any]:
        return {"time": _iso(self.time), "trigger": self.trigger, "error": self.error}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Failure:
        return cls(time=_time(data["time"]), trigger=str(data.get("trigger") or "manual"),
                   error=str(data.get("error") or ""))


@dataclass
class LoopState:
    """What the controller remembers between ticks (see the module docstring for how it is stored)."""

    last_retrain: datetime | None = None
    last_retrain_labelled: int = 0           # labelled_total at the last retrain
    retrain_times: list[datetime] = field(default_factory=list)
    schedule_checked: datetime | None = None  # when the cron schedule was last evaluated
    in_progress: Retraining | None = None
    watch: Watch | None = None
    trial: Trial | None = None
    last_note: str | None = None             # the last suppression recorded (not repeated every tick)
    ticks: int = 0
    failures: int = 0                         # retrains that failed, over the controller's life
    last_failure: Failure | None = None       # the latest retrain, if it failed (None once one succeeds)
    # data.collect (tidal.loop.collection): when the source was last polled, what came of it, and the counts
    collect_checked: datetime | None = None
    collections: int = 0                      # collections that stored new rows
    collect_rejected: int = 0                 # batches refused by validation (never merged, never trained)
    collect_failures: int = 0                 # collections that could not read the source
    collected_total: int = 0                  # labelled rows collected, over the loop's life (new_data counts them)
    last_retrain_collected: int = 0           # collected_total when the last retrain started
    collected_table: str | None = None        # a plain source's latest validated snapshot (the retrain's source rows)
    #: the latest batch's drift against the champion's reference: {"share", "rows", "version", "drifted"}
    collected_drift: dict[str, Any] | None = None
    last_collection: dict[str, Any] | None = None  # the latest collection's outcome, rows and message
    #: set by ``pause`` (who, when, why: JSON values): while set, a tick observes nothing and acts on nothing
    paused: dict[str, Any] | None = None
    #: set by "retrain now" (who, when, why): the next tick retrains with the trigger ``manual``
    retrain_requested: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The stored document: JSON types only, times as ISO strings."""
        return {"last_retrain": _iso(self.last_retrain), "last_retrain_labelled": self.last_retrain_labelled,
                "retrain_times": [t.isoformat() for t in self.retrain_times],
                "schedule_checked": _iso(self.schedule_checked),
                "in_progress": None if self.in_progress is None else self.in_progress.to_dict(),
                "watch": None if self.watch is None else self.watch.to_dict(),
                "trial": None if self.trial is None else self.trial.to_dict(),
                "last_note": self.last_note, "ticks": self.ticks, "failures": self.failures,
                "last_failure": None if self.last_failure is None else self.last_failure.to_dict(),
                "collect_checked": _iso(self.collect_checked), "collections": self.collections,
                "collect_rejected": self.collect_rejected, "collect_failures": self.collect_failures,
                "collected_total": self.collected_total, "last_retrain_collected": self.last_retrain_collected,
                "collected_table": self.collected_table, "collected_drift": self.collected_drift,
                "last_collection": self.last_collection,
                "paused": self.paused, "retrain_requested": self.retrain_requested}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LoopState:
        """Read a stored document from this or an earlier version of tidal. A pending piece of work that
        cannot be read (a hand-edited document) raises StorageError naming it, rather than being dropped:
        dropping a trial or a watch would silently end it."""
        d = data or {}

        def part(key: str, kind: type[Retraining] | type[Watch] | type[Trial] | type[Failure]) -> Any:
            value = d.get(key)
            if value is None:
                return None
            try:
                return kind.from_dict(value)
            except (KeyError, TypeError, ValueError) as exc:
                raise StorageError(f"the loop's stored state has an unreadable {key!r} ({value!r}): {exc}",
                                   hint="fix or remove that entry of the stored loop state") from exc

        return cls(last_retrain=_maybe_time(d.get("last_retrain")),
                   last_retrain_labelled=int(d.get("last_retrain_labelled", 0) or 0),
                   retrain_times=[_time(t) for t in d.get("retrain_times") or []],
                   schedule_checked=_maybe_time(d.get("schedule_checked")),
                   in_progress=part("in_progress", Retraining), watch=part("watch", Watch),
                   trial=part("trial", Trial), last_note=d.get("last_note"), ticks=int(d.get("ticks", 0) or 0),
                   failures=int(d.get("failures", 0) or 0), last_failure=part("last_failure", Failure),
                   collect_checked=_maybe_time(d.get("collect_checked")),
                   collections=int(d.get("collections", 0) or 0),
                   collect_rejected=int(d.get("collect_rejected", 0) or 0),
                   collect_failures=int(d.get("collect_failures", 0) or 0),
                   collected_total=int(d.get("collected_total", 0) or 0),
                   last_retrain_collected=int(d.get("last_retrain_collected", 0) or 0),
                   collected_table=d.get("collected_table"), collected_drift=d.get("collected_drift"),
                   last_collection=d.get("last_collection"),
                   paused=d.get("paused") or None, retrain_requested=d.get("retrain_requested") or None)


__all__ = ["Failure", "LoopState", "Retraining", "Trial", "TrialKind", "Watch", "state_key"]
