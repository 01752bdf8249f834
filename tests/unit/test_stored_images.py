"""What a server remembers of the images it stored (tidal.predict.records.StoredImages), and the lean parts of
a torch model's forward pass on a served request (one chunk, numpy's softmax): the same numbers as before."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tidal.predict.records import StoredImages, put_images, store_images, unstored_images
from tidal.storage.artifacts import FsspecArtifactStore


class CountingStore(FsspecArtifactStore):
    """A real local artifact store that counts the look-ups and writes it is asked for."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.exists_calls = 0
        self.put_calls = 0

    def exists(self, digest: str) -> bool:
        self.exists_calls += 1
        return super().exists(digest)

    def put(self, data: bytes) -> str:
        self.put_calls += 1
        return super().put(data)


def png(value: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), value).save(buffer, format="PNG")
    return buffer.getvalue()


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def state() -> Any:
    return SimpleNamespace(schema=SimpleNamespace(images=("image",)))


@pytest.fixture
def store(tmp_path: Path) -> CountingStore:
    return CountingStore(str(tmp_path / "artifacts"))


def test_put_images_skips_known_images_and_remembers_those_it_stored(store: CountingStore) -> None:
    known = StoredImages()
    a, b = png(1), png(2)
    assert put_images(store, [a, b], known=known) == 2
    assert store.put_calls == 2 and digest(a) in known and digest(b) in known
    assert store.get(digest(a)) == a  # really stored
    asked = store.exists_calls
    assert put_images(store, [a, b], known=known) == 0
    assert store.put_calls == 2 and store.exists_calls == asked  # nothing asked of the store for what it holds
    assert store_images(store, state(), [{"image": a}, {"image": png(3)}], known=known) == 1
    assert store.put_calls == 3 and store.exists(digest(png(3)))


def test_unstored_images_looks_up_an_image_once_and_never_remembers_a_missing_one(store: CountingStore) -> None:
    known = StoredImages()
    stored, missing = png(10), png(20)
    store.put(stored)
    store.exists_calls = 0
    rows = [{"image": stored}, {"image": missing}]
    assert unstored_images(store, state(), rows, known=known) == [missing]
    assert store.exists_calls == 2
    assert digest(stored) in known and digest(missing) not in known
    assert unstored_images(store, state(), rows, known=known) == [missing]
    assert store.exists_calls == 3  # only the missing image is looked up again
    assert unstored_images(store, state(), rows) == [missing]  # without a memory: both looked up
    assert store.exists_calls == 5


def test_stored_images_forgets_everything_past_its_limit() -> None:
    known = StoredImages(limit=2)
    known.add("a")
    known.add("b")
    assert "a" in known and len(known) == 2
    known.add("c")
    assert "a" not in known and "c" in known and len(known) == 1


def test_softmax_gives_scipys_numbers_exactly() -> None:
    from scipy.special import softmax as scipy_softmax

    from tidal.nn.estimators import softmax

    z = np.random.default_rng(0).normal(scale=20, size=(257, 10))
    assert np.array_equal(softmax(z), scipy_softmax(z, axis=1))
    assert np.array_equal(softmax(z[:1]), scipy_softmax(z[:1], axis=1))


def test_forward_of_one_chunk_and_of_many_gives_the_module_outputs(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    import tidal.nn.training as training

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 3))
    X = np.random.default_rng(1).normal(size=(10, 4)).astype(np.float32)
    with training.threads(1), torch.inference_mode():
        want = module.eval()(torch.from_numpy(X)).numpy()
        chunked = np.concatenate([module(torch.from_numpy(X[i:i + 3])).numpy() for i in range(0, 10, 3)])
    module.train()
    one = training.forward(module, X)
    assert not module.training  # put in eval mode
    assert one.dtype == np.float32 and one.shape == (10, 3) and np.array_equal(one, want)
    monkeypatch.setattr(training, "CHUNK", 3)  # four chunks, concatenated
    assert np.array_equal(training.forward(module, X), chunked)
