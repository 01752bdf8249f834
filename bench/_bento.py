"""The BentoML anchor of bench/serve.py: the service a BentoML user would write for this model.

A ``@bentoml.service`` whose ``predict`` API takes the same ``{"instances": [...]}`` body as tidal (BentoML
validates it against the type annotation: a list of column → number maps), stacks the rows into a NumPy
array in column order and calls the estimator's ``predict_proba``. The estimator is the very one the other
servers use (the skops file in ``FLOOR_MODEL``; its columns in ``FLOOR_COLUMNS``). One worker, access log
off (as for the other servers). BentoML lives in its own environment, ``.venv-bentoml`` (bench/run.sh
makes it, with the bench environment's scikit-learn version), because its pins clash with MLflow's; it is
started by bench/serve.py as ``bentoml serve _bento:Cancer`` from this folder.
"""

from __future__ import annotations

import json
import os
from typing import Any

import bentoml
import numpy as np


@bentoml.service(workers=1, logging={"access": {"enabled": False}})
class Cancer:
    def __init__(self) -> None:
        import skops.io as sio

        path = os.environ["FLOOR_MODEL"]
        self.model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
        self.columns = json.loads(os.environ["FLOOR_COLUMNS"])

    @bentoml.api
    def predict(self, instances: list[dict[str, float]]) -> dict[str, Any]:
        X = np.array([[row[c] for c in self.columns] for row in instances], dtype=np.float64)
        proba = self.model.predict_proba(X)
        return {"predictions": self.model.classes_[proba.argmax(axis=1)].tolist(), "probabilities": proba.tolist()}
