"""The torch flavor: :mod:`tidal.nn`'s estimators, their weights as safetensors and their architecture as data.

What is stored (an archive, :mod:`tidal.train.flavors.archive`): ``weights.safetensors`` (the module's
``state_dict``: raw tensors and a JSON header, nothing else), ``manifest.json`` with the estimator's
parameters (the architecture's registered name or import path and its ``module_params`` among them), the
architecture's class path, the class labels, the input width, the output size and the dtype, and for
tidal's pipeline its ``prepare`` steps as a checked skops file. Loading resolves the architecture from the
manifest (a registered name, or an import path whose class must be a ``torch.nn.Module`` subclass: anything
else is refused before it is called), builds it with the stored sizes and ``module_params``, and loads the
weights with ``load_state_dict(strict=True)`` once every name and shape is known to match. ``torch.load``
(pickle) is never called.

Same bytes: the fit is seeded and deterministic (:mod:`tidal.nn.training`), the safetensors file lays its
tensors out in a fixed order, and its metadata has a single key (safetensors writes a metadata mapping in
its hash order, which changes from process to process once there are two keys).

Images: the estimator's ``input_shape`` is filled from the fitted ``prepare.images`` step before the network
is built (an architecture that takes ``input_shape``, such as ``cnn``, reshapes its rows back to images), and
it is stored among the params, so loading builds the same network.

Curves: every epoch logs ``curve.train.loss`` and, with validation rows (``validation_fraction`` > 0),
``curve.valid.loss``; a classifier also ``curve.train.accuracy`` and ``curve.valid.accuracy``.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from tidal.core.errors import IntegrityError, TrainingError
from tidal.nn.estimators import TorchClassifier, TorchEstimator, TorchRegressor
from tidal.nn.registry import SHAPE, check_module_params, class_path, resolve_module, takes_shape
from tidal.train.flavors.archive import (
    PREPARE,
    classes_array,
    classes_json,
    join_pipeline,
    json_params,
    manifest_bytes,
    model_members,
    read_archive,
    save_prepare,
    split_pipeline,
    write_archive,
)
from tidal.train.flavors.base import Flavor, missing_extra

FORMAT = "tidal-torch"
WEIGHTS = "weights.safetensors"
#: The estimator classes the flavor stores and builds, by the name the manifest gives.
ESTIMATORS: dict[str, type[TorchEstimator]] = {"TorchClassifier": TorchClassifier, "TorchRegressor": TorchRegressor}
_RETRAIN = "re-run `tidal run` to train it again"


def _base(estimator: Any) -> str:
    for cls in type(estimator).__mro__:
        if cls in ESTIMATORS.values():
            return cls.__name__
    raise TrainingError(f"{type(estimator).__name__} is not a tidal.nn estimator the torch flavor trains and stores",
                        hint="name tidal.nn.TorchClassifier or tidal.nn.TorchRegressor in model.estimator")


class TorchFlavor(Flavor):
    """:class:`tidal.nn.TorchClassifier` and :class:`tidal.nn.TorchRegressor` (alone, or last in tidal's
    pipeline)."""

    name = "torch"
    format = "torch-safetensors"
    extra = "torch"
    modules = ("torch", "safetensors")

    def handles(self, model: Any) -> bool:
        return isinstance(split_pipeline(model)[0], TorchEstimator)

    def accepts(self, cls: type) -> bool:
        return isinstance(cls, type) and issubclass(cls, TorchEstimator)  # the base alone is refused when it fits

    def libraries(self, what: str) -> tuple[Any, Any]:
        """torch and ``safetensors.torch``, or the extra's one-line error naming ``what`` needs them."""
        try:
            return importlib.import_module("torch"), importlib.import_module("safetensors.torch")
        except ImportError:
            raise missing_extra(self, what) from None

    def fit(self, model: Any, X: Any, y: Any) -> dict[str, list[float]]:
        estimator, _, head = split_pipeline(model)
        self.libraries(f"model.estimator tidal.nn.{_base(estimator)}")
        estimator.check_params()  # a bad architecture is refused before the prepare steps are fitted
        if head is None:
            model.fit(X, y)
        else:  # the prepare steps first (the pipeline's own steps, fitted in place), then the network on their rows
            rows = head.fit_transform(X, y)
            shape = image_shape(head)
            if estimator.input_shape is None and shape is not None:
                estimator.set_params(input_shape=shape)  # stored with the params: a loaded model builds the same
            estimator.fit(rows, y)
        return {f"curve.{name}": [float(v) for v in values] for name, values in sorted(estimator.curves_.items())}

    def save(self, model: Any) -> bytes:
        estimator, step, head = split_pipeline(model)
        torch, st = self.libraries("a torch model")
        name = _base(estimator)
        state = {}
        for key, tensor in estimator.module_.state_dict().items():
            if tensor.is_floating_point() and tensor.dtype != torch.float32:
                raise TrainingError(f"the network's tensor {key} is {tensor.dtype}, not float32",
                                    hint="keep the architecture's parameters and buffers float32")
            state[key] = tensor.detach().cpu().clone().contiguous()  # a copy each: tied weights are two tensors
        classifier = name == "TorchClassifier"
        fitted: dict[str, Any] = {"n_features_in": int(estimator.n_features_in_),
                                  "n_outputs": int(estimator.n_outputs_), "n_epochs": int(estimator.n_epochs_),
                                  "best_epoch": int(estimator.best_epoch_)}
        if not classifier:
            fitted.update(y_mean=[float(v) for v in estimator.y_mean_], y_scale=[float(v) for v in estimator.y_scale_],
                          y_ndim=int(estimator.y_ndim_))
        manifest = {"format": FORMAT, "version": 1, "library": f"torch {torch.__version__}", "estimator": name,
                    "params": json_params(estimator), "architecture": estimator.architecture_,
                    "classes": classes_json(estimator.classes_) if classifier else None, "fitted": fitted,
                    "dtype": "float32", "weights": WEIGHTS, "prepare": PREPARE if head is not None else None,
                    "step": step}
        members = {"manifest.json": manifest_bytes(manifest), WEIGHTS: bytes(st.save(state, metadata={"format": "pt"}))}
        if head is not None:
            members[PREPARE] = save_prepare(head)
        return write_archive(members)

    def load(self, data: bytes) -> Any:
        manifest, members = read_archive(data, fmt=FORMAT, estimators=frozenset(ESTIMATORS), member="weights")
        torch, st = self.libraries("this model (a torch network)")
        weights, prepare = model_members(manifest, members, "weights")
        params, fitted = manifest.get("params"), manifest.get("fitted")
        if not isinstance(params, dict) or not isinstance(fitted, dict) or manifest.get("dtype") != "float32":
            raise IntegrityError("the model file's parameters are not a mapping of float32 weights", hint=_RETRAIN)
        try:
            estimator = ESTIMATORS[manifest["estimator"]](**params)
            n_in, n_out = int(fitted["n_features_in"]), int(fitted["n_outputs"])
            epochs, best = int(fitted["n_epochs"]), int(fitted["best_epoch"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"the model file's parameters are not valid: {type(exc).__name__}: {exc}",
                                 hint=_RETRAIN) from exc
        cls, label = self._architecture(estimator.module, manifest.get("architecture"))
        module_params = check_module_params(cls, str(estimator.module), estimator.module_params or {},
                                            key="the model file's module_params", error=IntegrityError)
        if takes_shape(cls)[0] and estimator.input_shape is not None:
            module_params = {**module_params, SHAPE: [int(v) for v in estimator.input_shape]}
        try:
            module = cls(in_features=n_in, out_features=n_out, **module_params)
        except (TypeError, ValueError) as exc:
            raise IntegrityError(f"the model file's architecture {label} cannot be built with its module_params "
                                 f"{module_params}: {exc}", hint=_RETRAIN) from exc
        try:
            tensors = st.load(weights)
        except Exception as exc:  # safetensors raises its own SafetensorError, or ValueError, on a bad header
            raise IntegrityError(f"the model file's weights cannot be read: {type(exc).__name__}: {exc}",
                                 hint=_RETRAIN) from exc
        _check_weights(module, tensors, label, module_params, torch.float32)
        try:
            module.load_state_dict(tensors, strict=True)
        except RuntimeError as exc:  # what the checks above do not foresee (an architecture's own hooks)
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise IntegrityError(f"the model file's weights do not load into architecture {label}: {first}",
                                 hint=_RETRAIN) from exc
        module.eval()
        estimator.module_, estimator.architecture_ = module, class_path(cls)
        estimator.n_features_in_, estimator.n_outputs_ = n_in, n_out
        estimator.n_epochs_, estimator.best_epoch_, estimator.curves_ = epochs, best, {}
        if isinstance(estimator, TorchClassifier):
            classes = classes_array(manifest.get("classes"))
            if classes is None or len(classes) != n_out:
                raise IntegrityError(f"the model file names {0 if classes is None else len(classes)} classes for a "
                                     f"network of {n_out} outputs", hint=_RETRAIN)
            estimator.classes_ = classes
        else:
            _regression_scale(estimator, fitted, n_out)
        return join_pipeline(prepare, manifest.get("step"), estimator)

    @staticmethod
    def _architecture(module: Any, stored_path: Any) -> tuple[type, str]:
        """The architecture class the manifest names: its registered name (or import path) first; a name this
        process has not registered falls back to the class path stored beside it."""
        key = "the model file's architecture"
        try:
            return resolve_module(module, key=key, error=IntegrityError), repr(module)
        except IntegrityError:
            if not isinstance(stored_path, str) or "." not in stored_path or stored_path == module:
                raise
        return resolve_module(stored_path, key=key, error=IntegrityError), f"{module!r} ({stored_path})"


def image_shape(head: Any) -> list[int] | None:
    """The (channels, height, width) the last image step of the fitted prepare steps ``head`` gives, or None
    when no step makes images (tabular data)."""
    shape = None
    for _, step in getattr(head, "steps", []):
        found = getattr(step, "image_shape_", None)
        if found is not None:
            shape = [int(v) for v in found]
    return shape


def _check_weights(module: Any, tensors: dict[str, Any], label: str, params: dict[str, Any], dtype: Any) -> None:
    """IntegrityError in one line unless ``tensors`` has exactly the module's names, shapes and dtypes."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    shapes = [f"{k} is {list(tensors[k].shape)} in the file, {list(v.shape)} in the architecture"
              for k, v in expected.items() if k in tensors and tensors[k].shape != v.shape]
    dtypes = [f"{k} is {t.dtype}" for k, t in tensors.items() if t.is_floating_point() and t.dtype != dtype]
    problems = ([f"missing {', '.join(missing[:4])}"] if missing else []) + \
               ([f"unexpected {', '.join(unexpected[:4])}"] if unexpected else []) + shapes[:2] + dtypes[:2]
    if problems:
        raise IntegrityError(f"the model file's weights do not match architecture {label} with module_params "
                             f"{params}: {'; '.join(problems)}",
                             hint="load it with the architecture and module_params it was trained with, or " + _RETRAIN)


def _regression_scale(estimator: Any, fitted: dict[str, Any], n_out: int) -> None:
    try:
        mean = np.asarray(fitted["y_mean"], dtype=np.float64)
        scale = np.asarray(fitted["y_scale"], dtype=np.float64)
        ndim = int(fitted["y_ndim"])
        if mean.shape != (n_out,) or scale.shape != (n_out,) or ndim not in (1, 2) or (ndim == 1 and n_out != 1):
            raise ValueError("their sizes do not match the network's outputs")
    except (KeyError, TypeError, ValueError) as exc:
        raise IntegrityError(f"the model file's target scale is not valid: {exc}", hint=_RETRAIN) from exc
    estimator.y_mean_, estimator.y_scale_, estimator.y_ndim_ = mean, scale, ndim


__all__ = ["ESTIMATORS", "FORMAT", "WEIGHTS", "TorchFlavor", "image_shape"]
