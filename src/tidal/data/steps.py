"""The data stage's steps of the pipeline: collect, validate, split and profile, each from its inputs to its
outputs (tables and plain values in, tables and plain values out; no store is touched here: the pipeline
in :mod:`tidal.loop.pipeline` reads and writes them, so a step can run wherever its inputs can be sent).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from tidal.core.entities import SnapshotInfo
from tidal.data.images.checks import class_changes, has_images
from tidal.data.images.collect import is_image_data, read_images
from tidal.data.incremental import window_table
from tidal.data.prepare import split_rows
from tidal.data.profile import profile_frame
from tidal.data.roles import check_classes, check_numeric_target, check_time, check_training_classes
from tidal.data.snapshot import make_snapshot
from tidal.data.sources import read_source
from tidal.data.validate import Anomaly, raise_for_errors, validate_frame
from tidal.spec.model import DataSpec, SplitSpec
from tidal.spec.source import source_label


def collect(data: DataSpec, *, base_dir: Path, project: str, created_at: datetime,
            frame: pd.DataFrame | None = None, label: str | None = None) -> tuple[SnapshotInfo, bytes]:
    """The snapshot of the rows to train on: ``frame`` when given (the loop's window, a backtest's rows,
    described by ``label``), else ``data.source`` read afresh. Images (:mod:`tidal.data.images.collect`) are
    decoded, checked by ``data.checks.images`` and kept as canonical PNG; the ones left out are listed in the
    snapshot's profile under ``skipped``."""
    skipped: list[dict[str, str]] = []
    if frame is not None:
        df = frame.reset_index(drop=True)
    elif is_image_data(data):
        df, left_out = read_images(data, base_dir=base_dir)
        skipped = [s.to_dict() for s in left_out]
    else:
        df = read_source(data.source, base_dir=base_dir, query=data.query)
    if frame is None:  # the loop and the backtest pass their own window (retrain.window)
        df = window_table(df, data, created_at)
    info, payload = make_snapshot(df, project=project, source=label or source_label(data.source), created_at=created_at)
    if skipped:
        info = replace(info, profile={**info.profile, "skipped": skipped})
    return info, payload


def read_table(data: DataSpec, *, base_dir: Path) -> pd.DataFrame:
    """``data.source`` read afresh as the collect step reads it: images decoded, checked and kept as canonical
    PNG (the ones ``on_error: skip`` leaves out are dropped), a table as its source gives it."""
    if is_image_data(data):
        return read_images(data, base_dir=base_dir)[0]
    return read_source(data.source, base_dir=base_dir, query=data.query)


def validate(df: pd.DataFrame, schema: dict[str, Any] | None, data: DataSpec) -> list[Anomaly]:
    """The anomalies of ``df`` against the stored ``schema`` (None: the first snapshot), by ``data.checks``,
    and of its time column (:func:`check_time`, by ``data.time_order``). Columns in ``data.drop`` are left
    out on both sides: a column the model does not use may change as it likes (leaving out a column whose
    type changed is one way past the check)."""
    if data.drop:
        dropped = set(data.drop)
        df = df.drop(columns=[c for c in df.columns if c in dropped])
        if schema is not None:
            schema = {**schema, "columns": {k: v for k, v in schema["columns"].items() if k not in dropped}}
    images = class_changes(df, schema, data) if has_images(df) else []
    return validate_frame(df, schema, target=data.target, checks=data.checks) + check_time(
        df, data.time, data.time_order) + images


def split(df: pd.DataFrame, how: SplitSpec, *, target: str, time: str | None, task: str,
          seed: int | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The training rows and the holdout, chosen before anything is fitted (see :func:`split_rows`).

    The target is checked first, since the task is known here: ``SchemaError`` when a classifier's has more
    classes than can be learned (:func:`check_classes`) or its training rows hold one class only, or when a
    regressor's holds values that are not numbers (:func:`check_numeric_target`)."""
    raise_for_errors([*check_classes(df, target, task), *check_numeric_target(df, target, task)])
    parts = split_rows(df, method=how.method, test_size=how.test_size, target=target, time=time, task=task, seed=seed)
    train, holdout = df.iloc[parts.train].reset_index(drop=True), df.iloc[parts.test].reset_index(drop=True)
    raise_for_errors(check_training_classes(train, holdout, target, task, how.method))
    return train, holdout


def profile(train: pd.DataFrame, columns: Sequence[str], target: str) -> dict[str, Any]:
    """The reference profile of the training rows' inputs and target, stored with the model version so that
    monitoring never needs the training data again. A column of images also keeps the statistics monitoring
    compares in its place (brightness, contrast, sharpness...: :mod:`tidal.data.images.stats`)."""
    prof = profile_frame(train[[*columns, target]])
    for name, col in prof["columns"].items():
        if col.get("kind") == "image":
            from tidal.data.images.stats import statistics_reference  # Pillow, only for a column of images

            col["statistics"] = statistics_reference(train[name])
    return prof


__all__ = ["collect", "profile", "read_table", "split", "validate"]
