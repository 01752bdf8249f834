"""A sensor stream as a collection of micro-batches: stream entries → a batch snapshot → the table trained on.

The broker's side (consumer group, pending entries, ``XACK``) is :mod:`tidal.data.sources.stream`; the
metadata store's (the state, committing, acknowledging) is :mod:`tidal.loop.stream`. Here are the data parts:

- :func:`decode`: each entry's reading (a JSON object in ``data.source.field``, or the entry's flat fields)
  as one row, with the entry id in ``data.source.entry_column``; the column ``data.time``, when it holds text,
  read as UTC times. An entry that is not JSON (or not an object) stops the collection with one line naming
  its entry id, unless ``on_error: skip``. So does an entry delivered more than ``max_deliveries`` times (a poison
  reading whose batches keep failing), in :func:`collect_stream`.
- :func:`collect_stream`: one collection. The pending entries this project already holds (their id is in a
  committed batch: a run that was killed after committing, before acknowledging) are only acknowledged; the
  others become a batch snapshot, content-addressed as any snapshot (the entry id column makes two batches of
  equal readings two snapshots).
- :func:`build_table`: the batches in collection order (no deduplication: two equal readings are two
  readings), the entry id column left out, labels joined (below), then ``data.window``.

Labels on a stream of their own (``labels: {stream, id}``) are kept as batches too; the last label of each id
wins, over the reading's own target if it has one. A reading with no label yet stays in its batch and joins
its label when it arrives in a later collection; the table trained on holds the labelled readings only.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from tidal.core.entities import SnapshotInfo
from tidal.core.errors import SourceError
from tidal.data.incremental import window_table
from tidal.data.records import records_frame
from tidal.data.schema import column_kind
from tidal.data.snapshot import make_snapshot
from tidal.data.sources import EmptySourceError
from tidal.data.sources.stream import Broker, Consumed, Entry, entry_key
from tidal.data.timecol import parse_times
from tidal.spec.model import DataSpec
from tidal.spec.source import RedisStreamSpec

_FIX = "check data.source in tidal.yaml"


@dataclass(frozen=True)
class Decoded:
    """The rows of some entries, and the ids of the ones left out: skipped (``on_error: skip``) or deleted from
    the stream before they were read."""

    frame: pd.DataFrame
    skipped: list[str]
    deleted: list[str]


def stream_config(data: DataSpec) -> RedisStreamSpec:
    """``data.source`` as a stream; SourceError when it is not one."""
    if not isinstance(data.source, RedisStreamSpec):
        raise SourceError(f"data.source {str(data.source)[:80]!r} is not a stream", hint=_FIX)
    return data.source


def is_stream(data: DataSpec) -> bool:
    """Whether ``data.source`` is a stream (collected as micro-batches by ``tidal run``)."""
    return isinstance(data.source, RedisStreamSpec)


def decode(config: RedisStreamSpec, entries: list[Entry], stream: str, *, time: str | None = None) -> Decoded:
    """The readings of ``entries`` as rows (first column: the entry id). SourceError naming the entry for one
    that is not a JSON object, unless ``config.on_error`` is ``skip``."""
    records: list[dict[str, Any]] = []
    ids: list[str] = []
    skipped: list[str] = []
    deleted: list[str] = []
    for entry in entries:
        if entry.fields is None:
            deleted.append(entry.id)
            continue
        record, problem = _reading(config, entry.fields)
        if problem is not None:
            if config.on_error == "skip":
                skipped.append(f"{entry.id} ({problem})")
                continue
            raise SourceError(f"stream {stream!r} entry {entry.id}: {problem}: nothing was stored or acknowledged",
                              hint="the devices must send a JSON object; remove the entry (XDEL), or set "
                                   "data.source.on_error: skip")
        assert record is not None
        if config.entry_column in record:
            raise SourceError(f"stream {stream!r} entry {entry.id} has a field {config.entry_column!r}, the column "
                              "that holds the entry id", hint="set data.source.entry_column to another name")
        records.append(record)
        ids.append(entry.id)
    # nested objects flattened as json_normalize does ("sensor.site"); flat readings passed as they are
    frame = records_frame(records)
    frame.columns = [str(c) for c in frame.columns]
    frame.insert(0, config.entry_column, pd.Series(ids, dtype=object))
    if time is not None and time in frame.columns and len(frame) and not pd.api.types.is_numeric_dtype(frame[time]):
        frame[time] = parse_times(frame[time])  # ISO 8601 text (JSON has no times): the snapshot holds times
    return Decoded(frame=frame, skipped=skipped, deleted=deleted)


def _reading(config: RedisStreamSpec, fields: dict[str, str]) -> tuple[dict[str, Any] | None, str | None]:
    """One entry's reading, or why it is not one."""
    if config.field is None:  # flat fields: each value read as JSON when it is JSON ("21.5" → 21.5), else text
        out: dict[str, Any] = {}
        for key, text in fields.items():
            try:
                out[key] = orjson.loads(text)
            except orjson.JSONDecodeError:
                out[key] = text
        return out, None
    if config.field not in fields:
        return None, f"has no field {config.field!r} (its fields: {', '.join(sorted(fields)[:10])})"
    text = fields[config.field]
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return None, f"the field {config.field!r} is not JSON ({exc}; it starts {text[:40]!r})"
    if not isinstance(value, dict):
        return None, f"the field {config.field!r} holds a JSON {type(value).__name__}, not an object"
    return value, None


