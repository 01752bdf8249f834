"""Model flavors: a plugin table of how models are saved and loaded (no pickle on the load path)."""

from __future__ import annotations

from typing import Any

from tidal.core.errors import PluginNotFound
from tidal.train.flavors.base import Flavor
from tidal.train.flavors.lightgbm_flavor import LightGBMFlavor
from tidal.train.flavors.onnx_flavor import OnnxFlavor
from tidal.train.flavors.sklearn import SklearnFlavor
from tidal.train.flavors.torch_flavor import TorchFlavor
from tidal.train.flavors.xgboost_flavor import XGBoostFlavor

_FLAVORS: dict[str, Flavor] = {}


def register_flavor(flavor: Flavor) -> None:
    """Add ``flavor`` to the table (a later registration under the same name replaces it)."""
    _FLAVORS[flavor.name] = flavor


def get_flavor(name: str) -> Flavor:
    """The flavor called ``name``, or :class:`PluginNotFound` listing the known ones."""
    try:
        return _FLAVORS[name]
    except KeyError:
        raise PluginNotFound("flavor", name, _FLAVORS) from None


def flavor_for(model: Any) -> Flavor:
    """The first flavor that handles ``model``."""
    for flavor in _FLAVORS.values():
        if flavor.handles(model):
            return flavor
    raise PluginNotFound("flavor", type(model).__name__, _FLAVORS)


def module_flavor(module: str) -> Flavor | None:
    """The registered flavor whose library provides the module ``module`` (``xgboost.sklearn``), or None."""
    root = module.split(".")[0]
    for flavor in _FLAVORS.values():
        if root in flavor.modules:
            return flavor
    return None


def accepting_flavor(cls: type) -> Flavor | None:
    """The first registered flavor that accepts ``cls`` as a ``model.estimator`` class, or None."""
    for flavor in _FLAVORS.values():
        if flavor.accepts(cls):
            return flavor
    return None


# The booster and torch flavors first: their estimators are scikit-learn estimators too, which the sklearn
# flavor would otherwise claim (and store with skops, which refuses their boosters and networks when it loads
# them).
register_flavor(XGBoostFlavor())
register_flavor(LightGBMFlavor())
register_flavor(TorchFlavor())
register_flavor(SklearnFlavor())
register_flavor(OnnxFlavor())

__all__ = ["Flavor", "LightGBMFlavor", "OnnxFlavor", "SklearnFlavor", "TorchFlavor", "XGBoostFlavor",
           "accepting_flavor", "flavor_for", "get_flavor", "module_flavor", "register_flavor"]
