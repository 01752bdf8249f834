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
new flavor with :func:`tidal.train.flavors.checks.check_flavor`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Flavor(ABC):
    """Saves and loads one kind of model as bytes, without pickle."""

    name: str = ""
    format: str = ""

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