def readings_table(config: RedisStreamSpec, readings: list[Entry], labels: list[Entry] | None) -> pd.DataFrame:
    """The table of a stream read whole (no group): every reading, its labels joined."""
    rows = decode(config, readings, config.stream).frame
    label_frames = [decode(config, labels, config.labels.stream).frame] if config.labels and labels else []
    table, _ = join_labels(config, [rows], label_frames, target=None)
    if table.empty:
        raise EmptySourceError(f"{config.label} holds no readings", hint=_FIX)
    return table


def join_labels(config: RedisStreamSpec, readings: list[pd.DataFrame], labels: list[pd.DataFrame],
                *, target: str | None) -> tuple[pd.DataFrame, int]:
    """The readings in order, without the entry id column, with their labels joined (``config.labels``); and
    how many readings wait for a label (left out)."""
    frames = [f for f in readings if len(f)]
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[config.entry_column])
    table = table.drop(columns=[config.entry_column])
    spec = config.labels
    if spec is None:
        return table, 0
    found = [f for f in labels if len(f)]
    if spec.id not in table.columns:
        raise SourceError(f"data.source.labels.id {spec.id!r} is not a column of the readings (columns: "
                          f"{', '.join(map(str, table.columns[:20]))})", hint="check data.source.labels.id")
    if not found:
        return table.iloc[0:0], len(table)
    lab = pd.concat(found, ignore_index=True).drop(columns=[config.entry_column])
    if spec.id not in lab.columns:
        raise SourceError(f"the labels on stream {spec.stream!r} have no column {spec.id!r} (data.source.labels.id)",
                          hint="each label must carry the id of its reading and the target")
    columns = [c for c in lab.columns if c != spec.id and (target is None or c == target)]
    if target is not None and target not in columns:
        raise SourceError(f"the labels on stream {spec.stream!r} have no column {target!r} (data.target)",
                          hint="each label must carry the id of its reading and the target")
    lab = lab.drop_duplicates(subset=[spec.id], keep="last")[[spec.id, *columns]]  # the last label of an id wins
    own = [c for c in columns if c in table.columns]
    joined = table.merge(lab, on=spec.id, how="left", suffixes=("", "__label"), validate="many_to_one") \
        if spec.id in table.columns else table
    for column in own:  # a label from the stream wins over the reading's own value, where there is one
        joined[column] = joined[f"{column}__label"].combine_first(joined[column])
        joined = joined.drop(columns=[f"{column}__label"])
    have = joined[columns].notna().all(axis=1) if columns else pd.Series(True, index=joined.index)
    return joined[have.to_numpy()].reset_index(drop=True), int((~have).sum())


