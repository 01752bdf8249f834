"""Continued fit: a fitted pipeline learns new rows without a refit (``retrain.mode: incremental``).

A pipeline made by :func:`tidal.train.fit.fit_pipeline` has two steps, ``prepare`` (the transformers,
fitted on the first training rows) and ``model`` (the estimator). :func:`continue_fit` copies it, transforms
the new rows with the fitted ``prepare`` as it is, and calls the estimator's ``partial_fit`` on them, in
their order; the parent is never changed. A classifier is given its classes (``partial_fit`` cannot learn a
class it was not told of on its first call), so a new class in the new rows is refused with a
:class:`~tidal.core.errors.DataError` instead.

:func:`check_incremental` refuses, from the spec alone and before the loop runs, an estimator that has no
``partial_fit``; :func:`check_parent` a pipeline that ``fit_pipeline`` did not make.
"""

from __future__ import annotations

import copy
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.errors import DataError, SpecError, TrainingError
from tidal.data.codec import target_array
from tidal.data.prepare import as_model_input
from tidal.spec.model import ModelSpec
from tidal.train.estimator import build_estimator, iteration_curves
from tidal.train.fit import TrainResult

#: The step names of a pipeline made by fit_pipeline, in order.
STEPS = ("prepare", "model")

#: What a refusal suggests instead of an estimator without partial_fit.
_SUGGEST = ("use retrain.mode: refit, or an estimator with partial_fit such as sklearn.linear_model.SGDClassifier "
            "(sklearn.linear_model.SGDRegressor for a regression target)")


def check_incremental(model: ModelSpec, mode: str) -> None:
    """With ``mode`` ``incremental``, the ``model`` section's estimator must learn new rows (``partial_fit``);
    :class:`SpecError` naming it and the fix otherwise. Checked on an instance built from ``model.params``,
    since some estimators have ``partial_fit`` only with some parameters (``MLPClassifier(solver='lbfgs')``)."""
    if mode != "incremental":
        return
    estimator = build_estimator(model.estimator, model.params, model.seed)
    if not hasattr(estimator, "partial_fit"):
        which = (f"{model.estimator} with these model.params" if hasattr(type(estimator), "partial_fit")
                 else model.estimator)
        raise SpecError(f"incremental needs an estimator that learns new rows (partial_fit), and {which} has none",
                        path="retrain.mode", hint=_SUGGEST)


def check_parent(model: Any, label: str) -> None:
    """Refuse (:class:`TrainingError`) a model ``label`` that is not a pipeline made by ``fit_pipeline`` (the
    steps ``prepare`` and ``model``) or whose estimator has no ``partial_fit``: it cannot be continued."""
    from sklearn.pipeline import Pipeline

    steps = [name for name, _ in model.steps] if isinstance(model, Pipeline) else None
    if steps is None or tuple(steps) != STEPS:
        made = f"a pipeline with the steps {steps}" if steps is not None else f"a {type(model).__name__}"
        raise TrainingError(f"{label} cannot be continued: it is {made}, not a pipeline made by tidal's fit_pipeline "
                            "(the steps 'prepare' and 'model')",
                            hint="use retrain.mode: refit, or train a champion with `tidal run` first")
    estimator = model.named_steps["model"]
    if not hasattr(estimator, "partial_fit"):
        raise TrainingError(f"{label} cannot be continued: its estimator {type(estimator).__name__} has no "
                            "partial_fit", hint=_SUGGEST)


def refuse_new_classes(labels: Any, classes: Sequence[Any], label: str = "the champion") -> None:
    """:class:`DataError` naming the values of ``labels`` that are none of ``classes`` (the classes of the
    classifier ``label``), if any: ``partial_fit`` cannot add a class, a refit can."""
    known = {_plain(c) for c in classes}
    new = [_plain(v) for v in pd.unique(pd.Series(list(labels), dtype=object))
           if v is not None and _plain(v) not in known]
    if new:
        shown = ", ".join(repr(v) for v in new[:5])
        raise DataError(f"the new rows hold the class{'es' if len(new) > 1 else ''} {shown} that {label} was not "
                        f"trained on ({', '.join(repr(_plain(c)) for c in classes)}), and partial_fit cannot add a "
                        "class", hint="use retrain.mode: refit, which trains a model on every class")


def continue_fit(
    parent: Any, rows: pd.DataFrame, *, target: str, columns: Sequence[str], kinds: Mapping[str, str],
    classes: Sequence[Any] | None, label: str = "the champion",
) -> TrainResult:
    """A copy of the fitted pipeline ``parent`` whose estimator has learned ``rows`` (their ``columns``, read
    as ``kinds``, to predict ``target``) by one ``partial_fit`` call, in the rows' order; its ``prepare`` step
    is the parent's, fitted parameters unchanged. ``classes`` are a classifier's classes (its signature's;
    None for a regressor): a label in ``rows`` outside them is a :class:`DataError`, since ``partial_fit``
    cannot add a class. ``label`` names the parent in errors (``elec2:3``)."""
    check_parent(parent, label)
    if not len(rows):
        raise DataError(f"no new labelled rows for {label} to learn", hint="wait for feedback, or use "
                        "retrain.mode: refit")
    prepare = parent.named_steps["prepare"]
    known = getattr(prepare, "feature_names_in_", None)
    if known is not None and list(known) != list(columns):
        raise TrainingError(f"{label} cannot be continued: it takes the columns {list(known)}, the new rows have "
                            f"{list(columns)}", hint="use retrain.mode: refit")
    y = target_array(rows[target])
    fit_kwargs: dict[str, Any] = {}
    if classes is not None:
        refuse_new_classes(y, classes, label)
        # the estimator's own array when it holds the same classes: the same values in the same dtype
        own = getattr(parent.named_steps["model"], "classes_", None)
        same = own is not None and [_plain(c) for c in own] == [_plain(c) for c in classes]
        fit_kwargs["classes"] = own if same else np.asarray(list(classes))
    model = copy.deepcopy(parent)
    estimator = model.named_steps["model"]
    Xt = model.named_steps["prepare"].transform(as_model_input(rows, columns, kinds))
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            estimator.partial_fit(Xt, y, **fit_kwargs)
        except (ValueError, TypeError) as exc:
            raise TrainingError(f"continuing {label} ({type(estimator).__name__}.partial_fit) failed: {exc}",
                                hint="check the new rows, or use retrain.mode: refit") from exc
    seconds = time.perf_counter() - start
    notes = sorted({f"{w.category.__name__}: {w.message}" for w in caught})
    return TrainResult(model=model, columns=list(columns), curves=iteration_curves(estimator), fit_seconds=seconds,
                       warnings=notes)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


__all__ = ["STEPS", "check_incremental", "check_parent", "continue_fit", "refuse_new_classes"]
