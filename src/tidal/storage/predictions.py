"""The SQL prediction log: :class:`~tidal.core.ports.PredictionLog` on SQLite or PostgreSQL.

It shares the metadata store's machinery: the same migrations run on open (a prediction log database
holds the metadata tables too, empty, and a metadata store database may hold the log), one connection
per thread, ``BEGIN IMMEDIATE`` on SQLite, errors translated to
:class:`~tidal.core.errors.StorageError` naming the database (never its password).

``append`` goes through :class:`~tidal.storage.group_commit.GroupCommit`: the predictions of concurrent
calls are inserted by one ``executemany`` in one transaction, and each call returns once that
transaction has committed. Several processes (server workers) may append to the same SQLite file:
SQLite lets one write at a time and the others wait for it (busy timeout), batch by batch.

Durability. ``durability="process"`` (the default): on SQLite a commit is a write to the WAL file, no
``fsync``: a committed prediction survives the process being killed (SIGKILL included), not a crash of
the operating system or a power cut. ``durability="power"`` adds an ``fsync`` per commit (SQLite
``synchronous=FULL``), shared by every prediction of the batch. On PostgreSQL the server decides
(``synchronous_commit``); the option is ignored.

Reads at millions of rows (see the indexes in :mod:`tidal.storage.sql_schema`): ``window(model=,
last=N)`` walks ``(model, served, seq)`` backwards and stops after N matches; ``since``/``until`` find
their range on ``(model, served, time)``; ``count`` reads an index alone. Filters that no index leads
with (``version``, ``labelled``, ``deployment``) are checked row by row on the way, which stays cheap
while the rows they pick are among the newest (the serving version, recent labels).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal, NamedTuple

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from tidal.core.entities import Feedback, Prediction
from tidal.core.errors import StorageError
from tidal.storage import _predictions_codec as pc
from tidal.storage import sql_schema as t
from tidal.storage.group_commit import CommitStats, GroupCommit
from tidal.storage.sql_checkpoint import WalCheckpointer
from tidal.storage.sql_engine import (
    ThreadConnections,
    Transaction,
    create_engine_for,
    is_unique_violation,
    redact,
    resolve_url,
)
from tidal.storage.sql_migrate import ensure_schema

Durability = Literal["process", "power"]

#: Ids per ``IN (...)`` query (well under SQLite's and PostgreSQL's parameter limits).
_CHUNK = 500

_P = t.predictions.c
_ROW = [c for c in t.predictions.c if c.name != "seq"]


class _Batch(NamedTuple):
    """One ``append`` call's predictions, and their values as the driver's parameters for the INSERT."""

    predictions: Sequence[Prediction]
    params: list[tuple[Any, ...]]


class _DriverInsert:
    """The INSERT of the hot path, executed at the driver level.

    SQLAlchemy's ``executemany`` spends about 7 µs a row building each row's parameters and running the
    type processors (profiled at 1,000-row appends: more than the SQLite insert itself). This builds the
    same values with the same processors (the columns' ``bind_processor`` for this dialect, so what is
    stored is what ``conn.execute(insert)`` would store), but runs each processor once per distinct
    value: the predictions of one request share their time, model and flags.
    """

    def __init__(self, dialect: Any) -> None:
        quote = dialect.identifier_preparer.quote
        mark = "?" if dialect.paramstyle in ("qmark", "numeric") else "%s"
        columns = {c.name: c for c in _ROW}
        assert set(columns) == set(pc.COLUMNS), "the codec and the table disagree on the columns"
        self.sql = (f"INSERT INTO {quote(t.predictions.name)} ({', '.join(quote(n) for n in pc.COLUMNS)}) "
                    f"VALUES ({', '.join([mark] * len(pc.COLUMNS))})")
        self._processors = [(i, proc) for i, name in enumerate(pc.COLUMNS)
                            if (proc := columns[name].type.dialect_impl(dialect).bind_processor(dialect))
                            is not None]

    def params(self, predictions: Sequence[Prediction]) -> list[tuple[Any, ...]]:
        """The INSERT's parameters for ``predictions`` (raises StorageError for a value it cannot store)."""
        processors = self._processors
        done: dict[tuple[int, Any], Any] = {}
        out: list[tuple[Any, ...]] = []
        for p in predictions:
            values = list(pc.prediction_values(p))
            for i, proc in processors:
                value = values[i]
                if value is not None:
                    key = (i, value)
                    stored = done.get(key, done)
                    if stored is done:
                        stored = done[key] = proc(value)
                    values[i] = stored
            out.append(tuple(values))
        return out


class _RepeatedId(Exception):
    """Raised inside a batch's transaction (so that it rolls back) when an id is already stored."""