_FAMILY = {"integer": "numbers", "numeric": "numbers", "categorical": "text", "boolean": "booleans",
           "datetime": "times"}


def same_kinds(config: RedisStreamSpec, frames: list[pd.DataFrame], stream: str) -> None:
    """SourceError when a column holds another kind of value in a later batch than before (numbers that became
    text after a firmware update, say): the batches could not be one table. Names the column, both kinds and
    the first entry of the batch that changed."""
    seen: dict[str, str] = {}
    for frame in frames:
        for column in frame.columns:
            if column == config.entry_column or frame[column].isna().all():
                continue
            kind = column_kind(frame[column])
            family = _FAMILY.get(kind, kind)
            if kind == "categorical" and pd.api.types.infer_dtype(frame[column], skipna=True).startswith("mixed"):
                family = "numbers and text"
            before = seen.setdefault(column, family)
            if family != before:
                first = frame[config.entry_column].iloc[0] if config.entry_column in frame.columns else "?"
                raise SourceError(f"stream {stream!r}: the readings from entry {first} on hold {family} in {column!r}, "
                                  f"which held {before} before: nothing was stored or acknowledged",
                                  hint="fix the devices, or leave the column out with data.drop (the readings are "
                                       "then read again)")


def build_table(data: DataSpec, readings: list[pd.DataFrame], labels: list[pd.DataFrame],
                created_at: datetime) -> tuple[pd.DataFrame, int]:
    """The table a run trains on (labelled readings, in collection order, cut to ``data.window``), and how many
    readings wait for a label."""
    config = stream_config(data)
    if data.drop:  # a column the model leaves out may change as it likes (the way past a changed type)
        readings = [f.drop(columns=[c for c in data.drop if c in f.columns]) for f in readings]
    same_kinds(config, readings, config.stream)
    if config.labels is not None:
        same_kinds(config, labels, config.labels.stream)
    try:
        table, waiting = join_labels(config, readings, labels, target=data.target)
    except (ValueError, TypeError) as exc:  # ids of different types in readings and labels, say
        by = config.labels.id if config.labels else "their id"
        raise SourceError(f"the labels cannot be joined to the readings by {by!r}: {exc}",
                          hint="the id must have the same type in readings and labels") from None
    if table.empty:
        what = (f"none of the {waiting} readings has a label yet" if waiting else
                f"{config.label} has no readings yet")
        raise EmptySourceError(what, hint="run again once readings (and labels) have arrived")
    return window_table(table, data, created_at), waiting


def held_ids(config: RedisStreamSpec, batches: list[pd.DataFrame]) -> set[str]:
    """The entry ids that ``batches`` hold."""
    return {str(i) for frame in batches if config.entry_column in frame.columns
            for i in frame[config.entry_column].tolist()}


# -- one collection --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class StreamIncrement:
    """What one collection from a stream found: the batch of new readings (and of labels), the last entry id of
    each stream after it (``marks``), the entries to acknowledge once it is committed, the table to train on (None
    for a collection that makes no table: ``tidal loop``'s, whose retrain merges the committed batches)."""

    batch: tuple[SnapshotInfo, bytes] | None
    label_batch: tuple[SnapshotInfo, bytes] | None
    marks: dict[str, str]
    acks: dict[str, list[str]]
    table: tuple[SnapshotInfo, bytes] | None
    new_rows: int
    new_labels: int
    message: str
    warnings: list[str]


