"""The prediction archive, shared by both prediction logs: predictions moved out of the log into Parquet.

``PredictionLog.archive(before)`` (retention: ``monitor.retention`` in tidal.yaml) moves the predictions
made before a cutoff into one Parquet file per UTC day and model, stored in the artifact store by content
digest, and records each file in an index (day, model, digest, path, rows, labels, the smallest and largest
id it holds). The file holds the log's own encoded rows (:data:`~tidal.storage.predictions._codec.COLUMNS`:
id, time, model, version, deployment, served, request id, then inputs, output, probabilities and label as
JSON text, label time), sorted by time then id, so that ``pandas.read_parquet`` reads it and tidal reads it
back to the very predictions it was given.

Order of the writes, and what a crash leaves: the file is written first (``ArtifactStore.put`` is atomic),
then the index entry and the deletion of the predictions commit together. A crash between the two leaves
every prediction in the log, and a file nothing points at; the next archive of that day writes the same
rows again (the same bytes: the same digest, so the put is a no-op). A day archived again (predictions
for it arrived after it was archived) is *merged*: the earlier file's rows and the new ones go into a new
file, and the index moves to it only if it still points at the earlier one, so two archivers at once never
lose each other's rows. The earlier file stays in the artifact store (content-addressed stores keep what
they were given); nothing points at it any more.

Late labels. A label that arrives for an archived prediction is kept in the log's database
(``prediction_late_labels``: id, day, model, label, label time), not written into the file: the id is
looked up in the index (the files whose id range holds it), confirmed in the file's id column, then
stored. Reads of the archive (``window(archived=True)``, ``get``) put it on the prediction; it counts as
the prediction's label for the duplicate rule of ``add_feedback`` too.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tidal.core.entities import ArchivedDay, Prediction
from tidal.core.errors import StorageError
from tidal.core.ports import ArtifactStore
from tidal.storage._codec import utc
from tidal.storage.predictions import _codec as pc

Row = dict[str, Any]
#: id → (label JSON, label time): the labels that arrived after their predictions were archived.
LateLabels = Mapping[str, tuple[str, datetime]]

#: Written into each file's metadata, so that a reader knows what it holds.
FORMAT = "tidal.prediction-archive/1"

_TIME = pa.timestamp("us", tz="UTC")
SCHEMA = pa.schema([
    ("id", pa.string()), ("time", _TIME), ("model", pa.string()), ("version", pa.int64()),
    ("deployment", pa.string()), ("served", pa.bool_()), ("request_id", pa.string()),
    ("inputs", pa.string()), ("output", pa.string()), ("proba", pa.string()),
    ("label", pa.string()), ("label_time", _TIME),
], metadata={b"tidal.format": FORMAT.encode()})

#: Archive files whose rows a log keeps in memory (they never change: a digest names fixed bytes).
_CACHED_FILES = 4


def day_of(t: datetime) -> date:
    """The UTC day of ``t``."""
    return utc(t).date()


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def day_span(day: date, before: datetime) -> tuple[datetime, datetime]:
    """The part of ``day`` that lies before ``before``: [start, end)."""
    start = day_start(day)
    return start, min(start + timedelta(days=1), utc(before))


def require(artifacts: ArtifactStore | None, what: str) -> ArtifactStore:
    if artifacts is None:
        raise StorageError(f"{what} needs the artifact store, and this prediction log was opened without one",
                           hint="use the workspace's log (tidal predictions ..., Workspace.predictions), or "
                                "open_prediction_log(url, artifacts=open_artifact_store(...))")
    return artifacts


def encode(predictions: Iterable[Prediction]) -> list[Row]:
    """The archive rows of ``predictions`` (the log's encoded rows)."""
    return [pc.encode_prediction(p) for p in predictions]


def merge(old: Sequence[Row], new: Sequence[Row]) -> list[Row]:
    """``old`` and ``new`` rows in one list by id (a row of ``new`` replaces the ``old`` row with its id: it
    comes from the log, which is newer), sorted by time then id."""
    by_id = {r["id"]: r for r in old}
    by_id.update((r["id"], r) for r in new)
    return sorted(by_id.values(), key=lambda r: (r["time"], r["id"]))


def to_parquet(rows: Sequence[Row]) -> bytes:
    """The Parquet bytes of ``rows`` (the same rows give the same bytes, so a rewrite is a no-op put)."""
    table = pa.Table.from_pylist([{c: r[c] for c in pc.COLUMNS} for r in rows], schema=SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def from_parquet(data: bytes, where: str) -> list[Row]:
    """The rows of an archive file; StorageError naming ``where`` when it is not one."""
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise StorageError(f"the prediction archive file {where} cannot be read: {exc}",
                           hint="restore the file from a backup; the archive index names its digest") from exc
    missing = [c for c in pc.COLUMNS if c not in table.column_names]
    if missing:
        raise StorageError(f"the prediction archive file {where} lacks the columns {missing}",
                           hint="it was not written by tidal's archive; restore the file from a backup")
    rows: list[Row] = table.select(list(pc.COLUMNS)).to_pylist()
    for r in rows:  # pyarrow gives zoneinfo's UTC: the log's own datetime.UTC instead, as every read gives
        r["time"] = r["time"].replace(tzinfo=UTC)
        if r["label_time"] is not None:
            r["label_time"] = r["label_time"].replace(tzinfo=UTC)
    return rows


def labelled_rows(rows: Sequence[Row]) -> int:
    return sum(1 for r in rows if r["label_time"] is not None)


def decode(row: Row, late: tuple[str, datetime] | None = None) -> Prediction:
    """The prediction of an archive row, with its late label when one arrived."""
    if late is not None:
        row = {**row, "label": late[0], "label_time": late[1]}
    return pc.decode_prediction(row)


def keep(row: Row, *, model: str | None, version: int | None, since: datetime | None, until: datetime | None,
         served: bool | None, deployment: str | None) -> bool:
    """Whether ``row`` passes ``window``'s filters (``labelled`` aside: a late label may change it)."""
    return ((model is None or row["model"] == model)
            and (served is None or row["served"] == bool(served))
            and (version is None or row["version"] == version)
            and (since is None or row["time"] >= utc(since))
            and (until is None or row["time"] < utc(until))
            and (deployment is None or row["deployment"] == deployment))


def covers(entry: ArchivedDay, *, model: str | None, since: datetime | None, until: datetime | None) -> bool:
    """Whether the file ``entry`` may hold predictions of a window (by its model and day)."""
    start = day_start(entry.day)
    return ((model is None or entry.model == model)
            and (since is None or start + timedelta(days=1) > utc(since))
            and (until is None or start < utc(until)))


class Files:
    """Reads archive files from the artifact store, keeping the last few in memory (by digest: fixed bytes)."""

    def __init__(self, artifacts: ArtifactStore | None) -> None:
        self.artifacts = artifacts
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, list[Row]] = OrderedDict()

    def rows(self, digest: str, where: str) -> list[Row]:
        """The rows of the file ``digest`` (do not change them: they may be shared)."""
        with self._lock:
            hit = self._cache.get(digest)
            if hit is not None:
                self._cache.move_to_end(digest)
                return hit
        store = require(self.artifacts, "reading the prediction archive")
        rows = from_parquet(store.get(digest), where)
        with self._lock:
            self._cache[digest] = rows
            while len(self._cache) > _CACHED_FILES:
                self._cache.popitem(last=False)
        return rows

    def write(self, rows: Sequence[Row]) -> tuple[str, str]:
        """Store ``rows`` as a file: its digest and where it is."""
        store = require(self.artifacts, "archiving predictions")
        digest = store.put(to_parquet(rows))
        path = getattr(store, "path", None)
        return digest, path(digest) if callable(path) else f"{store.url}/{digest}"

    def find(self, entries: Sequence[ArchivedDay], ids: Sequence[str]) -> dict[str, tuple[ArchivedDay, Row]]:
        """Which of ``ids`` the files ``entries`` hold: id → (its file's entry, its row)."""
        wanted = set(ids)
        found: dict[str, tuple[ArchivedDay, Row]] = {}
        for entry in entries:
            for row in self.rows(entry.digest, entry.path):
                if row["id"] in wanted and row["id"] not in found:
                    found[row["id"]] = (entry, row)
        return found

    def window(self, entries: Sequence[ArchivedDay], late: LateLabels, *, model: str | None, version: int | None,
               since: datetime | None, until: datetime | None, labelled: bool | None, served: bool | None,
               deployment: str | None) -> list[Prediction]:
        """The archived predictions of ``entries`` that pass a window's filters, by time then id."""
        out: list[tuple[datetime, str, Prediction]] = []
        for entry in entries:
            for row in self.rows(entry.digest, entry.path):
                if not keep(row, model=model, version=version, since=since, until=until, served=served,
                            deployment=deployment):
                    continue
                got = late.get(row["id"])
                has_label = got is not None or row["label_time"] is not None
                if labelled is not None and has_label != labelled:
                    continue
                out.append((row["time"], row["id"], decode(row, got)))
        out.sort(key=lambda x: (x[0], x[1]))
        return [p for _, _, p in out]


def with_archived(archived: list[Prediction], logged: list[Prediction], last: int | None) -> list[Prediction]:
    """The archived predictions, then the log's, the newest ``last`` of them kept."""
    found = archived + logged
    return found if last is None else found[-last:]


__all__ = ["FORMAT", "SCHEMA", "Files", "LateLabels", "covers", "day_of", "day_span", "day_start", "decode",
           "encode", "from_parquet", "keep", "labelled_rows", "merge", "require", "to_parquet", "with_archived"]
