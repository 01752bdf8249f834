"""Real images for the image tests: scikit-learn's handwritten digits (1,797 real 8x8 scans, shipped inside
scikit-learn, nothing downloaded) written out as PNG files in the layouts tidal reads."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image


@cache
def digits() -> tuple[np.ndarray, np.ndarray]:
    """The digits as uint8 images (N, 8, 8) in 0..255 and their labels (N,)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.clip(np.round(data.images * 255.0 / 16.0), 0, 255).astype(np.uint8)
    return images, data.target.astype(int)


def picks(per_class: int, classes: tuple[int, ...] = tuple(range(10))) -> list[int]:
    """The first ``per_class`` rows of each class, in data order."""
    _, labels = digits()
    return [int(i) for c in classes for i in np.flatnonzero(labels == c)[:per_class]]


def write_folders(root: Path, *, per_class: int = 12, classes: tuple[int, ...] = tuple(range(10)),
                  names: tuple[str, ...] | None = None) -> Path:
    """Class folders (``root/3/0017.png``): torchvision's ImageFolder layout. ``names`` renames the classes."""
    images, labels = digits()
    for i in picks(per_class, classes):
        label = int(labels[i])
        folder = root / (names[label] if names else str(label))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(images[i]).save(folder / f"{i:04d}.png")
    return root


def write_flat(root: Path, *, per_class: int = 12, classes: tuple[int, ...] = tuple(range(10)),
               jpeg: bool = False) -> tuple[Path, dict[str, int]]:
    """Images in one folder (``root/0017.png``) and the label of each file name."""
    images, labels = digits()
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in picks(per_class, classes):
        name = f"{i:04d}.{'jpg' if jpeg else 'png'}"
        Image.fromarray(images[i]).save(root / name, quality=95) if jpeg else \
            Image.fromarray(images[i]).save(root / name)
        out[name] = int(labels[i])
    return root, out


#: The estimator lines of :func:`digits_spec` by default: scikit-learn's MLP, a second or so on the digits.
MLP = "  estimator: sklearn.neural_network.MLPClassifier\n  params: {hidden_layer_sizes: [16], max_iter: 200}\n"


def digits_spec(*, model: str = MLP, checks: str | None = "{size: [8, 8], channels: 1}",
                prepare: str = "{color: grey}", gates: str = "[]") -> str:
    """The ``tidal.yaml`` of a digits project over :func:`write_folders`' class folders (``data/train/``):
    ``model`` is the YAML under ``model:`` before its seed (estimator and params, indented two spaces),
    ``checks`` the ``data.checks.images`` flow mapping (None: no checks), ``prepare`` ``prepare.images``'."""
    check = f"  checks:\n    images: {checks}\n" if checks is not None else ""
    return ("version: 1\nname: digits\ndata:\n  source: data/train/\n  target: digit\n" + check
            + f"prepare:\n  images: {prepare}\nmodel:\n{model}  seed: 0\nvalidate:\n"
            "  split: {method: random, test_size: 0.25}\n  metrics: [accuracy]\n" + f"  gates: {gates}\n")
