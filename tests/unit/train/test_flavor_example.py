"""The worked example in ``tidal.train.flavors.base``'s docstring is real code: it compiles, runs against a
stand-in "mybooster" library, and the flavor it defines passes the public conformance check."""

from __future__ import annotations

import json
import re
import sys
import textwrap
import types
from collections.abc import Iterator

import numpy as np
import pytest

import tidal.train.flavors.base as base
from tidal.testing import check_flavor
from tidal.train.flavors import flavor_for

# A library with its own JSON format, as the example assumes: Booster.to_json / Booster.from_json.
MYBOOSTER = '''
import json

class Booster:
    """A "model" that predicts 1 where a weighted sum of the row is positive."""

    def __init__(self, weights):
        self.weights = list(weights)

    def predict(self, X):
        return [int(sum(w * x for w, x in zip(self.weights, row)) > 0) for row in X]

    def to_json(self):
        return json.dumps({"weights": self.weights}, sort_keys=True)

    @classmethod
    def from_json(cls, text):
        return cls(json.loads(text)["weights"])
'''


def example_code() -> str:
    """The literal block after "Worked example", dedented."""
    doc = base.__doc__ or ""
    match = re.search(r"Worked example[^\n]*::\n\n((?:    [^\n]*\n|\n)+)", doc)
    assert match is not None, "the docstring has no worked example"
    return textwrap.dedent(match.group(1))


@pytest.fixture
def mybooster() -> Iterator[types.ModuleType]:
    module = types.ModuleType("mybooster")
    exec(compile(MYBOOSTER, "mybooster.py", "exec"), module.__dict__)
    sys.modules["mybooster"] = module
    yield module
    del sys.modules["mybooster"]


def test_the_worked_example_is_a_flavor_that_passes_check_flavor(mybooster: types.ModuleType) -> None:
    from tidal.train import flavors

    code = example_code()
    assert "class MyBoosterFlavor(Flavor)" in code and "register_flavor(MyBoosterFlavor())" in code
    namespace: dict[str, object] = {"__name__": "example"}
    before = dict(flavors._FLAVORS)
    try:
        exec(compile(code, "<flavors.base docstring>", "exec"), namespace)
        flavor = namespace["MyBoosterFlavor"]()  # type: ignore[operator]
        model = mybooster.Booster([1.0, -2.0, 0.5])
        X = np.random.default_rng(0).normal(size=(50, 3)).tolist()
        check_flavor(flavor, model, X)
        # registered by the example: tidal now finds it for such a model, and model.estimator may name it
        assert flavor_for(model).name == "mybooster"
        assert flavor.accepts(mybooster.Booster) and not flavor.accepts(dict)
        assert json.loads(flavor.save(model)) == {"weights": [1.0, -2.0, 0.5]}
    finally:
        flavors._FLAVORS.clear()
        flavors._FLAVORS.update(before)
