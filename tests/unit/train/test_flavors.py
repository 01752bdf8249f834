"""The scikit-learn flavor: reproducible bytes, faithful round trips, no untrusted types on load."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import skops.io as sio
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import FunctionTransformer

from tidal.core.errors import IntegrityError, PluginNotFound
from tidal.train.flavors import flavor_for, get_flavor
from tidal.train.flavors.checks import check_flavor

SCRIPT = """
import hashlib, numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier
from tidal.train.flavors import get_flavor
rng = np.random.default_rng(0)
X = rng.normal(size=(300, 4)); y = (X[:, 0] + X[:, 1] > 0).astype(int)
m = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
print(hashlib.sha256(get_flavor("sklearn").save(m)).hexdigest())
"""


def test_the_same_model_has_the_same_digest_in_two_processes() -> None:
    digests = {subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
               .stdout.strip() for _ in range(2)}
    assert len(digests) == 1 and len(digests.pop()) == 64


def test_check_flavor_passes_for_sklearn() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = (X[:, 0] > 0).astype(int)
    model = HistGradientBoostingClassifier(max_iter=10, random_state=0).fit(X, y)
    flavor = flavor_for(model)
    assert flavor.name == "sklearn"
    check_flavor(flavor, model, X)


@settings(max_examples=15, deadline=None)
@given(st.integers(min_value=0, max_value=10_000))
def test_round_trip_predicts_identically(seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 3))
    y = (X @ rng.normal(size=3) > 0).astype(int)
    if len(set(y)) < 2:
        y[0] = 1 - y[0]
    model = LogisticRegression().fit(X, y)
    flavor = get_flavor("sklearn")
    loaded = flavor.load(flavor.save(model))
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def _double(x: np.ndarray) -> np.ndarray:
    return x * 2


def test_untrusted_types_are_refused() -> None:
    payload = sio.dumps(FunctionTransformer(_double))  # a function reference: code from the file
    with pytest.raises(IntegrityError, match="tidal never loads"):
        get_flavor("sklearn").load(payload)


def test_garbage_is_a_clear_error() -> None:
    with pytest.raises(IntegrityError, match="not a valid skops archive"):
        get_flavor("sklearn").load(b"not a zip file")


def test_unknown_flavor_lists_known_ones() -> None:
    with pytest.raises(PluginNotFound, match="sklearn"):
        get_flavor("sklearnn")