def collect_stream(data: DataSpec, *, base_dir: Path, project: str, created_at: datetime, marks: dict[str, str],
                   previous: list[pd.DataFrame], previous_labels: list[pd.DataFrame],
                   snapshot_table: bool = True) -> StreamIncrement:
    """Read this consumer's unacknowledged entries (pending first, then new), make a batch of the readings not
    already held (a pending entry whose id is in one of the ``previous`` batches is only acknowledged; ``marks``,
    the committed last id of each stream, names where this collection starts), and build the table from
    ``previous`` batches and the new one. Nothing is acknowledged here: :mod:`tidal.loop.stream` does it after
    the commit. ``snapshot_table``: False to check the table (kinds that changed, labels that cannot be joined,
    no labelled reading) without snapshotting it, for a collection that trains nothing itself."""
    config = stream_config(data)
    broker = Broker(config)
    try:
        got = broker.consume(config.stream, config.max_readings)
        got_labels = broker.consume(config.labels.stream, config.max_readings) if config.labels else None
    finally:
        broker.close()
    acks: dict[str, list[str]] = {}
    new_marks = dict(marks)
    warnings: list[str] = []
    held_total = 0

    def fresh(consumed: Consumed, before: list[pd.DataFrame]) -> list[Entry]:
        nonlocal held_total
        mark = marks.get(consumed.stream)
        # the pending entries that a committed batch holds already (a run killed between its commit and its XACK):
        # by their ids in the batches, not by the last id, so that it stays exact if two runs ever overlap
        known = held_ids(config, before) if consumed.pending and before else set()
        held = {e.id for e in consumed.pending if e.id in known}
        held_total += len(held)
        acks[consumed.stream] = [e.id for e in consumed.entries]  # the poison ones too, when skipped
        if consumed.entries:
            # the broker hands each part (pending, new) in id order: the last id is the last of one of them
            last = max((part[-1].id for part in (consumed.pending, consumed.new) if part), key=entry_key)
            if mark is None or entry_key(last) > entry_key(mark):
                new_marks[consumed.stream] = last
        return _unpoisoned(config, consumed, [e for e in consumed.entries if e.id not in held], warnings)

    def batch_of(consumed: Consumed, time: str | None,
                 before: list[pd.DataFrame]) -> tuple[tuple[SnapshotInfo, bytes] | None, pd.DataFrame]:
        decoded = decode(config, fresh(consumed, before), consumed.stream, time=time)
        if decoded.skipped:
            warnings.append(f"stream {consumed.stream!r}: {len(decoded.skipped)} entries left out (on_error: skip): "
                            + "; ".join(decoded.skipped[:5]))
        if decoded.deleted:
            warnings.append(f"stream {consumed.stream!r}: {len(decoded.deleted)} pending entries were deleted from "
                            f"the stream before they were collected: {', '.join(decoded.deleted[:5])}")
        frame = decoded.frame
        if frame.empty:
            return None, frame
        info, payload = make_snapshot(frame, project=project, source=config.label, created_at=created_at)
        ids = frame[config.entry_column]
        info = replace(info, profile={**info.profile, "stream": {
            "stream": consumed.stream, "group": config.group, "first": ids.iloc[0], "last": ids.iloc[-1],
            "after": marks.get(consumed.stream)}})
        return (info, payload), frame

    batch, frame = batch_of(got, data.time, previous)
    label_batch, label_frame = (None, pd.DataFrame()) if got_labels is None else batch_of(got_labels, None,
                                                                                         previous_labels)
    readings = [*previous, frame] if batch else list(previous)
    labels = [*previous_labels, label_frame] if label_batch else list(previous_labels)
    table, waiting = build_table(data, readings, labels, created_at)
    made = make_snapshot(table, project=project, source=config.label, created_at=created_at,
                         profile=_profile_of_first(config, batch, frame, previous, table)) if snapshot_table else None
    since = marks.get(config.stream) or "the start"
    if batch is not None:
        message = (f"collected {len(frame)} new readings from stream {config.stream!r} since {since} (last entry "
                   f"{new_marks[config.stream]})")
    else:
        message = f"no new readings on stream {config.stream!r} since {since}"
    if config.labels is not None:
        message += f"; {len(label_frame)} new labels, {waiting} readings wait for a label"
    if held_total:
        message += f"; {held_total} entries read before were already collected (acknowledged now)"
    return StreamIncrement(batch=batch, label_batch=label_batch, marks=new_marks, acks=acks,
                           table=made, new_rows=len(frame), new_labels=len(label_frame),
                           message=message, warnings=warnings)


