"""Model flavors: a plugin table of how models are saved and loaded (no pickle on the load path)."""

from __future__ import annotations

from typing import Any

from tidal.core.errors import PluginNotFound
from tidal.train.flavors.base import Flavor
from tidal.train.flavors.sklearn import SklearnFlavor

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


def accepting_flavor(cls: type) -> Flavor | None:
    """The first registered flavor that accepts ``cls`` as a ``model.estimator`` class, or None."""
    for flavor in _FLAVORS.values():
        if flavor.accepts(cls):
            return flavor
    return None


register_flavor(SklearnFlavor())

__all__ = ["Flavor", "SklearnFlavor", "accepting_flavor", "flavor_for", "get_flavor", "register_flavor"]
