"""Prepare: the declarative ``prepare`` section of tidal.yaml as scikit-learn transformers.

The transformers are not fitted here: they become the first step of the model pipeline, fitted on the
training split only and saved with the model, so serving applies exactly what training did (no
training/serving skew) and nothing is learned from the holdout (no leakage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from tidal.core.errors import DataError
from tidal.data.codec import datetime_texts
from tidal.data.timecol import parse_times
from tidal.spec.model import PrepareSpec

NUMERIC_KINDS = frozenset({"numeric", "integer", "boolean"})


@dataclass(frozen=True)
class Split:
    """Row positions of the training and holdout parts of a table."""

    train: np.ndarray
    test: np.ndarray
    method: str


def feature_columns(
    df: pd.DataFrame, *, target: str, time: str | None, id_column: str | None,
    features: Sequence[str] | None, drop: Sequence[str] = (), kinds: Mapping[str, str] | None = None,
) -> list[str]:
    """The model's input columns: ``features`` if given, else every column but target, time, id, drop.

    A table with a column of images (``kinds`` says ``image``) takes its image columns alone by default:
    the rest (the file's ``path``) describes an image, it is not something to learn from."""
    if features:
        missing = [c for c in features if c not in df.columns]
        if missing:
            raise DataError(
                f"data.features names columns that are not in the data: {', '.join(missing)}",
                hint=f"the data has: {', '.join(map(str, df.columns))}",
            )
        return list(features)
    excluded = {target, time, id_column, *drop}
    cols = [str(c) for c in df.columns if c not in excluded]
    images = [c for c in cols if (kinds or {}).get(c) == "image"]
    if images:
        return images
    if not cols:
        raise DataError("no feature columns left after removing target, time, id and drop columns",
                        hint="list the inputs in data.features")
    return cols


def infer_task(y: pd.Series, *, estimator: Any | None = None, declared: str | None = None) -> str:
    """``classification`` or ``regression``: as declared, else from the estimator, else from the target.

    A target is a class label when it is not numeric, boolean, or integer-valued with few distinct values.
    """
    if declared:
        return declared
    if estimator is not None:
        from sklearn.base import is_classifier, is_regressor

        if is_classifier(estimator):
            return "classification"
        if is_regressor(estimator):
            return "regression"
    if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return "classification"
    values = y.dropna()
    if len(values) and np.all(np.mod(values.to_numpy(dtype=float), 1) == 0) and values.nunique() <= 20:
        return "classification"
    return "regression"


def split_rows(
    df: pd.DataFrame, *, method: str, test_size: float, target: str, time: str | None,
    task: str, seed: int | None,
) -> Split:
    """Split rows before anything is fitted.

    ``time``: the last ``test_size`` share of rows in time order is the holdout (the way the model will
    be used: trained on the past, judged on the future). ``random``: a seeded shuffle, stratified by the
    target for classification when every class has at least two rows.
    """
    n = len(df)
    n_test = max(1, round(n * test_size))
    if n - n_test < 2:
        raise DataError(f"only {n} rows: too few to split into training and holdout",
                        hint="collect more data or lower validate.split.test_size")
    if method == "time":
        order = np.arange(n)
        if time is not None:
            # read as time (docs/spec.md, data.time): ISO texts with offsets, dates, years, epoch seconds
            order = np.argsort(parse_times(df[time]).to_numpy(), kind="stable")
        return Split(train=np.sort(order[: n - n_test]), test=np.sort(order[n - n_test:]), method="time")
    from sklearn.model_selection import train_test_split

    stratify = None
    if task == "classification":
        counts = df[target].value_counts()
        if len(counts) > 1 and counts.min() >= 2 and n_test >= len(counts):
            stratify = df[target].to_numpy()
    train_idx, test_idx = train_test_split(
        np.arange(n), test_size=n_test, random_state=seed, shuffle=True, stratify=stratify
    )
    return Split(train=np.sort(train_idx), test=np.sort(test_idx), method="random")


def build_preprocessor(
    prepare: PrepareSpec, kinds: Mapping[str, str], columns: Sequence[str], *, seed: int | None = 0,
) -> Any:
    """A ColumnTransformer from the ``prepare`` section (``impute``, ``scale``, ``encode``); for a column of
    images, the ``ImagePreprocessor`` of ``prepare.images`` (augmentation seeded by ``seed``).

    ``kinds`` maps column → kind as profiled (numeric, integer, boolean, categorical, datetime, image).
    Unknown categories at serving time are ignored (one-hot) or mapped to -1 (ordinal), never an error:
    monitoring reports them instead.
    """
    images = [c for c in columns if kinds.get(c) == "image"]
    if images:
        if len(columns) != 1:
            raise DataError(f"a model on images takes one image column and nothing else; the inputs are "
                            f"{', '.join(columns)}", hint="list the one image column in data.features")
        from tidal.data.images.prepare import build_image_preprocessor  # Pillow, only for images

        return build_image_preprocessor(prepare.images, images[0], seed)
    numeric = [c for c in columns if kinds.get(c) in NUMERIC_KINDS]
    categorical = [c for c in columns if kinds.get(c) not in NUMERIC_KINDS]
    transformers: list[tuple[str, Any, list[str]]] = []

    num_steps: list[tuple[str, Any]] = []
    num_impute = prepare.impute.numeric
    if num_impute == "zero":
        num_steps.append(("impute", SimpleImputer(strategy="constant", fill_value=0.0)))
    elif num_impute != "none":
        num_steps.append(("impute", SimpleImputer(strategy=num_impute)))
    if prepare.scale == "standard":
        num_steps.append(("scale", StandardScaler()))
    elif prepare.scale == "minmax":
        num_steps.append(("scale", MinMaxScaler()))
    if numeric:
        transformers.append(("numeric", Pipeline(num_steps) if num_steps else "passthrough", numeric))

    if categorical:
        cat_steps: list[tuple[str, Any]] = []
        cat_impute = prepare.impute.categorical
        if cat_impute == "most_frequent":
            cat_steps.append(("impute", SimpleImputer(strategy="most_frequent")))
        elif cat_impute == "constant":
            cat_steps.append(("impute", SimpleImputer(strategy="constant", fill_value="missing")))
        if prepare.encode == "onehot":
            cat_steps.append(("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False)))
        else:
            cat_steps.append(("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)))
        transformers.append(("categorical", Pipeline(cat_steps), categorical))
    return ColumnTransformer(transformers, remainder="drop", verbose_feature_names_out=False)


def as_model_input(df: pd.DataFrame, columns: Sequence[str], kinds: Mapping[str, str]) -> pd.DataFrame:
    """The input columns in signature order, categoricals as object so encoders see strings, datetimes as
    ISO text (:func:`tidal.data.codec.datetime_texts`)."""
    X = df.loc[:, list(columns)].copy()
    for c in columns:
        if kinds.get(c) == "datetime":
            X[c] = datetime_texts(X[c].tolist())
        elif kinds.get(c) not in NUMERIC_KINDS:
            X[c] = X[c].astype(object).where(X[c].notna(), np.nan)
    return X
