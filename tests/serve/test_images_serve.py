"""Serving an image model (issue #13, point 4) against a real ``tidal serve``: scikit-learn's digits as PNG class
folders, ``tidal run`` (an MLPClassifier), then ``/predict``, ``/invocations`` and the v2 protocol (tritonclient)
with base64 PNG and JPEG, nested arrays and tensors: the answers are the in-memory model's on the images as
collection makes them canonical; feedback is stored; the log keeps a digest and a thumbnail, not the image; a
bad image is a 4xx naming the row and what is wrong, and nothing is logged for it; the SDK predicts alike."""

from __future__ import annotations

import base64
import hashlib
import io
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import tritonclient.http as triton
from PIL import Image

from tests.images_data import digits, digits_spec, write_folders
from tests.serve.server import ServerProcess
from tests.serve.test_bad_input import assert_error
from tidal.data.images.codec import canonicalise

SPEC = digits_spec()
#: Images the tests send: rows of the digits not among the 8 per class the model is trained on.
SENT = (500, 901, 1200, 1700)


@pytest.fixture(scope="module")
def digits_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tidal import Workspace

    root = tmp_path_factory.mktemp("images") / "digits"
    write_folders(root / "data" / "train", per_class=8)
    (root / "tidal.yaml").write_text(SPEC)
    with Workspace.open(root) as ws:
        assert ws.run().model.version == 1
    return root


