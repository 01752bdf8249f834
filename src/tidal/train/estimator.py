"""Build an estimator from its dotted path, params and seed, with errors that name the fix.

``model.estimator`` is the one place a spec names code: tidal imports its module and calls the class, but
only once it is known to be an estimator class (a scikit-learn ``BaseEstimator`` subclass, or a class a
registered flavor accepts). A function, a builtin or any other class (``subprocess.Popen``) is refused
before anything is called.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
from collections.abc import Mapping
from difflib import get_close_matches
from typing import Any

from tidal.core.errors import TrainingError
from tidal.train.flavors import accepting_flavor, module_flavor
from tidal.train.flavors.base import missing_extra

_EXPECTED = ("a scikit-learn estimator class (a subclass of sklearn.base.BaseEstimator) or a class a registered "
             "flavor accepts, e.g. sklearn.ensemble.HistGradientBoostingClassifier")


def import_estimator(dotted: str) -> type:
    """The estimator class at ``dotted`` (``sklearn.ensemble.HistGradientBoostingClassifier``).

    :class:`TrainingError` when it is not a class, or not an estimator class: nothing is called first.
    """
    module_name, _, cls_name = dotted.rpartition(".")
    if not module_name:
        raise TrainingError(f"model.estimator: {dotted!r} is not a dotted path",
                            hint="write it as module.Class, e.g. sklearn.linear_model.LogisticRegression")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        flavor = module_flavor(module_name)
        if flavor is not None and flavor.extra and _missing(flavor.modules[0]):
            raise missing_extra(flavor, f"model.estimator {dotted}") from None
        raise TrainingError(f"model.estimator: cannot import module {module_name!r} ({exc})",
                            hint="check the spelling, or install the package that provides it") from exc
    cls = getattr(module, cls_name, None)
    if cls is not None and not isinstance(cls, type):
        raise TrainingError(f"model.estimator: {dotted!r} is a {type(cls).__name__}, not a class; tidal never "
                            "calls it", hint=f"name {_EXPECTED}")
    if not isinstance(cls, type):
        names = [n for n in dir(module) if not n.startswith("_") and isinstance(getattr(module, n), type)]
        close = get_close_matches(cls_name, names, n=1)
        hint = f"did you mean {module_name}.{close[0]}?" if close else f"{module_name} has no class {cls_name}"
        raise TrainingError(f"model.estimator: {dotted!r} not found", hint=hint)
    if accepting_flavor(cls) is None:
        raise TrainingError(f"model.estimator: {dotted!r} is a class but not an estimator; tidal never calls it",
                            hint=f"name {_EXPECTED}")
    return cls


def _missing(module: str) -> bool:
    """Whether the top-level ``module`` cannot be imported at all (not installed, or blocked)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return True
    return False


def _parameters(cls: type) -> tuple[set[str], bool]:
    """The parameter names ``cls`` takes, and whether it also takes any other keyword (``**kwargs``: XGBoost
    and LightGBM hand those to the library, which checks them itself, e.g. LightGBM's ``verbose``)."""
    try:
        signature = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return set(), True
    named = {n for n, p in signature.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
    open_ended = any(p.kind == p.VAR_KEYWORD for p in signature.values())
    if open_ended:
        # the parameters the estimator declares beyond its signature (XGBoost's random_state, n_jobs...); an
        # estimator that cannot be built bare has its signature only
        with contextlib.suppress(Exception):
            named |= set(cls().get_params(deep=False))
    return named, open_ended


def parameter_names(cls: type) -> tuple[set[str], bool]:
    """The parameter names the estimator class ``cls`` takes (its constructor's, and ``get_params()``'s),
    and whether it takes any other keyword too (``**kwargs``, whose names its library checks)."""
    named, open_ended = _parameters(cls)
    with contextlib.suppress(Exception):
        named |= set(cls().get_params(deep=False))
    return named, open_ended


def build_estimator(dotted: str, params: Mapping[str, Any], seed: int | None) -> Any:
    """An unfitted estimator; ``seed`` goes to ``random_state`` when the estimator has one and the
    params do not set it, so a run is reproducible without the user thinking about it. Params pass
    through unchanged; a name the estimator does not take is refused here, unless its class takes any
    keyword (``**kwargs``) and leaves the check to its library."""
    cls = import_estimator(dotted)
    accepted, open_ended = _parameters(cls)
    unknown = [k for k in params if accepted and not open_ended and k not in accepted]
    if unknown:
        key = unknown[0]
        close = get_close_matches(key, sorted(accepted), n=1)
        hint = f"did you mean {close[0]!r}?" if close else f"{cls.__name__} accepts: {', '.join(sorted(accepted))}"
        raise TrainingError(f"model.params.{key}: {cls.__name__} has no parameter {key!r}", hint=hint)
    kwargs = dict(params)
    if seed is not None and "random_state" in accepted and "random_state" not in kwargs:
        kwargs["random_state"] = seed
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise TrainingError(f"model.params: {cls.__name__} refused its parameters: {exc}",
                            hint="check the values in model.params") from exc


def iteration_curves(model: Any) -> dict[str, list[float]]:
    """Per-iteration curves a fitted estimator exposes, by metric name (step = list position). An MLP's
    per-epoch validation scores are its accuracy for a classifier (``curve.valid.accuracy``, the name
    tidal.nn's networks log it under, so the epoch table shows both alike), R² for a regressor."""
    from sklearn.base import is_classifier

    curves: dict[str, list[float]] = {}
    for attr, name in (
        ("train_score_", "curve.train_score"),
        ("validation_score_", "curve.validation_score"),
        ("loss_curve_", "curve.loss"),
        ("validation_scores_", "curve.valid.accuracy" if is_classifier(model) else "curve.validation_score"),
        ("oob_improvement_", "curve.oob_improvement"),
    ):
        values = getattr(model, attr, None)
        if values is None:
            continue
        try:
            seq = [float(v) for v in values]
        except (TypeError, ValueError):
            continue
        if seq:
            curves[name] = seq
    return curves
