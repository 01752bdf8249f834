"""What a skops model file may name: an explicit list of classes, checked on the file's own JSON.

A skops archive describes every object as a node of ``schema.json`` (``__loader__``, ``__module__``,
``__class__``). Loading it imports that module and calls what it names: a class for most nodes, but a
``FunctionNode`` hands back any function (``FunctionTransformer(func=numpy.save)`` calls it at predict), an
``OperatorFuncNode`` builds an ``operator.attrgetter``/``methodcaller`` gadget, a ``LossNode`` or a dict's key
type calls the name it holds with arguments from the file. Trusting names by prefix (``numpy.``) therefore
trusts every function under it, ``numpy._core._methods._dump`` (which writes a file) included.

So tidal reads ``schema.json`` itself, before skops builds anything, and every node must name a *class*
from :func:`trusted_classes` (an explicit list: NumPy and SciPy data types, the fitted helpers scikit-learn
models hold) or a scikit-learn estimator class (a ``BaseEstimator`` subclass defined under ``sklearn``,
resolved by importing a ``sklearn`` module only). Functions, methods, ``functools.partial`` and ``operator``
gadgets are never trusted, whatever their module; classes that open files (``numpy.memmap``, ``NpzFile``,
``DataSource``) are refused by name. Every node is checked by the kind of object its loader builds, so a
container node names a container class, a loss node a loss class, and so on.
"""

from __future__ import annotations

import importlib
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

#: Node loaders that rebuild code, never data: refused whatever they name, with the reason shown.
_CODE_LOADERS: dict[str, str] = {
    "FunctionNode": "a function; a model file never names code to call",
    "MethodNode": "a bound method; a model file never names code to call",
    "PartialNode": "functools.partial, which wraps a function",
    "OperatorFuncNode": "an operator gadget that calls attributes or methods named in the file",
}

#: Classes that open files or URLs when built or used: refused by name even under numpy/scipy.
_IO_CLASSES = frozenset({"memmap", "NpzFile", "DataSource", "Repository", "BagObj"})

# The fitted helpers scikit-learn estimators hold, by defining module. Names a given scikit-learn
# version lacks are skipped. Every one is built from plain data (arrays, numbers, strings) by skops.
_SKLEARN_HELPERS: dict[str, tuple[str, ...]] = {
    "sklearn._loss.link": ("HalfLogitLink", "IdentityLink", "Interval", "LogLink", "LogitLink", "MultinomialLogit"),
    "sklearn._loss.loss": (
        "AbsoluteError", "ExponentialLoss", "HalfBinomialLoss", "HalfGammaLoss", "HalfMultinomialLoss",
        "HalfPoissonLoss", "HalfSquaredError", "HalfTweedieLoss", "HalfTweedieLossIdentity", "HuberLoss",
        "PinballLoss", "HalfBinomialLossArrayAPI", "HalfMultinomialLossArrayAPI", "HalfPoissonLossArrayAPI",
    ),
    "sklearn._loss._loss": (
        "CyAbsoluteError", "CyExponentialLoss", "CyHalfBinomialLoss", "CyHalfGammaLoss", "CyHalfMultinomialLoss",
        "CyHalfPoissonLoss", "CyHalfSquaredError", "CyHalfTweedieLoss", "CyHalfTweedieLossIdentity", "CyHuberLoss",
        "CyPinballLoss",
    ),
    "sklearn.linear_model._sgd_fast": (
        "EpsilonInsensitive", "Hinge", "ModifiedHuber", "SquaredEpsilonInsensitive", "SquaredHinge",
        "Huber", "Log", "SquaredLoss",  # scikit-learn < 1.6
    ),
    "sklearn.tree._tree": ("Tree",),
    "sklearn.ensemble._hist_gradient_boosting.predictor": ("TreePredictor",),
    "sklearn.neighbors._kd_tree": ("KDTree",),
    "sklearn.neighbors._ball_tree": ("BallTree",),
    "sklearn.neural_network._stochastic_optimizers": ("AdamOptimizer", "SGDOptimizer"),
    "sklearn.utils._bunch": ("Bunch",),
    "sklearn.calibration": ("_CalibratedClassifier",),
    "sklearn.gaussian_process.kernels": (
        "CompoundKernel", "ConstantKernel", "DotProduct", "ExpSineSquared", "Exponentiation", "Hyperparameter",
        "Matern", "PairwiseKernel", "Product", "RBF", "RationalQuadratic", "Sum", "WhiteKernel",
    ),
}

# The loss classes a LossNode may call (with arguments from the file) to rebuild a loss.
_LOSS_MODULES = ("sklearn._loss._loss", "sklearn.linear_model._sgd_fast")

