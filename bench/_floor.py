"""The floor of bench/serve.py: the minimal FastAPI endpoint a person would write by hand.

No validation, no prediction log, no metrics: parse the JSON, stack the rows into a NumPy array in
column order, call the estimator's own ``predict_proba``, answer. Run by bench/serve.py as
``uvicorn _floor:app --app-dir bench`` with ``FLOOR_COLUMNS`` (a JSON list) and the estimator in the
environment: ``FLOOR_MODEL`` (a skops file), or ``FLOOR_PROJECT``, a tidal project whose champion's
estimator (an XGBoost or LightGBM model, which skops does not store) is the one served, taken from the
registry at start-up; tidal plays no part in answering a request.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
import skops.io as sio
from fastapi import FastAPI, Request


def _load() -> Any:
    project = os.environ.get("FLOOR_PROJECT")
    if project:
        from tidal import Workspace

        with Workspace.open(project) as ws:
            return ws.registry.load(ws.registry.champion("cancer")).named_steps["model"]
    path = os.environ["FLOOR_MODEL"]
    return sio.load(path, trusted=sio.get_untrusted_types(file=path))


model = _load()
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
