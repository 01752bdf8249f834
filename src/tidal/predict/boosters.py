"""XGBoost and LightGBM classifiers and regressors answered by one call into their library per request.

Behind the scikit-learn estimators of both libraries, ``predict`` and ``predict_proba`` each run the whole
model (a classifier's ``predict`` computes the probabilities and takes the likeliest class), and each call
pays the wrapper's own work around the library: input validation, parameter processing, and, for LightGBM,
a team of ``n_jobs`` threads started on every call, milliseconds on a busy 2-core machine. Measured on this
machine, one row of breast_cancer through 100 trees (the fast path's ``predict`` then ``predict_proba``
against one call here): XGBoost 490 → 165 µs, LightGBM (``n_jobs: 1``) about 800 → 105 µs.

A scorer calls the library once, on the matrix the compiled ``prepare`` step gives:

- XGBoost: ``Booster.inplace_predict`` with the estimator's iteration range and ``missing`` value (what
  ``XGBModel.predict`` calls), made straight into XGBoost's C API (:class:`_DirectXGBoost`), then the
  formulas of ``XGBClassifier.predict`` and ``predict_proba``. What is left of a one-row call is XGBoost's
  own: profiled (py-spy), the trees take under a tenth of it; each call builds a context that reads the
  cgroup CPU quota files and compiles a regular expression;
- LightGBM: ``Booster.predict`` with the parameters ``LGBMModel.predict`` passes, but one thread (a row's
  result does not depend on the thread count), then the formulas of ``LGBMClassifier.predict_proba`` and
  ``predict``.

The predictor builder uses a scorer only when it gives bit-for-bit the generic path's predictions and
probabilities on every check (see :func:`tidal.predict.predictor.build_predictor`); a model the scorer
does not know (XGBoost's ``multi:softmax`` objective, a multi-label model, a custom LightGBM objective, a
library version without the calls used here) is served by the estimator's own methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Arrays = tuple[np.ndarray, np.ndarray | None]
Scorer = Callable[[np.ndarray], Arrays]

_XGB = frozenset({"XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor"})
_LGBM = frozenset({"LGBMClassifier", "LGBMRegressor"})


def _library_class(estimator: Any, module: str, names: frozenset[str]) -> str | None:
    """The class of ``names`` (from the library ``module``) that ``estimator`` is or derives from."""
    for cls in type(estimator).__mro__:
        if cls.__name__ in names and cls.__module__.split(".")[0] == module:
            return cls.__name__
    return None


class XGBoostScorer:
    """One ``inplace_predict`` per request (see the module docstring)."""

    kind = "xgboost inplace_predict"

    def __init__(self, estimator: Any, classifier: bool) -> None:
        if not estimator._can_use_inplace_predict():
            raise ValueError("a gblinear booster")
        if classifier and estimator.objective == "multi:softmax":
            raise ValueError("multi:softmax predicts classes, not probabilities")
        self.booster = estimator.get_booster()
        self.iteration_range = estimator._get_iteration_range(None)
        self.missing = estimator.missing
        self.classifier = classifier
        self._direct = _DirectXGBoost(self.booster, self.iteration_range, self.missing)
        if classifier:
            self.n_classes = int(estimator.n_classes_)
            self.classes = np.asarray(estimator.classes_)
            # What the booster answers: one probability per row (binary), or one per class and row; any
            # other shape (a multi-label model) is not scored here.
            probe = self._values(np.zeros((1, int(estimator.n_features_in_)), dtype=np.float64))
            binary = probe.ndim == 1 and self.n_classes == 2
            if not binary and not (probe.ndim == 2 and probe.shape[1] == self.n_classes > 2):
                raise ValueError("a model whose output is neither binary nor one probability per class")

    def _values(self, X: np.ndarray) -> np.ndarray:
        if self._direct.ready:
            return self._direct(X)
        return np.asarray(self.booster.inplace_predict(X, iteration_range=self.iteration_range,
                                                       predict_type="value", missing=self.missing,
                                                       validate_features=False))

    def __call__(self, X: np.ndarray) -> Arrays:
        values = self._values(X)
        if not self.classifier:
            return values, None
        # XGBClassifier.predict_proba (_cls_predict_proba) and XGBClassifier.predict, for these two shapes
        if values.ndim == 2:
            proba, codes = values, np.argmax(values, axis=1)
        else:
            proba = np.vstack((1.0 - values, values)).transpose()
            codes = np.repeat(0, values.shape[0])
            codes[values > 0.5] = 1
        return self.classes[codes], np.asarray(proba, dtype=np.float64)


class _DirectXGBoost:
    """``inplace_predict`` on a float64 matrix as one call into XGBoost's C API (``XGBoosterPredictFromDense``,
    the call ``inplace_predict`` makes), with its arguments made once. About half of a one-row
    ``inplace_predict`` is Python around that call (measured with py-spy: building the array interfaces,
    a class defined per call to read the answer, and the garbage collections those allocations trigger).
    ``ready`` is False where this XGBoost lacks what it uses, or answers a probe differently from
    ``inplace_predict``: then ``inplace_predict`` itself is called."""

    def __init__(self, booster: Any, iteration_range: tuple[int, int], missing: float) -> None:
        self.ready = False
        try:
            import ctypes
            import json

            from xgboost.core import _LIB, _check_call

            # XGBoost's bst_ulong is uint64_t (c_api.h)
            self._ctypes, self._lib, self._check, self._ulong = ctypes, _LIB, _check_call, ctypes.c_uint64
            self._handle = booster.handle
            # make_jcargs(...) in Booster.inplace_predict: the same keys, the same values
            self._args = json.dumps({"type": 0, "training": False, "iteration_begin": int(iteration_range[0]),
                                     "iteration_end": int(iteration_range[1]), "missing": missing,
                                     "strict_shape": False, "cache_id": 0}).encode()
            probe = np.linspace(-1.0, 1.0, 2 * booster.num_features()).reshape(2, -1)
            probe[0, 0] = np.nan
            public = booster.inplace_predict(probe, iteration_range=iteration_range, predict_type="value",
                                             missing=missing, validate_features=False)
            self.ready = True
            self.ready = bool(np.array_equal(self(probe), public, equal_nan=True))
        except Exception:
            self.ready = False

    def __call__(self, X: np.ndarray) -> np.ndarray:
        ctypes = self._ctypes
        X = np.ascontiguousarray(X, dtype=np.float64)
        interface = (b'{"data": [%d, true], "shape": [%d, %d], "strides": null, "typestr": "<f8", "version": 3}'
                     % (X.ctypes.data, X.shape[0], X.shape[1]))
        shape = ctypes.POINTER(self._ulong)()
        dims = self._ulong()
        preds = ctypes.POINTER(ctypes.c_float)()
        self._check(self._lib.XGBoosterPredictFromDense(self._handle, interface, self._args, ctypes.c_void_p(),
                                                        ctypes.byref(shape), ctypes.byref(dims),
                                                        ctypes.byref(preds)))
        out_shape = tuple(int(shape[i]) for i in range(dims.value))
        size = int(np.prod(out_shape)) if out_shape else 0
        # XGBoost keeps the answer in a buffer of its own, reused by the next call: copied out at once
        return np.ctypeslib.as_array(preds, shape=(size,)).reshape(out_shape).copy()


class LightGBMScorer:
    """One ``Booster.predict`` per request, on one thread (see the module docstring)."""

    kind = "lightgbm Booster.predict"

    def __init__(self, estimator: Any, classifier: bool) -> None:
        from lightgbm.basic import _ConfigAliases

        if not isinstance(estimator._objective, str):
            raise ValueError("a custom objective function")
        # LGBMModel.predict's parameters: the estimator's, less those it sets per call, and one thread
        params = dict(estimator._process_params(stage="predict"))
        for alias in _ConfigAliases.get_by_alias("data", "X", "raw_score", "start_iteration", "num_iteration",
                                                 "pred_leaf", "pred_contrib", "num_threads"):
            params.pop(alias, None)
        params["num_threads"] = 1
        self.params = params
        self.booster = estimator.booster_
        self.classifier = classifier
        if classifier:
            self.classes = np.asarray(estimator.classes_)
            self.multiclass = len(self.classes) > 2

    def __call__(self, X: np.ndarray) -> Arrays:
        result = np.asarray(self.booster.predict(X, **self.params))
        if not self.classifier:
            return result, None
        # LGBMClassifier.predict_proba, then LGBMClassifier.predict (its LabelEncoder's classes_[index])
        proba = result if self.multiclass else np.vstack((1.0 - result, result)).transpose()
        return self.classes[np.argmax(proba, axis=1)], np.asarray(proba, dtype=np.float64)


def booster_scorer(estimator: Any, classifier: bool) -> XGBoostScorer | LightGBMScorer | None:
    """A scorer for an XGBoost or LightGBM estimator, or None (another estimator, or one it cannot score)."""
    try:
        if _library_class(estimator, "xgboost", _XGB) is not None:
            return XGBoostScorer(estimator, classifier)
        if _library_class(estimator, "lightgbm", _LGBM) is not None:
            return LightGBMScorer(estimator, classifier)
    except Exception:  # a library version without these calls, or a model they do not fit: the generic way
        return None
    return None


__all__ = ["LightGBMScorer", "XGBoostScorer", "booster_scorer"]
