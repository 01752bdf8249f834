"""``ImagePreprocessor``: statistics from the training images only, augmentation only while fitting and seeded,
flat float32 rows with the (C, H, W) shape kept, and a skops round trip that gives the same numbers."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from tests.images_data import digits, picks
from tidal.core.errors import DataError
from tidal.data.images.prepare import ImagePreprocessor, build_image_preprocessor
from tidal.data.prepare import build_preprocessor
from tidal.spec.model import PrepareSpec
from tidal.train.flavors import flavor_for
from tidal.train.flavors.sklearn import check_trusted


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    images, labels = digits()
    rows = picks(10)
    df = pd.DataFrame({"image": [_png(images[i]) for i in rows], "digit": labels[rows]})
    train, holdout = df.iloc[::2].reset_index(drop=True), df.iloc[1::2].reset_index(drop=True)
    return train, holdout


def _pixels(df: pd.DataFrame) -> np.ndarray:
    return np.stack([np.asarray(Image.open(io.BytesIO(b))) for b in df["image"]]).astype(np.float64) / 255


def test_statistics_come_from_the_training_images_only(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, holdout = frames
    prep = ImagePreprocessor().fit(train[["image"]])
    assert prep.image_shape_ == (1, 8, 8) and prep.mode_ == "L" and prep.size_ == (8, 8)
    assert prep.mean_ == pytest.approx([_pixels(train).mean()]) and prep.std_ == pytest.approx([_pixels(train).std()])
    assert prep.mean_[0] != pytest.approx(_pixels(holdout).mean())
    rows = prep.transform(holdout[["image"]])
    assert rows.dtype == np.float32 and rows.shape == (len(holdout), 64)
    expected = (_pixels(holdout).reshape(len(holdout), -1) - prep.mean_[0]) / prep.std_[0]
    np.testing.assert_allclose(rows, expected, rtol=1e-5, atol=1e-5)
    # the rows reshape back to images (what a CNN does with image_shape_)
    np.testing.assert_allclose(rows.reshape(-1, *prep.image_shape_)[0, 0] * prep.std_[0] + prep.mean_[0],
                               _pixels(holdout)[0], atol=1e-5)


def test_resize_and_colour(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = frames
    prep = ImagePreprocessor(size=(16, 12), color="rgb", normalize=False).fit(train)
    assert prep.image_shape_ == (3, 12, 16)
    rows = prep.transform(train)
    assert rows.shape == (len(train), 3 * 12 * 16) and rows.min() >= 0.0 and rows.max() <= 1.0
    cube = rows.reshape(-1, 3, 12, 16)
    np.testing.assert_array_equal(cube[:, 0], cube[:, 2])  # grey made RGB: three equal channels
    raw = ImagePreprocessor(scale=False, normalize=False).fit(train).transform(train)
    assert raw.max() > 200  # not divided by 255


def test_augmentation_happens_in_fit_only_and_is_seeded(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, holdout = frames
    plain = ImagePreprocessor().fit(train)
    augmenting = ImagePreprocessor(flip=True, rotate=10, crop=1, seed=3)
    fitted_rows = augmenting.fit_transform(train)
    assert not np.allclose(fitted_rows, plain.transform(train))  # the training rows were changed
    again = ImagePreprocessor(flip=True, rotate=10, crop=1, seed=3).fit_transform(train)
    np.testing.assert_array_equal(fitted_rows, again)  # the same seed: the same copies
    other = ImagePreprocessor(flip=True, rotate=10, crop=1, seed=4).fit_transform(train)
    assert not np.array_equal(fitted_rows, other)
    # prediction never augments, and the statistics are the plain training images'
    np.testing.assert_array_equal(augmenting.transform(holdout), plain.transform(holdout))
    np.testing.assert_array_equal(augmenting.transform(holdout), augmenting.transform(holdout))
    # without augmentation, fit_transform is fit then transform
    np.testing.assert_array_equal(ImagePreprocessor().fit_transform(train), plain.transform(train))


def test_in_a_pipeline_and_through_skops_bit_for_bit(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, holdout = frames
    prep = build_preprocessor(PrepareSpec.model_validate({"images": {"augment": {"flip": True}}}),
                              {"image": "image"}, ["image"], seed=0)
    assert isinstance(prep, ImagePreprocessor) and prep.flip and prep.seed == 0
    pipe = Pipeline([("prepare", prep), ("model", LogisticRegression(max_iter=300))])
    pipe.fit(train[["image"]], train["digit"])
    assert pipe.score(holdout[["image"]], holdout["digit"]) > 0.6
    flavor = flavor_for(pipe)
    data = flavor.save(pipe)
    assert "tidal.data.images.prepare.ImagePreprocessor" in check_trusted(data)  # read, not built
    loaded = flavor.load(data)
    np.testing.assert_array_equal(loaded.predict_proba(holdout[["image"]]), pipe.predict_proba(holdout[["image"]]))
    np.testing.assert_array_equal(loaded.named_steps["prepare"].transform(holdout),
                                  pipe.named_steps["prepare"].transform(holdout))
    got, want = loaded.named_steps["prepare"], pipe.named_steps["prepare"]
    assert (got.image_shape_, got.size_, got.mode_, got.get_params()) == (
        want.image_shape_, want.size_, want.mode_, want.get_params())
    np.testing.assert_array_equal(got.mean_, want.mean_)


def test_one_image_column_and_nothing_else() -> None:
    with pytest.raises(DataError, match="one image column and nothing else; the inputs are image, path"):
        build_preprocessor(PrepareSpec(), {"image": "image", "path": "categorical"}, ["image", "path"])
    spec = PrepareSpec.model_validate({"images": {"size": [28, 28], "color": "grey", "augment": {"rotate": 5}}})
    prep = build_image_preprocessor(spec.images, "picture", seed=7)
    assert (prep.column, prep.size, prep.color, prep.rotate, prep.seed) == ("picture", (28, 28), "grey", 5.0, 7)


def test_a_broken_image_at_prediction_is_one_line(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    train, _ = frames
    prep = ImagePreprocessor().fit(train)
    with pytest.raises(DataError, match="image 1 cannot be read: not a PNG or JPEG image"):
        prep.transform(pd.DataFrame({"image": [train["image"][0], b"hello"]}))


def test_base64_text_is_read_as_the_bytes_it_encodes(frames: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    import base64

    train, holdout = frames
    prep = ImagePreprocessor().fit(train)
    texts = [base64.b64encode(b).decode() for b in holdout["image"]]
    texts[0] = "data:image/png;base64," + texts[0]
    np.testing.assert_array_equal(prep.transform(pd.DataFrame({"image": texts})), prep.transform(holdout))
    with pytest.raises(DataError, match="image 0 cannot be read: text that is not base64-encoded image bytes"):
        prep.transform(pd.DataFrame({"image": ["not base64 !"]}))
