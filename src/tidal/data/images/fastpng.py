"""The canonical PNG's two hot paths without Pillow's file plumbing: decoding a plain PNG, writing a canonical one.

A served request of 64 small images spent most of its time not in zlib but in the Python around it:
``Image.open`` (plugin lookup, chunk reader objects, ``ImageFile.load``'s read loop) and ``Image.save``
(encoder-info handling, ``PngImagePlugin._save``'s checks, one write per chunk part). Here the very same C
codecs Pillow's PNG plugin drives (``zip_decoder`` and ``zip_encoder``, with the arguments the plugin passes)
are called directly, so the pixels decoded and the bytes written are Pillow's own:

- :func:`encode` writes what ``Image.save(format="PNG", compress_level=6, optimize=False)`` writes for an
  image without info (the canonical PNG: signature, IHDR, one IDAT per encoder buffer, IEND), byte for byte.
- :func:`decode` reads only the plainest PNGs — 8 bits per channel, grey, grey + alpha, RGB or RGBA, not
  interlaced, nothing but IHDR, IDAT and IEND, every CRC right (the canonical PNG is one) — and returns None
  for anything else, which then goes through ``Image.open`` as before (palettes, 16-bit, interlacing,
  ancillary chunks such as EXIF orientation or transparency, and every broken file with its reason).

Both are checked against Pillow's own path on sample images the first time they are used (:func:`enabled`);
if a Pillow upgrade makes them differ in any byte or pixel, they are switched off and Pillow's path is used.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from tidal.data.images.codec import pillow

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: The PNG colour type and the Pillow mode (also its raw mode) of each canonical mode, 8 bits per channel.
_COLOUR_TYPE = {"L": 0, "LA": 4, "RGB": 2, "RGBA": 6}
_MODE_OF_TYPE = {v: k for k, v in _COLOUR_TYPE.items()}
#: What ``PngImagePlugin`` hands the zip encoder: (optimize, compress_level, compress_type, dictionary),
#: from the canonical options (codec._PNG_OPTIONS: compress_level 6, optimize False).
_ENCODER_CONFIG = (False, 6, -1, b"")
#: ``ImageFile.MAXBLOCK``: the encoder's buffer, so one IDAT chunk per buffer, as ``Image.save`` writes them.
_MAXBLOCK = 65536
_IEND = struct.pack(">I", 0) + b"IEND" + struct.pack(">I", zlib.crc32(b"IEND"))
_CHUNK_HEAD = struct.Struct(">I4s")
_IHDR = struct.Struct(">IIBBBBB")
_STATE: dict[str, bool] = {}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode(image: Any) -> bytes:
    """The canonical PNG of ``image`` (loaded, in one of the canonical modes): its pixels only, as
    ``Image.save`` writes them with the canonical options for a copy without info."""
    Image = pillow()
    width, height = image.size
    mode = image.mode
    parts = [_SIGNATURE, _chunk(b"IHDR", _IHDR.pack(width, height, 8, _COLOUR_TYPE[mode], 0, 0, 0))]
    encoder = Image.core.zip_encoder(mode, mode, *_ENCODER_CONFIG)
    try:
        encoder.setimage(image.im, (0, 0, width, height))
        bufsize = max(_MAXBLOCK, width * 4)
        while True:  # as ImageFile._encode_tile: every buffer (even an empty one) is an IDAT chunk
            _, errcode, data = encoder.encode(bufsize)
            parts.append(_chunk(b"IDAT", data))
            if errcode:
                break
    finally:
        encoder.cleanup()
    if errcode < 0:
        raise OSError(f"the PNG encoder failed (error {errcode})")
    parts.append(_IEND)
    return b"".join(parts)


def decode(data: bytes, max_pixels: int) -> Any | None:
    """The image in ``data`` if it is a plain PNG (see the module docstring) of at most ``max_pixels`` pixels,
    decoded by Pillow's own PNG decoder; None for anything else (to be read by ``Image.open``)."""
    if not data.startswith(_SIGNATURE) or len(data) < 8 + 25 + 12:
        return None
    view = memoryview(data)
    length, kind = _CHUNK_HEAD.unpack_from(data, 8)
    if kind != b"IHDR" or length != 13 or not _crc_ok(view, 8, length):
        return None
    width, height, depth, colour, compression, filtering, interlace = _IHDR.unpack_from(data, 16)
    mode = _MODE_OF_TYPE.get(colour)
    if (mode is None or depth != 8 or compression or filtering or interlace or not width or not height
            or width * height > max_pixels):
        return None
    pos, idat, ended = 33, [], False
    while pos + 12 <= len(data):
        length, kind = _CHUNK_HEAD.unpack_from(data, pos)
        if pos + 12 + length > len(data) or not _crc_ok(view, pos, length):
            return None
        if kind == b"IDAT" and not ended:
            idat.append(view[pos + 8:pos + 8 + length])
        elif kind == b"IEND":
            ended = True
            break
        else:  # an ancillary chunk (it may carry an orientation or a transparency), or IDAT after a gap
            return None
        pos += 12 + length
    if not ended or not idat:
        return None
    Image = pillow()
    image = Image.new(mode, (width, height))
    decoder = Image.core.zip_decoder(mode, mode, 0)
    try:
        decoder.setimage(image.im, (0, 0, width, height))
        consumed, errcode = decoder.decode(b"".join(idat))
    finally:
        decoder.cleanup()
    if consumed >= 0 or errcode < 0:  # the stream ended before the image did, or is broken: Pillow says why
        return None
    return image


def _crc_ok(view: memoryview, pos: int, length: int) -> bool:
    crc: int = struct.unpack_from(">I", view, pos + 8 + length)[0]
    return zlib.crc32(view[pos + 4:pos + 8 + length]) == crc


def enabled() -> bool:
    """Whether the fast paths give exactly Pillow's bytes and pixels here (checked once, on sample images of
    each mode, one of them larger than the encoder's buffer)."""
    if "ok" not in _STATE:
        try:
            _STATE["ok"] = _self_check()
        except Exception:  # any difference in the private codec API: use Pillow's path
            _STATE["ok"] = False
    return bool(_STATE["ok"])


def _self_check() -> bool:
    import io

    import numpy as np

    Image = pillow()
    rng = np.random.default_rng(13)
    for mode, channels in (("L", 1), ("LA", 2), ("RGB", 3), ("RGBA", 4)):
        for height, width in ((8, 8), (1, 1), (31, 17), (300, 260)):
            smooth = (np.add.outer(np.arange(height), np.arange(width)) * 3 % 256).astype(np.uint8)
            pixels = np.repeat(smooth[:, :, None], channels, axis=2)
            pixels[: height // 2] = rng.integers(0, 256, size=pixels[: height // 2].shape, dtype=np.uint8)
            image = Image.fromarray(pixels[:, :, 0] if channels == 1 else pixels)
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=6, optimize=False)
            slow = buffer.getvalue()
            if encode(image) != slow:
                return False
            again = decode(slow, height * width)
            if again is None or again.mode != mode or again.tobytes() != image.tobytes():
                return False
    return True


__all__ = ["decode", "enabled", "encode"]
