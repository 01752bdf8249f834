"""The image statistics a monitor compares (tidal.data.images.stats): on real digits, each moves with the
change it is there to catch and not with the others; the logged thumbnail gives the training image's very
numbers; the reference a version keeps is compact and leaves out a size that cannot move."""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageFilter

from tests.images_data import digits
from tidal.data.images.codec import canonical_png
from tidal.data.images.serving import THUMBNAIL, logged_image
from tidal.data.images.stats import image_statistics, pixel_statistics, statistics_frame, statistics_reference
from tidal.monitor.baseline import holdout_drift
from tidal.monitor.drift import detect_drift
from tidal.monitor.images import expand_images, image_panel


def _png(pixels: np.ndarray) -> bytes:
    return canonical_png(Image.fromarray(pixels))


def _means(change: object) -> dict[str, float]:
    images, _ = digits()
    frame = statistics_frame([_png(change(images[i])) for i in range(0, 1797, 10)])  # type: ignore[operator]
    return {k: float(v) for k, v in frame.mean().items()}


def test_pixel_statistics_by_hand() -> None:
    flat = np.full((4, 4), 0.5)
    assert pixel_statistics(flat) == {"brightness": 0.5, "contrast": 0.0, "sharpness": 0.0, "orientation": 0.5}
    stripes = np.tile([0.0, 1.0], (4, 2))  # vertical stripes: every gradient is horizontal
    got = pixel_statistics(stripes)
    assert got["brightness"] == 0.5 and got["contrast"] == 0.5 and got["orientation"] == 1.0
    # interior Laplacian of alternating columns: +-2 -> variance 4
    assert got["sharpness"] == 4.0
    assert pixel_statistics(stripes.T)["orientation"] == 0.0
    assert pixel_statistics(np.zeros((2, 2)))["sharpness"] == 0.0  # too small for a Laplacian


def test_each_statistic_moves_with_its_change_on_real_digits() -> None:
    same = _means(lambda a: a)
    dark = _means(lambda a: (a * 0.5).astype(np.uint8))
    blur = _means(lambda a: np.asarray(Image.fromarray(a).filter(ImageFilter.BoxBlur(1))))
    turned = _means(lambda a: np.rot90(a).copy())
    assert abs(dark["brightness"] - same["brightness"] / 2) < 0.01 and dark["contrast"] < same["contrast"] * 0.55
    assert blur["sharpness"] < same["sharpness"] / 5 and abs(blur["brightness"] - same["brightness"]) < 0.01
    for stat in ("brightness", "contrast", "sharpness"):  # a quarter turn keeps the pixels, so all but one
        assert turned[stat] == pytest.approx(same[stat], rel=1e-12)
    assert abs(turned["orientation"] - (1 - same["orientation"])) < 1e-9 and same["orientation"] > 0.6


def test_the_logged_thumbnail_gives_the_images_own_numbers() -> None:
    images, _ = digits()
    small = _png(images[7])
    assert image_statistics(small) == image_statistics(logged_image(small))
    # a large image is measured on its thumbnail, its size kept from the full image
    big = canonical_png(Image.fromarray(images[7]).resize((96, 64), Image.Resampling.NEAREST))
    logged = logged_image(big)
    got = image_statistics(big)
    assert got == image_statistics(logged) and got is not None
    assert (got["width"], got["height"]) == (96, 64)
    thumb = Image.open(io.BytesIO(base64.b64decode(logged["thumbnail"])))
    assert max(thumb.size) == THUMBNAIL
    # nulls and unreadable values are NaN (counted as nulls by drift), never an error
    assert image_statistics(None) is None and image_statistics(b"not a png") is None
    assert image_statistics({"thumbnail": "%%%"}) is None
    assert statistics_frame([None]).isna().all().all()


