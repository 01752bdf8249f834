"""scikit-learn estimators around a torch module whose architecture is data: a name and its arguments.

The constructor only stores parameters (scikit-learn's contract); ``fit`` resolves the architecture
(:mod:`tidal.nn.registry`), builds it with the input width and output size the data gives, and trains it
(:mod:`tidal.nn.training`, imported then: tidal imports without torch). Learned state ends in ``_``:
``module_`` (the fitted ``torch.nn.Module``, in eval mode: what a later ``torch.onnx.export`` takes, with
``n_features_in_`` float32 inputs), ``classes_``, ``curves_``, ``n_epochs_``, ``best_epoch_``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.validation import check_array, check_is_fitted

from tidal.core.errors import TrainingError
from tidal.nn.registry import SHAPE, check_module_params, class_path, resolve_module, takes_shape

_OPTIMIZERS = ("adam", "adamw", "sgd")
#: What ``device`` may name: ``auto`` is a GPU when torch sees one, else the CPU.
DEVICES = ("auto", "cpu", "cuda")


def as_matrix(X: Any, width: int | None = None) -> np.ndarray:
    """``X`` as a writable, C-ordered float32 matrix (what the module takes); NaN or infinity is refused, as
    every scikit-learn estimator refuses it, and so is a width other than the fitted one. A matrix that is all
    that already (what tidal's image preparation gives) is taken as it is: scikit-learn's checks cost more
    than the network's forward pass on one small image."""
    if (type(X) is np.ndarray and X.dtype == np.float32 and X.ndim == 2 and X.flags.c_contiguous
            and X.flags.writeable and X.size and (width is None or X.shape[1] == width) and np.isfinite(X).all()):
        return X
    arr = check_array(X, accept_sparse="csr", dtype=np.float32)
    if hasattr(arr, "toarray"):
        arr = arr.toarray()
    if width is not None and arr.shape[1] != width:
        raise ValueError(f"X has {arr.shape[1]} features, but the model was fitted with {width}")
    return np.require(arr, np.float32, ["C_CONTIGUOUS", "WRITEABLE"])


def softmax(z: np.ndarray) -> np.ndarray:
    """The softmax of each row of ``z``: scipy.special.softmax's arithmetic (the row's maximum subtracted,
    exp, divided by the row's sum), so the same numbers, without its dispatch (several times the arithmetic
    on one served row)."""
    exp: np.ndarray = np.exp(z - np.amax(z, axis=1, keepdims=True))
    out: np.ndarray = exp / np.sum(exp, axis=1, keepdims=True)
    return out


def _training(name: str) -> Any:
    """:mod:`tidal.nn.training` (which imports torch), or the torch extra's one-line error."""
    try:
        import tidal.nn.training as training
    except ImportError:
        raise TrainingError(f"tidal.nn.{name} needs the torch extra: pip install 'tidal[torch]'") from None
    return training


class TorchEstimator(BaseEstimator):  # type: ignore[misc]
    """The common part of :class:`TorchClassifier` and :class:`TorchRegressor`.

    Parameters: ``module`` (a registered architecture name such as ``mlp``, or the import path of a
    ``torch.nn.Module`` subclass), ``module_params`` (its keyword arguments besides ``in_features`` and
    ``out_features``, which come from the data), ``epochs``, ``batch_size``, ``lr``, ``optimizer`` (adam,
    adamw or sgd), ``weight_decay``, ``early_stopping`` (stop once the validation loss has not improved for
    ``patience`` epochs, keeping the best epoch's weights), ``validation_fraction`` (the share of the
    training rows held out for the ``valid`` curves and early stopping; 0 for none), ``n_jobs`` (torch's
    thread count while fitting and predicting: 1 by default, fastest for small networks and independent of
    the machine's cores; -1 for torch's default), ``random_state``, ``input_shape`` (the images' (channels,
    height, width) for an architecture that takes it, such as ``cnn``: tidal fills it from the
    ``prepare.images`` step when it is not given, and the stored model keeps it) and ``device`` (``cpu``, the
    default; ``cuda``; or ``auto``: a GPU when torch sees one). Whatever the device, the fitted network is
    moved back to the CPU: its stored bytes and its predictions do not depend on where it trained.
    """

    _classifier = False

    def __init__(self, module: str = "mlp", module_params: Mapping[str, Any] | None = None, epochs: int = 20,
                 batch_size: int = 64, lr: float = 1e-3, optimizer: str = "adam", weight_decay: float = 0.0,
                 early_stopping: bool = False, validation_fraction: float = 0.1, patience: int = 5,
                 n_jobs: int = 1, random_state: int | None = None, input_shape: list[int] | None = None,
                 device: str = "cpu") -> None:
        self.module = module
        self.module_params = module_params
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.optimizer = optimizer
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.input_shape = input_shape
        self.device = device

    # -- what fit checks ------------------------------------------------------------------------------

    def _config(self) -> Any:
        Config = _training(type(self).__name__).Config

        whole = self._whole

        def number(name: str, value: Any, low: float, high: float | None = None, *, open_low: bool) -> float:
            ok = isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value)
            ok = ok and (value > low if open_low else value >= low) and (high is None or value < high)
            if not ok:
                bound = f"{'>' if open_low else '>='} {low}" + (f" and < {high}" if high is not None else "")
                raise TrainingError(f"model.params.{name}: {value!r} is not a number {bound}",
                                    hint=f"check {name} in model.params")
            return float(value)

        if self.optimizer not in _OPTIMIZERS:
            raise TrainingError(f"model.params.optimizer: unknown optimizer {self.optimizer!r}",
                                hint=f"use one of {', '.join(_OPTIMIZERS)}")
        if self.device not in DEVICES:
            raise TrainingError(f"model.params.device: unknown device {self.device!r}",
                                hint=f"use one of {', '.join(DEVICES)}")
        if self.input_shape is not None and (
                isinstance(self.input_shape, str | int) or len(self.input_shape) != 3
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in self.input_shape)):
            raise TrainingError(f"model.params.input_shape: {self.input_shape!r} is not [channels, height, width]",
                                hint="give three positive whole numbers, e.g. [1, 8, 8], or leave it out for images")
        if not isinstance(self.early_stopping, bool):
            raise TrainingError(f"model.params.early_stopping: {self.early_stopping!r} is not true or false",
                                hint="write early_stopping: true")
        seed = self.random_state
        if seed is None:
            seed = int(np.random.default_rng().integers(0, 2**31 - 1))  # no seed asked for: a fresh one
        return Config(classifier=self._classifier, epochs=whole("epochs", self.epochs, 1),
                      batch_size=whole("batch_size", self.batch_size, 1),
                      lr=number("lr", self.lr, 0.0, open_low=True), optimizer=self.optimizer,
                      weight_decay=number("weight_decay", self.weight_decay, 0.0, open_low=False),
                      early_stopping=self.early_stopping,
                      validation_fraction=number("validation_fraction", self.validation_fraction, 0.0, 1.0,
                                                 open_low=False),
                      patience=whole("patience", self.patience, 1), seed=whole("random_state", seed, 0),
                      threads=self._threads(), device=self.device)

    def _threads(self) -> int:
        if self.n_jobs != -1:
            return int(self._whole("n_jobs", self.n_jobs, 1))
        return -1

    @staticmethod
    def _whole(name: str, value: Any, low: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise TrainingError(f"model.params.{name}: {value!r} is not a whole number >= {low}",
                                hint=f"give {name} as a whole number, e.g. {max(low, 1) * 10}")
        return value

    def check_params(self) -> None:
        """:class:`TrainingError` in one line for a parameter ``fit`` would refuse (an unknown architecture,
        ``module_params`` it does not take, an unknown optimizer...), before any data is touched."""
        self._config()
        self._architecture()

    def _architecture(self) -> tuple[type, dict[str, Any]]:
        cls = resolve_module(self.module)
        return cls, check_module_params(cls, self.module, self.module_params or {})

    # -- fit and predict ------------------------------------------------------------------------------

    def _fit(self, X: Any, target: np.ndarray, out_features: int) -> None:
        train = _training(type(self).__name__).train

        config = self._config()
        matrix = as_matrix(X)
        cls, params = self._architecture()
        width = matrix.shape[1]
        takes, needs = takes_shape(cls)
        if needs and self.input_shape is None:
            raise TrainingError(f"model.params.module: architecture {self.module!r} needs images, and this data "
                                "has no image shape (channels, height, width)",
                                hint="train it on images (a folder of class folders, prepare.images), or set "
                                     "model.params.input_shape")
        if takes and self.input_shape is not None:
            params = {**params, SHAPE: [int(v) for v in self.input_shape]}

        def build() -> Any:
            try:
                return cls(in_features=width, out_features=out_features, **params)
            except (TypeError, ValueError) as exc:
                raise TrainingError(f"model.params.module_params: architecture {self.module!r} refused them: {exc}",
                                    hint="check the values in model.params.module_params") from exc

        trained = train(build, matrix, target, config)
        self.module_ = trained.module
        self.architecture_ = class_path(cls)
        self.n_features_in_ = width
        self.n_outputs_ = out_features
        self.curves_ = trained.curves
        self.n_epochs_ = trained.epochs
        self.best_epoch_ = trained.best_epoch

    def _outputs(self, X: Any) -> np.ndarray:
        """The module's raw outputs on ``X``: float32, ``(rows, n_outputs_)``."""
        forward = _training(type(self).__name__).forward

        if not hasattr(self, "module_"):  # scikit-learn's check_is_fitted, only when it would fail
            check_is_fitted(self, "module_")
        out: np.ndarray = forward(self.module_, as_matrix(X, self.n_features_in_), self._threads())
        return out

    def embed(self, X: Any) -> np.ndarray | None:
        """The network's embedding of ``X``: what its last linear layer receives (the penultimate layer's
        activations of ``mlp`` and ``cnn``), float32 ``(rows, width)``; None for a module with no linear
        layer. The monitor tests its principal components for drift (:mod:`tidal.monitor.embedding`)."""
        penultimate = _training(type(self).__name__).penultimate

        check_is_fitted(self, "module_")
        out: np.ndarray | None = penultimate(self.module_, as_matrix(X, self.n_features_in_), self._threads())
        return out


class TorchClassifier(ClassifierMixin, TorchEstimator):  # type: ignore[misc]
    """A torch module trained with cross-entropy on the codes of the sorted class labels (any labels:
    strings, booleans, numbers); ``predict`` gives the labels, ``predict_proba`` the softmax of the outputs,
    one column per class in ``classes_`` order."""

    _classifier = True

    def fit(self, X: Any, y: Any) -> TorchClassifier:
        labels = np.asarray(y)
        if labels.ndim == 2 and labels.shape[1] == 1:
            labels = labels.ravel()
        if labels.ndim != 1:
            raise ValueError(f"y must be one column of class labels, not shape {labels.shape}")
        classes, codes = np.unique(labels, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"a classifier needs at least 2 classes in y, found {len(classes)}")
        self.classes_ = classes
        self._fit(X, codes.astype(np.int64), len(classes))
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        return softmax(self._outputs(X).astype(np.float64))

    def predict(self, X: Any) -> np.ndarray:
        out: np.ndarray = self.classes_[np.argmax(self.predict_proba(X), axis=1)]
        return out


class TorchRegressor(RegressorMixin, TorchEstimator):  # type: ignore[misc]
    """A torch module trained with mean squared error on the standardised target (its mean and scale are
    learned as ``y_mean_`` and ``y_scale_``), so the learning rate does not depend on the target's units; a
    two-dimensional ``y`` gives one output per column."""

    def fit(self, X: Any, y: Any) -> TorchRegressor:
        target = np.asarray(y, dtype=np.float64)
        if target.ndim not in (1, 2) or not np.isfinite(target).all():
            raise ValueError("y must be one or more columns of finite numbers")
        self.y_ndim_ = target.ndim
        target = target.reshape(len(target), -1)
        mean, scale = target.mean(axis=0), target.std(axis=0)
        scale[scale == 0] = 1.0
        self.y_mean_, self.y_scale_ = mean, scale
        self._fit(X, ((target - mean) / scale).astype(np.float32), target.shape[1])
        return self

    def predict(self, X: Any) -> np.ndarray:
        out: np.ndarray = self._outputs(X).astype(np.float64) * self.y_scale_ + self.y_mean_
        return out.ravel() if self.y_ndim_ == 1 else out


__all__ = ["DEVICES", "TorchClassifier", "TorchEstimator", "TorchRegressor", "as_matrix"]