def _full_sync(dbapi_connection: Any, _record: Any) -> None:
    # Runs after sql_engine's own connect hook (listeners run in order), replacing synchronous=NORMAL.
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

    def __init__(self, url: str, *, durability: Durability = "process") -> None:
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
        self._fast = _DriverInsert(engine.dialect)
        # Built once, so SQLAlchemy finds the compiled statements in its cache (see sql.py).
        self._insert = t.predictions.insert()
        self._select_rows = sa.select(*_ROW)
        self._set_label = t.predictions.update().where(_P.id == sa.bindparam("pid"))

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
        return _Batch(predictions, self._fast.params(predictions))

    def _write_batch(self, batches: Sequence[_Batch]) -> list[BaseException | None]:
        """The group commit's write: every caller's rows in one INSERT, one transaction."""
        params = batches[0].params if len(batches) == 1 else [r for b in batches for r in b.params]
        try:
            with Transaction(self._conns, True, "appending predictions") as conn:
                try:
                    # One row goes through execute(), not executemany(): measurably cheaper.
                    conn.exec_driver_sql(self._fast.sql, params[0] if len(params) == 1 else params)
                except sa_exc.IntegrityError as exc:
                    if is_unique_violation(exc):
                        raise _RepeatedId from exc
                    raise
            return [None] * len(batches)
        except _RepeatedId:
            pass
        # Some id is stored already (a retry, or a clash): settle each caller's rows on their own, so
        # that a clash fails only the call that brought it.
        outcomes: list[BaseException | None] = []
        for batch in batches:
            try:
                self._append_settled([pc.encode_prediction(p) for p in batch.predictions])
                outcomes.append(None)
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    def _append_settled(self, rows: list[dict[str, Any]]) -> None:
        with Transaction(self._conns, True, "appending predictions") as conn:
            stored = self._stored_rows(conn, list({r["id"] for r in rows}))
            fresh = pc.new_rows(rows, stored)
            if fresh:
                conn.execute(self._insert, fresh)

    def _stored_rows(self, conn: Connection, ids: list[str]) -> dict[str, dict[str, Any]]:
        stored: dict[str, dict[str, Any]] = {}
        for i in range(0, len(ids), _CHUNK):
            query = self._select_rows.where(_P.id.in_(ids[i:i + _CHUNK]))
            stored.update((r["id"], dict(r)) for r in conn.execute(query).mappings())
        return stored

    # -- feedback -------------------------------------------------------------------------------------

    def add_feedback(self, feedback: Sequence[Feedback], *, overwrite: bool = False) -> int:
        """Attach labels, all or nothing; returns how many were stored.

        Raises FeedbackRejected (``reason`` ``unknown`` or ``duplicate``, with the item's ``index``) for
        the first item that cannot be stored: an unknown prediction id, an id that has a label already
        (unless ``overwrite``), or an id that appears twice in ``feedback``.
        """
        if not feedback:
            return 0
        params = [pc.encode_feedback(fb) for fb in feedback]
        ids = sorted({fb.prediction_id for fb in feedback})
        with Transaction(self._conns, True, "storing feedback") as conn:
            labelled: dict[str, bool] = {}
            for i in range(0, len(ids), _CHUNK):
                # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes other writers): a
                # concurrent labeller waits, then sees this label, so two "first" labels cannot both win.
                # Rows are locked in id order, so two batches cannot deadlock on each other.
                query = sa.select(_P.id, _P.label_time.is_not(None)).where(
                    _P.id.in_(ids[i:i + _CHUNK])).order_by(_P.id).with_for_update()
                labelled.update((pid, bool(has)) for pid, has in conn.execute(query))
            pc.check_feedback(feedback, labelled, overwrite=overwrite)
            conn.execute(self._set_label, params[0] if len(params) == 1 else params)
        return len(params)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, prediction_id: str) -> Prediction:
        """The prediction ``prediction_id`` with its label, if any; KeyError when unknown."""
        with Transaction(self._conns, False, "reading a prediction") as conn:
            row = conn.execute(self._select_rows.where(_P.id == prediction_id)).mappings().first()
        if row is None:
            raise pc.no_prediction(prediction_id)
        return pc.decode_prediction(row)

    def window(
        self, *, model: str | None = None, version: int | None = None, last: int | None = None,
        since: datetime | None = None, until: datetime | None = None, labelled: bool | None = None,
        served: bool | None = True, deployment: str | None = None,
    ) -> list[Prediction]:
        """The matching predictions in the order they were appended; ``last`` keeps the newest ``last``.

        ``since`` is inclusive and ``until`` exclusive (prediction times); None means no filter, and
        ``served`` defaults to True (answers that were returned; shadow answers are not).
        """
        if last is not None and last <= 0:
            return []
        conds = _filters(model=model, version=version, since=since, until=until, labelled=labelled,
                         served=served, deployment=deployment)
        query = self._select_rows.where(*conds)
        # The newest ``last`` come from walking the (model, served, seq) index backwards.
        query = query.order_by(_P.seq) if last is None else query.order_by(_P.seq.desc()).limit(last)
        with Transaction(self._conns, False, "reading predictions") as conn:
            rows = conn.execute(query).mappings().all()
        found = [pc.decode_prediction(r) for r in rows]
        if last is not None:
            found.reverse()
        return found

    def count(
        self, *, model: str | None = None, version: int | None = None, since: datetime | None = None,
        labelled: bool | None = None, served: bool | None = True,
    ) -> int:
        """How many predictions match (the same filters as :meth:`window`)."""
        conds = _filters(model=model, version=version, since=since, until=None, labelled=labelled,
                         served=served, deployment=None)
        query = sa.select(sa.func.count()).select_from(t.predictions).where(*conds)
        with Transaction(self._conns, False, "counting predictions") as conn:
            return int(conn.execute(query).scalar_one())


def _filters(
    *, model: str | None, version: int | None, since: datetime | None, until: datetime | None,
    labelled: bool | None, served: bool | None, deployment: str | None,
) -> list[sa.ColumnElement[bool]]:
    conds: list[sa.ColumnElement[bool]] = []
    if model is not None:
        conds.append(_P.model == model)
    if served is not None:
        conds.append(_P.served == bool(served))
    if version is not None:
        conds.append(_P.version == int(version))
    if since is not None:
        conds.append(_P.time >= since)
    if until is not None:
        conds.append(_P.time < until)
    if labelled is not None:
        conds.append(_P.label_time.is_not(None) if labelled else _P.label_time.is_(None))
    if deployment is not None:
        conds.append(_P.deployment == deployment)
    return conds
