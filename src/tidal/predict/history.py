"""The label features of a request, filled from the labels the prediction log already holds.

A version trained with ``prepare.label_features`` takes inputs built from the newest known labels
(:mod:`tidal.data.history`). A client need not send them: for each row that lacks them, the server (and
the SDK's in-process predictor) fills them from the newest labelled predictions of the model, by the same
function training used. A client that knows a newer label may send the columns itself; what it sends is
checked like any input. The rows are logged with the values the model saw.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from tidal.core.ports import PredictionLog
from tidal.data.history import features_from_labels, history_length
from tidal.predict.state import ServingState
from tidal.spec.model import LabelFeaturesSpec


class LabelHistory:
    """The newest known labels of each model, read from the prediction log at most every ``ttl_s``
    seconds (a label this process stores calls :meth:`invalidate`, so its own feedback counts at once)."""

    def __init__(self, log: PredictionLog, *, ttl_s: float = 0.5) -> None:
        self.log, self.ttl_s = log, ttl_s
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, int], tuple[float, list[Any]]] = {}

    def invalidate(self) -> None:
        with self._lock:
            self._cache.clear()

    def recent(self, model: str, n: int) -> list[Any]:
        """The labels of the newest ``n`` labelled predictions of ``model``, oldest first."""
        key, now = (model, n), time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None and now - hit[0] < self.ttl_s:
            return hit[1]
        labels = [p.label for p in self.log.window(model=model, labelled=True, last=n)]
        with self._lock:
            self._cache[key] = (now, labels)
        return labels

    def fresh(self, state: ServingState) -> bool:
        """Whether :meth:`fill` for ``state`` would be answered from memory, without reading the log."""
        spec = LabelFeaturesSpec.model_validate(state.mv.signature.label_features)
        with self._lock:
            hit = self._cache.get((state.name, history_length(spec)))
        return hit is not None and time.monotonic() - hit[0] < self.ttl_s

    def needs(self, state: ServingState, doc: Any) -> bool:
        """Whether some row of ``doc`` (a /predict body) lacks a label feature ``state``'s version takes."""
        derived = state.mv.signature.derived
        rows = doc.get("instances") if isinstance(doc, dict) else None
        return bool(derived) and isinstance(rows, list) and any(
            isinstance(r, dict) and any(c not in r for c in derived) for r in rows)

    def fill(self, state: ServingState, doc: Any) -> None:
        """Add to each row of ``doc`` the label features it lacks (the body's shape is checked afterwards,
        by the input schema, so a malformed body is left as it is)."""
        if not self.needs(state, doc):
            return
        sig = state.mv.signature
        spec = LabelFeaturesSpec.model_validate(sig.label_features)
        values = features_from_labels(self.recent(state.name, history_length(spec)), spec,
                                      state.mv.task or "classification", sig.classes)
        for row in doc["instances"]:
            if isinstance(row, dict):
                for column in sig.derived:
                    row.setdefault(column, values.get(column))


__all__ = ["LabelHistory"]