@pytest.fixture
def project(digits_template: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "digits"
    shutil.copytree(digits_template, dest)
    return dest


@pytest.fixture
def server(project: Path) -> Iterator[ServerProcess]:
    with ServerProcess(project).start() as proc:
        yield proc


def encoded(pixels: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def expected(project: Path, images: list[bytes]) -> tuple[list[Any], list[list[float]]]:
    """The registered model's answers, in memory, on ``images`` made canonical as collection makes them."""
    from tidal import Workspace

    with Workspace.open(project) as ws:
        model = ws.registry.load(ws.registry.champion("digits"))
    frame = pd.DataFrame({"image": pd.Series([canonicalise(i)[0] for i in images], dtype=object)})
    return model.predict(frame).tolist(), model.predict_proba(frame).tolist()


def logged(project: Path) -> list[Any]:
    from tidal import Workspace

    with Workspace.open(project) as ws:
        return list(ws.predictions.window(model="digits"))


def bomb_png() -> bytes:
    """A real 8x8 PNG whose header claims 9,000 x 9,000 pixels (81 M, over the 40 M limit)."""
    data = encoded(digits()[0][0])
    ihdr = bytearray(data[8:33])  # length, "IHDR", 13 bytes of header, CRC
    ihdr[8:16] = struct.pack(">II", 9000, 9000)
    ihdr[21:25] = struct.pack(">I", zlib.crc32(bytes(ihdr[4:21])))
    return data[:8] + bytes(ihdr) + data[33:]


def test_serves_images_as_the_model_predicts_them_and_logs_a_thumbnail(server: ServerProcess, project: Path) -> None:
    images, labels = digits()
    pngs = [encoded(images[i]) for i in SENT]
    jpegs = [encoded(images[i], "JPEG") for i in SENT]
    want_png, proba_png = expected(project, pngs)
    want_jpeg, proba_jpeg = expected(project, jpegs)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        info = http.get("/model").json()
        assert info["signature"]["columns"] == {"image": "image"}
        assert info["signature"]["images"]["image"] == {"shape": [1, 8, 8], "dtype": "uint8", "size": [8, 8],
                                                        "channels": [1]}
        assert info["inputs"]["images"]["image"]["shape"] == [1, 8, 8]
        assert "base64 PNG/JPEG" in info["inputs"]["accepts"]["image"]
        # the image path (decoded once, the network run once), as it answers as the generic path on the checks
        assert info["serving"]["path"] == "images", info["serving"]
        assert info["serving"]["labels"].startswith("the likeliest class of predict_proba, one pass")

        as_png = http.post("/predict", json={"instances": [{"image": b64(p)} for p in pngs]}).json()
        assert as_png["predictions"] == want_png and as_png["probabilities"] == proba_png
        uri = http.post("/predict", json={"instances": [{"image": "data:image/png;base64," + b64(pngs[0])}]}).json()
        assert uri["probabilities"] == expected(project, pngs[:1])[1]  # one row alone: BLAS rounds it alone
        as_jpeg = http.post("/predict", json={"instances": [{"image": b64(j)} for j in jpegs]}).json()
        assert as_jpeg["predictions"] == want_jpeg and as_jpeg["probabilities"] == proba_jpeg
        # nested arrays (channels, height, width) of 0-255, or (height, width) for grey: the PNG's very pixels
        arrays = [{"image": [images[i].tolist()]} if k % 2 else {"image": images[i].tolist()}
                  for k, i in enumerate(SENT)]
        as_arrays = http.post("/predict", json={"instances": arrays}).json()
        assert as_arrays["probabilities"] == proba_png
        mlflow = http.post("/invocations", json={"dataframe_records": [{"image": b64(p)} for p in pngs]}).json()
        assert mlflow["predictions"] == want_png and mlflow["probabilities"] == proba_png
        # a JPEG of the same pixels answers as the training-time path does on that JPEG (its decoded pixels)
        assert sum(a == str(labels[i]) for a, i in zip(as_png["predictions"], SENT, strict=True)) >= 2

        label = str(labels[SENT[0]])
        stored = http.post("/feedback", json={"prediction_id": as_png["prediction_ids"][0], "label": label})
        assert stored.status_code == 200 and stored.json() == {"stored": 1}

    rows = {p.id: p for p in logged(project)}
    assert len(rows) == 4 * 4 + 1
    first = rows[as_png["prediction_ids"][0]]
    assert first.label == label
    kept = first.inputs["image"]
    canonical = canonicalise(pngs[0])[0]
    assert kept["sha256"] == hashlib.sha256(canonical).hexdigest() and kept["size"] == [8, 8] and kept["mode"] == "L"
    thumb = Image.open(io.BytesIO(base64.b64decode(kept["thumbnail"])))
    assert thumb.format == "PNG" and max(thumb.size) <= 32
    assert np.array_equal(np.asarray(thumb), images[SENT[0]])  # 8x8 is under the thumbnail's size: kept whole
    # the same pixels sent as arrays have the same digest as the PNG
    assert rows[as_arrays["prediction_ids"][0]].inputs["image"]["sha256"] == kept["sha256"]
    from tidal import Workspace

    with Workspace.open(project) as ws:  # the whole image is kept once, by that digest, in the artifact store
        assert ws.artifacts.get(kept["sha256"]) == canonical


def test_thumbnail_is_small_for_a_large_image() -> None:
    from tidal.data.images.serving import logged_image

    big = np.tile(np.arange(256, dtype=np.uint8), (600, 4))  # 1024 x 600 pixels
    kept = logged_image(canonicalise(encoded(big))[0])
    thumb = Image.open(io.BytesIO(base64.b64decode(kept["thumbnail"])))
    assert thumb.size == (32, 19) and kept["size"] == [1024, 600] and len(kept["thumbnail"]) < 2000


def test_bad_images_are_refused_naming_the_row_and_nothing_is_logged(server: ServerProcess, project: Path) -> None:
    images, _ = digits()
    good = b64(encoded(images[SENT[0]]))
    png = encoded(images[SENT[0]])
    cases: list[tuple[Any, tuple[str, ...]]] = [
        (b64(encoded(np.zeros((16, 16), dtype=np.uint8))), ("16x16 pixels; the model takes 8x8",)),
        (b64(png[: len(png) // 2]), ("broken or truncated",)),
        (b64(b"hello, not an image at all"), ("not a PNG or JPEG image",)),
        (b64(encoded(np.zeros((8, 8, 3), dtype=np.uint8))), ("3 channels (RGB)", "trained on images of 1 channel")),
        (b64(bomb_png()), ("9000x9000 is 81,000,000 pixels, over the limit",)),
        ("not base64 ###", ("not base64 text",)),
        ([[0.5] * 8] * 8, ("whole numbers from 0 to 255",)),
        ([[300] * 8] * 8, ("whole numbers from 0 to 255",)),
        ([[0] * 8] * 7, ("the model takes [1, 8, 8]",)),
        ([[0, 1], [2]], ("unequal lengths",)),
        (12, ("expected an image",)),
        (None, ("null is not allowed",)),
    ]
    with httpx.Client(base_url=server.url, timeout=10) as http:
        for value, needles in cases:
            resp = http.post("/predict", json={"instances": [{"image": good}, {"image": value}]})
            assert_error(resp, 422, "instances[1].image: ", *needles)
    assert logged(project) == []


def test_v2_takes_encoded_images_and_pixel_tensors(server: ServerProcess, project: Path) -> None:
    images, _ = digits()
    pngs = [encoded(images[i]) for i in SENT]
    want, proba = expected(project, pngs)
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    meta = client.get_model_metadata("digits")
    assert meta["inputs"] == [{"name": "image", "datatype": "BYTES", "shape": [-1],
                               "parameters": {"pixels": {"datatype": "FP32", "shape": [-1, 1, 8, 8]}}}]
    raw = triton.InferInput("image", [len(pngs)], "BYTES")
    raw.set_data_from_numpy(np.array(pngs, dtype=np.object_), binary_data=True)
    text = triton.InferInput("image", [len(pngs)], "BYTES")
    text.set_data_from_numpy(np.array([b64(p) for p in pngs], dtype=np.object_), binary_data=False)
    pixels = np.stack([images[i] for i in SENT]).astype(np.float32)[:, None, :, :]
    tensors = []
    for binary in (False, True):
        tensor = triton.InferInput("image", list(pixels.shape), "FP32")
        tensor.set_data_from_numpy(pixels, binary_data=binary)
        tensors.append(tensor)
    for how, tensor in [("BYTES binary", raw), ("BYTES JSON", text), ("FP32 JSON", tensors[0]),
                        ("FP32 binary", tensors[1])]:
        result = client.infer("digits", [tensor])
        got = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict").tolist()]
        assert got == want, how
        assert result.as_numpy("probabilities").tolist() == proba, how
    assert len(logged(project)) == 4 * len(SENT)

    broken = triton.InferInput("image", [1], "BYTES")
    broken.set_data_from_numpy(np.array([pngs[0][:30]], dtype=np.object_), binary_data=True)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        halves = pixels / 2
        body = {"inputs": [{"name": "image", "datatype": "FP32", "shape": list(halves.shape),
                            "data": halves.ravel().tolist()}]}
        assert_error(http.post("/v2/models/digits/infer", json=body), 400, "whole numbers from 0 to 255")
        flat = {"inputs": [{"name": "image", "datatype": "FP32", "shape": [4, 64], "data": [0.0] * 256}]}
        assert_error(http.post("/v2/models/digits/infer", json=flat), 400, "shape [rows, channels, height, width]")
    try:
        client.infer("digits", [broken])
    except triton.InferenceServerException as exc:
        assert "broken or truncated" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("a truncated image was answered")
    assert len(logged(project)) == 4 * len(SENT)


def test_workspace_predict_on_an_image_model(project: Path) -> None:
    from tidal import Workspace
    from tidal.predict.errors import ApiError

    images, labels = digits()
    pngs = [encoded(images[i]) for i in SENT]
    want, proba = expected(project, pngs)
    with Workspace.open(project) as ws:
        answer = ws.predict([{"image": p} for p in pngs])  # in process, encoded bytes are taken as they are
        assert answer.predictions == want and answer.probabilities == proba
        again = ws.predict(pd.DataFrame({"image": [b64(p) for p in pngs]}))
        assert again.probabilities == proba
        assert ws.feedback(answer.prediction_ids[1], str(labels[SENT[1]])) == 1
        with pytest.raises(ApiError, match=r"instances\[0\]\.image: a broken or truncated image"):
            ws.predict([{"image": pngs[0][:40]}])
        assert len(ws.predictions.window(model="digits")) == 8


def test_a_retrain_rebuilds_labelled_images_from_the_artifact_store(project: Path) -> None:
    from tidal import Workspace
    from tidal.core.errors import DataError
    from tidal.loop.rebuild import labelled_frame, training_frame

    images, labels = digits()
    pngs = [encoded(images[i], "JPEG") for i in SENT]
    with Workspace.open(project) as ws:
        answer = ws.predict([{"image": b64(p)} for p in pngs])
        ws.feedback([{"prediction_id": pid, "label": str(labels[i])}
                     for pid, i in zip(answer.prediction_ids[:3], SENT[:3], strict=True)])
        frame, note = training_frame(ws.context())
        assert "3 labelled predictions" in note and len(frame) == 80 + 3
        rebuilt = frame.tail(3)
        assert rebuilt["image"].tolist() == [canonicalise(p)[0] for p in pngs[:3]]  # the served images, whole
        assert rebuilt["digit"].tolist() == [str(labels[i]) for i in SENT[:3]]
        labelled = ws.predictions.window(model="digits", labelled=True)
        with pytest.raises(DataError, match="the prediction log keeps only its digest and a thumbnail"):
            labelled_frame(labelled, frame, target="digit", time=None, images=None)


def test_a_stored_image_needs_no_write_and_a_new_one_must_be_stored_before_it_is_answered(
        server: ServerProcess, project: Path) -> None:
    """A request of a few images looks on the event loop for those the local store holds already and writes
    only the others (tidal.serve.service.INLINE_IMAGE_CHECKS): an image sent before is answered and logged
    even when nothing could be written now; a new image that cannot be stored is a 503 and is not logged."""
    from tidal import Workspace

    images, _ = digits()
    sent, new = encoded(images[SENT[1]]), encoded(images[SENT[2]])
    digest = hashlib.sha256(canonicalise(new)[0]).hexdigest()
    with httpx.Client(base_url=server.url, timeout=10) as http:
        first = http.post("/predict", json={"instances": [{"image": b64(sent)}]})
        assert first.status_code == 200, first.text
        with Workspace.open(project) as ws:
            assert ws.artifacts.exists(hashlib.sha256(canonicalise(sent)[0]).hexdigest())
            target = Path(ws.artifacts.path(digest))
        if target.parent.exists():  # another image's shard: a folder where the new image's file would go
            target.mkdir()
        else:  # a file where the new image's shard folder would go
            target.parent.write_bytes(b"in the way")
        before = len(logged(project))
        again = http.post("/predict", json={"instances": [{"image": b64(sent)}]})
        assert again.status_code == 200 and again.json()["predictions"] == first.json()["predictions"]
        refused = http.post("/predict", json={"instances": [{"image": b64(sent)}, {"image": b64(new)}]})
        assert_error(refused, 503, "could not be stored")
    after = logged(project)
    assert len(after) == before + 1  # the repeated image's row; nothing of the refused request
    with Workspace.open(project) as ws:
        assert not ws.artifacts.exists(digest)
