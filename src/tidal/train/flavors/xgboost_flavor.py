"""The XGBoost flavor: XGBoost's scikit-learn estimators, stored as the booster's own UBJSON, never pickled.

What is stored (an archive, :mod:`tidal.train.flavors.archive`): ``booster.ubj`` (``Booster.save_raw("ubj")``,
XGBoost's own binary JSON: trees and learner configuration, float32 values exactly as XGBoost holds them),
the estimator's parameters and class labels as JSON in ``manifest.json``, and for tidal's pipeline its
``prepare`` steps as a checked skops file. Loading builds the class the manifest names (one of
:data:`ESTIMATORS`) with those parameters and hands the booster bytes to XGBoost's parser: nothing in the
file is executed. XGBoost's CPU training is deterministic whatever the thread count, so the same fit with
the same seed gives the same bytes.

Class labels: XGBoost learns only the codes ``0..n-1``. A classifier trained on other labels (strings,
booleans, ``{1, 2}``) is fitted on the codes of its sorted labels and becomes a
:class:`~tidal.train.flavors.xgboost_labels.LabelledXGBClassifier`, which predicts the labels themselves,
as every scikit-learn classifier does; the labels are stored in the manifest.

Curves: the training rows are passed as the evaluation set (XGBoost reuses the training matrix and its
prediction cache, so it costs little), so every boosting round logs the training loss (``curve.train.logloss``
for a binary classifier, ``curve.train.rmse`` for a regressor, or the metrics ``eval_metric`` names).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tidal.core.errors import IntegrityError
from tidal.train.flavors.archive import (
    PREPARE,
    BoosterFlavor,
    classes_array,
    classes_json,
    join_pipeline,
    json_params,
    manifest_bytes,
    model_members,
    read_archive,
    save_prepare,
    split_pipeline,
    stored_class,
    write_archive,
)

#: The estimator classes the flavor builds (and ``model.estimator`` may name from xgboost).
ESTIMATORS = frozenset({"XGBClassifier", "XGBRegressor", "XGBRFClassifier", "XGBRFRegressor"})
FORMAT = "tidal-xgboost"
BOOSTER = "booster.ubj"


def _base_class(estimator: Any) -> str:
    """The xgboost class in :data:`ESTIMATORS` that ``estimator`` is (or derives from)."""
    return stored_class(estimator, "xgboost", ESTIMATORS)


def _is_codes(labels: np.ndarray) -> bool:
    return labels.dtype.kind in "iu" and labels.tolist() == list(range(len(labels)))


class XGBoostFlavor(BoosterFlavor):
    """XGBoost's scikit-learn estimators (alone, or last in tidal's pipeline)."""

    name = "xgboost"
    format = "xgboost-ubj"
    extra = "xgboost"
    modules = ("xgboost",)
    estimators = ESTIMATORS

    def fit(self, model: Any, X: Any, y: Any) -> dict[str, list[float]]:
        from sklearn.base import is_classifier

        estimator, step, _ = split_pipeline(model)
        Xt = model[:-1].fit_transform(X, y) if step is not None else X
        target, labels = np.asarray(y), None
        if is_classifier(estimator):
            found, codes = np.unique(target, return_inverse=True)
            if not _is_codes(found):
                if step is None:
                    raise ValueError("XGBoost learns class codes 0..n-1 only; fit it in tidal's pipeline for "
                                     f"other labels ({found[:3].tolist()}...)")
                from tidal.train.flavors.xgboost_labels import LabelledXGBClassifier

                labels, target = found, codes
                estimator = LabelledXGBClassifier(**estimator.get_params(deep=False))
                if step is not None:
                    model.steps[-1] = (step, estimator)
        # the training rows as the evaluation set: XGBoost reuses the training matrix (the same objects)
        estimator.fit(Xt, target, eval_set=[(Xt, target)], verbose=False)
        if labels is not None:
            estimator.labels_ = labels
        results = estimator.evals_result().get("validation_0") or {}
        return {f"curve.train.{metric}": [float(v) for v in values] for metric, values in sorted(results.items())}

    def save(self, model: Any) -> bytes:
        estimator, step, head = split_pipeline(model)
        xgb = self.library("an XGBoost model")
        labels = getattr(estimator, "labels_", None) if type(estimator).__name__ == "LabelledXGBClassifier" else None
        manifest = {"format": FORMAT, "version": 1, "library": f"xgboost {xgb.__version__}",
                    "estimator": _base_class(estimator), "params": json_params(estimator),
                    "classes": classes_json(labels), "booster": BOOSTER,
                    "prepare": PREPARE if head is not None else None, "step": step}
        members = {"manifest.json": manifest_bytes(manifest), BOOSTER: bytes(estimator.get_booster().save_raw("ubj"))}
        if head is not None:
            members[PREPARE] = save_prepare(head)
        return write_archive(members)

    def load(self, data: bytes) -> Any:
        manifest, members = read_archive(data, fmt=FORMAT, estimators=ESTIMATORS)
        xgb = self.library("this model (an XGBoost booster)")
        booster, prepare = model_members(manifest, members)
        labels = classes_array(manifest.get("classes"))
        params = manifest.get("params") or {}
        if not isinstance(params, dict):
            raise IntegrityError("the model file's parameters are not a mapping", hint="re-run `tidal run`")
        if labels is not None:
            if manifest["estimator"] != "XGBClassifier":
                raise IntegrityError("the model file gives class labels to a model that is not XGBClassifier",
                                     hint="re-run `tidal run` to train it again")
            from tidal.train.flavors.xgboost_labels import LabelledXGBClassifier

            cls: Any = LabelledXGBClassifier
        else:
            cls = getattr(xgb, manifest["estimator"])  # one of ESTIMATORS, checked by read_archive
        try:
            estimator = cls(**params)
            estimator.load_model(bytearray(booster))
        except (xgb.core.XGBoostError, TypeError, ValueError) as exc:
            raise IntegrityError(f"the model file's XGBoost booster cannot be read: {str(exc).splitlines()[0]}",
                                 hint="re-run `tidal run` to train it again") from exc
        if labels is not None:
            if len(labels) != estimator.n_classes_:
                raise IntegrityError(f"the model file names {len(labels)} classes for a booster of "
                                     f"{estimator.n_classes_}", hint="re-run `tidal run` to train it again")
            estimator.labels_ = labels
        return join_pipeline(prepare, manifest.get("step"), estimator)


__all__ = ["BOOSTER", "ESTIMATORS", "FORMAT", "XGBoostFlavor"]
