"""Label features: inputs built from the labels the loop already knows when a row is predicted.

On data whose labels arrive as a stream (Elec2: the label of a half-hour is known before the next one),
the newest labels say much about the next one. ``prepare.label_features`` declares them::

    prepare:
      label_features: {lags: [1, 2], windows: [10, 48]}

and tidal adds these columns to the model's inputs:

=====================  ==========================================================================
``label_lag_K``        the K-th newest known label (a classifier: the class as text, categorical;
                       a regressor: the number)
``label_share_N``      a binary classifier: the share of its second class among the newest N labels
``label_share_N_C``    a multiclass classifier: the share of class C among the newest N labels
``label_mean_N``       a regressor: the mean of the newest N labels
=====================  ==========================================================================

They are computed by one function, :func:`_compute`, in every place: over a table in time order for
training, the backtest and the periodic baseline (:func:`add_label_features`: row i sees the labels of
rows before ``i - delay``), and over the newest labels of the prediction log when the server answers
(:func:`features_from_labels`). A row with too little history gets missing values (filled by ``prepare``'s
imputer), never a value from the future. With ``relative: true`` a regressor learns the change from
``label_lag_1`` rather than the label (:mod:`tidal.train.relative`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from tidal.core.errors import DataError
from tidal.core.signature import LABEL_FEATURE
from tidal.data.codec import class_key, class_keys, target_array
from tidal.data.timecol import parse_times
from tidal.spec.model import LabelFeaturesSpec

#: The prefix every label feature's name starts with.
PREFIX = "label_"


def _keys(classes: Sequence[Any] | None) -> list[str]:
    return sorted({class_key(c) for c in classes or []})


def label_classes(target: pd.Series) -> list[Any]:
    """The distinct classes of a target column (its missing labels left out), for :func:`feature_kinds` and
    :func:`add_label_features`: computed once by the pipeline and handed to both."""
    return [v for v in pd.unique(target_array(target)).tolist() if v is not None]


def feature_kinds(spec: LabelFeaturesSpec, task: str, classes: Sequence[Any] | None = None) -> dict[str, str]:
    """The label features' columns, in order, with their kinds (``categorical`` or ``numeric``)."""
    lag_kind = "categorical" if task == "classification" else "numeric"
    out = {f"{PREFIX}lag_{k}": lag_kind for k in sorted(set(spec.lags))}
    keys = _keys(classes)
    for w in sorted(set(spec.windows)):
        if task != "classification":
            out[f"{PREFIX}mean_{w}"] = "numeric"
        elif len(keys) <= 2:
            out[f"{PREFIX}share_{w}"] = "numeric"
        else:
            out.update({f"{PREFIX}share_{w}_{key}": "numeric" for key in keys})
    return out


def history_length(spec: LabelFeaturesSpec) -> int:
    """How many of the newest labels :func:`features_from_labels` needs."""
    return max([*spec.lags, *spec.windows])


def _compute(labels: Sequence[Any], spec: LabelFeaturesSpec, task: str, keys: list[str],
             shift: int) -> pd.DataFrame:
    """The label features of each position of ``labels`` (in time order, None where unknown), where the
    newest label a position may see is ``shift`` positions before it."""
    out: dict[str, pd.Series] = {}
    if task == "classification":
        keyed = pd.Series(class_keys(labels), dtype=object)
        known = keyed.notna()
        for k in sorted(set(spec.lags)):
            out[f"{PREFIX}lag_{k}"] = keyed.shift(shift + k - 1)
        shared = keys[-1:] if len(keys) <= 2 else keys
        hits = {key: (keyed == key).astype(float).where(known) for key in shared} if spec.windows else {}
        for w in sorted(set(spec.windows)):
            for key, hit in hits.items():
                name = f"{PREFIX}share_{w}" if len(keys) <= 2 else f"{PREFIX}share_{w}_{key}"
                out[name] = hit.rolling(w, min_periods=1).mean().shift(shift)
    else:
        values = pd.to_numeric(pd.Series(list(labels), dtype=object), errors="coerce").astype(float)
        for k in sorted(set(spec.lags)):
            out[f"{PREFIX}lag_{k}"] = values.shift(shift + k - 1)
        for w in sorted(set(spec.windows)):
            out[f"{PREFIX}mean_{w}"] = values.rolling(w, min_periods=1).mean().shift(shift)
    return pd.DataFrame(out, index=range(len(labels)))


def add_label_features(frame: pd.DataFrame, *, target: str, time: str | None, spec: LabelFeaturesSpec, task: str,
                       classes: Sequence[Any] | None = None, delay: int = 0) -> pd.DataFrame:
    """``frame`` with its label features added: row i (in time order: by ``time``, else the frame's order)
    sees the labels of the rows before it, less the ``delay`` newest (labels that arrive ``delay`` rows
    late). ``classes``: a classifier's classes (default: those of the target column). A column of the
    data whose name is a label feature's is refused (DataError): tidal does not overwrite data."""
    if task == "classification" and classes is None:
        classes = label_classes(frame[target])
    keys = _keys(classes)
    kinds = feature_kinds(spec, task, keys)
    taken = [c for c in kinds if c in frame.columns]
    if taken:
        raise DataError(f"the data has a column named like a label feature: {', '.join(taken)}",
                        hint="rename the column, or remove prepare.label_features")
    order = np.arange(len(frame))
    if time is not None:
        order = np.argsort(parse_times(frame[time]).to_numpy(), kind="stable")
    labels = target_array(frame[target].iloc[order]).tolist()
    made = _compute(labels, spec, task, keys, shift=1 + delay)
    made.index = frame.index[order]
    return pd.concat([frame, made.loc[frame.index]], axis=1)


def features_from_labels(recent: Sequence[Any], spec: LabelFeaturesSpec, task: str,
                         classes: Sequence[Any] | None) -> dict[str, Any]:
    """The label features of the next row, given the ``recent`` known labels (oldest first), as the plain
    values a request row holds (text, float, or None)."""
    tail = list(recent)[-history_length(spec):]
    last = _compute([*tail, None], spec, task, _keys(classes), shift=1).iloc[-1]
    return {name: (None if value is None or (isinstance(value, float) and np.isnan(value)) else
                   (float(value) if isinstance(value, float | np.floating) else value))
            for name, value in last.items()}


def drop_label_features(frame: pd.DataFrame, spec: LabelFeaturesSpec | None) -> pd.DataFrame:
    """``frame`` less the label features a server filled in (the prediction log stores them with each row;
    a retrain computes them again over its own rows)."""
    if spec is None:
        return frame
    return frame.drop(columns=[c for c in frame.columns if LABEL_FEATURE.match(str(c))])


__all__ = [
    "PREFIX",
    "add_label_features",
    "drop_label_features",
    "feature_kinds",
    "features_from_labels",
    "history_length",
    "label_classes",
]
