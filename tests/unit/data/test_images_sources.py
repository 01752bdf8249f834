"""The three image layouts, on real images (scikit-learn's digits written out as PNG and JPEG files)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.images_data import digits, picks, write_flat, write_folders
from tidal.core.errors import DataError, SourceError
from tidal.data.images.codec import decode, to_array
from tidal.data.images.collect import is_image_data, read_images
from tidal.data.snapshot import read_snapshot_bytes
from tidal.data.sources import check_source, read_source, resolve_source
from tidal.data.sources.images import ImageFolderSource
from tidal.data.steps import collect
from tidal.spec.model import DataSpec

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _pixels(png: bytes) -> np.ndarray:
    return to_array(decode(png))[:, :, 0]


def test_class_folders_are_read_like_imagefolder(tmp_path: Path) -> None:
    write_folders(tmp_path / "train", per_class=3, classes=(0, 1, 7))
    df = check_source(ImageFolderSource(), "train/", tmp_path)
    assert list(df.columns) == ["path", "label", "image"]
    assert df["label"].tolist() == ["0"] * 3 + ["1"] * 3 + ["7"] * 3
    assert df["path"].iloc[0].startswith("0/") and df["path"].is_monotonic_increasing
    # the folder form and the glob form name the same images
    again = read_source("train/*/*.png", base_dir=tmp_path)
    pd.testing.assert_frame_equal(df, again)
    assert isinstance(resolve_source("train"), ImageFolderSource)


def test_a_glob_of_png_no_longer_fails_on_the_extension(tmp_path: Path) -> None:
    write_folders(tmp_path / "d", per_class=2, classes=(3,))
    df = read_source("d/3/*.png", base_dir=tmp_path)
    assert len(df) == 2 and set(df["label"]) == {"3"}


def test_read_images_decodes_to_the_same_pixels_and_names_the_target(tmp_path: Path) -> None:
    write_folders(tmp_path / "train", per_class=4, classes=(2, 5))
    data = DataSpec(source="train", target="digit")
    assert is_image_data(data)
    df, skipped = read_images(data, base_dir=tmp_path)
    assert skipped == [] and list(df.columns) == ["path", "digit", "image"]
    images, _ = digits()
    for path, png in zip(df["path"], df["image"], strict=True):
        index = int(Path(path).stem)
        np.testing.assert_array_equal(_pixels(png), images[index])


def test_images_without_a_class_folder_need_a_labels_file(tmp_path: Path) -> None:
    write_flat(tmp_path / "flat", per_class=2, classes=(1,))
    with pytest.raises(DataError, match=r"2 images have no class folder .* data.images.labels"):
        read_images(DataSpec(source="flat/", target="digit"), base_dir=tmp_path)


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_folder_of_images_with_a_labels_file(tmp_path: Path, kind: str) -> None:
    _, labels = write_flat(tmp_path / "imgs", per_class=3, classes=(4, 9))
    table = pd.DataFrame({"file": list(labels), "digit": list(labels.values())})
    path = tmp_path / f"labels.{kind}"
    table.to_csv(path, index=False) if kind == "csv" else table.to_parquet(path)
    data = DataSpec.model_validate({"source": "imgs/*.png", "target": "digit",
                                    "images": {"labels": f"labels.{kind}"}})
    df, skipped = read_images(data, base_dir=tmp_path)
    assert skipped == []
    assert df["digit"].tolist() == [labels[p] for p in df["path"]]
    assert df["digit"].dtype == np.int64  # the labels file's type is kept


def test_an_image_missing_from_the_labels_file_is_named(tmp_path: Path) -> None:
    _, labels = write_flat(tmp_path / "imgs", per_class=2, classes=(4,))
    first = sorted(labels)[0]
    pd.DataFrame({"file": [first], "digit": [labels[first]]}).to_csv(tmp_path / "labels.csv", index=False)
    spec = {"source": "imgs/", "target": "digit", "images": {"labels": "labels.csv"}}
    with pytest.raises(DataError, match=r"1 image cannot be used: \d+\.png: no label in labels.csv"):
        read_images(DataSpec.model_validate(spec), base_dir=tmp_path)
    spec["checks"] = {"images": {"on_error": "skip"}}
    df, skipped = read_images(DataSpec.model_validate(spec), base_dir=tmp_path)
    assert df["path"].tolist() == [first] and [s.reason for s in skipped] == ["no label in labels.csv"]


def test_a_parquet_column_of_png_and_jpeg_bytes(tmp_path: Path) -> None:
    images, labels = digits()
    rows = picks(3, (0, 6))
    encoded = []
    for n, i in enumerate(rows):
        buffer = io.BytesIO()
        Image.fromarray(images[i]).save(buffer, format="JPEG" if n % 2 else "PNG", quality=95)
        encoded.append(buffer.getvalue())
    pd.DataFrame({"picture": encoded, "digit": labels[rows]}).to_parquet(tmp_path / "digits.parquet")
    data = DataSpec.model_validate({"source": "digits.parquet", "target": "digit", "images": {"column": "picture"}})
    info, payload = collect(data, base_dir=tmp_path, project="p", created_at=NOW)
    assert info.schema == {"picture": "image", "digit": "integer"}
    df = read_snapshot_bytes(payload)
    for n, (i, png) in enumerate(zip(rows, df["picture"], strict=True)):
        assert png.startswith(b"\x89PNG")  # JPEG too is kept as the PNG of its decoded pixels
        got = _pixels(png).astype(int)
        assert np.abs(got - images[i]).max() <= (12 if n % 2 else 0)  # JPEG is lossy, PNG exact


def test_a_table_without_the_declared_image_column(tmp_path: Path) -> None:
    pd.DataFrame({"x": [b"1"], "digit": [1]}).to_parquet(tmp_path / "t.parquet")
    data = DataSpec.model_validate({"source": "t.parquet", "target": "digit", "images": {}})
    with pytest.raises(DataError, match=r"t.parquet has no column 'image' of images — set data.images.column"):
        read_images(data, base_dir=tmp_path)


def test_missing_and_empty_folders(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="data file not found"):
        read_source("nowhere/", base_dir=tmp_path)
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(SourceError, match=r"no .png or .jpg images in .*empty"):
        read_source("empty", base_dir=tmp_path)
    with pytest.raises(SourceError, match="no files match"):
        read_source("empty/*/*.png", base_dir=tmp_path)


def test_a_retrain_or_backtest_reads_the_images_as_collect_does(tmp_path: Path) -> None:
    from tidal.data.steps import read_table

    write_folders(tmp_path / "train", per_class=2, classes=(3, 8))
    data = DataSpec(source="train/", target="digit")
    _, payload = collect(data, base_dir=tmp_path, project="p", created_at=NOW)
    # the same rows and bytes (the snapshot reads an object column of text back as pandas' str dtype)
    pd.testing.assert_frame_equal(read_table(data, base_dir=tmp_path), read_snapshot_bytes(payload), check_dtype=False)


def test_class_folders_of_jpeg_files(tmp_path: Path) -> None:
    _, labels = write_flat(tmp_path / "train" / "four", per_class=2, classes=(4,), jpeg=True)
    df, _ = read_images(DataSpec(source="train", target="digit"), base_dir=tmp_path)
    assert df["path"].tolist() == [f"four/{name}" for name in sorted(labels)] and set(df["digit"]) == {"four"}
    assert all(png.startswith(b"\x89PNG") for png in df["image"])
