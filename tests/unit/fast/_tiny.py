"""What the fast unit tests share: models whose answers are known exactly, small tables, and in-memory
stores. Nothing here trains a real model or touches the disk, so each test takes milliseconds."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.clock import SimulatedClock
from tidal.core.entities import ModelState, ModelVersion
from tidal.registry import Registry
from tidal.storage.artifacts import FsspecArtifactStore
from tidal.storage.memory import MemoryMetadataStore

T0 = datetime(2025, 1, 1, tzinfo=UTC)
KINDS = {"x": "integer"}


def parity_rows(xs: Iterable[int]) -> pd.DataFrame:
    """One row per ``x`` with its class ``y = x % 2``: a problem a :class:`ParityModel` answers exactly."""
    xs = list(xs)
    return pd.DataFrame({"x": xs, "y": [x % 2 for x in xs]})


class ParityModel:
    """A classifier that answers ``x % 2`` except on the ``wrong`` values of ``x``, where it answers the
    other class: its accuracy on any rows is known before it is scored."""

    classes_ = np.array([0, 1])

    def __init__(self, wrong: Iterable[int] = ()) -> None:
        self.wrong = frozenset(wrong)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        x = X["x"].to_numpy()
        return np.array([(v + (v in self.wrong)) % 2 for v in x])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        pred = self.predict(X)
        return np.column_stack([1.0 - pred, pred]).astype(float)


class OffsetModel:
    """A regressor that answers ``2 * x + offset`` for rows whose target is ``2 * x``: its RMSE and MAE are
    ``abs(offset)``."""

    def __init__(self, offset: float) -> None:
        self.offset = offset

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return 2.0 * X["x"].to_numpy(dtype=float) + self.offset


def doubled_rows(xs: Iterable[int]) -> pd.DataFrame:
    """One row per ``x`` with the target ``y = 2 * x``."""
    xs = list(xs)
    return pd.DataFrame({"x": xs, "y": [2.0 * x for x in xs]})


def registry() -> Registry:
    """A registry over a fresh in-memory metadata store and an in-memory artifact store of its own."""
    return Registry(MemoryMetadataStore(), FsspecArtifactStore(f"memory://tidal-fast-{uuid.uuid4().hex}"),
                    SimulatedClock(T0))


def version(name: str = "m", *, state: ModelState = ModelState.VALIDATED, **kw: Any) -> ModelVersion:
    """A model version to register (its number is assigned by the store)."""
    fields: dict[str, Any] = dict(name=name, version=0, state=state, created_at=T0, run_id=uuid.uuid4().hex,
                                  artifact_digest="a" * 64, format="skops", task="classification")
    fields.update(kw)
    return ModelVersion(**fields)
