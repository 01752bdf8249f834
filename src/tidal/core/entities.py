"""The objects that flow through the loop (see DESIGN.md, "The objects that flow through the loop").

They are plain dataclasses holding JSON-friendly values (str, int, float, bool, None, dict, list) and
timezone-aware UTC datetimes, so every store adapter can persist them without knowing what they mean.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from tidal.core.signature import Lineage, Signature


class RunStatus(StrEnum):
    """Where a run stands. ``abandoned``: the process running it stopped (killed, crashed, its machine
    lost) before it finished; found by its missing heartbeat, it is neither a success nor a failure of
    the pipeline."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    ABANDONED = "abandoned"


class StepStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"
    REUSED = "reused"
    FAILED = "failed"
    SKIPPED = "skipped"


class ModelState(StrEnum):
    """The lifecycle of a model version, as its users name it (DESIGN.md, "Model states")::

        prototype ──gate──▶ validated ──▶ deployed ──▶ monitored ──▶ improved
                     └────▶ rejected        │             │      └─▶ retired
                                            └─────────────┴────────▶ retired

    ``prototype``: trained, not yet gated. ``validated`` | ``rejected``: the gate's verdict (a canary or
    shadow challenger that loses its trial on live traffic is rejected too). ``deployed``: serving, as
    champion or as a canary or shadow challenger. ``monitored``: the first monitoring report on its live
    traffic was made. ``improved``: replaced by a version it led to (the retrain it triggered passed the gate
    and was promoted over it). ``retired``: taken out of service otherwise (rolled back, or replaced by a
    version it did not lead to). A retired or improved version may serve again (a rollback restores it):
    it is then ``deployed`` again. Every move is an Event (``model.state``) with its reason.

    ``unknown`` is never stored: it is what a stored state this tidal does not know reads as
    (:meth:`read`), so that a hand-edited or newer row never breaks a read.
    """

    PROTOTYPE = "prototype"
    VALIDATED = "validated"
    REJECTED = "rejected"
    DEPLOYED = "deployed"
    MONITORED = "monitored"
    IMPROVED = "improved"
    RETIRED = "retired"
    UNKNOWN = "unknown"
    #: the name of ``prototype`` before revision 0005 of the store (a stored ``candidate`` reads as prototype)
    CANDIDATE = "prototype"

    @classmethod
    def read(cls, value: str) -> ModelState:
        """The state a stored value names: ``candidate`` (its old name) is prototype; a value this tidal does
        not know is :attr:`UNKNOWN` rather than an error."""
        if value == "candidate":
            return cls.PROTOTYPE
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN


@dataclass
class Run:
    """One execution of the pipeline."""

    id: str
    project: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    spec_digest: str = ""
    trigger: str = "manual"
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    #: when the process running it last said it was alive (None: never, e.g. a run tracked by hand)
    heartbeat_at: datetime | None = None


@dataclass
class StepRecord:
    """One step of a run: what it did, whether it was reused from the cache, and why."""

    run_id: str
    name: str
    status: StepStatus
    cache_key: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    explain: str = ""
    position: int = 0

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class Metric:
    """A metric value at a step (an iteration or epoch; 0 for a single value) and a time."""

    key: str
    value: float
    step: int = 0
    timestamp: datetime | None = None


@dataclass(frozen=True)
class CacheEntry:
    """A reusable step result: the outputs a step produced for a given cache key."""

    key: str
    step: str
    run_id: str
    outputs: dict[str, Any]
    created_at: datetime
    fingerprint: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SnapshotInfo:
    """An immutable, content-addressed table: Parquet bytes in the artifact store under ``digest``."""

    digest: str
    project: str
    source: str
    rows: int
    columns: list[str]
    schema: dict[str, str]
    profile: dict[str, Any]
    created_at: datetime


@dataclass
class ModelVersion:
    """A registered model version.

    ``signature`` says what it takes and answers (:class:`~tidal.core.signature.Signature`); ``profile`` is
    the reference statistics profile of the training data; ``lineage`` where it comes from (run, snapshot
    digests, spec digest, git commit, environment digest: :class:`~tidal.core.signature.Lineage`).
    """

    name: str
    version: int
    state: ModelState
    created_at: datetime
    run_id: str
    artifact_digest: str
    format: str
    task: str
    signature: Signature = field(default_factory=Signature)
    metrics: dict[str, float] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    lineage: Lineage = field(default_factory=Lineage)
    reasons: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The task is stored with the version (a column: the registry filters on it) and read through the
        # signature by the code that serves and scores it: both say the same.
        if self.signature.task is None and self.task:
            self.signature = replace(self.signature, task=self.task)


