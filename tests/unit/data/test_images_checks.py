"""Bad images are named with their path and skipped or refused as ``data.checks.images`` says, never a traceback:
a truncated PNG, a text file called .png, a wrong size or channel count, a decompression bomb, an empty class
folder; against the reference, a class that is new or gone."""

from __future__ import annotations

import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.images_data import write_folders
from tidal.core.errors import DataError
from tidal.data.images.codec import ImageProblem, decode
from tidal.data.images.collect import read_images, skipped_note
from tidal.data.schema import infer_schema
from tidal.data.steps import collect, validate
from tidal.spec.model import DataSpec

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _data(**checks: Any) -> DataSpec:
    return DataSpec.model_validate({"source": "train", "target": "digit", "checks": {"images": checks}})


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header says ``width`` x ``height`` grey pixels, all zero: a few hundred bytes on disk."""
    rows = zlib.compress(b"\x00" * (width + 1) * min(height, 8), 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_folders(tmp_path / "train", per_class=3, classes=(0, 1, 2))
    return tmp_path


def _first(project: Path, cls: str = "1") -> Path:
    return sorted((project / "train" / cls).glob("*.png"))[0]


def test_a_truncated_png_is_named_and_refused_by_default(project: Path) -> None:
    path = _first(project)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:600])
    with pytest.raises(DataError, match=rf"^1 image cannot be used: 1/{path.name}: a broken or truncated image") as err:
        read_images(_data(), base_dir=project)
    assert "\n" not in str(err.value) and "on_error: skip" in str(err.value)


def test_a_text_file_named_png_is_skipped_when_asked(project: Path) -> None:
    path = _first(project)
    path.write_text("not a picture, just text\n")
    df, skipped = read_images(_data(on_error="skip"), base_dir=project)
    assert len(df) == 8 and f"1/{path.name}" not in set(df["path"])
    assert [(s.path, s.reason) for s in skipped] == [
        (f"1/{path.name}", "not a PNG or JPEG image (the bytes are of another kind, or not an image)")]
    # the snapshot says what it left out, and the run shows it as a warning
    info, _ = collect(_data(on_error="skip"), base_dir=project, project="p", created_at=NOW)
    assert info.profile["skipped"] == [s.to_dict() for s in skipped] and info.rows == 8
    assert skipped_note(info.profile) == [
        f"1 image left out (data.checks.images.on_error: skip): 1/{path.name}: not a PNG or JPEG image "
        "(the bytes are of another kind, or not an image)"]


def test_an_empty_file_and_a_bmp_are_not_images(project: Path) -> None:
    with pytest.raises(ImageProblem, match="empty"):
        decode(b"")
    import io

    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, format="BMP")
    with pytest.raises(ImageProblem, match="not a PNG or JPEG"):
        decode(buffer.getvalue())


def test_the_wrong_size_or_channel_count(project: Path) -> None:
    small, rgb = _first(project, "0"), _first(project, "2")
    Image.new("L", (7, 8)).save(small)
    Image.new("RGB", (8, 8), (9, 9, 9)).save(rgb)
    with pytest.raises(DataError, match=r"2 images cannot be used: 0/\d+\.png: 7x8 pixels, expected 8x8 "
                                        r"\(data.checks.images.size\); 2/\d+\.png: 3 channels, expected 1"):
        read_images(_data(size=[8, 8], channels=1), base_dir=project)
    df, skipped = read_images(_data(size=[8, 8], channels=1, on_error="skip"), base_dir=project)
    assert len(df) == 7 and len(skipped) == 2
    df, skipped = read_images(_data(), base_dir=project)  # no checks: both kept
    assert len(df) == 9 and skipped == []


def test_a_decompression_bomb_is_refused_before_it_is_decoded(project: Path) -> None:
    data = bomb_png(100_000, 100_000)  # 10 G pixels in a few hundred bytes
    assert len(data) < 2_000
    with pytest.raises(ImageProblem, match="decompression bomb"):
        decode(data)
    _first(project).write_bytes(bomb_png(8_000, 6_000))  # 48 M pixels: over tidal's 40 M limit
    with pytest.raises(DataError, match=r"8000x6000 is 48,000,000 pixels, over the limit of 40,000,000"):
        read_images(_data(), base_dir=project)
    with pytest.raises(DataError, match=r"8x8 is 64 pixels, over the limit of 63"):
        read_images(_data(max_pixels=63), base_dir=project)


def test_an_empty_class_folder(project: Path) -> None:
    (project / "train" / "7").mkdir()
    with pytest.raises(DataError, match=r"1 image cannot be used: 7/: a class folder with no images"):
        read_images(_data(), base_dir=project)
    df, skipped = read_images(_data(on_error="skip"), base_dir=project)
    assert len(df) == 9 and [s.path for s in skipped] == ["7/"]


def test_nothing_usable_is_refused_even_when_skipping(tmp_path: Path) -> None:
    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "x.png").write_text("text")
    with pytest.raises(DataError, match=r"none of the images in train can be used: a/x.png: not a PNG"):
        read_images(_data(on_error="skip"), base_dir=tmp_path)


def test_classes_new_or_gone_since_the_reference(project: Path) -> None:
    data = _data()
    reference, _ = read_images(data, base_dir=project)
    schema = infer_schema(reference, target="digit")
    assert validate(reference, schema, data) == []
    for path in (project / "train" / "2").glob("*.png"):
        path.unlink()
    (project / "train" / "2").rmdir()
    write_folders(project / "train", per_class=2, classes=(5,))
    now, _ = read_images(data, base_dir=project)
    found = {(a.kind, a.severity, a.message) for a in validate(now, schema, data)}
    assert ("new_class", "warning", "1 new class not in the reference: '5'") in found
    assert ("gone_class", "warning", "1 class of the reference with no image now: '2'") in found
    strict = DataSpec.model_validate({"source": "train", "target": "digit", "checks": {"images": {"classes": "error"}}})
    assert {a.severity for a in validate(now, schema, strict) if a.kind.endswith("_class")} == {"error"}


def test_the_spec_says_what_a_check_takes() -> None:
    from tidal.core.errors import SpecError
    from tidal.spec import parse_spec

    base = "version: 1\nname: d\ndata: {source: train/, target: digit, checks: {images: %s}}\n"
    for bad, words in (("{size: [8]}", "size"), ("{channels: 5}", "channels"), ("{on_error: ignore}", "on_error")):
        with pytest.raises(SpecError, match=words):
            parse_spec(base % bad)


def test_the_example_in_docs_images_parses() -> None:
    from tidal.spec import parse_spec

    doc = (Path(__file__).resolve().parents[3] / "docs" / "images.md").read_text()
    spec = parse_spec(doc.split("```yaml\n")[1].split("```")[0])
    assert spec.data.checks.images.on_error == "skip" and spec.prepare.images is not None
