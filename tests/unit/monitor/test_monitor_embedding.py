"""Drift on a network's own embedding (issue #13, point 5): a small cnn trained on scikit-learn's digits, the
principal components of its penultimate layer fitted on half of the digits, and the monitor's own tests on
them: the other half of the same digits drifts on no component; inverted or turned digits drift on every one.
Also where the window's images come from, and the models that have no embedding."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline

from tests.images_data import digits
from tidal.data.images.prepare import ImagePreprocessor
from tidal.data.images.serving import logged_image
from tidal.monitor.drift import detect_drift
from tidal.monitor.embedding import (
    COMPONENTS,
    EmbeddingCache,
    add_embedding,
    embedder_of,
    embedding_panel,
    fit_embedding,
    window_images,
)

torch = pytest.importorskip("torch")

NAMES = [f"image.emb{k + 1}" for k in range(COMPONENTS)]


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def model() -> Pipeline:
    """The digits example's cnn, trained 2 epochs on every other digit (a second or two)."""
    from tidal.nn import TorchClassifier

    images, labels = digits()
    frame = pd.DataFrame({"image": [_png(images[i]) for i in range(0, 1797, 2)]})
    prep = ImagePreprocessor(color="grey").fit(frame)
    net = TorchClassifier(module="cnn", module_params={"channels": [8, 16], "hidden": 32}, epochs=2,
                          input_shape=list(prep.image_shape_), random_state=0)
    return Pipeline([("prepare", prep), ("model", net)]).fit(frame, labels[::2])


def _judge(model: Pipeline, reference: list[bytes], window: list[bytes]) -> dict[str, bool]:
    embed = embedder_of(model, "image")
    assert embed is not None
    embedding = fit_embedding("image", reference, embed)
    assert embedding is not None and embedding.names == NAMES and embedding.width == 32
    frame = pd.DataFrame({"image": window})
    ref, frame, judged = add_embedding(embedding, {}, frame, [], ["image"])
    assert judged == NAMES and set(NAMES) <= set(ref) and frame[NAMES].notna().all().all()
    drift = detect_drift({"columns": ref}, frame, columns=judged).to_dict()
    panel = embedding_panel(embedding, frame, judged, drift)
    assert [row["name"] for row in panel] == NAMES and all(abs(row["reference"]) < 1e-6 for row in panel)
    return {c["column"]: bool(c["drifted"]) for c in drift["columns"]}


def test_the_same_digits_do_not_drift_on_the_embedding_and_changed_ones_do(model: Pipeline) -> None:
    images, _ = digits()
    reference = [_png(images[i]) for i in range(0, 1797, 2)]
    # the reference against itself: two halves of the same digits
    assert not any(_judge(model, reference[::2], reference[1::2]).values())
    # a window of unseen digits from the same writers: no drift either
    unseen = [_png(images[i]) for i in range(1, 1797, 6)]
    assert not any(_judge(model, reference, unseen).values())
    # inverted (white on black becomes black on white), or turned a quarter turn: the network sees other inputs
    inverted = [_png(255 - images[i]) for i in range(1, 1797, 6)]
    assert all(_judge(model, reference, inverted).values())
    turned = [_png(np.rot90(images[i]).copy()) for i in range(1, 1797, 6)]
    assert all(_judge(model, reference, turned).values())


def test_the_embedding_is_the_input_of_the_last_linear_layer(model: Pipeline) -> None:
    images, _ = digits()
    X = model[:-1].transform(pd.DataFrame({"image": [_png(images[i]) for i in range(5)]}))
    net = model[-1]
    seen = net.embed(X)
    last = [m for m in net.module_.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.inference_mode():
        logits = last(torch.from_numpy(seen)).numpy()
    assert seen.shape == (5, 32) and np.allclose(logits, net._outputs(X), atol=1e-5)


def test_models_without_an_embedding_have_none() -> None:
    from tidal.nn.training import penultimate

    mlp = Pipeline([("prepare", ImagePreprocessor()), ("model", MLPClassifier(max_iter=5))])
    assert embedder_of(mlp, "image") is None and embedder_of(object(), "image") is None
    conv = torch.nn.Sequential(torch.nn.Unflatten(1, (1, 8, 8)), torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    assert penultimate(conv, np.zeros((3, 64), dtype=np.float32)) is None


def test_window_images_come_from_the_artifact_store_else_a_whole_thumbnail(tmp_path: Path) -> None:
    images, _ = digits()
    small = _png(images[0])
    large = _png(np.kron(images[1], np.ones((8, 8), dtype=np.uint8)))  # 64x64: its thumbnail is 32x32
    stored = {logged_image(large)["sha256"]: large}
    values = [small, logged_image(small), logged_image(large), {"sha256": "0" * 64, "size": [64, 64],
                                                                 "thumbnail": logged_image(large)["thumbnail"]},
              None, "not an image"]
    out = window_images(values, stored.get)
    assert out[0] == small and out[2] == large and out[3] is None and out[4] is None and out[5] is None
    # a digit is its own thumbnail: the same canonical PNG, so the same input to the model
    assert out[1] == small
    assert base64.b64decode(logged_image(small)["thumbnail"]) == small


def test_the_cache_keeps_the_last_versions() -> None:
    cache = EmbeddingCache()
    made: list[int] = []
    for version in (1, 1, 2, 3, 1):
        cache.get(("digits", version), lambda: made.append(version))  # noqa: B023 - called at once
    assert made == [1, 2, 3, 1] and list(cache.entries) == [("digits", 3), ("digits", 1)]


def test_a_window_that_cannot_be_embedded_is_said_and_the_rest_is_judged() -> None:
    from datetime import UTC, datetime

    from tests.unit.monitor._synthetic import classifier_rows, predictions_for, toy_version
    from tidal.data.profile import profile_column
    from tidal.monitor import build_report
    from tidal.monitor.embedding import Embedding
    from tidal.spec.model import MonitorSpec

    def broken(images: object) -> np.ndarray:
        raise ValueError("the network refused them")

    embedding = Embedding(column="image", embed=broken, mean=np.zeros(2), vectors=np.eye(2)[:1],
                          reference={"image.emb1": profile_column(pd.Series(np.arange(50.0)))}, images=50, width=2)
    frame = classifier_rows(60, 1)
    frame["image"] = [_png(digits()[0][i]) for i in range(60)]
    spec = MonitorSpec.model_validate({"drift": {"columns": ["f00", "f01", "image"]}})
    report = build_report(toy_version(), predictions_for(frame), spec, metrics=["accuracy"], report_id="r",
                          now=datetime.now(UTC), embedding=embedding)
    assert "could not be embedded: the network refused them" in report.body["embedding"]["skipped"]
    judged = [c["column"] for c in report.body["drift"]["columns"]]
    assert "f00" in judged and not any(c.startswith("image.emb") for c in judged), judged
