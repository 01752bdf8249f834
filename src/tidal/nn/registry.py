"""The architectures a torch estimator may build: a registry of names, or the import path of a user's class.

``model.params.module`` names an architecture in data: a name registered here (``mlp`` and ``cnn``, built
in), or the dotted import path of a ``torch.nn.Module`` subclass (``mypackage.nets.TabularNet``). Either way
the class is checked before anything is called: a function, a builtin or any other class is refused in one line. The
class is built as ``cls(in_features=..., out_features=..., **module_params)``, the two sizes taken from the
data; a class whose ``__init__`` takes ``input_shape`` (the built-in ``cnn``) gets the images' (C, H, W)
too. A stored model records both the name and the class's import path, so a server that never ran the
user's ``register_module`` call still finds a class it can import.

Worked example — a user's architecture::

    import torch
    from tidal.nn import register_module

    class Wide(torch.nn.Module):
        def __init__(self, in_features: int, out_features: int, width: int = 128) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(in_features, width), torch.nn.ReLU(),
                                            torch.nn.Linear(width, out_features))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    register_module("wide", Wide)

and in ``tidal.yaml``: ``model: {estimator: tidal.nn.TorchClassifier, params: {module: wide,
module_params: {width: 64}}}`` (or ``module: mypackage.nets.Wide`` without registering it).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from tidal.core.errors import TidalError, TrainingError

#: name → class, or the import path of a class (the built-ins: importing them needs torch).
_MODULES: dict[str, type | str] = {"mlp": "tidal.nn.mlp.MLP", "cnn": "tidal.nn.cnn.CNN"}

#: The keyword arguments tidal gives every architecture, taken from the data.
SIZES = ("in_features", "out_features")
#: The keyword argument tidal gives an architecture that takes it: the images' (channels, height, width), from
#: the estimator's ``input_shape`` (which tidal fills from the ``prepare.images`` step).
SHAPE = "input_shape"

_REGISTER_HINT = ("register it with tidal.nn.register_module(name, cls), or give the import path of a "
                  "torch.nn.Module subclass (mypackage.nets.MyNet)")


def register_module(name: str, cls: type | str) -> None:
    """Make ``model.params.module: NAME`` build ``cls`` (a ``torch.nn.Module`` subclass, or its import path);
    a later registration under the same name replaces it."""
    if not name or "." in name or not name.isidentifier():
        raise TrainingError(f"architecture name {name!r} is not a plain name",
                            hint="use letters, digits and underscores (a dotted name is an import path)")
    if isinstance(cls, type):
        _check_module_class(cls, name, TrainingError)
    elif not isinstance(cls, str) or "." not in cls:
        raise TrainingError(f"architecture {name!r}: {cls!r} is neither a class nor an import path",
                            hint="pass the torch.nn.Module subclass itself")
    _MODULES[name] = cls


def registered_modules() -> list[str]:
    """The registered architecture names, sorted."""
    return sorted(_MODULES)


def class_path(cls: type) -> str:
    """``module.Class`` of ``cls``, or "" for a class that cannot be imported by path (defined in a function)."""
    qualname = cls.__qualname__
    return "" if "<locals>" in qualname else f"{cls.__module__}.{qualname}"


def resolve_module(spec: str, *, key: str = "model.params.module",
                   error: Callable[..., TidalError] = TrainingError) -> type:
    """The ``torch.nn.Module`` subclass ``spec`` names (a registered name or an import path), checked before
    anything is called; ``error`` (:class:`TrainingError` by default) in one line naming ``key`` otherwise."""
    if not isinstance(spec, str) or not spec:
        raise error(f"{key}: {spec!r} is not an architecture name", hint=_REGISTER_HINT)
    entry = _MODULES.get(spec)
    if entry is None and "." not in spec:
        known = ", ".join(registered_modules())
        raise error(f"{key}: unknown architecture {spec!r} (registered: {known})", hint=_REGISTER_HINT)
    target = spec if entry is None else entry
    cls = _import(target, key, error) if isinstance(target, str) else target
    return _check_module_class(cls, spec, error, key=key)


def _import(dotted: str, key: str, error: Callable[..., TidalError]) -> Any:
    module_name, _, attr = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error(f"{key}: cannot import module {module_name!r} for architecture {dotted!r} ({exc})",
                    hint="check the spelling, or install the package that provides it") from None
    found: Any = module
    for part in attr.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise error(f"{key}: {module_name} has no class {attr!r}", hint=_REGISTER_HINT)
    return found


def _check_module_class(cls: Any, spec: str, error: Callable[..., TidalError], *,
                        key: str = "architecture") -> type:
    import torch

    if not isinstance(cls, type) or not issubclass(cls, torch.nn.Module):
        what = f"a {type(cls).__name__}" if not isinstance(cls, type) else f"the class {class_path(cls) or repr(cls)}"
        raise error(f"{key}: {spec!r} is {what}, not a torch.nn.Module subclass; tidal never calls it",
                    hint=_REGISTER_HINT)
    return cls


def check_module_params(cls: type, spec: str, params: Mapping[str, Any], *, key: str = "model.params.module_params",
                        error: Callable[..., TidalError] = TrainingError) -> dict[str, Any]:
    """``params`` as keyword arguments for ``cls``: a mapping of names ``cls`` takes (besides the sizes, which
    come from the data); ``error`` in one line naming the first that is not."""
    if not isinstance(params, Mapping) or not all(isinstance(k, str) for k in params):
        raise error(f"{key}: {params!r} is not a mapping of parameter names",
                    hint="write it as a mapping, e.g. {hidden: [64, 32], dropout: 0.1}")
    taken = [k for k in (*SIZES, SHAPE) if k in params]
    if taken:
        hint = f"remove {taken[0]}" + (" (or set model.params.input_shape)" if taken[0] == SHAPE else "")
        raise error(f"{key}.{taken[0]}: tidal sets {taken[0]} from the data", hint=hint)
    try:
        signature = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return dict(params)
    if any(p.kind == p.VAR_KEYWORD for p in signature.values()):
        return dict(params)
    accepted = sorted(n for n, p in signature.items() if p.kind != p.VAR_POSITIONAL and n not in (*SIZES, SHAPE))
    missing = [n for n in SIZES if n not in signature]
    if missing:
        raise error(f"architecture {spec!r} takes no {missing[0]} argument: tidal builds every architecture as "
                    "cls(in_features=..., out_features=..., **module_params)",
                    hint="add in_features and out_features to its __init__")
    for name in params:
        if name not in signature:
            raise error(f"{key}.{name}: architecture {spec!r} has no parameter {name!r}",
                        hint=f"it takes: {', '.join(accepted) or 'nothing besides the sizes'}")
    return dict(params)


def takes_shape(cls: type) -> tuple[bool, bool]:
    """Whether ``cls`` takes ``input_shape``, and whether it must be given (no default)."""
    try:
        found = inspect.signature(cls).parameters.get(SHAPE)
    except (TypeError, ValueError):
        return False, False
    if found is None:
        return False, False
    return True, found.default is inspect.Parameter.empty


__all__ = ["SHAPE", "SIZES", "check_module_params", "class_path", "register_module", "registered_modules",
           "resolve_module", "takes_shape"]
