"""A snapshot of images is content-addressed by its pixels and labels, not by how the files were encoded;
its profile is one a person can read (sizes, modes, channel statistics) and its contact sheet a real PNG."""

from __future__ import annotations

import base64
import io
import re
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image, PngImagePlugin

from tests.images_data import digits, write_folders
from tidal.data.images.codec import decode
from tidal.data.images.profile import contact_sheet_html, contact_sheet_png
from tidal.data.snapshot import read_snapshot_bytes
from tidal.data.steps import collect
from tidal.spec.model import DataSpec

NOW = datetime(2026, 1, 1, tzinfo=UTC)
DATA = DataSpec(source="train", target="digit")


def _digest(root: Path) -> str:
    return collect(DATA, base_dir=root, project="p", created_at=NOW)[0].digest


def _resave(path: Path, **options: object) -> None:
    pixels = np.asarray(Image.open(path))
    Image.fromarray(pixels).save(path, **options)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    write_folders(tmp_path / "train", per_class=3, classes=(0, 1, 2))
    return tmp_path


def test_the_same_pixels_encoded_otherwise_give_the_same_digest(project: Path) -> None:
    before = _digest(project)
    files = sorted((project / "train").rglob("*.png"))
    original = [f.read_bytes() for f in files[:3]]
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "a scanner")
    _resave(files[0], compress_level=0)
    _resave(files[1], compress_level=9, optimize=True)
    _resave(files[2], pnginfo=info, dpi=(300, 300))
    assert all(f.read_bytes() != b for f, b in zip(files, original, strict=False))  # other bytes on disk
    assert _digest(project) == before


def test_one_changed_pixel_or_label_gives_another_digest(project: Path) -> None:
    before = _digest(project)
    path = sorted((project / "train").rglob("*.png"))[0]
    pixels = np.asarray(Image.open(path)).copy()
    pixels[4, 4] = (int(pixels[4, 4]) + 1) % 256
    Image.fromarray(pixels).save(path)
    changed = _digest(project)
    assert changed != before
    pixels[4, 4] = (int(pixels[4, 4]) - 1) % 256
    Image.fromarray(pixels).save(path)
    assert _digest(project) == before  # and back again
    path.rename(project / "train" / "1" / path.name)  # the same image under another class
    assert _digest(project) not in (before, changed)


def test_the_profile_reads_like_a_description(project: Path) -> None:
    info, payload = collect(DATA, base_dir=project, project="p", created_at=NOW)
    image = info.profile["columns"]["image"]
    assert image["kind"] == "image" and image["count"] == 9
    assert image["sizes"] == {"min": [8, 8], "max": [8, 8], "most_common": [8, 8], "top": {"8x8": 9}}
    assert image["modes"] == {"L": 9} and image["channels"] == 1
    df = read_snapshot_bytes(payload)
    pixels = np.stack([np.asarray(decode(b)) for b in df["image"]]).astype(float) / 255
    assert image["channel_mean"] == [pytest.approx(pixels.mean(), abs=1e-6)]
    assert image["channel_std"] == [pytest.approx(pixels.std(), abs=1e-6)]
    assert info.profile["columns"]["digit"]["top"] == {"0": 3, "1": 3, "2": 3}  # the count per class


def test_the_profile_of_colour_images_of_several_sizes() -> None:
    rng = np.random.default_rng(0)
    encoded = []
    for size in ((4, 6), (4, 6), (10, 3)):
        buffer = io.BytesIO()
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buffer, format="PNG")
        encoded.append(buffer.getvalue())
    from tidal.data.images.profile import image_profile

    out = image_profile(pd.Series(encoded, dtype=object))
    assert out["sizes"]["most_common"] == [4, 6] and out["sizes"]["min"] == [4, 6] and out["sizes"]["max"] == [10, 3]
    assert out["modes"] == {"RGB": 3} and out["channels"] == 3 and len(out["channel_mean"]) == 3


def test_the_contact_sheet_shows_a_few_images_per_class(project: Path) -> None:
    _, payload = collect(DATA, base_dir=project, project="p", created_at=NOW)
    df = read_snapshot_bytes(payload)
    sheet = Image.open(io.BytesIO(contact_sheet_png(df, image="image", label="digit", per_class=2, cell=32)))
    assert sheet.mode == "RGB" and sheet.size == (96 + 2 * 36, 3 * 36 + 4)
    cell = np.asarray(sheet)[4:36, 96:128]
    original = np.asarray(Image.open(io.BytesIO(df["image"].iloc[0])))
    # the first cell is the first image of the first class, scaled 4x (nearest): its grey levels
    np.testing.assert_array_equal(cell[::4, ::4, 0], original)
    html = contact_sheet_html(df, image="image", label="digit", per_class=2)
    uri = re.search(r'src="data:image/png;base64,([^"]+)"', html)
    assert uri and Image.open(io.BytesIO(base64.b64decode(uri.group(1)))).format == "PNG"
    assert "2 images per class, 3 classes, 9 images" in html


def test_digits_are_real(project: Path) -> None:  # the fixture data is scikit-learn's, not made here
    images, labels = digits()
    assert images.shape == (1797, 8, 8) and sorted(set(labels.tolist())) == list(range(10))