def _unpoisoned(config: RedisStreamSpec, consumed: Consumed, entries: list[Entry], warnings: list[str]) -> list[Entry]:
    """``entries`` without those delivered more than ``max_deliveries`` times (a reading whose batches keep
    failing, here or under a consumer that died on it): treated as a reading that is not JSON, by
    ``on_error`` (refuse: SourceError naming it; skip: left out, acknowledged with the batch, and warned). Adds a
    warning for the entries claimed from other consumers."""
    stream = consumed.stream
    if consumed.claimed:
        who = ", ".join(f"{n} from {name!r}" for name, n in sorted(consumed.claimed.items()))
        warnings.append(f"stream {stream!r}: claimed {sum(consumed.claimed.values())} entries pending longer than "
                        f"claim_idle ({_duration(config.claim_idle)}) under other consumers ({who})")
    if consumed.claimed_gone:
        warnings.append(f"stream {stream!r}: {len(consumed.claimed_gone)} claimed entries were deleted from the stream "
                        f"before they were collected: {', '.join(consumed.claimed_gone[:5])}")
    limit = config.max_deliveries
    if limit is None or not consumed.deliveries:
        return entries
    poison = [e for e in entries if e.fields is not None and consumed.deliveries.get(e.id, 1) > limit]
    if not poison:
        return entries
    first = poison[0].id
    if config.on_error != "skip":
        raise SourceError(f"stream {stream!r} entry {first} was delivered {consumed.deliveries[first]} times, more "
                          f"than max_deliveries ({limit}){f' (and {len(poison) - 1} more)' if len(poison) > 1 else ''}"
                          ": nothing was stored or acknowledged",
                          hint="find why its batches fail; remove it (XACK or XDEL), raise data.source.max_deliveries, "
                               "or set data.source.on_error: skip")
    warnings.append(f"stream {stream!r}: {len(poison)} entries left out (on_error: skip): "
                    + "; ".join(f"{e.id} (delivered {consumed.deliveries[e.id]} times, more than max_deliveries "
                                f"{limit})" for e in poison[:5]))
    out = {e.id for e in poison}
    return [e for e in entries if e.id not in out]


def _duration(seconds: float) -> str:
    """``600.0`` → ``10m``; ``0.25`` → ``250ms``: a duration as the spec writes it."""
    for unit, size in (("h", 3600.0), ("m", 60.0), ("s", 1.0)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s" if seconds >= 1 else f"{seconds * 1000:g}ms"


def _profile_of_first(config: RedisStreamSpec, batch: tuple[SnapshotInfo, bytes] | None, frame: pd.DataFrame,
                      previous: list[pd.DataFrame], table: pd.DataFrame) -> dict[str, Any] | None:
    """The table's statistics profile read off its batch's, when the table is the batch without the entry id column
    (the first collection, no labels, nothing dropped or windowed out): a column's profile depends on its values
    alone, so the batch's hold the table's. None otherwise (the table is profiled)."""
    if batch is None or previous or config.labels is not None or len(table) != len(frame):
        return None
    if list(table.columns) != [c for c in frame.columns if c != config.entry_column]:
        return None
    known = batch[0].profile
    return {"version": known["version"], "rows": known["rows"],
            "columns": {k: v for k, v in known["columns"].items() if k != config.entry_column}}


__all__ = ["Decoded", "StreamIncrement", "build_table", "collect_stream", "decode", "held_ids", "is_stream",
           "join_labels", "readings_table", "same_kinds", "stream_config"]
