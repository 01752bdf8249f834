"""Validation of a table of images against the reference: classes that are new, or gone.

A class is a folder in the class-folder layout, a label value otherwise. Against the schema of the
reference snapshot (the first one a model was registered on), a class that was not there before, or one
that was and now has no image, is reported as an anomaly of kind ``new_class`` or ``gone_class``: a
warning, or an error when ``data.checks.images.classes`` is ``error``. Unreadable, truncated, oversized or
wrongly shaped files are found earlier, at collection (:mod:`tidal.data.images.collect`).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from tidal.data.schema import category_counts, column_kind
from tidal.data.validate import Anomaly, Severity
from tidal.spec.model import DataSpec

#: How many classes one message names.
MAX_LISTED = 10


def has_images(df: pd.DataFrame) -> bool:
    """Whether ``df`` has a column of images."""
    return any(df[c].dtype == object and column_kind(df[c]) == "image" for c in df.columns)


def class_changes(df: pd.DataFrame, schema: dict[str, Any] | None, data: DataSpec) -> list[Anomaly]:
    """``new_class`` and ``gone_class`` anomalies of ``df``'s target against the reference ``schema``."""
    if schema is None or data.target not in df.columns:
        return []
    before = (schema.get("columns", {}).get(data.target) or {}).get("categories")
    if before is None:  # a regression target, or too many classes to list
        return []
    now = set(category_counts(df[data.target]).index)
    severity: Severity = "error" if data.checks.images.classes == "error" else "warning"
    out = []
    new = sorted(now - set(before), key=str)
    gone = sorted(set(before) - now, key=str)
    if new:
        out.append(Anomaly(severity, "new_class", data.target,
                           f"{len(new)} new class{'es' if len(new) > 1 else ''} not in the reference: {_names(new)}"))
    if gone:
        out.append(Anomaly(severity, "gone_class", data.target,
                           f"{len(gone)} class{'es' if len(gone) > 1 else ''} of the reference with no image now: "
                           f"{_names(gone)}"))
    return out


def _names(values: list[Any]) -> str:
    shown = ", ".join(repr(str(v)) for v in values[:MAX_LISTED])
    return shown + (f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else "")


__all__ = ["class_changes", "has_images"]
