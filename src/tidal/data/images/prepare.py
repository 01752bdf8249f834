"""``ImagePreprocessor``: the ``prepare.images`` section as a scikit-learn transformer.

It takes a column of encoded images (PNG/JPEG bytes, as a snapshot stores them and as a client sends
them) and gives float32 rows a scikit-learn estimator trains on: each image resized, made grey or RGB,
divided by 255 (``scale``), standardised per channel by the training images' means and standard
deviations (``normalize``), then flattened channel by channel to ``C * H * W`` numbers. The (C, H, W)
shape is kept in ``image_shape_``, so a network that wants images (a CNN) reshapes the rows back.

Like the tabular ``prepare``, it is the first step of the model pipeline: fitted on the training split
only (the size, the colour and the channel statistics are learned there), saved with the model (skops,
every attribute plain data), and applied unchanged at prediction. Augmentation (``flip``, ``rotate``,
``crop``) happens in ``fit_transform`` only, which is what a Pipeline calls while fitting, seeded by
``seed``: each training image is replaced by one randomly changed copy, the same copy for the same seed.
``transform`` (prediction, evaluation) never augments. An image is given as PNG/JPEG bytes or as that
text base64-encoded (what JSON carries), a ``data:image/png;base64,`` prefix allowed. A training loop
that wants new copies every epoch calls :meth:`ImagePreprocessor.augment` itself.
"""

from __future__ import annotations

import base64
import binascii
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from tidal.core.errors import DataError
from tidal.data.images.codec import CHANNELS, ImageProblem, decode, pillow


