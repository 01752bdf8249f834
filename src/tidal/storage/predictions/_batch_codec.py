"""Predictions ↔ the rows of the batched SQL prediction log (``prediction_batches``, ``prediction_labels``).

An ``append`` call's predictions are cut into *groups*: runs of consecutive predictions that share their
header (time, model, version, deployment, served, request id), which is every prediction of a served
request. A group is stored as one batch row, its ids, inputs, outputs and probabilities as JSON arrays
(one ``orjson.dumps`` each: a thousand rows cost one call, not a thousand). Values are encoded by the
same rules as every other prediction log (:mod:`tidal.storage.predictions._codec`): NaN as null, the
same error naming the field of a value that cannot be stored, a label without a time dating from the
prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tidal.core.batches import PredictionBatch, parts_of
from tidal.core.entities import Prediction
from tidal.core.ids import IdRange
from tidal.storage._codec import utc, utc_or_none
from tidal.storage.predictions._codec import dumps_value, loads_value

#: A prediction_batches row read by column name: a dict, or SQLAlchemy's RowMapping (keyed by name or Column).
BatchRow = Mapping[Any, Any]

#: What the predictions of one batch row share.
Header = tuple[datetime, str, int, str, bool, str | None]


@dataclass(frozen=True)
class Group:
    """Consecutive predictions of one append with one header, encoded for one batch row."""

    header: Header
    ids: list[str]
    ids_json: str
    inputs: str
    outputs: str
    probas: str | None
    #: (position, label JSON, label time) of the predictions appended with their label
    labels: list[tuple[int, str, datetime]]
    #: (prefix, count) when the ids are an :class:`~tidal.core.ids.IdRange`: stored as one entry, not one per id
    id_range: tuple[str, int] | None = None


def header(p: Prediction) -> Header:
    return (utc(p.time), p.model, int(p.version), p.deployment, bool(p.served), p.request_id)


def encode_groups(predictions: Sequence[Prediction]) -> list[Group]:
    """``predictions`` cut into groups (see the module docstring), in order. A
    :class:`~tidal.core.batches.PredictionBatch` (or a chain of them) is a group as it stands, encoded from
    its columns without making a record per prediction."""
    groups: list[Group] = []
    for part in parts_of(predictions):
        if isinstance(part, PredictionBatch):
            if len(part):
                groups.append(_encode_batch(part))
        else:
            groups.extend(_group_rows(part))
    return groups


def _encode_batch(b: PredictionBatch) -> Group:
    probas = b.probas
    ranged = b.ids if isinstance(b.ids, IdRange) else None
    ids = ranged.tolist() if ranged is not None else list(b.ids)
    return Group(
        header=(utc(b.time), b.model, int(b.version), b.deployment, bool(b.served), b.request_id),
        ids=ids, ids_json=dumps_value(ids, "prediction.id"),
        id_range=(ranged.prefix, ranged.n) if ranged is not None else None,
        inputs=dumps_value(list(b.inputs), "prediction.inputs"),
        outputs=dumps_value(list(b.outputs), "prediction.output"),
        probas=None if probas is None or all(q is None for q in probas) else dumps_value(list(probas),
                                                                                         "prediction.proba"),
        labels=[])


def _group_rows(predictions: Sequence[Prediction]) -> list[Group]:
    groups: list[Group] = []
    start = 0
    current = header(predictions[0]) if predictions else None
    for i in range(1, len(predictions) + 1):
        nxt = header(predictions[i]) if i < len(predictions) else None
        if nxt != current:
            assert current is not None
            groups.append(_encode(current, predictions[start:i]))
            start, current = i, nxt
    return groups


def _encode(head: Header, preds: Sequence[Prediction]) -> Group:
    ids = [p.id for p in preds]
    probas = [p.proba for p in preds]
    labels = [(pos, dumps_value(p.label, "prediction.label"), utc_or_none(p.label_time) or head[0])
              for pos, p in enumerate(preds) if p.label is not None or p.label_time is not None]
    return Group(
        header=head, ids=ids, ids_json=dumps_value(ids, "prediction.id"),
        inputs=dumps_value([p.inputs for p in preds], "prediction.inputs"),
        outputs=dumps_value([p.output for p in preds], "prediction.output"),
        probas=None if all(q is None for q in probas) else dumps_value(probas, "prediction.proba"),
        labels=labels)


class Unreadable(Exception):
    """A stored batch row that cannot be decoded into its predictions; the message says why."""


def check_batch(row: BatchRow) -> tuple[list[Any], list[Any], list[Any], list[Any] | None]:
    """The ids, inputs, outputs and probabilities of a batch ``row``, checked to be what tidal writes: JSON
    arrays of ``n`` values each, ids strings, inputs objects. Raises :class:`Unreadable` otherwise."""
    n = row["n"]
    try:
        ids = loads_value(row["ids"])
        inputs = loads_value(row["inputs"])
        outputs = loads_value(row["outputs"])
        probas = loads_value(row["probas"]) if row["probas"] is not None else None
    except ValueError as exc:  # orjson's and json's decode errors both are ValueErrors
        raise Unreadable(f"its stored JSON does not parse ({type(exc).__name__}: {str(exc)[:120]})") from None
    for name, values in (("ids", ids), ("inputs", inputs), ("outputs", outputs), ("probabilities", probas)):
        if values is None and name == "probabilities":
            continue
        if type(values) is not list or len(values) != n:
            what = f"{len(values)} values" if type(values) is list else f"a {type(values).__name__}"
            raise Unreadable(f"its {name} are {what}, not a list of the {n} predictions it holds")
    if not all(type(i) is str for i in ids):
        raise Unreadable("some of its prediction ids are not strings")
    if not all(type(r) is dict for r in inputs):
        raise Unreadable("some of its inputs are not objects (column → value)")
    return ids, inputs, outputs, probas


def decode_batch(row: BatchRow, labels: Mapping[int, tuple[str, datetime]],
                 positions: Sequence[int] | None = None) -> list[Prediction]:
    """The predictions of a batch ``row`` (all, or those at ``positions``), with their ``labels``
    (position → (label JSON, label time)). Raises :class:`Unreadable` for a row that is not what tidal
    writes (see :func:`check_batch`)."""
    ids, inputs, outputs, probas = check_batch(row)
    time, model, version, deployment = row["time"], row["model"], row["version"], row["deployment"]
    served, request_id = bool(row["served"]), row["request_id"]
    out = []
    for pos in range(len(ids)) if positions is None else positions:
        label = labels.get(pos)
        try:
            value = None if label is None else loads_value(label[0])
        except ValueError:
            raise Unreadable(f"the label of its prediction {pos} does not parse") from None
        out.append(Prediction(
            id=ids[pos], time=time, model=model, version=version, inputs=inputs[pos], output=outputs[pos],
            proba=None if probas is None else probas[pos], deployment=deployment, served=served,
            request_id=request_id, label=value, label_time=None if label is None else label[1]))
    return out


__all__ = ["Group", "Header", "Unreadable", "check_batch", "decode_batch", "encode_groups", "header"]
