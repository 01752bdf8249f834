"""The SQL prediction log: :class:`~tidal.core.ports.PredictionLog` on SQLite or PostgreSQL.

It shares the metadata store's machinery: the same migrations run on open (a prediction log database
holds the metadata tables too, empty, and a metadata store database may hold the log), one connection
per thread, ``BEGIN IMMEDIATE`` on SQLite, errors translated to
:class:`~tidal.core.errors.StorageError` naming the database (never its password).

Storage. The predictions of one append that share their header (time, model, version, deployment,
served, request id: every prediction of a served request) are one row of ``prediction_batches``, their
inputs, outputs and probabilities JSON arrays; ``prediction_ids`` maps each id to its batch and position
(and keeps ids unique); labels live in ``prediction_labels``. A served request's ids are a range under
one prefix (:class:`~tidal.core.ids.IdRange`): ``prediction_ids`` then holds one entry for the request,
not one per id. Logging a 1,000-row request is one batch row and one id entry: 1.3 ms on SQLite, where
a thousand id entries took 2.1 ms and a row per prediction with its four indexes 10.5 ms (see
:mod:`tidal.storage.sql._schema`, and :mod:`tidal.storage.predictions._reads` for how reads find ids in
ranges and explode batches). An id stored one way is the same id the other way: a prediction appended on
its own under an id that a stored range holds is a repeat (or a clash), and so is the reverse.

On SQLite the append's transaction runs at the driver level
(:class:`~tidal.storage.sql._engine.DriverTransaction`): SQLAlchemy's transaction bookkeeping cost a
third of a one-row append.

Retention: ``archive`` moves old predictions into Parquet in the artifact store; ``add_feedback``, ``get``,
``window(archived=True)`` and ``count(archived=True)`` find them (:mod:`tidal.storage.predictions._sql_archive`).

``append`` goes through :class:`~tidal.storage.predictions._group_commit.GroupCommit`: the predictions of
concurrent calls are written in one transaction, and each call returns once that transaction has committed.
Several processes (server workers) may append to the same SQLite file: SQLite lets one write at a time
and the others wait for it (busy timeout), batch by batch. On SQLite, WAL checkpoints run in a background
thread (:mod:`tidal.storage.sql._checkpoint`), not in the commit of a waiting request.

Durability. ``durability="process"`` (the default): on SQLite a commit is a write to the WAL file, no
``fsync``: a committed prediction survives the process being killed (SIGKILL included), not a crash of
the operating system or a power cut. ``durability="power"`` adds an ``fsync`` per commit (SQLite
``synchronous=FULL``), shared by every prediction of the batch. On PostgreSQL the server decides
(``synchronous_commit``); the option is ignored.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from tidal.core.entities import ArchiveOutcome, Feedback, LogCheck, LogDay, Prediction, UnreadableBatch
from tidal.core.errors import StorageError
from tidal.core.ids import split_id
from tidal.core.ports import ArtifactStore
from tidal.storage._codec import utc
from tidal.storage.predictions import _archive as ar
from tidal.storage.predictions import _codec as pc
from tidal.storage.predictions import _reads as reads
from tidal.storage.predictions._batch_codec import Group, Unreadable, check_batch, encode_groups
from tidal.storage.predictions._group_commit import CommitStats, GroupCommit
from tidal.storage.predictions._sql_archive import SqlArchive
from tidal.storage.sql import _schema as t
from tidal.storage.sql._checkpoint import WalCheckpointer
from tidal.storage.sql._driver_insert import DriverInsert
from tidal.storage.sql._engine import (
    DriverTransaction,
    ThreadConnections,
    Transaction,
    create_engine_for,
    driver_connection,
    is_unique_violation,
    redact,
    resolve_url,
)
from tidal.storage.sql._migrate import ensure_schema

Durability = Literal["process", "power"]

_B, _I, _L = reads.B, reads.I, reads.L
_BATCH_COLUMNS = ("time", "model", "version", "deployment", "served", "request_id", "n", "ids", "inputs",
                  "outputs", "probas")
_LABEL_COLUMNS = ("seq", "pos", "model", "served", "version", "time", "label", "label_time")
#: How many leading values of :func:`~tidal.storage.predictions._codec.prediction_values` make a prediction
#: what it is (its labels aside): a repeated append must match them all.
_IDENTITY = len(pc.IDENTITY)


class _Batch(NamedTuple):
    """One ``append`` call's predictions, and the groups (batch rows) they are stored as."""

    predictions: Sequence[Prediction]
    groups: list[Group]


