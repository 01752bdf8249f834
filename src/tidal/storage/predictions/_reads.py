"""The reads of the batched SQL prediction log: get, window and count over batches, ids and labels.

Every filter but ``labelled`` is a property of a whole batch (model, version, deployment, served, time),
so the queries pick batches by the indexes of ``prediction_batches`` and explode only the batches they
need; ``labelled`` reads ``prediction_labels``, which carries the batch's model, served, version and time
so that counting labels needs no join.

- ``window(last=N)`` walks the batch index ``(model, served, seq, n)`` backwards, summing ``n`` from the
  index alone, until it has N predictions, then reads just those batches;
- ``window(labelled=True)`` walks the label index ``(model, served, seq, pos)`` and reads the batches of
  the labels it found;
- ``count`` sums ``n`` from a batch index (``labelled=True``: counts label rows; ``False``: the difference).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from tidal.core.entities import Prediction, UnreadableBatch
from tidal.core.errors import StorageError
from tidal.core.ids import split_id
from tidal.storage.predictions._batch_codec import Unreadable, decode_batch
from tidal.storage.sql import _schema as t

B = t.prediction_batches.c
L = t.prediction_labels.c
I = t.prediction_ids.c  # noqa: E741 (the ids table, as B and L)

#: Seqs per ``IN (...)`` query (well under SQLite's and PostgreSQL's parameter limits).
CHUNK = 500
#: Batch headers read per step when walking backwards for ``window(last=N)``.
WALK = 256

_BATCH = sa.select(t.prediction_batches)


class Skips:
    """The unreadable batches a read met (seq → what is known of it): reads skip them rather than fail the
    whole window, and the log reports them (:meth:`~tidal.storage.predictions.sql_log.SqlPredictionLog.skipped`)."""

    def __init__(self) -> None:
        self.found: dict[int, UnreadableBatch] = {}

    def decode(self, row: Any, labels: dict[int, tuple[str, datetime]],
               positions: Sequence[int] | None = None) -> list[Prediction]:
        """:func:`decode_batch`, or no predictions (and a note) for a batch that cannot be read."""
        try:
            return decode_batch(row, labels, positions)
        except Unreadable as exc:
            self.found[row["seq"]] = unreadable(row, str(exc))
            return []


def unreadable(row: Any, reason: str) -> UnreadableBatch:
    """What is known of an unreadable batch ``row``: its header, and why it cannot be read."""
    return UnreadableBatch(ref=f"batch {row['seq']}", model=row["model"], version=row["version"], time=row["time"],
                           predictions=row["n"], reason=reason)


def chunks(values: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def batch_filters(*, model: str | None, version: int | None, since: datetime | None, until: datetime | None,
                  served: bool | None, deployment: str | None) -> list[sa.ColumnElement[bool]]:
    conds: list[sa.ColumnElement[bool]] = []
    if model is not None:
        conds.append(B.model == model)
    if served is not None:
        conds.append(B.served == bool(served))
    if version is not None:
        conds.append(B.version == int(version))
    if since is not None:
        conds.append(B.time >= since)
    if until is not None:
        conds.append(B.time < until)
    if deployment is not None:
        conds.append(B.deployment == deployment)
    return conds


def label_filters(*, model: str | None, version: int | None, since: datetime | None,
                  served: bool | None) -> list[sa.ColumnElement[bool]]:
    conds: list[sa.ColumnElement[bool]] = []
    if model is not None:
        conds.append(L.model == model)
    if served is not None:
        conds.append(L.served == bool(served))
    if version is not None:
        conds.append(L.version == int(version))
    if since is not None:
        conds.append(L.time >= since)
    return conds


def batches(conn: Connection, seqs: Sequence[int]) -> dict[int, Any]:
    """The batch rows of ``seqs`` (seq → row mapping)."""
    out: dict[int, Any] = {}
    for part in chunks(sorted(set(seqs))):
        out.update((r["seq"], r) for r in conn.execute(_BATCH.where(B.seq.in_(part))).mappings())
    return out


def labels_of(conn: Connection, seqs: Sequence[int]) -> dict[int, dict[int, tuple[str, datetime]]]:
    """The labels of the batches ``seqs``: seq → position → (label JSON, label time)."""
    out: dict[int, dict[int, tuple[str, datetime]]] = {}
    for part in chunks(sorted(set(seqs))):
        query = sa.select(L.seq, L.pos, L.label, L.label_time).where(L.seq.in_(part))
        for seq, pos, label, label_time in conn.execute(query):
            out.setdefault(seq, {})[pos] = (label, label_time)
    return out


def locate(conn: Connection, ids: Sequence[str], *, for_update: bool = False) -> dict[str, tuple[int, int]]:
    """Where the stored predictions among ``ids`` are: id → (batch seq, position).

    An id is found by its own row of ``prediction_ids``, or as a member of a range: the row of its prefix,
    whose ``pos`` is minus the number of ids the range holds (see :mod:`tidal.core.ids`). ``for_update``
    locks the rows read (PostgreSQL), in key order, so that concurrent labellers queue without deadlocks.
    """
    found: dict[str, tuple[int, int]] = {}
    wanted = sorted(set(ids))
    for part in chunks(wanted):
        query = sa.select(I.id, I.seq, I.pos).where(I.id.in_(part), I.pos >= 0).order_by(I.id)
        found.update((pid, (seq, pos)) for pid, seq, pos in conn.execute(
            query.with_for_update() if for_update else query))
    ranged = {pid: where for pid in wanted if pid not in found and (where := split_id(pid)) is not None}
    prefixes = sorted({prefix for prefix, _ in ranged.values()})
    ranges: dict[str, tuple[int, int]] = {}
    for part in chunks(prefixes):
        query = sa.select(I.id, I.seq, I.pos).where(I.id.in_(part), I.pos < 0).order_by(I.id)
        ranges.update((prefix, (seq, -neg)) for prefix, seq, neg in conn.execute(
            query.with_for_update() if for_update else query))
    for pid, (prefix, position) in ranged.items():
        held = ranges.get(prefix)
        if held is not None and position < held[1]:
            found[pid] = (held[0], position)
    return found


def get(conn: Connection, prediction_id: str) -> Prediction | None:
    found = locate(conn, [prediction_id]).get(prediction_id)
    if found is None:
        return None
    seq, pos = found
    row = conn.execute(_BATCH.where(B.seq == seq)).mappings().one()
    label = conn.execute(sa.select(L.label, L.label_time).where(L.seq == seq, L.pos == pos)).first()
    try:
        return decode_batch(row, {pos: (label[0], label[1])} if label is not None else {}, [pos])[0]
    except Unreadable as exc:
        raise StorageError(f"the prediction is stored in a batch that cannot be read (batch {seq}: {exc})",
                           hint="run `tidal predictions check --quarantine` to move such batches aside") from None


def get_many(conn: Connection, ids: Sequence[str], skips: Skips) -> dict[str, Prediction]:
    """The stored, readable predictions among ``ids`` (id → prediction)."""
    where: dict[int, list[int]] = {}
    for seq, pos in locate(conn, ids).values():
        where.setdefault(seq, []).append(pos)
    rows, labels = batches(conn, list(where)), labels_of(conn, list(where))
    return {p.id: p for seq, positions in where.items()
            for p in skips.decode(rows[seq], labels.get(seq, {}), sorted(positions))}


def window(conn: Connection, *, last: int | None, labelled: bool | None, model: str | None, version: int | None,
           since: datetime | None, until: datetime | None, served: bool | None,
           deployment: str | None, skips: Skips) -> list[Prediction]:
    """See :meth:`tidal.storage.predictions.sql_log.SqlPredictionLog.window`; unreadable batches go to ``skips``."""
    conds = batch_filters(model=model, version=version, since=since, until=until, served=served,
                          deployment=deployment)
    if labelled:
        return _labelled_window(conn, conds, last=last, model=model, served=served, skips=skips)
    if last is None:
        rows = conn.execute(_BATCH.where(*conds).order_by(B.seq)).mappings().all()
        labels = labels_of(conn, [r["seq"] for r in rows])
        found = [p for r in rows for p in skips.decode(r, labels.get(r["seq"], {}))]
        return [p for p in found if p.label_time is None] if labelled is False else found
    # The newest `last`: walk the batch index backwards (seq and n come from the index), then read only the
    # batches that hold them; an unreadable batch counts for nothing, and the walk goes on past it.
    picked: list[int] = []
    decoded: dict[int, list[Prediction]] = {}
    labels = {}  # seq → position → (label JSON, label time), as labels_of gives them
    have, before = 0, None
    while have < last:
        query = sa.select(B.seq, B.n).where(*conds)
        if before is not None:
            query = query.where(B.seq < before)
        step = conn.execute(query.order_by(B.seq.desc()).limit(WALK)).all()
        if not step:
            break
        if labelled is False:
            labels.update(labels_of(conn, [s for s, _ in step]))
        chosen: list[tuple[int, int]] = []
        for seq, n in step:
            counted = n - (len(labels.get(seq, {})) if labelled is False else 0)
            chosen.append((seq, counted))
            have += counted
            if have >= last:
                break
        before = chosen[-1][0]
        chosen_rows = batches(conn, [seq for seq, _ in chosen])
        if labelled is None:
            labels.update(labels_of(conn, [seq for seq, _ in chosen]))
        for seq, counted in chosen:
            decoded[seq] = skips.decode(chosen_rows[seq], labels.get(seq, {}))
            if seq in skips.found:
                have -= counted
            picked.append(seq)
    found = [p for seq in reversed(picked) for p in decoded[seq]]
    if labelled is False:
        found = [p for p in found if p.label_time is None]
    return found[-last:]


def _labelled_window(conn: Connection, conds: list[sa.ColumnElement[bool]], *, last: int | None,
                     model: str | None, served: bool | None, skips: Skips) -> list[Prediction]:
    # The label index leads with (model, served): put those conditions on the label columns, the others
    # on the batch each label belongs to.
    lconds = label_filters(model=model, version=None, since=None, served=served)
    query = (sa.select(L.seq, L.pos, L.label, L.label_time)
             .select_from(t.prediction_labels.join(t.prediction_batches, B.seq == L.seq))
             .where(*lconds, *conds))
    if last is None:
        found = conn.execute(query.order_by(L.seq, L.pos)).all()
    else:
        found = list(reversed(conn.execute(query.order_by(L.seq.desc(), L.pos.desc()).limit(last)).all()))
    by_seq: dict[int, dict[int, tuple[str, datetime]]] = {}
    for seq, pos, label, label_time in found:
        by_seq.setdefault(seq, {})[pos] = (label, label_time)
    rows = batches(conn, list(by_seq))
    decoded: dict[int, dict[int, Prediction]] = {}
    for seq, got in by_seq.items():
        positions = sorted(got)
        predictions = skips.decode(rows[seq], got, positions)
        if predictions:
            decoded[seq] = dict(zip(positions, predictions, strict=True))
    return [decoded[seq][pos] for seq, pos, _, _ in found if seq in decoded]


def count(conn: Connection, *, model: str | None, version: int | None, since: datetime | None,
          labelled: bool | None, served: bool | None) -> int:
    """See :meth:`tidal.storage.predictions.sql_log.SqlPredictionLog.count`."""
    lconds = label_filters(model=model, version=version, since=since, served=served)
    with_labels = 0
    if labelled is not None:
        query = sa.select(sa.func.count()).select_from(t.prediction_labels).where(*lconds)
        with_labels = int(conn.execute(query).scalar_one())
        if labelled:
            return with_labels
    conds = batch_filters(model=model, version=version, since=since, until=None, served=served, deployment=None)
    query = sa.select(sa.func.coalesce(sa.func.sum(B.n), 0)).where(*conds)
    return int(conn.execute(query).scalar_one()) - with_labels


__all__ = ["Skips", "batches", "count", "get", "get_many", "labels_of", "unreadable", "window"]
