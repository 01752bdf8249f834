"""Decode PNG/JPEG bytes with Pillow, and write the canonical PNG that a snapshot stores.

Canonical means the same pixels always give the same bytes: the image is decoded, turned upright by its
EXIF orientation (what a person sees), brought to one of four modes (``L``, ``LA``, ``RGB``, ``RGBA``:
palettes are expanded, 1-bit becomes ``L``, 16-bit grey is scaled to 8 bits, CMYK becomes RGB) and
written as PNG with fixed options and no metadata (no text chunks, no gamma, no ICC profile). Two
encodings of the same pixels (a re-saved PNG, another compression level, an interlaced or a palette PNG)
give the same canonical bytes, so the same snapshot digest. A JPEG is decoded once, at collection, and its
decoded pixels are what is kept (lossless from then on).

Like the Parquet footer (see :mod:`tidal.data.snapshot`), the PNG bytes depend on the zlib that writes
them: a snapshot taken again after a zlib or Pillow upgrade may get a new digest (a one-time cache miss,
never a wrong hit).
"""

from __future__ import annotations

import io
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from tidal.core.errors import DataError

if TYPE_CHECKING:
    from PIL import Image as PILImage

#: The file name endings read as images (lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")
#: The largest image accepted, in pixels (width x height), unless ``data.checks.images.max_pixels`` says
#: otherwise: 40 megapixels (a 7,300 x 5,500 photo) is bigger than any camera frame a model is trained
#: on, and far below what a PNG "zip bomb" expands to. It is checked on the header, before any pixel is
#: decoded; Pillow's own refusal (above twice its ``MAX_IMAGE_PIXELS``, 179 M) still applies on top.
MAX_PIXELS = 40_000_000
#: The modes kept as they are; every other mode is converted (see the module docstring).
MODES: tuple[str, ...] = ("L", "LA", "RGB", "RGBA")
#: Channels per kept mode.
CHANNELS: dict[str, int] = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4}
_FORMATS = ("PNG", "JPEG")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_START = b"\xff\xd8\xff"
_PNG_OPTIONS: dict[str, Any] = {"format": "PNG", "compress_level": 6, "optimize": False}


