"""The LightGBM flavor: LightGBM's scikit-learn estimators, stored as LightGBM's own model text, never pickled.

What is stored (an archive, :mod:`tidal.train.flavors.archive`): ``booster.txt`` (``Booster.model_to_string``:
every tree, with values written to 17 significant digits, so they read back exactly), the estimator's
parameters, class labels and the few fitted attributes its ``predict`` reads as JSON in ``manifest.json``,
and for tidal's pipeline its ``prepare`` steps as a checked skops file. Loading builds the class the
manifest names (one of :data:`ESTIMATORS`) with those parameters, and the booster with LightGBM's own
parser (``Booster(model_str=...)``): nothing in the file is executed. LightGBM encodes class labels itself,
so string labels need nothing more.

Same bytes: the same fit with the same seed and the same ``n_jobs`` gives the same bytes. The model text
records the parameters it was trained with, ``num_threads`` among them, so two machines give the same
trees but not the same bytes unless ``model.params`` sets ``n_jobs``; LightGBM's own ``deterministic: true``
(with ``force_row_wise: true`` or ``force_col_wise: true``) makes the trees independent of the thread count.

Curves: the training rows are passed as the evaluation set (LightGBM recognises them as the training set
and reuses its scores), so every boosting round logs the training metric (``curve.train.binary_logloss``,
``curve.train.multi_logloss``, ``curve.train.l2``).
"""

from __future__ import annotations

import warnings
from typing import Any

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

#: The estimator classes the flavor builds (and ``model.estimator`` may name from lightgbm).
ESTIMATORS = frozenset({"LGBMClassifier", "LGBMRegressor"})
FORMAT = "tidal-lightgbm"
BOOSTER = "booster.txt"


def _base_class(estimator: Any) -> str:
    """The lightgbm class in :data:`ESTIMATORS` that ``estimator`` is (or derives from)."""
    return stored_class(estimator, "lightgbm", ESTIMATORS)


class LightGBMFlavor(BoosterFlavor):
    """LightGBM's scikit-learn estimators (alone, or last in tidal's pipeline)."""

    name = "lightgbm"
    format = "lightgbm-text"
    extra = "lightgbm"
    modules = ("lightgbm",)
    estimators = ESTIMATORS

    def fit(self, model: Any, X: Any, y: Any) -> dict[str, list[float]]:
        estimator, step, _ = split_pipeline(model)
        Xt = model[:-1].fit_transform(X, y) if step is not None else X
        # the training rows as the evaluation set (the same objects: LightGBM reuses the training set). As
        # eval_set, deprecated in LightGBM 4.7 for eval_X/eval_y, which LGBMClassifier hands on without
        # encoding its labels (string classes fail there)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*eval_set.*deprecated")
            estimator.fit(Xt, y, eval_set=[(Xt, y)])
        results = dict(estimator.evals_result_).get("training") or {}
        return {f"curve.train.{metric}": [float(v) for v in values] for metric, values in sorted(results.items())}

    def save(self, model: Any) -> bytes:
        estimator, step, head = split_pipeline(model)
        lgb = self.library("a LightGBM model")
        classifier = _base_class(estimator) == "LGBMClassifier"
        objective = estimator._objective
        manifest = {
            "format": FORMAT, "version": 1, "library": f"lightgbm {lgb.__version__}",
            "estimator": _base_class(estimator), "params": json_params(estimator),
            "classes": classes_json(estimator.classes_) if classifier else None,
            "fitted": {"objective": objective if isinstance(objective, str) else None,
                       "n_features_in": int(estimator.n_features_in_),
                       "feature_names": bool(estimator._fitted_with_feature_names),
                       "best_iteration": int(estimator.best_iteration_)},
            "booster": BOOSTER, "prepare": PREPARE if head is not None else None, "step": step}
        if not isinstance(objective, str):
            raise IntegrityError("a LightGBM model with a custom objective function cannot be stored without pickle",
                                 hint="name a built-in objective in model.params")
        text = estimator.booster_.model_to_string(num_iteration=-1)
        members = {"manifest.json": manifest_bytes(manifest), BOOSTER: text.encode()}
        if head is not None:
            members[PREPARE] = save_prepare(head)
        return write_archive(members)

    def load(self, data: bytes) -> Any:
        manifest, members = read_archive(data, fmt=FORMAT, estimators=ESTIMATORS)
        lgb = self.library("this model (a LightGBM booster)")
        booster_bytes, prepare = model_members(manifest, members)
        params, fitted = manifest.get("params") or {}, manifest.get("fitted")
        if not isinstance(params, dict) or not isinstance(fitted, dict):
            raise IntegrityError("the model file's parameters are not a mapping", hint="re-run `tidal run`")
        classifier = manifest["estimator"] == "LGBMClassifier"
        classes = classes_array(manifest.get("classes"))
        n_classes = 0 if classes is None else len(classes)
        if classifier and n_classes < 2:
            raise IntegrityError("the model file's classifier has no classes", hint="re-run `tidal run`")
        try:
            estimator: Any = getattr(lgb, manifest["estimator"])(**params)  # one of ESTIMATORS
            booster = lgb.Booster(model_str=booster_bytes.decode())
            estimator._Booster = booster
            estimator._n_features = booster.num_feature()
            estimator._n_features_in = int(fitted["n_features_in"])
            estimator._fitted_with_feature_names = bool(fitted["feature_names"])
            estimator._best_iteration = int(fitted["best_iteration"])
            estimator._objective = fitted["objective"]
            if not isinstance(estimator._objective, str):
                raise ValueError("no objective")
            estimator._best_score, estimator._evals_result = {}, {}
            if classifier and classes is not None:
                from sklearn.preprocessing import LabelEncoder

                encoder = LabelEncoder()
                encoder.classes_ = classes
                estimator._le, estimator._classes = encoder, classes
                estimator._n_classes = n_classes
                estimator._class_map = dict(zip(classes.tolist(), range(n_classes), strict=True))
            estimator.fitted_ = True
        except (lgb.basic.LightGBMError, KeyError, TypeError, ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"the model file's LightGBM booster cannot be read: {str(exc).splitlines()[0]}",
                                 hint="re-run `tidal run` to train it again") from exc
        if classifier and booster.num_model_per_iteration() != (1 if n_classes == 2 else n_classes):
            raise IntegrityError("the model file's classes do not match its booster", hint="re-run `tidal run`")
        return join_pipeline(prepare, manifest.get("step"), estimator)


__all__ = ["BOOSTER", "ESTIMATORS", "FORMAT", "LightGBMFlavor"]
