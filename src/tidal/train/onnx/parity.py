"""The parity check: an ONNX form answers the version's holdout as the model it was converted from.

ONNX ML tree ensembles and skl2onnx's graphs compute in float32 where scikit-learn, XGBoost and LightGBM
compute in float64 (their inputs are float32 too), so the two forms agree to about 1e-7 on probabilities
rather than bit for bit. The check measures the largest absolute difference over the holdout (probabilities
of a classifier, predictions of a regressor) and refuses a form whose difference exceeds the tolerance
(:data:`DEFAULT_TOLERANCE` unless the caller gives one), or whose predicted labels differ on any row.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from tidal.core.errors import TidalError
from tidal.core.signature import Signature
from tidal.train.fit import predict_frame
from tidal.train.onnx.converters import convert
from tidal.train.onnx.runtime import OnnxModel, load_onnx

#: The largest absolute difference accepted by default (issue #12: "refused above 1e-5").
DEFAULT_TOLERANCE = 1e-5


class ParityError(TidalError):
    """The ONNX form does not answer the holdout as the model did (within the tolerance)."""


@dataclass(frozen=True)
class Parity:
    """How an ONNX form compares with its model on ``rows`` holdout rows: the largest absolute difference of
    the probabilities (a regressor's predictions), and how many predicted labels differ (0 for a regressor)."""

    rows: int
    max_difference: float
    labels_differ: int
    tolerance: float
    compared: str  # "probabilities" or "predictions"

    @property
    def passed(self) -> bool:
        return self.max_difference <= self.tolerance and self.labels_differ == 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "passed": self.passed}

    def describe(self) -> str:
        return (f"largest {self.compared} difference {self.max_difference:.3g} on {self.rows} holdout rows "
                f"(tolerance {self.tolerance:g})" + (f", {self.labels_differ} predicted labels differ"
                                                      if self.compared == "probabilities" else ""))


def check_parity(model: Any, onnx: OnnxModel, X: Any, *, tolerance: float = DEFAULT_TOLERANCE) -> Parity:
    """Compare ``onnx`` with ``model`` on the rows ``X`` (a DataFrame as ``as_model_input`` makes it)."""
    pred, proba = predict_frame(model, X)
    try:
        pred2, proba2 = predict_frame(onnx, X)
    except Exception as exc:  # onnxruntime's own errors (a graph it cannot run on these rows): one line
        raise ParityError(f"the ONNX model fails on the holdout rows: {type(exc).__name__}: "
                          f"{str(exc).splitlines()[0] if str(exc) else ''}"[:400],
                          hint="serve it natively; the converter made a graph onnxruntime cannot run") from exc
    if pred.shape != pred2.shape:
        raise ParityError(f"the ONNX model answers {pred2.shape[0]} predictions for {pred.shape[0]} rows")
    if proba is not None:
        if proba2 is None or proba.shape != proba2.shape:
            raise ParityError("the ONNX model does not give the class probabilities the model does")
        gap = _gap(proba, proba2)
        differ = sum(a != b for a, b in zip(pred.tolist(), pred2.tolist(), strict=True))
        return Parity(rows=len(pred), max_difference=gap, labels_differ=differ, tolerance=tolerance,
                      compared="probabilities")
    return Parity(rows=len(pred), max_difference=_gap(pred, pred2), labels_differ=0, tolerance=tolerance,
                  compared="predictions")


def _gap(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.size == 0:
        return 0.0
    both_nan = np.isnan(a) & np.isnan(b)
    diff = np.where(both_nan, 0.0, np.abs(a - b))
    return float("inf") if np.isnan(diff).any() else float(diff.max())


def onnx_form(model: Any, signature: Signature, *, flavor: str, task: str, holdout: Any,
              tolerance: float = DEFAULT_TOLERANCE, label: str = "the model") -> tuple[bytes, Parity]:
    """Convert ``model`` (:func:`~tidal.train.onnx.converters`), load the bytes back with onnxruntime and check
    them on the ``holdout`` rows; returns the bytes and the parity figures, or raises
    :class:`~tidal.train.onnx.converters.CannotConvert` or :class:`ParityError` (``label`` names the model)."""
    data = convert(model, signature, flavor=flavor, task=task)
    parity = check_parity(model, load_onnx(data), holdout, tolerance=tolerance)
    if not parity.passed:
        raise ParityError(f"the ONNX form of {label} differs from it: {parity.describe()}",
                          hint="serve it natively, or accept the difference with --tolerance "
                               "(deploy.onnx_tolerance for deploy.runtime: onnx)")
    return data, parity


__all__ = ["DEFAULT_TOLERANCE", "Parity", "ParityError", "check_parity", "onnx_form"]