@dataclass(frozen=True)
class Alias:
    """A movable name (``champion``, ``challenger``) on a model version."""

    name: str
    alias: str
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class Lease:
    """Who holds a named lease (one actor at a time, e.g. the loop controller of a project), and until when."""

    name: str
    owner: str
    until: datetime


@dataclass(frozen=True)
class Event:
    """An explained decision. ``subject`` is what it is about (``model:elec2:3``, ``run:<id>``)."""

    kind: str
    subject: str
    message: str
    time: datetime
    data: dict[str, Any] = field(default_factory=dict)
    id: int | None = None


@dataclass(frozen=True)
class Prediction:
    """One served answer, stored before it is acknowledged.

    ``inputs`` is the row as received (column → value); ``output`` the prediction; ``proba`` the class
    probabilities in the order of the version's ``signature.classes`` (classifiers only).
    ``deployment`` says what answered (``direct``, ``canary``, ``shadow``); ``served`` is False for an
    answer computed but not returned (a shadow challenger). ``label`` arrives later, as feedback.
    """

    id: str
    time: datetime
    model: str
    version: int
    inputs: dict[str, Any]
    output: Any
    proba: list[float] | None = None
    deployment: str = "direct"
    served: bool = True
    request_id: str | None = None
    label: Any = None
    label_time: datetime | None = None


@dataclass(frozen=True)
class Feedback:
    """The true label of a prediction, arriving later."""

    prediction_id: str
    label: Any
    time: datetime


@dataclass(frozen=True)
class Report:
    """A stored monitoring report: drift and performance of one model version over one window.

    ``body`` holds the whole report (per-feature drift results, prediction drift, performance) as JSON.
    """

    id: str
    model: str
    version: int
    created_at: datetime
    window: dict[str, Any]
    drift_share: float
    drifted: bool
    alerts: list[str] = field(default_factory=list)
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UnreadableBatch:
    """Stored predictions that cannot be read back (their stored text is not what tidal writes: a bug of an
    earlier version, or an edit by hand). Reads skip them and say so; ``PredictionLog.check`` finds them all
    and can move them to quarantine, where they are kept whole.

    ``ref`` is how the log names the batch (``batch 17``); ``predictions`` how many it holds by its header.
    """

    ref: str
    model: str
    version: int
    time: datetime
    predictions: int
    reason: str


@dataclass(frozen=True)
class LogCheck:
    """What ``PredictionLog.check`` found: every stored batch read back, the unreadable ones listed."""

    batches: int
    predictions: int
    unreadable: tuple[UnreadableBatch, ...] = ()
    #: how many of the unreadable batches were moved to quarantine by this check
    quarantined: int = 0

    @property
    def ok(self) -> bool:
        return not self.unreadable


@dataclass(frozen=True)
class ArchivedDay:
    """One file of the prediction archive: the predictions of ``model`` made on the UTC ``day``, moved out of
    the log into Parquet in the artifact store (``PredictionLog.archive``). ``labels`` counts the labelled
    rows of the file and ``late_labels`` the labels that arrived after the rows were archived (kept beside
    the file, in the log's database)."""

    day: date
    model: str
    rows: int
    labels: int
    late_labels: int
    digest: str
    path: str
    archived_at: datetime


@dataclass(frozen=True)
class ArchiveOutcome:
    """What ``PredictionLog.archive`` did: the files it wrote or merged into, how many predictions it moved
    out of the log, and how many it left there because they cannot be read (``tidal predictions check``)."""

    before: datetime
    files: tuple[ArchivedDay, ...] = ()
    moved: int = 0
    unreadable_left: int = 0


@dataclass(frozen=True)
class LogDay:
    """What is where for one UTC day and model: predictions (and labels) still in the log, and those in the
    archive (``archived_labels`` includes the late ones), with the archive file's path."""

    day: date
    model: str
    logged: int = 0
    logged_labels: int = 0
    archived: int = 0
    archived_labels: int = 0
    path: str | None = None