class ImageProblem(ValueError):
    """One image that cannot be used: ``reason`` says why, in words a person can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


_PIL: list[Any] = []  # PIL.Image, ImageOps and UnidentifiedImageError, once imported (a served image pays no import)


def pillow() -> Any:
    """The ``PIL.Image`` module, or a ``DataError`` saying how to install Pillow."""
    return _pil()[0]


def _pil() -> list[Any]:
    if not _PIL:
        try:
            from PIL import Image, ImageOps, UnidentifiedImageError
        except ImportError as exc:  # the images extra is not installed
            raise DataError("reading images needs Pillow, which is not installed",
                            hint="pip install 'tidal[images]'") from exc
        _PIL[:] = [Image, ImageOps, UnidentifiedImageError]
    return _PIL


def decode(data: bytes, *, max_pixels: int = MAX_PIXELS) -> PILImage.Image:
    """The image in ``data`` (PNG or JPEG bytes), upright and in one of :data:`MODES`, fully loaded.

    Raises :class:`ImageProblem` for anything that is not a whole, readable PNG or JPEG of at most
    ``max_pixels`` pixels: an empty file, a text file with an image's name, a truncated file, another
    format, or a decompression bomb. Never raises a library error.
    """
    Image, ImageOps, UnidentifiedImageError = _pil()
    if type(data) is bytes and data.startswith(_PNG_SIGNATURE):
        from tidal.data.images import fastpng

        if fastpng.enabled() and (plain := fastpng.decode(data, max_pixels)) is not None:
            decoded: PILImage.Image = plain  # a plain 8-bit PNG (as canonical PNGs are): Pillow's decoder,
            return decoded  # without its plumbing
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) == 0:
        raise ImageProblem("the file is empty (0 bytes)" if isinstance(data, bytes | bytearray) else
                           f"not image bytes ({type(data).__name__})")
    try:
        with warnings.catch_warnings():
            # Pillow warns above its MAX_IMAGE_PIXELS and raises above twice that; the limit checked here
            # (before any pixel is decoded: open reads the header only) is ours, so its warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(bytes(data)), formats=_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageProblem(f"{width}x{height} is {width * height:,} pixels, over the limit of "
                                   f"{max_pixels:,} (a decompression bomb, or an image far larger than needed)")
            image.load()
            if image.info:  # an orientation is only ever in the info (EXIF, XMP); this image is ours: no copy
                ImageOps.exif_transpose(image, in_place=True)
    except ImageProblem:
        raise
    except Image.DecompressionBombError as exc:
        raise ImageProblem(f"a decompression bomb: {_first_line(exc)}") from exc
    except UnidentifiedImageError as exc:
        head = bytes(data[:8])
        if head.startswith((_PNG_SIGNATURE, _JPEG_START)):  # the right start, then too little or garbage
            kind = "PNG" if head.startswith(_PNG_SIGNATURE) else "JPEG"
            raise ImageProblem(f"a broken or truncated image (a {kind} start, {len(data)} bytes)") from exc
        raise ImageProblem("not a PNG or JPEG image (the bytes are of another kind, or not an image)") from exc
    except (OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        # A truncated file ("image file is truncated"), a broken chunk or a bad CRC.
        raise ImageProblem(f"a broken or truncated image: {_first_line(exc)}") from exc
    return normalise_mode(image)


def normalise_mode(image: PILImage.Image) -> PILImage.Image:
    """``image`` in one of :data:`MODES` (see the module docstring for each conversion)."""
    Image = pillow()
    mode = image.mode
    if mode in MODES:
        return image
    if mode == "P" or mode == "PA":
        has_alpha = mode == "PA" or "transparency" in image.info
        return image.convert("RGBA" if has_alpha else "RGB")
    if mode in ("1",):
        return image.convert("L")
    if mode.startswith("I;16") or mode == "I":
        # 16-bit grey: keep the top 8 bits (Pillow's convert("L") would clip every value above 255).
        wide = np.asarray(image, dtype=np.uint32)
        shift = 8 if mode.startswith("I;16") or int(wide.max(initial=0)) > 255 else 0
        grey: PILImage.Image = Image.fromarray((wide >> shift).astype(np.uint8))
        return grey
    if mode == "F":
        floats: PILImage.Image = Image.fromarray(np.clip(np.asarray(image), 0, 255).astype(np.uint8))
        return floats
    if mode == "La":
        return image.convert("LA")
    if mode in ("RGBa", "RGBX"):
        return image.convert("RGBA" if mode == "RGBa" else "RGB")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def canonical_png(image: PILImage.Image) -> bytes:
    """The canonical PNG bytes of a decoded image (one of :data:`MODES`): same pixels → same bytes."""
    from tidal.data.images import fastpng

    if image.mode in MODES and fastpng.enabled():
        return fastpng.encode(image)  # the same bytes as below, without Image.save's plumbing
    Image = pillow()
    # A fresh image from the raw pixels: nothing of the source file's info (text, gamma, ICC, dpi, transparency)
    # is kept. An image with no info at all (a PNG without ancillary chunks, as canonical PNGs are) has
    # nothing to keep, and is written as it is: the same bytes, without the copy.
    clean = Image.frombytes(image.mode, image.size, image.tobytes()) if image.info else image
    buffer = io.BytesIO()
    clean.save(buffer, **_PNG_OPTIONS)
    return buffer.getvalue()


def canonicalise(data: bytes, *, max_pixels: int = MAX_PIXELS) -> tuple[bytes, PILImage.Image]:
    """The canonical PNG of ``data`` and the decoded image; :class:`ImageProblem` if it cannot be read."""
    image = decode(data, max_pixels=max_pixels)
    return canonical_png(image), image


def to_array(image: PILImage.Image) -> np.ndarray:
    """The pixels as a ``uint8`` array of shape (height, width, channels)."""
    pixels = np.asarray(image, dtype=np.uint8)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels


def _first_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


__all__ = [
    "CHANNELS",
    "IMAGE_EXTENSIONS",
    "MAX_PIXELS",
    "MODES",
    "ImageProblem",
    "canonical_png",
    "canonicalise",
    "decode",
    "normalise_mode",
    "pillow",
    "to_array",
]
