"""Predictions column-wise: the predictions of one request, and several requests chained.

A server answers a request of N rows with N :class:`~tidal.core.entities.Prediction` records that share
their time, model, version, deployment and request id. Building N frozen records costs about 2 µs each,
as much as storing them: :class:`PredictionBatch` holds the same predictions as columns, and *is* a
``Sequence[Prediction]`` (a record is made when one is read), so any ``PredictionLog`` takes it as it
takes a list, while a log that knows the type (the SQL log) stores the columns without making a record.
:class:`PredictionChain` joins several sequences (the requests of one flush) without copying them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any, overload

from tidal.core.entities import Prediction


class PredictionBatch(Sequence[Prediction]):
    """``len(ids)`` predictions that share ``time``, ``model``, ``version``, ``deployment``, ``served`` and
    ``request_id``; ``inputs``, ``outputs`` and ``probas`` (None for a regressor) are parallel lists.
    Unlabelled (labels arrive as feedback)."""

    __slots__ = ("deployment", "ids", "inputs", "model", "outputs", "probas", "request_id", "served", "time",
                 "version")

    def __init__(self, *, ids: Sequence[str], time: datetime, model: str, version: int,
                 inputs: Sequence[dict[str, Any]], outputs: Sequence[Any],
                 probas: Sequence[list[float] | None] | None = None, deployment: str = "direct",
                 served: bool = True, request_id: str | None = None) -> None:
        if len(inputs) != len(ids) or len(outputs) != len(ids) or (probas is not None and len(probas) != len(ids)):
            raise ValueError(f"a batch of {len(ids)} ids needs as many inputs, outputs and probas")
        self.ids, self.time, self.model, self.version = ids, time, model, version
        self.inputs, self.outputs, self.probas = inputs, outputs, probas
        self.deployment, self.served, self.request_id = deployment, served, request_id

    def __len__(self) -> int:
        return len(self.ids)

    @overload
    def __getitem__(self, index: int) -> Prediction: ...
    @overload
    def __getitem__(self, index: slice) -> list[Prediction]: ...

    def __getitem__(self, index: int | slice) -> Prediction | list[Prediction]:
        if isinstance(index, slice):
            return [self._record(i) for i in range(*index.indices(len(self.ids)))]
        if index < 0:
            index += len(self.ids)
        if not 0 <= index < len(self.ids):
            raise IndexError("prediction batch index out of range")
        return self._record(index)

    def __iter__(self) -> Iterator[Prediction]:
        return (self._record(i) for i in range(len(self.ids)))

    def _record(self, i: int) -> Prediction:
        return Prediction(id=self.ids[i], time=self.time, model=self.model, version=self.version,
                          inputs=self.inputs[i], output=self.outputs[i],
                          proba=None if self.probas is None else self.probas[i], deployment=self.deployment,
                          served=self.served, request_id=self.request_id)

    def __repr__(self) -> str:
        return (f"PredictionBatch({len(self.ids)} predictions of {self.model}:{self.version}, "
                f"{self.deployment}, {self.time.isoformat()})")


class PredictionChain(Sequence[Prediction]):
    """Several sequences of predictions read as one, in order, without copying (``parts`` keeps them)."""

    __slots__ = ("_len", "parts")

    def __init__(self, parts: Sequence[Sequence[Prediction]]) -> None:
        self.parts = list(parts)
        self._len = sum(len(p) for p in self.parts)

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, index: int) -> Prediction: ...
    @overload
    def __getitem__(self, index: slice) -> list[Prediction]: ...

    def __getitem__(self, index: int | slice) -> Prediction | list[Prediction]:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += self._len
        if not 0 <= index < self._len:
            raise IndexError("prediction chain index out of range")
        for part in self.parts:
            if index < len(part):
                return part[index]
            index -= len(part)
        raise IndexError("prediction chain index out of range")

    def __iter__(self) -> Iterator[Prediction]:
        for part in self.parts:
            yield from part


def parts_of(predictions: Sequence[Prediction]) -> list[Sequence[Prediction]]:
    """The sequences ``predictions`` is made of: a chain's parts (flattened), or itself."""
    if isinstance(predictions, PredictionChain):
        return [q for p in predictions.parts for q in parts_of(p)]
    return [predictions]


__all__ = ["PredictionBatch", "PredictionChain", "parts_of"]
