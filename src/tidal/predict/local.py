"""The predict path in process, for the SDK: ``Workspace.predict(rows)`` and ``Workspace.feedback(id, label)``.

It gives the same answers as the server's ``/predict`` and ``/feedback`` because it runs the same code:
the champion loaded and checked as the server loads it (:func:`~tidal.predict.state.load_state`), rows
checked against its signature (:meth:`~tidal.predict.inputs.InputSchema.instances`), answers logged to the
same prediction log with ids a later label can name, and labels checked against the model's classes
(:func:`~tidal.predict.inputs.feedback_items`) before they are stored. What a caller sends is JSON values,
as over HTTP; a DataFrame is turned into them the way ``DataFrame.to_json`` writes it.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tidal.core.entities import Feedback, ModelVersion
from tidal.core.errors import ModelNotFound
from tidal.core.ids import IdRange, new_ids, new_prefix
from tidal.core.ports import ArtifactStore, Clock, PredictionLog
from tidal.predict.history import LabelHistory
from tidal.predict.inputs import feedback_items
from tidal.predict.records import make_records, predict_rows, store_images
from tidal.predict.state import ServingState, load_state

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Answer:
    """What ``/predict`` answers, as Python values: one prediction per row (and the class probabilities of
    a classifier), the id of each prediction (send it back with the label), and the version that answered."""

    predictions: list[Any]
    probabilities: list[list[float]] | None
    prediction_ids: list[str]
    model: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"predictions": self.predictions}
        if self.probabilities is not None:
            out["probabilities"] = self.probabilities
        return {**out, "prediction_ids": self.prediction_ids, "model": self.model}


def json_rows(rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Any:
    """``rows`` as the JSON values a ``/predict`` body holds. A DataFrame goes through the table codec, as
    the prediction log's rows do (:func:`tidal.data.codec.encode_records`: ISO times with their offset,
    nulls for every kind of missing value); anything else is taken as given, so a value a JSON body could
    not hold (a NumPy scalar, a date object) is refused by the checks, naming the row and column."""
    if hasattr(rows, "to_json") and hasattr(rows, "columns"):
        from tidal.data.codec import encode_records

        return encode_records(rows)
    return [dict(r) if isinstance(r, Mapping) else r for r in rows]


class LocalPredictor:
    """Answers and labels for one model name in process. The champion is loaded once per version (a
    promotion is picked up at the next call), under a lock, so threads may share the object."""

    def __init__(self, registry: Any, log: PredictionLog, clock: Clock, *, name: str,
                 overwrite_feedback: bool = False, runtime: str = "native", tolerance: float = 1e-5,
                 images: ArtifactStore | None = None) -> None:
        self.registry, self.log, self.clock, self.name = registry, log, clock, name
        self.runtime, self.tolerance = runtime, tolerance  # deploy.runtime, deploy.onnx_tolerance
        #: where an image model's served images are kept by digest (see records.store_images), or None
        self.images = images
        self.overwrite_feedback = overwrite_feedback
        self._state: ServingState | None = None
        self._lock = threading.Lock()
        self.history = LabelHistory(log, ttl_s=0.0)  # in process, each call reads the labels stored so far

    def champion(self) -> ServingState:
        """The champion, loaded and checked (again only when the champion has moved)."""
        mv: ModelVersion | None = self.registry.champion(self.name)
        if mv is None:
            raise ModelNotFound(f"{self.name} has no champion yet, so nothing can predict",
                                hint="run `tidal run` first (or promote a version)")
        with self._lock:
            if self._state is None or self._state.version != mv.version:
                self._state = load_state(self.registry, mv, now=self.clock.now(), runtime=self.runtime,
                                         tolerance=self.tolerance)
            return self._state

    def predict(self, rows: pd.DataFrame | Sequence[Mapping[str, Any]]) -> Answer:
        """Predict ``rows`` with the champion and log the predictions; raises ApiError (422) naming the first
        row and column that the champion's signature refuses, before anything is predicted or stored."""
        state = self.champion()
        doc = {"instances": json_rows(rows)}
        self.history.fill(state, doc)  # label features a row lacks, from the log's newest labels
        checked = state.schema.instances(doc, max_rows=max(1, len(doc["instances"])))
        answers = predict_rows(state, checked)
        ids = new_ids(len(checked))
        request_id = ids.prefix if isinstance(ids, IdRange) else new_prefix()
        if self.images is not None and state.schema.images:
            store_images(self.images, state, checked)  # before the log row that names them
        self.log.append(make_records(state, checked, answers, ids, request_id=request_id, now=self.clock.now(),
                                     deployment="direct"))
        predictions, probabilities = answers
        return Answer(predictions=predictions, probabilities=probabilities,
                      prediction_ids=ids.tolist() if isinstance(ids, IdRange) else list(ids),
                      model=dict(state.model_ref))

    def feedback(self, labels: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> int:
        """Store true labels (``{"prediction_id", "label"}``, one or a list), all or nothing; returns how many.
        Raises ApiError (422) for a label the champion cannot have (not one of its classes, or not a number
        for a regressor) and FeedbackRejected for an unknown prediction id or, unless ``deploy.feedback`` is
        ``overwrite``, one that already has a label."""
        state = self._champion_or_none()
        doc = dict(labels) if isinstance(labels, Mapping) else [dict(x) for x in labels]
        items = feedback_items(doc, max_items=max(1, len(doc) if isinstance(doc, list) else 1),
                               classes=state.classes if state else None, task=state.mv.task if state else None)
        now = self.clock.now()
        return self.log.add_feedback([Feedback(prediction_id=it.prediction_id, label=it.label, time=now)
                                      for it in items], overwrite=self.overwrite_feedback)

    def _champion_or_none(self) -> ServingState | None:
        # labels may arrive for a model that no longer has a champion: the log still takes them, unchecked
        # against classes, as the server does when it has no model loaded
        try:
            return self.champion()
        except ModelNotFound:
            return None


__all__ = ["Answer", "LocalPredictor", "json_rows"]