# What each container loader builds: the class it names must be one of these (or a trusted subclass).
_CONTAINERS: dict[str, tuple[type, ...]] = {
    "DictNode": (dict,), "ListNode": (list,), "SetNode": (set, frozenset), "TupleNode": (tuple,),
}

# Path segments of sklearn modules that hold test helpers or data loaders, never fitted-model classes:
# such a module is not even imported to check a name.
_SKIPPED_SEGMENTS = frozenset({"tests", "externals", "datasets", "_testing", "_mocking", "estimator_checks"})
_MODULE_PATH = re.compile(r"^sklearn(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Refusal:
    """One name a model file asks for that tidal does not load, and why."""

    name: str
    why: str

    def __str__(self) -> str:
        return f"{self.name} ({self.why})"


def type_name(cls: type) -> str:
    """The name skops writes for ``cls`` (``module.Class``, the module being where pickle finds it)."""
    from skops.io._utils import get_type_name

    return str(get_type_name(cls))


def _resolves_to(cls: type) -> str | None:
    """The skops name of ``cls`` if importing that name gives back this very class, else None."""
    name = type_name(cls)
    module, _, attr = name.rpartition(".")
    try:
        return name if getattr(importlib.import_module(module), attr, None) is cls else None
    except ImportError:
        return None


@cache
def trusted_classes() -> dict[str, type]:
    """Every class a tidal model file may name, by its skops name, beside scikit-learn estimators.

    Built from classes tidal imports itself (never from names in a file): Python's containers and
    scalars, NumPy arrays, dtypes, scalar types and random generators, SciPy sparse matrices and arrays,
    and the fitted helpers scikit-learn models hold (losses, links, trees, neighbour trees, distance
    metrics, optimizers, kernels), tidal's own prepare transformers (``ImagePreprocessor``) and its
    relative-target wrapper (``RelativeRegressor``).
    """
    import collections

    import numpy as np
    import scipy.sparse as sp

    classes: list[type] = [dict, list, tuple, set, frozenset, str, int, float, bool, complex, bytes, bytearray,
                           slice, collections.OrderedDict, collections.defaultdict,
                           np.ndarray, np.ma.MaskedArray, np.dtype,
                           np.random.Generator, np.random.RandomState, np.random.SeedSequence]
    classes += sorted({t for t in np.sctypeDict.values() if isinstance(t, type)}, key=str)
    import numpy.dtypes

    classes += [c for c in vars(numpy.dtypes).values() if isinstance(c, type) and issubclass(c, np.dtype)]
    classes += [c for c in vars(np.random).values()
                if isinstance(c, type) and issubclass(c, np.random.BitGenerator) and c is not np.random.BitGenerator]
    for kind in ("bsr", "coo", "csc", "csr", "dia", "dok", "lil"):
        classes += [c for c in (getattr(sp, f"{kind}_matrix", None), getattr(sp, f"{kind}_array", None)) if c]
    for module_name, names in _SKLEARN_HELPERS.items():
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        classes += [c for n in names if isinstance(c := getattr(module, n, None), type)]
    try:
        from sklearn.metrics import _dist_metrics

        # The metrics scikit-learn's own table lists; PyFuncDistance wraps a Python function and is left out.
        for table in ("METRIC_MAPPING64", "METRIC_MAPPING32"):
            classes += [c for c in getattr(_dist_metrics, table, {}).values() if "PyFunc" not in c.__name__]
    except ImportError:
        pass
    # tidal's own transformers (prepare steps), built from plain data like scikit-learn's
    from tidal.data.images.prepare import ImagePreprocessor
    from tidal.train.relative import RelativeRegressor

    # and the one tidal model class: a regressor of the change from the last label (prepare.label_features.relative:
    # true), whose attributes are a fitted scikit-learn pipeline, column names and a float
    classes += [ImagePreprocessor, RelativeRegressor]
    out: dict[str, type] = {}
    for cls in classes:
        if cls.__name__ in _IO_CLASSES:
            continue
        name = _resolves_to(cls)
        if name is not None:
            out[name] = cls
    return out


@cache
def _loss_classes() -> frozenset[str]:
    return frozenset(n for n in trusted_classes() if n.rpartition(".")[0] in _LOSS_MODULES)


@lru_cache(maxsize=1024)
def _estimator_class(name: str) -> type | None:
    """The scikit-learn estimator class called ``name``, or None. Imports only a ``sklearn`` module
    (never one under tests, externals or datasets), and only a class defined there under that very
    name counts: a function, an alias or a class from elsewhere does not."""
    module_name, _, attr = name.rpartition(".")
    if not _MODULE_PATH.match(module_name) or not _IDENTIFIER.match(attr):
        return None
    if _SKIPPED_SEGMENTS & set(module_name.split(".")):
        return None
    from sklearn.base import BaseEstimator

    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        return None
    if cls.__module__ != module_name or cls.__name__ != attr or attr in _IO_CLASSES:
        return None
    return cls


def trusted_class(name: str) -> type | None:
    """The class a model file may name as ``name``, or None."""
    return trusted_classes().get(name) or _estimator_class(name)


def _nodes(tree: Any) -> Iterator[dict[str, Any]]:
    """Every node of a skops schema: each dict, at any depth, that has a ``__loader__`` key."""
    stack = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if "__loader__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _why_untrusted(name: str) -> str:
    """Why ``name`` is refused, naming what it is when its module is already loaded (nothing is imported)."""
    module_name, _, attr = name.rpartition(".")
    if attr in _IO_CLASSES:
        return "opens files or URLs"
    found = getattr(sys.modules.get(module_name), attr, None)
    if found is not None and not isinstance(found, type):
        return "a function or other callable, not a class; a model file never names code to call"
    return "not a class tidal loads (scikit-learn estimators and their fitted parts, NumPy and SciPy data)"


def _check_node(node: dict[str, Any]) -> tuple[str, Refusal | None]:
    """The name ``node`` asks for and, when tidal does not load it, why."""
    loader, module, cls_name = node.get("__loader__"), node.get("__module__"), node.get("__class__")
    if not (isinstance(loader, str) and isinstance(module, str) and isinstance(cls_name, str)):
        return "?", Refusal(f"{module}.{cls_name}", "a malformed node")
    name = f"{module}.{cls_name}"
    if loader in _CODE_LOADERS:
        shown = f"{name}.{node['content'].get('func')}" if loader == "MethodNode" and isinstance(
            node.get("content"), dict) else name
        return name, Refusal(shown, _CODE_LOADERS[loader])
    if loader in ("JsonNode", "CachedNode"):
        return "", None  # a JSON literal, or a reference to a node checked where it was defined
    if cls_name in _IO_CLASSES:
        return name, Refusal(name, "opens files or URLs")
    found = trusted_class(name)
    if found is None:
        return name, Refusal(name, _why_untrusted(name))
    ok = {
        "TreeNode": name == "sklearn.tree._tree.Tree",
        "LossNode": name in _loss_classes(),
        "DTypeNode": found is _np().dtype,
        "RandomStateNode": found is _np().random.RandomState,
        "RandomGeneratorNode": found is _np().random.Generator,
        "MaskedArrayNode": found is _np().ma.MaskedArray,
        "NdArrayNode": issubclass(found, (_np().ndarray, _np().generic)),
        "SparseMatrixNode": name.startswith("scipy.sparse."),
        "BytesNode": found is bytes, "BytearrayNode": found is bytearray, "SliceNode": found is slice,
        "DefaultDictNode": name == "collections.defaultdict",
        **{k: issubclass(found, bases) for k, bases in _CONTAINERS.items()},
        "ObjectNode": True, "ConstructorFromReduceNode": True, "TypeNode": True,
    }.get(loader)
    if ok and loader == "RandomGeneratorNode":
        bit = _bit_generator(node)
        if bit is None:
            return name, Refusal(f"numpy.random.{_bit_generator_name(node)}",
                                 "called to build a random generator, but not a bit generator class")
    if ok is None:
        return name, Refusal(name, f"built by the skops loader {loader!r}, which tidal does not use")
    if not ok:
        return name, Refusal(name, f"not what a {loader} builds")
    return name, None


def _np() -> Any:
    import numpy as np

    return np


def _bit_generator_name(node: dict[str, Any]) -> str:
    try:
        name = json.loads(node["content"]["bit_generator"]["content"]["bit_generator"]["content"])
    except (KeyError, TypeError, ValueError):
        return "?"
    return name if isinstance(name, str) else "?"


def _bit_generator(node: dict[str, Any]) -> type | None:
    """A Generator node is rebuilt by calling ``numpy.random.<name>`` with the name from its state: the
    trusted bit generator class of that name, or None."""
    np = _np()
    cls = getattr(np.random, _bit_generator_name(node), None)
    ok = isinstance(cls, type) and issubclass(cls, np.random.BitGenerator) and cls in trusted_classes().values()
    return cls if ok else None


def audit_schema(schema: Any) -> tuple[list[str], list[Refusal]]:
    """The names the schema asks for that tidal trusts, and the refusals (empty when it may be loaded)."""
    trusted: set[str] = set()
    refused: dict[str, Refusal] = {}
    for node in _nodes(schema):
        name, refusal = _check_node(node)
        if refusal is None:
            if name:
                trusted.add(name)
        else:
            refused.setdefault(refusal.name, refusal)
    return sorted(trusted), [refused[k] for k in sorted(refused)]


__all__ = ["Refusal", "audit_schema", "trusted_class", "trusted_classes", "type_name"]
