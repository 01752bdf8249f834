"""Images at prediction time (tidal.data.images.serving): the spec a model version records, a served image made
canonical as a snapshot's is, the log's digest and thumbnail, and the sample images a loaded model is checked on."""

from __future__ import annotations

import base64
import hashlib
import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.images_data import digits
from tidal.core.signature import ImageSpec, Signature
from tidal.data.images.codec import ImageProblem, canonicalise
from tidal.data.images.prepare import ImagePreprocessor
from tidal.data.images.profile import image_profile
from tidal.data.images.serving import image_spec, logged_image, sample_images, served_image


def _png(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def test_the_spec_comes_from_the_fitted_prepare_step_and_the_training_images() -> None:
    images, _ = digits()
    same = pd.Series([_png(i) for i in images[:20]], dtype=object)
    prep = ImagePreprocessor(size=(4, 4)).fit(same)
    spec = image_spec(prep, image_profile(same))
    assert spec == ImageSpec(shape=(1, 4, 4), dtype="uint8", size=(8, 8), channels=(1,))
    mixed = pd.Series([*same, _png(np.zeros((10, 6, 3), dtype=np.uint8))], dtype=object)
    assert image_spec(ImagePreprocessor().fit(mixed), image_profile(mixed)).size is None  # sizes vary: any
    signature = Signature(columns={"image": "image"}, images={"image": spec})
    assert Signature.from_dict(signature.to_dict()) == signature
    assert image_spec(object(), None) is None


def test_png_jpeg_pixels_and_arrays_give_the_canonical_png() -> None:
    pixels = digits()[0][7]
    spec = ImageSpec(shape=(1, 8, 8), size=(8, 8), channels=(1,))
    png = _png(pixels)
    canonical = canonicalise(png)[0]
    assert served_image(png, spec) == canonical
    assert served_image("data:image/png;base64," + base64.b64encode(png).decode(), spec) == canonical
    assert served_image(pixels.tolist(), spec) == canonical == served_image([pixels.tolist()], spec)
    jpeg = _png(pixels, "JPEG")
    assert served_image(jpeg, spec) == canonicalise(jpeg)[0]  # a JPEG: its decoded pixels, as collection keeps
    with pytest.raises(ImageProblem, match=r"arrays of shape \[1, 8, 4\]; the model takes \[1, 8, 8\]"):
        served_image([row[:4] for row in pixels.tolist()], spec)
    # a model whose prepare step resizes images of any size takes any size
    assert served_image(_png(np.zeros((5, 9), dtype=np.uint8)), ImageSpec(shape=(1, 8, 8), channels=(1,)))


def test_the_log_keeps_a_digest_and_a_thumbnail() -> None:
    canonical = canonicalise(_png(np.full((100, 50, 3), 200, dtype=np.uint8)))[0]
    kept = logged_image(canonical)
    assert kept["sha256"] == hashlib.sha256(canonical).hexdigest() and kept["size"] == [50, 100]
    thumb = Image.open(io.BytesIO(base64.b64decode(kept["thumbnail"])))
    assert thumb.size == (16, 32) and thumb.mode == "RGB"


def test_sample_images_have_the_training_size_and_channels() -> None:
    spec = ImageSpec(shape=(3, 4, 4), size=(10, 6), channels=(3,))
    profile = {"channel_mean": [0.2, 0.4, 0.6], "channel_std": [0.1, 0.1, 0.1]}
    found = [Image.open(io.BytesIO(b)) for b in sample_images(spec, profile, 6)]
    assert [(i.size, i.mode) for i in found] == [((10, 6), "RGB")] * 6
    assert len({i.tobytes() for i in found}) > 3  # not all the same image


def test_a_checked_image_keeps_its_decoded_pixels_and_logs_as_its_bytes_would() -> None:
    """served_image's answer carries the decoded image (what the image predictor and the log record use); it
    is the canonical PNG's own pixels, and the log record made from it is the one its bytes alone give: for
    images within the thumbnail (their PNG is their thumbnail) and above it, grey, RGB, RGBA, JPEG with EXIF."""
    from tidal.data.images.codec import decode
    from tidal.data.images.serving import CheckedImage, decoded_image

    rng = np.random.default_rng(0)
    rotated = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees to see it upright
    Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(rotated, format="JPEG", exif=exif)
    sent = [_png(digits()[0][3]), *(_png(rng.integers(0, 256, shape, dtype=np.uint8))
                                     for shape in [(32, 20, 3), (40, 70, 4), (33, 5)]), rotated.getvalue()]
    for data in sent:
        checked = served_image(data, None)
        assert type(checked) is CheckedImage and checked == canonicalise(data)[0]
        again = decode(bytes(checked))
        assert (checked.image.mode, checked.image.size, checked.image.tobytes()) == (again.mode, again.size,
                                                                                     again.tobytes())
        assert decoded_image(checked) is checked.image
        assert decoded_image(bytes(checked)).tobytes() == again.tobytes()
        assert logged_image(checked) == logged_image(bytes(checked))
    assert served_image(sent[-1], None).image.size == (20, 40)  # upright: the EXIF orientation applied
