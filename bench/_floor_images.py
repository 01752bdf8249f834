"""The floor of bench/images.py: the minimal FastAPI + torch endpoint a person would write for an image model.

No validation, no prediction log, no metrics: parse the JSON, decode each base64 PNG with Pillow, scale it
to [0, 1] and normalise it by the training images' mean and std, stack the images into one float32 tensor,
run the torch module once, answer the softmax's argmax. The module, the class labels and the mean and std
are those of the champion of ``FLOOR_PROJECT`` (a tidal project), taken from the registry at start-up
through tidal's torch flavor, so this is the very network tidal serves; tidal plays no part in answering a
request. ``FLOOR_COLUMN`` names the image field of an instance (``image``). Run by bench/images.py as
``uvicorn _floor_images:app --app-dir bench``.
"""

from __future__ import annotations

import base64
import io
import os
from typing import Any

import numpy as np
import torch
from fastapi import FastAPI, Request
from PIL import Image


def _load() -> tuple[Any, Any, np.ndarray, np.ndarray, str]:
    from tidal import Workspace

    with Workspace.open(os.environ["FLOOR_PROJECT"]) as ws:
        pipeline = ws.registry.load(ws.registry.champion(os.environ.get("FLOOR_MODEL_NAME", "digits")))
    prep, est = pipeline.named_steps["prepare"], pipeline.named_steps["model"]
    mean = np.asarray(prep.mean_, dtype=np.float32)[:, None, None]
    std = np.asarray(prep.std_, dtype=np.float32)[:, None, None]
    return est.module_.eval(), est.classes_, mean, std, prep.mode_


module, classes, mean, std, mode = _load()
column = os.environ.get("FLOOR_COLUMN", "image")
torch.set_num_threads(1)  # as tidal (n_jobs: 1): a small network is fastest on one thread
app = FastAPI()


def _pixels(text: str) -> np.ndarray:
    image = Image.open(io.BytesIO(base64.b64decode(text))).convert(mode)
    arr = np.asarray(image, dtype=np.float32) / 255.0
    arr = arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)
    return (arr - mean) / std


@app.post("/predict")
async def predict(request: Request) -> dict[str, list]:
    rows = (await request.json())["instances"]
    x = torch.from_numpy(np.stack([_pixels(row[column]) for row in rows]).reshape(len(rows), -1))
    with torch.inference_mode():
        proba = torch.softmax(module(x).double(), dim=1).numpy()
    return {"predictions": classes[proba.argmax(axis=1)].tolist(), "probabilities": proba.tolist()}


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}
