"""The fast PNG paths (tidal.data.images.fastpng) give exactly what Pillow's ``Image.open`` / ``Image.save`` give:
the same canonical bytes (so the same digests as a snapshot's) and the same pixels, over PNGs written by other
encoders; anything but a plain PNG, and every broken one, goes Pillow's way with its reason."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Iterator

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from tidal.data.images import codec, fastpng
from tidal.data.images.codec import ImageProblem, canonicalise

_RNG = np.random.default_rng(7)
_COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def _filtered(rows: np.ndarray, bpp: int, kind: int) -> bytes:
    """Scanlines of ``rows`` (height, width*bpp, uint8 or uint16 big-endian bytes) with PNG filter ``kind``."""
    out = bytearray()
    prior = np.zeros(rows.shape[1], dtype=np.int32)
    for row in rows.astype(np.int32):
        left = np.concatenate([np.zeros(bpp, dtype=np.int32), row[:-bpp]])
        up_left = np.concatenate([np.zeros(bpp, dtype=np.int32), prior[:-bpp]])
        if kind == 0:
            line = row
        elif kind == 1:
            line = row - left
        elif kind == 2:
            line = row - prior
        elif kind == 3:
            line = row - (left + prior) // 2
        else:  # Paeth
            p = left + prior - up_left
            pa, pb, pc = np.abs(p - left), np.abs(p - prior), np.abs(p - up_left)
            pred = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, prior, up_left))
            line = row - pred
        out += bytes([kind]) + (line % 256).astype(np.uint8).tobytes()
        prior = row
    return bytes(out)


def _own_png(pixels: np.ndarray, *, depth: int = 8, filt: int = 0, interlace: bool = False, level: int = 9,
             split: int = 0, extra: tuple[tuple[bytes, bytes], ...] = ()) -> bytes:
    """A PNG written by hand (not by Pillow): any filter, Adam7 interlacing, 16 bits, IDAT split every
    ``split`` bytes, ``extra`` ancillary chunks before the data."""
    arr = pixels if pixels.ndim == 3 else pixels[:, :, None]
    height, width, channels = arr.shape
    bpp = channels * depth // 8

    def lines(sub: np.ndarray) -> bytes:
        data = sub.astype(">u2").view(np.uint8) if depth == 16 else sub.astype(np.uint8)
        return _filtered(data.reshape(sub.shape[0], -1), bpp, filt)

    if interlace:
        raw = b""
        for x0, y0, dx, dy in ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
                               (0, 1, 1, 2)):
            sub = arr[y0::dy, x0::dx]
            if sub.size:
                raw += lines(sub)
    else:
        raw = lines(arr)
    stream = zlib.compress(raw, level)
    parts = [b"\x89PNG\r\n\x1a\n",
             _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, _COLOUR[channels], 0, 0, int(interlace)))]
    parts += [_chunk(kind, data) for kind, data in extra]
    step = split or len(stream)
    parts += [_chunk(b"IDAT", stream[i:i + step]) for i in range(0, len(stream), step)]
    return b"".join([*parts, _chunk(b"IEND", b"")])


def _pillow_png(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", **options)
    return buffer.getvalue()


def _pixels(height: int, width: int, channels: int) -> np.ndarray:
    smooth = (np.add.outer(np.arange(height), np.arange(width)) * 5 % 256).astype(np.uint8)
    arr = np.repeat(smooth[:, :, None], channels, axis=2)
    arr[::3] = _RNG.integers(0, 256, size=arr[::3].shape, dtype=np.uint8)
    return arr[:, :, 0] if channels == 1 else arr


def _encodings() -> Iterator[tuple[str, bytes]]:
    for channels, mode in ((1, "L"), (2, "LA"), (3, "RGB"), (4, "RGBA")):
        arr = _pixels(13, 21, channels)
        image = Image.fromarray(arr)
        yield f"{mode} canonical", codec.canonical_png(image)
        for level in (0, 1, 9):
            yield f"{mode} pillow level {level}", _pillow_png(image, compress_level=level)
        yield f"{mode} pillow optimize", _pillow_png(image, optimize=True)
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", "another encoder")
        yield f"{mode} pillow text + dpi", _pillow_png(image, pnginfo=info, dpi=(72, 72))
        for filt in range(5):
            yield f"{mode} own filter {filt}", _own_png(arr, filt=filt, split=17)
        yield f"{mode} own interlaced", _own_png(arr, interlace=True, filt=4)
        yield f"{mode} own gAMA", _own_png(arr, extra=((b"gAMA", struct.pack(">I", 45455)),))
    wide = (_pixels(9, 11, 1).astype(np.uint16) * 257 + 3)
    yield "16-bit grey", _own_png(wide, depth=16)
    yield "16-bit RGB", _own_png(np.repeat(wide[:, :, None], 3, axis=2), depth=16)
    palette = Image.fromarray(_pixels(12, 10, 3)).quantize(colors=16)
    yield "palette", _pillow_png(palette)
    yield "palette with transparency", _pillow_png(palette, transparency=3)
    yield "grey with a transparent value", _pillow_png(Image.fromarray(_pixels(6, 6, 1)), transparency=5)
    yield "1-bit", _pillow_png(Image.fromarray(_pixels(7, 9, 1)).convert("1"))
    yield "large RGB (several encoder buffers)", _pillow_png(Image.fromarray(_pixels(300, 280, 3)))


def _both(data: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[tuple[bytes, Image.Image], tuple[bytes, Image.Image]]:
    assert fastpng.enabled(), "the fast paths should match Pillow's on this Pillow"
    fast = canonicalise(data)
    with monkeypatch.context() as patch:
        patch.setitem(fastpng._STATE, "ok", False)
        slow = canonicalise(data)
    return fast, slow


@pytest.mark.parametrize(("name", "data"), list(_encodings()), ids=[name for name, _ in _encodings()])
def test_the_fast_paths_give_pillows_canonical_bytes_and_pixels(name: str, data: bytes,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    (fast_png, fast_image), (slow_png, slow_image) = _both(data, monkeypatch)
    assert fast_png == slow_png, name
    assert (fast_image.mode, fast_image.size) == (slow_image.mode, slow_image.size)
    assert fast_image.tobytes() == slow_image.tobytes()
    # and the canonical PNG, read back, is plain: decoded by the fast path to the same pixels and bytes again
    again = fastpng.decode(fast_png, codec.MAX_PIXELS)
    assert again is not None and again.tobytes() == slow_image.tobytes() and again.info == {}
    assert fastpng.encode(again) == slow_png


def test_only_plain_png_takes_the_fast_decode() -> None:
    arr = _pixels(8, 8, 3)
    assert fastpng.decode(_own_png(arr, filt=2, split=5), codec.MAX_PIXELS) is not None  # plain: any filter or split
    assert fastpng.decode(_own_png(arr, interlace=True), codec.MAX_PIXELS) is None
    assert fastpng.decode(_own_png(arr, extra=((b"tEXt", b"a\0b"),)), codec.MAX_PIXELS) is None
    assert fastpng.decode(_own_png(arr[:, :, 0].astype(np.uint16), depth=16), codec.MAX_PIXELS) is None
    assert fastpng.decode(_pillow_png(Image.fromarray(arr).quantize(colors=8)), codec.MAX_PIXELS) is None
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: the orientation must be applied, so Pillow's path
    assert fastpng.decode(_pillow_png(Image.fromarray(arr), exif=exif), codec.MAX_PIXELS) is None
    assert fastpng.decode(codec.canonical_png(Image.fromarray(arr)), 63) is None  # over the pixel limit


def _broken() -> Iterator[tuple[str, bytes]]:
    good = codec.canonical_png(Image.fromarray(_pixels(16, 16, 3)))
    yield "truncated in the data", good[:60]
    yield "no IEND", good[:-12]
    bad_crc = bytearray(good)
    bad_crc[-16] ^= 0xFF  # the IDAT's CRC
    yield "a wrong CRC", bytes(bad_crc)
    stream = bytearray(_own_png(_pixels(16, 16, 3)))
    stream[45:60] = b"\x00" * 15  # garbage inside the deflate stream, CRCs recomputed below
    yield "a corrupt stream", _recrc(bytes(stream))
    yield "an image far over the limit", _own_png(_pixels(2, 2, 1))


def _recrc(data: bytes) -> bytes:
    out, pos = [data[:8]], 8
    while pos < len(data):
        (length,) = struct.unpack_from(">I", data, pos)
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        out.append(_chunk(kind, body))
        pos += 12 + length
    return b"".join(out)


@pytest.mark.parametrize(("name", "data"), list(_broken()), ids=[name for name, _ in _broken()])
def test_a_broken_png_gets_pillows_reason_either_way(name: str, data: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    limit = 3 if name.startswith("an image far") else codec.MAX_PIXELS

    def reason() -> str | None:
        try:
            canonicalise(data, max_pixels=limit)
        except ImageProblem as exc:
            return exc.reason
        return None

    fast = reason()
    monkeypatch.setitem(fastpng._STATE, "ok", False)
    assert fast == reason()
    # Pillow neither checks the IDAT's CRC nor needs IEND once the image is whole; the fast path leaves
    # such files to it, so they are read as before
    assert (fast is None) == (name in ("a wrong CRC", "no IEND")), name


def test_a_changed_codec_switches_the_fast_paths_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(fastpng._STATE, "ok", raising=False)
    monkeypatch.setattr(fastpng, "_ENCODER_CONFIG", (False, 9, -1, b""))  # bytes no longer Image.save's
    assert not fastpng.enabled()
    image = Image.fromarray(_pixels(8, 8, 1))
    assert codec.canonical_png(image) == _pillow_png(image, compress_level=6, optimize=False)
    monkeypatch.delitem(fastpng._STATE, "ok")
