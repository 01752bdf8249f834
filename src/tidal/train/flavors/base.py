"""Flavors: how a kind of model is saved, loaded and described. A plugin table keyed by name.

A flavor never unpickles: loading a stored model must not run arbitrary code.

Worked example — a flavor for a library with its own JSON format::

    from tidal.train.flavors import Flavor, register_flavor

    class MyBoosterFlavor(Flavor):
        name = "mybooster"
        format = "mybooster-json"

        def handles(self, model):
            return type(model).__module__.startswith("mybooster")

        def save(self, model) -> bytes:
            return model.to_json().encode()

        def load(self, data: bytes):
            import mybooster
            return mybooster.Booster.from_json(data.decode())

        def accepts(self, cls) -> bool:        # lets model.estimator name mybooster.Booster
            import mybooster
            return issubclass(cls, mybooster.Booster)

    register_flavor(MyBoosterFlavor())

and tidal.yaml then names the estimator as usual (``model.estimator: mybooster.Booster``). Check a
new flavor with :func:`tidal.train.flavors.checks.check_flavor`. The XGBoost and LightGBM flavors
(:mod:`tidal.train.flavors.xgboost_flavor`, :mod:`tidal.train.flavors.lightgbm_flavor`) are complete
examples for a library whose estimators sit in tidal's ``(prepare, model)`` pipeline.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from types import ModuleType
from typing import Any

from tidal.core.errors import TrainingError


class Flavor(ABC):
    """Saves and loads one kind of model as bytes, without pickle."""

    name: str = ""
    format: str = ""
    #: The pip extra that installs the library this flavor needs (``pip install 'tidal[EXTRA]'``); "" for none.
    extra: str = ""
    #: The top-level modules of that library: a ``model.estimator`` in one of them that does not import is
    #: reported as this flavor's missing extra.
    modules: tuple[str, ...] = ()

    @abstractmethod
    def handles(self, model: Any) -> bool:
        """True when this flavor can save ``model``."""

    @abstractmethod
    def save(self, model: Any) -> bytes:
        """The model as bytes; the same fitted model always gives the same bytes."""

    @abstractmethod
    def load(self, data: bytes) -> Any:
        """The model back from :meth:`save`'s bytes, without executing code from the file."""

    def accepts(self, cls: type) -> bool:
        """True when ``model.estimator`` may name ``cls``: tidal calls a spec's estimator class only when a
        registered flavor accepts it (the sklearn flavor: ``BaseEstimator`` subclasses). Checked before the
        class is called; the default accepts nothing."""
        return False

    def fit(self, model: Any, X: Any, y: Any) -> dict[str, list[float]]:
        """Fit ``model`` (tidal's ``(prepare, model)`` pipeline, whose estimator this flavor accepts) on ``X``
        and ``y``, in place; returns per-iteration curves by metric name (``curve.train.logloss``), if the
        library records any. The default is ``model.fit(X, y)`` and no curves."""
        model.fit(X, y)
        return {}

    def library(self, what: str) -> ModuleType:
        """The flavor's library (``modules[0]``), or a :class:`TrainingError` in one line naming the extra to
        install; ``what`` says who needs it (``model.estimator xgboost.XGBClassifier``)."""
        try:
            return importlib.import_module(self.modules[0])
        except ImportError:
            raise missing_extra(self, what) from None


def missing_extra(flavor: Flavor, what: str) -> TrainingError:
    """The one-line error for a flavor whose library is not installed."""
    return TrainingError(f"{what} needs the {flavor.extra} extra: pip install 'tidal[{flavor.extra}]'")