class _RepeatedId(Exception):
    """Raised inside a batch's transaction (so that it rolls back) when an id is already stored."""


def _full_sync(dbapi_connection: Any, _record: Any) -> None:
    # Runs after _engine's own connect hook (listeners run in order), replacing synchronous=NORMAL.
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA synchronous = FULL")
    finally:
        cursor.close()


class SqlPredictionLog:
    """The prediction log in a SQL database: ``sqlite:///path/to/predictions.db`` or
    ``postgresql+psycopg://user@host:5432/db``. Migrates the database on open; thread-safe.

    - ``append`` is durable when it returns (see the module docstring for what durable means), and
      concurrent calls share commits. Appending a prediction identical to one already stored is a
      no-op (so retrying an append whose outcome is unknown is safe); a *different* prediction under
      a stored id raises StorageError, and nothing of that call's batch is stored.
    - ``add_feedback`` is all or nothing, and raises FeedbackRejected for an unknown id, a second
      label (unless ``overwrite``), or an id given twice in the batch.
    - ``window`` and ``count`` filter with indexes that keep them fast at millions of rows.
    """

    def __init__(self, url: str, *, durability: Durability = "process", artifacts: ArtifactStore | None = None) -> None:
        if durability not in ("process", "power"):
            raise StorageError(f"unknown durability {durability!r}", hint="use 'process' or 'power'")
        self._shown = redact(url)
        engine = create_engine_for(resolve_url(url))
        if durability == "power" and engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _full_sync)
        # Before the first connection opens, so that every connection gets its pragmas.
        self._checkpointer = WalCheckpointer(engine, self._shown) if engine.dialect.name == "sqlite" else None
        self._conns = ThreadConnections(engine, self._shown, what="prediction log",
                                        opener="tidal.storage.open_prediction_log")
        self.dialect = engine.dialect.name
        self.durability = durability
        try:
            ensure_schema(self._conns.get(), self._shown)
        except BaseException:
            self._conns.close()
            raise
        self._committer: GroupCommit[_Batch] = GroupCommit(self._write_batch)
        dialect = engine.dialect
        # SQLite reports the new batch's seq as lastrowid (RETURNING needs SQLite 3.35); PostgreSQL returns it.
        self._returning = dialect.name != "sqlite"
        self._dbapi: Any = dialect.dbapi
        self._dialect = dialect
        self._insert_batch = DriverInsert(t.prediction_batches, _BATCH_COLUMNS, dialect,
                                          returning="seq" if self._returning else None)
        self._insert_ids = DriverInsert(t.prediction_ids, ("id", "seq", "pos"), dialect)
        self._mark = m = self._insert_ids.mark
        self._insert_range_sql = (f"INSERT INTO prediction_ids (id, seq, pos) SELECT {m}, {m}, {m} WHERE NOT EXISTS "
                                  f"(SELECT 1 FROM prediction_ids WHERE id >= {m} AND id < {m} AND pos >= 0)")
        self._insert_labels = DriverInsert(t.prediction_labels, _LABEL_COLUMNS, dialect)
        self._skipped: dict[int, UnreadableBatch] = {}
        self._skipped_lock = threading.Lock()
        self._archive = SqlArchive(self._conns, ar.Files(artifacts), self.dialect)

    @property
    def url(self) -> str:
        """The database URL, password hidden."""
        return self._shown

    def __repr__(self) -> str:
        return f"SqlPredictionLog({self._shown!r})"

    def __enter__(self) -> SqlPredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's connection; the log cannot be used afterwards."""
        if self._checkpointer is not None:
            self._checkpointer.close()
        self._conns.close()

    def commit_stats(self) -> CommitStats:
        """How many ``append`` calls shared how many commits, since this log was opened."""
        return self._committer.stats()

    # -- append: group commit -----------------------------------------------------------------------

    def append(self, predictions: Sequence[Prediction]) -> None:
        """Store ``predictions``; returns once they are committed (together with concurrent calls')."""
        if not predictions:
            return
        # Encoded here, in the caller's thread: a value that cannot be stored fails this call alone.
        self._committer.submit(self._batch(predictions))
        if self._checkpointer is not None:
            self._checkpointer.wrote(len(predictions))

    def _batch(self, predictions: Sequence[Prediction]) -> _Batch:
        return _Batch(predictions, encode_groups(predictions))

    def _write_batch(self, batches: Sequence[_Batch]) -> list[BaseException | None]:
        """The group commit's write: every caller's groups in one transaction."""
        groups = [g for b in batches for g in b.groups]
        try:
            if self._conns.is_sqlite:
                with DriverTransaction(self._conns, "appending predictions") as cursor:
                    self._unique(cursor, groups)
            else:
                with Transaction(self._conns, True, "appending predictions") as conn:
                    self._unique(conn, groups)
            return [None] * len(batches)
        except _RepeatedId:
            pass
        # Some id is stored already (a retry, or a clash): settle each caller's predictions on their own,
        # so that a clash fails only the call that brought it.
        outcomes: list[BaseException | None] = []
        for batch in batches:
            try:
                self._append_settled(batch.predictions)
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _unique(self, on: Any, groups: Sequence[Group]) -> None:
        """:meth:`_insert`, raising _RepeatedId when an id is stored already."""
        try:
            self._insert(on, groups)
        except sa_exc.IntegrityError as exc:
            if is_unique_violation(exc):
                raise _RepeatedId from exc
            raise

    def _insert(self, on: Any, groups: Sequence[Group]) -> None:
        """Insert ``groups``: a batch row each, then every id (a repeated id raises IntegrityError) and the
        labels given with the predictions.

        The statements run on the driver's cursor: SQLAlchemy's execution context costs ~13 µs a statement,
        a fifth of a one-row append. The driver's errors are wrapped as SQLAlchemy's own would be, so the
        transaction translates them (and a repeated id is recognised) exactly as for any other statement.
        ``on`` is the transaction's SQLAlchemy connection, or (:class:`DriverTransaction`) its DB-API cursor.
        """
        ids: list[tuple[Any, ...]] = []
        labels: list[tuple[Any, ...]] = []
        insert = self._insert_batch
        if isinstance(on, Connection):
            if not on.in_transaction():
                on.begin()  # PostgreSQL: SQLAlchemy must know the transaction the driver opens, to commit it
            cursor, own = driver_connection(on).cursor(), True
        else:
            cursor, own = on, False
        # the statement running and its parameters (one row's, or many rows'), for the error message
        sql = insert.sql
        params: Sequence[Any] | None = None
        try:
            for g in groups:
                time, model, version, deployment, served, request_id = g.header
                sql = insert.sql
                (params,) = insert.params([(time, model, version, deployment, served, request_id, len(g.ids),
                                            g.ids_json, g.inputs, g.outputs, g.probas)])
                cursor.execute(sql, params)
                if self._returning:
                    row = cursor.fetchone()
                    if row is None:  # INSERT ... RETURNING gives one row; the check is for mypy's Optional
                        raise StorageError(f"storing predictions in {self._shown}: the insert returned no "
                                           "batch number", hint="try again; check the database's log")
                    seq = row[0]
                else:
                    seq = cursor.lastrowid
                if g.id_range is not None:
                    # One entry for the range (its prefix, and minus its count), written only where none
                    # of its ids is stored on its own ("g" sorts after every hex digit).
                    prefix = g.id_range[0]
                    sql, params = self._insert_range_sql, (prefix, seq, -g.id_range[1], prefix + "0000", prefix + "g")
                    cursor.execute(sql, params)
                    if cursor.rowcount != 1:
                        raise _RepeatedId
                else:
                    ids.extend((pid, seq, pos) for pos, pid in enumerate(g.ids))
                labels.extend((seq, pos, model, served, version, time, label, label_time)
                              for pos, label, label_time in g.labels)
            if ids:
                sql, params = "SELECT id, pos FROM prediction_ids WHERE pos < 0 AND id IN (...)", None
                self._check_singles(cursor, groups)
                sql, params = self._insert_ids.sql, ids
                if len(ids) == 1:
                    cursor.execute(sql, ids[0])
                else:
                    cursor.executemany(sql, ids)
            if labels:
                sql, params = self._insert_labels.sql, self._insert_labels.params(labels)
                cursor.executemany(sql, params)
        except self._dbapi.Error as exc:
            raise sa_exc.DBAPIError.instance(sql, params, exc, self._dbapi.Error, hide_parameters=True,
                                             dialect=self._dialect) from exc
        finally:
            if own:
                cursor.close()

    def _check_singles(self, cursor: Any, groups: Sequence[Group]) -> None:
        """Raise _RepeatedId where an id to be stored on its own is held by a stored range. (A range whose ids
        are stored one by one is refused by its insert; the same id twice in one form by the primary key.)"""
        singles = {where for g in groups if g.id_range is None for pid in g.ids
                   if (where := split_id(pid)) is not None}
        prefixes = sorted({prefix for prefix, _ in singles})
        for part in reads.chunks(prefixes):
            cursor.execute(self._ranges_sql(len(part)), tuple(part))
            held = {prefix: -neg for prefix, neg in cursor.fetchall()}
            if any(position < held.get(prefix, 0) for prefix, position in singles):
                raise _RepeatedId

    def _ranges_sql(self, n: int) -> str:
        marks = ", ".join([self._mark] * n)
        return f"SELECT id, pos FROM prediction_ids WHERE pos < 0 AND id IN ({marks})"

    def _append_settled(self, predictions: Sequence[Prediction]) -> None:
        """Append ``predictions`` minus those stored already; a different prediction under a stored id (or
        twice in the call) raises StorageError and stores nothing."""
        with Transaction(self._conns, True, "appending predictions") as conn:
            skips = reads.Skips()
            stored = {pid: pc.prediction_values(p)[:_IDENTITY]
                      for pid, p in reads.get_many(conn, [p.id for p in predictions], skips).items()}
            self._note(skips)
            fresh: list[Prediction] = []
            for p in predictions:
                key = pc.prediction_values(p)[:_IDENTITY]
                seen = stored.get(p.id)
                if seen is None:
                    stored[p.id] = key
                    fresh.append(p)
                elif seen != key:
                    raise pc.conflicting_prediction(p.id)
            if fresh:
                self._insert(conn, encode_groups(fresh))

    # -- feedback -------------------------------------------------------------------------------------

    def add_feedback(self, feedback: Sequence[Feedback], *, overwrite: bool = False) -> int:
        """Attach labels, all or nothing; returns how many were stored.

        Raises FeedbackRejected (``reason`` ``unknown`` or ``duplicate``, with the item's ``index``) for
        the first item that cannot be stored: an unknown prediction id, an id that has a label already
        (unless ``overwrite``), or an id that appears twice in ``feedback``.
        """
        if not feedback:
            return 0
        encoded = [(fb.prediction_id, pc.dumps_value(fb.label, "feedback.label"), utc(fb.time))
                   for fb in feedback]
        ids = sorted({fb.prediction_id for fb in feedback})
        with Transaction(self._conns, True, "storing feedback") as conn:
            # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes other writers): a concurrent
            # labeller waits, then sees this label, so two "first" labels cannot both win. Rows are locked in
            # key order, so two batches cannot deadlock on each other.
            where = reads.locate(conn, ids, for_update=True)
            seqs = sorted({seq for seq, _ in where.values()})
            existing = reads.labels_of(conn, seqs)
            labelled = {pid: pos in existing.get(seq, {}) for pid, (seq, pos) in where.items()}
            # ids the log does not hold may be archived: their labels are kept beside the archive
            archived = self._archive.labelled(conn, [pid for pid in ids if pid not in where], labelled)
            pc.check_feedback(feedback, labelled, overwrite=overwrite)
            if archived and not (encoded := self._archive.store_late(conn, encoded, archived)):
                return len(feedback)
            heads: dict[int, list[Any]] = {}
            for part in reads.chunks(seqs):
                query = sa.select(_B.seq, _B.model, _B.served, _B.version, _B.time).where(_B.seq.in_(part))
                heads.update((seq, rest) for seq, *rest in conn.execute(query))
            replaced = [where[pid] for pid, *_ in encoded if labelled[pid]]
            for part in reads.chunks(replaced):
                conn.execute(sa.delete(t.prediction_labels).where(sa.tuple_(_L.seq, _L.pos).in_(part)))
            rows = []
            for pid, label, label_time in encoded:
                seq, pos = where[pid]
                model, served, version, time = heads[seq]
                rows.append((seq, pos, model, served, version, time, label, label_time))
            params = self._insert_labels.params(rows)
            conn.exec_driver_sql(self._insert_labels.sql, params[0] if len(params) == 1 else params)
        return len(feedback)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, prediction_id: str) -> Prediction:
        """The prediction ``prediction_id`` with its label, if any; PredictionNotFound when unknown."""
        with Transaction(self._conns, False, "reading a prediction") as conn:
            found = reads.get(conn, prediction_id) or self._archive.get(conn, prediction_id)
        if found is None:
            raise pc.no_prediction(prediction_id)
        return found

    def window(
        self, *, model: str | None = None, version: int | None = None, last: int | None = None,
        since: datetime | None = None, until: datetime | None = None, labelled: bool | None = None,
        served: bool | None = True, deployment: str | None = None, archived: bool = False,
    ) -> list[Prediction]:
        """The matching predictions in the order they were appended; ``last`` keeps the newest ``last``.

        ``since`` is inclusive and ``until`` exclusive (prediction times); None means no filter, and
        ``served`` defaults to True (answers that were returned; shadow answers are not). ``archived``: the
        archived predictions that match come first, by time (read only when the log's own fall short of
        ``last``, and only the files of the days the window covers).
        """
        if last is not None and last <= 0:
            return []
        skips = reads.Skips()
        with Transaction(self._conns, False, "reading predictions") as conn:
            found = reads.window(conn, last=last, labelled=labelled, model=model, version=version, since=since,
                                 until=until, served=served, deployment=deployment, skips=skips)
            if archived and (last is None or len(found) < last):
                old = self._archive.window(conn, model=model, version=version, since=since, until=until,
                                           labelled=labelled, served=served, deployment=deployment)
                found = ar.with_archived(old, found, last)
        self._note(skips)
        return found

    def archive(self, before: datetime, *, model: str | None = None) -> ArchiveOutcome:
        """Move the predictions made before ``before`` to the archive (:meth:`PredictionLog.archive`)."""
        return self._archive.archive(before, model=model)

    def days(self, *, model: str | None = None) -> list[LogDay]:
        """Per UTC day and model: predictions and labels in the log and in the archive."""
        return self._archive.days(model=model)

    def _note(self, skips: reads.Skips) -> None:
        if skips.found:
            with self._skipped_lock:
                self._skipped.update(skips.found)

    def skipped(self) -> list[UnreadableBatch]:
        """The unreadable batches that reads of this log met and skipped since it was opened, each once."""
        with self._skipped_lock:
            return [self._skipped[seq] for seq in sorted(self._skipped)]

    def check(self, *, quarantine: bool = False) -> LogCheck:
        """Read every stored batch back (in chunks, oldest first) and list those that cannot be read; with
        ``quarantine``, move each to ``prediction_quarantine`` whole — its batch row, its id entries and its
        labels, with the reason — in a transaction of its own (see :mod:`tidal.storage.sql._schema`)."""
        batches = predictions = 0
        bad: list[tuple[int, UnreadableBatch]] = []
        after = -1
        while True:
            with Transaction(self._conns, False, "checking the prediction log") as conn:
                rows = conn.execute(sa.select(t.prediction_batches).where(_B.seq > after).order_by(_B.seq)
                                    .limit(reads.CHUNK)).mappings().all()
                labels = reads.labels_of(conn, [r["seq"] for r in rows])
            if not rows:
                break
            for row in rows:
                batches += 1
                predictions += row["n"]
                reason = _unreadable_reason(row, labels.get(row["seq"], {}))
                if reason is not None:
                    bad.append((row["seq"], reads.unreadable(row, reason)))
            after = rows[-1]["seq"]
        moved = sum(self._quarantine(seq, found.reason) for seq, found in bad) if quarantine else 0
        return LogCheck(batches=batches, predictions=predictions, unreadable=tuple(b for _, b in bad),
                        quarantined=moved)

    def _quarantine(self, seq: int, reason: str) -> bool:
        """Move the batch ``seq`` to the quarantine table, whole; False when it is gone already."""
        now = datetime.now(UTC)
        with Transaction(self._conns, True, "quarantining a prediction batch") as conn:
            row = conn.execute(sa.select(t.prediction_batches).where(_B.seq == seq)).mappings().first()
            if row is None:
                return False
            id_rows = [[pid, pos] for pid, pos in conn.execute(sa.select(_I.id, _I.pos).where(_I.seq == seq)
                                                                .order_by(_I.id))]
            labels = [[pos, label, label_time.isoformat()] for pos, label, label_time in conn.execute(
                sa.select(_L.pos, _L.label, _L.label_time).where(_L.seq == seq).order_by(_L.pos))]
            conn.execute(t.prediction_quarantine.insert().values(
                **dict(row), id_rows=pc.dumps_value(id_rows, "quarantine.id_rows"),
                labels=pc.dumps_value(labels, "quarantine.labels"), reason=reason, quarantined_at=now))
            conn.execute(t.prediction_labels.delete().where(_L.seq == seq))
            conn.execute(t.prediction_ids.delete().where(_I.seq == seq))
            conn.execute(t.prediction_batches.delete().where(_B.seq == seq))
        with self._skipped_lock:
            self._skipped.pop(seq, None)
        return True

    def count(
        self, *, model: str | None = None, version: int | None = None, since: datetime | None = None,
        labelled: bool | None = None, served: bool | None = True, archived: bool = False,
    ) -> int:
        """How many predictions match (the same filters as :meth:`window`); ``archived``: archived ones too."""
        with Transaction(self._conns, False, "counting predictions") as conn:
            n = reads.count(conn, model=model, version=version, since=since, labelled=labelled, served=served)
            if archived:
                n += self._archive.count(conn, model=model, version=version, since=since, labelled=labelled,
                                         served=served)
            return n


def _unreadable_reason(row: Any, labels: dict[int, tuple[str, datetime]]) -> str | None:
    """Why the batch ``row`` (with its ``labels``) cannot be read back, or None when it can."""
    try:
        check_batch(row)
        for label, _ in labels.values():
            pc.loads_value(label)
    except Unreadable as exc:
        return str(exc)
    except ValueError as exc:
        return f"a label does not parse ({type(exc).__name__})"
    return None
