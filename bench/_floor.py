"""The floor of bench/serve.py: the minimal FastAPI endpoint a person would write by hand.

No validation, no prediction log, no metrics: parse the JSON, stack the rows into a NumPy array in
column order, call the estimator's own ``predict_proba``, answer. Run by bench/serve.py as
``uvicorn _floor:app --app-dir bench`` with ``FLOOR_MODEL`` (a skops file) and ``FLOOR_COLUMNS`` (a JSON
list) in the environment.
"""

from __future__ import annotations

import json
import os

import numpy as np
import skops.io as sio
from fastapi import FastAPI, Request

_path = os.environ["FLOOR_MODEL"]
model = sio.load(_path, trusted=sio.get_untrusted_types(file=_path))
columns = json.loads(os.environ["FLOOR_COLUMNS"])
app = FastAPI()


@app.post("/predict")
async def predict(request: Request) -> dict[str, list]:
    rows = (await request.json())["instances"]
    X = np.array([[row[c] for c in columns] for row in rows], dtype=np.float64)
    proba = model.predict_proba(X)
    return {"predictions": model.classes_[proba.argmax(axis=1)].tolist(), "probabilities": proba.tolist()}


@app.get("/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}
