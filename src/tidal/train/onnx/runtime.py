"""An ONNX model served with onnxruntime, behind scikit-learn's ``predict`` / ``predict_proba``.

:class:`OnnxModel` takes the same DataFrame the pipeline took (``as_model_input``: the signature's columns,
categoricals as objects with NaN for missing), so the generic predictor, the served = validated check and
the holdout parity check run it exactly as they run the model it was converted from. The graph says by
itself what it needs: tidal's metadata in it names the inputs with their kinds, the task and the classes
(:mod:`tidal.train.onnx.converters`), so a bundle serves ``model.onnx`` with nothing else.

onnxruntime runs on one thread per session: a serving request is small, and the server runs requests in
threads of its own.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np

from tidal.core.errors import IntegrityError
from tidal.data.prepare import NUMERIC_KINDS
from tidal.train.onnx.converters import META_CLASSES, META_FLAVOR, META_INPUTS, META_TASK, onnx_module


class OnnxModel:
    """A regressor's ONNX graph (:class:`OnnxClassifier` for a classifier); build it with :func:`load_onnx`."""

    def __init__(self, data: bytes, session: Any, meta: dict[str, str]) -> None:
        self.data = data
        self.session = session
        self.inputs: list[tuple[str, str]] = [(str(c), str(k)) for c, k in json.loads(meta[META_INPUTS])]
        self.task = meta.get(META_TASK, "regression")
        self.flavor = meta.get(META_FLAVOR, "")
        self.outputs = [o.name for o in session.get_outputs()]
        # numeric inputs in the precision the graph declares (float64 where the converter kept it)
        self._float = {i.name: np.float64 if i.type == "tensor(double)" else np.float32 for i in session.get_inputs()}
        self._last = threading.local()  # predict then predict_proba on one frame: one run
        # the graph input each signature column feeds: skl2onnx renames a column that is not an identifier
        # ("mean radius" -> "mean_radius") but keeps the order of the initial types, which is the signature's
        graph = [i.name for i in session.get_inputs()]
        names = [name for name, _ in self.inputs]
        if set(names) <= set(graph):
            self._feed = {name: name for name in names}
        elif len(graph) == len(names):
            self._feed = dict(zip(names, graph, strict=True))
        else:
            raise IntegrityError(f"the ONNX graph takes {len(graph)} inputs ({', '.join(graph[:5])}...), but its "
                                 f"metadata names {len(names)} columns: the model file does not match itself")

    def feeds(self, X: Any) -> dict[str, np.ndarray]:
        """The graph's inputs from a DataFrame of the signature's columns (``[N, 1]`` each)."""
        out: dict[str, np.ndarray] = {}
        for name, kind in self.inputs:
            values, to = X[name], self._feed[name]
            if kind in NUMERIC_KINDS:
                as_float = self._float.get(to, np.float32)
                out[to] = np.asarray(values, dtype=np.float64).astype(as_float).reshape(-1, 1)
            else:
                out[to] = np.array(["" if v is None or (isinstance(v, float) and v != v) else str(v)
                                      for v in values.tolist()], dtype=object).reshape(-1, 1)
        return out

    def run(self, X: Any) -> list[np.ndarray]:
        """The graph's outputs for ``X``, computed once for the same frame object in a row."""
        last = getattr(self._last, "value", None)
        if last is not None and last[0] is X:
            outs: list[np.ndarray] = last[1]
            return outs
        outs = self.session.run(None, self.feeds(X))
        self._last.value = (X, outs)
        return outs

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.run(X)[0], dtype=np.float64).reshape(-1)


class OnnxClassifier(OnnxModel):
    """A classifier's ONNX graph: ``label`` and ``probabilities`` (columns in ``classes_`` order)."""

    def __init__(self, data: bytes, session: Any, meta: dict[str, str]) -> None:
        super().__init__(data, session, meta)
        self.classes_ = np.asarray(json.loads(meta[META_CLASSES]))

    def predict(self, X: Any) -> np.ndarray:
        label = np.asarray(self.run(X)[0]).reshape(-1)
        return label.astype(self.classes_.dtype) if self.classes_.dtype.kind in "iubf" else label

    def predict_proba(self, X: Any) -> np.ndarray:
        return np.asarray(self.run(X)[1], dtype=np.float64)


def load_onnx(data: bytes) -> OnnxModel:
    """The ONNX model in ``data`` (written by :func:`tidal.train.onnx.converters`), ready to run; an
    :class:`~tidal.core.errors.IntegrityError` when it is not one, or lacks tidal's metadata."""
    ort = onnx_module("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        session = ort.InferenceSession(data, sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise IntegrityError(f"the ONNX model cannot be loaded by onnxruntime: {type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''}",
                             hint="export it again (tidal export --format onnx)") from None
    meta = dict(session.get_modelmeta().custom_metadata_map)
    if META_INPUTS not in meta:
        raise IntegrityError("the ONNX model has no tidal metadata (tidal.inputs): tidal did not convert it",
                             hint="convert the model with tidal export --format onnx")
    cls = OnnxClassifier if meta.get(META_TASK) == "classification" else OnnxModel
    return cls(data, session, meta)


__all__ = ["OnnxClassifier", "OnnxModel", "load_onnx"]
