"""The training loop and the forward pass of the torch estimators (imported only when one fits or predicts).

Determinism: everything random in a fit (the architecture's initial weights, dropout, the validation split
and each epoch's shuffle) draws from generators seeded with ``random_state``; the fit runs with
``torch.use_deterministic_algorithms(True)`` inside :func:`torch.random.fork_rng`, so the caller's global
RNG state and determinism setting are as they were afterwards. On one machine with one torch version the
same data and seed give the same weights bit for bit.
"""

from __future__ import annotations

import contextlib
import math
import os
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from tidal.core.errors import TrainingError
from tidal.core.progress import report

#: Rows per forward pass at prediction time: bounds memory, and the same rows always meet the same chunks.
CHUNK = 8192
OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class Config:
    """A fit's settings, checked by the estimator."""

    classifier: bool
    epochs: int
    batch_size: int
    lr: float
    optimizer: str
    weight_decay: float
    early_stopping: bool
    validation_fraction: float
    patience: int
    seed: int
    threads: int = 1
    device: str = "cpu"


@dataclass
class Trained:
    """A fitted module and its per-epoch curves (``train.loss``, ``valid.loss``, ``train.accuracy``...)."""

    module: nn.Module
    curves: dict[str, list[float]] = field(default_factory=dict)
    epochs: int = 0
    best_epoch: int = 0


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` within (``-1``: leave torch's default), then restored.
    One thread by default: a small network runs several times faster on one thread than on contended ones,
    and the arithmetic does not depend on the machine's core count."""
    before = torch.get_num_threads()
    if count > 0 and count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[torch.Generator]:
    """Seeded global RNG and deterministic algorithms within; both restored after. Yields a generator of
    its own (seeded too) for the split and the shuffles."""
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        try:
            yield torch.Generator().manual_seed(seed)
        finally:
            torch.use_deterministic_algorithms(enabled, warn_only=warn_only)


def resolve_device(name: str) -> torch.device:
    """The device ``name`` (``cpu``, ``cuda`` or ``auto``) means here; ``cuda`` without a GPU is refused."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise TrainingError("model.params.device: cuda, and torch sees no GPU on this machine",
                                hint="use device: auto (a GPU when there is one) or cpu")
        # cuBLAS is deterministic only with a fixed workspace, set before its first use
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    return torch.device(name)


def _optimizer(config: Config, module: nn.Module) -> torch.optim.Optimizer:
    params = module.parameters()
    if config.optimizer == "sgd":
        return torch.optim.SGD(params, lr=config.lr, weight_decay=config.weight_decay)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)


def train(build: Callable[[], nn.Module], X: np.ndarray, y: np.ndarray, config: Config) -> Trained:
    """Build the module (seeded) and fit it on ``X`` (float32) and ``y`` (class codes, or float32 targets of
    shape ``(n, k)``); a module that fails on a batch, or a loss that diverges, is a :class:`TrainingError`."""
    device = resolve_device(config.device)
    with threads(config.threads), deterministic(config.seed) as gen:
        module = build().float()  # built on the CPU, so the initial weights do not depend on the device
        try:
            trained = _fit(module.to(device), torch.from_numpy(X).to(device), torch.from_numpy(y).to(device),
                           config, gen)
            trained.module = trained.module.cpu()  # stored and served from the CPU, whatever trained it
            return trained
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainingError(f"the architecture failed on a batch of training rows: {first}",
                                hint="check that its forward takes (rows, in_features) and returns "
                                     "(rows, out_features)") from exc


def _fit(module: nn.Module, X: torch.Tensor, y: torch.Tensor, config: Config, gen: torch.Generator) -> Trained:
    n = X.shape[0]
    n_valid = round(n * config.validation_fraction) if config.validation_fraction > 0 else 0
    n_valid = min(n_valid, n - 1)
    if config.early_stopping and n_valid < 1:
        raise TrainingError(f"model.params.early_stopping needs validation rows, and {n} rows with "
                            f"validation_fraction {config.validation_fraction} give none",
                            hint="raise model.params.validation_fraction, or set early_stopping: false")
    # the permutations are drawn on the CPU (from ``gen``), so the split and the batches do not depend on the device
    order = torch.randperm(n, generator=gen).to(X.device)
    X_train, y_train = X[order[n_valid:]], y[order[n_valid:]]
    X_valid, y_valid = X[order[:n_valid]], y[order[:n_valid]]
    loss_fn: nn.Module = nn.CrossEntropyLoss() if config.classifier else nn.MSELoss()
    optimizer = _optimizer(config, module)
    names = ["train.loss", *(["train.accuracy"] if config.classifier else [])]
    if n_valid:
        names += ["valid.loss", *(["valid.accuracy"] if config.classifier else [])]
    curves: dict[str, list[float]] = {name: [] for name in names}
    best_loss, best_epoch, best_state, waited = math.inf, 0, None, 0
    n_train, epoch = X_train.shape[0], 0
    for epoch in range(1, config.epochs + 1):
        module.train()
        shuffle = torch.randperm(n_train, generator=gen).to(X.device)
        total, correct = 0.0, 0
        for start in range(0, n_train, config.batch_size):
            idx = shuffle[start:start + config.batch_size]
            xb, yb = X_train[idx], y_train[idx]
            optimizer.zero_grad(set_to_none=True)
            out = module(xb)
            loss = loss_fn(out, yb)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
            if config.classifier:
                correct += int((out.detach().argmax(dim=1) == yb).sum())
        if not math.isfinite(total):
            raise TrainingError(f"training diverged: the loss is {total} in epoch {epoch}",
                                hint="lower model.params.lr, or check the data for extreme values")
        curves["train.loss"].append(total / n_train)
        if config.classifier:
            curves["train.accuracy"].append(correct / n_train)
        if not n_valid:
            report("epoch", epoch, config.epochs)
            continue
        module.eval()
        with torch.no_grad():
            out = module(X_valid)
            valid_loss = float(loss_fn(out, y_valid))
        curves["valid.loss"].append(valid_loss)
        if config.classifier:
            curves["valid.accuracy"].append(int((out.argmax(dim=1) == y_valid).sum()) / n_valid)
        report("epoch", epoch, config.epochs)
        if not config.early_stopping:
            continue
        if valid_loss < best_loss:
            best_loss, best_epoch, waited = valid_loss, epoch, 0
            best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        else:
            waited += 1
            if waited >= config.patience:
                break
    if best_state is not None:  # early stopping keeps the weights of the best validation loss
        module.load_state_dict(best_state)
    module.eval()
    return Trained(module=module, curves=curves, epochs=epoch, best_epoch=best_epoch or epoch)


#: Modules seen wholly in eval mode by :func:`forward`: not walked again while their own flag says eval.
_EVALUATED: weakref.WeakSet[nn.Module] = weakref.WeakSet()


def forward(module: nn.Module, X: np.ndarray, n_threads: int = 1) -> np.ndarray:
    """The module's outputs on ``X`` (float32, C-ordered) as a float32 ``(rows, outputs)`` array, in eval
    mode, in fixed chunks of :data:`CHUNK` rows, on ``n_threads`` threads (see :func:`threads`).

    On a served request of one small image the network's own work is a few dozen µs, so every fixed cost
    here counts (measured: 103 µs a call before against 74 for the bare module call): the walk of every
    submodule's flag runs once per module (``train()``, as the training loop calls it, sets the module's own
    flag, which sends it through the walk again), the thread count is only set when it differs, and one chunk's
    outputs are returned without a copy or a cast they do not need."""
    if module.training or module not in _EVALUATED:
        if any(m.training for m in module.modules()):  # eval() sets every submodule's flag: a walk of setattrs
            module.eval()
        _EVALUATED.add(module)
    before = torch.get_num_threads()
    if n_threads > 0 and n_threads != before:
        torch.set_num_threads(n_threads)
    try:
        with torch.inference_mode():
            if len(X) <= CHUNK:  # a served request's rows: one chunk
                out = module(torch.from_numpy(X))
                out = out.reshape(out.shape[0], -1)
                one: np.ndarray = (out if out.dtype == torch.float32 else out.to(torch.float32)).numpy()
                return one
            parts = []
            for start in range(0, len(X), CHUNK):
                out = module(torch.from_numpy(X[start:start + CHUNK]))
                parts.append(out.reshape(out.shape[0], -1).to(torch.float32))
            return torch.cat(parts).numpy()
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


def penultimate(module: nn.Module, X: np.ndarray, n_threads: int = 1) -> np.ndarray | None:
    """What the module's last ``nn.Linear`` (in registration order: the output layer of ``mlp``, ``cnn`` and
    most classifiers) receives on ``X``: the network's own embedding of each row, float32 ``(rows, width)``;
    None for a module without a linear layer. Read by a forward hook, so any architecture works unchanged,
    in eval mode (dropout off) and in the same chunks as :func:`forward`."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        return None
    parts: list[torch.Tensor] = []

    def keep(_: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        parts.append(inputs[0].reshape(inputs[0].shape[0], -1).to(torch.float32).clone())

    handle = linears[-1].register_forward_pre_hook(keep)
    try:
        forward(module, X, n_threads)
    finally:
        handle.remove()
    return torch.cat(parts).numpy() if parts else None


__all__ = ["CHUNK", "OPTIMIZERS", "Config", "Trained", "deterministic", "forward", "penultimate", "resolve_device",
           "threads", "train"]