class ImagePreprocessor(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Encoded images → float32 rows of ``C * H * W`` numbers (see the module docstring).

    Parameters: ``column`` (the image column when given a DataFrame), ``size`` (``(width, height)`` or
    None for the most common training size), ``color`` (``auto``, ``grey`` or ``rgb``), ``scale``,
    ``normalize``, ``flip``, ``rotate`` (the largest angle, degrees), ``crop`` (the largest shift, pixels)
    and ``seed`` (for augmentation).

    Fitted attributes: ``size_`` (width, height), ``mode_`` (``L`` or ``RGB``), ``image_shape_``
    (channels, height, width), ``mean_`` and ``std_`` (per channel, after scaling), ``n_features_out_``.
    """

    def __init__(self, column: str = "image", size: Sequence[int] | None = None, color: str = "auto",
                 scale: bool = True, normalize: bool = True, flip: bool = False, rotate: float = 0.0,
                 crop: int = 0, seed: int | None = 0) -> None:
        self.column = column
        self.size = size
        self.color = color
        self.scale = scale
        self.normalize = normalize
        self.flip = flip
        self.rotate = rotate
        self.crop = crop
        self.seed = seed

    # -- fitting -----------------------------------------------------------------------------------
    def fit(self, X: Any, y: Any = None) -> ImagePreprocessor:
        """Learn the size, the colour and the channel statistics from the training images ``X``."""
        images = self._decode(X)
        if not images:
            raise DataError("no images to fit the image preparation on", hint="collect some images")
        if self.color not in ("auto", "grey", "rgb"):
            raise DataError(f"prepare.images.color is {self.color!r}; expected auto, grey or rgb")
        if self.size is not None:
            width, height = (int(v) for v in self.size)
        else:
            width, height = Counter(image.size for image in images).most_common(1)[0][0]
        grey = self.color == "grey" or (self.color == "auto" and all(CHANNELS[i.mode] <= 2 for i in images))
        self.size_ = (int(width), int(height))
        self.mode_ = "L" if grey else "RGB"
        channels = 1 if grey else 3
        self.image_shape_ = (channels, int(height), int(width))
        self.n_features_out_ = channels * int(height) * int(width)
        arrays = self._arrays(images)
        if self.normalize:
            self.mean_ = arrays.mean(axis=(0, 2, 3), dtype=np.float64)
            std = arrays.std(axis=(0, 2, 3), dtype=np.float64)
            self.std_ = np.where(std > 0, std, 1.0)  # a constant channel is left as it is, not divided by 0
        else:
            self.mean_ = np.zeros(channels)
            self.std_ = np.ones(channels)
        return self

    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> np.ndarray:
        """``fit`` on ``X``, then its rows, each image augmented (when any augmentation is set) by a generator
        seeded with ``seed``. Only a Pipeline's fit calls this: prediction calls ``transform``."""
        self.fit(X)
        images = self._decode(X)
        if self.augments:
            images = self.augment(images, np.random.default_rng(self.seed))
        return self._rows(self._arrays(images))

    def transform(self, X: Any) -> np.ndarray:
        """The float32 rows of ``X``'s images (never augmented)."""
        check_is_fitted(self, "image_shape_")
        return self._rows(self._arrays(self._decode(X)))

    def matrix(self, images: Sequence[Any]) -> np.ndarray:
        """The float32 rows of images decoded already (Pillow images, as :func:`~tidal.data.images.codec.decode`
        gives them): what :meth:`transform` gives for their encoded bytes, without decoding them again."""
        if not hasattr(self, "image_shape_"):  # scikit-learn's check, only when it would fail: on a served
            check_is_fitted(self, "image_shape_")  # request it cost more than the conversion itself
        return self._rows(self._arrays(images))

    @property
    def augments(self) -> bool:
        """Whether any augmentation is set."""
        return bool(self.flip or self.rotate or self.crop)

    def augment(self, images: Sequence[Any], rng: np.random.Generator) -> list[Any]:
        """One randomly changed copy of each (decoded, Pillow) image: mirrored with probability 1/2 (``flip``),
        rotated by up to ``rotate`` degrees either way, shifted by up to ``crop`` pixels (padded with black
        and cropped back to its size). Draws from ``rng`` in a fixed order, so a seed gives the same copies."""
        Image = pillow()
        from PIL import ImageOps

        out = []
        for image in images:
            image = image.resize(self.size_, Image.Resampling.BILINEAR) if image.size != self.size_ else image
            if self.flip and rng.random() < 0.5:
                image = ImageOps.mirror(image)
            if self.rotate:
                angle = float(rng.uniform(-self.rotate, self.rotate))
                image = image.rotate(angle, resample=Image.Resampling.BILINEAR)
            if self.crop:
                dx, dy = (int(v) for v in rng.integers(-self.crop, self.crop + 1, size=2))
                shifted = Image.new(image.mode, image.size)
                shifted.paste(image, (dx, dy))
                image = shifted
            out.append(image)
        return out

    # -- the pieces --------------------------------------------------------------------------------
    def _values(self, X: Any) -> list[Any]:
        if isinstance(X, pd.DataFrame):
            if self.column in X.columns:
                return list(X[self.column].tolist())
            if X.shape[1] == 1:
                return list(X.iloc[:, 0].tolist())
            raise DataError(f"no image column {self.column!r} in the input",
                            hint=f"send the images in a column called {self.column!r}")
        if isinstance(X, pd.Series):
            return list(X.tolist())
        if isinstance(X, np.ndarray):
            return list(X.reshape(len(X), -1)[:, 0]) if X.ndim == 2 else list(X)
        return list(X)

    def _decode(self, X: Any) -> list[Any]:
        images = []
        for i, value in enumerate(self._values(X)):
            try:
                images.append(decode(as_image_bytes(value)))
            except ImageProblem as exc:
                raise DataError(f"image {i} cannot be read: {exc.reason}",
                                hint="send PNG or JPEG bytes") from exc
        return images

    def _arrays(self, images: Sequence[Any]) -> np.ndarray:
        """(N, C, H, W) float32: resized, in the fitted mode, scaled."""
        Image = pillow()
        channels, height, width = self.image_shape_
        out = np.empty((len(images), channels, height, width), dtype=np.float32)
        if channels == 1:
            # grey: the (H, W) pixels of every image straight into one array (one conversion to float32 for the
            # batch, instead of one per image: the same values)
            # (the raw bytes of every image joined and viewed as one uint8 array: numpy's per-image array
            # interface costs more than the copy for small images; the same bytes, so the same values)
            fitted = [self._fitted(image, Image) for image in images]
            grey = np.frombuffer(b"".join([image.tobytes() for image in fitted]), dtype=np.uint8)
            out[:, 0] = grey.reshape(len(images), height, width)
        else:
            for i, image in enumerate(images):
                out[i] = np.asarray(self._fitted(image, Image), dtype=np.float32).transpose(2, 0, 1)
        if self.scale:
            out /= 255.0
        return out

    def _fitted(self, image: Any, Image: Any) -> Any:
        """``image`` in the fitted mode and size."""
        if image.mode != self.mode_:
            # alpha is dropped (composited on black) rather than kept as a channel of its own
            image = image.convert(self.mode_)
        if image.size != self.size_:
            image = image.resize(self.size_, Image.Resampling.BILINEAR)
        return image

    def _rows(self, arrays: np.ndarray) -> np.ndarray:
        if self.normalize:
            mean = np.asarray(self.mean_, dtype=np.float32)[None, :, None, None]
            std = np.asarray(self.std_, dtype=np.float32)[None, :, None, None]
            arrays = (arrays - mean) / std
        return np.ascontiguousarray(arrays.reshape(len(arrays), -1), dtype=np.float32)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``c{channel}_y{row}_x{column}`` for each output number, in output order."""
        check_is_fitted(self, "image_shape_")
        c, h, w = self.image_shape_
        return np.asarray([f"c{k}_y{y}_x{x}" for k in range(c) for y in range(h) for x in range(w)], dtype=object)


def as_image_bytes(value: Any) -> Any:
    """Encoded image bytes from ``value``: bytes as they are, text as base64 (how JSON carries an image)."""
    if isinstance(value, str):
        try:
            text = value.removeprefix("data:image/png;base64,").removeprefix("data:image/jpeg;base64,")
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ImageProblem("text that is not base64-encoded image bytes") from exc
    return value


def build_image_preprocessor(spec: Any, column: str, seed: int | None) -> ImagePreprocessor:
    """The transformer for ``prepare.images`` (an ``ImagePrepareSpec``, or None for its defaults)."""
    augment = getattr(spec, "augment", None)
    return ImagePreprocessor(
        column=column, size=tuple(spec.size) if spec is not None and spec.size else None,
        color=spec.color if spec is not None else "auto", scale=spec.scale if spec is not None else True,
        normalize=spec.normalize if spec is not None else True,
        flip=bool(augment and augment.flip), rotate=float(augment.rotate) if augment else 0.0,
        crop=int(augment.crop) if augment else 0, seed=seed)


__all__ = ["ImagePreprocessor", "as_image_bytes", "build_image_preprocessor"]