def test_the_reference_is_compact_and_expands_into_numeric_features() -> None:
    images, _ = digits()
    pngs = pd.Series([_png(images[i]) for i in range(120)], dtype=object)
    ref = statistics_reference(pngs)
    assert ref["basis"] == "thumbnail" and ref["images"] == 120 and len(ref["thumbnails"]) == 8
    assert set(ref["columns"]) == {"brightness", "contrast", "sharpness", "orientation"}  # one size: no width
    assert set(ref["optional"]) == {"pc1", "pc2", "pc3"} and len(ref["components"]["vectors"][0]) == 64
    assert all(c["kind"] == "numeric" and c["count"] == 120 and len(c["sample"]) == 120
               for c in ref["columns"].values())
    # sizes that vary are monitored too
    mixed = pd.Series([*pngs[:5], canonical_png(Image.fromarray(images[0]).resize((16, 8)))], dtype=object)
    assert {"width", "height"} <= set(statistics_reference(mixed)["columns"])

    reference = {"image": {"kind": "image", "count": 120, "statistics": ref}, "x": {"kind": "numeric"}}
    window = pd.DataFrame({"image": [logged_image(p) for p in pngs[:3]], "x": [1.0, 2.0, 3.0]})
    columns_ref, frame, columns = expand_images(reference, window, ["image", "x"])
    assert columns == ["image.brightness", "image.contrast", "image.sharpness", "image.orientation", "x"]
    assert columns_ref["image.sharpness"] is ref["columns"]["sharpness"]
    assert frame["image.brightness"].tolist() == statistics_frame(pngs[:3])["brightness"].tolist()
    # the report's panel: the means on both sides, and thumbnails of a logged window or of encoded images alike
    verdicts = {"columns": [{"column": "image.brightness", "drifted": True}]}
    panel = image_panel(reference, frame, columns, verdicts)[0]
    assert panel["window"] == [logged_image(p)["thumbnail"] for p in pngs[:3]]
    assert panel["reference"] == ref["thumbnails"]
    stats = {s["name"]: s for s in panel["statistics"]}
    assert stats["image.brightness"]["drifted"] and not stats["image.contrast"]["drifted"]
    assert stats["image.brightness"]["window"] == pytest.approx(frame["image.brightness"].mean())
    assert stats["image.brightness"]["reference"] == ref["columns"]["brightness"]["mean"]
    raw = expand_images(reference, pd.DataFrame({"image": list(pngs[:3])}), ["image"])[1]
    assert image_panel(reference, raw, columns, verdicts)[0]["window"] == panel["window"]
    # one statistic named alone (monitor.drift.columns), an unknown one left for drift to report
    picked = expand_images(reference, window, ["image.sharpness", "image.nothing"])
    assert picked[2] == ["image.sharpness", "image.nothing"] and "image.brightness" not in picked[1].columns
    assert picked[1]["image.sharpness"].tolist() == frame["image.sharpness"].tolist()
    # a version registered before the statistics existed keeps its image column as it was
    old = {"image": {"kind": "image", "count": 120}}
    assert expand_images(old, window, ["image"])[2] == ["image"]


def test_pixel_components_move_with_the_content_and_only_when_named() -> None:
    images, _ = digits()
    train = pd.Series([_png(images[i]) for i in range(0, 1797, 3)], dtype=object)
    ref = statistics_reference(train)
    assert statistics_reference(train)["components"] == ref["components"]  # the same images, the same vectors
    reference = {"image": {"kind": "image", "count": len(train), "statistics": ref}}
    window = [images[i] for i in range(1, 1797, 9)]

    def judged(change: object, columns: list[str]) -> dict[str, bool]:
        frame = pd.DataFrame({"image": [logged_image(_png(change(a))) for a in window]})  # type: ignore[operator]
        ref_columns, frame, names = expand_images(reference, frame, columns)
        return {c.column: c.drifted for c in detect_drift({"columns": ref_columns}, frame, columns=names).columns}

    pcs = ["image.pc1", "image.pc2", "image.pc3"]
    assert "image.pc1" not in judged(lambda a: a, ["image"])  # not among the defaults
    assert not any(judged(lambda a: a, pcs).values())
    assert any(judged(lambda a: np.rot90(a).copy(), pcs).values())
    # the baseline covers them too: a statistic named alone is held to the holdout like the defaults
    holdout = pd.DataFrame({"image": [_png(a) for a in window]})
    got = holdout_drift(reference, holdout, ["image"], train=pd.DataFrame({"image": train}))
    assert {"image.brightness", "image.pc1", "image.pc3"} <= set(got["columns"])
