"""Images at prediction time: what a model version takes, a served image checked and made canonical, and
what the prediction log keeps of it.

- :func:`image_spec`: the :class:`~tidal.core.signature.ImageSpec` of a model's image column, from its fitted
  :class:`~tidal.data.images.prepare.ImagePreprocessor` (the (C, H, W) it makes) and the training images'
  profile (their one size, if they had one, and their channel counts).
- :func:`served_image`: a JSON value (base64 PNG/JPEG text, a ``data:`` URI, nested arrays of 0-255
  integers) or raw encoded bytes → the image's **canonical PNG** (a :class:`CheckedImage`: the bytes, with
  the decoded image kept beside them for the request's predictor and log record, so neither decodes it
  again), made by the very code that made the training snapshot's
  (:func:`~tidal.data.images.codec.canonicalise`): the same pixels sent as PNG, as JPEG decoded to them, or
  as arrays give the same bytes, so the same prediction as the training-time path.
  Anything else is an :class:`~tidal.data.images.codec.ImageProblem` saying what is wrong.
- :func:`logged_image`: what a prediction log row keeps instead of the image: its sha256 digest, its size
  and mode, and a thumbnail of at most :data:`THUMBNAIL` pixels a side (PNG, base64) — a few hundred
  bytes, not the image (see docs/images.md, "Serving"). An image within the thumbnail's size is its own
  thumbnail: its canonical PNG is logged as it is.
- :func:`sample_images`: images to check a loaded model on, made from the training images' profile.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from collections.abc import Mapping
from typing import Any

import numpy as np

from tidal.core.signature import ImageSpec
from tidal.data.images.codec import CHANNELS, MAX_PIXELS, ImageProblem, canonical_png, canonicalise, pillow

#: The longest side of the thumbnail a prediction log row keeps (pixels).
THUMBNAIL = 32
#: The channel count of each array depth's last axis, and the mode of the image it makes.
_MODE_OF_CHANNELS = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_PREFIXES = ("data:image/png;base64,", "data:image/jpeg;base64,", "data:image/jpg;base64,")


class CheckedImage(bytes):
    """The canonical PNG of a served image (these bytes: what is hashed, stored and logged), with the image
    they encode, decoded (``image``: a Pillow image in one of the canonical modes, not to be modified): the
    predictor and the log record use it instead of decoding the PNG again. The pixels are the PNG's own, as
    canonical PNGs are lossless."""

    image: Any

    @classmethod
    def of(cls, png: bytes, image: Any) -> CheckedImage:
        out = cls(png)
        out.image = image
        return out


def decoded_image(value: Any) -> Any:
    """The decoded image of a value of an image column: a :class:`CheckedImage`'s own, else the value (PNG or
    JPEG bytes, or base64 text) decoded as the image preparation decodes it; ImageProblem if it cannot be."""
    if type(value) is CheckedImage:
        return value.image
    from tidal.data.images.codec import decode
    from tidal.data.images.prepare import as_image_bytes

    return decode(as_image_bytes(value))


def preprocessor_of(model: Any) -> Any:
    """The fitted :class:`ImagePreprocessor` inside ``model`` (a pipeline's step, or the model), or None."""
    from tidal.data.images.prepare import ImagePreprocessor

    if isinstance(model, ImagePreprocessor):
        return model
    for _, step in getattr(model, "steps", None) or []:
        found = preprocessor_of(step)
        if found is not None:
            return found
    return None


def image_spec(model: Any, profile: Mapping[str, Any] | None) -> ImageSpec | None:
    """The image input of ``model`` (None when it has no fitted image preparation), with the size and channel
    counts of the training images from their column ``profile`` (:func:`~tidal.data.images.profile.image_profile`)."""
    prep = preprocessor_of(model)
    shape = getattr(prep, "image_shape_", None)
    if shape is None:
        return None
    prof = profile or {}
    sizes = prof.get("sizes") or {}
    size = None
    if sizes and sizes.get("min") == sizes.get("max") and sizes.get("min"):
        size = (int(sizes["min"][0]), int(sizes["min"][1]))
    channels = sorted({CHANNELS[m] for m in (prof.get("modes") or {}) if m in CHANNELS})
    c, h, w = (int(v) for v in shape)
    return ImageSpec(shape=(c, h, w), dtype="uint8", size=size, channels=tuple(channels) or (c,))


def image_specs(model: Any, columns: list[str], kinds: Mapping[str, str],
                profile: Mapping[str, Any] | None) -> dict[str, ImageSpec]:
    """The :func:`image_spec` of each ``image`` column of a model version, from its reference ``profile``
    (``{"features": {"columns": {...}}}``, as a version stores it)."""
    per_column = ((profile or {}).get("features") or {}).get("columns") or {}
    out = {}
    for c in columns:
        if kinds.get(c) == "image" and (spec := image_spec(model, per_column.get(c))) is not None:
            out[c] = spec
    return out


def served_image(value: Any, spec: ImageSpec | None, *, max_pixels: int = MAX_PIXELS) -> CheckedImage:
    """The canonical PNG of one served image, the decoded image beside it (see the module docstring);
    :class:`ImageProblem` if it is not one the model takes (not an image, broken, too large, of another size
    or channel count)."""
    if isinstance(value, str):
        text = value
        for prefix in _PREFIXES:
            text = text.removeprefix(prefix)
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ImageProblem("not base64 text (send a PNG or JPEG base64-encoded, or nested arrays of "
                               "0-255 integers)") from None
        png, image = canonicalise(raw, max_pixels=max_pixels)
    elif isinstance(value, bytes | bytearray):
        png, image = canonicalise(bytes(value), max_pixels=max_pixels)
    elif isinstance(value, list):
        image = _from_arrays(value, spec, max_pixels)
        png = canonical_png(image)
    else:
        raise ImageProblem("expected an image: base64 PNG/JPEG text or nested arrays of 0-255 integers")
    if spec is not None:
        channels = CHANNELS[image.mode]
        if spec.channels and channels not in spec.channels:
            plural = "s" if spec.channels != (1,) else ""
            raise ImageProblem(f"{channels} channel{'s' if channels > 1 else ''} ({image.mode}); the model was "
                               f"trained on images of {_or(spec.channels)} channel{plural}")
        if spec.size is not None and tuple(image.size) != spec.size:
            raise ImageProblem(f"{image.size[0]}x{image.size[1]} pixels; the model takes "
                               f"{spec.size[0]}x{spec.size[1]} (width x height)")
    return CheckedImage.of(png, image)


def _from_arrays(value: list[Any], spec: ImageSpec | None, max_pixels: int) -> Any:
    """An image from nested arrays of 0-255 integers: (channels, height, width), or (height, width) for a
    grey model. Floats are refused: 8-bit pixels are what training saw, and a float would be rounded to one
    silently."""
    try:
        pixels = np.array(value, dtype=object)
    except ValueError:
        raise ImageProblem("nested arrays of unequal lengths (send (channels, height, width))") from None
    if any(isinstance(v, list) for v in pixels.ravel().tolist()):  # numpy keeps ragged lists as objects
        raise ImageProblem("nested arrays of unequal lengths (send (channels, height, width))")
    if pixels.ndim == 2:
        pixels = pixels[None, :, :]
    if pixels.ndim != 3 or 0 in pixels.shape:
        raise ImageProblem(f"arrays of shape {list(pixels.shape)}; send (channels, height, width)"
                           + (f", here {list(spec.shape)}" if spec is not None else ""))
    c, h, w = pixels.shape
    if h * w > max_pixels:
        raise ImageProblem(f"{w}x{h} is {w * h:,} pixels, over the limit of {max_pixels:,}")
    if c not in _MODE_OF_CHANNELS:
        raise ImageProblem(f"arrays of shape {list(pixels.shape)}: {c} channels; an image has 1 to 4")
    flat = pixels.ravel().tolist()
    if not all(type(v) is int and 0 <= v <= 255 for v in flat):
        raise ImageProblem("pixel values must be whole numbers from 0 to 255 (8-bit pixels, as training read "
                           "them; scale 0-1 floats by 255 and round)")
    if spec is not None and spec.size is not None and (w, h) != spec.size:
        want = [spec.channels[0] if len(spec.channels) == 1 else spec.shape[0], spec.size[1], spec.size[0]]
        raise ImageProblem(f"arrays of shape {[c, h, w]}; the model takes {want} (channels, height, width)")
    array = np.asarray(flat, dtype=np.uint8).reshape(c, h, w).transpose(1, 2, 0)
    return pillow().fromarray(array[:, :, 0] if c == 1 else array)


def logged_image(png: bytes) -> dict[str, Any]:
    """What the prediction log keeps of a served image (canonical PNG): ``sha256`` (its digest, which a
    snapshot's image would have too), ``size`` ``[width, height]``, ``mode``, and ``thumbnail``: the image
    fitted into :data:`THUMBNAIL` x :data:`THUMBNAIL` pixels, as base64 PNG text. A :class:`CheckedImage`
    is not decoded again, and one within the thumbnail's size is its own thumbnail (its canonical PNG is
    what :func:`canonical_png` would write for the unchanged copy)."""
    if type(png) is CheckedImage:
        image = png.image
        size, mode = list(image.size), image.mode
        thumb = png if max(size) <= THUMBNAIL else canonical_png(thumbnail_of(image))
    else:
        Image = pillow()
        with Image.open(io.BytesIO(png), formats=("PNG",)) as image:
            image.load()
            size, mode = list(image.size), image.mode
            thumb = canonical_png(thumbnail_of(image))
    return {"sha256": hashlib.sha256(png).hexdigest(), "size": size, "mode": mode,
            "thumbnail": base64.b64encode(thumb).decode("ascii")}


def thumbnail_of(image: Any) -> Any:
    """A copy of a decoded image fitted into :data:`THUMBNAIL` x :data:`THUMBNAIL` pixels (bilinear), as the
    prediction log keeps it; the image statistics a monitor compares are computed on it
    (:mod:`tidal.data.images.stats`)."""
    small = image.copy()
    if max(small.size) > THUMBNAIL:
        small.thumbnail((THUMBNAIL, THUMBNAIL), pillow().Resampling.BILINEAR)
    return small


def sample_images(spec: ImageSpec | None, profile: Mapping[str, Any] | None, n: int) -> list[bytes]:
    """``n`` canonical PNGs to check a loaded model on: of the training images' size (or the model's) and
    channel count, their pixels spread around the training images' channel means by their standard
    deviations (a gradient, a checkerboard, flat images): plausible images, with no training data kept."""
    Image = pillow()
    prof = profile or {}
    if spec is not None:
        width, height = spec.size or (spec.shape[2], spec.shape[1])
        channels = spec.channels[0] if spec.channels else spec.shape[0]
    else:
        most = (prof.get("sizes") or {}).get("most_common") or [8, 8]
        width, height = int(most[0]), int(most[1])
        channels = 1 if prof.get("channels", 1) == 1 else 3
    mean = float(np.mean(prof.get("channel_mean") or [0.5]))
    std = float(np.mean(prof.get("channel_std") or [0.25]))
    ys, xs = np.mgrid[0:height, 0:width]
    out = []
    for i in range(n):
        if i % 3 == 0:
            pattern = (xs + ys * (i + 1)) / max(1, width + height * (i + 1)) * 2 - 1
        elif i % 3 == 1:
            pattern = np.where((xs // max(1, i // 3 + 1) + ys) % 2 == 0, 1.0, -1.0)
        else:
            pattern = np.full((height, width), (i % 5 - 2) / 2.0)
        grey = np.clip((mean + std * pattern) * 255.0, 0, 255).round().astype(np.uint8)
        array = grey if channels == 1 else np.repeat(grey[:, :, None], channels, axis=2)
        if channels in (2, 4):
            array[:, :, -1] = 255  # opaque
        out.append(canonical_png(Image.fromarray(array)))
    return out


def _or(values: tuple[int, ...]) -> str:
    words = [str(v) for v in values]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


__all__ = ["THUMBNAIL", "CheckedImage", "decoded_image", "image_spec", "image_specs", "logged_image", "preprocessor_of",
           "sample_images", "served_image", "thumbnail_of"]
