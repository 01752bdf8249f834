"""A window of logged predictions as a table, and the class names both sides of a comparison share.

``frame_of(predictions, mv)`` gives one row per prediction: the inputs as columns (a column absent from
every row stays absent, so drift can report it missing), then ``__prediction`` (the output),
``__score`` (classifiers: the positive-class probability for two classes, the top probability for
more, as the validation-time profile has it), ``__proba`` (the logged probabilities, in
``signature.classes`` order, or None), ``__label`` (the feedback, or None) and ``__time``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from tidal.core.entities import ModelVersion, Prediction
from tidal.data.codec import class_key, class_keys

PREDICTION, SCORE, PROBA, LABEL, TIME = "__prediction", "__score", "__proba", "__label", "__time"
RESERVED = (PREDICTION, SCORE, PROBA, LABEL, TIME)


def inputs_frame(predictions: Sequence[Prediction]) -> pd.DataFrame:
    """The inputs of ``predictions`` as a table: one row each, one column per input name (a column absent
    from every row stays absent; missing values are NaN)."""
    records = [p.inputs if isinstance(p.inputs, dict) else {} for p in predictions]
    return pd.DataFrame.from_records(records) if records else pd.DataFrame(index=pd.RangeIndex(0))


def frame_of(predictions: Sequence[Prediction], mv: ModelVersion | None = None) -> pd.DataFrame:
    """The window as a DataFrame: inputs as columns, plus ``__prediction``, ``__score``, ``__proba``,
    ``__label`` and ``__time`` (see the module docstring). Inputs outside ``mv``'s signature are kept."""
    frame = inputs_frame(predictions)
    frame = frame.drop(columns=[c for c in RESERVED if c in frame.columns])
    if mv is not None:
        # signature columns first, in signature order, for stable reports; extras after
        order = [c for c in mv.signature.columns if c in frame.columns]
        frame = frame[order + [c for c in frame.columns if c not in order]]
    frame[PREDICTION] = pd.Series([p.output for p in predictions], dtype=object, index=frame.index)
    frame[SCORE] = np.asarray([score_of(p.proba) for p in predictions], dtype="float64")
    frame[PROBA] = pd.Series([p.proba for p in predictions], dtype=object, index=frame.index)
    frame[LABEL] = pd.Series([p.label for p in predictions], dtype=object, index=frame.index)
    frame[TIME] = pd.Series([p.time for p in predictions], dtype=object, index=frame.index)
    return frame


def score_of(proba: Sequence[float] | None) -> float:
    """The score the validation profile holds: P(last class) for two classes, the top probability for
    more, NaN when there are no probabilities."""
    if not proba:
        return math.nan
    try:
        values = [float(v) for v in proba]
    except (TypeError, ValueError):
        return math.nan
    if len(values) == 2:
        return values[1]
    return max(values)


__all__ = ["LABEL", "PREDICTION", "PROBA", "RESERVED", "SCORE", "TIME", "class_key", "class_keys", "frame_of",
           "inputs_frame", "score_of"]
