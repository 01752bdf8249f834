"""The backtest's ``online`` baseline: an online learner (river) replayed on the very rows the loop saw.

It is what a user whose labels arrive as a stream would pick instead of tidal, so the backtest prints it
beside ``static``, ``periodic`` and ``last_label``. The learner learns the first part row by row (where
the loop trains its first champion on the same rows), then each replayed row is predicted before its
label is known and learned once its label has arrived, ``backtest.label_delay`` rows later, exactly as
the loop receives feedback.

``backtest.online.model`` names a river class; like ``model.estimator`` it is checked to be what it says
(a river classifier or regressor) before it is called, so a spec cannot run anything else through it.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.errors import DataError, SpecError, TrainingError
from tidal.data.codec import is_missing
from tidal.loop.scoring import plain
from tidal.spec.policy import OnlineSpec

NUMERIC = ("numeric", "integer", "boolean")
INSTALL = "install the online extra: pip install 'tidal[online]' (river)"


@dataclass(frozen=True)
class OnlineLearner:
    """A river class checked against the task, with its params and whether numbers are scaled first."""

    name: str
    cls: type
    params: dict[str, Any]
    scale: bool

    def build(self, numeric: Sequence[str], other: Sequence[str]) -> Any:
        """A fresh learner; numeric columns standardised online first when ``scale`` (river's
        StandardScaler keeps running means, so no row is scaled with statistics from its future), and the
        other columns one-hot encoded (river's OneHotEncoder learns categories as they come): not every
        river learner takes text (the linear leaves of ARFRegressor do not)."""
        from river import compose, preprocessing

        model = self.cls(**self.params)
        parts = []
        if numeric:
            parts.append(_present(numeric) | preprocessing.StandardScaler() if self.scale else _present(numeric))
        if other:
            parts.append(_present(other) | preprocessing.OneHotEncoder())
        if not other and not self.scale:
            return model
        features = parts[0] if len(parts) == 1 else compose.TransformerUnion(*parts)
        return features | model


def _present(keys: Sequence[str]) -> Any:
    """The given features of a row, those it has: river's ``Select`` needs every key, and a missing value
    is left out of the row (river's way of saying unknown)."""
    from river import compose

    wanted = tuple(keys)
    return compose.FuncTransformer(lambda x: {k: x[k] for k in wanted if k in x})


def resolve_learner(spec: OnlineSpec, task: str) -> OnlineLearner:
    """The class ``spec.model`` names, if it is a river classifier (or regressor, for regression tasks);
    a ``SpecError`` naming the key otherwise, before anything of it is called."""
    try:
        from river import base
    except ImportError as exc:
        raise SpecError("backtest.online needs river, which is not installed", hint=INSTALL) from exc
    module_name, _, attr = spec.model.rpartition(".")
    if not module_name.startswith("river.") or not attr:
        raise SpecError(f"backtest.online.model {spec.model!r} is not a river class",
                        hint="name one such as river.forest.ARFClassifier or river.linear_model.LogisticRegression")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise SpecError(f"backtest.online.model {spec.model!r} does not exist in river",
                        hint="check the spelling against river's API reference") from exc
    want = base.Classifier if task == "classification" else base.Regressor
    if not isinstance(cls, type) or not issubclass(cls, want):
        raise SpecError(f"backtest.online.model {spec.model!r} is not a river {want.__name__.lower()}, which a "
                        f"{task} project needs", hint="name a river class for this task")
    return OnlineLearner(spec.model, cls, dict(spec.params), spec.scale)


def _row(values: Mapping[str, Any], numeric: set[str]) -> dict[str, Any]:
    """A river row: numbers as floats, everything else as text; a missing value is left out (river's
    learners treat an absent feature as unknown)."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if is_missing(value):
            continue
        out[key] = float(value) if key in numeric else str(value)
    return out


def replay_online(
    learner: OnlineLearner, data: pd.DataFrame, *, initial: int, end: int, columns: Sequence[str],
    kinds: Mapping[str, str], target: str, label_delay: int,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, float]:
    """Predict rows ``initial..end`` of ``data`` one by one with ``learner``; returns the predictions and the
    seconds it took. Row ``i``'s label is learned before row ``i + label_delay + 1`` is predicted."""
    numeric = [c for c in columns if kinds.get(c) in NUMERIC]
    other = [c for c in columns if c not in set(numeric)]
    model = learner.build(numeric, other)
    rows = [_row(r, set(numeric)) for r in data.loc[:, list(columns)].iloc[:end].to_dict(orient="records")]
    labels = [plain(v) for v in data[target].iloc[:end].tolist()]
    started = time.perf_counter()
    out: list[Any] = []
    learned, i = 0, 0
    try:
        for learned in range(initial):
            model.learn_one(rows[learned], labels[learned])
        learned = initial
        for i in range(initial, end):
            guess = model.predict_one(rows[i])
            if guess is None:  # nothing learned yet that predicts: say the most recent label
                guess = labels[learned - 1]
            out.append(guess)
            while learned <= i - label_delay:  # the labels that have arrived by now
                model.learn_one(rows[learned], labels[learned])
                learned += 1
            if progress is not None and (i - initial) % 1000 == 0:
                progress(i - initial, end - initial)
    except Exception as exc:  # river's own errors: the baseline cannot run on these rows, said in one line
        raise TrainingError(f"the online baseline {learner.name} failed on row {max(i, learned)}: "
                            f"{type(exc).__name__}: {exc}",
                            hint="name another river learner in backtest.online, or set it to null") from exc
    predictions = np.empty(len(out), dtype=object)
    predictions[:] = out
    if not len(out):
        raise DataError("the online baseline has no rows to replay", hint="leave rows after backtest.initial_rows")
    return predictions, time.perf_counter() - started


__all__ = ["OnlineLearner", "replay_online", "resolve_learner"]
