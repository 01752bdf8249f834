"""Image statistics a monitor can compare where per-pixel tests mean nothing: brightness, contrast,
sharpness, orientation (and width and height when the images vary in size).

    from tidal.data.images.stats import image_statistics, statistics_reference
    image_statistics(png_bytes)           # {"brightness": 0.31, "contrast": 0.38, ...}
    image_statistics(logged_row_image)    # the same, from a prediction log's {"sha256", "size", "thumbnail"}
    prof["statistics"] = statistics_reference(train["image"])   # stored with the version at training

**On what they are computed.** Every statistic but the size is computed on the image's *thumbnail*: the
image fitted into :data:`~tidal.data.images.serving.THUMBNAIL` pixels a side exactly as the prediction log
keeps it (:func:`~tidal.data.images.serving.thumbnail_of`), converted to luminance (Pillow's ``L``, ITU-R
601) and scaled to [0, 1]. The reference (training images, at training time) and the window (logged
predictions, at monitoring time) are thus measured on the very same pixels for the same image: the log keeps
the thumbnail of every row, so a window is measured without reading an image back from the artifact store,
and an image whose full copy was removed is measured like any other. Mixing full images on one side with
thumbnails on the other would itself look like drift (sharpness depends on the scale). Width and height
come from the full image (the log keeps its size).

- ``brightness``: mean luminance; ``contrast``: its standard deviation;
- ``sharpness``: the variance of the 4-neighbour Laplacian over the interior pixels (0 below 3x3): a blurred
  or out-of-focus image has less of it;
- ``orientation``: the share of the gradient energy along x (horizontal differences) in all of it: 0.5 for
  no preferred direction; an image turned by 90 degrees swaps it for ``1 - share``;
- ``width``, ``height``: pixels, kept only when the training images vary in size (a model trained on one
  size is served that size only: the server refuses any other, so they could never move);
- ``pc1``, ``pc2``, ``pc3`` (monitored only when named, see :mod:`tidal.monitor.images`): the thumbnail's
  pixels (luminance on an 8x8 grid) projected on the first three principal components of the training
  images' (fitted on them at training time, kept as plain lists): a small embedding of what the images show,
  which moves when the content changes (turned, shifted, other shapes). It is the images' own, not the
  network's: the same for every model.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tidal.data.images.codec import ImageProblem, decode, to_array

#: The statistics computed on every image's thumbnail, and the two of its size.
PIXEL_STATISTICS = ("brightness", "contrast", "sharpness", "orientation")
SIZE_STATISTICS = ("width", "height")
#: How many training images the reference is computed on (evenly spaced over the column, so that the same
#: data gives the same reference), and how many of their thumbnails it keeps for the monitoring report.
REFERENCE_SAMPLE = 2000
REFERENCE_THUMBNAILS = 8
#: The pixel components: the thumbnail's luminance on a GRID x GRID grid, projected on the first COMPONENTS
#: principal components of the training images' (fitted at training time, stored as plain lists).
GRID, COMPONENTS = 8, 3


def pixel_statistics(grey: np.ndarray) -> dict[str, float]:
    """The :data:`PIXEL_STATISTICS` of a luminance array (H, W) in [0, 1]."""
    g = np.asarray(grey, dtype=np.float64)
    out = {"brightness": float(g.mean()) if g.size else 0.0, "contrast": float(g.std()) if g.size else 0.0}
    if g.shape[0] >= 3 and g.shape[1] >= 3:
        lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
        out["sharpness"] = float(lap.var())
    else:
        out["sharpness"] = 0.0
    gx = float(np.square(np.diff(g, axis=1)).sum()) if g.shape[1] > 1 else 0.0
    gy = float(np.square(np.diff(g, axis=0)).sum()) if g.shape[0] > 1 else 0.0
    out["orientation"] = gx / (gx + gy) if gx + gy > 0 else 0.5
    return out


def image_statistics(value: Any, components: Mapping[str, Any] | None = None) -> dict[str, float] | None:
    """The statistics of one image: ``value`` is encoded image bytes (a snapshot's canonical PNG) or what a
    prediction log row keeps of one (``{"size", "thumbnail", ...}``). None for a null or an unreadable one.
    With ``components`` (:func:`fit_components`), its pixel components ``pc1``... too."""
    from tidal.data.images.serving import thumbnail_of

    try:
        if isinstance(value, bytes | bytearray | memoryview):
            image = decode(bytes(value))
            size = image.size
            small = thumbnail_of(image)
        elif isinstance(value, Mapping) and isinstance(value.get("thumbnail"), str):
            small = decode(base64.b64decode(value["thumbnail"], validate=True))
            size = tuple(value.get("size") or small.size)
        else:
            return None
    except (ImageProblem, binascii.Error, ValueError, TypeError):
        return None
    grey = to_array(small.convert("L")).reshape(small.size[1], small.size[0]).astype(np.float64) / 255.0
    out = pixel_statistics(grey)
    out["width"], out["height"] = float(size[0]), float(size[1])
    if components:
        scores = (_grid(small) - np.asarray(components["mean"])) @ np.asarray(components["vectors"]).T
        out.update({f"pc{k + 1}": float(v) for k, v in enumerate(scores)})
    return out


def _grid(small: Any) -> np.ndarray:
    """A thumbnail's luminance on a :data:`GRID` x :data:`GRID` grid (bilinear), flattened, in [0, 1]."""
    from tidal.data.images.codec import pillow

    square = small.convert("L").resize((GRID, GRID), pillow().Resampling.BILINEAR)
    return to_array(square).reshape(-1).astype(np.float64) / 255.0


def fit_components(values: Sequence[Any], k: int = COMPONENTS) -> dict[str, Any] | None:
    """The first ``k`` principal components of the training thumbnails' pixels on a :data:`GRID` grid
    (numpy's SVD; each vector's sign fixed so that its largest loading is positive: the same images give the
    same components): ``{"grid", "mean": [...], "vectors": [[...], ...]}``, plain lists (stored as JSON, no
    pickle). None with ``k`` readable images or fewer."""
    from tidal.data.images.serving import thumbnail_of

    rows = []
    for v in values:
        try:
            rows.append(_grid(thumbnail_of(decode(bytes(v)))))
        except (ImageProblem, TypeError, ValueError):
            continue
    if len(rows) <= k:
        return None
    X = np.vstack(rows)
    mean = X.mean(axis=0)
    _, _, vt = np.linalg.svd(X - mean, full_matrices=False)
    vectors = vt[:k]
    signs = np.sign(vectors[np.arange(vectors.shape[0]), np.abs(vectors).argmax(axis=1)])
    vectors = vectors * np.where(signs == 0, 1.0, signs)[:, None]
    return {"grid": GRID, "mean": [float(m) for m in mean], "vectors": [[float(x) for x in r] for r in vectors]}


def statistics_frame(values: Iterable[Any], names: Sequence[str] = PIXEL_STATISTICS + SIZE_STATISTICS,
                     components: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per image of ``values`` (see :func:`image_statistics`), one float column per name of
    ``names``; NaN where an image is null or cannot be read (a null, as drift reports count them)."""
    wanted = components if components and any(n.startswith("pc") for n in names) else None
    rows = [image_statistics(v, wanted) or {} for v in values]
    return pd.DataFrame({n: np.asarray([r.get(n, np.nan) for r in rows], dtype=np.float64) for n in names})


def statistics_reference(series: pd.Series) -> dict[str, Any]:
    """What a version keeps of its training images for monitoring: ``{"basis", "columns": {statistic: numeric
    column profile}, "thumbnails": [base64 PNG, ...]}``, the statistics over up to :data:`REFERENCE_SAMPLE`
    images (evenly spaced). ``width`` and ``height`` only when the images vary in size (module docstring)."""
    from tidal.data.images.serving import logged_image
    from tidal.data.profile import profile_column

    present = [v for v in series.tolist() if isinstance(v, bytes | bytearray | memoryview)]
    picks = np.unique(np.round(np.linspace(0, len(present) - 1, min(len(present), REFERENCE_SAMPLE))).astype(int)) \
        if present else np.asarray([], dtype=int)
    sample = [present[i] for i in picks]
    components = fit_components(sample)
    pcs = [f"pc{k + 1}" for k in range(len(components["vectors"]))] if components else []
    frame = statistics_frame(sample, [*PIXEL_STATISTICS, *SIZE_STATISTICS, *pcs], components)
    names = list(PIXEL_STATISTICS)
    if frame["width"].nunique() > 1 or frame["height"].nunique() > 1:
        names += list(SIZE_STATISTICS)
    thumbs = []
    for i in np.unique(np.round(np.linspace(0, len(sample) - 1, min(len(sample), REFERENCE_THUMBNAILS))).astype(int)) \
            if sample else []:
        try:
            thumbs.append(str(logged_image(bytes(sample[int(i)]))["thumbnail"]))
        except (ImageProblem, OSError, ValueError):
            continue
    return {"basis": "thumbnail", "images": len(sample), "columns": {n: profile_column(frame[n]) for n in names},
            "components": components, "optional": {n: profile_column(frame[n]) for n in pcs}, "thumbnails": thumbs}


__all__ = [
    "COMPONENTS",
    "GRID",
    "PIXEL_STATISTICS",
    "REFERENCE_SAMPLE",
    "REFERENCE_THUMBNAILS",
    "SIZE_STATISTICS",
    "fit_components",
    "image_statistics",
    "pixel_statistics",
    "statistics_frame",
    "statistics_reference",
]
