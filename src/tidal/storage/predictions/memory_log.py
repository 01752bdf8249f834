"""The in-memory prediction log: the test adapter of :class:`~tidal.core.ports.PredictionLog`.

It keeps the same encoded rows as the SQL log (:mod:`tidal.storage.predictions._codec`) in a list behind
one lock, and applies the same rules (repeated appends, feedback checks, filters, order), so the
contract suite in ``tests/contract`` holds it to the same behaviour as SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from tidal.core.entities import ArchivedDay, ArchiveOutcome, Feedback, LogCheck, LogDay, Prediction, UnreadableBatch
from tidal.core.errors import StorageError
from tidal.core.ports import ArtifactStore
from tidal.storage._codec import utc
from tidal.storage.predictions import _archive as ar
from tidal.storage.predictions import _codec as pc

_Row = dict[str, Any]


class MemoryPredictionLog:
    """The prediction log in process memory (``memory://``); thread-safe, nothing persisted.

    ``append`` stores identical repeats once and refuses a different prediction under a stored id,
    like :class:`~tidal.storage.predictions.sql_log.SqlPredictionLog`.
    """

    url = "memory://"

    def __init__(self, *, artifacts: ArtifactStore | None = None) -> None:
        self._lock = threading.Lock()
        self._files = ar.Files(artifacts)
        # the archive index, (day, model) → (entry, smallest id, largest id), and the late labels
        self._index: dict[tuple[date, str], tuple[ArchivedDay, str, str]] = {}
        # id → (label JSON, label time, the file's (day, model), whether the file's row has a label of its own)
        self._late: dict[str, tuple[str, datetime, tuple[date, str], bool]] = {}
        self._closed = False
        self._rows: list[_Row] = []  # in append order: the position is the row's seq
        self._by_id: dict[str, _Row] = {}
        self._skipped: dict[str, UnreadableBatch] = {}
        self._quarantine: list[tuple[_Row, str]] = []

    def __repr__(self) -> str:
        return "MemoryPredictionLog()"

    def __enter__(self) -> MemoryPredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """The log cannot be used afterwards (like a closed SQL log)."""
        with self._lock:
            self._closed = True

    def _open(self) -> threading.Lock:
        if self._closed:
            raise StorageError("the prediction log memory:// is closed",
                               hint="open a new one with tidal.storage.open_prediction_log")
        return self._lock

    def append(self, predictions: Sequence[Prediction]) -> None:
        """Store ``predictions`` (all or nothing)."""
        if not predictions:
            return
        rows = [pc.encode_prediction(p) for p in predictions]
        with self._open():
            fresh = pc.new_rows(rows, {r["id"]: self._by_id[r["id"]] for r in rows if r["id"] in self._by_id})
            for row in fresh:
                self._rows.append(row)
                self._by_id[row["id"]] = row

    def add_feedback(self, feedback: Sequence[Feedback], *, overwrite: bool = False) -> int:
        """Attach labels, all or nothing; returns how many were stored."""
        if not feedback:
            return 0
        params = [pc.encode_feedback(fb) for fb in feedback]
        with self._open():
            labelled = {fb.prediction_id: self._by_id[fb.prediction_id]["label_time"] is not None
                        for fb in feedback if fb.prediction_id in self._by_id}
            archived = self._archived([fb.prediction_id for fb in feedback if fb.prediction_id not in labelled])
            labelled.update((pid, row["label_time"] is not None or pid in self._late)
                            for pid, (_, row) in archived.items())
            pc.check_feedback(feedback, labelled, overwrite=overwrite)
            for p in params:
                pid = p["pid"]
                if pid in self._by_id:
                    self._by_id[pid].update(label=p["label"], label_time=p["label_time"])
                else:
                    entry, row = archived[pid]
                    self._late[pid] = (p["label"], p["label_time"], (entry.day, entry.model),
                                       row["label_time"] is not None)
        return len(params)

    def _archived(self, ids: Sequence[str]) -> dict[str, tuple[ArchivedDay, dict[str, Any]]]:
        """Which of ``ids`` are archived (id → (file entry, archive row)): the files whose id range holds them,
        read to confirm."""
        if not ids or not self._index:
            return {}
        lo, hi = min(ids), max(ids)
        entries = [e for e, first, last in self._index.values() if first <= hi and last >= lo]
        return self._files.find(entries, ids) if entries else {}

    def _late_of(self) -> ar.LateLabels:
        return {pid: (label, when) for pid, (label, when, _, _) in self._late.items()}

    def _late_count(self, key: tuple[date, str]) -> int:
        """The late labels of the file ``key`` that label a row the file holds unlabelled."""
        return sum(1 for _, _, k, replaced in self._late.values() if k == key and not replaced)

    def get(self, prediction_id: str) -> Prediction:
        """The prediction with its label, if any; PredictionNotFound when unknown."""
        with self._open():
            row = self._by_id.get(prediction_id)
            if row is None:
                found = self._archived([prediction_id]).get(prediction_id)
                if found is None:
                    raise pc.no_prediction(prediction_id)
                late = self._late.get(prediction_id)
                return ar.decode(found[1], None if late is None else late[:2])
            try:
                return pc.decode_prediction(row)
            except ValueError as exc:
                raise StorageError(f"the prediction is stored as text that cannot be read ({exc})",
                                   hint="run `tidal predictions check --quarantine` to move it aside") from None

    def window(
        self, *, model: str | None = None, version: int | None = None, last: int | None = None,
        since: datetime | None = None, until: datetime | None = None, labelled: bool | None = None,
        served: bool | None = True, deployment: str | None = None, archived: bool = False,
    ) -> list[Prediction]:
        """The matching predictions in append order; ``last`` keeps the newest ``last`` of them; ``archived``:
        the archived ones first (see :meth:`archive`)."""
        if last is not None and last <= 0:
            return []
        with self._open():
            rows = self._matching(model=model, version=version, since=since, until=until, labelled=labelled,
                                  served=served, deployment=deployment)
            if last is not None:
                rows = rows[-last:]
            found = [p for r in rows if (p := self._decode(r)) is not None]
            if not archived or (last is not None and len(found) >= last):
                return found
            entries = [e for e, _, _ in self._index.values()
                       if ar.covers(e, model=model, since=since, until=until)]
            entries.sort(key=lambda e: (e.day, e.model))
            old = self._files.window(entries, self._late_of(), model=model, version=version, since=since,
                                     until=until, labelled=labelled, served=served, deployment=deployment)
            return ar.with_archived(old, found, last)

    # -- the archive --------------------------------------------------------------------------------

    def archive(self, before: datetime, *, model: str | None = None) -> ArchiveOutcome:
        """Move the predictions made before ``before`` into the archive (see
        :meth:`tidal.core.ports.PredictionLog.archive`); under the log's lock, so all at once."""
        cutoff = utc(before)
        with self._open():
            ar.require(self._files.artifacts, "archiving predictions")
            groups: dict[tuple[date, str], list[dict[str, Any]]] = {}
            unreadable = 0
            for row in self._rows:
                if row["time"] < cutoff and (model is None or row["model"] == model):
                    if self._decode(row) is None:
                        unreadable += 1
                        continue
                    groups.setdefault((ar.day_of(row["time"]), row["model"]), []).append(row)
            files: list[ArchivedDay] = []
            moved = 0
            for key in sorted(groups):
                new = groups[key]
                held = self._index.get(key)
                old = self._files.rows(held[0].digest, held[0].path) if held is not None else []
                merged = ar.merge(old, [dict(r) for r in new])
                digest, path = self._files.write(merged)
                entry = ArchivedDay(day=key[0], model=key[1], rows=len(merged), labels=ar.labelled_rows(merged),
                                    late_labels=self._late_count(key), digest=digest, path=path,
                                    archived_at=datetime.now(UTC))
                self._index[key] = (entry, min(r["id"] for r in merged), max(r["id"] for r in merged))
                gone = {id(r) for r in new}
                self._rows = [r for r in self._rows if id(r) not in gone]
                for r in new:
                    del self._by_id[r["id"]]
                files.append(entry)
                moved += len(new)
            return ArchiveOutcome(before=cutoff, files=tuple(files), moved=moved, unreadable_left=unreadable)

    def days(self, *, model: str | None = None) -> list[LogDay]:
        """Per UTC day and model: predictions and labels in the log and in the archive."""
        with self._open():
            out: dict[tuple[date, str], LogDay] = {}
            for row in self._rows:
                if model is None or row["model"] == model:
                    key = (ar.day_of(row["time"]), row["model"])
                    day = out.get(key) or LogDay(day=key[0], model=key[1])
                    out[key] = replace(day, logged=day.logged + 1,
                                       logged_labels=day.logged_labels + (row["label_time"] is not None))
            for key, (entry, _, _) in self._index.items():
                if model is None or entry.model == model:
                    day = out.get(key) or LogDay(day=key[0], model=key[1])
                    out[key] = replace(day, archived=entry.rows, path=entry.path,
                                       archived_labels=entry.labels + self._late_count(key))
            return [out[k] for k in sorted(out)]

    def _decode(self, row: _Row) -> Prediction | None:
        try:
            return pc.decode_prediction(row)
        except ValueError as exc:  # stored text that does not parse (only an edit by hand can make one here)
            self._skipped[row["id"]] = _unreadable(row, exc)
            return None

    def skipped(self) -> list[UnreadableBatch]:
        """The unreadable records reads met and skipped since the log was made, each once."""
        with self._open():
            return list(self._skipped.values())

    def check(self, *, quarantine: bool = False) -> LogCheck:
        """Read every record back; list (and with ``quarantine``, move aside) those that cannot be read."""
        with self._open():
            bad: list[tuple[_Row, UnreadableBatch]] = []
            for row in self._rows:
                try:
                    pc.decode_prediction(row)
                except ValueError as exc:
                    bad.append((row, _unreadable(row, exc)))
            if quarantine:
                for row, found in bad:
                    self._rows.remove(row)
                    del self._by_id[row["id"]]
                    self._skipped.pop(row["id"], None)
                    self._quarantine.append((row, found.reason))
            return LogCheck(batches=len(self._rows) + (len(bad) if quarantine else 0),
                            predictions=len(self._rows) + (len(bad) if quarantine else 0),
                            unreadable=tuple(b for _, b in bad), quarantined=len(bad) if quarantine else 0)

    def count(
        self, *, model: str | None = None, version: int | None = None, since: datetime | None = None,
        labelled: bool | None = None, served: bool | None = True, archived: bool = False,
    ) -> int:
        """How many predictions match (the same filters as :meth:`window`); ``archived``: archived ones too."""
        with self._open():
            n = len(self._matching(model=model, version=version, since=since, until=None, labelled=labelled,
                                   served=served, deployment=None))
            if archived:
                entries = [e for e, _, _ in self._index.values() if ar.covers(e, model=model, since=since, until=None)]
                n += len(self._files.window(entries, self._late_of(), model=model, version=version, since=since,
                                            until=None, labelled=labelled, served=served, deployment=None))
            return n

    def _matching(
        self, *, model: str | None, version: int | None, since: datetime | None, until: datetime | None,
        labelled: bool | None, served: bool | None, deployment: str | None,
    ) -> list[_Row]:
        lo = None if since is None else utc(since)
        hi = None if until is None else utc(until)

        def keep(r: _Row) -> bool:
            return ((model is None or r["model"] == model)
                    and (served is None or r["served"] == bool(served))
                    and (version is None or r["version"] == version)
                    and (lo is None or r["time"] >= lo)
                    and (hi is None or r["time"] < hi)
                    and (labelled is None or (r["label_time"] is not None) == labelled)
                    and (deployment is None or r["deployment"] == deployment))

        return [r for r in self._rows if keep(r)]


def _unreadable(row: _Row, exc: Exception) -> UnreadableBatch:
    return UnreadableBatch(ref=f"prediction {row['id']}", model=row["model"], version=row["version"],
                           time=row["time"], predictions=1, reason=f"{type(exc).__name__}: {str(exc)[:120]}")


__all__ = ["MemoryPredictionLog"]
