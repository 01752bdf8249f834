"""Public conformance checks for flavors, in the spirit of scikit-learn's ``check_estimator``."""

from __future__ import annotations

from typing import Any

import numpy as np

from tidal.core.errors import PluginCheckFailed
from tidal.train.flavors.base import Flavor


class FlavorCheckFailed(PluginCheckFailed):
    """A flavor broke the ``Flavor`` contract; the message says which clause (an ``AssertionError`` too)."""


def check_flavor(flavor: Flavor, model: Any, X: Any) -> None:
    """Raise :class:`FlavorCheckFailed` (an AssertionError) if ``flavor`` breaks the contract on the fitted ``model``.

    The contract: it handles the model, saves to bytes, the same model saves to the same bytes, and the
    loaded model predicts exactly what the original did on ``X``.
    """
    if not flavor.name or not flavor.format:
        raise FlavorCheckFailed("a flavor needs a name and a format")
    if not flavor.handles(model):
        raise FlavorCheckFailed(f"flavor {flavor.name!r} does not handle {type(model).__name__}")
    first = flavor.save(model)
    if not isinstance(first, bytes):
        raise FlavorCheckFailed("save() must return bytes")
    if flavor.save(model) != first:
        raise FlavorCheckFailed("save() must be deterministic: the same model gave different bytes")
    loaded = flavor.load(first)
    if not np.array_equal(np.asarray(loaded.predict(X)), np.asarray(model.predict(X))):
        raise FlavorCheckFailed("the loaded model predicts differently from the saved one")
