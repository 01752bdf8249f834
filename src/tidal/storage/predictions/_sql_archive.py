"""The archive of the SQL prediction log: ``archive``, ``days``, and the archive half of feedback, ``get`` and
``window`` (what the files hold and when they are written: :mod:`tidal.storage.predictions._archive`).

Archiving a day and model: its batches and their labels are read (one read transaction), the day's file is
written with the rows of the file it had already (merged), then one write transaction deletes the batches'
id entries (which waits for a labeller holding them), checks that their labels are still those that were
written into the file, deletes the labels and the batches, and moves the index to the new file only if it
still points at the file that was merged. When anything changed in between (a label arrived, another
archiver went first), the transaction rolls back and the day is done again from the start, up to three
times: a row is never deleted from the log unless the index points at a file that holds it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from tidal.core.entities import ArchivedDay, ArchiveOutcome, LogDay, Prediction
from tidal.core.errors import StorageError
from tidal.core.ids import split_id
from tidal.storage._codec import utc
from tidal.storage.predictions import _archive as ar
from tidal.storage.predictions import _reads as reads
from tidal.storage.predictions._batch_codec import Unreadable, decode_batch
from tidal.storage.sql import _schema as t
from tidal.storage.sql._engine import ThreadConnections, Transaction

_A = t.prediction_archives.c
_LL = t.prediction_late_labels.c
_B, _L, _I = reads.B, reads.L, reads.I
#: Attempts at archiving one day while other writers change it.
_ATTEMPTS = 3


class _Changed(Exception):
    """Raised inside the archiving transaction (so that it rolls back) when the day changed since it was read."""


def day_expr(dialect: str, column: Any) -> Any:
    """The UTC day of a datetime column as ``YYYY-MM-DD`` text, in SQL."""
    if dialect == "sqlite":
        return sa.func.substr(column, 1, 10)  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', in UTC (UTCDateTime)
    return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")


def _entry(row: Any, late: int) -> ArchivedDay:
    return ArchivedDay(day=date.fromisoformat(row["day"]), model=row["model"], rows=row["rows"],
                       labels=row["labels"], late_labels=late, digest=row["digest"], path=row["path"],
                       archived_at=row["archived_at"])


class SqlArchive:
    """The archive half of a :class:`~tidal.storage.predictions.sql_log.SqlPredictionLog`."""

    def __init__(self, conns: ThreadConnections, files: ar.Files, dialect: str) -> None:
        self._conns, self.files, self._dialect = conns, files, dialect

    # -- the index ----------------------------------------------------------------------------------

    def _late_counts(self, conn: Connection) -> dict[tuple[str, str], int]:
        query = (sa.select(_LL.day, _LL.model, sa.func.count()).where(_LL.replaced.is_(False))
                 .group_by(_LL.day, _LL.model))
        return {(day, model): n for day, model, n in conn.execute(query)}

    def entries(self, conn: Connection, *, model: str | None = None) -> list[ArchivedDay]:
        """The archive files (of ``model``), by day then model."""
        query = sa.select(t.prediction_archives).order_by(_A.day, _A.model)
        if model is not None:
            query = query.where(_A.model == model)
        rows = conn.execute(query).mappings().all()
        late = self._late_counts(conn) if rows else {}
        return [_entry(r, late.get((r["day"], r["model"]), 0)) for r in rows]

    def find(self, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[ArchivedDay, dict[str, Any]]]:
        """Which of ``ids`` are archived: id → (its file's entry, its archive row). Reads only the files whose
        id range holds one of them (none at all while nothing is archived)."""
        if not ids:
            return {}
        lo, hi = min(ids), max(ids)
        rows = conn.execute(sa.select(t.prediction_archives).where(_A.min_id <= hi, _A.max_id >= lo)
                            .order_by(_A.day, _A.model)).mappings().all()
        entries = [_entry(r, 0) for r in rows
                   if any(r["min_id"] <= pid <= r["max_id"] for pid in ids)]
        return self.files.find(entries, ids) if entries else {}

    def late_labels(self, conn: Connection, ids: Sequence[str]) -> dict[str, tuple[str, datetime]]:
        """The late labels of ``ids``: id → (label JSON, label time)."""
        out: dict[str, tuple[str, datetime]] = {}
        for part in reads.chunks(sorted(set(ids))):
            out.update((pid, (label, when)) for pid, label, when in conn.execute(
                sa.select(_LL.id, _LL.label, _LL.label_time).where(_LL.id.in_(part))))
        return out

    def labelled(self, conn: Connection, ids: Sequence[str], labelled: dict[str, bool]
                 ) -> dict[str, tuple[ArchivedDay, dict[str, Any]]]:
        """The archived ones among ``ids`` (see :meth:`find`); whether each has a label (in its file, or a late
        one) is added to ``labelled``."""
        archived = self.find(conn, ids)
        if archived:
            late = self.late_labels(conn, list(archived))
            labelled.update((pid, row["label_time"] is not None or pid in late) for pid, (_, row) in archived.items())
        return archived

    def store_late(self, conn: Connection, encoded: Sequence[tuple[str, str, datetime]],
                   archived: dict[str, tuple[ArchivedDay, dict[str, Any]]]) -> list[tuple[str, str, datetime]]:
        """Store the labels (id, label JSON, label time) of ``encoded`` that are for ``archived`` predictions,
        replacing any late label they had (the duplicate rule was checked before); returns the others."""
        labels = [e for e in encoded if e[0] in archived]
        ids = [pid for pid, _, _ in labels]
        for part in reads.chunks(sorted(ids)):
            conn.execute(sa.delete(t.prediction_late_labels).where(_LL.id.in_(part)))
        rows = []
        for pid, label, when in labels:
            entry, row = archived[pid]
            rows.append({"id": pid, "day": entry.day.isoformat(), "model": entry.model, "label": label,
                         "label_time": when, "replaced": row["label_time"] is not None, "served": row["served"]})
        conn.execute(t.prediction_late_labels.insert(), rows)
        return [e for e in encoded if e[0] not in archived]

    def get(self, conn: Connection, prediction_id: str) -> Prediction | None:
        found = self.find(conn, [prediction_id]).get(prediction_id)
        if found is None:
            return None
        return ar.decode(found[1], self.late_labels(conn, [prediction_id]).get(prediction_id))

    def window(self, conn: Connection, *, model: str | None, version: int | None, since: datetime | None,
               until: datetime | None, labelled: bool | None, served: bool | None,
               deployment: str | None) -> list[Prediction]:
        """The archived predictions that pass a window's filters (only the files of the days it covers)."""
        entries = [e for e in self.entries(conn, model=model) if ar.covers(e, model=model, since=since, until=until)]
        if not entries:
            return []
        late: dict[str, tuple[str, datetime]] = {}
        for e in entries:
            query = sa.select(_LL.id, _LL.label, _LL.label_time).where(_LL.day == e.day.isoformat(),
                                                                         _LL.model == e.model)
            late.update((pid, (label, when)) for pid, label, when in conn.execute(query))
        return self.files.window(entries, late, model=model, version=version, since=since, until=until,
                                 labelled=labelled, served=served, deployment=deployment)

    def count(self, conn: Connection, *, model: str | None, version: int | None, since: datetime | None,
              labelled: bool | None, served: bool | None) -> int:
        """How many archived predictions match: from the index and the late labels alone when only ``model``,
        ``labelled`` and ``served`` filter; by reading the files of the days ``since`` covers otherwise."""
        if version is not None or since is not None:
            return len(self.window(conn, model=model, version=version, since=since, until=None, labelled=labelled,
                                   served=served, deployment=None))
        sums = sa.select(*(sa.func.coalesce(sa.func.sum(c), 0) for c in (_A.rows, _A.served_rows, _A.labels,
                                                                           _A.served_labels)))
        late = sa.select(sa.func.count()).select_from(t.prediction_late_labels).where(_LL.replaced.is_(False))
        if model is not None:
            sums, late = sums.where(_A.model == model), late.where(_LL.model == model)
        if served is not None:
            late = late.where(_LL.served.is_(bool(served)))
        rows, served_rows, labels, served_labels = (int(v) for v in conn.execute(sums).one())
        if served is None:
            total, labelled_n = rows, labels
        elif served:
            total, labelled_n = served_rows, served_labels
        else:
            total, labelled_n = rows - served_rows, labels - served_labels
        labelled_n += int(conn.execute(late).scalar_one())
        return total if labelled is None else labelled_n if labelled else total - labelled_n

    # -- archiving ------------------------------------------------------------------------------------

    def archive(self, before: datetime, *, model: str | None) -> ArchiveOutcome:
        """See :meth:`tidal.core.ports.PredictionLog.archive`."""
        cutoff = utc(before)
        ar.require(self.files.artifacts, "archiving predictions")
        day = day_expr(self._dialect, _B.time)
        query = sa.select(_B.model, day).where(_B.time < cutoff).group_by(_B.model, day)
        if model is not None:
            query = query.where(_B.model == model)
        with Transaction(self._conns, False, "finding predictions to archive") as conn:
            todo = sorted((date.fromisoformat(d), m) for m, d in conn.execute(query))
        files: list[ArchivedDay] = []
        moved = unreadable = 0
        for d, m in todo:
            for _ in range(_ATTEMPTS):
                try:
                    entry, n, bad = self._archive_day(d, m, cutoff)
                    break
                except _Changed:
                    continue
            else:
                raise StorageError(f"archiving the predictions of {m} on {d}: they kept changing while they were "
                                   f"archived ({_ATTEMPTS} attempts); nothing of that day was moved",
                                   hint="run the archive again (tidal predictions archive)")
            if entry is not None:
                files.append(entry)
            moved += n
            unreadable += bad
        return ArchiveOutcome(before=cutoff, files=tuple(files), moved=moved, unreadable_left=unreadable)

    def _archive_day(self, day: date, model: str, cutoff: datetime) -> tuple[ArchivedDay | None, int, int]:
        """Archive the predictions of ``model`` on ``day`` before ``cutoff``: (the file's entry, predictions
        moved, unreadable ones left in the log). Raises _Changed when the day changed under it."""
        start, end = ar.day_span(day, cutoff)
        key = day.isoformat()
        with Transaction(self._conns, False, "reading predictions to archive") as conn:
            batch_rows = conn.execute(sa.select(t.prediction_batches).where(
                _B.model == model, _B.time >= start, _B.time < end).order_by(_B.seq)).mappings().all()
            labels = reads.labels_of(conn, [r["seq"] for r in batch_rows])
            held = conn.execute(sa.select(t.prediction_archives).where(_A.day == key, _A.model == model)
                                ).mappings().first()
        seqs: list[int] = []
        ids: list[str] = []
        new: list[dict[str, Any]] = []
        bad = 0
        for r in batch_rows:
            try:
                predictions = decode_batch(r, labels.get(r["seq"], {}))
            except Unreadable:
                bad += r["n"]  # left in the log, where `tidal predictions check` finds it
                continue
            seqs.append(r["seq"])
            ids.extend(p.id for p in predictions)
            new.extend(ar.encode(predictions))
        if not seqs:
            return None, 0, bad
        old = self.files.rows(held["digest"], held["path"]) if held is not None else []
        merged = ar.merge(old, new)
        digest, path = self.files.write(merged)  # written before anything is recorded or deleted
        now = datetime.now(UTC)
        served = [r for r in merged if r["served"]]
        values = {"digest": digest, "path": path, "rows": len(merged), "labels": ar.labelled_rows(merged),
                  "served_rows": len(served), "served_labels": ar.labelled_rows(served),
                  "min_id": min(r["id"] for r in merged), "max_id": max(r["id"] for r in merged), "archived_at": now}
        with Transaction(self._conns, True, "archiving predictions") as conn:
            # The id entries first: deleting them waits for a labeller that holds them (FOR UPDATE), so the
            # labels compared next include its label.
            keys = sorted(set(ids) | {where[0] for pid in ids if (where := split_id(pid)) is not None})
            for seq_part in reads.chunks(seqs):
                for part in reads.chunks(keys):
                    conn.execute(sa.delete(t.prediction_ids).where(_I.seq.in_(seq_part), _I.id.in_(part)))
            now_labels = reads.labels_of(conn, seqs)
            if now_labels != {s: labels[s] for s in seqs if s in labels}:
                raise _Changed
            deleted = 0
            for part in reads.chunks(seqs):
                conn.execute(sa.delete(t.prediction_labels).where(_L.seq.in_(part)))
                deleted += conn.execute(sa.delete(t.prediction_batches).where(_B.seq.in_(part))).rowcount
            if deleted != len(seqs):
                raise _Changed  # another archiver (or a quarantine) took some of them first
            if held is None:
                try:
                    conn.execute(t.prediction_archives.insert().values(day=key, model=model, **values))
                except sa_exc.IntegrityError:
                    # another archiver recorded this day first: roll back, and merge with its file
                    raise _Changed from None
            else:
                moved = conn.execute(sa.update(t.prediction_archives).where(
                    _A.day == key, _A.model == model, _A.digest == held["digest"]).values(**values)).rowcount
                if moved != 1:
                    raise _Changed
            late = self._late_counts(conn).get((key, model), 0)
        entry = ArchivedDay(day=day, model=model, rows=len(merged), labels=values["labels"], late_labels=late,
                            digest=digest, path=path, archived_at=now)
        return entry, len(new), bad

    # -- what is where ---------------------------------------------------------------------------------

    def days(self, *, model: str | None) -> list[LogDay]:
        """See :meth:`tidal.core.ports.PredictionLog.days`."""
        bday, lday = day_expr(self._dialect, _B.time), day_expr(self._dialect, _L.time)
        logged = sa.select(_B.model, bday, sa.func.sum(_B.n)).group_by(_B.model, bday)
        labelled = sa.select(_L.model, lday, sa.func.count()).group_by(_L.model, lday)
        if model is not None:
            logged, labelled = logged.where(_B.model == model), labelled.where(_L.model == model)
        out: dict[tuple[date, str], dict[str, Any]] = {}

        def at(d: str, m: str) -> dict[str, Any]:
            return out.setdefault((date.fromisoformat(d), m), {})

        with Transaction(self._conns, False, "listing the prediction log by day") as conn:
            for m, d, n in conn.execute(logged):
                at(d, m)["logged"] = int(n)
            for m, d, n in conn.execute(labelled):
                at(d, m)["logged_labels"] = int(n)
            for e in self.entries(conn, model=model):
                at(e.day.isoformat(), e.model).update(archived=e.rows, archived_labels=e.labels + e.late_labels,
                                                      path=e.path)
        return [LogDay(day=d, model=m, **out[(d, m)]) for d, m in sorted(out)]


__all__ = ["SqlArchive", "day_expr"]
